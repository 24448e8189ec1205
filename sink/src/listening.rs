//! "The bot is listening": when a window closes, mark the batch's messages read and show the
//! typing indicator (a tenant's `on_close`), through the messaging API of its provider.
//!
//! Best effort and out of the hand-off's way: [`Listening`] wraps the sink and, at each hand-off,
//! *spawns* the calls before it hands the batch to the inner sink, so the user sees "typing" as
//! soon as the window closes, while the AI step works; the hand-off never awaits them, so a slow,
//! failing or hanging API cannot delay, fail or reorder it. Each call is bounded by the listen
//! timeout (`--listen-timeout`, default 2 s; plus the time Evolution holds a presence by design).
//! Once per batch: a batch whose hand-off is retried in the same process is not signalled again
//! (a retry in another process may signal again, which the APIs take as a repeat of the same
//! read). Every outcome is counted in [`lull_core::metrics::LISTEN_CALLS`]; no message text or
//! phone number is logged.
//!
//! Off costs nothing: when the tenant directory knows the tenant's setting at once (its fresh
//! snapshot, [`ListenRoutes::listen_now`]), a tenant that shows nothing, a provider without such
//! calls or a batch with nothing to mark starts no task and no lookup. Only an unknown setting
//! (no fresh snapshot) is looked up, in the task.
//!
//! Bounded: at most [`MAX_IN_FLIGHT`] batches' calls run at once in a process; a batch that
//! finds them all taken gets none (counted `busy`), so a slow API cannot pile up tasks.
//!
//! A Lambda freezes when its handler returns, so the flush handler calls [`Listening::settle`]
//! after the hand-offs are recorded: it waits (bounded) for the calls still in flight.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use lull_core::listen::{requests, Listen, ListenRequest, Skip};
use lull_core::message::Sender;
use lull_core::metrics as m;
use lull_core::ports::{Acknowledged, Sink, SinkError};
use lull_core::{Batch, Message, Millis, Provider};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The default bound on one listening call.
pub const DEFAULT_LISTEN_TIMEOUT: Duration = Duration::from_secs(2);

/// How many batches' listening calls may be in flight at once in one process.
pub const MAX_IN_FLIGHT: usize = 64;

/// How many recent batch ids are remembered, so a retried hand-off does not signal again.
const RECENT: usize = 4096;

/// The future of a tenant lookup: `Ok(None)` means the tenant shows nothing.
pub type ListenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Listen>, String>> + Send + 'a>>;

/// What the tenant directory knows at once, from memory, of one account's `on_close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenNow {
    /// No tenant shows anything for the account (none serves it, or its `on_close` is off).
    Off,
    /// The tenant's setting.
    On(Listen),
    /// Not known without a lookup (no fresh snapshot in memory).
    Unknown,
}

/// What the tenant of one (provider, account) shows when its windows close.
pub trait ListenRoutes: Send + Sync {
    /// The tenant's setting, looked up (`Ok(None)`: it shows nothing).
    fn listen<'a>(&'a self, provider: Provider, account: &'a str) -> ListenFuture<'a>;

    /// The tenant's setting when it is known without a lookup (no I/O, no wait): a hand-off
    /// whose tenant is known to show nothing starts nothing at all. The default knows nothing.
    fn listen_now(&self, _provider: Provider, _account: &str) -> ListenNow {
        ListenNow::Unknown
    }
}

#[derive(Default)]
struct Recent {
    set: HashSet<uuid::Uuid>,
    order: VecDeque<uuid::Uuid>,
}

