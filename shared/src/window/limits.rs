//! The store's limits and a record's size against them: what an append may take so that every
//! later write of the conversation still fits one DynamoDB item.

use super::Conversation;

/// The store's item limit (DynamoDB: 400 KB, attribute names and values included). The in-memory
/// reference store enforces it too, so the contract suite and the simulator meet it.
pub const STORE_ITEM_LIMIT: u64 = 400 * 1024;

/// The largest store key (DynamoDB's partition key: 2,048 bytes).
pub const STORE_KEY_LIMIT: u64 = 2048;

/// The encoded record's budget: the item limit less the item's other attributes (its key, up to
/// [`STORE_KEY_LIMIT`], the version and the due-index numbers).
pub const MAX_RECORD_BYTES: u64 = STORE_ITEM_LIMIT - 8 * 1024;

/// What the flush may add to a record at most: closing the window (a batch's fields), a lease,
/// a backoff or park with its failure reason, a new chain. Appends stop this far below
/// [`MAX_RECORD_BYTES`], so every write a flush (or a redrive) needs always fits: no
/// conversation can wedge at the limit.
pub const FLUSH_HEADROOM: u64 = 2 * 1024;

/// The encoded size past which an append is refused (retryable: the gateway retries later). It
/// is reached only while a sink has been failing for long.
pub const MAX_CONVERSATION_BYTES: u64 = MAX_RECORD_BYTES - FLUSH_HEADROOM;

/// The largest single message a conversation takes (its stored size): well under the record
/// budget, so an oversized message can become a batch of its own beside what is pending.
pub const MAX_MESSAGE_BYTES: u64 = 160 * 1024;

impl Conversation {
    /// The record's encoded size: what the store's item limit applies to.
    pub fn encoded_len(&self) -> u64 {
        serde_json::to_vec(self).map_or(u64::MAX, |v| v.len() as u64)
    }

    /// An upper bound of [`Self::encoded_len`], computed without encoding: the messages' stored
    /// sizes (their own JSON, as the record holds them), a separator each, the key (every
    /// character escaped at worst) and generous overheads per record and per window or batch
    /// (field names, times, ids, a hold and a failure reason of at most [`MAX_ERROR_BYTES`]).
    pub fn encoded_len_bound(&self) -> u64 {
        const PER_RECORD: u64 = 1024;
        const PER_BATCH: u64 = 2048;
        // A superseded batch's context moved into the batch (or window) carrying it: its
        // messages take a separator each too.
        let carried = |c: &Option<super::Carried>| c.as_ref().map_or(0, |c| c.messages.len());
        let messages = self
            .window
            .as_ref()
            .map_or(0, |w| w.messages.len() + carried(&w.carried))
            + self
                .pending
                .iter()
                .map(|b| b.messages.len() + carried(&b.carried))
                .sum::<usize>();
        let key = 6 * self.key.storage_key().len() as u64;
        self.stored_bytes()
            + messages as u64
            + 6 * self.acked_bytes()
            + 6 * self.amends_bytes()
            + super::acked::ACKED_BATCH_ID_BYTES * self.acked.len() as u64
            + key
            + PER_RECORD
            + crate::turn::state::MAX_TURN_STATE_BYTES
            + PER_BATCH * (self.pending.len() as u64 + 1)
    }

