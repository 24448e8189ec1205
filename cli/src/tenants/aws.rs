//! `lull tenants --aws`: the deployment's tenant store (DynamoDB and Secrets Manager), found from
//! the Lambdas' variables (`LULL_TABLE`, `LULL_SECRET_PREFIX`, `LULL_QUIET`, `LULL_MAX_WAIT`) and
//! the usual AWS credentials.

use std::time::Duration;

use lull_aws::tenants::DynamoTenants;
use lull_aws::{Accounting, Role, Settings};
use lull_core::{Millis, Policy};
use lull_ingest::tenant_apply::Applied;
use lull_ingest::{TenantRecord, TenantSpec};

use super::TenantAdmin;

/// The AWS deployment's tenants.
pub struct AwsTenants {
    store: DynamoTenants,
    settings: Settings,
}

impl AwsTenants {
    pub async fn connect() -> Result<AwsTenants, String> {
        let (settings, clients) = crate::aws::connect(Role::Tenants).await?;
        Ok(AwsTenants {
            store: settings.tenant_store(&clients, &Accounting::new()),
            settings,
        })
    }
}

impl TenantAdmin for AwsTenants {
    fn defaults(&self) -> Result<(Policy, Duration, String), String> {
        Ok((
            self.settings.policy,
            self.settings.tenant_refresh,
            "the Lambdas' LULL_QUIET, LULL_MAX_WAIT, ... as set here".into(),
        ))
    }

    async fn apply(
        &self,
        specs: Vec<TenantSpec>,
        defaults: &Policy,
        now: Millis,
        refresh: Duration,
    ) -> Result<Applied, String> {
        self.store
            .apply(specs, defaults, now, refresh)
            .await
            .map_err(|e| e.to_string())
    }

    async fn list(&self) -> Result<Vec<TenantRecord>, String> {
        self.store.list().await.map_err(|e| e.to_string())
    }

    async fn remove(&self, id: &str, purge: bool, now: Millis) -> Result<(), String> {
        // A purge is refused while the tenant's conversations still hold work.
        self.store
            .remove(id, purge, now)
            .await
            .map_err(|e| e.to_string())
    }
}
