//! `GET /webhook/meta` (subscription handshake) and `POST /webhook/meta` (notifications).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lull_core::Provider;

use super::{receive_body_signed, respond, unsigned_allowed, BodySigned};
use crate::auth;
use crate::error::IngestError;
use crate::parse;
use crate::state::IngestState;

/// The setting a Meta tenant lacks when it has no app secret.
pub const APP_SECRET_SETTING: &str = "LULL_META_APP_SECRET (the Meta app secret)";
/// The setting a Meta tenant lacks when it has no verify token.
pub const VERIFY_TOKEN_SETTING: &str = "LULL_META_VERIFY_TOKEN (the Meta webhook verify token)";

/// The handshake: `hub.mode=subscribe`, `hub.verify_token` one of the configured tokens, answer
/// `hub.challenge` as plain text. A wrong token is 403.
pub async fn verify(State(st): State<IngestState>, uri: Uri) -> Response {
    respond(verify_inner(&st, &uri).await)
}

async fn verify_inner(st: &IngestState, uri: &Uri) -> Result<Response, IngestError> {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "hub.mode" => mode = Some(v.into_owned()),
            "hub.verify_token" => token = Some(v.into_owned()),
            "hub.challenge" => challenge = Some(v.into_owned()),
            _ => {}
        }
    }
    if mode.as_deref() != Some("subscribe") {
        return Err(IngestError::BadRequest("hub.mode must be subscribe".into()));
    }
    let challenge = challenge
        .filter(|c| !c.is_empty() && c.len() <= 1024)
        .ok_or_else(|| IngestError::BadRequest("missing hub.challenge".into()))?;
    let tokens = st
        .tenants
        .meta_verify_tokens()
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))?;
    if tokens.is_empty() {
        unsigned_allowed(st, VERIFY_TOKEN_SETTING)?;
    } else if !auth::matches_any(&tokens, token.as_deref().unwrap_or("")) {
        return Err(IngestError::Forbidden("wrong hub.verify_token"));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    )
        .into_response())
}

/// A notification: messages are appended, statuses acknowledged.
pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(receive_body_signed(&st, req, &GATEWAY).await)
}

/// Meta signs the raw body (`X-Hub-Signature-256`); the tenant is named inside the body
/// (`metadata.phone_number_id`).
const GATEWAY: BodySigned = BodySigned {
    provider: Provider::Meta,
    header: Some("x-hub-signature-256"),
    missing: "missing X-Hub-Signature-256",
    mismatch: "X-Hub-Signature-256 does not match the body",
    setting: APP_SECRET_SETTING,
    secrets: |t| &t.meta.app_secrets,
    parse: parse::meta::parse,
    account: crate::hint::META,
    standard_webhooks: false,
};