    /// Bytes of messages held: open window plus pending batches.
    pub fn stored_bytes(&self) -> u64 {
        // A batch's context counts too: it moved into the record with the batch carrying it.
        let carried = |c: &Option<super::Carried>| c.as_ref().map_or(0, |c| c.bytes);
        self.window
            .as_ref()
            .map_or(0, |w| w.bytes + carried(&w.carried))
            + self
                .pending
                .iter()
                .map(|b| b.bytes + carried(&b.carried))
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use crate::key::{ConversationKey, Provider};
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::time::Millis;
    use crate::turn::TurnState;
    use crate::window::test_support::*;
    use crate::window::*;
    use std::time::Duration;

    #[test]
    fn the_store_limits_are_dynamodbs_with_the_flush_headroom_below_them() {
        // The numbers the docs and the in-memory store state: DynamoDB's 400 KB item and 2 KB
        // key, the record budget 8 KiB below the item, appends stopping 2 KiB below the budget.
        assert_eq!(STORE_ITEM_LIMIT, 409_600);
        assert_eq!(STORE_KEY_LIMIT, 2_048);
        assert_eq!(MAX_RECORD_BYTES, 401_408);
        assert_eq!(FLUSH_HEADROOM, 2_048);
        assert_eq!(MAX_CONVERSATION_BYTES, 399_360);
        assert_eq!(MAX_MESSAGE_BYTES, 163_840);
    }

    #[test]
    fn the_encoded_length_is_the_json_the_store_writes() {
        let c = one_message();
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(c.encoded_len(), json.len() as u64);
        assert!(c.encoded_len() > 100);
        assert!(c.encoded_len_bound() >= c.encoded_len());
    }

    #[test]
    fn stored_bytes_count_the_open_window_and_every_pending_batch() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = one_message();
        let first = c.window.as_ref().unwrap().bytes;
        assert_eq!(first, size_at("1", 0));
        assert_eq!(c.stored_bytes(), first);
        c.close_if_due(Millis(8000));
        c = c
            .plan_append(Message::text("b", "u", "22"), &p, Millis(9000), &mut r)
            .unwrap()
            .next;
        c = c
            .plan_append(Message::text("c", "u", "333"), &p, Millis(9001), &mut r)
            .unwrap()
            .next;
        let open = c.window.as_ref().unwrap().bytes;
        assert_eq!(open, size_at("22", 9000) + size_at("333", 9001));
        assert_eq!(c.stored_bytes(), first + open);
        assert_eq!(c.pending_gens().collect::<Vec<_>>(), vec![c.gen - 1]);
    }

