//! What an operator sees of one conversation: where it stands now and why ([`standing`]), and
//! its timeline from each message accepted to its window, batch, attempts and acknowledgement
//! ([`timeline`]). Pure: built from one record read and the time, so the local console and the
//! one against an AWS deployment say the same thing about the same record.
//!
//! What a record no longer holds is not invented: an acknowledged batch keeps only its ids and
//! the end of their dedupe horizon (`Conversation::acked`), from which the acknowledgement time
//! follows (`until - horizon`); older batches are gone. Message text never appears here (the
//! console shows it only on an explicit reveal).

use std::time::Duration;

use crate::batch::CloseReason;
use crate::time::Millis;
use crate::turn::TurnReason;
use crate::window::{ClosedBatch, Conversation, Hold};

/// Where a conversation stands now: the one thing that decides its next hand-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Nothing held: no open window, no pending batch.
    Idle,
    /// An operator pause holds every hand-off until `until`.
    Paused {
        until: Millis,
        reason: crate::turn::PauseReason,
    },
    /// The sink refused the oldest batch; it waits for a redrive (later ones wait behind it).
    Parked {
        gen: u64,
        since: Millis,
        status: Option<u16>,
        error: Option<String>,
    },
    /// The last hand-off failed; nobody retries before `until`.
    BackingOff {
        gen: u64,
        until: Millis,
        failures: u32,
    },
    /// A flush is handing batch `gen` off, under a lease until `until`.
    HandingOff { gen: u64, until: Millis },
    /// A closed batch is due now (a trigger or the sweep takes it).
    Due { gen: u64 },
    /// The open window fills until `at`, by `rule`.
    Filling { at: Millis, rule: TurnReason },
}

impl Standing {
    /// A short label for lists.
    pub fn label(&self) -> &'static str {
        match self {
            Standing::Idle => "idle",
            Standing::Paused { .. } => "paused",
            Standing::Parked { .. } => "parked",
            Standing::BackingOff { .. } => "backing off",
            Standing::HandingOff { .. } => "handing off",
            Standing::Due { .. } => "due",
            Standing::Filling { .. } => "window open",
        }
    }
}

/// Where `conv` stands at `now`. A pause outranks everything (it holds pending batches too),
/// then the oldest pending batch's hold, then the open window's due time.
pub fn standing(conv: &Conversation, now: Millis) -> Standing {
    if let Some(p) = conv.turn.pause.filter(|p| p.until > now) {
        return Standing::Paused {
            until: p.until,
            reason: p.reason,
        };
    }
    if let Some(head) = conv.pending.first() {
        return match head.hold {
            Some(Hold::Parked { since }) => Standing::Parked {
                gen: head.gen,
                since,
                status: head.attempts.last().and_then(|a| a.status),
                error: head.last_error.clone(),
            },
            Some(Hold::Backoff { until }) if until > now => Standing::BackingOff {
                gen: head.gen,
                until,
                failures: head.failures,
            },
            Some(Hold::Lease { until, .. }) if until > now => Standing::HandingOff {
                gen: head.gen,
                until,
            },
            _ => Standing::Due { gen: head.gen },
        };
    }
    match conv.window_due() {
        Some(due) => Standing::Filling {
            at: due.at,
            rule: due.reason,
        },
        None => Standing::Idle,
    }
}

/// One step of a conversation's story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Millis,
    /// The generation (batch) it belongs to, when it belongs to one.
    pub gen: Option<u64>,
    pub what: What,
}

/// What happened (or will, for the open window's due time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// A message was accepted (lull's receive time); `index` is its position in its batch. The
    /// text is not here: the console shows it only when asked.
    Accepted { index: usize, message_id: String },
    /// The window of `gen` opened with its first message, under this quiet period and max wait.
    Opened { quiet_ms: u64, max_wait_ms: u64 },
    /// The open window will be due then, by this rule (its why it waits).
    WillBeDue { rule: TurnReason },
    /// The window became due by this rule (quiet, max wait, a typing rule...).
    BecameDue {
        reason: CloseReason,
        waited: Option<TurnReason>,
    },
    /// The window closed into a batch of `messages`.
    Closed { messages: usize },
    /// A hand-off failed.
    Failed {
        ms: u64,
        status: Option<u16>,
        refused: bool,
    },
    /// The batch is held: backing off, parked or being handed off.
    Held { until: Option<Millis>, why: String },
    /// The sink acknowledged the batch (time derived from the dedupe horizon).
    Acknowledged { messages: usize },
}

