//! `POST /webhook/generic`: lull's own JSON format, signed with Standard Webhooks headers
//! (`webhook-signature`, with a timestamp tolerance: see [`crate::standard_webhooks`]) or with
//! `X-Lull-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.

use axum::extract::{Request, State};
use axum::response::Response;
use lull_core::Provider;

use super::{receive_body_signed, respond, BodySigned};
use crate::parse;
use crate::state::IngestState;

/// The setting a tenant lacks when it has no generic secret.
pub const SECRET_SETTING: &str = "LULL_GENERIC_SECRET (the generic webhook HMAC secret)";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(receive_body_signed(&st, req, &GATEWAY).await)
}

/// lull's own format signs the raw body like Meta (`X-Lull-Signature`), or with Standard Webhooks
/// headers; the tenant is the body's `account`.
const GATEWAY: BodySigned = BodySigned {
    provider: Provider::Generic,
    header: "x-lull-signature",
    missing: "missing X-Lull-Signature",
    mismatch: "X-Lull-Signature does not match the body",
    setting: SECRET_SETTING,
    secrets: |t| &t.generic.secrets,
    parse: parse::generic::parse,
    account: crate::hint::GENERIC,
    standard_webhooks: true,
};
