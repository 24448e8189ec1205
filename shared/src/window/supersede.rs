//! The record's part of the reply guard and of `on_newer = "supersede"` (`docs/batch.md`, "The
//! reply guard"; `docs/architecture.md`, "Reply guard and supersede").
//!
//! - `Conversation::accepted` counts every message the conversation ever accepted (edits and
//!   unsends too: they go through the same append); each closed batch keeps the count at its
//!   close (`ClosedBatch::accepted`). A guard compares the two: one read, two numbers, nothing
//!   kept per guard. The record stays as small as before but for two integers.
//! - A batch of a `supersede` tenant can be marked superseded while it is still pending (its
//!   hand-off open): by its guard answering `superseded`, or by the hand-off's answer. The write
//!   that acknowledges it then moves its messages (and the context it carried) to the next batch
//!   as [`Carried`]: the closed batch right behind it, or the open window. Moved, not copied: the
//!   record does not grow, and nothing of the superseded batch stays once its successor is
//!   acknowledged.
//! - The promise holds: a batch is marked only while a successor exists, and a window that holds
//!   (or will hold) a superseded batch's context is never dropped for being emptied (unsends, a
//!   late original taking an early edit's place): the unsend stays in it as its message, so the
//!   batch that repeats the context always comes (`amend.rs`; `supersede_test.rs`).
//! - A thought spans at most [`MAX_THOUGHT_BATCHES`] batches: a batch carrying that many minus
//!   one is never superseded (its guard says `supersede: false`), so a user who never pauses is
//!   still answered.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ClosedBatch, Conversation};
use crate::guard::MAX_THOUGHT_BATCHES;
use crate::message::Message;
use crate::time::Millis;

/// What a superseded batch hands to the next one: its messages (after the ones it carried
/// itself), to repeat as `context`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// The superseded batch (`supersedes`).
    pub batch_id: Uuid,
    /// How many batches these messages came in (1: the superseded batch alone).
    pub batches: u32,
    /// Stored size of `messages`.
    pub bytes: u64,
    pub messages: Vec<Message>,
}

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

pub(super) fn is_zero64(n: &u64) -> bool {
    *n == 0
}

impl ClosedBatch {
    /// True when this batch may still be superseded: its tenant's policy says so and its
    /// thought has room for one more batch.
    pub fn can_be_superseded(&self) -> bool {
        self.supersede && self.carried.as_ref().map_or(0, |c| c.batches) + 1 < MAX_THOUGHT_BATCHES
    }

    /// What this batch hands on once superseded: what it carried, then its own messages.
    fn carried_on(&self) -> Carried {
        let mut messages = self
            .carried
            .as_ref()
            .map_or_else(Vec::new, |c| c.messages.clone());
        messages.extend(self.messages.iter().cloned());
        Carried {
            batch_id: self.batch_id,
            batches: self.carried.as_ref().map_or(0, |c| c.batches) + 1,
            bytes: self.bytes + self.carried.as_ref().map_or(0, |c| c.bytes),
            messages,
        }
    }
}

impl Conversation {
    /// True when batch `gen` is pending and marked superseded: its acknowledgement hands it to
    /// the next batch.
    pub fn is_superseded(&self, gen: u64) -> bool {
        self.pending.iter().any(|b| b.gen == gen && b.superseded)
    }

    /// Marks pending batch `gen` superseded (a guard said so) when it may be: `on_newer =
    /// "supersede"`, its thought below the bound, a message accepted after it closed, and a next
    /// batch to carry it (a closed batch behind it, or the open window). Without one (the user
    /// unsent everything they wrote after it) it is not marked: nothing would repeat it, so the
    /// bot must send its reply (`supersede: false`). Returns true when the record changed (the
    /// caller writes it).
    pub fn mark_superseded(&mut self, gen: u64, now: Millis) -> bool {
        let accepted = self.accepted;
        let Some(pos) = self.pending.iter().position(|b| b.gen == gen) else {
            return false;
        };
        let followed = pos + 1 < self.pending.len() || self.window.is_some();
        let b = &mut self.pending[pos];
        if b.superseded || !b.can_be_superseded() || accepted <= b.accepted || !followed {
            return false;
        }
        b.superseded = true;
        self.touch(now);
        true
    }

    /// True when the open window holds a superseded batch's context, or will (the newest
    /// pending batch is superseded: its acknowledgement hands it to the window). Such a window
    /// is never dropped for being left empty by unsends or a late original: the bot discarded
    /// its reply to that context on the promise that the next batch repeats it.
    pub(super) fn window_holds_context(&self) -> bool {
        self.window.as_ref().is_some_and(|w| w.carried.is_some())
            || self.pending.last().is_some_and(|b| b.superseded)
    }