/// The conversation's story as its record tells it, oldest first: acknowledged batches (their
/// acknowledgement), pending batches (accepted, opened, due, closed, each failed attempt, the
/// hold), then the open window (accepted, opened, when it will be due). `horizon` is the dedupe
/// horizon the flush ran with (`Conversation::acked` keeps `ack + horizon`).
pub fn timeline(conv: &Conversation, now: Millis, horizon: Duration) -> Vec<Event> {
    let mut out = Vec::new();
    for group in &conv.acked {
        out.push(Event {
            at: Millis(group.until.saturating_sub(horizon.as_millis() as u64)),
            gen: Some(group.gen),
            what: What::Acknowledged {
                messages: group.ids.len(),
            },
        });
    }
    for b in &conv.pending {
        batch_story(b, now, &mut out);
    }
    if let Some(w) = &conv.window {
        out.push(Event {
            at: w.opened_at,
            gen: Some(conv.gen),
            what: What::Opened {
                quiet_ms: w.quiet_ms,
                max_wait_ms: w.max_wait_ms,
            },
        });
        accepted(conv.gen, &w.messages, &mut out);
        if let Some(due) = conv.window_due() {
            out.push(Event {
                at: due.at,
                gen: Some(conv.gen),
                what: What::WillBeDue { rule: due.reason },
            });
        }
    }
    // Stable: events of one instant keep the order they were pushed in (opened, accepted...).
    out.sort_by_key(|e| e.at);
    out
}

fn accepted(gen: u64, messages: &[crate::message::Message], out: &mut Vec<Event>) {
    for (index, m) in messages.iter().enumerate() {
        out.push(Event {
            at: m.received_at,
            gen: Some(gen),
            what: What::Accepted {
                index,
                message_id: m.id.clone(),
            },
        });
    }
}

