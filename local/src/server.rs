//! Wiring: open the data directory, resume what the store holds, run the background tasks, serve
//! HTTP, and shut down cleanly.
//!
//! Start-up order matters for "nothing pending lost": the data directory is locked (one server
//! per store, so leases found in it belong to a dead process and can be released at once), then
//! every conversation in the due index is re-armed, and only then does the listener accept.
//! Shutdown runs the other way: stop accepting and finish in-flight requests (axum's graceful
//! shutdown), stop the timer and sweep tasks, wait for hand-offs in flight, and return. Open
//! windows stay in SQLite and resume at the next start.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use lull_core::ports::{Clock, Sink, StoreError, SystemClock, WindowStore, Written};
use lull_core::{Buffer, BufferConfig};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;
use crate::store::{Durability, OpenError, SqliteStore};
use crate::sweep::SweepSettings;
use crate::timers::{LocalTrigger, TimerSettings};
use crate::{ops, sweep, timers};

/// The protocol bound to the local adapters.
pub type LocalBuffer<K> = Buffer<SqliteStore, LocalTrigger, K, SystemClock>;

/// Everything the local runtime needs besides the sink and the HTTP routes.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub buffer: BufferConfig,
    pub sweep: SweepSettings,
    pub backoff: Backoff,
    pub max_concurrent_flushes: usize,
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
    pub buffer: Arc<LocalBuffer<K>>,
    settings: Settings,
    log_secret: Arc<[u8]>,
    /// Held for the life of the server; the OS releases it if the process dies.
    _lock: File,
}

/// Takes the data directory's exclusive lock, or says who holds it.
fn lock_dir(dir: &Path) -> Result<File, ServerError> {
    let io = |source| ServerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
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

/// The secret that keys conversation hashes in logs: random, kept in the data directory so
/// hashes stay comparable across restarts, never logged.
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
            let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
            hexed = hex::encode(bytes);
            let mut f = File::create(&path).map_err(io)?;
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
        let buffer = Arc::new(Buffer::new(
            store,
            LocalTrigger::new(),
            sink,
            SystemClock,
            settings.buffer,
        ));
        let mut scheduled = buffer.store.scheduled().await?;
        for conv in &mut scheduled {
            release_dead_lease(&buffer, conv).await?;
        }
        buffer.trigger.queue().arm_scheduled(&scheduled);
        let now = buffer.clock.now();
        let overdue = scheduled.iter().filter(|c| c.is_past_due(now)).count();
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            durability = settings.durability.as_str(),
            resumed = scheduled.len(),
            overdue,
            "store open"
        );
        Ok(Local {
            buffer,
            settings,
            log_secret,
            _lock: lock,
        })
    }

    /// The secret keying conversation hashes in logs.
    pub fn log_secret(&self) -> Arc<[u8]> {
        self.log_secret.clone()
    }

    /// Serves `webhooks` plus the ops routes on `listener` until `signal` resolves, then shuts
    /// down cleanly (see the module docs).
    pub async fn serve(
        self,
        listener: TcpListener,
        webhooks: Router,
        metrics: Option<PrometheusHandle>,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // One token for every background task: cancelled once, seen at each task's next await
        // point, and by a task that looks after it was cancelled too.
        let shutdown = CancellationToken::new();
        let flushes = TaskTracker::new();
        let timer_task = tokio::spawn(timers::run(
            self.buffer.clone(),
            TimerSettings {
                backoff: self.settings.backoff,
                max_concurrent: self.settings.max_concurrent_flushes,
                log_secret: self.log_secret.clone(),
            },
            flushes.clone(),
            shutdown.clone(),
        ));
        let sweep_task = tokio::spawn(sweep::run(
            self.buffer.clone(),
            self.settings.sweep,
            shutdown.clone(),
        ));
        let app = webhooks.merge(ops::router(self.buffer.clone(), metrics));
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        tracing::info!("stopped accepting; finishing hand-offs in flight");
        shutdown.cancel();
        let _ = timer_task.await;
        let _ = sweep_task.await;
        flushes.close();
        flushes.wait().await;
        tracing::info!(
            armed = self.buffer.trigger.queue().len(),
            "shut down; open windows resume at the next start"
        );
        served.map_err(ServerError::Serve)
    }
}

/// Releases the hand-off lease a dead process left on a conversation's oldest pending batch,
/// so it is retried at once rather than when the lease would have run out. Safe only because
/// the data directory lock says no other process is handing off from this store.
async fn release_dead_lease<S: WindowStore, T, K, C: Clock>(
    buffer: &Buffer<S, T, K, C>,
    conv: &mut lull_core::Conversation,
) -> Result<(), StoreError> {
    let Some((gen, lease)) = conv
        .pending
        .first()
        .and_then(|b| b.lease.map(|l| (b.gen, l)))
    else {
        return Ok(());
    };
    let mut next = conv.clone();
    if next.release(gen, lease.token, buffer.clock.now()) {
        if let Written::Ok = buffer.store.replace(conv.ver, &next).await? {
            *conv = next;
        }
    }
    Ok(())
}
