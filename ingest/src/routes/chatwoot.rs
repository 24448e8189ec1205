//! `POST /webhook/chatwoot?tenant=<id>`: human handover from Chatwoot. A person replying in a
//! conversation, or taking it (assigned to them), pauses the matching lull conversation for the
//! tenant's pause time; the conversation resolved or handed back to the bot resumes it
//! (`crate::parse::chatwoot` has the rule, `docs/chatwoot.md` the setup). Nothing is buffered.
//!
//! content type -> the three signature headers are present -> the tenant the URL names (the
//! only tenant when it names none) -> body (limited) -> signature over `"{timestamp}.{body}"`
//! with the tenant's `chatwoot.secret`, timestamp within 5 minutes (`crate::chatwoot_signature`)
//! -> a replay is refused (409) -> parse -> the inbox's lull account -> the contact's
//! conversation -> pause or resume through the core (`Appender::handover`), which remembers the
//! delivery id and the signature in the same conditional write, so a replay is refused on every
//! instance sharing the store.
//!
//! An unknown tenant, a tenant without a Chatwoot secret and a wrong signature all answer the
//! same 401: a caller without the secret learns nothing. Inside an authenticated delivery,
//! whatever names no mapped inbox, no conversation lull holds, or no handover is answered 200
//! and counted in `lull_ignored_events_total{provider="chatwoot",reason}`.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lull_core::metrics as m;
use lull_core::protocol::{Handover, HandoverOutcome};
use lull_core::turn::PauseReason;
use lull_core::{ConversationKey, Millis};

use super::{header_str, read_body, require_content_type, respond};
use crate::chatwoot_signature::{self, SignatureError};
use crate::error::IngestError;
use crate::parse::chatwoot::{self as parse, Change, Signal};
use crate::state::IngestState;
use crate::tenant::Tenant;

const SIGNATURE: &str = "x-chatwoot-signature";
const TIMESTAMP: &str = "x-chatwoot-timestamp";
const DELIVERY: &str = "x-chatwoot-delivery";

/// The longest delivery id accepted (Chatwoot sends a 36-character UUID).
pub const MAX_DELIVERY_ID: usize = 128;

/// The largest body read: a Chatwoot event is a few KB (one message and its conversation).
pub const CHATWOOT_BODY_LIMIT: usize = 256 * 1024;

const MISSING: &str =
    "missing X-Chatwoot-Signature / X-Chatwoot-Timestamp (set a secret on the Chatwoot webhook)";
const NO_DELIVERY: &str = "missing or malformed X-Chatwoot-Delivery";
const REPLAY: &str = "this delivery (X-Chatwoot-Delivery, or its signature) was answered \
                      before: nothing applied again";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(inner(&st, req).await)
}

async fn inner(st: &IngestState, req: Request) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    let (Some(signature), Some(timestamp)) = (
        header_str(&parts.headers, SIGNATURE),
        header_str(&parts.headers, TIMESTAMP),
    ) else {
        return Err(IngestError::Unauthorized(MISSING));
    };
    let delivery = header_str(&parts.headers, DELIVERY)
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= MAX_DELIVERY_ID)
        .ok_or(IngestError::Unauthorized(NO_DELIVERY))?;
    let tenant = tenant_of(st, parts.uri.query()).await?;
    let bytes = read_body(body, CHATWOOT_BODY_LIMIT.min(st.config.body_limit)).await?;
    let secrets = tenant
        .as_ref()
        .map(|t| &t.chatwoot.secrets)
        .filter(|s| !s.is_empty());
    let (Some(tenant), Some(secrets)) = (tenant.as_ref(), secrets) else {
        // Checked all the same, with the stand-in's random secret (`super::named`): the same
        // work and the same answer as a wrong signature.
        let stand_in = super::named::stand_in();
        let _ = chatwoot_signature::verify(
            &stand_in.chatwoot.secrets,
            signature,
            timestamp,
            &bytes,
            now_secs(),
        );
        tracing::info!("chatwoot delivery for an unknown tenant or one without chatwoot.secret");
        return Err(unauthorized(SignatureError::Mismatch));
    };
    let sent = chatwoot_signature::verify(secrets, signature, timestamp, &bytes, now_secs())
        .map_err(unauthorized)?;
    // Both keys: Chatwoot's retry of a delivery keeps its id (with a new timestamp, so a new
    // signature); a replayed capture keeps its signature whatever id it is given.
    let sig_hex = signature.trim().trim_start_matches("sha256=");
    let ids = vec![
        format!("chatwoot-delivery:{delivery}"),
        format!("chatwoot-signature:{}", &sig_hex[..sig_hex.len().min(64)]),
    ];
    if st.deliveries.seen(&ids) {
        return Err(IngestError::Replay(REPLAY));
    }
    let read = parse::parse(&bytes, &tenant.chatwoot.bot_user_ids)
        .map_err(|e| IngestError::BadRequest(e.0))?;
    let sent_at = Some(Millis(sent.saturating_mul(1000)));
    let answer = match read {
        Err(reason) => Answer::Ignored(reason),
        Ok(signal) => apply(st, tenant, signal, ids.clone(), sent_at).await?,
    };
    st.deliveries.remember(&ids);
    Ok(answer.into_response())
}

