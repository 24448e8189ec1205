//! Logging for the Lambdas: JSON lines to stdout (CloudWatch), level from `RUST_LOG` (default
//! `info`). Spans carry `ConversationKey::log_hash`, never a phone number or message text.

/// Installs the JSON subscriber once; later calls do nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .without_time()
        .try_init();
}
