//! Closed batches waiting for the sink: the hand-off lease that keeps two hand-offs of one
//! conversation from overlapping, the acknowledgement, and the backoff and park after failures.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Conversation;
use crate::batch::{Batch, CloseReason};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::time::Millis;
use crate::turn::TurnReason;

/// What holds the oldest pending batch back from a hand-off right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hold {
    /// A flush is handing the batch off under `token`; until `until` no other flush hands off
    /// anything of this conversation, so two hand-offs never overlap. Every write that follows
    /// the sink call is conditional on the token.
    Lease { until: Millis, token: u64 },
    /// The last hand-off failed (a retryable failure): nobody retries before `until`.
    Backoff { until: Millis },
    /// The sink refused the batch (a permanent failure): it waits for an operator's redrive.
    Parked { since: Millis },
}

impl Hold {
    /// True while this hold keeps every flush (but a redrive, for backoffs and parks) away.
    fn active(self, now: Millis) -> bool {
        match self {
            Hold::Lease { until, .. } | Hold::Backoff { until } => until > now,
            Hold::Parked { .. } => true,
        }
    }
}

/// The due-index position of a conversation whose oldest batch is parked: later than any real due
/// time (and still a valid signed 64-bit number for SQLite and DynamoDB).
pub const PARKED: Millis = Millis(i64::MAX as u64);

/// The longest reason kept with a failed batch (for `lull inspect` and the logs).
pub const MAX_ERROR_BYTES: usize = 200;

/// How many failed hand-offs a pending batch remembers (the newest): what the console shows of
/// its attempts. Bounded so a batch failing for days does not grow its record (4 attempts are
/// at most ~200 bytes of JSON, inside [`super::FLUSH_HEADROOM`]); `failures` keeps the full
/// count.
pub const MAX_ATTEMPTS_KEPT: usize = 4;

/// One failed hand-off of a batch, as the console shows it: when the sink call started, how
/// long the sink took to answer, and what it answered. An acknowledged attempt is not kept: the
/// acknowledgement removes the batch (its ids stay in [`Conversation::acked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the sink call started, in ms (integers: compact in every record).
    pub at: u64,
    /// How long the sink took to answer (or to fail), in ms.
    pub ms: u64,
    /// The HTTP status the sink answered, when it answered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// True when the sink refused the batch (it was parked), false for a retryable failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

/// A closed window waiting to be acknowledged by the sink. Immutable but for its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedBatch {
    pub gen: u64,
    pub batch_id: Uuid,
    pub reason: CloseReason,
    pub opened_at: Millis,
    pub closed_at: Millis,
    /// When the window became due (quiet period or max wait reached; for size and passthrough,
    /// when it closed): the start of its hand-off lag.
    pub due_at: Millis,
    pub bytes: u64,
    /// Fixed at the first hand-off, so retries carry the same content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_pending: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Hand-offs the sink did not acknowledge so far: the retry backoff grows with it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// Why the last hand-off failed (at most [`MAX_ERROR_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The end-of-turn rule that made the window due (quiet and max-wait closes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited: Option<TurnReason>,
    /// The newest failed hand-offs (at most [`MAX_ATTEMPTS_KEPT`], oldest first). Absent in
    /// records written before it existed, and while nothing failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    pub messages: Vec<Message>,
    /// [`Conversation::accepted`] when the batch closed: its reply guard says `current` while
    /// the record's count is still this (records from before the count: 0, see `supersede.rs`).
    #[serde(default, skip_serializing_if = "super::supersede::is_zero64")]
    pub accepted: u64,
    /// The window opened under `on_newer = "supersede"`.
    #[serde(default, skip_serializing_if = "super::supersede::is_false")]
    pub supersede: bool,
    /// Superseded (by its guard's answer or its hand-off's): its acknowledgement hands its
    /// messages to the next batch.
    #[serde(default, skip_serializing_if = "super::supersede::is_false")]
    pub superseded: bool,
    /// The `context` this batch carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<super::Carried>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ClosedBatch {
    /// The public batch handed to the sink.
    pub fn to_batch(&self, key: &ConversationKey) -> Batch {
        Batch::new(
            self.batch_id,
            key.clone(),
            self.gen,
            self.reason,
            self.opened_at,
            self.closed_at,
            self.more_pending.unwrap_or(false),
            self.messages.clone(),
        )
        .waited(self.waited)
        .carrying(self.carried.as_ref())
    }

    /// True while a lease, backoff or park keeps flushes away from this batch.
    pub fn is_held(&self, now: Millis) -> bool {
        self.hold.is_some_and(|h| h.active(now))
    }

    /// The lease token this batch is being handed off under, if any (expired or not).
    pub fn lease_token(&self) -> Option<u64> {
        match self.hold {
            Some(Hold::Lease { token, .. }) => Some(token),
            _ => None,
        }
    }

    /// True when the sink refused this batch and it waits for a redrive.
    pub fn is_parked(&self) -> bool {
        matches!(self.hold, Some(Hold::Parked { .. }))
    }
}

