//! The tenant directory over the tenant store, cached for a short time to live.
//!
//! Every process that needs tenants (the local server, the webhook, flush and sweep Lambdas)
//! reads them from the store through a [`CachedDirectory`]: a lookup uses the snapshot loaded
//! at most [`DEFAULT_TENANT_TTL`] ago (configurable). So a change made with `lull tenants apply`
//! is seen by every process within the TTL plus one store read, with no restart, and a Lambda
//! thawed after an idle hour reloads on its first request rather than trusting its old snapshot.
//!
//! **Refreshes survive their callers.** A lookup that finds the snapshot older than the TTL
//! starts one load of the store in a task of its own (single flight: concurrent lookups join
//! it) and waits for it at most [`DEFAULT_REFRESH_WAIT`]. A caller that goes away (a client
//! that drops its connection, a timeout around a sink route) cancels only its own wait, never
//! the load, and nothing stays set behind it: the in-flight marker belongs to the task and is
//! cleared when the task ends or is dropped.
//!
//! **Nothing is read before it is needed.** A process reads the store at its first lookup, not
//! at start-up (the webhook Lambda polls for its first request at once); `lull serve` reads it
//! once at start (a store that cannot be read stops it) and then keeps it fresh in the
//! background ([`CachedDirectory::spawn_refresher`]).
//!
//! **Staleness is bounded and visible.** A store that cannot be read keeps the last good
//! snapshot in force (the deployment keeps answering its tenants' gateways), counted in
//! `lull_tenant_refresh_failures_total`, with `lull_tenant_snapshot_age_seconds` growing and, past
//! [`STALE_AFTER_REFRESHES`] refresh times, [`CachedDirectory::health`] reporting it stale (the
//! local server's `/healthz` answers 503). A failed read is retried at most every
//! [`RETRY_AFTER`]. A process that never loaded a snapshot serves only the bootstrap tenant of
//! its environment, if it has one, and answers 503 for every other account.
//!
//! A stored tenant that fails validation is quarantined (`crate::tenant_snapshot`): the others
//! are served. Removed tenants (tombstones) are not found (their accounts are answered as any
//! account no tenant serves: 401, like a wrong signature), but their sinks stay routable
//! ([`CachedDirectory::sink_for`]) so that what they had accepted still reaches them; so do
//! accounts a tenant dropped while its conversations may hold work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lull_core::metrics as m;
use lull_core::{Policy, Provider};
use tokio::sync::watch;

use crate::tenant::{
    normalise_account, DirectoryError, LookupFuture, Secrets, SinkSettings, Tenant, TenantDirectory,
};
use crate::tenant_snapshot::{Quarantined, Snapshot};
use crate::tenant_spec::TenantRecord;

/// How long a loaded tenant snapshot is used before the store is read again (10 s): the bound
/// on how long a change takes to reach a running process, besides one store read.
pub const DEFAULT_TENANT_TTL: Duration = Duration::from_secs(10);

/// The longest a lookup waits for a store read (5 s): past it, the lookup goes on with the last
/// good snapshot (or the bootstrap tenant, or a 503) while the read goes on without it.
pub const DEFAULT_REFRESH_WAIT: Duration = Duration::from_secs(5);

/// A failed store read is tried again no sooner than this (1 s), however many lookups come.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The snapshot is reported stale when the store has failed since it was loaded and it is older
/// than this many refresh times (3).
pub const STALE_AFTER_REFRESHES: u32 = 3;

/// Where tenants are stored: the SQLite table locally, DynamoDB items (secrets from Secrets
/// Manager) on AWS.
pub trait TenantSource: Send + Sync {
    /// Every stored tenant record, removed ones included, secrets resolved.
    fn load(&self) -> LookupFuture<'_, Vec<TenantRecord>>;
}

/// A [`TenantDirectory`] over a [`TenantSource`], reloaded after `ttl`.
pub struct CachedDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    source: Arc<dyn TenantSource>,
    ttl: Duration,
    wait: Duration,
    defaults: Policy,
    /// The bootstrap tenant alone: what a process that never loaded the store serves.
    bootstrap: Option<Arc<Snapshot>>,
    fallback: Option<Tenant>,
    /// The snapshot in force and the number of the load that built it.
    snap: RwLock<Option<(u64, Arc<Snapshot>)>>,
    /// Numbers loads, so that a slow load never replaces a newer one's snapshot.
    loads: AtomicU64,
    flight: Mutex<Flight>,
}

