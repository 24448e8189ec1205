//! `GET /guard/{token}`: the reply guard a batch carries (`docs/batch.md`, "The reply guard").
//!
//! The token is the only credential: sealed by the deployment's guard key (`lull_sink::guard`),
//! it names one batch of one conversation, and opening it is the authentication (constant-time
//! tag check) before anything else is read. A token that does not open answers 404 "no such
//! reply guard", whatever the cause (malformed, forged, another deployment's), so the answer
//! reveals nothing; an expired one, or one whose conversation's tenant was removed, answers 410.
//! The route takes no body, sets no cookie and sends no CORS header (a page on another site
//! cannot read the answer), and every answer, refusals included, carries `Cache-Control:
//! no-store`: the answer changes, and a 404 or 410 is otherwise heuristically cacheable (RFC 9111
//! 4.2.2), so a proxy could keep serving one after the state behind it changed.
//!
//! ```text
//! 200 {"state":"current"}
//! 200 {"state":"superseded","newer_messages":2,"supersede":true}
//! 200 {"state":"typing","retry_after_ms":1000}
//! ```

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use lull_core::guard::GuardRefused;
use lull_core::protocol::GuardError;

use super::respond;
use crate::error::IngestError;
use crate::state::IngestState;

const NO_SUCH: &str = "no such reply guard";

/// Answers one reply guard.
pub async fn check(State(st): State<IngestState>, Path(token): Path<String>) -> Response {
    let mut r = respond(answer(&st, &token).await);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn answer(st: &IngestState, token: &str) -> Result<Response, IngestError> {
    let key = st.guard.as_ref().ok_or(IngestError::NotFound(
        "reply guards are not configured here",
    ))?;
    let claim = key
        .open(token)
        .map_err(|_| IngestError::NotFound(NO_SUCH))?;
    // Bound to the tenant through its account: a removed tenant's guards end with it.
    let tenant = st
        .tenants
        .find(claim.key.provider, &claim.key.account)
        .await
        .map_err(|e| IngestError::Unavailable(format!("tenant directory: {}", e.0)))?;
    let Some(tenant) = tenant else {
        return Err(IngestError::Gone(
            "the batch's tenant is no longer served here",
        ));
    };
    match st.appender.guard(claim, tenant.policy).await {
        Ok(said) => Ok((
            [(header::CONTENT_TYPE, "application/json")],
            // Plain data with string keys: serialising cannot fail.
            serde_json::to_vec(&said).unwrap_or_default(),
        )
            .into_response()),
        Err(GuardError::Refused(GuardRefused::Expired)) => {
            Err(IngestError::Gone("reply guard expired"))
        }
        Err(GuardError::Refused(GuardRefused::Gone)) => Err(IngestError::Gone(
            "the conversation of this reply guard is no longer stored",
        )),
        Err(other) => Err(IngestError::Unavailable(other.to_string())),
    }
}
