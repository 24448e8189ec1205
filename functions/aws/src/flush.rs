//! The flush Lambda's handler: one `SqsEvent` of triggers in, per-record failures out
//! (`ReportBatchItemFailures`), so SQS retries only what failed and, after `maxReceiveCount`,
//! moves it to the dead-letter queue while its batch stays pending in DynamoDB.
//!
//! Stale, covered, idle, re-armed and waiting flushes are successes (the record is deleted);
//! a sink failure or a store/trigger error is a failure (SQS redelivers the trigger).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use lull_core::ports::{Clock, Sink, Trigger, TriggerMsg, WindowStore};
use lull_core::protocol::{FlushEnd, FlushError, FlushMode, FlushReport};
use lull_core::Buffer;
use tracing::Instrument;

/// Why one trigger record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("trigger body is not a trigger: {0}")]
    BadBody(String),
    #[error(transparent)]
    Flush(#[from] FlushError),
    #[error("sink did not acknowledge: {0}")]
    Sink(lull_core::ports::SinkError),
    #[error("the oldest batch failed recently and is held until {0}")]
    BackingOff(lull_core::Millis),
}

/// Parses a trigger body.
pub fn parse_trigger(body: Option<&str>) -> Result<TriggerMsg, RecordError> {
    let body = body.ok_or_else(|| RecordError::BadBody("empty body".into()))?;
    serde_json::from_str(body).map_err(|e| RecordError::BadBody(e.to_string()))
}

/// Flushes the conversation one trigger record names.
pub async fn handle_record<S, T, K, C>(
    buffer: &Buffer<S, T, K, C>,
    record: &SqsMessage,
    log_secret: &[u8],
) -> Result<FlushReport, RecordError>
where
    S: WindowStore,
    T: Trigger,
    K: Sink,
    C: Clock,
{
    let trig = parse_trigger(record.body.as_deref())?;
    let span = tracing::info_span!(
        "flush",
        conversation = %trig.key.log_hash(log_secret),
        gen = trig.gen,
        receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str)
            .unwrap_or("?"),
    );
    async {
        let report = buffer.flush(&trig, FlushMode::Trigger).await?;
        for h in &report.handed_off {
            tracing::info!(
                gen = h.gen,
                batch_id = %h.batch_id,
                messages = h.messages,
                reason = h.reason.as_str(),
                "handed off"
            );
        }
        match report.end {
            FlushEnd::SinkFailed(e) => Err(RecordError::Sink(e)),
            // The batch failed recently and is held: let SQS retry this trigger after its
            // visibility timeout, so a sink that keeps failing still parks it in the DLQ.
            FlushEnd::BackingOff { until } => Err(RecordError::BackingOff(until)),
            _ => Ok(report),
        }
    }
    .instrument(span)
    .await
}

// The struct is `#[non_exhaustive]`: built from its default, field by field.
fn failure(item_identifier: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = item_identifier;
    f
}

/// Handles one SQS event: every record concurrently; failures reported by message id.
pub async fn handle_sqs_event<S, T, K, C>(
    buffer: &Buffer<S, T, K, C>,
    event: SqsEvent,
    log_secret: &[u8],
) -> SqsBatchResponse
where
    S: WindowStore,
    T: Trigger,
    K: Sink,
    C: Clock,
{
    let results = join_all(
        event
            .records
            .iter()
            .map(|r| async move { (r, handle_record(buffer, r, log_secret).await) }),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in results {
        if let Err(e) = result {
            match &e {
                RecordError::Sink(_) | RecordError::BackingOff(_) => {
                    tracing::warn!(error = %e, "flush failed; SQS will retry")
                }
                _ => tracing::error!(error = %e, "flush failed; SQS will retry"),
            }
            // Without an id the record cannot be named: an empty identifier makes Lambda fail
            // the whole batch, and SQS retries all of it, which the protocol tolerates.
            let id = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure(id));
        }
    }
    response
}