/// The background load in flight and how the last ones went.
#[derive(Default)]
struct Flight {
    /// Wakes (closes) when the load in flight ends; `None`: none in flight.
    running: Option<watch::Receiver<()>>,
    /// Which flight `running` is (a flight's guard clears only its own).
    id: u64,
    /// Failed loads since the last good one, and the last failure.
    failures: u64,
    failed_at: Option<Instant>,
    last_error: Option<String>,
}

/// How fresh the tenants in force are.
#[derive(Clone, Debug)]
pub struct TenantHealth {
    /// Age of the snapshot in force (`None`: none loaded yet).
    pub age: Option<Duration>,
    /// Failed store reads since the last good one.
    pub failures: u64,
    pub last_error: Option<String>,
    /// True when the store failed since the snapshot was loaded and it is older than
    /// [`STALE_AFTER_REFRESHES`] refresh times (or none was ever loaded).
    pub stale: bool,
    /// Stored tenants left out of the snapshot in force.
    pub quarantined: Vec<Quarantined>,
}

impl CachedDirectory {
    /// A directory over `source`; tenants' missing policy fields (records stored without a
    /// resolved policy) take `defaults`. `fallback` is the single tenant of a setup configured
    /// by flags or environment only: it serves while the store holds no tenant record at all,
    /// and, until the store was read once, when it cannot be read.
    pub fn new(
        source: Arc<dyn TenantSource>,
        ttl: Duration,
        defaults: Policy,
        fallback: Option<Tenant>,
    ) -> CachedDirectory {
        let bootstrap = fallback
            .as_ref()
            .map(|f| Arc::new(Snapshot::build(Vec::new(), &defaults, Some(f))));
        CachedDirectory {
            inner: Arc::new(Inner {
                source,
                ttl,
                wait: DEFAULT_REFRESH_WAIT,
                defaults,
                bootstrap,
                fallback,
                snap: RwLock::new(None),
                loads: AtomicU64::new(0),
                flight: Mutex::new(Flight::default()),
            }),
        }
    }

