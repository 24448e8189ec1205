//! The webhook Lambda: API Gateway HTTP API (payload v2) in front of the ingestion `Router`.
//! Thin: read and validate the configuration, build the clients once, serve the router. A
//! request gets its 2xx only after its messages are in DynamoDB and their trigger is armed.

use std::sync::Arc;

use lambda_http::tower::ServiceExt;
use lull_aws::{Accounting, AwsClients, LambdaSink, Role, Settings};
use lull_core::ports::SystemClock;
use lull_core::Buffer;
use lull_ingest::{IngestConfig, IngestState, Tenant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lull_aws::telemetry::init();
    let settings = Settings::from_env(Role::Webhook).inspect_err(|e| tracing::error!("{e}"))?;
    let clients = AwsClients::from_env().await;
    let acct = Accounting::new();
    // Tenants come from the store (`lull tenants apply --aws`), re-read every
    // LULL_TENANT_REFRESH. The LULL_META_APP_SECRET & co. of the template bootstrap a new stack:
    // that one tenant serves only while the store holds none.
    let bootstrap =
        Tenant::from_env(|k| std::env::var(k).ok()).inspect_err(|e| tracing::error!("{e}"))?;
    let fallback = bootstrap.has_any_secret().then_some(Tenant {
        policy: settings.policy,
        ..bootstrap
    });
    let tenants = settings.tenants(&clients, &acct, fallback);
    // Read once now: a store that cannot be read or makes no sense fails the init, loudly.
    let live = tenants
        .refresh()
        .await
        .inspect_err(|e| tracing::error!("{e}"))?;
    tracing::info!(tenants = live, "tenants loaded");
    let (store, trigger, _) = settings.build(&clients, &acct)?;
    // The webhook path never hands a batch off: appends only touch the store and the trigger.
    let sink = LambdaSink::Any(lull_sink::AnySink::Stdout(lull_sink::StdoutSink::new()));
    let buffer = Arc::new(Buffer::new(
        store,
        trigger,
        sink,
        SystemClock,
        settings.buffer,
    ));
    let state = IngestState::new(buffer, tenants, IngestConfig::default());
    let app = lull_ingest::router(state);
    lambda_http::run(lambda_http::service_fn(move |req: lambda_http::Request| {
        let app = app.clone();
        // Metrics (EMF) are written before the response: Lambda freezes the process after it.
        lull_aws::telemetry::flushed(app.oneshot(req))
    }))
    .await
}
