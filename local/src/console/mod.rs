//! The operators' console: server-rendered HTML pages on the ops listener (`/console`) and
//! behind `lull console --aws`, for support staff who must answer "why did the bot not answer
//! this customer?" and steer what lull holds.
//!
//! - `GET /console`: the tenants, a conversation search by key, the last hour's hand-offs (a
//!   chart: AI calls saved, hand-off lag).
//! - `GET /console/tenants/{id}`: that tenant's parked batches, then its held conversations in
//!   due order (open windows, pending batches with their attempts, paused ones), a page at a
//!   time.
//! - `GET /console/conversation?key=KEY`: where the conversation stands and why, and its
//!   timeline (accepted, window, due, batch, attempts, acknowledgement), message text hidden;
//!   `POST /console/conversation/reveal` shows the text (an explicit, logged action).
//! - `POST /console/actions/{redrive,pause,resume}`: the same core calls as `lull redrive`
//!   (a redrive claim on the conversation) and `lull conversations pause|resume`
//!   (`Intake::pause`, an admin pause).
//!
//! Every value interpolated into a page goes through maud, which escapes it. The rules that keep
//! another site from using an operator's browser against it are in [`guard`]. What the console
//! reads is in [`Backend`]: always an index (the due index, in pages), never a scan of the
//! conversations (docs/console.md states the cost of a page).

mod backend;
pub mod chart;
pub mod guard;
pub mod local;
mod pages;

pub use backend::{Backend, BackendError, ConsoleIndex};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lull_core::protocol::PauseOutcome;
use lull_core::{Conversation, ConversationKey, Millis, Provider};
use serde::Deserialize;

use guard::Guard;

/// How many conversations a list page shows.
pub const PAGE: usize = 25;
/// How many due-index entries one list page reads at most (of every tenant: a page of one
/// tenant among many may come back shorter, with a link to go on from where it stopped).
pub const SCAN: usize = 200;

/// One due-index entry: a conversation with an open window or a pending batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index position (`Conversation::index_due`, ms; `window::PARKED` for parked ones).
    pub due_at: u64,
    pub key: ConversationKey,
}

/// Where a list page goes on from: the last index entry it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub due_at: u64,
    pub key: String,
}

/// The accounts a tenant owns, for filtering index entries by their key alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantScope {
    pub id: String,
    /// Per provider, the accounts it owns; `None`: every account (the only tenant, with none
    /// listed).
    pub accounts: Vec<(Provider, Option<Vec<String>>)>,
    /// Removed (a tombstone: what it accepted still reaches its sink).
    pub removed: bool,
}

impl TenantScope {
    /// True when conversation `key` belongs to this tenant.
    pub fn owns(&self, key: &ConversationKey) -> bool {
        self.accounts.iter().any(|(p, accounts)| {
            *p == key.provider
                && accounts.as_ref().is_none_or(|a| {
                    let account =
                        lull_ingest::tenant::normalise_account(key.provider, &key.account);
                    a.iter()
                        .any(|x| lull_ingest::tenant::normalise_account(*p, x) == account)
                })
        })
    }