    /// The same directory, waiting at most `wait` for a store read (default
    /// [`DEFAULT_REFRESH_WAIT`]).
    pub fn with_refresh_wait(mut self, wait: Duration) -> CachedDirectory {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.wait = wait;
        }
        self
    }

    /// The time to live of a snapshot.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Reads the store now and waits for it (start-up: a store that cannot be read stops it).
    /// Returns how many tenants it serves (quarantined ones are logged and counted).
    pub async fn refresh(&self) -> Result<usize, DirectoryError> {
        self.inner.load().await
    }

    /// Keeps the snapshot fresh in the background, one read every refresh time, so that lookups
    /// never wait for the store and the age and health stay current on an idle server.
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let period = inner.ttl.max(Duration::from_secs(1));
            loop {
                tokio::time::sleep(period).await;
                if let Some(mut done) = Inner::start(&inner) {
                    let _ = done.changed().await;
                }
            }
        })
    }

    /// How fresh the tenants in force are.
    pub fn health(&self) -> TenantHealth {
        let inner = &self.inner;
        let current = inner.current();
        let age = current.as_ref().map(|s| s.loaded.elapsed());
        let f = inner.flight.lock().unwrap_or_else(|e| e.into_inner());
        let bound = inner.ttl * STALE_AFTER_REFRESHES;
        let stale = f.failures > 0 && age.is_none_or(|a| a > bound);
        TenantHealth {
            age,
            failures: f.failures,
            last_error: f.last_error.clone(),
            stale,
            quarantined: current.map(|s| s.quarantined.clone()).unwrap_or_default(),
        }
    }

    /// A snapshot no older than the TTL when the store answers within the wait; else the last
    /// good one, or the bootstrap tenant's before any, or an error.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, DirectoryError> {
        let inner = &self.inner;
        if let Some(s) = inner.current() {
            if s.loaded.elapsed() < inner.ttl {
                return Ok(s);
            }
        }
        if let Some(mut done) = Inner::start(inner) {
            // Only this wait is cancelled if the caller goes away; the load goes on.
            let _ = tokio::time::timeout(inner.wait, done.changed()).await;
        }
        if let Some(s) = inner.current() {
            return Ok(s);
        }
        if let Some(b) = &inner.bootstrap {
            return Ok(b.clone());
        }
        let f = inner.flight.lock().unwrap_or_else(|e| e.into_inner());
        Err(DirectoryError(match &f.last_error {
            Some(e) => e.clone(),
            None => "the tenant store has not answered yet".into(),
        }))
    }

    /// The sink of the tenant that owns (`provider`, `account`), or of the tenant that holds it
    /// (removed, quarantined, or one that dropped it with work pending); `None`: the
    /// deployment's default sink.
    pub async fn sink_for(
        &self,
        provider: Provider,
        account: &str,
    ) -> Result<Option<SinkSettings>, DirectoryError> {
        let snap = self.snapshot().await?;
        let key = (provider, normalise_account(provider, account).to_string());
        Ok(snap.sinks.get(&key).cloned())
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snap
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, s)| s.clone())
    }

    /// Joins the load in flight or starts one in a task of its own; `None` when the last load
    /// failed less than [`RETRY_AFTER`] ago (the caller goes on with what there is).
    fn start(this: &Arc<Inner>) -> Option<watch::Receiver<()>> {
        let mut f = this.flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = &f.running {
            return Some(rx.clone());
        }
        if f.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            return None;
        }
        let (tx, rx) = watch::channel(());
        f.id += 1;
        f.running = Some(rx.clone());
        let guard = InFlight {
            inner: this.clone(),
            id: f.id,
            _done: tx,
        };
        drop(f);
        let task = async move {
            let _ = guard.inner.load().await;
            drop(guard);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(task);
            }
            // No runtime to run it on: the guard clears the flight at once.
            Err(_) => drop(task),
        }
        Some(rx)
    }

    /// One read of the store: a new snapshot (unless a newer load already stored one), or a
    /// counted failure with the last good snapshot left in force.
    async fn load(&self) -> Result<usize, DirectoryError> {
        let n = self.loads.fetch_add(1, Ordering::AcqRel) + 1;
        match self.source.load().await {
            Ok(records) => {
                let snap = Snapshot::build(records, &self.defaults, self.fallback.as_ref());
                let live = snap.live;
                self.install(n, snap);
                let mut f = self.flight.lock().unwrap_or_else(|e| e.into_inner());
                f.failures = 0;
                f.failed_at = None;
                f.last_error = None;
                metrics::gauge!(m::TENANT_SNAPSHOT_AGE).set(0.0);
                Ok(live)
            }
            Err(e) => {
                let age = self.current().map(|s| s.loaded.elapsed());
                let mut f = self.flight.lock().unwrap_or_else(|e| e.into_inner());
                f.failures += 1;
                f.failed_at = Some(Instant::now());
                f.last_error = Some(e.0.clone());
                drop(f);
                metrics::counter!(m::TENANT_REFRESH_FAILURES).increment(1);
                if let Some(age) = age {
                    metrics::gauge!(m::TENANT_SNAPSHOT_AGE).set(age.as_secs_f64());
                }
                tracing::warn!(
                    error = %e,
                    snapshot_age_s = age.map(|a| a.as_secs()),
                    "tenant store unreadable; the last tenants loaded stay in force"
                );
                Err(e)
            }
        }
    }

    /// Puts `snap` in force unless a later load already did; logs quarantine changes.
    fn install(&self, n: u64, snap: Snapshot) {
        let mut slot = self.snap.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(held, _)| *held > n) {
            return;
        }
        let before: Vec<Quarantined> = slot
            .as_ref()
            .map(|(_, s)| s.quarantined.clone())
            .unwrap_or_default();
        for q in &snap.quarantined {
            if !before.contains(q) {
                tracing::error!(
                    tenant = %q.tenant,
                    reason = %q.reason,
                    "stored tenant quarantined: its accounts answer 503 until it is applied \
                     again; every other tenant is served"
                );
            }
        }
        for q in &before {
            if !snap.quarantined.iter().any(|x| x.tenant == q.tenant) {
                tracing::info!(tenant = %q.tenant, "tenant out of quarantine");
            }
        }
        metrics::gauge!(m::TENANTS_QUARANTINED).set(snap.quarantined.len() as f64);
        *slot = Some((n, Arc::new(snap)));
    }
}

