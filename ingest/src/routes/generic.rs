//! `POST /webhook/generic`: lull's own JSON format, signed with Standard Webhooks headers
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`, with the scheme's 5-minute timestamp
//! tolerance: see [`crate::standard_webhooks`]).
//!
//! The old body-only `X-Lull-Signature: sha256=<hex>` is retired: it signed no timestamp, so a
//! captured request replayed forever (after the dedupe horizon, as new messages). A request
//! carrying only that header is refused (401) with a reason naming the replacement, which takes
//! the same secret (`docs/gateways.md`, "Generic format").

use axum::extract::{Request, State};
use axum::response::Response;
use lull_core::Provider;

use super::{receive_body_signed, respond, BodySigned};
use crate::error::IngestError;
use crate::parse;
use crate::state::IngestState;

/// The setting a tenant lacks when it has no generic secret.
pub const SECRET_SETTING: &str = "LULL_GENERIC_SECRET (the generic webhook HMAC secret)";

/// The retired body-only signature header.
const RETIRED_HEADER: &str = "x-lull-signature";

/// The 401 reason for a request signed only the retired way.
const RETIRED: &str = "X-Lull-Signature (a body-only HMAC with no timestamp) is retired on \
                       /webhook/generic: sign with Standard Webhooks (webhook-id, \
                       webhook-timestamp, webhook-signature) using the same secret";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    let legacy_only = req.headers().contains_key(RETIRED_HEADER)
        && !crate::standard_webhooks::is_signed(req.headers());
    if legacy_only {
        return respond(Err(IngestError::Unauthorized(RETIRED)));
    }
    respond(receive_body_signed(&st, req, &GATEWAY).await)
}

/// lull's own format, signed with Standard Webhooks headers; the tenant is the body's `account`.
const GATEWAY: BodySigned = BodySigned {
    provider: Provider::Generic,
    header: None,
    missing: "missing webhook-signature (sign with Standard Webhooks: webhook-id, \
              webhook-timestamp, webhook-signature)",
    mismatch: "webhook-signature does not match the body",
    setting: SECRET_SETTING,
    secrets: |t| &t.generic.secrets,
    parse: parse::generic::parse,
    account: crate::hint::GENERIC,
    standard_webhooks: true,
};
