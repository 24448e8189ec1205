//! `POST /webhook/evolution[/{event}]` and the path-secret form for the global webhook,
//! `POST /webhook/evolution/k/{secret}[/{event}]`.
//!
//! Evolution signs nothing, so a request carries a shared secret: the `apikey` header,
//! `Authorization: Bearer <token or HS256 JWT from jwt_key>`, or (for the global webhook, which
//! sends no custom headers) the path. Any configured value of the instance's tenant is accepted.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Request, State};
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

/// The setting an Evolution tenant lacks when it has no token and no JWT key.
pub const TOKEN_SETTING: &str = "LULL_EVOLUTION_TOKEN (or LULL_EVOLUTION_JWT_KEY)";

pub async fn receive(State(st): State<IngestState>, req: Request) -> Response {
    respond(inner(&st, req, None, None).await)
}

pub async fn receive_event(
    State(st): State<IngestState>,
    Path(event): Path<String>,
    req: Request,
) -> Response {
    respond(inner(&st, req, None, Some(event)).await)
}

pub async fn receive_keyed(
    State(st): State<IngestState>,
    Path(secret): Path<String>,
    req: Request,
) -> Response {
    respond(inner(&st, req, Some(secret), None).await)
}

pub async fn receive_keyed_event(
    State(st): State<IngestState>,
    Path((secret, event)): Path<(String, String)>,
    req: Request,
) -> Response {
    respond(inner(&st, req, Some(secret), Some(event)).await)
}

async fn inner(
    st: &IngestState,
    req: Request,
    path_secret: Option<String>,
    path_event: Option<String>,
) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    let path_secret = path_secret.as_deref();
    let present = path_secret.is_some()
        || parts.headers.contains_key("apikey")
        || parts.headers.contains_key("authorization");
    require_credential(st, present, MISSING, TOKEN_SETTING, |t| {
        !(t.evolution.tokens.is_empty() && t.evolution.jwt_keys.is_empty())
    })?;
    let bytes = read_body(body, st.config.body_limit).await?;
    // The credential is a header, but whose tokens apply depends on the instance the body
    // names: read from the raw bytes, then checked, before the body is parsed.
    let instance = crate::hint::json_account(&bytes, crate::hint::EVOLUTION);
    let named = tenant_named(st, Provider::Evolution, instance).await?;
    let checked = authenticate(st, &named.tenant, &parts.headers, path_secret);
    let tenant = named.authenticated(checked, Provider::Evolution, WRONG)?;
    let parsed = parse::evolution::parse(&bytes, path_event.as_deref())
        .map_err(|e| IngestError::BadRequest(e.0))?;
    check_accounts(st, Provider::Evolution, &tenant, &parsed).await?;
    if parsed.items.is_empty() && parsed.ignored == ["presence"] {
        let body = parse::presence::parse_evolution(&bytes, path_event.as_deref())
            .map_err(|e| IngestError::BadRequest(e.0))?;
        return presence_all(st, Provider::Evolution, &tenant, body).await;
    }
    let wanted = OptIns {
        from_me: tenant.evolution.accept_from_me,
        status_broadcast: tenant.evolution.accept_status_broadcast,
    };
    let (parsed, operators) = apply_opt_ins(wanted, parsed);
    let lids = crate::lids::learned(Provider::Evolution, &parsed);
    let answer = append_all(st, Provider::Evolution, &tenant, parsed).await?;
    st.lids.learn(lids);
    pause_for_operators(st, Provider::Evolution, &tenant, operators).await?;
    Ok(answer)
}

/// The 401 reason when a request carries no Evolution credential at all.
const MISSING: &str =
    "missing Evolution credential (apikey header, Authorization bearer, or path secret)";

fn authenticate(
    st: &IngestState,
    tenant: &Tenant,
    headers: &HeaderMap,
    path_secret: Option<&str>,
) -> Result<(), IngestError> {
    let ev = &tenant.evolution;
    if ev.tokens.is_empty() && ev.jwt_keys.is_empty() {
        return unsigned_allowed(st, TOKEN_SETTING);
    }
    if path_secret.is_some_and(|s| auth::matches_any(&ev.tokens, s)) {
        return Ok(());
    }
    if header_str(headers, "apikey").is_some_and(|k| auth::matches_any(&ev.tokens, k.trim())) {
        return Ok(());
    }
    if let Some(bearer) = header_str(headers, "authorization").and_then(|a| {
        a.trim()
            .strip_prefix("Bearer ")
            .or(a.trim().strip_prefix("bearer "))
    }) {
        let bearer = bearer.trim();
        if auth::matches_any(&ev.tokens, bearer) {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match auth::verify_jwt_hs256(&ev.jwt_keys, bearer, now) {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!(reason = %e, "evolution bearer token refused"),
        }
    }
    Err(IngestError::Unauthorized(WRONG))
}

/// The 401 reason when the credential matches none of the tenant's.
const WRONG: &str =
    "missing or wrong Evolution credential (apikey header, Authorization bearer, or path secret)";
