//! Wiring: open the data directory, resume what the store holds, run the background tasks, serve
//! HTTP, and shut down cleanly.
//!
//! Start-up order matters for "nothing pending lost": the data directory is locked (one server
//! per store, so leases found in it belong to a dead process and can be released at once), then
//! every conversation in the due index is re-armed, and only then do the listeners accept.
//! Shutdown runs the other way: stop accepting and finish in-flight requests (axum's graceful
//! shutdown), stop the timer and sweep tasks, wait for hand-offs in flight, and return. Open
//! windows stay in SQLite and resume at the next start.
//!
//! Two listeners: the webhook routes (behind a bound on requests in flight, see [`limit`]) and
//! the ops routes on their own address (default loopback), so a proxy in front of the webhook
//! port never exposes `/metrics` or `/redrive`, while container probes can still reach
//! `/healthz`. The data directory is private to its owner (0700) and the key file in it 0600.
//!
//! [`limit`]: crate::limit

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use lull_core::ports::{Clock, Sink, StoreError, SystemClock, WindowStore, Written};
use lull_core::protocol::{Handoff, Intake};
use lull_core::BufferConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Durability, OpenError, SqliteStore};
use crate::sweep::SweepSettings;
use crate::timers::{LocalTrigger, TimerQueue, TimerSettings};
use crate::{console, limit, ops, sweep, timers};

pub use crate::capability::{LocalHandoff, LocalIntake};

/// Everything the local runtime needs besides the sink and the HTTP routes.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub buffer: BufferConfig,
    pub sweep: SweepSettings,
    pub max_concurrent_flushes: usize,
    /// Webhook requests handled at once; more are shed with 503 + `Retry-After`.
    pub max_concurrent_requests: usize,
    /// The ops token(s) of the ops listener's state-changing routes (empty: none; then those
    /// routes serve only on a loopback ops address: `crate::ops_guard`).
    pub ops_tokens: lull_ingest::Secrets,
    /// The public base URL of the webhook listener: every batch carries a reply guard under it
    /// (`GET {public_url}/guard/{token}`).
    pub public_url: String,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("data directory {0} is in use by another lull process (lock file {0}/lock)")]
    Locked(PathBuf),
    #[error("data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the store at start-up: {0}")]
    Store(#[from] StoreError),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// A running local buffer: store open, data directory locked, pending windows re-armed.
pub struct Local<K: Sink> {
    /// Appends: what the webhook routes call.
    pub intake: Arc<LocalIntake>,
    /// Hand-offs: what the timers, the sweep and a redrive call.
    pub handoff: Arc<LocalHandoff<K>>,
    /// The store itself, for what only the local shell does (start-up resume, inspect, purge).
    pub store: SqliteStore,
    /// The timer heap behind the local trigger.
    pub timers: Arc<TimerQueue>,
    settings: Settings,
    log_secret: Arc<[u8]>,
    /// What `/healthz` asks besides the store (the tenant snapshot's freshness).
    health: Option<ops::HealthCheck>,
    guard_key: lull_sink::GuardKey,
    /// Held for the life of the server; the OS releases it if the process dies.
    _lock: File,
}

/// Takes the data directory's exclusive lock, or says who holds it.
fn lock_dir(dir: &Path) -> Result<File, ServerError> {
    let io = |source| ServerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    crate::private::create_dir(dir).map_err(io)?;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(io)?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&f) {
        Ok(true) => Ok(f),
        Ok(false) => Err(ServerError::Locked(dir.to_path_buf())),
        Err(e) => Err(io(e)),
    }
}

/// True when a server holds the data directory's lock (for `lull redrive`).
pub fn dir_in_use(dir: &Path) -> bool {
    matches!(lock_dir(dir), Err(ServerError::Locked(_)))
}

