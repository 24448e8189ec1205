//! Why a webhook request was refused, and the HTTP answer for each reason.
//!
//! Every refusal is a typed variant with a short, fixed reason in the body (never the message
//! text or a phone number), a status code the gateway understands, and a metric label: bad input
//! gets a clear 4xx and stores nothing; a store or trigger failure gets a 503 so the gateway
//! retries (the retry is a duplicate that re-arms the trigger). A 503's body is a fixed reason:
//! its cause (a store or SDK error chain, which names tables, queues and endpoints) goes to the
//! log, never to a caller who may not even be authenticated yet.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lull_core::metrics as m;
use lull_core::protocol::AppendError;
use lull_core::window::AppendRefused;

/// The whole body of every 503: the cause stays in the log.
pub const UNAVAILABLE: &str = "unavailable, retry later";

/// A refused webhook request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not in the gateway's format (415).
    #[error("unsupported content type: expected {0}")]
    UnsupportedMediaType(&'static str),
    /// The body is larger than the configured limit (413).
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// More messages in one request than allowed (413).
    #[error("{got} messages in one request; at most {max} are accepted")]
    TooManyMessages { got: usize, max: usize },
    /// One message is larger than a conversation window can hold (413).
    #[error("message {index} is {size} bytes; a window holds at most {max}")]
    MessageTooLarge { index: usize, size: u64, max: u64 },
    /// Malformed body or a missing required field (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No secret configured for this gateway (401); names the setting.
    #[error("{0} is not configured: requests cannot be authenticated")]
    NotConfigured(&'static str),
    /// Missing or wrong signature or credential (401).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// A request, authenticated for one tenant, naming another tenant's account, or a wrong
    /// verify token (403). An account no tenant serves is answered as a wrong signature
    /// (`Unauthorized`, see `routes::named`).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The tenant directory, store or trigger failed (503): the gateway should retry. The
    /// string is the cause, for the log only: the answer says [`UNAVAILABLE`].
    #[error("unavailable, retry later: {0}")]
    Unavailable(String),
}

impl IngestError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::BodyTooLarge { .. }
            | IngestError::TooManyMessages { .. }
            | IngestError::MessageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngestError::NotConfigured(_) | IngestError::Unauthorized(_) => {
                StatusCode::UNAUTHORIZED
            }
            IngestError::Forbidden(_) => StatusCode::FORBIDDEN,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` label of the rejected-requests metric.
    pub fn label(&self) -> &'static str {
        match self {
            IngestError::UnsupportedMediaType(_) => "content_type",
            IngestError::BodyTooLarge { .. } => "body_too_large",
            IngestError::TooManyMessages { .. } => "too_many_messages",
            IngestError::MessageTooLarge { .. } => "message_too_large",
            IngestError::BadRequest(_) => "malformed",
            IngestError::NotConfigured(_) => "not_configured",
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::Forbidden(_) => "forbidden",
            IngestError::Unavailable(_) => "unavailable",
        }
    }

    /// Maps an append failure: a message too large for any window is the sender's problem (413);
    /// everything else is ours and retryable (503).
    pub fn from_append(e: AppendError) -> IngestError {
        match e {
            AppendError::Refused(AppendRefused::TooLarge { size, max }) => {
                IngestError::MessageTooLarge {
                    index: 0,
                    size,
                    max,
                }
            }
            other => IngestError::Unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        // 503 is not bad input: it is counted by the core (appends refused) or the adapters.
        if status != StatusCode::SERVICE_UNAVAILABLE {
            metrics::counter!(m::REJECTED_REQUESTS, "reason" => self.label()).increment(1);
        }
        tracing::warn!(
            status = status.as_u16(),
            reason = self.label(),
            "webhook request refused"
        );
        let body = match &self {
            IngestError::Unavailable(cause) => {
                tracing::warn!(%cause, "webhook request unavailable");
                UNAVAILABLE.to_string()
            }
            other => {
                tracing::debug!(detail = %other, "webhook refusal detail");
                other.to_string()
            }
        };
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Retryable: a full backlog, a busy conversation or a store hiccup. Gateways that
            // honour it come back later; nothing was stored.
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        resp
    }
}
