//! The trigger chain and the due times it and the sweep's index cover: when a conversation next
//! needs a flush, and which writes must start a new chain.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Conversation, Hold, PARKED};
use crate::time::Millis;

/// How far past due a conversation may be before an append assumes its trigger chain is lost:
/// more than SQS's whole-second rounding plus polling, far less than a sweep interval.
pub const OVERDUE_SLACK: Duration = Duration::from_secs(5);

/// The live trigger chain. Appends start a chain (a trigger armed for `armed_for`); the flush
/// re-arms the same chain while work remains and ends it when the conversation goes idle. A
/// trigger whose token is not the stored one is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub token: u64,
    pub armed_for: Millis,
}

impl Conversation {
    /// When something must next happen, ignoring leases and backoffs: the oldest pending batch
    /// is due at once (when it closed), else the open window's due time; nothing while the oldest
    /// batch is parked. This is what a trigger chain covers.
    pub fn hand_off_due(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(b) if b.is_parked() => None,
            Some(b) => Some(self.after_pause(b.closed_at)),
            None => self.window_due().map(|d| d.at),
        }
    }

    /// `at`, or the end of an operator pause when that is later: a pause holds every hand-off.
    pub(super) fn after_pause(&self, at: Millis) -> Millis {
        self.turn.pause.map_or(at, |p| p.until.max(at))
    }

    /// When a flush can next make progress: like [`Self::hand_off_due`], but a held batch only
    /// when its lease or backoff runs out, and a parked one never (until a redrive). This is the
    /// due time the sweep's index holds.
    pub fn due_at(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(b) => match b.hold {
                None => Some(self.after_pause(b.closed_at)),
                Some(Hold::Lease { until, .. }) => Some(until.max(b.closed_at)),
                Some(Hold::Backoff { until }) => Some(self.after_pause(until.max(b.closed_at))),
                Some(Hold::Parked { .. }) => None,
            },
            None => self.window_due().map(|d| d.at),
        }
    }

    /// Where the store's due index files this record: a bound the sweep may act on, not the
    /// exact due time. The sweep is the safety net for lost triggers (every hand-off on time is a
    /// trigger's), so the index holds the *latest* time the next hand-off can fall due and moves
    /// only when that changes, not with every append: an index entry costs a write when it
    /// appears, disappears or moves (DynamoDB bills a moved GSI key twice), and the index was a
    /// quarter of the AWS bill when it tracked [`Self::due_at`].
    ///
    /// - open window, nothing pending: its first message + max wait (the latest it can be due);
    /// - oldest pending batch leased or free: the bound already stored (the window's, through
    ///   its close and lease), else its close time (due at once);
    /// - backing off: the end of the backoff (exact: the next attempt);
    /// - parked: [`PARKED`], after every real due time, so the sweep never reaches it while
    ///   start-up, `lull inspect` and `lull redrive` still find it;
    /// - idle: none (not in the index).
    ///
    /// Never earlier than [`Self::due_at`] for an open window, so the sweep never finds a window
    /// before it is due; a sweep finding a conversation still leased re-arms for the lease's end.
    /// Every transition stores the value (`index_at`) so it can be kept; computing it again from
    /// a record that stores it gives the same value.
    pub fn index_due(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(head) => match head.hold {
                Some(Hold::Parked { .. }) => Some(PARKED),
                Some(Hold::Backoff { until }) => Some(until.max(head.closed_at)),
                Some(Hold::Lease { .. }) | None => match self.index_at {
                    Some(kept) if kept != PARKED => Some(kept),
                    _ => Some(head.closed_at),
                },
            },
            None => self.window.as_ref().map(|w| {
                Millis(w.opened_at.0.saturating_add(w.max_wait_ms)).max(w.due(&self.turn).at)
            }),
        }
    }

    /// Stores [`Self::index_due`] for the write being prepared.
    pub(super) fn settle_index(&mut self) {
        self.index_at = self.index_due();
    }

    /// True when a flush now can make progress.
    pub fn is_past_due(&self, now: Millis) -> bool {
        self.due_at().is_some_and(|d| d <= now)
    }

    /// The chain a write being prepared must start, if any: a live chain fires no later than the
    /// due time it covered (`covered_until`, before the write), so a new one is started only when
    /// the write moved the due time earlier, the conversation was overdue, or no chain lives.
    /// Returns the new chain's due time (what to arm a trigger for).
    pub(super) fn chain_for_write(
        &mut self,
        covered_until: Option<Millis>,
        overdue: bool,
        random: &mut dyn FnMut() -> u64,
    ) -> Option<Millis> {
        let arm = match (self.chain, covered_until, self.hand_off_due()) {
            (Some(_), Some(covered), Some(due)) if due >= covered && !overdue => None,
            (_, _, due) => due,
        };
        if let Some(armed_for) = arm {
            self.chain = Some(Chain {
                token: random(),
                armed_for,
            });
        }
        arm
    }

    /// Ends the trigger chain of an idle conversation.
    pub fn end_chain(&mut self, now: Millis) -> bool {
        if self.is_idle() && self.chain.is_some() {
            self.chain = None;
            self.touch(now);
            true
        } else {
            false
        }
    }

    /// Starts a new chain (the sweep adopts a conversation whose chain was lost).
    pub fn restart_chain(&mut self, token: u64, armed_for: Millis, now: Millis) {
        self.chain = Some(Chain { token, armed_for });
        self.touch(now);
    }
}

#[cfg(test)]
#[path = "index_test.rs"]
mod index_test;

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::time::{duration_ms, Millis};
    use crate::window::test_support::*;
    use crate::window::*;

    #[test]
    fn a_chain_is_presumed_lost_only_past_the_overdue_slack() {
        let p = Policy::default();
        let slack = duration_ms(OVERDUE_SLACK);
        // Due at 8 s with a live chain: an append at exactly due + slack trusts the chain (the
        // due time only moves later), one a millisecond later starts a new chain.
        let at_slack = one_message()
            .plan_append(
                Message::text("b", "u", "2"),
                &p,
                Millis(8000 + slack),
                &mut counter(),
            )
            .unwrap();
        assert_eq!(at_slack.arm, None);
        let past = one_message()
            .plan_append(
                Message::text("b", "u", "2"),
                &p,
                Millis(8000 + slack + 1),
                &mut counter(),
            )
            .unwrap();
        assert_eq!(past.arm, Some(Millis(8000 + slack + 1 + 8000)));
        assert_eq!(past.next.chain.map(|ch| ch.armed_for), past.arm);
    }

    #[test]
    fn only_an_idle_conversation_with_a_chain_ends_it() {
        let mut busy = one_message();
        let before = busy.clone();
        assert!(busy.chain.is_some());
        assert!(!busy.end_chain(Millis(1)), "work is left");
        assert_eq!(busy, before);
        let mut idle = Conversation::fresh(key(), Millis(0));
        assert!(!idle.end_chain(Millis(1)), "no chain to end");
        assert_eq!(idle.ver, 0);
        idle.restart_chain(5, Millis(1), Millis(1));
        assert!(idle.end_chain(Millis(2)));
        assert_eq!((idle.chain, idle.ver), (None, 2));
    }
}
