//! `POST /webhook/twilio`: form-encoded, signed with `X-Twilio-Signature`.
//!
//! Twilio signs the URL it was configured with. lull uses the tenant's `public_url`
//! (`LULL_TWILIO_PUBLIC_URL`) when set, the safe choice behind proxies and API Gateway custom
//! domains; otherwise it rebuilds the URL from the `Host` header and the original path and
//! query, trying https and http. `X-Forwarded-Proto` / `X-Forwarded-Host` are used only when the
//! server is told to trust them (`--trust-forwarded`): any client can send them. Every URL is
//! tried with and without its port (`:443`/`:80` added when absent), as Twilio's own validators
//! do, because Twilio's signing is inconsistent there.
//!
//! The signing secret is the auth token (HMAC-SHA1), or, when the request carries
//! `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=<name>`, a webhook shared key with
//! the named algorithm (HMAC-SHA256 today). Any configured value of either list is accepted.

use axum::extract::{OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::response::Response;
use lull_core::Provider;

use super::{
    append_all, check_accounts, header_str, read_body, require_content_type, require_credential,
    respond, tenant_named, unsigned_allowed,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::auth::{self, TwilioAlgorithm};
use crate::error::IngestError;
use crate::parse;
use crate::state::IngestState;
use crate::tenant::Tenant;
use crate::twilio_signature;

/// The setting a Twilio tenant lacks when it has no auth token.
pub const AUTH_TOKEN_SETTING: &str = "LULL_TWILIO_AUTH_TOKEN (the Twilio auth token)";

/// The header announcing a shared-key signature.
pub const SIGNATURE_SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(inner(&st, req).await)
}

/// `url` as given and with its port toggled: without it when present, with the scheme's default
/// port when absent (Twilio's validators check both).
fn with_and_without_port(url: &str) -> [String; 2] {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    // A port is the digits after the last ':' outside an IPv6 literal's brackets.
    let port_at = authority
        .rfind(':')
        .filter(|&i| !authority[i..].contains(']'))
        .filter(|&i| authority[i + 1..].bytes().all(|b| b.is_ascii_digit()));
    let toggled = match port_at {
        Some(i) => format!("{scheme}://{}{tail}", &authority[..i]),
        None => {
            let port = if scheme.eq_ignore_ascii_case("http") {
                80
            } else {
                443
            };
            format!("{scheme}://{authority}:{port}{tail}")
        }
    };
    [url.to_string(), toggled]
}

/// The URLs Twilio may have signed for this request.
fn candidate_urls(parts: &Parts, public_url: Option<&str>, trust_forwarded: bool) -> Vec<String> {
    let first = |v: &'_ str| v.split(',').next().unwrap_or(v).trim().to_string();
    let bases: Vec<String> = match public_url {
        Some(url) => vec![url.to_string()],
        None => {
            let uri = parts
                .extensions
                .get::<OriginalUri>()
                .map(|o| &o.0)
                .unwrap_or(&parts.uri);
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let forwarded = |name| {
                trust_forwarded
                    .then(|| header_str(&parts.headers, name))
                    .flatten()
            };
            let host = forwarded("x-forwarded-host")
                .or_else(|| header_str(&parts.headers, "host"))
                .or_else(|| uri.host())
                .map(first)
                .unwrap_or_default();
            let protos = match forwarded("x-forwarded-proto") {
                Some(p) => vec![first(p)],
                None => vec!["https".to_string(), "http".to_string()],
            };
            protos
                .into_iter()
                .map(|proto| format!("{proto}://{host}{path}"))
                .collect()
        }
    };
    bases
        .iter()
        .flat_map(|u| with_and_without_port(u))
        .collect()
}

/// Checks `X-Twilio-Signature` under `tenant`'s auth tokens, or its shared keys when the
/// request announces a shared-key signature.
fn authenticate(
    st: &IngestState,
    tenant: &Tenant,
    parts: &Parts,
    body: &[u8],
) -> Result<(), IngestError> {
    let tw = &tenant.twilio;
    if tw.auth_tokens.is_empty() && tw.shared_keys.is_empty() {
        return unsigned_allowed(st, AUTH_TOKEN_SETTING);
    }
    let sig = header_str(&parts.headers, "x-twilio-signature")
        .ok_or(IngestError::Unauthorized("missing X-Twilio-Signature"))?;
    let (algorithm, keys) = match parts.headers.get(SIGNATURE_SETTINGS_HEADER) {
        None => (TwilioAlgorithm::HmacSha1, &tw.auth_tokens),
        Some(v) => {
            let algorithm = v
                .to_str()
                .ok()
                .and_then(|v| auth::twilio_settings_algorithm(v).ok())
                .ok_or(IngestError::Unauthorized(
                    "X-Twilio-Webhooks-Signature-Settings names an unsupported algorithm",
                ))?
                .unwrap_or(TwilioAlgorithm::HmacSha1);
            (algorithm, &tw.shared_keys)
        }
    };
    if keys.is_empty() {
        return Err(IngestError::Unauthorized(
            "signed with a Twilio webhook shared key, but none is configured (LULL_TWILIO_SHARED_KEY)",
        ));
    }
    let urls = candidate_urls(parts, tw.public_url.as_deref(), st.config.trust_forwarded);
    let ok = STANDARD
        .decode(sig.trim())
        .is_ok_and(|sig| twilio_signature::verify_form(algorithm, keys, &sig, &urls, body));
    if ok {
        Ok(())
    } else {
        Err(IngestError::Unauthorized(MISMATCH))
    }
}

/// The 401 reason when the signature matches none of the tenant's keys.
const MISMATCH: &str = "X-Twilio-Signature does not match the URL and parameters";

async fn inner(st: &IngestState, req: Request) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/x-www-form-urlencoded")?;
    let present = parts.headers.contains_key("x-twilio-signature");
    require_credential(
        st,
        present,
        "missing X-Twilio-Signature",
        AUTH_TOKEN_SETTING,
        |t| !(t.twilio.auth_tokens.is_empty() && t.twilio.shared_keys.is_empty()),
    )?;
    let bytes = read_body(body, st.config.body_limit).await?;
    twilio_signature::check_envelope(&bytes).map_err(IngestError::BadRequest)?;
    // The business number (`To`, or `From` for a status callback) names the tenant; the
    // signature is checked over the raw form before any parameter is decoded.
    let number = crate::hint::twilio_account(&bytes);
    let named = tenant_named(st, Provider::Twilio, number).await?;
    let checked = authenticate(st, &named.tenant, &parts, &bytes);
    let tenant = named.authenticated(checked, Provider::Twilio, MISMATCH)?;
    let params = parse::twilio::params(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
    let parsed = parse::twilio::parse(&params).map_err(|e| IngestError::BadRequest(e.0))?;
    check_accounts(st, Provider::Twilio, &tenant, &parsed).await?;
    append_all(st, Provider::Twilio, &tenant, parsed).await
}

#[cfg(test)]
mod tests {
    use super::with_and_without_port;

    #[test]
    fn port_is_toggled_as_twilios_validators_do() {
        assert_eq!(
            with_and_without_port("https://a.test/webhook/twilio?x=1"),
            [
                "https://a.test/webhook/twilio?x=1",
                "https://a.test:443/webhook/twilio?x=1"
            ]
        );
        assert_eq!(
            with_and_without_port("http://a.test:8080/w"),
            ["http://a.test:8080/w", "http://a.test/w"]
        );
        assert_eq!(
            with_and_without_port("http://[::1]/w")[1],
            "http://[::1]:80/w"
        );
        assert_eq!(
            with_and_without_port("http://[::1]:9/w")[1],
            "http://[::1]/w"
        );
    }
}
