//! Replays one conversation's received events against one policy with lull-core's end-of-turn
//! rule ([`lull_core::turn::due`]), as the window record would: the same inputs, the same
//! observations into the gap summary, presence ignored while no window is open.

use lull_core::turn::{self, GapSummary, Presence, PresenceKind, TurnInputs, TurnPolicy};
use lull_core::Millis;

use super::model::{Conversation, Event};

/// One hand-off: when, and the ground-truth turn of each message in it.
pub struct Handoff {
    pub at: Millis,
    pub reason: lull_core::turn::TurnReason,
    pub turns: Vec<u32>,
    /// Index (in receive order) of the batch's last message.
    pub last_msg: usize,
    /// The latest presence, when it came after that message (what the rule saw last).
    pub presence_after: Option<PresenceKind>,
}

/// What one replay produced.
pub struct Replay {
    pub handoffs: Vec<Handoff>,
    /// Receive time of each turn's last message.
    pub turn_last: Vec<Millis>,
    pub messages: u64,
}

struct Open {
    opened_at: Millis,
    last_at: Millis,
    turns: Vec<u32>,
    last_msg: usize,
}

/// The conversation record's end-of-turn state.
#[derive(Default)]
struct Record {
    window: Option<Open>,
    gaps: GapSummary,
    presence: Option<Presence>,
    /// Receive time of the last message, while its next activity has not come yet.
    awaiting: Option<Millis>,
    /// When the window holding that message was handed off, if it was.
    handed_off: Option<Millis>,
}

impl Record {
    fn inputs(&self, w: &Open) -> TurnInputs {
        TurnInputs {
            opened_at: w.opened_at,
            last_at: w.last_at,
            gaps: self.gaps,
            presence: self.presence,
            paused_until: None,
        }
    }

    fn close_if_due(&mut self, policy: &TurnPolicy, now: Millis, out: &mut Vec<Handoff>) {
        if let Some(w) = &self.window {
            let d = turn::due(policy, &self.inputs(w));
            if d.at <= now {
                if let Some(w) = self.window.take() {
                    let presence_after = self.presence.filter(|p| p.at > w.last_at).map(|p| p.kind);
                    out.push(Handoff {
                        at: d.at,
                        reason: d.reason,
                        turns: w.turns,
                        last_msg: w.last_msg,
                        presence_after,
                    });
                }
                if self.awaiting.is_some() {
                    self.handed_off = Some(d.at);
                }
            }
        }
    }

    fn activity(&mut self, at: Millis) {
        if let Some(m) = self.awaiting.take() {
            self.gaps.observe(turn::classify(m, at, self.handed_off));
        }
    }
}

/// Replays `c` under `policy`.
pub fn replay(policy: &TurnPolicy, c: &Conversation) -> Replay {
    let mut r = Record::default();
    let mut handoffs = Vec::new();
    let mut turn_last = vec![Millis(0); c.turns as usize];
    let mut messages = 0;
    for e in &c.events {
        r.close_if_due(policy, e.at, &mut handoffs);
        match e.event {
            Event::Message { turn } => {
                let index = messages as usize;
                messages += 1;
                if let Some(slot) = turn_last.get_mut(turn as usize) {
                    *slot = e.at;
                }
                r.activity(e.at);
                match &mut r.window {
                    Some(w) => {
                        w.last_at = e.at;
                        w.turns.push(turn);
                        w.last_msg = index;
                    }
                    None => {
                        r.window = Some(Open {
                            opened_at: e.at,
                            last_at: e.at,
                            turns: vec![turn],
                            last_msg: index,
                        })
                    }
                }
                r.awaiting = Some(e.at);
                r.handed_off = None;
            }
            Event::Presence { kind, sent_at } => {
                // Ignored without a typing rule or an open window (no write).
                if policy.typing.is_none() || r.window.is_none() {
                    continue;
                }
                Presence::apply(
                    &mut r.presence,
                    Presence {
                        kind,
                        at: e.at,
                        sent_at: Some(sent_at),
                    },
                );
                if kind.is_producing() {
                    r.activity(e.at);
                }
            }
        }
    }
    r.close_if_due(policy, Millis(u64::MAX), &mut handoffs);
    Replay {
        handoffs,
        turn_last,
        messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turns::model::Received;
    use lull_core::turn::{QuietRule, TypingRule};

    fn msg(at: u64, turn: u32) -> Received {
        Received {
            at: Millis(at),
            event: Event::Message { turn },
        }
    }

    fn pres(at: u64, kind: PresenceKind) -> Received {
        Received {
            at: Millis(at),
            event: Event::Presence {
                kind,
                sent_at: Millis(at),
            },
        }
    }

    #[test]
    fn fixed_quiet_splits_a_slow_fragment_and_typing_keeps_it() {
        // Turn 0: two fragments 9 s apart, typed (composing at 1.5 s after the first).
        let c = Conversation {
            presence: true,
            fragmenter: true,
            turns: 2,
            events: vec![
                msg(1_000, 0),
                pres(2_500, PresenceKind::Composing),
                msg(10_000, 0),
                msg(60_000, 1),
            ],
            truth: Vec::new(),
        };
        let fixed = TurnPolicy::DEFAULT;
        let r = replay(&fixed, &c);
        assert_eq!(r.handoffs.len(), 3, "8 s quiet splits turn 0");
        assert_eq!(r.handoffs[0].at, Millis(9_000));
        let typing = TurnPolicy {
            quiet: QuietRule::Fixed { ms: 8_000 },
            max_wait_ms: 30_000,
            typing: Some(TypingRule {
                grace_ms: 1_500,
                hold_ms: 10_000,
                stop_grace_ms: None,
            }),
        };
        let r = replay(&typing, &c);
        assert_eq!(r.handoffs.len(), 2);
        assert_eq!(r.handoffs[0].turns, vec![0, 0]);
        // Presence flows now: the last message is due after the grace.
        assert_eq!(r.handoffs[0].at, Millis(11_500));
        assert_eq!(r.handoffs[1].at, Millis(61_500));
        assert_eq!(r.messages, 3);
        assert_eq!(r.turn_last, vec![Millis(10_000), Millis(60_000)]);
    }
}
