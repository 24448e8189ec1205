//! `lull tenants` over the data directory's SQLite tenant store (the one `lull serve` reads).

use std::path::PathBuf;
use std::time::Duration;

use lull_core::{Millis, Policy};
use lull_ingest::tenant_apply::Applied;
use lull_ingest::{TenantRecord, TenantSpec};
use lull_local::SqliteTenants;

use super::{TenantAdmin, TenantsArgs};
use crate::config::read_file;

/// The data directory's tenants, with this shell's defaults for when no `lull serve` has
/// recorded the deployment's.
pub struct LocalTenants {
    store: SqliteTenants,
    policy: Policy,
    refresh: Duration,
}

impl LocalTenants {
    /// Opens (creating) the tenant store of `args`' data directory.
    pub fn open(args: &TenantsArgs) -> Result<LocalTenants, String> {
        let (policy, refresh, data_dir) = shell_defaults(args)?;
        let store = SqliteTenants::open(&data_dir).map_err(|e| e.to_string())?;
        Ok(LocalTenants {
            store,
            policy,
            refresh,
        })
    }
}

impl TenantAdmin for LocalTenants {
    /// The deployment's settings, as the server recorded them, win over this shell's.
    fn defaults(&self) -> Result<(Policy, Duration, String), String> {
        Ok(match self.store.deployment().map_err(|e| e.to_string())? {
            Some(d) => (
                d.defaults,
                Duration::from_millis(d.tenant_refresh_ms),
                "recorded by lull serve".into(),
            ),
            None => (
                self.policy,
                self.refresh,
                "of this shell: no lull serve has run here yet".into(),
            ),
        })
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
            .map_err(|e| e.to_string())
    }

    async fn list(&self) -> Result<Vec<TenantRecord>, String> {
        self.store.load_now().map_err(|e| e.to_string())
    }

    async fn remove(&self, id: &str, purge: bool, now: Millis) -> Result<(), String> {
        // A purge is refused (in the store's transaction) while the tenant's conversations
        // still hold work.
        self.store.remove(id, purge, now).map_err(|e| e.to_string())
    }
}

/// The default policy tenants' missing fields take and the tenant refresh time: those the last
/// `lull serve` on the data directory recorded, else `LULL_QUIET` / `LULL_MAX_WAIT` /
/// `LULL_TENANT_REFRESH` or `lull.toml`'s `quiet` / `max_wait` / `tenant_refresh`, as `lull
/// serve` reads them.
fn shell_defaults(args: &TenantsArgs) -> Result<(Policy, Duration, PathBuf), String> {
    let file = read_file(args.config.as_deref()).map_err(|e| e.to_string())?;
    let quiet = std::env::var("LULL_QUIET").ok().or(file.quiet.clone());
    let max_wait = std::env::var("LULL_MAX_WAIT")
        .ok()
        .or(file.max_wait.clone());
    let refresh = std::env::var("LULL_TENANT_REFRESH")
        .ok()
        .or(file.tenant_refresh.clone());
    let d = Policy::default();
    let parse = |name: &str, v: Option<String>, default| match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{name} {s:?}: {e} (write 8s, 500ms, 1m)")),
    };
    let policy = Policy::with_times(
        parse("quiet", quiet, d.quiet)?,
        parse("max_wait", max_wait, d.max_wait)?,
    )
    .map_err(|e| e.to_string())?;
    let refresh = parse("tenant_refresh", refresh, lull_ingest::DEFAULT_TENANT_TTL)?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(crate::config::defaults::DATA_DIR));
    Ok((policy, refresh, data_dir))
}
