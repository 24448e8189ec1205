//! The sweep: a periodic pass that flushes every conversation past due, so a lost trigger delays
//! a hand-off by at most one sweep interval. Part of the protocol, not an add-on.

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{Claim, FlushError, FlushReport, Handoff};
use crate::key::ConversationKey;
use crate::ports::{Clock, Sink, StoreError, Trigger, WindowStore};

/// Conversations a sweep flushes at once, in every shell and the simulator: one slow sink holds
/// back only its own conversation (and one slot of the pass), not the whole pass.
pub const SWEEP_CONCURRENCY: usize = 16;

/// Conversations one sweep flushes at most, in every shell (`LULL_SWEEP_LIMIT` on AWS). 500: the
/// sweep Lambda runs once a minute and stops at its deadline, so a backlog after an outage of
/// thousands of conversations drains in a few runs; locally the sweep runs every few seconds
/// and, with durable timers, only finds what a lost timer left, so the same bound costs nothing.
/// The pass's work at any moment is bounded by [`SWEEP_CONCURRENCY`], not by this.
pub const SWEEP_LIMIT: usize = 500;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Conversations found past due.
    pub due: usize,
    /// Batches handed off.
    pub handed_off: usize,
    /// Conversations whose flush failed (store, trigger or sink) or whose batch is parked; they
    /// stay pending.
    pub failed: usize,
}

impl SweepReport {
    /// Adds one conversation's flush to the report.
    pub fn count(&mut self, result: &Result<FlushReport, FlushError>) {
        match result {
            Ok(r) => {
                self.handed_off += r.handed_off.len();
                if r.end.is_failure() {
                    self.failed += 1;
                }
            }
            Err(_) => self.failed += 1,
        }
    }
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Handoff<S, T, K, C> {
    /// The conversations past due now (up to `limit`).
    pub async fn sweep_due(&self, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        self.store.due(self.clock.now(), limit).await
    }

    /// Flushes one conversation the sweep found past due: it adopts the conversation's chain.
    pub async fn sweep_one(&self, key: &ConversationKey) -> Result<FlushReport, FlushError> {
        self.flush(key, Claim::Sweep).await
    }

    /// Flushes up to `limit` conversations past due, at most `concurrency` at a time, so one
    /// slow sink holds back only its own conversation, not the whole pass.
    pub async fn sweep(&self, limit: usize, concurrency: usize) -> Result<SweepReport, StoreError> {
        self.sweep_until(limit, concurrency, None).await
    }

    /// Like [`Self::sweep`], taking no lease that would run past `deadline`.
    pub async fn sweep_until(
        &self,
        limit: usize,
        concurrency: usize,
        deadline: Option<crate::Millis>,
    ) -> Result<SweepReport, StoreError> {
        let keys = self.sweep_due(limit).await?;
        let mut report = SweepReport {
            due: keys.len(),
            ..SweepReport::default()
        };
        let mut waiting = keys.into_iter();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < concurrency.max(1) {
                let Some(key) = waiting.next() else { break };
                running.push(async move { self.flush_until(&key, Claim::Sweep, deadline).await });
            }
            let Some(r) = running.next().await else { break };
            if let Err(e) = &r {
                tracing::warn!(error = %e, "sweep flush failed");
            }
            report.count(&r);
        }
        Ok(report)
    }
}
