//! Append planning: where a message goes (the open window, a new one after a size close, a
//! batch of its own under passthrough), the size rules, and whether the write arms a trigger.

use super::{
    mint_batch_id, Amended, Conversation, OpenWindow, MAX_CONVERSATION_BYTES, MAX_MESSAGE_BYTES,
    OVERDUE_SLACK,
};
use crate::batch::CloseReason;
use crate::message::Message;
use crate::policy::Policy;
use crate::time::{duration_ms, Millis};
use crate::turn::{QuietRule, TurnState};

/// Why an append cannot be taken now. Nothing was stored; the gateway should retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendRefused {
    #[error("message of {size} bytes is larger than a conversation can hold ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error("conversation backlog full (record of {bytes} bytes, limit {max}): the sink is not acknowledging; retry later")]
    Backlogged { bytes: u64, max: u64 },
}

/// The result of planning an append: the record to write and whether to arm a trigger.
#[derive(Debug, Clone)]
pub struct AppendPlan {
    pub next: Conversation,
    /// The generation the message went into.
    pub gen: u64,
    /// Arm a trigger (a new chain) for this instant.
    pub arm: Option<Millis>,
    /// What an edit or unsend did (or a remembered one did to a late original); `None` for a
    /// plain message and a turn change.
    pub amend: Option<Amended>,
}

impl Conversation {
    /// Plans appending `msg` (its `received_at` is set here) under `policy` at `now`. `random`
    /// supplies the entropy for a new batch id and chain token.
    pub fn plan_append(
        mut self,
        mut msg: Message,
        policy: &Policy,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
    ) -> Result<AppendPlan, AppendRefused> {
        let covered_until = self.hand_off_due();
        // A conversation overdue by more than any trigger's slack has lost its chain (a trigger
        // lost, or its flush died); this message revives it instead of waiting for the sweep.
        let overdue = self.due_at().is_some_and(|d| d.plus(OVERDUE_SLACK) < now);
        msg.received_at = now.max(self.last_received());
        let size = msg.stored_size();
        if size > MAX_MESSAGE_BYTES {
            return Err(AppendRefused::TooLarge {
                size,
                max: MAX_MESSAGE_BYTES,
            });
        }
        let at = msg.received_at;
        // Acknowledged ids whose horizon ended just drop (the write is being made anyway).
        self.acked.retain(|g| g.until >= now.0);
        if !policy.buffering {
            // Passthrough: whatever was buffered before the switch closes first, then the
            // message is a batch of its own.
            self.close(CloseReason::Passthrough, at);
        } else if let Some(w) = &self.window {
            let overflows = w.messages.len() as u64 + 1 > u64::from(policy.max_messages)
                || w.bytes + size > policy.max_bytes;
            if overflows {
                self.close(CloseReason::Size, at);
            }
        }
        let gen = self.gen;
        let rule = policy.turn();
        if let QuietRule::Adaptive { .. } = rule.quiet {
            // Only an adaptive tenant learns its users' gaps: the default record stays as small.
            self.turn.observe_activity(at);
            self.turn.message(at);
        }
        // A window runs under the timing it opened under: a tenant's policy changed mid-window
        // applies from its next window on, so a change never makes an open window due earlier
        // (or later) than the rule it opened under said. An adaptive quiet period is drawn from
        // the gap summary once, here.
        let gaps = self.turn.gaps;
        let w = self.window.get_or_insert_with(|| {
            let (quiet_ms, adaptive) = match rule.quiet {
                QuietRule::Fixed { .. } => (duration_ms(policy.quiet), false),
                QuietRule::Adaptive {
                    min_ms,
                    max_ms,
                    prior_ms,
                } => (u64::from(gaps.quiet_ms(min_ms, max_ms, prior_ms)), true),
            };
            OpenWindow {
                batch_id: mint_batch_id(at, random),
                opened_at: at,
                last_at: at,
                quiet_ms,
                max_wait_ms: duration_ms(policy.max_wait),
                adaptive,
                typing: rule.typing,
                bytes: 0,
                messages: Vec::new(),
                supersede: policy.on_newer == crate::policy::OnNewer::Supersede,
                carried: None,
            }
        });
        if w.messages.is_empty() {
            // A window kept empty for a superseded batch's context (see `supersede.rs`) opens
            // at its first message, as a new one would.
            w.opened_at = at;
        }
        w.last_at = at;
        w.bytes += size;
        w.messages.push(msg);
        self.accepted += 1;
        if !policy.buffering {
            self.close(CloseReason::Passthrough, at);
        } else if w.messages.len() as u64 >= u64::from(policy.max_messages)
            || w.bytes >= policy.max_bytes
        {
            self.close(CloseReason::Size, at);
        }
        let arm = self.seal(now, covered_until, overdue, random)?;
        Ok(AppendPlan {
            next: self,
            gen,
            arm,
            amend: None,
        })
    }

