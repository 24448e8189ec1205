//! One rule from the sink timeout to every other timeout of a hand-off.
//!
//! A hand-off runs under a lease; while the lease runs, no other flush hands off anything of that
//! conversation. Two hand-offs overlap only if a sink call outlives its lease, so every duration
//! around a sink call follows from the sink timeout, here and nowhere else:
//!
//! - **lease** = sink timeout + [`LEASE_MARGIN`]: the lease write, the sink call and the
//!   acknowledgement write fit in it. The core also cuts each sink call at the lease's end
//!   (`Sink::deliver`'s `within`), whatever the adapter's own settings.
//! - **function timeout** (the flush and sweep Lambdas, or any shell that runs flushes under a
//!   deadline) >= lease + [`FUNCTION_MARGIN`]: a flush never starts a lease it cannot finish
//!   before its process is stopped.
//! - **trigger queue visibility** >= the function timeout (SQS refuses an event source mapping
//!   whose queue visibility is shorter than the function's timeout).
//!
//! The shells (local server, Lambdas, CLI) build one [`HandoffTiming`] from their configured sink
//! timeout and take the lease and deadlines from it; start-up fails with [`TimingError`] when a
//! configured value contradicts the rule.

use std::time::Duration;

/// The default sink timeout: an AI step that answers synchronously (an LLM call with tools takes
/// 10-60 s) fits. Receivers that answer 2xx at once and work afterwards need far less.
pub const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest sink timeout: the lease and the flush Lambda's timeout must stay under Lambda's
/// 900 s limit.
pub const MAX_SINK_TIMEOUT: Duration = Duration::from_secs(600);

/// Lease time beyond the sink timeout: the conditional writes before and after the sink call.
pub const LEASE_MARGIN: Duration = Duration::from_secs(15);

/// Function time beyond one lease: reading the record, re-arming, reporting.
pub const FUNCTION_MARGIN: Duration = Duration::from_secs(15);

/// A sink call ends at least this long before its lease does, so the write that follows it
/// (conditional on the lease) still lands inside the lease. An explicitly configured lease must
/// leave at least this beyond the sink timeout.
pub const ACK_GUARD: Duration = Duration::from_secs(2);

/// A setting that contradicts the hand-off timing rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("sink timeout {0:?} must be above zero")]
    ZeroSinkTimeout(Duration),
    #[error("sink timeout {got:?} is above the maximum {max:?} (the lease and the flush function's timeout must stay under Lambda's 900 s)")]
    SinkTimeoutTooLong { got: Duration, max: Duration },
    #[error("lease {lease:?} must be at least the sink timeout {sink_timeout:?} + {margin:?}, so a live hand-off never loses its lease")]
    LeaseTooShort {
        lease: Duration,
        sink_timeout: Duration,
        margin: Duration,
    },
    #[error("{what} is {got:?}, below the {need:?} the hand-off timing needs (lease {lease:?} + {margin:?})")]
    DeadlineTooShort {
        what: &'static str,
        got: Duration,
        need: Duration,
        lease: Duration,
        margin: Duration,
    },
    #[error("dedupe horizon {horizon:?} is shorter than the max wait {max_wait:?}: a gateway's resend could reach a second batch")]
    HorizonTooShort {
        horizon: Duration,
        max_wait: Duration,
    },
}

/// The durations of a hand-off, all derived from the sink timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoffTiming {
    sink_timeout: Duration,
    lease: Duration,
}

impl Default for HandoffTiming {
    fn default() -> Self {
        HandoffTiming {
            sink_timeout: DEFAULT_SINK_TIMEOUT,
            lease: DEFAULT_SINK_TIMEOUT + LEASE_MARGIN,
        }
    }
}

impl HandoffTiming {
    /// The timing for a sink that may take `sink_timeout` to acknowledge.
    pub fn new(sink_timeout: Duration) -> Result<HandoffTiming, TimingError> {
        if sink_timeout.is_zero() {
            return Err(TimingError::ZeroSinkTimeout(sink_timeout));
        }
        if sink_timeout > MAX_SINK_TIMEOUT {
            return Err(TimingError::SinkTimeoutTooLong {
                got: sink_timeout,
                max: MAX_SINK_TIMEOUT,
            });
        }
        Ok(HandoffTiming {
            sink_timeout,
            lease: sink_timeout + LEASE_MARGIN,
        })
    }

    /// Like [`Self::new`], with an explicitly configured lease, which must still leave room for
    /// a whole sink call and the write after it (at least sink timeout + [`ACK_GUARD`]).
    pub fn with_lease(
        sink_timeout: Duration,
        lease: Duration,
    ) -> Result<HandoffTiming, TimingError> {
        let t = HandoffTiming::new(sink_timeout)?;
        if lease < sink_timeout + ACK_GUARD {
            return Err(TimingError::LeaseTooShort {
                lease,
                sink_timeout,
                margin: ACK_GUARD,
            });
        }
        Ok(HandoffTiming { lease, ..t })
    }

