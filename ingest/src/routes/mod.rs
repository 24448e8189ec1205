//! The webhook routes, one small file per gateway, and the pipeline they share:
//! content type -> a credential is present -> body (limited) -> the account the raw body names
//! (`crate::hint`, no parsing) -> its tenant -> authenticate over the raw body -> parse ->
//! every account belongs to that tenant -> size and key-length checks -> append each message in
//! body order -> answer.
//!
//! Authentication comes before parsing, for every tenant: a request without any credential
//! header is refused before its body is read (unless unsigned mode is on), and the signature (or
//! Evolution's header credential) is checked with the secrets of the tenant owning the account
//! the raw body names, found by one bounded scan of the bytes, before anything is built from the
//! body. A forged body costs its bytes and one pass of a MAC, never a parse. An account no
//! tenant serves goes through the same checks with a stand-in tenant and is refused exactly as
//! a wrong signature is (`named`): the answers do not tell which accounts exist.
//!
//! Nothing is appended until the whole request has passed every check, so a refused request
//! stores nothing. Appends stop at the first failure (keeping receive order); the gateway's
//! retry then finds the earlier messages as duplicates.

pub mod admin;
pub mod evolution;
pub mod generic;
pub mod meta;
mod named;
mod operator;
pub mod twilio;
pub mod waha;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::BytesMut;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use lull_core::metrics as m;
use lull_core::protocol::{AppendOutcome, OperatorOutcome};
use lull_core::window::MAX_MESSAGE_BYTES;
use lull_core::Message;
use lull_core::{ConversationKey, Provider};

use crate::auth;
use crate::error::IngestError;
use crate::parse::{ParseError, Parsed};
use crate::state::IngestState;
use crate::tenant::{normalise_account, Secrets, Tenant};
pub(crate) use named::tenant_named;

/// Every (method, path) the webhook [`router`] serves, in axum's path syntax. Deployments expose
/// exactly these (tests/infra.rs checks the SAM template's HTTP API against this list, and a test
/// here checks the router against it).
pub const WEBHOOK_ROUTES: &[(&str, &str)] = &[
    ("GET", "/webhook/meta"),
    ("POST", "/webhook/meta"),
    ("POST", "/webhook/evolution"),
    ("POST", "/webhook/evolution/{event}"),
    ("POST", "/webhook/evolution/k/{secret}"),
    ("POST", "/webhook/evolution/k/{secret}/{event}"),
    ("POST", "/webhook/twilio"),
    ("POST", "/webhook/generic"),
    ("POST", "/webhook/waha"),
    ("POST", "/admin/conversations/pause"),
    ("POST", "/admin/conversations/resume"),
];

/// The webhook `Router`: serve it locally or through `lambda_http`.
///
/// - `GET|POST /webhook/meta`
/// - `POST /webhook/evolution`, `/webhook/evolution/{event}`, `/webhook/evolution/k/{secret}`,
///   `/webhook/evolution/k/{secret}/{event}`
/// - `POST /webhook/twilio`
/// - `POST /webhook/generic`
/// - `POST /webhook/waha`
/// - `POST /admin/conversations/pause`, `/admin/conversations/resume` (bearer `admin_token`)
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/webhook/meta", get(meta::verify).post(meta::receive))
        .route("/webhook/evolution", post(evolution::receive))
        .route("/webhook/evolution/{event}", post(evolution::receive_event))
        .route(
            "/webhook/evolution/k/{secret}",
            post(evolution::receive_keyed),
        )
        .route(
            "/webhook/evolution/k/{secret}/{event}",
            post(evolution::receive_keyed_event),
        )
        .route("/webhook/twilio", post(twilio::receive))
        .route("/webhook/generic", post(generic::receive))
        .route("/webhook/waha", post(waha::receive))
        .route("/admin/conversations/pause", post(admin::pause))
        .route("/admin/conversations/resume", post(admin::resume))
        .with_state(state)
}

/// Refuses a body whose content type is not `expected` (parameters such as charset allowed).
pub(crate) fn require_content_type(
    headers: &HeaderMap,
    expected: &'static str,
) -> Result<(), IngestError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected));
    if ok {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(expected))
    }
}

/// Reads the whole body, refusing one longer than the limit (413) without buffering past it.
///
/// The body is held once: a body in one chunk is kept as is; one in several is copied into a
/// buffer reserved for its declared length (never more than `limit`, which the sender could make
/// lull read anyway), rather than collecting every chunk and then copying them all, which held
/// each body twice at its end.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    let declared = axum::body::HttpBody::size_hint(&body)
        .exact()
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .min(limit);
    let mut body = Limited::new(body, limit);
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) if e.is::<LengthLimitError>() => {
                return Err(IngestError::BodyTooLarge { limit })
            }
            Err(_) => return Err(IngestError::BadRequest("body could not be read".into())),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(head) => {
                buf.reserve(declared.max(head.len() + data.len()));
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(match first {
        Some(only) => only,
        None => buf.freeze(),
    })
}