/// The secret that keys conversation hashes in logs: 32 bytes from the operating system's
/// cryptographic RNG, kept in the data directory (0600) so hashes stay comparable across
/// restarts, never logged.
pub fn log_secret(dir: &Path) -> Result<Arc<[u8]>, ServerError> {
    let path = dir.join("log-hash.key");
    let io = |source| ServerError::Io {
        path: path.clone(),
        source,
    };
    let mut hexed = String::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_string(&mut hexed).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| io(std::io::Error::other(format!("no random source: {e}"))))?;
            hexed = hex::encode(bytes);
            let mut f = crate::private::create_file(&path).map_err(io)?;
            f.write_all(hexed.as_bytes()).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    Ok(hex::decode(hexed.trim())
        .unwrap_or_else(|_| hexed.into_bytes())
        .into())
}

impl<K: Sink + 'static> Local<K> {
    /// Locks and opens the data directory and resumes every pending window: leases left by a
    /// dead process are released, and each conversation in the due index is re-armed (at once
    /// when it fell due while the server was down).
    pub async fn open(settings: Settings, sink: K) -> Result<Local<K>, ServerError> {
        let lock = lock_dir(&settings.data_dir)?;
        let log_secret = log_secret(&settings.data_dir)?;
        let store = SqliteStore::open(&settings.data_dir, settings.durability)?;
        let trigger = LocalTrigger::new();
        let timers = trigger.queue().clone();
        let intake = Arc::new(Intake::new(
            store.clone(),
            trigger.clone(),
            SystemClock,
            settings.buffer,
        ));
        let guard_key = lull_sink::GuardKey::derive(&log_secret);
        let handoff = Arc::new(
            Handoff::new(store.clone(), trigger, sink, SystemClock, settings.buffer)
                .with_reply_guard(Arc::new(lull_sink::GuardUrls::new(
                    &settings.public_url,
                    guard_key.clone(),
                ))),
        );
        let mut scheduled = store.scheduled().await?;
        for conv in &mut scheduled {
            release_dead_lease(&store, &SystemClock, conv).await?;
        }
        timers.arm_scheduled(&scheduled);
        let now = SystemClock.now();
        let overdue = scheduled.iter().filter(|c| c.is_past_due(now)).count();
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            durability = settings.durability.as_str(),
            resumed = scheduled.len(),
            overdue,
            "store open"
        );
        Ok(Local {
            intake,
            handoff,
            store,
            timers,
            settings,
            log_secret,
            health: None,
            guard_key,
            _lock: lock,
        })
    }

    /// Adds `check` to what `GET /healthz` asks: an error answers 503 with its message.
    pub fn with_health(mut self, check: ops::HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// The key the reply guards of this data directory are sealed with (derived from its key
    /// file): what the webhook routes open them with.
    pub fn guard_key(&self) -> lull_sink::GuardKey {
        self.guard_key.clone()
    }

    /// The secret keying conversation hashes in logs.
    pub fn log_secret(&self) -> Arc<[u8]> {
        self.log_secret.clone()
    }

    /// Serves `webhooks` on `listener` and the ops routes on `ops_listener` until `signal`
    /// resolves, then shuts down cleanly (see the module docs).
    pub async fn serve(
        self,
        listener: TcpListener,
        ops_listener: TcpListener,
        webhooks: Router,
        metrics: Option<PrometheusHandle>,
        tenants: Option<Arc<crate::tenants::SqliteTenants>>,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // One token for every background task: cancelled once, seen at each task's next await
        // point, and by a task that looks after it was cancelled too.
        let shutdown = CancellationToken::new();
        let flushes = TaskTracker::new();
        let timer_task = tokio::spawn(timers::run(
            self.handoff.clone(),
            self.timers.clone(),
            SystemClock,
            TimerSettings {
                max_concurrent: self.settings.max_concurrent_flushes,
                log_secret: self.log_secret.clone(),
            },
            flushes.clone(),
            shutdown.clone(),
        ));
        let sweep_task = tokio::spawn(sweep::run(
            self.handoff.clone(),
            self.store.clone(),
            self.settings.sweep,
            shutdown.clone(),
        ));
        // One signal stops both listeners.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = stopping.send(true);
        });
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let large = limit::LargeBodies {
            body_limit: lull_ingest::IngestConfig::default().body_limit,
            budget: limit::LARGE_BODY_BUDGET,
            wait: limit::LARGE_BODY_WAIT,
        };
        let app = limit::shed_over(self.settings.max_concurrent_requests, large, webhooks);
        let ops_loopback = ops_listener
            .local_addr()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false);
        // The operators' console on the ops listener: it reads the store and the metrics, and
        // acts through the same timers and intake as the ops routes; nothing on the webhook or
        // flush paths changes for it.
        let console = Arc::new(console::local::LocalConsole {
            store: self.store.clone(),
            timers: self.timers.clone(),
            intake: self.intake.clone(),
            tenants,
            metrics: metrics.clone(),
            samples: Arc::default(),
            horizon: self.settings.buffer.dedupe_horizon,
            data_dir: self.settings.data_dir.clone(),
        });
        let sampler = {
            let (console, shutdown) = (console.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    console.sample();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(console::chart::SAMPLE_EVERY) => {}
                    }
                }
            })
        };
        let ops_app = ops::router(
            crate::ops_guard::OpsGuard::new(self.settings.ops_tokens.clone(), ops_loopback),
            self.store.clone(),
            self.timers.clone(),
            self.intake.clone(),
            metrics,
        )
        .layer(axum::Extension(self.health.clone()));
        // The console has no login of its own: its pages show conversations and its forms act on
        // them, so it is served only on a loopback ops listener (reach it remotely through an SSH
        // tunnel). On any other address it is not mounted at all, whatever the ops token.
        let ops_app = if ops_loopback {
            ops_app.merge(console::router(console, self.log_secret.clone()))
        } else {
            tracing::warn!("the operators' console is off: the ops listener is not on loopback");
            ops_app
        };
        let (served, ops_served) = tokio::join!(
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(until_stopped(stopped.clone())),
            axum::serve(
                ops_listener,
                ops_app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(until_stopped(stopped)),
        );
        tracing::info!("stopped accepting; finishing hand-offs in flight");
        shutdown.cancel();
        let _ = timer_task.await;
        let _ = sweep_task.await;
        let _ = sampler.await;
        flushes.close();
        flushes.wait().await;
        tracing::info!(
            armed = self.timers.len(),
            "shut down; open windows resume at the next start"
        );
        served.and(ops_served).map_err(ServerError::Serve)
    }
}