impl Conversation {
    /// Takes the hand-off lease on the oldest pending batch, freezing `more_pending` at its first
    /// hand-off. Returns false when a live lease, a backoff or a park holds it.
    pub fn lease_head(&mut self, now: Millis, lease: Duration, token: u64) -> bool {
        if self.paused_until(now).is_some() {
            return false;
        }
        let more = self.pending.len() > 1 || self.window.is_some();
        match self.pending.first_mut() {
            Some(head) if !head.is_held(now) => {
                head.hold = Some(Hold::Lease {
                    until: now.plus(lease),
                    token,
                });
                head.more_pending.get_or_insert(more);
                self.touch(now);
                true
            }
            _ => false,
        }
    }

    /// True when batch `gen` is the oldest pending one and is leased under `token`: what every
    /// write after a sink call checks, so a flush whose lease was taken over changes nothing.
    fn head_leased_by(&self, gen: u64, token: u64) -> bool {
        self.pending
            .first()
            .is_some_and(|b| b.gen == gen && b.lease_token() == Some(token))
    }

    /// Records that batch `gen`, handed off under lease `token`, was acknowledged. Ends the
    /// trigger chain when nothing is left. Returns false (and changes nothing) when the batch is
    /// no longer pending under that lease: acknowledged already, or its lease taken over.
    pub fn ack(&mut self, gen: u64, token: u64, now: Millis) -> bool {
        if !self.head_leased_by(gen, token) {
            return false;
        }
        let acked = self.pending.remove(0);
        self.carry_forward(&acked);
        if self.is_idle() {
            self.chain = None;
        }
        self.touch(now);
        true
    }

    /// After a retryable failure of batch `gen` under lease `token`, holds it until `now + hold`:
    /// nobody retries before then (not the sweep, not a duplicate trigger), and the failure is
    /// counted so the next hold can grow. Returns false when the lease is no longer ours.
    pub fn hold_after_failure(
        &mut self,
        gen: u64,
        token: u64,
        now: Millis,
        hold: Duration,
        error: &str,
    ) -> bool {
        self.after_failure(
            gen,
            token,
            now,
            Hold::Backoff {
                until: now.plus(hold),
            },
            error,
        )
    }

    /// After the sink refused batch `gen` under lease `token`, parks it until an operator
    /// redrives it. Returns false when the lease is no longer ours.
    pub fn park(&mut self, gen: u64, token: u64, now: Millis, error: &str) -> bool {
        self.after_failure(gen, token, now, Hold::Parked { since: now }, error)
    }

    fn after_failure(
        &mut self,
        gen: u64,
        token: u64,
        now: Millis,
        hold: Hold,
        error: &str,
    ) -> bool {
        if !self.head_leased_by(gen, token) {
            return false;
        }
        if let Some(head) = self.pending.first_mut() {
            head.hold = Some(hold);
            head.failures = head.failures.saturating_add(1);
            head.last_error = Some(truncated(&printable(error), MAX_ERROR_BYTES));
        }
        self.touch(now);
        true
    }

    /// Notes a failed hand-off of batch `gen` (the oldest pending one) in the same write that
    /// holds or parks it: the newest [`MAX_ATTEMPTS_KEPT`] are kept. Changes nothing (and the
    /// version is not bumped: the hold's write carries it) when `gen` is not the head.
    pub fn note_attempt(&mut self, gen: u64, attempt: Attempt) {
        if let Some(head) = self.pending.first_mut().filter(|b| b.gen == gen) {
            head.attempts.push(attempt);
            let over = head.attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
            head.attempts.drain(..over);
        }
    }

    /// Clears the lease (token `token`) on batch `gen`: the local server does this at start-up
    /// for leases a killed process left behind. Returns false when there was no such lease.
    pub fn release(&mut self, gen: u64, token: u64, now: Millis) -> bool {
        if !self.head_leased_by(gen, token) {
            return false;
        }
        if let Some(head) = self.pending.first_mut() {
            head.hold = None;
        }
        self.touch(now);
        true
    }

    /// When the oldest pending batch is in a backoff after a failure, until when.
    pub fn held_until(&self, now: Millis) -> Option<Millis> {
        match self.pending.first()?.hold {
            Some(Hold::Backoff { until }) if until > now => Some(until),
            _ => None,
        }
    }

    /// True when the oldest pending batch was refused by the sink and waits for a redrive.
    pub fn is_parked(&self) -> bool {
        self.pending.first().is_some_and(ClosedBatch::is_parked)
    }

    /// Lifts a backoff or a park (an operator's redrive); a live hand-off lease stays.
    pub fn lift_hold(&mut self) {
        if let Some(head) = self.pending.first_mut() {
            if matches!(head.hold, Some(Hold::Backoff { .. } | Hold::Parked { .. })) {
                head.hold = None;
            }
        }
    }

    /// Failed hand-offs of the oldest pending batch so far.
    pub fn head_failures(&self) -> u32 {
        self.pending.first().map_or(0, |b| b.failures)
    }
}