/// A header's value as a string, if present and visible ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The directory's only tenant, when it has exactly one (see [`TenantDirectory::sole`]): only
/// used to name the missing setting of a request without credentials.
///
/// [`TenantDirectory::sole`]: crate::tenant::TenantDirectory::sole
pub(crate) fn sole_tenant(st: &IngestState) -> Option<Arc<Tenant>> {
    st.tenants.sole()
}

/// After authentication and parsing: every account named in the body belongs to `tenant`, the
/// one the request was authenticated for (403 otherwise, nothing stored).
pub(crate) async fn check_accounts(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    parsed: &Parsed,
) -> Result<(), IngestError> {
    if parsed.accounts.is_empty() && !parsed.items.is_empty() {
        return Err(IngestError::BadRequest(format!(
            "{provider}: the body names no account"
        )));
    }
    for account in &parsed.accounts {
        let owner = st
            .tenants
            .find(provider, account)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        if owner.is_none_or(|o| o.id != tenant.id) {
            return Err(IngestError::Forbidden(
                "the body names an account of another tenant",
            ));
        }
    }
    Ok(())
}

/// A tenant with no secret for a gateway: refused with the missing setting's name, unless
/// unsigned mode was explicitly switched on.
pub(crate) fn unsigned_allowed(st: &IngestState, setting: &'static str) -> Result<(), IngestError> {
    if st.config.allow_unsigned {
        Ok(())
    } else {
        Err(IngestError::NotConfigured(setting))
    }
}

/// Refuses a request that carries no credential at all before its body is read: without
/// unsigned mode no tenant could accept it, whatever the body says. A single tenant with no
/// secret for the gateway hears which `setting` it lacks, as after parsing.
pub(crate) fn require_credential(
    st: &IngestState,
    present: bool,
    missing: &'static str,
    setting: &'static str,
    has_secret: impl Fn(&Tenant) -> bool,
) -> Result<(), IngestError> {
    if present || st.config.allow_unsigned {
        return Ok(());
    }
    match sole_tenant(st) {
        Some(t) if !has_secret(&t) => Err(IngestError::NotConfigured(setting)),
        _ => Err(IngestError::Unauthorized(missing)),
    }
}

/// The conversation key of one parsed message, checked against the store's key limits.
pub(crate) fn key_of(
    provider: Provider,
    item: &crate::parse::Item,
) -> Result<ConversationKey, IngestError> {
    let key = ConversationKey {
        provider,
        account: normalise_account(provider, &item.account).to_string(),
        user: item.user.clone(),
        group: item.group.clone(),
    };
    key.check_lengths(&item.message.id)
        .map_err(|e| IngestError::BadRequest(format!("{provider}: {e}")))?;
    Ok(key)
}

