//! The webhook Lambda: API Gateway HTTP API (payload v2) in front of the ingestion `Router`.
//! Thin: read and validate the configuration, build the clients once, serve the router. A
//! request gets its 2xx only after its messages are in DynamoDB and their trigger is armed.
//!
//! A binary: it may import the AWS adapter (`lull-aws`), the edges and the core; it compiles
//! neither the simulator nor the core's test fixtures.

use std::sync::Arc;

use lull_aws::{Accounting, AwsClients, Role, Settings};
use lull_ingest::{IngestConfig, IngestState, Tenant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let metrics = lull_aws::telemetry::init()?;
    let settings = Settings::from_env(Role::Webhook).inspect_err(|e| tracing::error!("{e}"))?;
    let clients = AwsClients::from_env().await;
    let acct = Accounting::new();
    // Tenants come from the store (`lull tenants apply --aws`), read at the first request (never
    // before the first poll: a cold start pays no store read, and a store that cannot be read
    // fails requests, not the init) and re-read every LULL_TENANT_REFRESH. The
    // LULL_META_APP_SECRET & co. of the template bootstrap a new stack: that one tenant serves
    // while the store holds none, and until the store could be read once.
    let bootstrap =
        Tenant::from_env(|k| std::env::var(k).ok()).inspect_err(|e| tracing::error!("{e}"))?;
    let fallback = bootstrap.has_any_secret().then_some(Tenant {
        policy: settings.policy,
        ..bootstrap
    });
    let tenants = settings.tenants(&clients, &acct, fallback);
    // The webhook path never hands a batch off: appends only touch the store and the trigger.
    let intake = Arc::new(settings.intake(&clients, &acct)?);
    let mut state = IngestState::new(intake, tenants, IngestConfig::default());
    if let Some(key) = settings.guard_key() {
        // GET /guard/{token}: the reply guards the flush function sealed.
        state = state.with_guard(key);
    }
    let app = lull_ingest::router(state);
    // Metrics (EMF) are written after each request, before the runtime asks for the next one
    // (Lambda freezes the process only then).
    lull_aws::telemetry::run_http(metrics, app).await
}
