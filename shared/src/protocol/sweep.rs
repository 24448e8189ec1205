//! The sweep: a periodic pass that flushes every conversation past due, so a lost trigger delays
//! a hand-off by at most one sweep interval. Part of the protocol, not an add-on.

use super::{Buffer, FlushEnd, FlushError, FlushMode, FlushReport};
use crate::key::ConversationKey;
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
    /// The conversations past due now (up to `limit`), for shells that flush them concurrently
    /// with [`Self::sweep_one`].
    pub async fn sweep_due(&self, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        self.store.due(self.clock.now(), limit).await
    }

    /// Flushes one conversation the sweep found past due: it adopts the conversation's chain.
    pub async fn sweep_one(&self, key: ConversationKey) -> Result<FlushReport, FlushError> {
        let trig = TriggerMsg {
            key,
            chain: 0,
            gen: 0,
            ver: 0,
            due: self.clock.now(),
        };
        self.flush(&trig, FlushMode::Sweep).await
    }

    /// Flushes up to `limit` conversations past due, one after another (shells with a runtime
    /// fan out with [`Self::sweep_due`] and [`Self::sweep_one`] instead).
    pub async fn sweep(&self, limit: usize) -> Result<SweepReport, StoreError> {
        let keys = self.sweep_due(limit).await?;
        let mut report = SweepReport {
            due: keys.len(),
            ..SweepReport::default()
        };
        for key in keys {
            match self.sweep_one(key).await {
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
