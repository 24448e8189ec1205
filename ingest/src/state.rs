//! What the router is built from: where messages go, who the tenants are, and the limits.

use std::sync::Arc;

use crate::appender::Appender;
use crate::lids::LidMap;
use crate::recent_deliveries::RecentDeliveries;
use crate::tenant::TenantDirectory;

/// Limits and switches of the webhook routes.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Largest accepted body (default 4 MiB); larger: 413.
    pub body_limit: usize,
    /// Most messages accepted in one request (default 1,000); more: 413 and nothing stored.
    pub max_messages_per_request: usize,
    /// Accept unsigned requests for gateways whose tenant has no secret configured. Only the
    /// local server sets it, only when asked to (`--allow-unsigned` / `LULL_ALLOW_UNSIGNED`),
    /// only on a loopback listen address, and it warns at start-up; the Lambda never does.
    pub allow_unsigned: bool,
    /// Trust `X-Forwarded-Proto` / `X-Forwarded-Host` when rebuilding the URL Twilio signed.
    /// Only behind a proxy that sets (or strips) them: otherwise any client could choose the URL
    /// lull checks the signature against.
    pub trust_forwarded: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            body_limit: 4 * 1024 * 1024,
            max_messages_per_request: 1000,
            allow_unsigned: false,
            trust_forwarded: false,
        }
    }
}

/// The router's state: cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    pub appender: Arc<dyn Appender>,
    pub tenants: Arc<dyn TenantDirectory>,
    pub config: Arc<IngestConfig>,
    /// LIDs learned from messages, for presence events that name only the LID.
    pub lids: Arc<LidMap>,
    /// Chatwoot deliveries this process answered, to refuse a replay at once.
    pub deliveries: Arc<RecentDeliveries>,
    /// The deployment's reply guard key: `GET /guard/{token}` answers 404 without it.
    pub guard: Option<lull_sink::GuardKey>,
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
            lids: Arc::new(LidMap::default()),
            deliveries: Arc::new(RecentDeliveries::default()),
            guard: None,
        }
    }

    /// The state answering reply guards sealed under `key`.
    pub fn with_guard(mut self, key: lull_sink::GuardKey) -> Self {
        self.guard = Some(key);
        self
    }
}
