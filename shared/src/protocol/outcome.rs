//! What a flush did, and what that means for the shell that ran it: decided here, once, so the
//! Lambdas, the local timers, the sweeps and the simulator all treat an outcome the same way.

use uuid::Uuid;

use crate::batch::CloseReason;
use crate::ports::SinkError;
use crate::time::Millis;

/// Who asked for a flush, and with what right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A trigger of chain `chain` fired. It may be stale (a newer chain exists), early, or a
    /// duplicate; only the live chain's trigger acts before the conversation is past due.
    Trigger { chain: u64 },
    /// The sweep found the conversation past due: its chain was lost or is late. The flush adopts
    /// the conversation's chain.
    Sweep,
    /// An operator asked to re-deliver now (`lull redrive`): like the sweep, and a backoff or a
    /// park does not make the batch wait.
    Redrive,
}

impl Claim {
    /// True for the sweep and a redrive, which act whatever the stored chain.
    pub fn adopts(self) -> bool {
        !matches!(self, Claim::Trigger { .. })
    }
}

/// One batch handed off and acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandedOff {
    pub gen: u64,
    pub batch_id: Uuid,
    pub reason: CloseReason,
    pub messages: usize,
    pub due_at: Millis,
    pub acked_at: Millis,
}

/// How a flush ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlushEnd {
    /// The trigger's chain is no longer the live one and nothing was due: dropped.
    Stale,
    /// Nothing left to do; the chain ended.
    Idle,
    /// The live chain was re-armed for `at` (the window is not due yet, or this flush yielded).
    Rearmed { at: Millis },
    /// Another flush holds the hand-off lease; the live chain was re-armed for when it runs out.
    Waiting { until: Millis },
    /// A trigger of a stale chain did what was due; the live chain covers the rest.
    Covered,
    /// The oldest batch failed recently and is held until `until` (backoff).
    BackingOff { until: Millis },
    /// The sink did not acknowledge (a retryable failure); the batch is held until `retry_at`.
    SinkFailed { error: SinkError, retry_at: Millis },
    /// The sink refused the oldest batch, now or before: it is parked until an operator redrives
    /// it (`lull redrive`); later batches of the conversation wait behind it.
    Parked { error: Option<String> },
    /// The sink acknowledged, but this flush's lease had been taken over meanwhile, so it wrote
    /// nothing: the lease's new holder hands the same batch (same id) off again and records it.
    LeaseLost,
}

/// What a shell that retries work does after a flush: the one meaning of every [`FlushEnd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done with this trigger (delete it): the live chain, re-armed or not needed, covers the rest.
    Done,
    /// Retry this conversation at `at`. On SQS: report the record failed, so it comes back after
    /// its visibility timeout and, if it keeps failing, reaches the dead-letter queue (the batch
    /// stays pending in the store); locally: re-arm for `at`.
    RetryAt(Millis),
    /// An operator must act (a parked batch). On SQS: report the record failed, so it reaches the
    /// dead-letter queue and its alarm; locally: do not retry; `lull redrive` lifts the park.
    Operator,
}

impl FlushEnd {
    /// What a retrying shell does after this end.
    pub fn disposition(&self) -> Disposition {
        match self {
            FlushEnd::Stale
            | FlushEnd::Idle
            | FlushEnd::Rearmed { .. }
            | FlushEnd::Waiting { .. }
            | FlushEnd::Covered
            | FlushEnd::LeaseLost => Disposition::Done,
            FlushEnd::BackingOff { until } => Disposition::RetryAt(*until),
            FlushEnd::SinkFailed { retry_at, .. } => Disposition::RetryAt(*retry_at),
            FlushEnd::Parked { .. } => Disposition::Operator,
        }
    }

    /// True when the shell should count this flush as failed (metrics, sweep reports).
    pub fn is_failure(&self) -> bool {
        self.disposition() != Disposition::Done
    }
}

/// What one flush did.
#[derive(Clone, Debug)]
pub struct FlushReport {
    pub handed_off: Vec<HandedOff>,
    pub end: FlushEnd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_has_one_meaning() {
        let at = Millis(5);
        assert_eq!(FlushEnd::Stale.disposition(), Disposition::Done);
        assert_eq!(FlushEnd::Covered.disposition(), Disposition::Done);
        assert_eq!(FlushEnd::LeaseLost.disposition(), Disposition::Done);
        assert_eq!(
            FlushEnd::Waiting { until: at }.disposition(),
            Disposition::Done,
            "the re-armed chain covers a batch another flush is handing off"
        );
        assert_eq!(
            FlushEnd::BackingOff { until: at }.disposition(),
            Disposition::RetryAt(at)
        );
        let failed = FlushEnd::SinkFailed {
            error: SinkError::retryable("503"),
            retry_at: at,
        };
        assert_eq!(failed.disposition(), Disposition::RetryAt(at));
        assert!(failed.is_failure());
        assert_eq!(
            FlushEnd::Parked { error: None }.disposition(),
            Disposition::Operator
        );
        assert!(!FlushEnd::Idle.is_failure());
    }
}
