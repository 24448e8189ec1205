//! What the router is built from: where messages go, who the tenants are, and the limits.

use std::sync::Arc;

use crate::appender::Appender;
use crate::tenant::TenantDirectory;

/// Limits and switches of the webhook routes.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Largest accepted body (default 4 MiB); larger: 413.
    pub body_limit: usize,
    /// Most messages accepted in one request (default 1,000); more: 413 and nothing stored.
    pub max_messages_per_request: usize,
    /// Accept unsigned requests for gateways whose tenant has no secret configured. Only the
    /// local server sets it, only when bound to loopback with no secret configured at all (and
    /// it warns at start-up); the Lambda never does.
    pub allow_unsigned_on_loopback: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            body_limit: 4 * 1024 * 1024,
            max_messages_per_request: 1000,
            allow_unsigned_on_loopback: false,
        }
    }
}

/// The router's state: cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    pub appender: Arc<dyn Appender>,
    pub tenants: Arc<dyn TenantDirectory>,
    pub config: Arc<IngestConfig>,
}

impl IngestState {
    pub fn new(
        appender: Arc<dyn Appender>,
        tenants: Arc<dyn TenantDirectory>,
        config: IngestConfig,
    ) -> Self {
        IngestState {
            appender,
            tenants,
            config: Arc::new(config),
        }
    }
}
