//! Logs and metrics for the Lambdas.
//!
//! - **Logs**: JSON lines to stdout (CloudWatch Logs), level from `RUST_LOG` (default `info`).
//!   Each line lists its spans: the runtime's `Lambda runtime invoke` span carries the Lambda
//!   `requestId`; the flush span carries `conversation`, `ConversationKey::log_hash` keyed with
//!   `LULL_LOG_SECRET`, never a phone number or message text.
//! - **Metrics**: the core's `metrics` facade names (`lull_core::metrics`) as CloudWatch Embedded
//!   Metric Format lines on stdout, in the namespace `LULL_METRICS_NAMESPACE` (default `lull`);
//!   CloudWatch extracts them from the log group, so no `PutMetricData` permission or call is
//!   needed. Labels become dimensions. Call [`flush_metrics`] (or wrap the handler in
//!   [`flushed`]) before an invocation returns: Lambda freezes the process after the response.

use std::future::Future;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

/// The variable naming the CloudWatch namespace of the metrics.
pub const METRICS_NAMESPACE_ENV: &str = "LULL_METRICS_NAMESPACE";
/// The namespace when [`METRICS_NAMESPACE_ENV`] is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "lull";
/// Every environment variable this module reads (besides `RUST_LOG`).
pub const ENV: &[&str] = &[METRICS_NAMESPACE_ENV];

/// How often metrics are also written while an invocation runs, so a long sweep never holds more
/// than the 100 histogram values EMF allows per line (more would be dropped).
const PERIODIC_FLUSH: Duration = Duration::from_secs(1);

static COLLECTOR: OnceLock<&'static metrics_cloudwatch_embedded::Collector> = OnceLock::new();

/// Installs the JSON log subscriber and the EMF metrics recorder, once; later calls do nothing.
/// Inside a tokio runtime it also starts the periodic metrics flush.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .without_time()
        .try_init();
    let namespace = std::env::var(METRICS_NAMESPACE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_string());
    if init_metrics(&namespace) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async {
                let mut tick = tokio::time::interval(PERIODIC_FLUSH);
                // A frozen Lambda does not catch up on missed ticks.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    flush_metrics();
                }
            });
        }
    }
}

/// Installs the EMF recorder as the global `metrics` recorder in `namespace`. False when a
/// recorder was already installed (by an earlier call or anything else).
pub fn init_metrics(namespace: &str) -> bool {
    if COLLECTOR.get().is_some() {
        return false;
    }
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_string())
        .init()
    {
        Ok(collector) => COLLECTOR.set(collector).is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            false
        }
    }
}

/// Writes the metrics recorded since the last flush as EMF lines (one per label set) to `out`.
pub fn flush_metrics_to(out: &mut impl Write) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(c) => c.flush(out),
        None => Ok(()),
    }
}

/// Writes the metrics recorded since the last flush to stdout, in one write so the lines never
/// interleave with log lines.
pub fn flush_metrics() {
    let mut buf = Vec::new();
    if let Err(e) = flush_metrics_to(&mut buf) {
        tracing::warn!(error = %e, "metrics flush failed");
        return;
    }
    if !buf.is_empty() {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&buf);
        let _ = stdout.flush();
    }
}

/// Runs `fut` (one invocation), then flushes the metrics it recorded.
pub async fn flushed<F: Future>(fut: F) -> F::Output {
    let out = fut.await;
    flush_metrics();
    out
}
