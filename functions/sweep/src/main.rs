//! The sweep Lambda: on a schedule (EventBridge), hands off every window past due whose trigger
//! was lost. Thin: read and validate the configuration, build the clients once, call the core.
//!
//! A binary: it may import the AWS adapter (`lull-aws`), the edges and the core; it compiles
//! neither the simulator nor the core's test fixtures.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lull_aws::{Accounting, AwsClients, Role, Settings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let metrics = lull_aws::telemetry::init()?;
    let settings = Settings::from_env(Role::Sweep).inspect_err(|e| tracing::error!("{e}"))?;
    let clients = AwsClients::from_env().await;
    let acct = Accounting::new();
    let handoff = Arc::new(settings.handoff(&clients, &acct)?);
    let limit = settings.sweep_limit;
    let settle = settings.listen_settle();
    let handler = service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let handoff = handoff.clone();
        // No hand-off lease may outlive this invocation (lull_core::timing).
        let deadline = Some(lull_core::Millis(ev.context.deadline));
        async move {
            let r = handoff
                .sweep_until(limit, lull_aws::SWEEP_CONCURRENCY, deadline)
                .await?;
            // The `on_close` calls these hand-offs started (best effort), before the freeze.
            let within =
                lull_aws::flush::settle_within(settle, deadline, lull_core::Millis::now_wall());
            handoff.sink().settle(within).await;
            tracing::info!(
                due = r.due,
                handed_off = r.handed_off,
                failed = r.failed,
                "sweep done"
            );
            Ok::<_, Error>(serde_json::json!({
                "due": r.due,
                "handed_off": r.handed_off,
                "failed": r.failed,
            }))
        }
    });
    lull_aws::telemetry::run(metrics, handler).await
}
