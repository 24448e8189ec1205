//! The simulated traffic: conversations with their tenants' policies (some changed by the
//! operator mid-conversation), and bursts of messages whose gaps cluster around the quiet-period
//! edge (0.9x to 1.1x), where the design lull replaces lost messages.

use std::time::Duration;

use crate::key::{ConversationKey, Provider};
use crate::policy::{AdaptiveQuiet, OnNewer, Policy, Typing};
use crate::time::Millis;
use crate::turn::PresenceKind;

pub(crate) use crate::work::WorkMessage;

/// One simulated conversation.
#[derive(Clone, Debug)]
pub(crate) struct WorkConversation {
    pub key: ConversationKey,
    pub policy: Policy,
    /// The tenant's policy changes to this one at this instant (an operator's `lull tenant`).
    pub change: Option<(Millis, Policy)>,
}

impl WorkConversation {
    /// The policy in force at `t`.
    pub fn policy_at(&self, t: Millis) -> Policy {
        match self.change {
            Some((at, p)) if t >= at => p,
            _ => self.policy,
        }
    }
}

/// What a presence or operator event does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Signal {
    /// A `presence.update`, with the gateway's own time of the event.
    Presence { kind: PresenceKind, sent_at: Millis },
    /// A human operator writes from the business phone: the conversation pauses.
    Pause,
    /// The operator hands the conversation back (`lull conversations resume`, the admin route):
    /// the pause ends before its time.
    Resume,
}

/// One presence or operator event: what the gateway sends, and when it arrives (presence events
/// arrive late, and out of order: `sent_at` orders them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkSignal {
    pub conv: usize,
    pub at: Millis,
    pub what: Signal,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Workload {
    pub conversations: Vec<WorkConversation>,
    pub messages: Vec<WorkMessage>,
    pub signals: Vec<WorkSignal>,
}

/// The operator pause of the simulated typing tenants (short, so runs drain).
pub(crate) const SIM_PAUSE: Duration = Duration::from_secs(45);

/// Which traffic to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The checker's workload: gaps clustered at the quiet-period edge, concurrent bursts,
    /// passthrough tenants, tiny size caps with oversized messages, short quiet periods.
    Adversarial,
    /// The benchmarks' standard workload: every tenant on the default policy, bursts of 1 to 6
    /// messages (mean 3.5) typed 0.5 to 4 s apart, 1 to 10 minutes between bursts.
    Realistic,
    /// Store limits: passthrough tenants, tenants with batches of two, and passthrough tenants
    /// switched to buffering mid-way; 100 to 600-byte messages every 1 to 6 s, so a conversation
    /// whose sink is down for long fills its record up to the store's item limit (many small
    /// batches: their own fields weigh beside their messages).
    Backlog,
}

/// Buffering off: each message is a batch of its own.
fn passthrough() -> Policy {
    Policy {
        buffering: false,
        ..Policy::default()
    }
}

/// The default policy with another quiet period and max wait (in seconds).
fn timed(quiet: u64, max_wait: u64) -> Policy {
    Policy {
        quiet: Duration::from_secs(quiet),
        max_wait: Duration::from_secs(max_wait),
        ..Policy::default()
    }
}

/// The tenant mix: most conversations buffer with the defaults; some are passthrough, some have
/// tiny size caps (with occasional messages larger than the cap), some a short quiet period, some
/// a quiet period and max wait longer than SQS's 900 s delay (the trigger chain re-arms until
/// due).
fn policy_for(i: usize) -> Policy {
    let p = policy_class(i);
    // Four tenants in ten answer a thought once (`on_newer = "supersede"`): two with the
    // defaults, both typing-aware ones (their guards may answer `typing`).
    if matches!(i % 10, 0 | 2 | 4 | 6) {
        return Policy {
            on_newer: OnNewer::Supersede,
            ..p
        };
    }
    p
}

/// [`policy_for`] but `on_newer`.
fn policy_class(i: usize) -> Policy {
    match i % 10 {
        3 => Policy {
            max_messages: 3,
            max_bytes: 1024,
            ..Policy::default()
        },
        5 => timed(2, 6),
        7 => passthrough(),
        // Typing-aware tenants (presence, operator pauses), one of them with adaptive quiet.
        4 | 6 => Policy {
            typing: Some(Typing {
                grace: Duration::from_millis(1_500),
                hold: Duration::from_secs(12),
                // Two stop graces, so the checker verifies the one each window recorded.
                stop_grace: if i % 10 == 4 {
                    crate::policy::DEFAULT_STOP_GRACE
                } else {
                    Duration::from_secs(3)
                },
            }),
            adaptive: (i % 10 == 4).then_some(AdaptiveQuiet {
                min: Duration::from_secs(1),
                max: Duration::from_secs(10),
            }),
            pause: SIM_PAUSE,
            ..Policy::default()
        },
        1 if i % 20 == 11 => timed(20 * 60, 3600),
        _ => Policy::default(),
    }
}

