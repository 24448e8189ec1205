//! The sweep Lambda: on a schedule (EventBridge), hands off every window past due whose trigger
//! was lost. Thin: read and validate the configuration, build the clients once, call the core.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lull_aws::{Accounting, AwsClients, Role, Settings};
use lull_core::ports::SystemClock;
use lull_core::Buffer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lull_aws::telemetry::init();
    let settings = Settings::from_env(Role::Sweep).inspect_err(|e| tracing::error!("{e}"))?;
    let clients = AwsClients::from_env().await;
    let acct = Accounting::new();
    let (store, trigger, sink) = settings.build(&clients, &acct)?;
    let sink = sink.ok_or("LULL_SINK is required but not set")?;
    let buffer = Arc::new(Buffer::new(
        store,
        trigger,
        sink,
        SystemClock,
        settings.buffer,
    ));
    let limit = settings.sweep_limit;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let buffer = buffer.clone();
        lull_aws::telemetry::flushed(async move {
            let r = buffer.sweep(limit).await?;
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
        })
    }))
    .await
}