    /// The end of every append-path write being prepared: refuses it when the record would pass
    /// its budget, else bumps the version, settles the index and starts a chain when the write
    /// needs one (see [`Self::chain_for_write`]).
    pub(super) fn seal(
        &mut self,
        now: Millis,
        covered_until: Option<Millis>,
        overdue: bool,
        random: &mut dyn FnMut() -> u64,
    ) -> Result<Option<Millis>, AppendRefused> {
        // Encoding the whole record costs as much as the store's own encoding: done only when the
        // cheap bound says the record may be near its budget (the webhook path is hot).
        let bytes = match self.encoded_len_bound() {
            bound if bound <= MAX_CONVERSATION_BYTES => bound,
            _ => self.encoded_len(),
        };
        if bytes > MAX_CONVERSATION_BYTES {
            return Err(AppendRefused::Backlogged {
                bytes,
                max: MAX_CONVERSATION_BYTES,
            });
        }
        self.ver += 1;
        self.updated_at = now;
        self.settle_index();
        // Due times only move later as messages arrive, unless a size cap or passthrough closed a
        // batch just now (or an unsend emptied the window).
        Ok(self.chain_for_write(covered_until, overdue, random))
    }

    /// Plans a change of the end-of-turn state (a presence, a pause, a resume) at `now`: `change`
    /// edits it and says whether anything changed. When the change moved the conversation's due
    /// time earlier (a resume, a `paused` after `composing`), a new chain is started for it
    /// (`arm`), in the same write. `None` when nothing changed: no write at all.
    pub fn plan_turn_change(
        mut self,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
        change: impl FnOnce(&mut TurnState) -> bool,
    ) -> Option<AppendPlan> {
        // As for an append: a live chain fires no later than the due time it covered.
        let covered_until = self.hand_off_due();
        let overdue = self.due_at().is_some_and(|d| d.plus(OVERDUE_SLACK) < now);
        if !change(&mut self.turn) {
            return None;
        }
        self.touch(now);
        let arm = self.chain_for_write(covered_until, overdue, random);
        Some(AppendPlan {
            gen: self.gen,
            next: self,
            arm,
            amend: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::CloseReason;
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::time::Millis;
    use crate::window::test_support::*;
    use crate::window::*;

    #[test]
    fn first_append_opens_a_window_and_starts_a_chain() {
        let mut r = counter();
        let p = Policy::default();
        let plan = Conversation::fresh(key(), Millis(1000))
            .plan_append(Message::text("m1", "u", "hi"), &p, Millis(1000), &mut r)
            .unwrap();
        assert_eq!(plan.next.ver, 1);
        assert_eq!(plan.arm, Some(Millis(9000)));
        let w = plan.next.window.as_ref().unwrap();
        assert_eq!(w.messages[0].received_at, Millis(1000));
        assert_eq!(w.batch_id.get_version_num(), 7);
        // A second message moves the due time later: the chain still covers it, no new trigger.
        let plan2 = plan
            .next
            .plan_append(Message::text("m2", "u", "there"), &p, Millis(5000), &mut r)
            .unwrap();
        assert_eq!(plan2.arm, None);
        assert_eq!(plan2.next.due_at(), Some(Millis(13000)));
    }

    #[test]
    fn size_cap_overflow_goes_to_the_next_window_and_arms_now() {
        let mut r = counter();
        let p = Policy {
            max_messages: 2,
            ..Policy::default()
        };
        let mut c = Conversation::fresh(key(), Millis(0));
        let g0 = c.gen;
        c = c
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        let plan = c
            .plan_append(Message::text("b", "u", "2"), &p, Millis(10), &mut r)
            .unwrap();
        // Two messages reach the cap: the window closes at once with reason size.
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].reason, CloseReason::Size);
        assert_eq!(plan.next.pending[0].gen, g0);
        assert_eq!(plan.arm, Some(Millis(10)));
        assert_eq!(plan.next.gen, g0 + 1);
    }

    #[test]
    fn passthrough_makes_each_message_a_batch() {
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let c = Conversation::fresh(key(), Millis(0));
        let plan = c
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap();
        assert_eq!(plan.next.pending[0].reason, CloseReason::Passthrough);
        assert!(plan.next.window.is_none());
        assert_eq!(plan.arm, Some(Millis(0)));
        let plan = plan
            .next
            .plan_append(Message::text("b", "u", "2"), &p, Millis(1), &mut r)
            .unwrap();
        assert_eq!(plan.next.pending.len(), 2);
        // The chain already covers the first pending batch, which is due earlier.
        assert_eq!(plan.arm, None);
    }

    #[test]
    fn a_window_filled_to_exactly_its_byte_cap_is_one_batch_and_a_byte_more_overflows() {
        let mut r = counter();
        let (s1, s2) = (size_at("first", 0), size_at("second", 10));
        let exact = Policy {
            max_bytes: s1 + s2,
            ..Policy::default()
        };
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "first"), &exact, Millis(0), &mut r)
            .unwrap()
            .next;
        assert_eq!(c.window.as_ref().unwrap().bytes, s1);
        // Exactly the cap: both messages close together, by size.
        let plan = c
            .clone()
            .plan_append(
                Message::text("b", "u", "second"),
                &exact,
                Millis(10),
                &mut r,
            )
            .unwrap();
        assert!(plan.next.window.is_none());
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].messages.len(), 2);
        assert_eq!(plan.next.pending[0].bytes, s1 + s2);
        assert_eq!(plan.next.pending[0].reason, CloseReason::Size);
        // One byte under the two: the first closes alone and the second opens the next window.
        let tight = Policy {
            max_bytes: s1 + s2 - 1,
            ..Policy::default()
        };
        let plan = c
            .plan_append(
                Message::text("b", "u", "second"),
                &tight,
                Millis(10),
                &mut r,
            )
            .unwrap();
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].messages.len(), 1);
        assert_eq!(plan.next.pending[0].bytes, s1);
        let w = plan.next.window.as_ref().unwrap();
        assert_eq!((w.messages.len(), w.bytes), (1, s2));
        assert_eq!(plan.gen, plan.next.pending[0].gen + 1);
    }

    #[test]
    fn a_message_cap_lowered_mid_window_closes_the_window_before_the_next_message() {
        let mut r = counter();
        let wide = Policy {
            max_messages: 5,
            ..Policy::default()
        };
        let mut c = Conversation::fresh(key(), Millis(0));
        for (i, id) in ["a", "b"].into_iter().enumerate() {
            c = c
                .plan_append(Message::text(id, "u", "x"), &wide, Millis(i as u64), &mut r)
                .unwrap()
                .next;
        }
        let two = Policy {
            max_messages: 2,
            ..Policy::default()
        };
        let plan = c
            .plan_append(Message::text("c", "u", "x"), &two, Millis(2), &mut r)
            .unwrap();
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].messages.len(), 2);
        assert_eq!(plan.next.pending[0].reason, CloseReason::Size);
        assert_eq!(plan.next.window.as_ref().unwrap().messages.len(), 1);
    }

    #[test]
    fn two_messages_under_a_cap_of_two_are_one_batch() {
        let mut r = counter();
        let p = Policy {
            max_messages: 2,
            ..Policy::default()
        };
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        assert_eq!(c.window.as_ref().unwrap().messages.len(), 1);
        let plan = c
            .plan_append(Message::text("b", "u", "2"), &p, Millis(10), &mut r)
            .unwrap();
        assert!(plan.next.window.is_none());
        let ids: Vec<_> = plan.next.pending[0]
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn pending_generations_are_listed_oldest_first() {
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let mut c = Conversation::fresh(key(), Millis(5));
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            c = c
                .plan_append(
                    Message::text(id, "u", "x"),
                    &p,
                    Millis(10 + i as u64),
                    &mut r,
                )
                .unwrap()
                .next;
        }
        assert_eq!(c.pending_gens().collect::<Vec<_>>(), vec![5, 6, 7]);
        assert_eq!(c.gen, 8);
    }
}