/// Tenants whose operator changes the policy mid-conversation (often mid-window).
fn change_for(i: usize, rng: &mut fastrand::Rng, start: Millis) -> Option<(Millis, Policy)> {
    if i % 10 != 9 {
        return None;
    }
    let to = match rng.usize(0..3) {
        // Also to supersede: batches closed before the change are still `append` ones.
        0 => Policy {
            on_newer: OnNewer::Supersede,
            ..timed(3, 10)
        },
        1 => passthrough(),
        _ => Policy {
            max_messages: 2,
            ..timed(15, 45)
        },
    };
    Some((
        start.plus(Duration::from_millis(rng.u64(0..=1_800_000))),
        to,
    ))
}

fn key_for(i: usize) -> ConversationKey {
    let provider = [Provider::Meta, Provider::Evolution, Provider::Twilio][i % 3];
    let key = ConversationKey::new(provider, format!("acct{}", i % 7), format!("55119{i:08}"));
    if i.is_multiple_of(13) {
        key.in_group(format!("1203630{i}@g.us"))
    } else {
        key
    }
}

/// Generates `messages` messages over `conversations` conversations starting at `start`.
pub(crate) fn generate(
    rng: &mut fastrand::Rng,
    shape: Shape,
    messages: usize,
    conversations: usize,
    start: Millis,
) -> Workload {
    match shape {
        Shape::Realistic => return realistic(rng, messages, conversations, start),
        Shape::Backlog => return backlog(rng, messages, conversations, start),
        Shape::Adversarial => {}
    }
    let conversations = conversations.max(1);
    let mut convs: Vec<_> = (0..conversations)
        .map(|i| WorkConversation {
            key: key_for(i),
            policy: policy_for(i),
            change: change_for(i, rng, start),
        })
        .collect();
    let mut out = Vec::with_capacity(messages);
    let mut signals = Vec::new();
    for (c, conv) in convs.iter_mut().enumerate() {
        let first = out.len();
        let count = messages / conversations + usize::from(c < messages % conversations);
        let quiet_ms = conv.policy.quiet.as_millis() as u64;
        let mut t = start.0 + rng.u64(0..=600_000);
        let mut n = 0;
        while n < count {
            let burst = rng.usize(1..=6).min(count - n);
            let concurrent = rng.f64() < 0.1;
            for b in 0..burst {
                if b > 0 && !concurrent {
                    t += if rng.f64() < 0.4 {
                        // The seed failure's territory: the gap is within 10% of the quiet period.
                        quiet_ms * rng.u64(900..=1100) / 1000
                    } else {
                        rng.u64(50..=3_000)
                    };
                }
                let big = conv.policy.max_bytes <= 1024 && rng.f64() < 0.1;
                let text = if big {
                    format!("m{n} {}", "x".repeat(1200))
                } else {
                    format!(
                        "m{n} {}",
                        ["oi", "quero pedir", "2 pizzas, uma vegana", "obrigado!"][rng.usize(0..4)]
                    )
                };
                out.push(WorkMessage {
                    conv: c,
                    id: format!("wamid.c{c}.m{n}"),
                    text,
                    at: Millis(t),
                    amend: None,
                    resend_at: None,
                });
                n += 1;
            }
            t += rng.u64(20_000..=240_000);
        }
        if conv.policy.typing.is_some() {
            signals_for(rng, c, &out[first..], &mut signals);
        }
        let originals = out[first..].to_vec();
        super::amends::amends_for(rng, &originals, &mut out);
        // Half the policy changes land just after one of the conversation's messages: mid-window
        // whenever the burst goes on.
        let mine = out.len() - first;
        if let (Some((_, to)), true, true) = (conv.change, mine > 1, rng.bool()) {
            let after: &WorkMessage = &out[first + rng.usize(0..mine - 1)];
            conv.change = Some((after.at.plus(Duration::from_millis(1)), to));
        }
    }
    out.sort_by_key(|m| m.at);
    signals.sort_by_key(|s: &WorkSignal| s.at);
    Workload {
        conversations: convs,
        messages: out,
        signals,
    }
}

