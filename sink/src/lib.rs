//! # lull-sink
//!
//! lull's sinks: where batches go once a window closes.
//!
//! - [`HttpSink`]: POSTs the batch JSON to the AI step, signed (Standard Webhooks) and
//!   idempotent; [`answer`] says what each HTTP answer means.
//! - [`StdoutSink`]: one batch JSON per line on standard output (the local default).
//! - [`JsonlSink`]: appends one batch JSON per line to a file.
//! - [`AnySink`]: one of the above, chosen from a `--sink` string.
//! - [`Listening`]: around any sink, shows the user the bot is listening when a window closes
//!   (read receipt, typing indicator), best effort and never in the hand-off's way.
//! - [`Receipt`]: what one delivery's answer said (status, time, the sink's verification echo),
//!   for `lull check --send-test-batch`.
//!
//! "Acknowledged" means the sink accepted the batch (HTTP 2xx, a line written and flushed); it
//! does not wait for the AI to answer.
//!
//! Role and imports: an edge. It imports the core alone (`lull-core`: the `Sink` port and the
//! batch); the tenants crate (`lull-tenants`, which routes a tenant's batches to its own endpoint),
//! the adapters and the binaries import it.

pub mod answer;
mod file;
pub mod guard;
mod http;
mod listening;
mod receipt;
pub mod signature;
pub mod standard_webhooks;

pub use file::{JsonlSink, StdoutSink};
pub use guard::{GuardKey, GuardUrls};
pub use http::{HttpSink, HttpTarget, DIAGNOSTIC_BYTES};
pub use listening::{ListenFuture, ListenNow, ListenRoutes, Listening, DEFAULT_LISTEN_TIMEOUT};
pub use receipt::{Receipt, Verified};
pub use signature::{sign, verify, SignatureError};

use lull_core::ports::{Sink, SinkError};
use lull_core::Batch;

/// A sink chosen at start-up from a string: `stdout`, `jsonl:PATH` or an `http(s)://` URL.
#[derive(Clone, Debug)]
pub enum AnySink {
    Stdout(StdoutSink),
    Jsonl(JsonlSink),
    Http(HttpSink),
}

/// A `--sink` value lull does not understand.
#[derive(Debug, thiserror::Error)]
pub enum SinkSpecError {
    #[error("sink {0:?} is not one of: stdout, jsonl:PATH, http://..., https://...")]
    Unknown(String),
    #[error("sink {spec:?}: {reason}")]
    Invalid { spec: String, reason: String },
}

impl AnySink {
    /// Parses a sink spec; `secrets` sign HTTP hand-offs (every one signs) and `timeout` bounds
    /// each HTTP call (the configured sink timeout; see `lull_core`'s timing rule).
    pub fn parse(
        spec: &str,
        secrets: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<AnySink, SinkSpecError> {
        if spec == "stdout" {
            return Ok(AnySink::Stdout(StdoutSink::new()));
        }
        if let Some(path) = spec.strip_prefix("jsonl:") {
            if path.is_empty() {
                return Err(SinkSpecError::Invalid {
                    spec: spec.into(),
                    reason: "jsonl needs a file path, e.g. jsonl:./batches.jsonl".into(),
                });
            }
            return Ok(AnySink::Jsonl(JsonlSink::new(path)));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let target =
                HttpTarget::new(spec, secrets).map_err(|reason| SinkSpecError::Invalid {
                    spec: spec.into(),
                    reason,
                })?;
            return HttpSink::new(target, timeout)
                .map(AnySink::Http)
                .map_err(|e| SinkSpecError::Invalid {
                    spec: spec.into(),
                    reason: e.to_string(),
                });
        }
        Err(SinkSpecError::Unknown(spec.into()))
    }
}

impl AnySink {
    /// Delivers `batch` like a hand-off and returns what the answer said: an HTTP sink's status,
    /// time and verification echo; for stdout and JSONL, the outcome and time (signatures do not
    /// apply).
    pub async fn deliver_with_receipt(
        &self,
        batch: &Batch,
        within: std::time::Duration,
    ) -> Receipt {
        match self {
            AnySink::Http(s) => s.deliver_with_receipt(batch, within).await,
            AnySink::Stdout(_) | AnySink::Jsonl(_) => {
                Receipt::of_unsigned(self.deliver(batch, within)).await
            }
        }
    }
}

impl Sink for AnySink {
    async fn deliver(
        &self,
        batch: &Batch,
        within: std::time::Duration,
    ) -> Result<lull_core::ports::Acknowledged, SinkError> {
        match self {
            AnySink::Stdout(s) => s.deliver(batch, within).await,
            AnySink::Jsonl(s) => s.deliver(batch, within).await,
            AnySink::Http(s) => s.deliver(batch, within).await,
        }
    }
}
