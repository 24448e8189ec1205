//! The flush Lambda: SQS trigger events in, `SqsBatchResponse` with per-record failures out.
//! Thin: read and validate the configuration, build the clients once, call the core.
//!
//! A binary: it may import the AWS adapter (`lull-aws`), the edges and the core; it compiles
//! neither the simulator nor the core's test fixtures.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use lull_aws::{flush::handle_invocation, Accounting, AwsClients, Role, Settings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let metrics = lull_aws::telemetry::init()?;
    let settings = Settings::from_env(Role::Flush).inspect_err(|e| tracing::error!("{e}"))?;
    let clients = AwsClients::from_env().await;
    let acct = Accounting::new();
    let handoff = Arc::new(settings.handoff(&clients, &acct)?);
    let secret: Arc<[u8]> = settings.log_secret.as_bytes().into();
    let settle = settings.listen_settle();
    let handler = service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let handoff = handoff.clone();
        let secret = secret.clone();
        // No hand-off lease may outlive this invocation (lull_core::timing).
        let deadline = Some(lull_core::Millis(ev.context.deadline));
        async move {
            // The hand-offs, then (bounded) the `on_close` calls they started, before the
            // Lambda freezes.
            let resp: SqsBatchResponse =
                handle_invocation(&handoff, ev.payload, &secret, deadline, settle).await;
            Ok::<_, Error>(resp)
        }
    });
    lull_aws::telemetry::run(metrics, handler).await
}