    /// Scopes from stored tenant specs: an account list owns those accounts; the only live
    /// tenant with an empty list owns every account of that provider (as the directory routes).
    pub fn from_specs<'a>(
        specs: impl IntoIterator<Item = (&'a lull_ingest::tenant_spec::TenantSpec, bool)>,
    ) -> Vec<TenantScope> {
        let specs: Vec<_> = specs.into_iter().collect();
        let live = specs.iter().filter(|(_, removed)| !removed).count();
        specs
            .into_iter()
            .map(|(spec, removed)| TenantScope {
                id: spec.id.clone(),
                removed,
                accounts: Provider::ALL
                    .iter()
                    .filter_map(|&p| {
                        let a = spec.accounts(p);
                        if !a.is_empty() {
                            Some((p, Some(a.to_vec())))
                        } else if live == 1 && !removed {
                            Some((p, None))
                        } else {
                            None
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// The scopes of a stored tenant set; with none stored, the single tenant of flags and
    /// environment (`default`, every account).
    pub fn from_records(records: &[lull_ingest::tenant_spec::TenantRecord]) -> Vec<TenantScope> {
        if records.is_empty() {
            return vec![TenantScope::everything("default")];
        }
        TenantScope::from_specs(records.iter().map(|r| (&r.spec, r.removed_at.is_some())))
    }

    /// The single tenant of flags and environment (no stored tenants): every account.
    pub fn everything(id: &str) -> TenantScope {
        TenantScope {
            id: id.to_string(),
            accounts: Provider::ALL.iter().map(|&p| (p, None)).collect(),
            removed: false,
        }
    }
}

struct Console<B> {
    backend: B,
    guard: Guard,
    /// Keys log lines about a reveal (a keyed hash, never the key).
    log_secret: Arc<[u8]>,
}

/// The console's routes, under `/console`.
pub fn router<B: Backend>(backend: B, log_secret: Arc<[u8]>) -> Router {
    let state = Arc::new(Console {
        backend,
        guard: Guard::new(),
        log_secret,
    });
    Router::new()
        .route("/console", get(index::<B>))
        .route("/console/tenants/{id}", get(tenant::<B>))
        .route("/console/conversation", get(conversation::<B>))
        .route("/console/conversation/reveal", post(reveal::<B>))
        .route("/console/actions/{action}", post(action::<B>))
        .with_state(state)
}

/// Every console answer: HTML that is never cached, framed or sniffed, and that runs no script.
fn html(status: StatusCode, session: Option<String>, body: maud::Markup) -> Response {
    let mut resp = (status, body.into_string()).into_response();
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, header::HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(h, header::CACHE_CONTROL, "no-store");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with a
    // form post, which the cross-site rule (guard) must refuse.
    set(h, header::REFERRER_POLICY, "same-origin");
    if let Some(cookie) = session.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, cookie);
    }
    resp
}

fn failed(e: impl std::fmt::Display) -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        pages::problem("The store did not answer", &e.to_string()),
    )
}

async fn index<B: Backend>(State(c): State<Arc<Console<B>>>, headers: HeaderMap) -> Response {
    let session = match c.guard.page(&headers) {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let now = Millis::now_wall();
    match c.backend.tenants().await {
        Ok(tenants) => html(
            StatusCode::OK,
            session.set_cookie,
            pages::index(
                &c.backend.describe(),
                &tenants,
                c.backend.activity(now).as_deref(),
                now,
            ),
        ),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    /// `<due_at>.<storage key>`: where the previous page stopped.
    after: Option<String>,
    /// The parked list's cursor: a storage key.
    parked_after: Option<String>,
}

fn parse_cursor(s: &str) -> Option<Cursor> {
    let (due, key) = s.split_once('.')?;
    Some(Cursor {
        due_at: due.parse().ok()?,
        key: key.to_string(),
    })
}

/// A tenant's page: its parked batches (first), then its held conversations in due order.
async fn tenant<B: Backend>(
    State(c): State<Arc<Console<B>>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match c.guard.page(&headers) {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let tenants = match c.backend.tenants().await {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let Some(scope) = tenants.into_iter().find(|t| t.id == id) else {
        return html(
            StatusCode::NOT_FOUND,
            session.set_cookie,
            pages::problem("No such tenant", &format!("no tenant has the id {id:?}")),
        );
    };
    let after = match q.after.as_deref().map(parse_cursor) {
        Some(None) => {
            return html(
                StatusCode::BAD_REQUEST,
                session.set_cookie,
                pages::problem("Bad page cursor", "after= must be <due_at>.<key>"),
            )
        }
        Some(Some(cur)) => Some(cur),
        None => None,
    };
    let now = Millis::now_wall();
    let held = match list(&c.backend, &scope, after).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let parked = match parked(&c.backend, &scope, q.parked_after.clone()).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    html(
        StatusCode::OK,
        session.set_cookie,
        pages::tenant(
            &scope,
            &parked,
            &held,
            c.backend.activity(now).as_deref(),
            now,
        ),
    )
}

/// One list page: the conversations read, how many index entries it took, where to go on.
pub struct Listed {
    pub conversations: Vec<Conversation>,
    pub scanned: usize,
    pub next: Option<String>,
}

/// Reads one page of `scope`'s held conversations: at most [`SCAN`] index entries from `after`,
/// and the records of at most [`PAGE`] of them that the tenant owns.
async fn list<B: Backend>(
    backend: &B,
    scope: &TenantScope,
    after: Option<Cursor>,
) -> Result<Listed, BackendError> {
    let entries = backend.due_page(after, SCAN).await?;
    owned(backend, scope, entries, |e| {
        format!("{}.{}", e.due_at, e.key.storage_key())
    })
    .await
}

/// The parked ones of `scope`, a page from key `after`.
async fn parked<B: Backend>(
    backend: &B,
    scope: &TenantScope,
    after: Option<String>,
) -> Result<Listed, BackendError> {
    let entries = backend.parked_page(after, SCAN).await?;
    owned(backend, scope, entries, |e| e.key.storage_key()).await
}

/// The records of the first [`PAGE`] entries `scope` owns; the next page goes on from the last
/// entry read (`cursor` writes it) when this one stopped early or read a full [`SCAN`].
async fn owned<B: Backend>(
    backend: &B,
    scope: &TenantScope,
    entries: Vec<IndexEntry>,
    cursor: impl Fn(&IndexEntry) -> String,
) -> Result<Listed, BackendError> {
    let scanned = entries.len();
    let mut conversations = Vec::new();
    let mut last = None;
    for e in &entries {
        last = Some(e);
        if !scope.owns(&e.key) {
            continue;
        }
        if let Some(conv) = backend.load(&e.key).await? {
            conversations.push(conv);
        }
        if conversations.len() >= PAGE {
            break;
        }
    }
    let more = conversations.len() >= PAGE || scanned >= SCAN;
    Ok(Listed {
        conversations,
        scanned,
        next: last.filter(|_| more).map(cursor),
    })
}

#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
    /// What the last action did (shown once, after its redirect).
    done: Option<String>,
}

async fn conversation<B: Backend>(
    State(c): State<Arc<Console<B>>>,
    Query(q): Query<KeyQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match c.guard.page(&headers) {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let Some(raw) = q.key.filter(|k| !k.trim().is_empty()) else {
        return html(
            StatusCode::BAD_REQUEST,
            session.set_cookie,
            pages::problem("No conversation key", "give ?key=provider|account|user"),
        );
    };
    show(&c, session, &raw, q.done.as_deref(), false).await
}

async fn show<B: Backend>(
    c: &Console<B>,
    session: guard::Session,
    raw: &str,
    done: Option<&str>,
    reveal: bool,
) -> Response {
    let key = match lull_ingest::routes::admin::conversation_key(raw) {
        Ok(k) => k,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                session.set_cookie,
                pages::problem("Bad conversation key", &format!("{raw:?}: {e}")),
            )
        }
    };
    let now = Millis::now_wall();
    match c.backend.load(&key).await {
        Ok(Some(conv)) => html(
            StatusCode::OK,
            session.set_cookie,
            pages::conversation(
                &conv,
                now,
                c.backend.horizon(),
                &session.token,
                done,
                reveal,
            ),
        ),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            session.set_cookie,
            pages::problem(
                "No such conversation",
                "lull holds no record of this key (never seen, or idle past its retention)",
            ),
        ),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct ActionForm {
    key: String,
    csrf: String,
    /// Pause only: how long (`30m`, `2h`; at most 7 days).
    #[serde(default, rename = "for")]
    pause_for: Option<String>,
}

/// The largest form an action takes: a key (at most ~2 KB) and a duration.
const FORM_LIMIT: usize = 4 * 1024;

fn form(headers: &HeaderMap, body: &[u8], guard: &Guard) -> Result<ActionForm, guard::Refusal> {
    if body.len() > FORM_LIMIT {
        return Err(guard::refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a console form is at most {FORM_LIMIT} bytes"),
        ));
    }
    let f: ActionForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| guard::refuse(StatusCode::BAD_REQUEST, &format!("bad form: {e}")))?;
    guard.action(headers, &f.csrf)?;
    Ok(f)
}

/// `POST /console/conversation/reveal`: the conversation page with message text shown. A POST
/// (with the CSRF token), so the text is never behind a link or in a URL, and logged.
async fn reveal<B: Backend>(
    State(c): State<Arc<Console<B>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = match form(&headers, &body, &c.guard) {
        Ok(f) => f,
        Err(refused) => return refused.into_response(),
    };
    let session = match c.guard.page(&headers) {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    if let Ok(key) = ConversationKey::from_storage_key(&f.key) {
        tracing::info!(
            conversation = %key.log_hash(&c.log_secret),
            "console: an operator revealed message text"
        );
    }
    show(&c, session, &f.key, None, true).await
}

/// `POST /console/actions/{redrive,pause,resume}`: runs the action, then redirects (303) to the
/// conversation's page saying what it did.
async fn action<B: Backend>(
    State(c): State<Arc<Console<B>>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = match form(&headers, &body, &c.guard) {
        Ok(f) => f,
        Err(refused) => return refused.into_response(),
    };
    let key = match lull_ingest::routes::admin::conversation_key(&f.key) {
        Ok(k) => k,
        Err(e) => {
            return guard::refuse(StatusCode::BAD_REQUEST, &format!("{:?}: {e}", f.key))
                .into_response()
        }
    };
    let outcome = match action.as_str() {
        "redrive" => c.backend.redrive(&key).await,
        "resume" => c.backend.pause(&key, None).await.map(said),
        "pause" => {
            let d = match pause_duration(f.pause_for.as_deref().unwrap_or("30m")) {
                Ok(d) => d,
                Err(e) => return guard::refuse(StatusCode::BAD_REQUEST, &e).into_response(),
            };
            c.backend.pause(&key, Some(d)).await.map(said)
        }
        other => {
            return guard::refuse(
                StatusCode::NOT_FOUND,
                &format!("no console action {other:?} (redrive, pause, resume)"),
            )
            .into_response()
        }
    };
    let done = match outcome {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    tracing::info!(
        conversation = %key.log_hash(&c.log_secret),
        action = action.as_str(),
        "console action"
    );
    let location = format!(
        "/console/conversation?{}",
        serde_urlencoded::to_string([("key", f.key.as_str()), ("done", done.as_str())])
            .unwrap_or_default()
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn pause_duration(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration: {e}"))?;
    if d.is_zero() || d > lull_core::policy::MAX_PAUSE {
        return Err(format!(
            "{s:?}: a pause lasts more than 0 and at most 7 days"
        ));
    }
    Ok(d)
}

/// What a pause or resume did, in the words of `lull conversations`.
fn said(outcome: PauseOutcome) -> String {
    match outcome {
        PauseOutcome::NoConversation => "no such conversation".into(),
        PauseOutcome::Set(Some(until)) => format!("paused until {}", until.rfc3339()),
        PauseOutcome::Set(None) => "resumed".into(),
        PauseOutcome::Unchanged => "unchanged".into(),
    }
}

/// Serves the console alone on `listener` until `signal` (`lull console --aws`; `lull serve`
/// merges [`router`] into its ops listener instead).
pub async fn serve<B: Backend>(
    listener: tokio::net::TcpListener,
    backend: B,
    log_secret: Arc<[u8]>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(backend, log_secret))
        .with_graceful_shutdown(signal)
        .await
}
