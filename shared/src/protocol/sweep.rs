//! The sweep: a periodic pass that flushes every conversation past due, so a lost trigger delays
//! a hand-off by at most one sweep interval. Part of the protocol, not an add-on.

use super::{Buffer, FlushEnd, FlushMode};
use crate::ports::{Clock, Sink, StoreError, Trigger, TriggerMsg, WindowStore};

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Conversations found past due.
    pub due: usize,
    /// Batches handed off.
    pub handed_off: usize,
    /// Conversations whose flush failed (store, trigger or sink); they stay due.
    pub failed: usize,
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Buffer<S, T, K, C> {
    /// Flushes up to `limit` conversations past due, one after another.
    pub async fn sweep(&self, limit: usize) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let keys = self.store.due(now, limit).await?;
        let mut report = SweepReport {
            due: keys.len(),
            ..SweepReport::default()
        };
        for key in keys {
            let trig = TriggerMsg {
                key,
                chain: 0,
                gen: 0,
                ver: 0,
                due: now,
            };
            match self.flush(&trig, FlushMode::Sweep).await {
                Ok(r) => {
                    report.handed_off += r.handed_off.len();
                    if matches!(r.end, FlushEnd::SinkFailed(_)) {
                        report.failed += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweep flush failed");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
