//! Sinks the Lambdas hand batches to: HTTP (lull-sink's signed, idempotent POST) or an SQS FIFO
//! queue (`MessageGroupId` per conversation keeps the order for Lambda consumers;
//! `MessageDeduplicationId` = batch id drops a retried hand-off inside SQS's 5-minute window).

use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use lull_core::ports::{Sink, SinkError};
use lull_core::Batch;
use lull_sink::AnySink;
use sha2::{Digest, Sha256};

use crate::accounting::Accounting;
use crate::sdk_error;

/// SQS's limit on a message body (1 MiB since August 2025; a queue created before then may
/// still be set to 256 KiB: set its MaximumMessageSize to 1048576, see docs/deploy.md).
pub const MAX_SQS_BODY: usize = 1024 * 1024;

// No batch lull can build is too large for SQS (`lull_core::batch::MAX_BATCH_BYTES`).
const _: () = assert!(lull_core::batch::MAX_BATCH_BYTES as usize <= MAX_SQS_BODY);

/// Hands batches to an SQS FIFO queue.
#[derive(Clone, Debug)]
pub struct SqsSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    acct: Accounting,
}

/// The FIFO message group of a conversation: a hash of its key (SQS allows 128 characters of a
/// limited alphabet, and the key holds phone numbers).
pub fn message_group(batch: &Batch) -> String {
    let digest = Sha256::digest(batch.conversation.storage_key().as_bytes());
    hex::encode(&digest[..20])
}

impl SqsSink {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        acct: Accounting,
    ) -> Self {
        SqsSink {
            client,
            queue_url: queue_url.into(),
            acct,
        }
    }
}

impl Sink for SqsSink {
    async fn deliver(
        &self,
        batch: &Batch,
        within: Duration,
    ) -> Result<lull_core::ports::Acknowledged, SinkError> {
        let body = String::from_utf8(batch.to_json())
            .map_err(|e| SinkError::permanent(format!("batch is not UTF-8: {e}")))?;
        if body.len() > MAX_SQS_BODY {
            return Err(SinkError::permanent(format!(
                "batch of {} bytes exceeds the SQS limit of {MAX_SQS_BODY}",
                body.len()
            )));
        }
        // The SDK's own retries could outlast the hand-off's lease: the call ends within budget.
        // A send cut off may or may not have landed; the retry carries the same deduplication
        // id (the batch id), which SQS FIFO drops within its 5-minute window.
        let send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(message_group(batch))
            .message_deduplication_id(batch.batch_id.to_string())
            .send();
        let result = match tokio::time::timeout(within, send).await {
            Ok(r) => r,
            Err(_) => {
                self.acct.record("sqs.SendMessage(sink)", 0, 0.0, 0.0);
                return Err(SinkError::retryable(format!(
                    "SQS sink: no answer within {within:?}"
                )));
            }
        };
        self.acct.record("sqs.SendMessage(sink)", 0, 0.0, 0.0);
        match result {
            Ok(_) => Ok(lull_core::ports::Acknowledged::default()),
            Err(e) => {
                let code = e.code().unwrap_or_default();
                let msg = format!("SQS sink: {}", sdk_error(&e));
                if code.starts_with("InvalidParameterValue")
                    || code == "InvalidMessageContents"
                    || code.contains("NonExistentQueue")
                {
                    Err(SinkError::permanent(msg))
                } else {
                    Err(SinkError::retryable(msg))
                }
            }
        }
    }
}

/// Where the flush, sweep and redrive programs hand batches: an HTTP(S) endpoint (or stdout /
/// JSONL, for debugging) or an SQS FIFO queue.
#[derive(Clone, Debug)]
pub enum BatchSink {
    /// HTTP(S) (or stdout / JSONL, for debugging), from lull-sink.
    Any(AnySink),
    /// An SQS FIFO queue.
    Sqs(SqsSink),
}

impl Sink for BatchSink {
    async fn deliver(
        &self,
        batch: &Batch,
        within: Duration,
    ) -> Result<lull_core::ports::Acknowledged, SinkError> {
        match self {
            BatchSink::Any(s) => s.deliver(batch, within).await,
            BatchSink::Sqs(s) => s.deliver(batch, within).await,
        }
    }
}