/// `s` with control characters as spaces: a failure reason never grows sixfold when encoded.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::window::test_support::*;
    use crate::window::*;

    #[test]
    fn a_lease_taken_over_fences_every_later_write() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(8000), Duration::from_secs(10), 1));
        // The first flush's sink call outlives its lease; a second flush takes it over.
        assert!(c.lease_head(Millis(18_000), Duration::from_secs(10), 2));
        let before = c.clone();
        assert!(!c.ack(gen, 1, Millis(19_000)));
        assert!(!c.hold_after_failure(gen, 1, Millis(19_000), Duration::from_secs(1), "x"));
        assert!(!c.park(gen, 1, Millis(19_000), "x"));
        assert!(!c.release(gen, 1, Millis(19_000)));
        assert_eq!(c, before, "the first flush changes nothing");
        assert!(c.ack(gen, 2, Millis(19_000)));
    }

    #[test]
    fn lease_blocks_a_second_hand_off_and_ack_ends_the_chain() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(8000), Duration::from_secs(30), 7));
        assert!(!c.lease_head(Millis(8001), Duration::from_secs(30), 8));
        assert_eq!(c.due_at(), Some(Millis(38000)));
        assert!(
            !c.ack(gen, 8, Millis(8002)),
            "only the lease holder records the ack"
        );
        assert!(c.ack(gen, 7, Millis(8002)));
        assert!(!c.ack(gen, 7, Millis(8003)), "a second ack is a no-op");
        assert!(c.chain.is_none());
        assert!(c.is_idle());
    }

    #[test]
    fn a_zero_failure_count_is_left_out_of_the_record_and_any_other_is_kept() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("failures"), "{json}");
        c.pending[0].failures = 2;
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"failures\":2"), "{json}");
        let back: Conversation = serde_json::from_str(&json).unwrap();
        assert_eq!(back.head_failures(), 2);
        assert_eq!(back, c);
    }

    #[test]
    fn the_first_hand_off_freezes_whether_more_is_pending() {
        let lease = Duration::from_secs(30);
        // One batch, nothing behind it.
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        assert!(c.lease_head(Millis(8000), lease, 1));
        assert_eq!(c.pending[0].more_pending, Some(false));
        // One batch and an open window behind it.
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let mut c = c
            .plan_append(
                Message::text("b", "u", "2"),
                &Policy::default(),
                Millis(8001),
                &mut counter(),
            )
            .unwrap()
            .next;
        assert!(c.lease_head(Millis(8001), lease, 1));
        assert_eq!(c.pending[0].more_pending, Some(true));
        // Two batches.
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let mut r = counter();
        let mut c = Conversation::fresh(key(), Millis(0));
        for id in ["a", "b"] {
            c = c
                .plan_append(Message::text(id, "u", "x"), &p, Millis(1), &mut r)
                .unwrap()
                .next;
        }
        assert!(c.lease_head(Millis(1), lease, 1));
        assert_eq!(c.pending[0].more_pending, Some(true));
    }

    #[test]
    fn a_released_lease_frees_the_batch_at_once() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(8000), Duration::from_secs(30), 7));
        let ver = c.ver;
        assert!(c.release(gen, 7, Millis(8001)));
        assert_eq!(c.pending[0].hold, None);
        assert_eq!((c.ver, c.updated_at), (ver + 1, Millis(8001)));
        assert!(c.lease_head(Millis(8002), Duration::from_secs(30), 8));
    }

    #[test]
    fn failures_are_counted_and_a_parked_batch_is_out_of_the_chain_and_the_sweep() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert_eq!(c.head_failures(), 0);
        assert_eq!(c.hand_off_due(), Some(Millis(8000)));
        // The index keeps the window's bound (first message + max wait) until a hold.
        assert_eq!(c.index_due(), Some(Millis(30_000)));
        for (token, at) in [(1, 8000), (2, 20_000)] {
            assert!(c.lease_head(Millis(at), Duration::from_secs(10), token));
            assert!(c.hold_after_failure(gen, token, Millis(at), Duration::from_secs(2), "503"));
        }
        assert_eq!(c.head_failures(), 2);
        assert_eq!(c.index_due(), Some(Millis(22_000)));
        assert!(c.lease_head(Millis(22_000), Duration::from_secs(10), 3));
        assert!(c.park(gen, 3, Millis(22_000), "410 gone"));
        assert_eq!(c.head_failures(), 3);
        assert_eq!(
            c.hand_off_due(),
            None,
            "no trigger chain for a parked batch"
        );
        assert_eq!(c.due_at(), None);
        assert_eq!(
            c.index_due(),
            Some(PARKED),
            "filed after every real due time"
        );
    }

    #[test]
    fn a_failure_reason_is_kept_short() {
        let long = "é".repeat(300);
        let t = truncated(&long, MAX_ERROR_BYTES);
        assert!(t.len() <= MAX_ERROR_BYTES && long.starts_with(&t));
    }

    #[test]
    fn a_failure_reason_is_cut_on_a_character_boundary() {
        let s = format!("a{}", "é".repeat(300));
        let t = truncated(&s, MAX_ERROR_BYTES);
        assert_eq!(t, format!("a{}", "é".repeat(99)));
        assert_eq!(truncated("short", MAX_ERROR_BYTES), "short");
    }
}