    /// How long one sink call may take.
    pub fn sink_timeout(&self) -> Duration {
        self.sink_timeout
    }

    /// How long a hand-off lease lasts.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The least timeout of a function that runs flushes (flush and sweep Lambdas).
    pub fn function_timeout(&self) -> Duration {
        self.lease + FUNCTION_MARGIN
    }

    /// The least visibility timeout of the trigger queue.
    pub fn min_visibility_timeout(&self) -> Duration {
        self.function_timeout()
    }

    /// How long a sink call made now under a lease that ends at `lease_until` may take: the sink
    /// timeout, cut so the call ends [`ACK_GUARD`] before the lease does. `None` when too little
    /// of the lease is left to make the call at all.
    pub fn call_budget(&self, now: crate::Millis, lease_until: crate::Millis) -> Option<Duration> {
        let left = lease_until.since(now).checked_sub(ACK_GUARD)?;
        (!left.is_zero()).then(|| left.min(self.sink_timeout))
    }

    /// Checks a shell's deadline (`what`, e.g. "flush function timeout") against the rule.
    pub fn check_deadline(&self, what: &'static str, got: Duration) -> Result<(), TimingError> {
        let need = self.function_timeout();
        if got < need {
            return Err(TimingError::DeadlineTooShort {
                what,
                got,
                need,
                lease: self.lease,
                margin: FUNCTION_MARGIN,
            });
        }
        Ok(())
    }
}

/// The dedupe horizon must outlast a window's life in the open (max wait): a gateway's resend of
/// a message still in its window must find the dedupe record. (Messages still in the record,
/// in the open window or pending behind a failing sink, are also recognised from the record
/// itself, however long they wait.)
pub fn check_dedupe_horizon(horizon: Duration, max_wait: Duration) -> Result<(), TimingError> {
    if horizon <= max_wait {
        return Err(TimingError::HorizonTooShort { horizon, max_wait });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Millis;

    #[test]
    fn everything_follows_from_the_sink_timeout() {
        let t = HandoffTiming::default();
        assert_eq!(t.sink_timeout(), Duration::from_secs(60));
        assert_eq!(t.lease(), Duration::from_secs(75));
        assert_eq!(t.function_timeout(), Duration::from_secs(90));
        assert!(t.min_visibility_timeout() >= t.function_timeout());
        let short = HandoffTiming::new(Duration::from_secs(10)).unwrap();
        assert_eq!(short.lease(), Duration::from_secs(25));
    }

    #[test]
    fn contradictions_are_refused() {
        assert!(HandoffTiming::new(Duration::ZERO).is_err());
        assert!(HandoffTiming::new(Duration::from_secs(601)).is_err());
        assert!(HandoffTiming::new(MAX_SINK_TIMEOUT).is_ok());
        let long_enough = HandoffTiming::new(MAX_SINK_TIMEOUT)
            .unwrap()
            .function_timeout();
        assert!(long_enough <= Duration::from_secs(900), "fits a Lambda");
        assert!(matches!(
            HandoffTiming::with_lease(Duration::from_secs(30), Duration::from_secs(30)),
            Err(TimingError::LeaseTooShort { .. })
        ));
        assert!(
            HandoffTiming::with_lease(Duration::from_secs(30), Duration::from_secs(32)).is_ok()
        );
        assert!(HandoffTiming::with_lease(Duration::from_secs(3), Duration::from_secs(5)).is_ok());
        let t = HandoffTiming::default();
        assert!(t.check_deadline("flush", Duration::from_secs(89)).is_err());
        assert!(t.check_deadline("flush", Duration::from_secs(90)).is_ok());
        assert!(check_dedupe_horizon(Duration::from_secs(30), Duration::from_secs(30)).is_err());
        assert!(check_dedupe_horizon(Duration::from_secs(3600), Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn a_sink_call_ends_before_its_lease() {
        let t = HandoffTiming::new(Duration::from_secs(10)).unwrap();
        let now = Millis(1_000_000);
        // Fresh lease: the whole sink timeout.
        assert_eq!(
            t.call_budget(now, now.plus(t.lease())),
            Some(Duration::from_secs(10))
        );
        // Late in the lease: cut to end ACK_GUARD before it.
        assert_eq!(
            t.call_budget(now, now.plus(Duration::from_secs(8))),
            Some(Duration::from_secs(6))
        );
        assert_eq!(t.call_budget(now, now.plus(ACK_GUARD)), None);
        assert_eq!(t.call_budget(now, Millis(now.0 - 1)), None);
    }
}
