//! The webhook Lambda's Router over a test harness (its own file: the benchmarks include
//! `common` without the ingestion crate).

/// The webhook Lambda's Router over `h`, its one tenant the bootstrap tenant `Tenant::from_env`
/// builds from the variables `env` gives (as the template sets them), with `h`'s policy.
pub fn router(h: &crate::common::Harness, env: impl Fn(&str) -> Option<String>) -> axum::Router {
    let mut tenant = lull_ingest::Tenant::from_env(env).expect("tenant");
    tenant.policy = h.policy;
    let state = lull_ingest::IngestState::new(
        h.webhook.clone(),
        std::sync::Arc::new(lull_ingest::MemoryDirectory::single(tenant)),
        lull_ingest::IngestConfig::default(),
    );
    lull_ingest::router(state)
}
