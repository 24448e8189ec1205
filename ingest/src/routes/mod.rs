//! The webhook routes, one small file per gateway, and the pipeline they share:
//! content type -> body (limited) -> parse -> tenant -> authenticate -> every account belongs to
//! the tenant -> size checks -> append each message in body order -> answer.
//!
//! Nothing is appended until the whole request has passed every check, so a refused request
//! stores nothing. Appends stop at the first failure (keeping receive order); the gateway's
//! retry then finds the earlier messages as duplicates.

pub mod evolution;
pub mod generic;
pub mod meta;
pub mod twilio;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use lull_core::metrics as m;
use lull_core::protocol::AppendOutcome;
use lull_core::window::MAX_MESSAGE_BYTES;
use lull_core::{ConversationKey, Provider};

use crate::error::IngestError;
use crate::parse::Parsed;
use crate::state::IngestState;
use crate::tenant::{normalise_account, Tenant};

/// Every (method, path) the webhook [`router`] serves, in axum's path syntax. Deployments expose
/// exactly these (tests/infra.rs checks the SAM template's HTTP API against this list, and a test
/// here checks the router against it).
pub const WEBHOOK_ROUTES: &[(&str, &str)] = &[
    ("GET", "/webhook/meta"),
    ("POST", "/webhook/meta"),
    ("POST", "/webhook/evolution"),
    ("POST", "/webhook/evolution/{event}"),
    ("POST", "/webhook/evolution/k/{secret}"),
    ("POST", "/webhook/evolution/k/{secret}/{event}"),
    ("POST", "/webhook/twilio"),
    ("POST", "/webhook/generic"),
];

/// The webhook `Router`: serve it locally or through `lambda_http`.
///
/// - `GET|POST /webhook/meta`
/// - `POST /webhook/evolution`, `/webhook/evolution/{event}`, `/webhook/evolution/k/{secret}`,
///   `/webhook/evolution/k/{secret}/{event}`
/// - `POST /webhook/twilio`
/// - `POST /webhook/generic`
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/webhook/meta", get(meta::verify).post(meta::receive))
        .route("/webhook/evolution", post(evolution::receive))
        .route("/webhook/evolution/{event}", post(evolution::receive_event))
        .route(
            "/webhook/evolution/k/{secret}",
            post(evolution::receive_keyed),
        )
        .route(
            "/webhook/evolution/k/{secret}/{event}",
            post(evolution::receive_keyed_event),
        )
        .route("/webhook/twilio", post(twilio::receive))
        .route("/webhook/generic", post(generic::receive))
        .with_state(state)
}

/// Refuses a body whose content type is not `expected` (parameters such as charset allowed).
pub(crate) fn require_content_type(
    headers: &HeaderMap,
    expected: &'static str,
) -> Result<(), IngestError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected));
    if ok {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(expected))
    }
}

/// Reads the whole body, refusing one longer than the limit (413) without buffering past it.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(IngestError::BodyTooLarge { limit }),
        Err(_) => Err(IngestError::BadRequest("body could not be read".into())),
    }
}

/// A header's value as a string, if present and visible ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The tenant owning the first account the body names; every other account must belong to the
/// same tenant (403 otherwise, nothing stored).
pub(crate) async fn tenant_of(
    st: &IngestState,
    provider: Provider,
    parsed: &Parsed,
) -> Result<Arc<Tenant>, IngestError> {
    // A body naming no account (Meta `account_update` and other non-message fields) can only
    // belong to a single tenant that owns every account; multi-tenant setups subscribe to the
    // `messages` field only (see docs/gateways.md).
    let first = match parsed.accounts.first() {
        Some(a) => a.as_str(),
        None if parsed.items.is_empty() => "",
        None => {
            return Err(IngestError::BadRequest(format!(
                "{provider}: the body names no account"
            )))
        }
    };
    let tenant = st
        .tenants
        .find(provider, first)
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))?
        .ok_or(IngestError::Forbidden("unknown account"))?;
    Ok(tenant)
}

/// After authentication: every account named in the body belongs to `tenant`.
pub(crate) async fn check_accounts(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    parsed: &Parsed,
) -> Result<(), IngestError> {
    for account in parsed.accounts.iter().skip(1) {
        let other = st
            .tenants
            .find(provider, account)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        if other.is_none_or(|o| o.id != tenant.id) {
            return Err(IngestError::Forbidden(
                "the body names an account of another tenant",
            ));
        }
    }
    Ok(())
}

/// A tenant with no secret for a gateway: refused with the missing setting's name, unless the
/// local server runs unsigned on loopback.
pub(crate) fn unsigned_allowed(st: &IngestState, setting: &'static str) -> Result<(), IngestError> {
    if st.config.allow_unsigned_on_loopback {
        Ok(())
    } else {
        Err(IngestError::NotConfigured(setting))
    }
}

/// Checks sizes, counts ignored events and appends every message in order; 200 only when all
/// were accepted.
pub(crate) async fn deliver(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    parsed: Parsed,
) -> Result<Response, IngestError> {
    let max = st.config.max_messages_per_request;
    if parsed.items.len() > max {
        return Err(IngestError::TooManyMessages {
            got: parsed.items.len(),
            max,
        });
    }
    let cap = MAX_MESSAGE_BYTES;
    for (index, item) in parsed.items.iter().enumerate() {
        let size = item.message.stored_size();
        if size > cap {
            return Err(IngestError::MessageTooLarge {
                index,
                size,
                max: cap,
            });
        }
    }
    let mut ignored = parsed.ignored.len();
    for reason in parsed.ignored {
        metrics::counter!(m::IGNORED_EVENTS, "reason" => reason, "provider" => provider.as_str())
            .increment(1);
    }
    let (mut accepted, mut duplicates) = (0usize, 0usize);
    for item in parsed.items {
        if let Some(opt) = item.opt_in {
            let wanted = match opt {
                crate::parse::OptIn::FromMe => tenant.evolution.accept_from_me,
                crate::parse::OptIn::StatusBroadcast => tenant.evolution.accept_status_broadcast,
            };
            if !wanted {
                metrics::counter!(m::IGNORED_EVENTS, "reason" => opt.label(), "provider" => provider.as_str())
                    .increment(1);
                ignored += 1;
                continue;
            }
        }
        let key = ConversationKey {
            provider,
            account: normalise_account(provider, &item.account).to_string(),
            user: item.user,
            group: item.group,
        };
        match st.appender.append(key, tenant.policy, item.message).await {
            Ok(AppendOutcome::Accepted { .. }) => accepted += 1,
            Ok(AppendOutcome::Duplicate { .. }) => duplicates += 1,
            Err(e) => return Err(IngestError::from_append(e)),
        }
    }
    tracing::debug!(tenant = %tenant.id, %provider, accepted, duplicates, ignored, "webhook accepted");
    let body =
        format!(r#"{{"accepted":{accepted},"duplicates":{duplicates},"ignored":{ignored}}}"#);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Turns a handler's result into the response.
pub(crate) fn respond(r: Result<Response, IngestError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