    /// In the write acknowledging `acked` (already removed from `pending`): when it was
    /// superseded, its messages go to the next batch (the closed batch behind it, not handed off
    /// yet, or the open window). With neither (nothing came after it), it is not carried.
    /// Returns true when it was carried.
    pub(super) fn carry_forward(&mut self, acked: &ClosedBatch) -> bool {
        if !acked.superseded {
            return false;
        }
        let carried = acked.carried_on();
        if let Some(next) = self.pending.first_mut() {
            if next.more_pending.is_none() && next.carried.is_none() {
                next.carried = Some(carried);
                return true;
            }
            return false;
        }
        match &mut self.window {
            Some(w) if w.carried.is_none() => {
                w.carried = Some(carried);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "supersede_test.rs"]
mod supersede_test;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{answer, claim_for, GuardAnswer};
    use crate::key::{ConversationKey, Provider};
    use crate::policy::{OnNewer, Policy};
    use std::time::Duration;

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0;
        move || {
            n += 1;
            n
        }
    }

    fn supersede() -> Policy {
        Policy {
            on_newer: OnNewer::Supersede,
            ..Policy::default()
        }
    }

    fn send(
        c: Conversation,
        id: &str,
        p: &Policy,
        at: u64,
        r: &mut dyn FnMut() -> u64,
    ) -> Conversation {
        c.plan_append(Message::text(id, "user", id), p, Millis(at), r)
            .unwrap()
            .next
    }

    /// Closes the open window and takes the lease on the head, as a flush does.
    fn close_and_lease(c: &mut Conversation, at: u64) {
        assert!(c.close_if_due(Millis(at)).is_some());
        assert!(c.lease_head(Millis(at), Duration::from_secs(75), 9));
    }

    /// A conversation whose first batch ("a", accepted at 1 s) is closed and leased at 10 s.
    fn first_batch_leased(
        p: &Policy,
        r: &mut impl FnMut() -> u64,
    ) -> (ConversationKey, Conversation) {
        let key = ConversationKey::new(Provider::Meta, "pn", "user");
        let mut c = send(
            Conversation::fresh(key.clone(), Millis(1_000)),
            "a",
            p,
            1_000,
            r,
        );
        close_and_lease(&mut c, 10_000);
        (key, c)
    }

    #[test]
    fn a_superseded_batch_becomes_the_context_of_the_next_one() {
        let p = supersede();
        let mut r = counter();
        let (key, mut c) = first_batch_leased(&p, &mut r);
        let claim = claim_for(&key, &c.pending[0], Duration::from_secs(3600));
        // Nothing newer: current, and the mark refuses.
        assert_eq!(
            answer(Some(&c), &claim, Millis(11_000)),
            Ok(GuardAnswer::Current)
        );
        assert!(!c.mark_superseded(claim.gen, Millis(11_000)));
        // "and one coke" while the bot generates.
        c = send(c, "b", &p, 12_000, &mut r);
        assert!(c.mark_superseded(claim.gen, Millis(13_000)));
        assert_eq!(
            answer(Some(&c), &claim, Millis(13_000)),
            Ok(GuardAnswer::Superseded {
                newer_messages: 1,
                supersede: true
            })
        );
        let gen = claim.gen;
        assert!(c.ack(gen, 9, Millis(14_000)));
        let w = c.window.as_ref().unwrap();
        let carried = w.carried.as_ref().unwrap();
        assert_eq!(carried.batch_id, claim.batch_id);
        assert_eq!(
            carried
                .messages
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        close_and_lease(&mut c, 30_000);
        let b = c.pending[0].to_batch(&key);
        assert_eq!(b.supersedes, Some(claim.batch_id));
        assert_eq!(b.context.len(), 1);
        assert_eq!(b.messages.len(), 1);
        assert_eq!(b.text, "b", "context is never in text");
    }

    #[test]
    fn append_tenants_and_thoughts_at_the_bound_are_never_superseded() {
        let mut r = counter();
        let key = ConversationKey::new(Provider::Meta, "pn", "user");
        let append = Policy::default();
        let mut c = send(
            Conversation::fresh(key.clone(), Millis(1_000)),
            "a",
            &append,
            1_000,
            &mut r,
        );
        close_and_lease(&mut c, 10_000);
        let gen = c.pending[0].gen;
        c = send(c, "b", &append, 12_000, &mut r);
        assert!(!c.mark_superseded(gen, Millis(13_000)));

        let p = supersede();
        let mut c = send(
            Conversation::fresh(key.clone(), Millis(1_000)),
            "m0",
            &p,
            1_000,
            &mut r,
        );
        let mut superseded = 0;
        for i in 1..10u64 {
            let at = i * 100_000;
            close_and_lease(&mut c, at);
            let gen = c.pending[0].gen;
            c = send(c, &format!("m{i}"), &p, at + 1_000, &mut r);
            if c.mark_superseded(gen, Millis(at + 2_000)) {
                superseded += 1;
            } else {
                // The bound: the third batch of a thought is answered.
                assert_eq!(c.pending[0].carried.as_ref().map(|k| k.batches), Some(2));
                superseded = 0;
            }
            assert!(superseded < MAX_THOUGHT_BATCHES);
            assert!(c.ack(gen, 9, Millis(at + 3_000)));
        }
    }

    #[test]
    fn a_batch_already_closed_behind_it_gets_the_context_and_records_without_the_fields_load() {
        let p = supersede();
        let mut r = counter();
        let (_, mut c) = first_batch_leased(&p, &mut r);
        let gen = c.pending[0].gen;
        c = send(c, "b", &p, 12_000, &mut r);
        assert!(c.close_if_due(Millis(25_000)).is_some());
        assert!(c.mark_superseded(gen, Millis(26_000)));
        assert!(c.ack(gen, 9, Millis(27_000)));
        assert_eq!(
            c.pending[0].carried.as_ref().map(|k| k.messages.len()),
            Some(1)
        );
        // An older record: no counts, no marks.
        let mut v = serde_json::to_value(&c).unwrap();
        v.as_object_mut().unwrap().remove("accepted");
        for b in v["pending"].as_array_mut().unwrap() {
            let b = b.as_object_mut().unwrap();
            b.remove("accepted");
            b.remove("supersede");
            b.remove("carried");
        }
        let old: Conversation = serde_json::from_value(v).unwrap();
        assert_eq!(old.accepted, 0);
        assert!(!old.pending[0].supersede);
    }
}
