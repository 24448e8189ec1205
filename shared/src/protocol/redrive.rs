//! A redrive: an operator's "hand off what this conversation holds, now" (`lull redrive`, the
//! AWS DLQ replay, the consoles' redrive button). Backoff holds and parks are lifted
//! ([`Claim::Redrive`]), and the redrive is over only when the conversation is: a flush that
//! *yielded* after its hand-off budget (`max_handoffs_per_flush`) re-armed its chain with batches
//! still pending, so it is flushed again instead of being counted as done. When a redrive counts
//! as done is decided here, once ([`next`]); every shell runs [`Handoff::redrive`].

use super::flush::FlushError;
use super::outcome::{Claim, Disposition, FlushEnd, FlushReport, HandedOff};
use super::Handoff;
use crate::key::ConversationKey;
use crate::ports::{Clock, Sink, Trigger, WindowStore};

/// How many flushes one redrive of a conversation runs at most (each hands off up to
/// `max_handoffs_per_flush` batches): bounds the work of one operator action.
pub const MAX_REDRIVE_FLUSHES: u32 = 64;

/// What a redrive does after one flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedriveNext {
    /// The flush yielded after its hand-off budget with work left: flush again.
    Again,
    /// Nothing due is left, or the live chain (re-armed, or another flush's lease) covers it.
    Done,
    /// The sink failed or refused the batch again: it stays pending (parked or held).
    Failed,
}

/// The one rule of a redrive: a yield (re-armed after handing batches off) is not the end.
pub fn next(report: &FlushReport) -> RedriveNext {
    match report.end {
        FlushEnd::Rearmed { .. } if !report.handed_off.is_empty() => RedriveNext::Again,
        ref end if end.disposition() == Disposition::Done => RedriveNext::Done,
        _ => RedriveNext::Failed,
    }
}

/// How a redrive of one conversation ended.
#[derive(Debug)]
pub enum RedriveEnd {
    /// Done: the last flush's end.
    Done(FlushEnd),
    /// The sink failed or refused again (the last flush's end); the batch stays pending.
    Failed(FlushEnd),
    /// A flush could not finish (store, trigger, contention); what is pending stays.
    Error(FlushError),
    /// Still yielding after [`MAX_REDRIVE_FLUSHES`] flushes; the re-armed chain goes on.
    Unfinished,
}

/// What a redrive of one conversation did.
#[derive(Debug)]
pub struct RedriveReport {
    /// Every batch handed off, over all its flushes.
    pub handed_off: Vec<HandedOff>,
    pub end: RedriveEnd,
}

impl RedriveReport {
    /// True when nothing of the conversation is left for this redrive to do.
    pub fn is_done(&self) -> bool {
        matches!(self.end, RedriveEnd::Done(_))
    }

    /// Why it is not done, for an operator (`None` when done).
    pub fn failure(&self) -> Option<String> {
        match &self.end {
            RedriveEnd::Done(_) => None,
            RedriveEnd::Failed(FlushEnd::SinkFailed { error, .. }) => Some(error.to_string()),
            RedriveEnd::Failed(FlushEnd::Parked { error }) => Some(format!(
                "the sink refused the batch again: {}",
                error.as_deref().unwrap_or("?")
            )),
            RedriveEnd::Failed(other) => Some(format!("{other:?}")),
            RedriveEnd::Error(e) => Some(e.to_string()),
            RedriveEnd::Unfinished => Some(format!(
                "still handing off after {MAX_REDRIVE_FLUSHES} flushes; its chain goes on"
            )),
        }
    }
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Handoff<S, T, K, C> {
    /// Redrives conversation `key`: flushes it with [`Claim::Redrive`] until [`next`] says it is
    /// done or failed (at most [`MAX_REDRIVE_FLUSHES`] flushes).
    pub async fn redrive(&self, key: &ConversationKey) -> RedriveReport {
        let mut handed_off = Vec::new();
        for _ in 0..MAX_REDRIVE_FLUSHES {
            let report = match self.flush(key, Claim::Redrive).await {
                Ok(r) => r,
                Err(e) => {
                    return RedriveReport {
                        handed_off,
                        end: RedriveEnd::Error(e),
                    }
                }
            };
            let step = next(&report);
            handed_off.extend(report.handed_off);
            let end = match step {
                RedriveNext::Again => continue,
                RedriveNext::Done => RedriveEnd::Done(report.end),
                RedriveNext::Failed => RedriveEnd::Failed(report.end),
            };
            return RedriveReport { handed_off, end };
        }
        RedriveReport {
            handed_off,
            end: RedriveEnd::Unfinished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SinkError;
    use crate::time::Millis;

    fn report(handed: usize, end: FlushEnd) -> FlushReport {
        let h = HandedOff {
            gen: 1,
            batch_id: uuid::Uuid::nil(),
            reason: crate::batch::CloseReason::Quiet,
            messages: 1,
            due_at: Millis(0),
            acked_at: Millis(0),
        };
        FlushReport {
            handed_off: vec![h; handed],
            end,
        }
    }

    #[test]
    fn a_yield_is_not_the_end_of_a_redrive() {
        let at = Millis(5);
        assert_eq!(
            next(&report(16, FlushEnd::Rearmed { at })),
            RedriveNext::Again
        );
        // Re-armed for a window not due yet, nothing handed off: the chain covers it.
        assert_eq!(
            next(&report(0, FlushEnd::Rearmed { at })),
            RedriveNext::Done
        );
        for end in [
            FlushEnd::Idle,
            FlushEnd::Covered,
            FlushEnd::Stale,
            FlushEnd::Waiting { until: at },
            FlushEnd::LeaseLost,
        ] {
            assert_eq!(next(&report(1, end.clone())), RedriveNext::Done, "{end:?}");
        }
        let failed = FlushEnd::SinkFailed {
            error: SinkError::Retryable {
                reason: "503".into(),
                retry_after: None,
                status: Some(503),
            },
            retry_at: at,
        };
        assert_eq!(next(&report(3, failed)), RedriveNext::Failed);
        assert_eq!(
            next(&report(0, FlushEnd::Parked { error: None })),
            RedriveNext::Failed
        );
    }
}
