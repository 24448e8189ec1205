//! Redrive: replays the triggers parked in the dead-letter queue.
//!
//! A trigger lands in the DLQ after `maxReceiveCount` failed flushes (usually a sink that kept
//! failing); its batch stayed pending in DynamoDB and later batches of that conversation waited
//! behind it. Redrive reads each DLQ trigger, flushes its conversation (as the sweep does: the
//! pending batches go out oldest first, each with its original batch id, and the trigger chain is
//! re-armed for what is still open), and deletes the trigger once its conversation has nothing
//! pending or a live flush covers it. Triggers whose flush failed stay in the DLQ (made visible
//! again at the end) for the next run.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use lull_core::ports::{Clock, Sink, Trigger, TriggerMsg, WindowStore};
use lull_core::protocol::Handoff;
use lull_core::ConversationKey;

use crate::accounting::Accounting;
use crate::sdk_error;

/// What one redrive run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Triggers read from the DLQ.
    pub triggers: usize,
    /// Distinct conversations they named.
    pub conversations: usize,
    /// Batches handed off and acknowledged.
    pub handed_off: usize,
    /// Conversations whose flush failed again (their triggers stay in the DLQ).
    pub failed: usize,
    /// DLQ messages that are not triggers (left in the DLQ).
    pub unreadable: usize,
}

/// Redrive could not read or clean the DLQ.
#[derive(Debug, thiserror::Error)]
#[error("redrive: SQS {op}: {detail}")]
pub struct RedriveError {
    pub op: &'static str,
    pub detail: String,
}

/// Options of a run.
#[derive(Clone, Copy, Debug)]
pub struct RedriveOptions {
    /// Stop after reading this many DLQ messages.
    pub max_messages: usize,
    /// How long read messages stay invisible while the run works on them.
    pub visibility_timeout_secs: i32,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        RedriveOptions {
            max_messages: 10_000,
            visibility_timeout_secs: 300,
        }
    }
}

struct Parked {
    receipt: String,
}

/// Replays every trigger in `dlq_url` through `handoff` (lifting backoffs and parks).
pub async fn redrive<S, T, K, C>(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    handoff: &Handoff<S, T, K, C>,
    acct: &Accounting,
    opts: RedriveOptions,
) -> Result<RedriveReport, RedriveError>
where
    S: WindowStore,
    T: Trigger,
    K: Sink,
    C: Clock,
{
    let mut report = RedriveReport::default();
    // Conversation -> its DLQ messages, in the order read (one flush serves them all).
    let mut by_key: BTreeMap<ConversationKey, Vec<Parked>> = BTreeMap::new();
    let mut keep: Vec<String> = Vec::new();
    let mut read = 0usize;
    while read < opts.max_messages {
        let out = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(opts.visibility_timeout_secs)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| RedriveError {
                op: "ReceiveMessage",
                detail: sdk_error(&e),
            })?;
        acct.record("sqs.ReceiveMessage(dlq)", 0, 0.0, 0.0);
        let msgs = out.messages();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            read += 1;
            let Some(receipt) = m.receipt_handle() else {
                continue;
            };
            match m
                .body()
                .and_then(|b| serde_json::from_str::<TriggerMsg>(b).ok())
            {
                Some(t) => {
                    report.triggers += 1;
                    by_key.entry(t.key).or_default().push(Parked {
                        receipt: receipt.to_string(),
                    });
                }
                None => {
                    report.unreadable += 1;
                    keep.push(receipt.to_string());
                }
            }
        }
    }
    report.conversations = by_key.len();

    let mut done: Vec<String> = Vec::new();
    for (key, parked) in by_key {
        // When a redrive is done is the core's rule (`Handoff::redrive`): a yield goes on.
        let r = handoff.redrive(&key).await;
        report.handed_off += r.handed_off.len();
        if let Some(why) = r.failure() {
            tracing::warn!(error = %why, "redrive: the conversation still fails; its trigger stays");
            report.failed += 1;
            keep.extend(parked.into_iter().map(|p| p.receipt));
        } else {
            done.extend(parked.into_iter().map(|p| p.receipt));
        }
    }

    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .map_err(|e| RedriveError {
                        op: "DeleteMessageBatch",
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.delete_message_batch()
            .queue_url(dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| RedriveError {
                op: "DeleteMessageBatch",
                detail: sdk_error(&e),
            })?;
        acct.record("sqs.DeleteMessageBatch(dlq)", 0, 0.0, 0.0);
    }
    // What failed becomes visible again at once, for the next run.
    for r in keep {
        sqs.change_message_visibility()
            .queue_url(dlq_url)
            .receipt_handle(r)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| RedriveError {
                op: "ChangeMessageVisibility",
                detail: sdk_error(&e),
            })?;
        acct.record("sqs.ChangeMessageVisibility(dlq)", 0, 0.0, 0.0);
    }
    Ok(report)
}
