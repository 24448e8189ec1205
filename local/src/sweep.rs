//! The periodic sweep: the core's sweep, every few seconds.
//!
//! Local timers are reliable while the process lives, and start-up re-arms everything in the due
//! index, so here the sweep is the safety net the protocol requires rather than the main path:
//! it catches a window whose wake-up was lost in any way, within one interval. It also deletes
//! expired dedupe records now and then (expiry is checked in the write condition; this only
//! keeps the table small).

use std::sync::Arc;
use std::time::Duration;

use lull_core::ports::{Clock, Sink};
use lull_core::protocol::Handoff;
use tokio_util::sync::CancellationToken;

use crate::store::SqliteStore;
use crate::timers::LocalTrigger;

/// How the sweep runs.
#[derive(Clone, Copy, Debug)]
pub struct SweepSettings {
    pub interval: Duration,
    /// Conversations flushed per pass.
    pub limit: usize,
    /// Conversations flushed at once within a pass, so one slow sink holds back only its own.
    pub concurrency: usize,
}

/// Purge expired dedupe records every this many passes.
const PURGE_EVERY: u32 = 60;
const PURGE_LIMIT: usize = 10_000;

/// Runs until shutdown. A pass in progress finishes first: its hand-offs are never cut short.
pub async fn run<K, C>(
    handoff: Arc<Handoff<SqliteStore, LocalTrigger, K, C>>,
    store: SqliteStore,
    settings: SweepSettings,
    shutdown: CancellationToken,
) where
    K: Sink + 'static,
    C: Clock + 'static,
{
    let mut passes = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.cancelled() => return,
        }
        match handoff.sweep(settings.limit, settings.concurrency).await {
            Ok(r) if r.due > 0 => {
                tracing::info!(
                    due = r.due,
                    handed_off = r.handed_off,
                    failed = r.failed,
                    "sweep"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweep could not read the due index"),
        }
        passes += 1;
        if passes >= PURGE_EVERY {
            passes = 0;
            match store
                .purge_expired(lull_core::Millis::now_wall(), PURGE_LIMIT)
                .await
            {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "expired dedupe records deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "dedupe purge failed"),
            }
        }
    }
}
