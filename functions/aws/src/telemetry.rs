//! Logs and metrics for the Lambdas.
//!
//! - **Logs**: one flat JSON object per line on stdout (CloudWatch Logs), in the shape AWS Lambda
//!   Powertools users query (`level`, `message`, `service`, `cold_start`, `function_request_id`,
//!   and the keyed hash `conversation`, never a phone number or message text): see
//!   [`log_format`]. Level from `RUST_LOG` (default `info`).
//! - **Metrics**: the core's `metrics` facade names (`lull_core::metrics`) as CloudWatch Embedded
//!   Metric Format lines on stdout, in the namespace `LULL_METRICS_NAMESPACE` (default `lull`);
//!   CloudWatch extracts them from the log group, so no `PutMetricData` permission or call is
//!   needed. Labels become dimensions.
//!
//! Lambda freezes the process after the response, so metrics must be written before it:
//! [`run`] and [`run_http`] are `metrics_cloudwatch_embedded`'s Lambda integration, which wraps
//! the handler in the runtime's tracing layer (the invocation span with the request id) and a
//! layer that flushes the metrics after every invocation. Its auto-flush also writes them every
//! second while an invocation runs, so a long sweep never holds more than the 100 histogram
//! values EMF allows per line. Both write straight to stdout; the mains run a current-thread
//! runtime, so a metrics line and a log line are never written at the same time.

pub mod log_format;

use std::time::Duration;

use metrics_cloudwatch_embedded::{Builder, Collector};
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use log_format::{ColdStart, PowertoolsFormat};
/// Runs a `LambdaEvent` service (flush, sweep) with the invocation span and the metrics flush.
pub use metrics_cloudwatch_embedded::lambda::service::run;
/// Runs an HTTP service (the webhook's `Router`) with the invocation span and the metrics flush.
pub use metrics_cloudwatch_embedded::lambda::service::run_http;

/// The variable naming the CloudWatch namespace of the metrics.
pub const METRICS_NAMESPACE_ENV: &str = "LULL_METRICS_NAMESPACE";
/// The namespace when [`METRICS_NAMESPACE_ENV`] is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "lull";
/// Powertools' variable naming the service in every log line.
pub const SERVICE_ENV: &str = "POWERTOOLS_SERVICE_NAME";
/// The service name when [`SERVICE_ENV`] is unset.
pub const DEFAULT_SERVICE: &str = "lull";
/// Every environment variable this module reads (besides `RUST_LOG` and Lambda's own
/// `AWS_LAMBDA_FUNCTION_NAME`).
pub const ENV: &[&str] = &[METRICS_NAMESPACE_ENV, SERVICE_ENV];

/// How often metrics are also written while an invocation runs.
const PERIODIC_FLUSH: Duration = Duration::from_secs(1);

/// The EMF property carrying the invocation's request id (the log lines' key, so the two join).
const REQUEST_ID_PROPERTY: &str = "function_request_id";

/// Installs the log subscriber and the EMF metrics recorder with its periodic flush. Call once,
/// inside the tokio runtime (the periodic flush is a task); pass the collector to [`run`] or
/// [`run_http`].
pub fn init() -> Result<&'static Collector, lambda_runtime::Error> {
    init_logs();
    let namespace = non_empty_env(METRICS_NAMESPACE_ENV)
        .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_string());
    metrics(&namespace)
        .with_auto_flush_interval(PERIODIC_FLUSH)
        .init()
        .inspect_err(|e| tracing::error!(error = %e, "metrics recorder not installed"))
}

/// The EMF recorder's configuration in `namespace` (`init()` installs it as the global
/// `metrics` recorder).
pub fn metrics(namespace: &str) -> Builder {
    Builder::new()
        .cloudwatch_namespace(namespace.to_string())
        .with_lambda_request_id(REQUEST_ID_PROPERTY)
}

/// Installs the Powertools-shaped JSON log subscriber; a second call does nothing.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let service = non_empty_env(SERVICE_ENV).unwrap_or_else(|| DEFAULT_SERVICE.to_string());
    let format = PowertoolsFormat::new(service, non_empty_env("AWS_LAMBDA_FUNCTION_NAME"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(ColdStart::default())
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(format),
        )
        .try_init();
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}
