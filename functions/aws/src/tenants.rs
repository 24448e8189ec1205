//! The tenant store on AWS: one DynamoDB item in the windows' table, secrets in Secrets Manager.
//!
//! - The directory item `pk = "tenants"` holds every tenant record (the whole `[[tenants]]`
//!   spec with its secret values taken out, plus bookkeeping) as one JSON attribute `tenants`,
//!   with a version `ver` that every write is conditional on: an apply is one conditional
//!   `PutItem`, all or nothing, and two concurrent applies cannot both pass the checks against
//!   a stale view. One item keeps a reload to one strongly consistent `GetItem` (0.5 RCU up to
//!   4 KB) per process per refresh, whatever the traffic; its 400 KB limit holds about 800
//!   tenants (see `docs/dynamodb.md`).
//! - Each tenant's secrets are one Secrets Manager secret, `<LULL_SECRET_PREFIX><tenant id>`,
//!   whose value is a JSON object `{"meta.app_secret": ["v1", "v2"], ...}`. The directory item
//!   names the exact version (`VersionId`) each tenant uses, so a reload fetches a secret only
//!   when that version changed, and a rotation is an apply with both values (both accepted),
//!   then one with only the new value.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use lull_core::ports::WindowStore;
use lull_core::{Millis, Policy, Provider};
use lull_ingest::tenant::{DirectoryError, LookupFuture};
use lull_ingest::tenant_apply::{busy_per_account, check_purge, held_claims, ApplyContext};
use lull_ingest::tenant_spec::{apply_specs, Applied};
use lull_ingest::{TenantRecord, TenantSource, TenantSpec};
use serde::{Deserialize, Serialize};

use crate::accounting::Accounting;
use crate::sdk_error;
use crate::store::{DynamoDbStore, StoreSettings};

/// The partition key of the directory item.
pub const DIRECTORY_PK: &str = "tenants";

/// A tenant as the directory item stores it: the record without secret values, and which
/// version of which secret holds them.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    record: TenantRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<SecretRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct SecretRef {
    name: String,
    version: String,
}

/// The tenant store failed or refused a change.
#[derive(Debug, thiserror::Error)]
pub enum TenantStoreError {
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    #[error("Secrets Manager: {0}")]
    Secrets(String),
    #[error("the tenant directory item is unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
    #[error("no tenant {0:?}")]
    NotFound(String),
    #[error("another change to the tenants was made at the same time; run the command again")]
    Conflict,
}

/// Tenants in DynamoDB and Secrets Manager.
#[derive(Clone, Debug)]
pub struct DynamoTenants {
    ddb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
    table: String,
    prefix: String,
    acct: Accounting,
    /// The windows in the same table: an account another tenant dropped, or a tenant to purge,
    /// is checked for conversations that still hold work.
    windows: DynamoDbStore,
    /// Secret values by (name, version): a version never changes, so entries never go stale.
    cache: Arc<Mutex<HashMap<SecretRef, SecretValues>>>,
}

/// One tenant's secrets: field (`meta.app_secret`, ...) -> values.
type SecretValues = BTreeMap<String, Vec<String>>;

/// The most secret versions kept in memory (more: the cache starts over).
const MAX_CACHED_SECRETS: usize = 4096;

