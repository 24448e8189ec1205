//! `POST /webhook/twilio`: form-encoded, signed with `X-Twilio-Signature`.
//!
//! Twilio signs the URL it was configured with. lull rebuilds it from the request
//! (`X-Forwarded-Proto`, `X-Forwarded-Host` or `Host`, and the original path and query) unless the
//! tenant sets `public_url` (`LULL_TWILIO_PUBLIC_URL`), which is the safe choice behind proxies
//! and API Gateway custom domains. Without a forwarded protocol both https and http are tried.

use axum::extract::{OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::response::Response;
use lull_core::Provider;

use super::{
    check_accounts, deliver, header_str, read_body, require_content_type, respond, tenant_of,
    unsigned_allowed,
};
use crate::auth;
use crate::error::IngestError;
use crate::parse;
use crate::state::IngestState;

/// The setting a Twilio tenant lacks when it has no auth token.
pub const AUTH_TOKEN_SETTING: &str = "LULL_TWILIO_AUTH_TOKEN (the Twilio auth token)";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(inner(&st, req).await)
}

/// The URLs Twilio may have signed for this request.
fn candidate_urls(parts: &Parts, public_url: Option<&str>) -> Vec<String> {
    if let Some(url) = public_url {
        return vec![url.to_string()];
    }
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map(|o| &o.0)
        .unwrap_or(&parts.uri);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let host = header_str(&parts.headers, "x-forwarded-host")
        .or_else(|| header_str(&parts.headers, "host"))
        .or_else(|| uri.host())
        .map(|h| h.split(',').next().unwrap_or(h).trim())
        .unwrap_or("");
    let protos: Vec<&str> = match header_str(&parts.headers, "x-forwarded-proto") {
        Some(p) => vec![p.split(',').next().unwrap_or(p).trim()],
        None => vec!["https", "http"],
    };
    protos
        .into_iter()
        .map(|proto| format!("{proto}://{host}{path}"))
        .collect()
}

async fn inner(st: &IngestState, req: Request) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/x-www-form-urlencoded")?;
    let bytes = read_body(body, st.config.body_limit).await?;
    let params = parse::twilio::params(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
    // The tenant, and so the token, is named in the parameters (`To`).
    let parsed = parse::twilio::parse(&params).map_err(|e| IngestError::BadRequest(e.0))?;
    let tenant = tenant_of(st, Provider::Twilio, &parsed).await?;
    if tenant.twilio.auth_tokens.is_empty() {
        unsigned_allowed(st, AUTH_TOKEN_SETTING)?;
    } else {
        let sig = header_str(&parts.headers, "x-twilio-signature")
            .ok_or(IngestError::Unauthorized("missing X-Twilio-Signature"))?;
        let ok = candidate_urls(&parts, tenant.twilio.public_url.as_deref())
            .iter()
            .any(|url| auth::verify_twilio(&tenant.twilio.auth_tokens, sig, url, &params));
        if !ok {
            return Err(IngestError::Unauthorized(
                "X-Twilio-Signature does not match the URL and parameters",
            ));
        }
    }
    check_accounts(st, Provider::Twilio, &tenant, &parsed).await?;
    deliver(st, Provider::Twilio, &tenant, parsed).await
}
