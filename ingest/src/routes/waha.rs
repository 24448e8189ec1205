//! `POST /webhook/waha`: WAHA (devlikeapro/waha) webhooks.
//!
//! WAHA signs the raw body when the webhook has an HMAC key (`hmac.key` in the session's webhook
//! config, or `WHATSAPP_HOOK_HMAC_KEY` for the global webhook): `X-Webhook-Hmac` is the hex
//! HMAC-SHA512 and `X-Webhook-Hmac-Algorithm` names `sha512`. lull checks it with the tenant's
//! `waha.hmac_key` (`LULL_WAHA_HMAC_KEY` for a single tenant); a request without it is refused
//! before its body is read. The session (`session` in the body) names the tenant.
//!
//! `message` and `message.any` are buffered (the session's own messages are not: a person's,
//! `source: "app"`, pauses the conversation); `presence.update` shapes the end of a turn; every
//! other event is acknowledged (`parse::waha`).

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use lull_core::Provider;

use super::operator::{apply_opt_ins, pause_for_operators, OptIns};
use super::{
    append_all, check_accounts, header_str, presence_all, read_body, require_content_type,
    require_credential, respond, tenant_named, unsigned_allowed,
};
use crate::auth;
use crate::error::IngestError;
use crate::parse;
use crate::state::IngestState;
use crate::tenant::Tenant;

/// The setting a WAHA tenant without an HMAC key lacks.
pub const HMAC_SETTING: &str = "LULL_WAHA_HMAC_KEY";

/// The signature header and the header naming its algorithm.
const HMAC_HEADER: &str = "x-webhook-hmac";
const ALGORITHM_HEADER: &str = "x-webhook-hmac-algorithm";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(inner(&st, req).await)
}

async fn inner(st: &IngestState, req: Request) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    let signed = parts.headers.contains_key(HMAC_HEADER);
    require_credential(st, signed, MISSING, HMAC_SETTING, |t| {
        !t.waha.hmac_keys.is_empty()
    })?;
    let bytes = read_body(body, st.config.body_limit).await?;
    // The session the raw body names chooses whose key applies; the body is parsed only once
    // its HMAC matched.
    let session = crate::hint::json_account(&bytes, crate::hint::WAHA);
    let named = tenant_named(st, Provider::Waha, session).await?;
    let checked = verify(st, &named.tenant, &parts.headers, &bytes);
    let tenant = named.authenticated(checked, Provider::Waha, MISMATCH)?;
    let parsed = parse::waha::parse(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
    check_accounts(st, Provider::Waha, &tenant, &parsed).await?;
    if parsed.items.is_empty() && parsed.ignored == ["presence"] {
        let body = parse::presence::parse_waha(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
        return presence_all(st, Provider::Waha, &tenant, body).await;
    }
    let (parsed, operators) = apply_opt_ins(OptIns::default(), parsed);
    // NOWEB's raw message names the chat's LID beside its phone JID (`crate::lids`).
    let lids = crate::lids::learned_waha(&bytes, &parsed);
    let answer = append_all(st, Provider::Waha, &tenant, parsed).await?;
    st.lids.learn(lids);
    pause_for_operators(st, Provider::Waha, &tenant, operators).await?;
    Ok(answer)
}

/// The 401 reasons.
const MISSING: &str = "missing X-Webhook-Hmac (set hmac.key on the WAHA webhook)";
const MISMATCH: &str = "X-Webhook-Hmac does not match the body";
const ALGORITHM: &str = "X-Webhook-Hmac-Algorithm is not sha512";

fn verify(
    st: &IngestState,
    tenant: &Tenant,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), IngestError> {
    let keys = &tenant.waha.hmac_keys;
    if keys.is_empty() {
        return unsigned_allowed(st, HMAC_SETTING);
    }
    let sig = header_str(headers, HMAC_HEADER).ok_or(IngestError::Unauthorized(MISSING))?;
    if let Some(alg) = header_str(headers, ALGORITHM_HEADER) {
        if !alg.trim().eq_ignore_ascii_case("sha512") {
            return Err(IngestError::Unauthorized(ALGORITHM));
        }
    }
    if auth::verify_sha512_hex(keys, sig, body) {
        Ok(())
    } else {
        Err(IngestError::Unauthorized(MISMATCH))
    }
}
