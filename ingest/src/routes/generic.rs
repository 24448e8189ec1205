//! `POST /webhook/generic`: lull's own JSON format, signed with Standard Webhooks headers
//! (`webhook-signature`, with a timestamp tolerance: see [`crate::standard_webhooks`]) or with
//! `X-Lull-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.

use axum::extract::{Request, State};
use axum::response::Response;
use lull_core::Provider;

use super::{
    check_accounts, deliver, header_str, read_body, require_content_type, respond, tenant_of,
    unsigned_allowed,
};
use crate::auth;
use crate::error::IngestError;
use crate::parse;
use crate::standard_webhooks;
use crate::state::IngestState;

/// The setting a tenant lacks when it has no generic secret.
pub const SECRET_SETTING: &str = "LULL_GENERIC_SECRET (the generic webhook HMAC secret)";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(inner(&st, req).await)
}

async fn inner(st: &IngestState, req: Request) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    let bytes = read_body(body, st.config.body_limit).await?;
    let parsed = parse::generic::parse(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
    let tenant = tenant_of(st, Provider::Generic, &parsed).await?;
    if tenant.generic.secrets.is_empty() {
        unsigned_allowed(st, SECRET_SETTING)?;
    } else if standard_webhooks::is_signed(&parts.headers) {
        standard_webhooks::verify(&tenant.generic.secrets, &parts.headers, &bytes)
            .map_err(IngestError::Unauthorized)?;
    } else {
        let sig = header_str(&parts.headers, "x-lull-signature")
            .ok_or(IngestError::Unauthorized("missing X-Lull-Signature"))?;
        if !auth::verify_sha256_header(&tenant.generic.secrets, sig, &bytes) {
            return Err(IngestError::Unauthorized(
                "X-Lull-Signature does not match the body",
            ));
        }
    }
    check_accounts(st, Provider::Generic, &tenant, &parsed).await?;
    deliver(st, Provider::Generic, &tenant, parsed).await
}