/// Checks the message count (413 beyond the limit: the envelope is too large), keeps or skips
/// each item by the rules of `docs/gateways.md` ("What is kept"), counts ignored, skipped and
/// partial items, then appends every message in body order; 200 only when all were accepted.
/// (Appending is the core's [`Appender`](crate::Appender); handing batches off is the sink's,
/// later.)
pub(crate) async fn append_all(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    parsed: Parsed,
) -> Result<Response, IngestError> {
    let max = st.config.max_messages_per_request;
    let got = parsed.items.len() + parsed.beyond_cap;
    if got > max || parsed.beyond_cap > 0 {
        return Err(IngestError::TooManyMessages { got, max });
    }
    let (mut ignored, mut partial) = (parsed.ignored, parsed.partial);
    let mut keyed: Vec<(ConversationKey, Message, bool)> = Vec::new();
    for item in parsed.items {
        let Some(key) = keep_key(provider, &item, &mut ignored)? else {
            continue;
        };
        let operator = item.opt_in == Some(crate::parse::OptIn::Operator);
        let mut message = item.message;
        if message.stored_size() > MAX_MESSAGE_BYTES {
            message = without_content(message);
            partial.push("too_large");
        }
        keyed.push((key, message, operator));
    }
    let skipped = ignored.len();
    for (reason, n) in ignored.iter() {
        metrics::counter!(m::IGNORED_EVENTS, "reason" => reason, "provider" => provider.as_str())
            .increment(n as u64);
    }
    for reason in partial {
        metrics::counter!(m::PARTIAL_ITEMS, "reason" => reason, "provider" => provider.as_str())
            .increment(1);
    }
    let (mut accepted, mut duplicates, mut stale) = (0usize, 0usize, 0usize);
    for (key, message, operator) in keyed {
        // An operator's message the tenant buffers is appended and pauses, once per id.
        if operator {
            let out = st
                .appender
                .operator_message(key, tenant.policy, message, true)
                .await
                .map_err(IngestError::from_append)?;
            match out {
                OperatorOutcome::Paused { .. } => accepted += 1,
                // (No conversation cannot come back when the message is buffered.)
                OperatorOutcome::Duplicate | OperatorOutcome::NoConversation => duplicates += 1,
                OperatorOutcome::Stale => stale += 1,
            }
            continue;
        }
        let out = st
            .appender
            .append(key, tenant.policy, message)
            .await
            .map_err(IngestError::from_append)?;
        match out {
            AppendOutcome::Accepted { .. } => accepted += 1,
            AppendOutcome::Duplicate { .. } => duplicates += 1,
            AppendOutcome::Stale => stale += 1,
        }
    }
    // A message older than the dedupe horizon is skipped (`lull_core::protocol::stale`): the
    // answer counts it as ignored, the metric `lull_stale_messages_total` by itself.
    let skipped = skipped + stale;
    tracing::debug!(tenant = %tenant.id, %provider, accepted, duplicates, ignored = skipped, stale, "webhook accepted");
    let body =
        format!(r#"{{"accepted":{accepted},"duplicates":{duplicates},"ignored":{skipped}}}"#);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The key of an item the store can hold; `None` (the item skipped, its reason pushed) when its
/// message id, user, group or target id is over the store's key limits. An account over them
/// is the envelope's fault: 400.
fn keep_key(
    provider: Provider,
    item: &crate::parse::Item,
    ignored: &mut crate::parse::Tally,
) -> Result<Option<ConversationKey>, IngestError> {
    match key_of(provider, item) {
        Ok(key) => {
            let target_len = item
                .message
                .target
                .as_ref()
                .map_or(0, |t| t.message_id.len());
            if target_len > lull_core::key::MAX_MESSAGE_ID_BYTES {
                ignored.push("id_too_long");
                return Ok(None);
            }
            Ok(Some(key))
        }
        Err(e) => {
            let account = ConversationKey {
                provider,
                account: normalise_account(provider, &item.account).to_string(),
                user: String::new(),
                group: None,
            };
            account
                .check_lengths("")
                .map_err(|e| IngestError::BadRequest(format!("{provider}: {e}")))?;
            ignored.push(match e {
                IngestError::BadRequest(ref r) if r.contains("message id") => "id_too_long",
                _ => "key_too_long",
            });
            Ok(None)
        }
    }
}

/// A message too large for a window, kept without its content: kind `other`, `provider_type`
/// `too_large`, with its id, time and sender id (when that is short) only.
fn without_content(m: Message) -> Message {
    let sender = lull_core::message::Sender {
        id: if m.sender.id.len() <= lull_core::key::MAX_KEY_PART_BYTES {
            m.sender.id
        } else {
            String::new()
        },
        ..Default::default()
    };
    let mut out = Message::of_kind(m.id, lull_core::MessageKind::Other, sender);
    out.provider_type = Some("too_large".into());
    out.sent_at = m.sent_at;
    out
}

/// Applies the presence entries of an authenticated body (at most
/// [`MAX_PRESENCES`](crate::parse::presence::MAX_PRESENCES) of them; none is stored as a
/// message): per conversation only its last entry. The entries of one body share the gateway's
/// time, and applied in order each replaces the one before it, so the last one's state is what
/// remains: applying only it costs one read and at most one write per conversation instead of
/// one per entry (a group's body names each participant). The entries it supersedes are counted
/// as ignored (`presence_superseded`). 200 with what they did; a store failure is a 5xx so the
/// gateway retries. A key over the store's limits refuses the body before anything is applied.
pub(crate) async fn presence_all(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    body: crate::parse::presence::PresenceBody,
) -> Result<Response, IngestError> {
    let count_ignored = |reason: &'static str| {
        metrics::counter!(m::IGNORED_EVENTS, "reason" => reason, "provider" => provider.as_str())
            .increment(1);
    };
    for reason in &body.skipped {
        count_ignored(reason);
    }
    let mut ignored = body.skipped.len();
    let mut entries: Vec<(ConversationKey, crate::parse::presence::PresenceItem)> = Vec::new();
    for item in body.items {
        // A chat named by its LID: the conversation its messages go to (`crate::lids`).
        let mapped = item
            .lid
            .then(|| st.lids.user_for(provider, &item.account, &item.user))
            .flatten();
        if item.lid && mapped.is_none() {
            count_ignored("lid_unmapped");
        }
        let key = ConversationKey {
            provider,
            account: normalise_account(provider, &item.account).to_string(),
            user: mapped.unwrap_or_else(|| item.user.clone()),
            group: item.group.clone(),
        };
        key.check_lengths("")
            .map_err(|e| IngestError::BadRequest(format!("{provider}: {e}")))?;
        // A later entry for the same conversation supersedes this one.
        if let Some(i) = entries.iter().position(|(k, _)| *k == key) {
            entries.remove(i);
            count_ignored("presence_superseded");
            ignored += 1;
        }
        entries.push((key, item));
    }
    let mut applied = 0usize;
    for (key, item) in entries {
        let out = st
            .appender
            .presence(key, tenant.policy, item.kind, item.sent_at)
            .await
            .map_err(IngestError::from_append)?;
        if out == lull_core::protocol::PresenceOutcome::Applied {
            applied += 1;
        }
    }
    let body = format!(r#"{{"presence":{applied},"ignored":{ignored}}}"#);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// A gateway that signs the raw body with HMAC-SHA256 in one header (`sha256=<hex>`).
pub(crate) struct BodySigned {
    pub provider: Provider,
    /// The body-only signature header (lowercase), if the gateway has one.
    pub header: Option<&'static str>,
    /// The 401 reasons when the header is absent, and when it does not match.
    pub missing: &'static str,
    pub mismatch: &'static str,
    /// The setting a tenant without secrets lacks.
    pub setting: &'static str,
    /// The tenant's secrets for this gateway (any one matching is enough).
    pub secrets: fn(&Tenant) -> &Secrets,
    pub parse: fn(&[u8]) -> Result<Parsed, ParseError>,
    /// Where the raw body names its account ([`crate::hint`]).
    pub account: &'static [crate::hint::Step],
    /// Also accepts Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`), whose timestamp tolerance refuses a replayed request.
    pub standard_webhooks: bool,
}

impl BodySigned {
    /// True when the request carries a credential this gateway reads.
    fn signed(&self, headers: &HeaderMap) -> bool {
        self.header
            .is_some_and(|h| header_str(headers, h).is_some())
            || (self.standard_webhooks && crate::standard_webhooks::is_signed(headers))
    }

    /// Checks the signature of `body` under `tenant`'s secrets.
    fn verify(
        &self,
        st: &IngestState,
        tenant: &Tenant,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), IngestError> {
        let secrets = (self.secrets)(tenant);
        if secrets.is_empty() {
            return unsigned_allowed(st, self.setting);
        }
        if self.standard_webhooks && crate::standard_webhooks::is_signed(headers) {
            return crate::standard_webhooks::verify(secrets, headers, body)
                .map_err(IngestError::Unauthorized);
        }
        let sig = self
            .header
            .and_then(|h| header_str(headers, h))
            .ok_or(IngestError::Unauthorized(self.missing))?;
        if auth::verify_sha256_header(secrets, sig, body) {
            Ok(())
        } else {
            Err(IngestError::Unauthorized(self.mismatch))
        }
    }
}

/// The pipeline of a [`BodySigned`] gateway: no signature header, no body read; the signature
/// is checked with the secrets of the tenant owning the account the raw body names, then the
/// body is parsed.
pub(crate) async fn receive_body_signed(
    st: &IngestState,
    req: Request,
    gw: &BodySigned,
) -> Result<Response, IngestError> {
    let (parts, body) = req.into_parts();
    require_content_type(&parts.headers, "application/json")?;
    require_credential(st, gw.signed(&parts.headers), gw.missing, gw.setting, |t| {
        !(gw.secrets)(t).is_empty()
    })?;
    let bytes = read_body(body, st.config.body_limit).await?;
    let account = crate::hint::json_account(&bytes, gw.account);
    let named = tenant_named(st, gw.provider, account).await?;
    let checked = gw.verify(st, &named.tenant, &parts.headers, &bytes);
    let tenant = named.authenticated(checked, gw.provider, gw.mismatch)?;
    let parsed = (gw.parse)(&bytes).map_err(|e| IngestError::BadRequest(e.0))?;
    check_accounts(st, gw.provider, &tenant, &parsed).await?;
    operator::append_and_pause(st, gw.provider, &tenant, parsed, Default::default()).await
}

/// Turns a handler's result into the response.
pub(crate) fn respond(r: Result<Response, IngestError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