impl DynamoTenants {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        secrets: aws_sdk_secretsmanager::Client,
        table: impl Into<String>,
        secret_prefix: impl Into<String>,
        acct: Accounting,
    ) -> DynamoTenants {
        let table = table.into();
        let windows = DynamoDbStore::new(ddb.clone(), StoreSettings::new(&table), acct.clone());
        DynamoTenants {
            ddb,
            secrets,
            table,
            prefix: secret_prefix.into(),
            acct,
            windows,
            cache: Arc::default(),
        }
    }

    /// The same store, reading the windows of `settings` (the deployment's due shards).
    pub fn with_windows(mut self, settings: StoreSettings) -> DynamoTenants {
        self.windows = DynamoDbStore::new(self.ddb.clone(), settings, self.acct.clone());
        self
    }

    /// How many conversations of each of `accounts` hold work: an entry in the due index (an
    /// open or paused window, a pending or parked batch). Reads the whole index: an operator's
    /// command, not a request path.
    async fn busy(
        &self,
        accounts: &[(Provider, String)],
    ) -> Result<HashMap<(Provider, String), usize>, TenantStoreError> {
        if accounts.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = self
            .windows
            .due(Millis(u64::MAX), usize::MAX)
            .await
            .map_err(|e| TenantStoreError::Dynamo(e.to_string()))?;
        Ok(busy_per_account(&keys, accounts))
    }

    /// The directory item's tenants and version (0: no item yet).
    async fn read(&self) -> Result<(Vec<Stored>, u64), TenantStoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(DIRECTORY_PK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| TenantStoreError::Dynamo(sdk_error(&e)))?;
        self.acct.record("dynamodb.GetItem(tenants)", 0, 0.5, 0.0);
        let Some(item) = out.item else {
            return Ok((Vec::new(), 0));
        };
        let ver = match item.get("ver") {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| TenantStoreError::Corrupt(format!("ver {n:?}")))?,
            _ => return Err(TenantStoreError::Corrupt("no ver".into())),
        };
        let json = match item.get("tenants") {
            Some(AttributeValue::S(s)) => s.as_str(),
            _ => return Err(TenantStoreError::Corrupt("no tenants attribute".into())),
        };
        let stored: Vec<Stored> =
            serde_json::from_str(json).map_err(|e| TenantStoreError::Corrupt(e.to_string()))?;
        Ok((stored, ver))
    }

    /// Writes the directory item if it is still at `ver`.
    async fn write(&self, stored: &[Stored], ver: u64) -> Result<(), TenantStoreError> {
        let json =
            serde_json::to_string(stored).map_err(|e| TenantStoreError::Corrupt(e.to_string()))?;
        let mut put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(DIRECTORY_PK.into()))
            .item("ver", AttributeValue::N((ver + 1).to_string()))
            .item("tenants", AttributeValue::S(json));
        put = if ver == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("ver = :v")
                .expression_attribute_values(":v", AttributeValue::N(ver.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let conflict = e
                    .as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception());
                if conflict {
                    Err(TenantStoreError::Conflict)
                } else {
                    Err(TenantStoreError::Dynamo(sdk_error(&e)))
                }
            }
        }
    }

    /// The secret values of one reference, from the cache or Secrets Manager.
    async fn secret_values(
        &self,
        r: &SecretRef,
    ) -> Result<BTreeMap<String, Vec<String>>, TenantStoreError> {
        if let Some(v) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(r) {
            return Ok(v.clone());
        }
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(&r.name)
            .version_id(&r.version)
            .send()
            .await
            .map_err(|e| TenantStoreError::Secrets(format!("{}: {}", r.name, sdk_error(&e))))?;
        self.acct
            .record("secretsmanager.GetSecretValue", 0, 0.0, 0.0);
        let text = out.secret_string().unwrap_or_default();
        let values: BTreeMap<String, Vec<String>> = serde_json::from_str(text).map_err(|e| {
            TenantStoreError::Secrets(format!("{} does not hold lull secrets: {e}", r.name))
        })?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_SECRETS {
            cache.clear();
        }
        cache.insert(r.clone(), values.clone());
        Ok(values)
    }

    /// Every record with its secrets put back.
    pub async fn load_now(&self) -> Result<Vec<TenantRecord>, TenantStoreError> {
        let (stored, _) = self.read().await?;
        let mut out = Vec::with_capacity(stored.len());
        for s in stored {
            let mut record = s.record;
            if let Some(r) = &s.secret {
                record.spec.put_secrets(self.secret_values(r).await?);
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Every record as stored: secret values not fetched (what `lull tenants list` shows).
    pub async fn list(&self) -> Result<Vec<TenantRecord>, TenantStoreError> {
        let (stored, _) = self.read().await?;
        let mut out = Vec::with_capacity(stored.len());
        for s in stored {
            let mut record = s.record;
            if let Some(r) = &s.secret {
                // Counts only: the values stay in Secrets Manager.
                let values = self.secret_values(r).await?;
                let redacted = values
                    .into_iter()
                    .map(|(k, v)| (k, v.iter().map(|_| "*".to_string()).collect()))
                    .collect();
                record.spec.put_secrets(redacted);
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Stores `values` as the secret of tenant `id`; returns the reference of the new version.
    async fn put_secret(
        &self,
        id: &str,
        values: &BTreeMap<String, Vec<String>>,
    ) -> Result<SecretRef, TenantStoreError> {
        let name = format!("{}{id}", self.prefix);
        let text =
            serde_json::to_string(values).map_err(|e| TenantStoreError::Secrets(e.to_string()))?;
        let put = self
            .secrets
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&text)
            .send()
            .await;
        let version = match put {
            Ok(out) => out.version_id().map(str::to_string),
            Err(e) if e.code() == Some("ResourceNotFoundException") => self
                .secrets
                .create_secret()
                .name(&name)
                .description("lull tenant secrets (written by `lull tenants apply --aws`)")
                .secret_string(&text)
                .send()
                .await
                .map_err(|e| TenantStoreError::Secrets(format!("{name}: {}", sdk_error(&e))))?
                .version_id()
                .map(str::to_string),
            Err(e) => {
                return Err(TenantStoreError::Secrets(format!(
                    "{name}: {}",
                    sdk_error(&e)
                )))
            }
        };
        let version =
            version.ok_or_else(|| TenantStoreError::Secrets(format!("{name}: no version id")))?;
        Ok(SecretRef { name, version })
    }

    /// Creates or updates every tenant of `specs` at once, after checking the whole resulting
    /// set. Secrets that changed get a new version in Secrets Manager first; the directory item
    /// then points at it (one conditional write). `defaults` fill the policy fields specs leave
    /// out (resolved now and stored); an account another tenant dropped is given to its claimant
    /// only once its conversations hold no work and the drop is older than `refresh`.
    pub async fn apply(
        &self,
        specs: Vec<TenantSpec>,
        defaults: &Policy,
        now: Millis,
        refresh: std::time::Duration,
    ) -> Result<Applied, TenantStoreError> {
        let (mut stored, ver) = self.read().await?;
        let mut records = Vec::with_capacity(stored.len());
        for s in &stored {
            let mut r = s.record.clone();
            if let Some(sr) = &s.secret {
                r.spec.put_secrets(self.secret_values(sr).await?);
            }
            records.push(r);
        }
        let claims = held_claims(&records, &specs);
        let busy = self.busy(&claims).await?;
        let cx = ApplyContext {
            defaults,
            now,
            refresh,
            busy: &busy,
        };
        let applied = apply_specs(&mut records, specs, &cx).map_err(TenantStoreError::Refused)?;
        let changed: Vec<String> = applied.changed().cloned().collect();
        for id in &changed {
            let Some(r) = records.iter().find(|r| &r.spec.id == id) else {
                continue;
            };
            let mut record = r.clone();
            let values = record.spec.take_secrets();
            let old = stored.iter().position(|s| &s.record.spec.id == id);
            let old_values = match old.and_then(|i| stored[i].secret.clone()) {
                Some(sr) => Some((self.secret_values(&sr).await?, sr)),
                None => None,
            };
            let secret = match old_values {
                Some((v, sr)) if v == values => Some(sr),
                _ if values.is_empty() => None,
                _ => Some(self.put_secret(id, &values).await?),
            };
            let entry = Stored { record, secret };
            match old {
                Some(i) => stored[i] = entry,
                None => stored.push(entry),
            }
        }
        if !changed.is_empty() {
            self.write(&stored, ver).await?;
        }
        Ok(applied)
    }

    /// Removes tenant `id` (a tombstone keeps its sink for what it accepted); with `purge`, the
    /// tombstone and its secret go too, refused while a conversation of its accounts (or of
    /// those it holds) still holds work.
    pub async fn remove(&self, id: &str, purge: bool, now: Millis) -> Result<(), TenantStoreError> {
        let (mut stored, ver) = self.read().await?;
        let Some(i) = stored.iter().position(|s| s.record.spec.id == id) else {
            return Err(TenantStoreError::NotFound(id.into()));
        };
        if purge {
            let r = &stored[i].record;
            let busy = self.busy(&r.all_accounts()).await?;
            check_purge(r, &busy).map_err(TenantStoreError::Refused)?;
            let gone = stored.remove(i);
            self.write(&stored, ver).await?;
            if let Some(r) = gone.secret {
                self.secrets
                    .delete_secret()
                    .secret_id(&r.name)
                    .force_delete_without_recovery(true)
                    .send()
                    .await
                    .map_err(|e| TenantStoreError::Secrets(sdk_error(&e)))?;
            }
            return Ok(());
        }
        let r = &mut stored[i].record;
        if r.removed_at.is_none() {
            r.removed_at = Some(now);
            r.updated_at = now;
            self.write(&stored, ver).await?;
        }
        Ok(())
    }
}

impl TenantSource for DynamoTenants {
    fn load(&self) -> LookupFuture<'_, Vec<TenantRecord>> {
        Box::pin(async move {
            self.load_now()
                .await
                .map_err(|e| DirectoryError(e.to_string()))
        })
    }
}
