//! `GET /webhook/meta` (subscription handshake) and `POST /webhook/meta` (notifications).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lull_core::Provider;

use super::{
    check_accounts, deliver, header_str, read_body, require_content_type, respond, tenant_of,
    unsigned_allowed,
};
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
    respond(receive_inner(&st, req).await)
}

async fn receive_inner(st: &IngestState, req: Request) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    let bytes = read_body(body, st.config.body_limit).await?;
    // The tenant, and so the secret, is named inside the body (metadata.phone_number_id).
    let parsed = parse::meta::parse(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
    let tenant = tenant_of(st, Provider::Meta, &parsed).await?;
    if tenant.meta.app_secrets.is_empty() {
        unsigned_allowed(st, APP_SECRET_SETTING)?;
    } else {
        let sig = header_str(&parts.headers, "x-hub-signature-256")
            .ok_or(IngestError::Unauthorized("missing X-Hub-Signature-256"))?;
        if !auth::verify_sha256_header(&tenant.meta.app_secrets, sig, &bytes) {
            return Err(IngestError::Unauthorized(
                "X-Hub-Signature-256 does not match the body",
            ));
        }
    }
    check_accounts(st, Provider::Meta, &tenant, &parsed).await?;
    deliver(st, Provider::Meta, &tenant, parsed).await
}
