//! Line-oriented sinks: stdout (the local default) and a JSONL file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lull_core::ports::{Acknowledged, Sink, SinkError};
use lull_core::Batch;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// One batch JSON per line on standard output. Acknowledged once the line is flushed.
#[derive(Clone, Debug, Default)]
pub struct StdoutSink {
    // Serialises writers so lines never interleave.
    lock: Arc<Mutex<()>>,
}

impl StdoutSink {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for StdoutSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let mut line = batch.to_json();
        line.push(b'\n');
        // A full pipe blocks the write: the call still ends within its budget.
        within_budget("stdout", within, async {
            let _guard = self.lock.lock().await;
            let mut out = tokio::io::stdout();
            out.write_all(&line).await?;
            out.flush().await
        })
        .await
    }
}

/// Runs one write under the hand-off's budget; a write still blocked then is a retryable failure.
async fn within_budget(
    what: &str,
    within: Duration,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<Acknowledged, SinkError> {
    match tokio::time::timeout(within, write).await {
        Ok(Ok(())) => Ok(Acknowledged::default()),
        Ok(Err(e)) => Err(SinkError::retryable(format!("{what}: {e}"))),
        Err(_) => Err(SinkError::retryable(format!(
            "{what}: not written within {within:?}"
        ))),
    }
}

/// Appends one batch JSON per line to a file, fsynced before acknowledging. A retried hand-off
/// may append the same batch again: readers dedupe on `batch_id`.
#[derive(Clone, Debug)]
pub struct JsonlSink {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl JsonlSink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonlSink {
            path: path.into(),
            lock: Arc::new(Mutex::new(())),
        }
    }
}

impl Sink for JsonlSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let mut line = batch.to_json();
        line.push(b'\n');
        let what = self.path.display().to_string();
        within_budget(&what, within, async {
            let _guard = self.lock.lock().await;
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await?;
            f.write_all(&line).await?;
            f.sync_data().await
        })
        .await
    }
}