fn batch_story(b: &ClosedBatch, now: Millis, out: &mut Vec<Event>) {
    let gen = Some(b.gen);
    out.push(Event {
        at: b.opened_at,
        gen,
        what: What::Opened {
            quiet_ms: 0,
            max_wait_ms: 0,
        },
    });
    accepted(b.gen, &b.messages, out);
    out.push(Event {
        at: b.due_at,
        gen,
        what: What::BecameDue {
            reason: b.reason,
            waited: b.waited,
        },
    });
    out.push(Event {
        at: b.closed_at,
        gen,
        what: What::Closed {
            messages: b.messages.len(),
        },
    });
    for a in &b.attempts {
        out.push(Event {
            at: Millis(a.at),
            gen,
            what: What::Failed {
                ms: a.ms,
                status: a.status,
                refused: a.refused,
            },
        });
    }
    let held = match b.hold {
        Some(Hold::Parked { since }) => Some((
            since,
            None,
            format!(
                "parked: {}; waits for a redrive",
                b.last_error.as_deref().unwrap_or("the sink refused it")
            ),
        )),
        Some(Hold::Backoff { until }) if until > now => Some((
            now,
            Some(until),
            format!("backing off after {} failed hand-off(s)", b.failures),
        )),
        Some(Hold::Lease { until, .. }) if until > now => {
            Some((now, Some(until), "being handed off (lease)".to_string()))
        }
        _ => None,
    };
    if let Some((at, until, why)) = held {
        out.push(Event {
            at,
            gen,
            what: What::Held { until, why },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ConversationKey, Provider};
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::window::Attempt;

    const HORIZON: Duration = Duration::from_secs(3600);

    fn two_messages() -> Conversation {
        let key = ConversationKey::new(Provider::Meta, "pn", "5511999990000");
        let mut n = 0;
        let mut rnd = || {
            n += 1;
            n
        };
        let c = Conversation::fresh(key, Millis(1_000));
        let c = c
            .plan_append(
                Message::text("m1", "u", "hi"),
                &Policy::default(),
                Millis(1_000),
                &mut rnd,
            )
            .unwrap()
            .next;
        c.plan_append(
            Message::text("m2", "u", "2 pizzas"),
            &Policy::default(),
            Millis(3_000),
            &mut rnd,
        )
        .unwrap()
        .next
    }

    #[test]
    fn an_open_window_says_when_it_will_be_due_and_by_which_rule() {
        let c = two_messages();
        assert_eq!(
            standing(&c, Millis(4_000)),
            Standing::Filling {
                at: Millis(11_000),
                rule: TurnReason::Quiet
            }
        );
        let t = timeline(&c, Millis(4_000), HORIZON);
        let whats: Vec<_> = t.iter().map(|e| (e.at.0, &e.what)).collect();
        assert!(matches!(
            whats[0],
            (
                1_000,
                What::Opened {
                    quiet_ms: 8_000,
                    ..
                }
            )
        ));
        assert!(matches!(whats[1], (1_000, What::Accepted { index: 0, .. })));
        assert!(matches!(whats[2], (3_000, What::Accepted { index: 1, .. })));
        assert!(matches!(
            whats[3],
            (
                11_000,
                What::WillBeDue {
                    rule: TurnReason::Quiet
                }
            )
        ));
    }

    #[test]
    fn a_parked_batch_shows_its_attempts_and_the_status_that_parked_it() {
        let mut c = two_messages();
        c.close_if_due(Millis(11_000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(11_000), Duration::from_secs(75), 5));
        assert!(c.park(gen, 5, Millis(11_040), "bot.example answered 404 Not Found"));
        c.note_attempt(
            gen,
            Attempt {
                at: 11_000,
                ms: 40,
                status: Some(404),
                refused: true,
            },
        );
        match standing(&c, Millis(12_000)) {
            Standing::Parked { status, since, .. } => {
                assert_eq!((status, since), (Some(404), Millis(11_040)))
            }
            other => panic!("{other:?}"),
        }
        let t = timeline(&c, Millis(12_000), HORIZON);
        assert!(t.iter().any(|e| matches!(
            e.what,
            What::Failed {
                ms: 40,
                status: Some(404),
                refused: true
            }
        ) && e.at == Millis(11_000)));
        assert!(t
            .iter()
            .any(|e| matches!(&e.what, What::Held { why, .. } if why.contains("404"))));
        // A pause outranks the park in what holds the conversation.
        c.turn.pause = Some(crate::turn::Pause {
            until: Millis(99_000),
            reason: crate::turn::PauseReason::Admin,
        });
        assert!(matches!(
            standing(&c, Millis(12_000)),
            Standing::Paused { .. }
        ));
    }

    #[test]
    fn attempts_are_bounded_and_keep_the_newest() {
        let mut c = two_messages();
        c.close_if_due(Millis(11_000));
        let gen = c.pending[0].gen;
        for i in 0..10u64 {
            c.note_attempt(
                gen,
                Attempt {
                    at: i,
                    ms: 1,
                    status: Some(503),
                    refused: false,
                },
            );
        }
        let kept: Vec<u64> = c.pending[0].attempts.iter().map(|a| a.at).collect();
        assert_eq!(kept, [6, 7, 8, 9]);
        // Another generation's attempt is not this batch's.
        c.note_attempt(
            gen + 1,
            Attempt {
                at: 99,
                ms: 1,
                status: None,
                refused: false,
            },
        );
        assert_eq!(
            c.pending[0].attempts.len(),
            crate::window::MAX_ATTEMPTS_KEPT
        );
    }

    #[test]
    fn an_acknowledged_batch_is_dated_from_its_horizon() {
        let mut c = two_messages();
        c.close_if_due(Millis(11_000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(11_000), Duration::from_secs(75), 5));
        c.retire_head_ids(Millis(11_200), HORIZON, 512);
        assert!(c.ack(gen, 5, Millis(11_200)));
        assert_eq!(standing(&c, Millis(12_000)), Standing::Idle);
        let t = timeline(&c, Millis(12_000), HORIZON);
        assert_eq!(
            t,
            vec![Event {
                at: Millis(11_200),
                gen: Some(gen),
                what: What::Acknowledged { messages: 2 }
            }]
        );
    }
}
