//! The flush Lambda's handler: one `SqsEvent` of triggers in, per-record failures out
//! (`ReportBatchItemFailures`), so SQS retries only what failed and, after `maxReceiveCount`,
//! moves it to the dead-letter queue while its batch stays pending in DynamoDB.
//!
//! What an outcome means is the core's decision ([`FlushEnd::disposition`]): `Done` deletes the
//! record; a retry or an operator's attention (a parked batch) reports it failed, so SQS
//! redelivers it and, if it keeps failing, moves it to the DLQ (whose alarm fires). A store or
//! trigger error is a failure too.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use lull_core::ports::{Clock, Sink, Trigger, TriggerMsg, WindowStore};
use lull_core::protocol::{Claim, Disposition, FlushEnd, FlushError, FlushReport, Handoff};
use lull_core::Millis;
use tracing::Instrument;

/// Why one trigger record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("trigger body is not a trigger: {0}")]
    BadBody(String),
    #[error(transparent)]
    Flush(#[from] FlushError),
    #[error("not done: {0:?}")]
    NotDone(FlushEnd),
}

/// Parses a trigger body.
pub fn parse_trigger(body: Option<&str>) -> Result<TriggerMsg, RecordError> {
    let body = body.ok_or_else(|| RecordError::BadBody("empty body".into()))?;
    serde_json::from_str(body).map_err(|e| RecordError::BadBody(e.to_string()))
}

/// Flushes the conversation one trigger record names.
pub async fn handle_record<S, T, K, C>(
    handoff: &Handoff<S, T, K, C>,
    record: &SqsMessage,
    log_secret: &[u8],
    deadline: Option<Millis>,
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
        let claim = Claim::Trigger { chain: trig.chain };
        let report = handoff.flush_until(&trig.key, claim, deadline).await?;
        for h in &report.handed_off {
            tracing::info!(
                gen = h.gen,
                batch_id = %h.batch_id,
                messages = h.messages,
                reason = h.reason.as_str(),
                "handed off"
            );
        }
        match report.end.disposition() {
            Disposition::Done => Ok(report),
            // Retried by SQS after its visibility timeout; a sink that keeps failing (or a
            // parked batch) puts the trigger in the DLQ, whose alarm fires.
            Disposition::RetryAt(_) | Disposition::Operator => {
                Err(RecordError::NotDone(report.end))
            }
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
    handoff: &Handoff<S, T, K, C>,
    event: SqsEvent,
    log_secret: &[u8],
    deadline: Option<Millis>,
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
            .map(|r| async move { (r, handle_record(handoff, r, log_secret, deadline).await) }),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in results {
        if let Err(e) = result {
            match &e {
                RecordError::NotDone(FlushEnd::Parked { error }) => tracing::error!(
                    error = error.as_deref().unwrap_or(""),
                    "the sink refused a batch: parked (pending, not lost) until `lull redrive --aws`"
                ),
                RecordError::NotDone(_) => {
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

/// What a handler keeps between the end of its wait for `on_close` calls and its deadline, so
/// the wait can never turn a finished invocation into a timed-out one (which SQS would retry).
pub const SETTLE_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long to wait for `on_close` calls: `settle`, cut to leave [`SETTLE_MARGIN`] before
/// `deadline`.
pub fn settle_within(
    settle: std::time::Duration,
    deadline: Option<Millis>,
    now: Millis,
) -> std::time::Duration {
    match deadline {
        Some(d) => {
            let left = std::time::Duration::from_millis(d.0.saturating_sub(now.0));
            settle.min(left.saturating_sub(SETTLE_MARGIN))
        }
        None => settle,
    }
}

/// One flush Lambda invocation: [`handle_sqs_event`], then, the hand-offs recorded, up to
/// `settle` for the `on_close` calls (read receipt, typing indicator) they started, which a
/// frozen Lambda would otherwise cut off. The response is decided before the wait: a slow
/// messaging API never changes what SQS retries.
pub async fn handle_invocation<S, T, K, C>(
    handoff: &Handoff<S, T, lull_sink::Listening<K>, C>,
    event: SqsEvent,
    log_secret: &[u8],
    deadline: Option<Millis>,
    settle: std::time::Duration,
) -> SqsBatchResponse
where
    S: WindowStore,
    T: Trigger,
    K: Sink,
    C: Clock,
{
    let response = handle_sqs_event(handoff, event, log_secret, deadline).await;
    handoff
        .sink()
        .settle(settle_within(settle, deadline, Millis::now_wall()))
        .await;
    response
}

#[cfg(test)]
mod settle_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wait_for_on_close_calls_never_reaches_the_deadline() {
        let five = Duration::from_secs(5);
        assert_eq!(settle_within(five, None, Millis(0)), five);
        assert_eq!(settle_within(five, Some(Millis(60_000)), Millis(0)), five);
        assert_eq!(
            settle_within(five, Some(Millis(3_000)), Millis(0)),
            Duration::from_secs(2)
        );
        assert_eq!(
            settle_within(five, Some(Millis(500)), Millis(0)),
            Duration::ZERO
        );
    }
}