impl Recent {
    /// True the first time `id` is seen.
    fn first(&mut self, id: uuid::Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// What sends the calls: present when some tenant may ask for them.
#[derive(Clone)]
struct Active {
    routes: Arc<dyn ListenRoutes>,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
}

/// A sink that also shows the user the bot is listening (see the module docs).
#[derive(Clone)]
pub struct Listening<K> {
    inner: K,
    active: Option<Active>,
    timeout: Duration,
    recent: Arc<Mutex<Recent>>,
    pending: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Tasks spawned so far ([`Listening::tasks_started`]).
    started: Arc<AtomicU64>,
}

impl<K: std::fmt::Debug> std::fmt::Debug for Listening<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("inner", &self.inner)
            .field("on", &self.active.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<K> Listening<K> {
    /// `inner` with the tenants' `on_close` actions from `routes`, each call bounded by `timeout`.
    pub fn new(
        inner: K,
        routes: Arc<dyn ListenRoutes>,
        timeout: Duration,
    ) -> Result<Listening<K>, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lull/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Listening {
            active: Some(Active {
                routes,
                client,
                slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            }),
            timeout,
            ..Listening::off(inner)
        })
    }

    /// `inner` alone: no tenant directory, so nothing is ever sent (a deployment without
    /// tenants, tests of the hand-off itself).
    pub fn off(inner: K) -> Listening<K> {
        Listening {
            inner,
            active: None,
            timeout: DEFAULT_LISTEN_TIMEOUT,
            recent: Arc::default(),
            pending: Arc::default(),
            started: Arc::default(),
        }
    }

    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// Waits, at most `within`, for the listening calls still in flight (a Lambda handler calls
    /// this before it returns; a call cut off is counted as a timeout by its own bound).
    pub async fn settle(&self, within: Duration) {
        let handles: Vec<JoinHandle<()>> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *p)
        };
        let _ = tokio::time::timeout(within, join_all(handles)).await;
    }

    /// How many listening tasks this sink (and its clones) spawned so far: one per batch that
    /// may get a sign, none for a batch whose tenant is known to show nothing.
    pub fn tasks_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Spawns the listening calls of `batch` (never awaited by the hand-off). When the tenant's
    /// setting is known at once ([`ListenRoutes::listen_now`]), what to send is decided here:
    /// a tenant that shows nothing (the default), a provider without such calls or a batch
    /// without a message to mark costs no task, no lookup and no slot.
    fn start(&self, batch: &Batch) {
        let Some(active) = &self.active else { return };
        let c = &batch.conversation;
        let provider = c.provider.as_str();
        let known = match active.routes.listen_now(c.provider, &c.account) {
            ListenNow::Off => return,
            ListenNow::On(listen) if listen.on_close.is_off() => return,
            ListenNow::On(listen) => Some(listen),
            ListenNow::Unknown => None,
        };
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if !recent.first(batch.batch_id) {
                return;
            }
        }
        let known = match known {
            Some(listen) => match calls_of(&listen, batch) {
                Some(calls) => Some(calls),
                None => return,
            },
            None => None,
        };
        let Ok(slot) = active.slots.clone().try_acquire_owned() else {
            count(provider, "none", "busy");
            return;
        };
        let slim = slim(batch);
        let Active { routes, client, .. } = active.clone();
        let timeout = self.timeout;
        self.started.fetch_add(1, Ordering::Relaxed);
        let handle = tokio::spawn(async move {
            let _slot = slot;
            let calls = match known {
                Some(calls) => calls,
                None => match look_up(&*routes, &slim, timeout).await {
                    Some(calls) => calls,
                    None => return,
                },
            };
            // Read and typing go out together: neither waits for the other.
            let sends = calls
                .into_iter()
                .map(|r| send(&client, r, timeout, provider));
            join_all(sends).await;
        });
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|h| !h.is_finished());
        p.push(handle);
    }
}

/// The calls of `batch` after a lookup of its tenant (bounded by `timeout`); `None` (counted
/// unless the tenant shows nothing): none to send.
async fn look_up(
    routes: &dyn ListenRoutes,
    batch: &Batch,
    timeout: Duration,
) -> Option<Vec<ListenRequest>> {
    let c = &batch.conversation;
    let provider = c.provider.as_str();
    let looked = tokio::time::timeout(timeout, routes.listen(c.provider, &c.account)).await;
    match looked {
        Ok(Ok(Some(listen))) => calls_of(&listen, batch),
        Ok(Ok(None)) => None,
        Ok(Err(_)) | Err(_) => {
            count(provider, "none", "lookup_failed");
            None
        }
    }
}

/// The calls `listen` makes for `batch`; `None` (a skip counted, unless the tenant shows
/// nothing): none to send.
fn calls_of(listen: &Listen, batch: &Batch) -> Option<Vec<ListenRequest>> {
    match requests(listen, batch, Millis::now_wall()) {
        Ok(calls) => Some(calls),
        Err(Skip::Off) => None,
        Err(skip) => {
            count(batch.conversation.provider.as_str(), "none", skip.as_str());
            None
        }
    }
}

/// The batch without message content: the calls need only the key and the message ids.
fn slim(batch: &Batch) -> Batch {
    let mut b = Batch::new(
        batch.batch_id,
        batch.conversation.clone(),
        batch.generation,
        batch.reason,
        batch.opened_at,
        batch.closed_at,
        batch.more_pending,
        Vec::new(),
    );
    b.messages = batch
        .messages
        .iter()
        .map(|msg| Message::of_kind(msg.id.clone(), msg.kind, Sender::default()))
        .collect();
    b
}

fn count(provider: &'static str, action: &'static str, outcome: &'static str) {
    metrics::counter!(m::LISTEN_CALLS, "provider" => provider, "action" => action, "outcome" => outcome)
        .increment(1);
}

async fn send(
    client: &reqwest::Client,
    r: ListenRequest,
    timeout: Duration,
    provider: &'static str,
) {
    let bound = timeout + Duration::from_millis(r.holds_ms);
    let call = client
        .post(&r.url)
        .header(r.header.0, &r.header.1)
        .header("content-type", "application/json")
        .body(r.body.to_string())
        .timeout(bound)
        .send();
    let outcome = match call.await {
        Ok(resp) if resp.status().is_success() => "sent",
        Ok(resp) => {
            tracing::debug!(
                status = resp.status().as_u16(),
                provider,
                action = r.action,
                "listening call refused"
            );
            "failed"
        }
        Err(e) if e.is_timeout() => "timeout",
        Err(e) => {
            tracing::debug!(error = %e.without_url(), provider, action = r.action, "listening call failed");
            "failed"
        }
    };
    count(provider, r.action, outcome);
}

impl<K: Sink> Sink for Listening<K> {
    /// The inner sink's answer as it is: the flush reads `Lull-Reply: superseded` from it
    /// (`docs/batch.md`, "The reply guard").
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        self.start(batch);
        self.inner.deliver(batch, within).await
    }
}
