//! The tenant directory over the tenant store, cached for a short time to live.
//!
//! Every process that needs tenants (the local server, the webhook, flush and sweep Lambdas)
//! reads them from the store through a [`CachedDirectory`]: a lookup uses the snapshot loaded
//! at most [`DEFAULT_TENANT_TTL`] ago (configurable); an older one is reloaded by the lookup that
//! finds it stale, while concurrent lookups keep using the old snapshot until the new one is in.
//! So a change made with `lull tenants apply` is seen by every process within the TTL plus one
//! store read, with no restart, and a Lambda thawed after an idle hour reloads on its first
//! request rather than trusting its old snapshot.
//!
//! A store that cannot be read keeps the last good snapshot in force (logged); only a process
//! that never loaded one refuses requests (503). A snapshot the store holds but that does not
//! make sense (two tenants claiming one account: only possible by writing the store around the
//! CLI) is refused the same way, naming the conflict.
//!
//! Removed tenants (tombstones) are not found (their accounts get 403), but their sinks stay
//! routable ([`CachedDirectory::sink_for`]) so that what they had accepted still reaches them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lull_core::{Policy, Provider};

use crate::tenant::{
    normalise_account, DirectoryError, LookupFuture, MemoryDirectory, Secrets, SinkSettings,
    Tenant, TenantDirectory,
};
use crate::tenant_spec::TenantRecord;

/// How long a loaded tenant snapshot is used before the store is read again (10 s): the bound
/// on how long a change takes to reach a running process, besides one store read.
pub const DEFAULT_TENANT_TTL: Duration = Duration::from_secs(10);

/// Where tenants are stored: the SQLite table locally, DynamoDB items (secrets from Secrets
/// Manager) on AWS.
pub trait TenantSource: Send + Sync {
    /// Every stored tenant record, removed ones included, secrets resolved.
    fn load(&self) -> LookupFuture<'_, Vec<TenantRecord>>;
}

/// One loaded state of the store.
struct Snapshot {
    loaded: Instant,
    dir: MemoryDirectory,
    /// (provider, normalised account) -> the sink of the tenant that owns it, or of the removed
    /// tenant that owned it last.
    sinks: HashMap<(Provider, String), SinkSettings>,
}

/// A [`TenantDirectory`] over a [`TenantSource`], reloaded after `ttl`.
pub struct CachedDirectory {
    source: Arc<dyn TenantSource>,
    ttl: Duration,
    defaults: Policy,
    fallback: Option<Tenant>,
    snap: RwLock<Option<Arc<Snapshot>>>,
    refreshing: AtomicBool,
}

impl CachedDirectory {
    /// A directory over `source`; tenants' missing policy fields take `defaults`. `fallback` is
    /// the single tenant of a setup configured by flags or environment only: it serves while the
    /// store holds no tenant record at all.
    pub fn new(
        source: Arc<dyn TenantSource>,
        ttl: Duration,
        defaults: Policy,
        fallback: Option<Tenant>,
    ) -> CachedDirectory {
        CachedDirectory {
            source,
            ttl,
            defaults,
            fallback,
            snap: RwLock::new(None),
            refreshing: AtomicBool::new(false),
        }
    }

    /// The time to live of a snapshot.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Reads the store now (start-up: a store that cannot be read or makes no sense stops it).
    /// Returns how many live tenants it holds.
    pub async fn refresh(&self) -> Result<usize, DirectoryError> {
        let records = self.source.load().await?;
        let (snap, live) = self.build(records)?;
        self.store(snap);
        Ok(live)
    }