/// What one delivery did.
enum Answer {
    Applied(Change),
    Unchanged,
    Ignored(&'static str),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let (paused, resumed, unchanged, ignored) = match self {
            Answer::Applied(Change::Pause) => (1, 0, 0, 0),
            Answer::Applied(Change::Resume) => (0, 1, 0, 0),
            Answer::Unchanged => (0, 0, 1, 0),
            Answer::Ignored(reason) => {
                metrics::counter!(m::IGNORED_EVENTS, "reason" => reason, "provider" => "chatwoot")
                    .increment(1);
                (0, 0, 0, 1)
            }
        };
        let body = format!(
            r#"{{"paused":{paused},"resumed":{resumed},"unchanged":{unchanged},"ignored":{ignored}}}"#
        );
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// Pauses or resumes the conversation the signal names: the inbox's lull account, then each
/// user form of the contact in turn until one names a conversation lull holds.
async fn apply(
    st: &IngestState,
    tenant: &Tenant,
    signal: Signal,
    ids: Vec<String>,
    sent_at: Option<Millis>,
) -> Result<Answer, IngestError> {
    let Some(inbox) = tenant.chatwoot.inbox(signal.inbox) else {
        return Ok(Answer::Ignored("inbox_unmapped"));
    };
    // The mapping was checked against the tenant's accounts when it was applied; the account
    // must still be this tenant's now (a request can never touch another tenant's conversation).
    let owner = st
        .tenants
        .find(inbox.provider, &inbox.account)
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))?;
    if owner.is_none_or(|o| o.id != tenant.id) {
        return Ok(Answer::Ignored("account_of_another_tenant"));
    }
    let change = match signal.change {
        Change::Pause => Handover::Pause(tenant.policy.pause),
        Change::Resume => Handover::Resume,
    };
    let users = parse::users(
        inbox.provider,
        signal.phone.as_deref(),
        signal.identifier.as_deref(),
    );
    for (user, group) in users {
        let key = ConversationKey {
            provider: inbox.provider,
            account: inbox.account.clone(),
            user,
            group,
        };
        if key.check_lengths("").is_err() {
            continue;
        }
        let out = st
            .appender
            .handover(key, ids.clone(), sent_at, change, PauseReason::Operator)
            .await
            .map_err(IngestError::from_append)?;
        match out {
            HandoverOutcome::NoConversation => continue,
            HandoverOutcome::Applied(_) => {
                tracing::info!(tenant = %tenant.id, change = ?signal.change, "chatwoot handover");
                return Ok(Answer::Applied(signal.change));
            }
            HandoverOutcome::Unchanged => return Ok(Answer::Unchanged),
            HandoverOutcome::Duplicate => return Err(IngestError::Replay(REPLAY)),
            HandoverOutcome::Stale => return Ok(Answer::Ignored("stale")),
        }
    }
    Ok(Answer::Ignored("no_conversation"))
}

/// The tenant the webhook URL names (`?tenant=<id>`), or the only tenant when it names none.
async fn tenant_of(
    st: &IngestState,
    query: Option<&str>,
) -> Result<Option<std::sync::Arc<Tenant>>, IngestError> {
    let named = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("tenant="))
            .filter(|id| !id.is_empty())
    });
    match named {
        Some(id) => st
            .tenants
            .find_id(id)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string())),
        None => Ok(st.tenants.sole()),
    }
}

fn unauthorized(e: SignatureError) -> IngestError {
    IngestError::Unauthorized(match e {
        SignatureError::BadTimestamp => "X-Chatwoot-Timestamp is not unix seconds",
        SignatureError::OutsideTolerance => {
            "X-Chatwoot-Timestamp is more than 5 minutes from lull's clock (a replay, or a \
             skewed clock)"
        }
        SignatureError::Mismatch => {
            "X-Chatwoot-Signature does not match (or the tenant is unknown, or has no \
             chatwoot.secret)"
        }
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
