//! Line-oriented sinks: stdout (the local default) and a JSONL file.

use std::path::PathBuf;
use std::sync::Arc;

use lull_core::ports::{Sink, SinkError};
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
    async fn deliver(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut line = batch.to_json();
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let mut out = tokio::io::stdout();
        out.write_all(&line)
            .await
            .map_err(|e| SinkError::retryable(format!("stdout: {e}")))?;
        out.flush()
            .await
            .map_err(|e| SinkError::retryable(format!("stdout: {e}")))
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
    async fn deliver(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut line = batch.to_json();
        line.push(b'\n');
        let err = |e: std::io::Error| SinkError::retryable(format!("{}: {e}", self.path.display()));
        let _guard = self.lock.lock().await;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(err)?;
        f.write_all(&line).await.map_err(err)?;
        f.sync_data().await.map_err(err)
    }
}