/// Owned by the load task: clears the in-flight marker (if still its own) and wakes the waiters
/// when the task ends or is dropped, whatever happens to the lookups that started it.
struct InFlight {
    inner: Arc<Inner>,
    id: u64,
    _done: watch::Sender<()>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut f = self.inner.flight.lock().unwrap_or_else(|e| e.into_inner());
        if f.id == self.id {
            f.running = None;
        }
    }
}

/// The sink side of the directory: the HTTP sink asks it at every hand-off.
impl crate::routed::SinkRoutes for CachedDirectory {
    fn route<'a>(&'a self, provider: Provider, account: &'a str) -> crate::routed::RouteFuture<'a> {
        Box::pin(async move {
            let sink = self
                .sink_for(provider, account)
                .await
                .map_err(|e| e.to_string())?;
            Ok(sink.map(|s| crate::routed::SinkRoute {
                url: s.url,
                secrets: s.signing_secrets.iter().map(str::to_string).collect(),
            }))
        })
    }
}

impl lull_sink::ListenRoutes for CachedDirectory {
    fn listen<'a>(&'a self, provider: Provider, account: &'a str) -> lull_sink::ListenFuture<'a> {
        Box::pin(async move {
            let snap = self.snapshot().await.map_err(|e| e.to_string())?;
            Ok(snap
                .dir
                .find_now(provider, account)
                .and_then(|t| t.listen.clone()))
        })
    }

    /// From the snapshot in memory while it is within its TTL (what a lookup would use too);
    /// past it, unknown: the lookup refreshes it.
    fn listen_now(&self, provider: Provider, account: &str) -> lull_sink::ListenNow {
        let Some(snap) = self.inner.current() else {
            return lull_sink::ListenNow::Unknown;
        };
        if snap.loaded.elapsed() >= self.inner.ttl {
            return lull_sink::ListenNow::Unknown;
        }
        match snap
            .dir
            .find_now(provider, account)
            .and_then(|t| t.listen.clone())
        {
            Some(l) if !l.on_close.is_off() => lull_sink::ListenNow::On(l),
            _ => lull_sink::ListenNow::Off,
        }
    }
}

