//! The data directory's deployment, opened as `lull serve` opens it: the tenant directory over
//! the tenant store, the sink routed per tenant, and the store with its timers. `serve` runs it;
//! `redrive` and `conversations` open it when no server holds the directory.

use std::sync::Arc;
use std::time::Duration;

use lull_ingest::CachedDirectory;
use lull_local::{Local, Settings};
use lull_sink::{AnySink, Listening};
use lull_tenants::RoutedSink;

use crate::config::Config;

/// The store, timer and sweep settings of `cfg`.
pub fn settings(cfg: &Config) -> Settings {
    Settings {
        data_dir: cfg.data_dir.clone(),
        durability: cfg.durability,
        buffer: cfg.buffer,
        sweep: cfg.sweep,
        max_concurrent_flushes: 256,
        max_concurrent_requests: cfg.max_concurrent_requests,
        ops_tokens: cfg.ops_tokens.clone(),
        public_url: cfg.public_url.clone(),
    }
}

/// The sink `serve` hands off to: the default sink, with each tenant's batches routed to its own
/// sink through the directory.
/// Each tenant's `on_close` (read receipt, typing indicator) goes out beside its hand-offs.
pub fn sink(cfg: &Config, tenants: Arc<CachedDirectory>) -> Result<Listening<RoutedSink>, String> {
    let routed = RoutedSink::new(default_sink(cfg)?).with_routes(tenants.clone(), cfg.sink_timeout);
    Listening::new(routed, tenants, cfg.listen_timeout)
        .map_err(|e| format!("cannot build the on_close HTTP client: {e}"))
}

/// The deployment's own sink (`--sink`), for conversations of tenants without one (and `lull
/// check --send-test-batch`).
pub fn default_sink(cfg: &Config) -> Result<AnySink, String> {
    AnySink::parse(&cfg.sink, cfg.sink_secrets.clone(), cfg.sink_timeout).map_err(|e| e.to_string())
}

/// Opens the data directory (locking it) with its tenants and sink, as `serve` does.
pub async fn open(cfg: &Config) -> Result<Local<Listening<RoutedSink>>, String> {
    let directory = tenants(cfg).await?;
    Local::open(settings(cfg), sink(cfg, directory)?)
        .await
        .map_err(|e| e.to_string())
}

/// The tenant directory over the data directory's tenant store: seeded from `lull.toml`'s
/// `[[tenants]]` when fresh, read once now (a store that makes no sense stops start-up), then
/// re-read every `tenant_refresh`.
pub async fn tenants(cfg: &Config) -> Result<Arc<CachedDirectory>, String> {
    let store = lull_local::tenants::source(&cfg.data_dir).map_err(|e| e.to_string())?;
    let now = lull_core::Millis::now_wall();
    let seeded = store
        .seed(cfg.seed.clone(), &cfg.policy, now)
        .map_err(|e| format!("seeding tenants from lull.toml: {e}"))?;
    let stored = store.load_now().map_err(|e| e.to_string())?;
    if !stored.is_empty() && cfg.fallback.as_ref().is_some_and(|f| f.has_any_secret()) {
        return Err(format!(
            "gateway secrets are set by flag, environment or top-level lull.toml keys, but \
                 {} holds tenants (`lull tenants list`): give each tenant its own secrets with \
                 `lull tenants apply`",
            cfg.data_dir.display()
        ));
    }
    if !seeded && !cfg.seed.is_empty() {
        tracing::warn!(
            "lull.toml lists [[tenants]] but the data directory already holds tenants: the \
             stored ones are in force (change them with `lull tenants apply lull.toml`)"
        );
    }
    let dir = Arc::new(CachedDirectory::new(
        store,
        cfg.tenant_refresh,
        cfg.policy,
        cfg.fallback.clone(),
    ));
    let live = dir.refresh().await.map_err(|e| e.to_string())?;
    let quarantined = dir.health().quarantined.len();
    tracing::info!(
        tenants = live,
        quarantined,
        refresh_ms = cfg.tenant_refresh.as_millis() as u64,
        "tenants loaded from the data directory"
    );
    Ok(dir)
}

/// `/healthz`'s tenant check: unhealthy once the tenant store has failed for longer than
/// `STALE_AFTER_REFRESHES` refresh times (the last tenants loaded stay in force meanwhile).
pub fn tenant_health(dir: Arc<CachedDirectory>) -> lull_local::ops::HealthCheck {
    Arc::new(move || {
        let h = dir.health();
        if !h.stale {
            return Ok(());
        }
        Err(format!(
            "tenants: the tenant store failed {} time(s) in a row; the tenants in force were \
             loaded {} ago (last error: {})",
            h.failures,
            h.age.map_or_else(
                || "never".to_string(),
                |a| humantime::format_duration(Duration::from_secs(a.as_secs())).to_string()
            ),
            h.last_error.as_deref().unwrap_or("none")
        ))
    })
}
