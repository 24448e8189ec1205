//! The open window: messages waiting for the user to go quiet, when it is due, and its close
//! into a pending batch.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ClosedBatch, Conversation};
use crate::batch::CloseReason;
use crate::message::Message;
use crate::time::Millis;
use crate::turn::{
    self, QuietRule, TurnDue, TurnInputs, TurnPolicy, TurnReason, TurnState, TypingRule,
};

/// The open window: messages waiting for the user to go quiet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// Minted when the window opens (UUIDv7), so every retry of its hand-off carries the same id.
    pub batch_id: Uuid,
    /// Receive time of the first message.
    pub opened_at: Millis,
    /// Receive time of the last message.
    pub last_at: Millis,
    /// The quiet period the window opened under, in ms (the flush needs no tenant config). A
    /// policy change applies from the next window on.
    pub quiet_ms: u64,
    /// The max wait the window opened under, in ms.
    pub max_wait_ms: u64,
    /// True when `quiet_ms` is the conversation's adaptive quiet period, drawn from its gap
    /// summary when the window opened.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adaptive: bool,
    /// The typing rule the window opened under: presence events shape its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<TypingRule>,
    /// Stored size of `messages`, for the size cap.
    pub bytes: u64,
    pub messages: Vec<Message>,
    /// The tenant's `on_newer` was `supersede` when the window opened (its batch may be
    /// superseded; see `supersede.rs`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub supersede: bool,
    /// What a superseded batch handed to this one (its `context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<super::Carried>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl OpenWindow {
    /// The end-of-turn rule this window runs under: the one it opened under (an adaptive quiet
    /// period is fixed at opening, from the gap summary of that moment).
    pub fn rule(&self) -> TurnPolicy {
        let ms = u32::try_from(self.quiet_ms).unwrap_or(u32::MAX);
        TurnPolicy {
            quiet: if self.adaptive {
                QuietRule::Adaptive {
                    min_ms: ms,
                    max_ms: ms,
                    prior_ms: ms,
                }
            } else {
                QuietRule::Fixed { ms }
            },
            max_wait_ms: u32::try_from(self.max_wait_ms).unwrap_or(u32::MAX),
            typing: self.typing,
        }
    }

    /// When this window is due by its rule, given the conversation's turn state.
    pub fn due(&self, turn: &TurnState) -> TurnDue {
        turn::due(
            &self.rule(),
            &TurnInputs {
                opened_at: self.opened_at,
                last_at: self.last_at,
                gaps: turn.gaps,
                presence: turn.presence,
                paused_until: turn.pause.map(|p| p.until),
            },
        )
    }
}

/// The close reason of a window that became due by `reason`: the turn rule's reasons are all a
/// quiet period but max wait (a pause only delays whichever of them came first).
fn close_reason(w: &OpenWindow, turn: &TurnState) -> CloseReason {
    let unpaused = TurnState {
        pause: None,
        ..*turn
    };
    match w.due(&unpaused).reason {
        TurnReason::MaxWait => CloseReason::MaxWait,
        _ => CloseReason::Quiet,
    }
}

impl Conversation {
    /// When the open window is due by the rule it runs under, and which rule decides.
    pub fn window_due(&self) -> Option<TurnDue> {
        self.window.as_ref().map(|w| w.due(&self.turn))
    }

    /// The latest receive time held, so a new message never sorts before an older one.
    pub(super) fn last_received(&self) -> Millis {
        if let Some(w) = &self.window {
            return w.last_at;
        }
        self.pending
            .last()
            .and_then(|b| b.messages.last())
            .map_or(Millis(0), |m| m.received_at)
    }

    /// Closes the open window into a pending batch of generation `gen`.
    pub(super) fn close(&mut self, reason: CloseReason, now: Millis) {
        if let Some(w) = self.window.take() {
            let (due_at, waited) = match reason {
                CloseReason::Quiet | CloseReason::MaxWait => {
                    let due = w.due(&self.turn);
                    (due.at.min(now), Some(due.reason))
                }
                CloseReason::Size | CloseReason::Passthrough => (now, None),
            };
            self.turn.closed(now);
            self.pending.push(ClosedBatch {
                gen: self.gen,
                batch_id: w.batch_id,
                reason,
                opened_at: w.opened_at,
                closed_at: now,
                due_at,
                bytes: w.bytes,
                more_pending: None,
                hold: None,
                failures: 0,
                last_error: None,
                waited,
                attempts: Vec::new(),
                messages: w.messages,
                accepted: self.accepted,
                supersede: w.supersede,
                superseded: false,
                carried: w.carried,
            });
            self.gen += 1;
        }
    }

    /// Closes the open window if it is due at `now`; returns the reason when it did.
    pub fn close_if_due(&mut self, now: Millis) -> Option<CloseReason> {
        let w = self.window.as_ref()?;
        let due = w.due(&self.turn).at;
        let reason = close_reason(w, &self.turn);
        if due <= now {
            self.close(reason, now);
            Some(reason)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::batch::CloseReason;
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::time::Millis;
    use crate::window::test_support::*;
    use crate::window::*;

    #[test]
    fn never_closes_early() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        assert_eq!(c.close_if_due(Millis(7999)), None);
        assert_eq!(c.close_if_due(Millis(8000)), Some(CloseReason::Quiet));
    }

    #[test]
    fn a_window_keeps_the_timing_it_opened_under() {
        let mut r = counter();
        let p = Policy::default();
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        // The tenant shortens its quiet period and max wait mid-window: the open window keeps
        // 8 s / 30 s; the next window follows the new policy.
        let short = Policy::with_times(Duration::from_secs(1), Duration::from_secs(2)).unwrap();
        let mut c = c
            .plan_append(Message::text("b", "u", "2"), &short, Millis(1000), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!((w.quiet_ms, w.max_wait_ms), (8000, 30_000));
        assert_eq!(c.due_at(), Some(Millis(9000)));
        assert_eq!(c.close_if_due(Millis(8999)), None);
        assert_eq!(c.close_if_due(Millis(9000)), Some(CloseReason::Quiet));
        let c = c
            .plan_append(Message::text("c", "u", "3"), &short, Millis(9500), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!((w.quiet_ms, w.max_wait_ms), (1000, 2000));
        // A longer policy mid-window does not hold the open window past its own rule either.
        let long = Policy::with_times(Duration::from_secs(20), Duration::from_secs(60)).unwrap();
        let c = c
            .plan_append(Message::text("d", "u", "4"), &long, Millis(9600), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!(w.due(&c.turn).at, Millis(10_600));
    }

    #[test]
    fn a_message_never_sorts_before_one_already_held() {
        // A host whose clock is behind: the message takes the latest receive time held, from the
        // open window or, with none, from the newest pending batch.
        let mut r = counter();
        let p = Policy::default();
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(5000), &mut r)
            .unwrap()
            .next;
        let c = c
            .plan_append(Message::text("b", "u", "2"), &p, Millis(4000), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!(w.messages[1].received_at, Millis(5000));
        let mut c = c;
        c.close_if_due(Millis(13_000));
        let c = c
            .plan_append(Message::text("c", "u", "3"), &p, Millis(4500), &mut r)
            .unwrap()
            .next;
        assert_eq!(
            c.window.as_ref().unwrap().messages[0].received_at,
            Millis(5000)
        );
    }
}