/// Presence as a phone sends it around `messages` (one conversation's): after half the
/// messages the user types again (`composing`, then `paused` or `available`), each event
/// delivered up to 4 s late, so some arrive after the next message or out of order; and, once
/// in a while, a human operator writes (a pause), and half the time hands the conversation back
/// (a resume) before the pause would end.
fn signals_for(
    rng: &mut fastrand::Rng,
    conv: usize,
    messages: &[WorkMessage],
    out: &mut Vec<WorkSignal>,
) {
    for m in messages {
        if rng.bool() {
            let typing = m.at.plus(Duration::from_millis(rng.u64(200..=3_000)));
            let stop = typing.plus(Duration::from_millis(rng.u64(500..=15_000)));
            let stopped = [PresenceKind::Paused, PresenceKind::Available][rng.usize(0..2)];
            for (sent_at, kind) in [(typing, PresenceKind::Composing), (stop, stopped)] {
                out.push(WorkSignal {
                    conv,
                    at: sent_at.plus(Duration::from_millis(rng.u64(0..=4_000))),
                    what: Signal::Presence { kind, sent_at },
                });
            }
        }
        if rng.f64() < 0.04 {
            let at = m.at.plus(Duration::from_millis(rng.u64(0..=5_000)));
            out.push(WorkSignal {
                conv,
                at,
                what: Signal::Pause,
            });
            if rng.bool() {
                out.push(WorkSignal {
                    conv,
                    at: at.plus(Duration::from_millis(rng.u64(1_000..=30_000))),
                    what: Signal::Resume,
                });
            }
        }
    }
}

fn realistic(
    rng: &mut fastrand::Rng,
    messages: usize,
    conversations: usize,
    start: Millis,
) -> Workload {
    let conversations = conversations.max(1);
    let convs: Vec<_> = (0..conversations)
        .map(|i| WorkConversation {
            key: key_for(i),
            policy: Policy::default(),
            change: None,
        })
        .collect();
    let mut out = Vec::with_capacity(messages);
    for c in 0..conversations {
        let count = messages / conversations + usize::from(c < messages % conversations);
        let mut t = start.0 + rng.u64(0..=600_000);
        let mut n = 0;
        while n < count {
            let burst = rng.usize(1..=6).min(count - n);
            for b in 0..burst {
                if b > 0 {
                    t += rng.u64(500..=4_000);
                }
                out.push(WorkMessage {
                    conv: c,
                    id: format!("wamid.c{c}.m{n}"),
                    text: format!("m{n}"),
                    at: Millis(t),
                    amend: None,
                    resend_at: None,
                });
                n += 1;
            }
            t += rng.u64(60_000..=600_000);
        }
    }
    out.sort_by_key(|m| m.at);
    Workload {
        conversations: convs,
        messages: out,
        signals: Vec::new(),
    }
}

fn backlog(
    rng: &mut fastrand::Rng,
    messages: usize,
    conversations: usize,
    start: Millis,
) -> Workload {
    let conversations = conversations.max(1);
    let passthrough = passthrough();
    let pairs = Policy {
        max_messages: 2,
        ..Policy::default()
    };
    // Passthrough; batches of two; passthrough switched to buffering 20 minutes in (its record
    // full of small batches, then an open window beside them).
    let convs: Vec<_> = (0..conversations)
        .map(|i| WorkConversation {
            key: key_for(i),
            policy: [passthrough, pairs, passthrough][i % 3],
            change: (i % 3 == 2).then(|| (start.plus(Duration::from_secs(1200)), pairs)),
        })
        .collect();
    let mut out = Vec::with_capacity(messages);
    for c in 0..conversations {
        let count = messages / conversations + usize::from(c < messages % conversations);
        let mut t = start.0 + rng.u64(0..=60_000);
        for n in 0..count {
            t += rng.u64(1_000..=6_000);
            out.push(WorkMessage {
                conv: c,
                id: format!("wamid.c{c}.m{n}"),
                text: format!("m{n} {}", "x".repeat(rng.usize(100..=600))),
                at: Millis(t),
                amend: None,
                resend_at: None,
            });
        }
    }
    out.sort_by_key(|m| m.at);
    Workload {
        conversations: convs,
        messages: out,
        signals: Vec::new(),
    }
}
