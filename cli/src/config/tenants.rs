//! The part of resolution that reads tenants: the flags' single tenant or the `[[tenants]]` of
//! `lull.toml` (never both), and whether the data directory's SQLite tenant store already holds
//! a gateway secret (the one place resolution opens the store).

use std::path::Path;

use lull_core::settings::SettingSource;
use lull_core::Policy;
use lull_ingest::{Tenant, TenantSpec};

use super::{FileConfig, Layers, ServeConfigError};

/// Whether the data directory already holds a live tenant with a secret (tenants applied with
/// `lull tenants apply` count as much as those of `lull.toml`).
pub(super) fn stored_secrets(data_dir: &Path) -> Result<bool, ServeConfigError> {
    if !lull_local::store::db_path(data_dir).exists() {
        return Ok(false);
    }
    let records = lull_local::SqliteTenants::open(data_dir)
        .and_then(|t| t.load_now())
        .map_err(|e| ServeConfigError::Tenants(e.to_string()))?;
    Ok(records
        .iter()
        .any(|r| r.removed_at.is_none() && r.spec.has_gateway_secret()))
}

/// The single tenant of flags, environment and top-level file keys (built as the webhook Lambda
/// builds its bootstrap tenant, by [`Tenant::from_env`]), or the `[[tenants]]` of the file
/// (checked as a whole: unique ids, each account owned once), never both.
pub(super) fn tenants(
    layers: &Layers,
    file: &FileConfig,
    policy: Policy,
) -> Result<(Vec<TenantSpec>, Option<Tenant>), ServeConfigError> {
    if file.tenants.is_empty() {
        let tenant = Tenant::from_env(|var| {
            lull_ingest::tenant::env::ALL
                .iter()
                .find(|v| **v == var)
                .and_then(|v| layers.value(v))
        })
        .map_err(|e| ServeConfigError::Tenants(e.to_string()))?;
        return Ok((Vec::new(), Some(Tenant { policy, ..tenant })));
    }
    if let Some(var) = lull_ingest::tenant::env::ALL
        .iter()
        .find(|v| layers.value(v).is_some())
    {
        return Err(ServeConfigError::GlobalSecretWithTenants(var));
    }
    let now = lull_core::Millis::now_wall();
    let records: Vec<_> = file
        .tenants
        .iter()
        .map(|s| lull_ingest::TenantRecord::applied(None, s.clone(), now))
        .collect();
    lull_ingest::tenant_spec::check_set(&records, &policy, |_| true)
        .map_err(|e| ServeConfigError::Tenants(format!("[[tenants]] in lull.toml: {e}")))?;
    Ok((file.tenants.clone(), None))
}
