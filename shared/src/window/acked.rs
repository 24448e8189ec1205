//! Acknowledged-id dedupe: a resend of a message still held or recently acknowledged is
//! recognised from the record an append reads anyway; ids pushed out of the record's budget get
//! long-horizon dedupe records first.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Conversation;
use crate::time::Millis;

/// `Conversation::dedupe_until` of a record written before the field existed, when every
/// append wrote its message's dedupe record (see [`Conversation::needs_dedupe_lookup`]).
pub const LEGACY_DEDUPE: Millis = Millis(u64::MAX);

pub(super) fn legacy_dedupe() -> Option<Millis> {
    Some(LEGACY_DEDUPE)
}

/// The default byte budget of a record's recently acknowledged ids ([`Conversation::acked`], as
/// counted by [`AckedIds::bytes`]): room for a batch of six WhatsApp ids (~64 bytes each: 458)
/// or many more shorter ones. A conversation whose ids never leave it writes no dedupe record
/// at all; a returning user's appends carry it, which DynamoDB's deflated record makes cheap
/// (a 6-message window with a full list of WhatsApp ids: ~2.1 KB of JSON, ~0.7 KB stored, one
/// write unit; `BENCHMARKS.md`, section 3, "Issue 15, part 2").
pub const ACKED_IDS_BYTES: u64 = 512;

/// What one group of [`AckedIds`] counts for beside its ids: its JSON's field names, numbers
/// and punctuation (`{"gen":…,"until":…,"ids":[]},`, 13-digit numbers).
const ACKED_GROUP_BYTES: u64 = 56;

/// What one acknowledged id counts for beside its own bytes: its quotes and a comma.
const ACKED_ID_BYTES: u64 = 3;

/// The message ids of one acknowledged batch, kept in the record (full ids: a hash collision
/// would drop a new message as a duplicate) so a gateway's resend is recognised from the record
/// an append reads anyway, with no dedupe record written or read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedIds {
    /// The batch's generation (what a duplicate's answer names).
    pub gen: u64,
    /// The end of these ids' dedupe horizon (the acknowledgement + the horizon), in ms: after
    /// it they just drop.
    pub until: u64,
    pub ids: Vec<String>,
}

impl AckedIds {
    /// What this group counts for in the list's byte budget.
    pub fn bytes(&self) -> u64 {
        ACKED_GROUP_BYTES
            + self
                .ids
                .iter()
                .map(|id| id.len() as u64 + ACKED_ID_BYTES)
                .sum::<u64>()
    }
}

impl Conversation {
    /// True when `message_id` is still held in this record (the open window or a pending batch):
    /// a resend of it is a duplicate however long its batch has been waiting, whatever the dedupe
    /// horizon.
    pub fn holds_message(&self, message_id: &str) -> Option<u64> {
        if let Some(w) = &self.window {
            if w.messages.iter().any(|m| m.id == message_id) {
                return Some(self.gen);
            }
        }
        self.pending
            .iter()
            .find(|b| b.messages.iter().any(|m| m.id == message_id))
            .map(|b| b.gen)
    }

    /// True when an append of an id this record does not hold must ask the store's dedupe
    /// records: some were written for this conversation and have not expired at `now`.
    pub fn needs_dedupe_lookup(&self, now: Millis, horizon: Duration) -> bool {
        match self.dedupe_until {
            Some(LEGACY_DEDUPE) => self.updated_at.plus(horizon) >= now,
            Some(until) => until >= now,
            None => false,
        }
    }

    /// The generation of the acknowledged batch whose id `message_id` is, while the record keeps
    /// it ([`Self::acked`]) and its horizon has not ended at `now`.
    pub fn acked_message(&self, message_id: &str, now: Millis) -> Option<u64> {
        self.acked
            .iter()
            .filter(|g| g.until >= now.0)
            .find(|g| g.ids.iter().any(|id| id == message_id))
            .map(|g| g.gen)
    }

    /// The byte budget the list of acknowledged ids takes (see [`AckedIds::bytes`]).
    pub fn acked_bytes(&self) -> u64 {
        self.acked.iter().map(AckedIds::bytes).sum()
    }

    /// Moves the ids of the oldest pending batch into the list of acknowledged ids, until
    /// `now + horizon`, for the write that acknowledges it: ids whose horizon ended drop; while
    /// the list is over `budget` bytes its oldest ids are pushed out. Returns the long-horizon
    /// dedupe records of the ids pushed out: the flush writes them *before* the write that drops
    /// them from the record (a crash in between leaves both), and the record notes their expiry
    /// (`dedupe_until`) so an append knows to ask the store. A batch whose ids all fit writes no
    /// dedupe record at all.
    pub fn retire_head_ids(
        &mut self,
        now: Millis,
        horizon: Duration,
        budget: u64,
    ) -> Vec<crate::ports::DedupeRecord> {
        let Some(head) = self.pending.first() else {
            return Vec::new();
        };
        let group = AckedIds {
            gen: head.gen,
            until: now.plus(horizon).0,
            ids: head.messages.iter().map(|m| m.id.clone()).collect(),
        };
        self.acked.retain(|g| g.until >= now.0);
        self.acked.push(group);
        let mut bytes = self.acked_bytes();
        let mut out = Vec::new();
        while bytes > budget {
            let Some(oldest) = self.acked.first_mut() else {
                break;
            };
            if oldest.ids.is_empty() {
                bytes -= ACKED_GROUP_BYTES;
                self.acked.remove(0);
                continue;
            }
            let id = oldest.ids.remove(0);
            bytes -= id.len() as u64 + ACKED_ID_BYTES;
            out.push(crate::ports::DedupeRecord {
                key: self.key.clone(),
                message_id: id,
                gen: oldest.gen,
                expires_at: Millis(oldest.until),
            });
        }
        // A group left without ids takes no room.
        self.acked.retain(|g| !g.ids.is_empty());
        // A legacy marker resolves here: every dedupe record the old appends wrote expires by
        // the record's last write + the horizon.
        let legacy =
            (self.dedupe_until == Some(LEGACY_DEDUPE)).then(|| self.updated_at.plus(horizon));
        let pushed_out = out.iter().map(|d| d.expires_at).max();
        let kept = self.dedupe_until.filter(|&d| d != LEGACY_DEDUPE);
        self.dedupe_until = [kept, legacy, pushed_out].into_iter().flatten().max();
        out
    }
}

#[cfg(test)]
#[path = "acked_test.rs"]
mod acked_test;

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::time::Millis;
    use crate::window::test_support::*;
    use crate::window::*;

    #[test]
    fn a_message_still_in_the_record_is_recognised() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        let g = c.gen;
        assert_eq!(c.holds_message("a"), Some(g));
        c.close_if_due(Millis(8000));
        assert_eq!(c.holds_message("a"), Some(g), "pending behind the sink");
        assert_eq!(c.holds_message("b"), None);
    }
}
