//! `POST /admin/conversations/pause` and `POST /admin/conversations/resume`: a tenant's own
//! systems (a help desk, a CRM, a person with `curl`) take a conversation over and give it back,
//! on the webhook listener (on AWS: the webhook Lambda's HTTP API).
//!
//! ```text
//! POST /admin/conversations/pause     {"key": KEY, "for": "30m"}   ("for" optional: 30 min)
//! POST /admin/conversations/resume    {"key": KEY}
//! Authorization: Bearer <one of the tenant's admin_token values>
//! ```
//!
//! KEY is the conversation's storage key as `lull inspect --show-keys` prints it
//! (`evolution|<instance>|<chat JID>`). Its provider and account name the tenant that owns the
//! conversation, exactly as a webhook's body does, and only that tenant's `admin_token` opens it:
//! a token of one tenant can never pause another's conversations. A request without a bearer
//! token is refused before its body is read; the body is at most [`ADMIN_BODY_LIMIT`] bytes.
//! Every refusal is a 4xx naming the reason, and nothing is written on one.
//!
//! The local ops listener's unauthenticated `POST /conversations/pause|resume` (loopback only)
//! reads the same body through [`PauseRequest`] and answers through [`apply`].

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lull_core::policy::{DEFAULT_PAUSE, MAX_PAUSE};
use lull_core::protocol::PauseOutcome;
use lull_core::turn::PauseReason;
use lull_core::ConversationKey;
use serde::Deserialize;

use super::{header_str, read_body, require_content_type, respond};
use crate::appender::Appender;
use crate::auth;
use crate::error::IngestError;
use crate::state::IngestState;
use crate::tenant::normalise_account;

/// The largest body an admin request may have: a key (at most ~1 KB) and a duration.
pub const ADMIN_BODY_LIMIT: usize = 4 * 1024;

/// The setting a tenant without an admin token lacks.
pub const ADMIN_SETTING: &str =
    "the tenant's admin_token (LULL_ADMIN_TOKEN / --admin-token for a single tenant)";

const MISSING: &str = "missing Authorization: Bearer <admin_token>";
/// The one refusal of a request with a token: a wrong token, an account no tenant owns, and a
/// tenant without an admin token all answer this (401), so a caller without the token cannot
/// learn which accounts exist or which tenants have an admin token. The log says which.
const WRONG: &str = "wrong admin token for this conversation's tenant (or no admin_token is \
                     set for it)";

/// What a pause or resume asks for: the body of both routes, here and on the ops listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// The conversation's storage key (`lull inspect --show-keys`).
    pub key: String,
    /// How long the pause lasts (`30m`, `2h`; default 30 min, at most 7 days). Pause only.
    #[serde(default, rename = "for")]
    pub pause_for: Option<String>,
}

impl PauseRequest {
    /// Parses and checks a body: the conversation it names and, for a pause, how long (`None`:
    /// resume). Every refusal says what is wrong.
    pub fn parse(
        body: &[u8],
        resume: bool,
    ) -> Result<(ConversationKey, Option<Duration>), IngestError> {
        let req: PauseRequest = serde_json::from_slice(body)
            .map_err(|e| IngestError::BadRequest(format!("admin body: {e}")))?;
        let key = conversation_key(&req.key)?;
        let pause_for = match (resume, req.pause_for.as_deref()) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(IngestError::BadRequest(
                    "\"for\" is for a pause; a resume takes only \"key\"".into(),
                ))
            }
            (false, None) => Some(DEFAULT_PAUSE),
            (false, Some(s)) => match humantime::parse_duration(s.trim()) {
                Ok(d) if !d.is_zero() && d <= MAX_PAUSE => Some(d),
                _ => {
                    return Err(IngestError::BadRequest(
                        "\"for\" must be a duration between 1ms and 7 days, such as 30m".into(),
                    ))
                }
            },
        };
        Ok((key, pause_for))
    }
}

/// A storage key as the router itself would have built it: parsed, every part present, the
/// account normalised as on the webhook path, within the store's key limits (`lull
/// conversations` checks its KEY with it too).
pub fn conversation_key(text: &str) -> Result<ConversationKey, IngestError> {
    let bad = || {
        IngestError::BadRequest(
            "\"key\" is not a conversation key (as `lull inspect --show-keys` prints them: \
             provider|account|user)"
                .into(),
        )
    };
    let mut key = ConversationKey::from_storage_key(text).map_err(|_| bad())?;
    key.account = normalise_account(key.provider, &key.account).to_string();
    if key.account.is_empty() || key.user.is_empty() || key.group.as_deref() == Some("") {
        return Err(bad());
    }
    key.check_lengths("")
        .map_err(|e| IngestError::BadRequest(format!("\"key\": {e}")))?;
    Ok(key)
}

/// Pauses (`Some`) or resumes (`None`) `key` as an admin, and answers what it did: 200 with
/// `paused until <time>`, `resumed` or `unchanged`; 404 for a conversation lull holds no record
/// of; 503 when the store or the trigger failed (nothing changed, or the change is complete:
/// retrying is safe).
pub async fn apply(
    appender: &dyn Appender,
    key: ConversationKey,
    pause_for: Option<Duration>,
) -> Response {
    match appender.pause(key, pause_for, PauseReason::Admin).await {
        Ok(PauseOutcome::NoConversation) => {
            (StatusCode::NOT_FOUND, "no such conversation\n").into_response()
        }
        Ok(PauseOutcome::Set(Some(until))) => (
            StatusCode::OK,
            format!("paused until {}\n", until.rfc3339()),
        )
            .into_response(),
        Ok(PauseOutcome::Set(None)) => (StatusCode::OK, "resumed\n").into_response(),
        Ok(PauseOutcome::Unchanged) => (StatusCode::OK, "unchanged\n").into_response(),
        Err(e) => IngestError::from_append(e).into_response(),
    }
}

pub async fn pause(State(st): State<IngestState>, req: Request) -> Response {
    respond(admin(&st, req, false).await)
}

pub async fn resume(State(st): State<IngestState>, req: Request) -> Response {
    respond(admin(&st, req, true).await)
}

/// content type -> a bearer token is present -> body (limited) -> parse and check -> the tenant
/// owning the key's account -> its admin token -> pause or resume.
async fn admin(st: &IngestState, req: Request, resume: bool) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    let token = header_str(&parts.headers, "authorization")
        .map(str::trim)
        .and_then(|a| a.strip_prefix("Bearer ").or(a.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(IngestError::Unauthorized(MISSING))?;
    let bytes = read_body(body, ADMIN_BODY_LIMIT).await?;
    let (key, pause_for) = PauseRequest::parse(&bytes, resume)?;
    let tenant = st
        .tenants
        .find(key.provider, &key.account)
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))?;
    let Some(tenant) = tenant else {
        tracing::info!(provider = %key.provider, "admin request for an account no tenant owns");
        return Err(IngestError::Unauthorized(WRONG));
    };
    if tenant.admin_tokens.is_empty() {
        tracing::warn!(tenant = %tenant.id, setting = ADMIN_SETTING, "admin request for a tenant without an admin token");
        return Err(IngestError::Unauthorized(WRONG));
    }
    if !auth::matches_any(&tenant.admin_tokens, token) {
        return Err(IngestError::Unauthorized(WRONG));
    }
    tracing::info!(tenant = %tenant.id, resume, "admin pause request");
    Ok(apply(st.appender.as_ref(), key, pause_for).await)
}