    fn build(&self, records: Vec<TenantRecord>) -> Result<(Snapshot, usize), DirectoryError> {
        let mut live = Vec::new();
        let mut sinks = HashMap::new();
        let mut tombstones = Vec::new();
        let empty = records.is_empty();
        for r in records {
            let tenant = r
                .spec
                .to_tenant(&self.defaults)
                .map_err(|e| DirectoryError(format!("stored {e}")))?;
            if r.removed_at.is_some() {
                tombstones.push(tenant);
            } else {
                routes(&tenant, &mut sinks, true);
                live.push(tenant);
            }
        }
        // A removed tenant's sink keeps the accounts no live tenant owns.
        for t in &tombstones {
            routes(t, &mut sinks, false);
        }
        let count = live.len();
        let dir = match (&self.fallback, empty) {
            (Some(f), true) => MemoryDirectory::single(f.clone()),
            _ => {
                let d = MemoryDirectory::default();
                d.replace_beside(live, tombstones.len())
                    .map_err(|e| DirectoryError(format!("stored tenants: {e}")))?;
                d
            }
        };
        Ok((
            Snapshot {
                loaded: Instant::now(),
                dir,
                sinks,
            },
            count,
        ))
    }

    fn store(&self, snap: Snapshot) {
        let mut slot = self.snap.write().unwrap_or_else(|e| e.into_inner());
        *slot = Some(Arc::new(snap));
    }

    fn current_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snap.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A snapshot no older than the TTL, unless another lookup is reloading it right now or the
    /// store cannot be read (then the last good one).
    async fn snapshot(&self) -> Result<Arc<Snapshot>, DirectoryError> {
        let old = self.current_snapshot();
        if let Some(s) = &old {
            if s.loaded.elapsed() < self.ttl {
                return Ok(s.clone());
            }
        }
        if self.refreshing.swap(true, Ordering::AcqRel) {
            if let Some(s) = old {
                return Ok(s);
            }
        }
        let result = match self.source.load().await {
            Ok(records) => self.build(records).map(|(s, _)| s),
            Err(e) => Err(e),
        };
        self.refreshing.store(false, Ordering::Release);
        match (result, old) {
            (Ok(snap), _) => {
                self.store(snap);
                self.current_snapshot()
                    .ok_or_else(|| DirectoryError("tenant snapshot vanished".into()))
            }
            (Err(e), Some(old)) => {
                tracing::warn!(error = %e, "tenant store unreadable; keeping the last tenants");
                Ok(old)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// The sink of the tenant that owns (`provider`, `account`), or of the removed tenant that
    /// owned it; `None`: the deployment's default sink.
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

/// Adds `t`'s sink for each of its accounts (`replace`: over what is there).
fn routes(t: &Tenant, sinks: &mut HashMap<(Provider, String), SinkSettings>, replace: bool) {
    let Some(sink) = &t.sink else { return };
    for p in Provider::ALL {
        for a in t.accounts(p) {
            let key = (p, normalise_account(p, a).to_string());
            if replace || !sinks.contains_key(&key) {
                sinks.insert(key, sink.clone());
            }
        }
    }
}

/// The sink side of the directory: the HTTP sink asks it at every hand-off.
impl lull_sink::SinkRoutes for CachedDirectory {
    fn route<'a>(&'a self, provider: Provider, account: &'a str) -> lull_sink::RouteFuture<'a> {
        Box::pin(async move {
            let sink = self
                .sink_for(provider, account)
                .await
                .map_err(|e| e.to_string())?;
            Ok(sink.map(|s| lull_sink::SinkRoute {
                url: s.url,
                secrets: s.signing_secrets.iter().map(str::to_string).collect(),
            }))
        })
    }
}

impl TenantDirectory for CachedDirectory {
    fn find<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
    ) -> LookupFuture<'a, Option<Arc<Tenant>>> {
        Box::pin(async move { Ok(self.snapshot().await?.dir.find_now(provider, account)) })
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
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        records: Mutex<Vec<TenantRecord>>,
        down: AtomicBool,
        loads: std::sync::atomic::AtomicUsize,
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
            let e = fresh.refresh().await.unwrap_err().to_string();
            assert!(e.contains("\"7\""), "{e}");
        });
    }
}
