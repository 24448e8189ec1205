//! The webhook Lambda: API Gateway HTTP API (payload v2) in front of the ingestion `Router`.
//! Thin: read and validate the configuration, build the clients once, serve the router. A
//! request gets its 2xx only after its messages are in DynamoDB and their trigger is armed.

use std::sync::Arc;

use lull_aws::{Accounting, AwsClients, Role, Settings};
use lull_ingest::{IngestConfig, IngestState, MemoryDirectory, Tenant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let metrics = lull_aws::telemetry::init()?;
    let settings = Settings::from_env(Role::Webhook).inspect_err(|e| tracing::error!("{e}"))?;
    let mut tenant =
        Tenant::from_env(|k| std::env::var(k).ok()).inspect_err(|e| tracing::error!("{e}"))?;
    if !tenant.has_any_secret() {
        let msg = "no gateway secret is set: set at least one of LULL_META_APP_SECRET, \
                   LULL_EVOLUTION_TOKEN, LULL_EVOLUTION_JWT_KEY, LULL_TWILIO_AUTH_TOKEN, \
                   LULL_GENERIC_SECRET";
        tracing::error!("{msg}");
        return Err(msg.into());
    }
    tenant.policy = settings.policy;
    let clients = AwsClients::from_env().await;
    let acct = Accounting::new();
    let intake = Arc::new(settings.intake(&clients, &acct)?);
    let state = IngestState::new(
        intake,
        Arc::new(MemoryDirectory::single(tenant)),
        IngestConfig::default(),
    );
    let app = lull_ingest::router(state);
    // Metrics (EMF) are written after each request, before the runtime asks for the next one
    // (Lambda freezes the process only then).
    lull_aws::telemetry::run_http(metrics, app).await
}