impl TenantDirectory for CachedDirectory {
    fn find<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
    ) -> LookupFuture<'a, Option<Arc<Tenant>>> {
        Box::pin(async move {
            let snap = self.snapshot().await?;
            if snap.is_quarantined(provider, account) {
                return Err(DirectoryError(
                    "this account's tenant is quarantined (see the server's logs)".into(),
                ));
            }
            Ok(snap.dir.find_now(provider, account))
        })
    }

    fn find_id<'a>(&'a self, id: &'a str) -> LookupFuture<'a, Option<Arc<Tenant>>> {
        Box::pin(async move { Ok(self.snapshot().await?.dir.find_id_now(id)) })
    }

    fn meta_verify_tokens(&self) -> LookupFuture<'_, Secrets> {
        Box::pin(async move {
            let snap = self.snapshot().await?;
            snap.dir.meta_verify_tokens().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant_spec::TenantSpec;
    use lull_core::Millis;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    #[derive(Default)]
    struct Fake {
        records: Mutex<Vec<TenantRecord>>,
        down: AtomicBool,
        loads: AtomicUsize,
    }

    impl TenantSource for Fake {
        fn load(&self) -> LookupFuture<'_, Vec<TenantRecord>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let r = if self.down.load(Ordering::SeqCst) {
                Err(DirectoryError("down".into()))
            } else {
                Ok(self.records.lock().unwrap().clone())
            };
            Box::pin(async move { r })
        }
    }

    fn rec(json: serde_json::Value) -> TenantRecord {
        let spec: TenantSpec = serde_json::from_value(json).unwrap();
        TenantRecord::applied(None, spec, Millis(1))
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    async fn owner(d: &CachedDirectory, p: Provider, account: &str) -> Option<String> {
        d.find(p, account).await.unwrap().map(|t| t.id.clone())
    }

    #[test]
    fn changes_are_seen_after_the_ttl_and_removed_tenants_keep_their_sink() {
        let src = Arc::new(Fake::default());
        src.records.lock().unwrap().push(rec(serde_json::json!({
            "id": "a", "meta": {"phone_number_ids": ["1"], "app_secret": "x"}
        })));
        let cached = CachedDirectory::new(
            src.clone(),
            Duration::from_secs(3600),
            Policy::default(),
            None,
        );
        // TTL zero: every lookup reads the store.
        let d = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), None);
        block(async {
            assert_eq!(
                owner(&cached, Provider::Meta, "1").await.as_deref(),
                Some("a")
            );
            assert_eq!(owner(&d, Provider::Meta, "2").await, None);
            let mut b = rec(serde_json::json!({
                "id": "b", "sink": "http://b.example/x",
                "twilio": {"numbers": ["whatsapp:+2"], "auth_token": "y"}
            }));
            src.records.lock().unwrap().push(b.clone());
            assert_eq!(
                owner(&d, Provider::Twilio, "+2").await.as_deref(),
                Some("b")
            );
            // Within its TTL the cached snapshot answers without reading the store.
            let loads = src.loads.load(Ordering::SeqCst);
            assert_ne!(
                owner(&cached, Provider::Twilio, "+2").await.as_deref(),
                Some("b")
            );
            assert_eq!(src.loads.load(Ordering::SeqCst), loads);
            let sink = d.sink_for(Provider::Twilio, "whatsapp:+2").await.unwrap();
            assert_eq!(sink.unwrap().url, "http://b.example/x");
            // Removed: refused, but its sink still routes.
            b.removed_at = Some(Millis(2));
            src.records.lock().unwrap()[1] = b;
            assert_eq!(owner(&d, Provider::Twilio, "+2").await, None);
            assert!(d.sink_for(Provider::Twilio, "+2").await.unwrap().is_some());
            // The store going down keeps the last tenants.
            src.down.store(true, Ordering::SeqCst);
            assert_eq!(owner(&d, Provider::Meta, "1").await.as_deref(), Some("a"));
            let fresh = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), None);
            assert!(fresh.find(Provider::Meta, "1").await.is_err());
        });
    }

    #[test]
    fn listen_now_answers_from_a_fresh_snapshot_and_is_unknown_without_one() {
        use lull_sink::{ListenNow, ListenRoutes};
        let src = Arc::new(Fake::default());
        src.records.lock().unwrap().extend([
            rec(serde_json::json!({
                "id": "off", "meta": {"phone_number_ids": ["1"], "app_secret": "x"}
            })),
            rec(serde_json::json!({
                "id": "on", "on_close": ["read", "typing"],
                "meta": {"phone_number_ids": ["2"], "app_secret": "x", "access_token": "EAA"}
            })),
        ]);
        let d = CachedDirectory::new(
            src.clone(),
            Duration::from_secs(3600),
            Policy::default(),
            None,
        );
        // Nothing loaded yet: unknown, and asking reads nothing.
        assert_eq!(d.listen_now(Provider::Meta, "1"), ListenNow::Unknown);
        assert_eq!(src.loads.load(Ordering::SeqCst), 0);
        block(async { d.refresh().await.unwrap() });
        let loads = src.loads.load(Ordering::SeqCst);
        assert_eq!(d.listen_now(Provider::Meta, "1"), ListenNow::Off);
        assert_eq!(
            d.listen_now(Provider::Meta, "9"),
            ListenNow::Off,
            "no tenant"
        );
        match d.listen_now(Provider::Meta, "2") {
            ListenNow::On(l) => assert!(l.on_close.read && l.on_close.typing),
            other => panic!("{other:?}"),
        }
        assert_eq!(src.loads.load(Ordering::SeqCst), loads, "no store read");
        // A snapshot past its TTL is not trusted: the lookup refreshes it.
        let stale = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), None);
        block(async { stale.refresh().await.unwrap() });
        assert_eq!(stale.listen_now(Provider::Meta, "1"), ListenNow::Unknown);
    }

    #[test]
    fn fallback_serves_only_an_empty_store_and_a_bad_store_is_refused() {
        let src = Arc::new(Fake::default());
        let solo = Tenant {
            id: "env".into(),
            ..Default::default()
        };
        let d = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), Some(solo));
        block(async {
            assert_eq!(
                d.find(Provider::Meta, "9").await.unwrap().unwrap().id,
                "env"
            );
            let mut gone = rec(serde_json::json!({"id": "g", "meta": {"phone_number_ids": ["9"]}}));
            gone.removed_at = Some(Millis(5));
            src.records.lock().unwrap().push(gone);
            assert!(d.find(Provider::Meta, "9").await.unwrap().is_none());
            let fresh = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), None);
            src.records.lock().unwrap().extend([
                rec(serde_json::json!({"id": "x", "meta": {"phone_number_ids": ["7"]}})),
                rec(serde_json::json!({"id": "y", "meta": {"phone_number_ids": ["7"]}})),
            ]);
            // Two tenants claiming one account: both quarantined (503), the rest served.
            assert_eq!(fresh.refresh().await.unwrap(), 0);
            let e = fresh
                .find(Provider::Meta, "7")
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("quarantined"), "{e}");
            assert_eq!(fresh.health().quarantined.len(), 2);
        });
    }

    /// A store whose load blocks until the test opens it.
    struct Gated {
        records: Mutex<Vec<TenantRecord>>,
        open: watch::Sender<bool>,
        loads: AtomicUsize,
    }

    impl TenantSource for Gated {
        fn load(&self) -> LookupFuture<'_, Vec<TenantRecord>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let mut open = self.open.subscribe();
            Box::pin(async move {
                let _ = open.wait_for(|o| *o).await;
                Ok(self.records.lock().unwrap().clone())
            })
        }
    }

    /// Issue 23 §1: a lookup dropped while its refresh is loading (a client gone, a timeout
    /// around a sink route) must not stop refreshes for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_whose_caller_is_dropped_mid_load_still_applies() {
        let src = Arc::new(Gated {
            records: Mutex::new(vec![rec(serde_json::json!({
                "id": "a", "meta": {"phone_number_ids": ["1"], "app_secret": "x"}
            }))]),
            open: watch::channel(true).0,
            loads: AtomicUsize::new(0),
        });
        // TTL zero: every lookup is "after the interval".
        let d = Arc::new(CachedDirectory::new(
            src.clone(),
            Duration::ZERO,
            Policy::default(),
            None,
        ));
        assert_eq!(d.refresh().await.unwrap(), 1);
        // The store blocks; meanwhile a removes account 1 and b takes account 2.
        src.open.send_replace(false);
        *src.records.lock().unwrap() = vec![rec(serde_json::json!({
            "id": "b", "meta": {"phone_number_ids": ["2"], "app_secret": "y"}
        }))];
        let caller = {
            let d = d.clone();
            tokio::spawn(async move { d.find(Provider::Meta, "2").await.map(|t| t.is_some()) })
        };
        lull_testkit::wait_for(
            "the refresh to start loading",
            Duration::from_secs(10),
            async || src.loads.load(Ordering::SeqCst) >= 2,
        )
        .await;
        // The caller goes away mid-load.
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        src.open.send_replace(true);
        // The next lookup sees the change.
        lull_testkit::wait_for("the change to apply", Duration::from_secs(10), async || {
            matches!(d.find(Provider::Meta, "2").await, Ok(Some(_)))
        })
        .await;
        assert!(d.find(Provider::Meta, "1").await.unwrap().is_none());
        assert_eq!(d.health().failures, 0);
    }

    /// Staleness is visible: failures counted, the snapshot reported stale past the bound, and
    /// a process that never loaded the store serves its bootstrap tenant only.
    #[test]
    fn a_store_outage_is_reported_and_the_bootstrap_tenant_serves_before_any_load() {
        let src = Arc::new(Fake::default());
        src.records.lock().unwrap().push(rec(serde_json::json!({
            "id": "a", "meta": {"phone_number_ids": ["1"], "app_secret": "x"}
        })));
        let d = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), None);
        block(async {
            assert_eq!(owner(&d, Provider::Meta, "1").await.as_deref(), Some("a"));
            assert!(!d.health().stale);
            src.down.store(true, Ordering::SeqCst);
            // The last good tenants stay in force, but the outage shows.
            assert_eq!(owner(&d, Provider::Meta, "1").await.as_deref(), Some("a"));
            let h = d.health();
            assert!(h.stale && h.failures == 1, "{h:?}");
            assert_eq!(h.last_error.as_deref(), Some("down"));
            // Never loaded: the bootstrap tenant (environment) answers, nobody else.
            let boot = Tenant {
                id: "env".into(),
                ..Default::default()
            };
            let cold =
                CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), Some(boot));
            assert_eq!(
                owner(&cold, Provider::Meta, "9").await.as_deref(),
                Some("env")
            );
            assert!(cold.health().stale);
            let none = CachedDirectory::new(src.clone(), Duration::ZERO, Policy::default(), None);
            assert!(none.find(Provider::Meta, "1").await.is_err());
        });
    }
}