/// Releases the hand-off lease a dead process left on a conversation's oldest pending batch,
/// so it is retried at once rather than when the lease would have run out. Safe only because
/// the data directory lock says no other process is handing off from this store.
async fn release_dead_lease<S: WindowStore, C: Clock>(
    store: &S,
    clock: &C,
    conv: &mut lull_core::Conversation,
) -> Result<(), StoreError> {
    let Some((gen, token)) = conv
        .pending
        .first()
        .and_then(|b| b.lease_token().map(|t| (b.gen, t)))
    else {
        return Ok(());
    };
    let mut next = conv.clone();
    if next.release(gen, token, clock.now()) {
        if let Written::Ok = store.replace(conv.ver, &next).await? {
            *conv = next;
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn data_dir_is_owner_only_and_the_key_file_is_0600_and_random() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let lock = lock_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let key = log_secret(&dir).unwrap();
        assert_eq!(mode(&dir.join("log-hash.key")), 0o600);
        assert_eq!(key.len(), 32);
        // Stable across restarts, different per data directory.
        assert_eq!(log_secret(&dir).unwrap(), key);
        let other = tmp.path().join("other");
        crate::private::create_dir(&other).unwrap();
        assert_ne!(log_secret(&other).unwrap(), key);
        drop(lock);
        // An existing directory open to others is narrowed.
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _lock = lock_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
    }
}