    #[test]
    fn at_the_append_limit_every_flush_write_still_fits_the_store() {
        // Passthrough: every message becomes a pending batch (a sink that is down), until the
        // record budget refuses the next append.
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let key = ConversationKey::new(Provider::Meta, "p".repeat(256), "u".repeat(256));
        let mut c = Conversation::fresh(key, Millis(0));
        c.turn = TurnState::largest();
        let mut at = 0;
        let full = loop {
            at += 1;
            assert!(at < 1_000, "the record budget never refused an append");
            let msg = Message::text(format!("m{at:0>250}"), "u", "\"\u{1}".repeat(300));
            match c.clone().plan_append(msg, &p, Millis(at), &mut r) {
                Ok(plan) => {
                    c = plan.next;
                    assert!(c.encoded_len_bound() >= c.encoded_len(), "the bound holds");
                    assert!(
                        c.encoded_len() <= MAX_CONVERSATION_BYTES,
                        "taken over the limit"
                    );
                }
                Err(AppendRefused::Backlogged { bytes, max }) => break (bytes, max),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(full.1, MAX_CONVERSATION_BYTES);
        assert!(c.encoded_len() <= MAX_CONVERSATION_BYTES);
        assert!(
            c.encoded_len() + MAX_MESSAGE_BYTES / 2 > MAX_CONVERSATION_BYTES,
            "the test filled the record"
        );
        // The worst a flush adds: a lease, then a park with the longest reason.
        let gen = c.pending[0].gen;
        assert!(c.lease_head(
            Millis(u64::from(u32::MAX)),
            Duration::from_secs(900),
            u64::MAX
        ));
        assert!(c.park(
            gen,
            u64::MAX,
            Millis(u64::from(u32::MAX)),
            &"\"".repeat(1000)
        ));
        c.restart_chain(
            u64::MAX,
            Millis(u64::from(u32::MAX)),
            Millis(u64::from(u32::MAX)),
        );
        assert!(
            c.encoded_len_bound() >= c.encoded_len(),
            "the bound holds with holds"
        );
        let item = c.encoded_len() + c.key.storage_key().len() as u64 + 128;
        assert!(item <= STORE_ITEM_LIMIT, "{item} > {STORE_ITEM_LIMIT}");
        assert!(c.encoded_len() <= MAX_RECORD_BYTES);
        const { assert!(MAX_RECORD_BYTES + STORE_KEY_LIMIT < STORE_ITEM_LIMIT) };
    }

    #[test]
    fn a_message_of_exactly_the_largest_size_is_taken_and_one_byte_more_is_refused() {
        let p = Policy {
            max_bytes: 2 * MAX_MESSAGE_BYTES,
            ..Policy::default()
        };
        let base = size_at("", 1000);
        let exact = "x".repeat((MAX_MESSAGE_BYTES - base) as usize);
        assert_eq!(size_at(&exact, 1000), MAX_MESSAGE_BYTES);
        let c = Conversation::fresh(key(), Millis(0));
        let plan = c
            .clone()
            .plan_append(
                Message::text("m", "u", &exact),
                &p,
                Millis(1000),
                &mut counter(),
            )
            .unwrap();
        assert_eq!(plan.next.stored_bytes(), MAX_MESSAGE_BYTES);
        let over = format!("{exact}x");
        assert_eq!(
            c.plan_append(
                Message::text("m", "u", over),
                &p,
                Millis(1000),
                &mut counter()
            )
            .unwrap_err(),
            AppendRefused::TooLarge {
                size: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES
            }
        );
    }

    #[test]
    fn a_record_of_exactly_the_append_limit_is_taken_and_one_byte_more_is_refused() {
        // Passthrough batches behind a sink that is down fill the record; the last message is
        // sized so the record lands exactly on the limit.
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let chunk = "y".repeat(100_000);
        let mut c = Conversation::fresh(key(), Millis(0));
        for i in 0..3 {
            c = c
                .plan_append(
                    Message::text(format!("m{i}"), "u", &chunk),
                    &p,
                    Millis(1),
                    &mut r,
                )
                .unwrap()
                .next;
        }
        let append = |c: &Conversation, len: usize| {
            c.clone().plan_append(
                Message::text("last", "u", "z".repeat(len)),
                &p,
                Millis(1),
                &mut counter(),
            )
        };
        // One more byte of text is one more byte of record (or, rarely, two: a size field
        // gaining a digit), so some length lands exactly on the limit.
        let probe = append(&c, 0).unwrap().next.encoded_len();
        let mut len = (MAX_CONVERSATION_BYTES - probe) as usize - 8;
        let exact = loop {
            let plan = append(&c, len).expect("still under the limit");
            match plan.next.encoded_len() {
                n if n == MAX_CONVERSATION_BYTES => break len,
                n if n < MAX_CONVERSATION_BYTES => len += 1,
                n => panic!("jumped over the limit to {n} at {len}"),
            }
        };
        let taken = append(&c, exact).unwrap();
        assert!(
            taken.next.encoded_len_bound() > MAX_CONVERSATION_BYTES,
            "encoded, not bound"
        );
        assert_eq!(
            append(&c, exact + 1).unwrap_err(),
            AppendRefused::Backlogged {
                bytes: MAX_CONVERSATION_BYTES + 1,
                max: MAX_CONVERSATION_BYTES
            }
        );
    }

    #[test]
    fn the_size_bound_holds_up_to_the_limit_with_the_smallest_messages() {
        // The cheapest messages in the largest windows: the most messages a record can hold, so
        // the bound's per-message allowance (a separator each) and its key allowance matter most. Near the limit, where
        // the append decision rests on it, the bound never falls below the encoding.
        let mut r = counter();
        let p = Policy {
            max_messages: u32::MAX,
            max_bytes: crate::policy::MAX_WINDOW_BYTES,
            ..Policy::default()
        };
        // The longest key, of characters JSON escapes sixfold (nothing refuses them in a key).
        let part = "\u{1}".repeat(crate::key::MAX_KEY_PART_BYTES);
        let key =
            ConversationKey::new(Provider::Evolution, part.clone(), part.clone()).in_group(part);
        assert!(key.check_lengths("m").is_ok(), "a key ingestion accepts");
        let mut c = Conversation::fresh(key, Millis(0));
        let (mut near, mut batches) = (0, 0);
        for n in 0.. {
            assert!(n < 10_000, "the record budget never refused an append");
            // Not cloned: a record of thousands of messages, appended to thousands of times.
            c = match c.plan_append(Message::text("", "", ""), &p, Millis(1), &mut r) {
                Ok(plan) => plan.next,
                Err(AppendRefused::Backlogged { .. }) => break,
                Err(e) => panic!("{e}"),
            };
            batches = c.pending.len();
            if c.encoded_len_bound() + 10_000 >= MAX_CONVERSATION_BYTES {
                near += 1;
                assert!(c.encoded_len_bound() >= c.encoded_len());
                assert!(c.encoded_len() <= MAX_CONVERSATION_BYTES);
            }
        }
        assert!(near > 50, "the record came near the limit");
        assert!(batches >= 2, "in windows of thousands of messages");
    }
}
