//! Wiring: the adapters built from checked [`Settings`] over the SDK clients, once per process.
//! Parsing and validation live in [`crate::config`]; this file only connects.

use std::sync::Arc;

use lull_ingest::{CachedDirectory, Tenant};

use crate::accounting::Accounting;
use crate::clients::AwsClients;
use crate::config::{LambdaConfigError, Settings, SinkSpec};
use crate::sink::{BatchSink, SqsSink};
use crate::store::{DynamoDbStore, StoreSettings};
use crate::tenants::DynamoTenants;
use crate::trigger::SqsTrigger;

impl Settings {
    /// The store settings.
    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            table: self.table.clone(),
            due_shards: self.due_shards,
            idle_ttl: self.idle_ttl,
        }
    }

    /// What the flush, sweep and redrive programs run: store, trigger and the sink, which they
    /// require. Each tenant's batches go to its own sink, looked up in the tenant directory at
    /// every hand-off (a removed tenant's too, for what it accepted); the deployment's
    /// `LULL_SINK` serves tenants without one.
    pub fn handoff(
        &self,
        clients: &AwsClients,
        acct: &Accounting,
    ) -> Result<crate::AwsHandoff, LambdaConfigError> {
        let (store, trigger, sink) = self.build(clients, acct)?;
        let sink = sink.ok_or(LambdaConfigError::Missing { var: "LULL_SINK" })?;
        let tenants = self.tenants(clients, acct, None);
        let sink =
            lull_tenants::RoutedSink::new(sink).with_routes(tenants.clone(), self.sink_timeout);
        // Each tenant's `on_close` (read receipt, typing) goes out beside its hand-offs, best
        // effort; the flush handler waits for those calls before the Lambda freezes.
        let sink = lull_sink::Listening::new(sink, tenants, self.listen_timeout).map_err(|e| {
            LambdaConfigError::Invalid(lull_core::settings::SettingError {
                setting: "LULL_LISTEN_TIMEOUT".into(),
                value: format!("{:?}", self.listen_timeout),
                reason: format!("cannot build the HTTP client: {e}"),
            })
        })?;
        let handoff = lull_core::protocol::Handoff::new(
            store,
            trigger,
            sink,
            lull_core::ports::SystemClock,
            self.buffer,
        );
        Ok(match (&self.public_url, self.guard_key()) {
            (Some(url), Some(key)) => {
                handoff.with_reply_guard(std::sync::Arc::new(lull_sink::GuardUrls::new(url, key)))
            }
            _ => handoff,
        })
    }

    /// The reply guards' key, derived from the deployment's log secret (a NoEcho parameter):
    /// none without one.
    pub fn guard_key(&self) -> Option<lull_sink::GuardKey> {
        (!self.log_secret.is_empty())
            .then(|| lull_sink::GuardKey::derive(self.log_secret.as_bytes()))
    }

    /// How long a handler waits, after its hand-offs, for the `on_close` calls they started: one
    /// call's bound plus the time Evolution holds a presence by design.
    pub fn listen_settle(&self) -> std::time::Duration {
        self.listen_timeout
            + std::time::Duration::from_millis(lull_core::listen::EVOLUTION_TYPING_MS)
    }

    /// What the webhook program runs: appends only, so no sink and no sink secret.
    pub fn intake(
        &self,
        clients: &AwsClients,
        acct: &Accounting,
    ) -> Result<crate::AwsIntake, LambdaConfigError> {
        let (store, trigger, _) = self.build(clients, acct)?;
        Ok(lull_core::protocol::Intake::new(
            store,
            trigger,
            lull_core::ports::SystemClock,
            self.buffer,
        ))
    }

    /// Builds the store, trigger and (when configured) sink over `clients`.
    pub fn build(
        &self,
        clients: &AwsClients,
        acct: &Accounting,
    ) -> Result<(DynamoDbStore, SqsTrigger, Option<BatchSink>), LambdaConfigError> {
        let store = DynamoDbStore::new(
            clients.dynamodb.clone(),
            self.store_settings(),
            acct.clone(),
        );
        let trigger = SqsTrigger::new(clients.sqs.clone(), &self.trigger_queue_url, acct.clone());
        let sink = match &self.sink {
            None => None,
            Some(SinkSpec::SqsFifo(url)) => Some(BatchSink::Sqs(SqsSink::new(
                clients.sqs.clone(),
                url,
                acct.clone(),
            ))),
            Some(SinkSpec::Any(spec)) => {
                let invalid = |reason: String| {
                    LambdaConfigError::Invalid(lull_core::settings::SettingError {
                        setting: "LULL_SINK".into(),
                        value: spec.clone(),
                        reason,
                    })
                };
                let any =
                    lull_sink::AnySink::parse(spec, self.sink_secrets.clone(), self.sink_timeout)
                        .map_err(|e| invalid(e.to_string()))?;
                Some(BatchSink::Any(any))
            }
        };
        Ok((store, trigger, sink))
    }

    /// The tenant store (the directory item in the table, secrets in Secrets Manager).
    pub fn tenant_store(&self, clients: &AwsClients, acct: &Accounting) -> DynamoTenants {
        DynamoTenants::new(
            clients.dynamodb.clone(),
            clients.secrets.clone(),
            &self.table,
            &self.secret_prefix,
            acct.clone(),
        )
        .with_windows(self.store_settings())
    }

    /// The tenant directory every Lambda reads, re-read after `LULL_TENANT_REFRESH`. `fallback`
    /// (the webhook's tenant from `LULL_META_APP_SECRET` etc., the bootstrap of a new stack)
    /// serves only while the store holds no tenant.
    pub fn tenants(
        &self,
        clients: &AwsClients,
        acct: &Accounting,
        fallback: Option<Tenant>,
    ) -> Arc<CachedDirectory> {
        Arc::new(CachedDirectory::new(
            Arc::new(self.tenant_store(clients, acct)),
            self.tenant_refresh,
            self.policy,
            fallback,
        ))
    }
}
