//! The AI step after the hand-off, and what the user receives: stale answers, time to the answer,
//! AI calls (`lull-bench turns`, the `bench=turns_reply` lines).
//!
//! The model (stated assumptions, BENCHMARKS.md "Stale answers"):
//!
//! - **Generation**: each batch handed to the bot is one AI call that takes 2-12 s (uniform,
//!   drawn per batch from the seed): an LLM call with a tool or two. The bot sends its reply
//!   when the generation ends; the guard call and the send take no time in the model.
//! - **`append`** (lull's default, the bot as written today): the bot answers the hand-off 2xx
//!   at once and replies to every batch; the next batch is handed off as soon as it closes.
//! - **`supersede`** (the reply guard with `on_newer = "supersede"`, the recommended
//!   consumer): the bot answers the hand-off after its AI step (within the sink timeout), so
//!   the conversation's next batch is handed off only when this one's is answered. Before
//!   sending, it GETs the reply guard: `current` (no message accepted since the batch closed):
//!   it sends. `superseded` with `supersede: true`: it discards the reply (a wasted generation)
//!   and the next batch carries this one as `context`, answered as one thought. A thought spans
//!   at most [`MAX_THOUGHT_BATCHES`]: then the guard says `supersede: false` and the bot sends.
//!
//! A reply is **stale** when it answers only part of a ground-truth thought: some turn it
//! answers (a message of its `context` or `messages`) has a message it does not carry, whatever
//! the cause (the rest came before the reply and the bot was not told, or after it).

use lull_core::guard::{MAX_THOUGHT_BATCHES, MAX_TYPING_WAIT};
use lull_core::turn::{PresenceKind, TurnReason, TypingRule};
use lull_core::Millis;

use super::model::{Conversation, Event};
use super::replay::Replay;

/// How the bot handles batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bot {
    Append,
    Supersede,
    /// `supersede`, and the bot holds its reply while the guard answers `typing`.
    SupersedeWait,
}

impl Bot {
    pub const ALL: [Bot; 3] = [Bot::Append, Bot::Supersede, Bot::SupersedeWait];

    pub fn name(self) -> &'static str {
        match self {
            Bot::Append => "append",
            Bot::Supersede => "supersede",
            Bot::SupersedeWait => "supersede+wait",
        }
    }

    fn asks(self) -> bool {
        self != Bot::Append
    }
}

/// The shortest and longest generation, ms.
pub const GENERATION_MS: (u64, u64) = (2_000, 12_000);

/// How often a bot told `typing` asks the guard again, ms (the guard's `retry_after_ms`).
pub const RETRY_MS: u64 = 1_000;

/// The generation time of batch `n` of conversation `seed` (deterministic).
fn generation(seed: u64, n: usize) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.u64(GENERATION_MS.0..=GENERATION_MS.1)
}

/// Why a reply answered a thought only in part, from the first message of the thought it did
/// not carry (the *missing* message). Exclusive; counted once per thought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleCause {
    /// The missing message was accepted before the reply was sent; the bot did not ask (append).
    NotAsked,
    /// It was accepted before the reply was sent, the bot asked, and the guard said `current`
    /// (a guard that is not linearizable against the record: must stay 0).
    GuardSaidCurrent,
    /// It was accepted before the reply was sent, but the thought was at its bound
    /// ([`MAX_THOUGHT_BATCHES`]): the guard said `supersede: false`.
    Bound,
    /// It was accepted after the reply was sent; the user had started typing it (its first
    /// `composing` reached lull) after the batch closed and before the reply was sent.
    AfterSendTyping,
    /// It was accepted after the reply was sent, and lull had no sign of it between the close
    /// and the send (its first `composing` was lost, came later, came before the close and the
    /// window closed anyway at the typing hold or max wait, or the gateway sends no presence).
    AfterSendUnseen,
}

impl StaleCause {
    pub const ALL: [StaleCause; 5] = [
        StaleCause::NotAsked,
        StaleCause::GuardSaidCurrent,
        StaleCause::Bound,
        StaleCause::AfterSendTyping,
        StaleCause::AfterSendUnseen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StaleCause::NotAsked => "not_asked",
            StaleCause::GuardSaidCurrent => "guard_said_current",
            StaleCause::Bound => "bound",
            StaleCause::AfterSendTyping => "after_send_typing_seen",
            StaleCause::AfterSendUnseen => "after_send_unseen",
        }
    }
}

/// What the user received from one conversation.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Replies sent.
    pub replies: u64,
    /// Thoughts a reply answered only in part (once per thought).
    pub stale: u64,
    /// `stale` by [`StaleCause`] (indexed as [`StaleCause::ALL`]).
    pub causes: [u64; 5],
    /// Stale thoughts whose cut was a max-wait hand-off (a subset of `stale`, any cause).
    pub max_wait_cut: u64,
    /// AI calls (generations), and those discarded.
    pub calls: u64,
    pub wasted: u64,
    /// Guard calls (a `typing` answer makes the bot ask again).
    pub guards: u64,
    /// Per answer stale because its missing message came after the reply was sent: from the
    /// send to that message's arrival, s: how much longer the bot would have had to hold its
    /// reply for the guard to catch it.
    pub after_send_gap_s: Vec<f64>,
    /// Per turn answered: its last message to the reply that carried it, s.
    pub answer_s: Vec<f64>,
    /// Per turn: its last message to the hand-off of the batch holding it, s.
    pub silence_s: Vec<f64>,
}

/// What lull's record says of the user's typing at `t`, as the guard reads it: the latest
/// presence received after the batch closed (`closed`), by the gateway's own time, as the
/// record keeps it; typing while the end-of-turn rule would still hold a window by it (a
/// `composing`/`recording` for the typing hold, a `paused`/`available` for the stop grace).
fn typing_at(c: &Conversation, closed: Millis, t: Millis, rule: TypingRule) -> bool {
    let latest = c
        .events
        .iter()
        .filter(|e| e.at > closed && e.at <= t)
        .filter_map(|e| match e.event {
            Event::Presence { kind, sent_at } => Some((sent_at, e.at, kind)),
            Event::Message { .. } => None,
        })
        .max_by_key(|&(sent_at, at, _)| (sent_at, at));
    latest.is_some_and(|(_, at, kind)| {
        let hold = match kind {
            PresenceKind::Composing | PresenceKind::Recording => rule.hold_ms,
            PresenceKind::Paused | PresenceKind::Available => rule.stop_grace(),
            PresenceKind::Unavailable => 0,
        };
        t.0 < at.0 + u64::from(hold)
    })
}

/// Runs the bot `bot` over the hand-offs of `r` (the windows as lull closed them); `typing`:
/// the tenant's typing rule (`None`: presence off, the guard never says `typing`).
pub fn run(
    bot: Bot,
    c: &Conversation,
    r: &Replay,
    seed: u64,
    typing: Option<TypingRule>,
) -> Outcome {
    let received: Vec<Millis> = c
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::Message { .. }))
        .map(|e| e.at)
        .collect();
    let turn_of = |i: usize| c.truth.get(i).map_or(u32::MAX, |t| t.turn);
    // Messages per turn, to tell a whole answer from a partial one.
    let mut per_turn = vec![0u32; c.turns as usize];
    for i in 0..received.len() {
        if let Some(n) = per_turn.get_mut(turn_of(i) as usize) {
            *n += 1;
        }
    }
    // The hand-off that cut after each message (to count max-wait cuts).
    let mut cut_reason = vec![None; received.len()];
    for h in &r.handoffs {
        if let Some(slot) = cut_reason.get_mut(h.last_msg) {
            *slot = Some(h.reason);
        }
    }
    let mut out = Outcome::default();
    let mut answered = vec![false; c.turns as usize];
    // Turns a reply answered in part (counted once per turn: a split turn answered in two
    // replies is one stale answer, as the split-turn figure counts it).
    let mut stale_turn = vec![false; c.turns as usize];
    let mut free_at = Millis(0);
    let mut carried: Vec<usize> = Vec::new();
    let mut carried_batches = 0u32;
    for (n, h) in r.handoffs.iter().enumerate() {
        let first = h.last_msg + 1 - h.turns.len();
        let own = first..=h.last_msg;
        let start = match bot {
            Bot::Append => h.at,
            _ => h.at.max(free_at),
        };
        for i in own.clone() {
            let t = turn_of(i);
            if turn_of(i + 1) != t || i + 1 == received.len() {
                out.silence_s.push(start.since(received[i]).as_secs_f64());
            }
        }
        let mut sent = start.plus(std::time::Duration::from_millis(generation(seed, n)));
        out.calls += 1;
        // Messages accepted after this batch closed, by `t` (the guard's count).
        let newer_by = |t: Millis| received.iter().skip(h.last_msg + 1).any(|&at| at <= t);
        let mut bound = false;
        if bot.asks() {
            out.guards += 1;
            if let (Bot::SupersedeWait, Some(rule)) = (bot, typing) {
                let limit = h.at.plus(MAX_TYPING_WAIT);
                while !newer_by(sent) && sent < limit && typing_at(c, h.at, sent, rule) {
                    sent = sent
                        .plus(std::time::Duration::from_millis(RETRY_MS))
                        .min(limit);
                    out.guards += 1;
                }
            }
            free_at = sent;
            if newer_by(sent) {
                if carried_batches + 1 < MAX_THOUGHT_BATCHES {
                    out.wasted += 1;
                    carried.extend(own);
                    carried_batches += 1;
                    continue;
                }
                bound = true;
            }
        }
        let mut covered: Vec<usize> = std::mem::take(&mut carried);
        carried_batches = 0;
        covered.extend(own);
        out.replies += 1;
        let mut turns: Vec<u32> = covered.iter().map(|&i| turn_of(i)).collect();
        turns.dedup();
        for &t in &turns {
            let carried = covered.iter().filter(|&&i| turn_of(i) == t).count() as u32;
            let partial = per_turn.get(t as usize).is_some_and(|&all| carried < all);
            if let Some(slot @ false) = stale_turn.get_mut(t as usize) {
                if partial {
                    *slot = true;
                    out.stale += 1;
                    let last_covered = covered.iter().copied().filter(|&i| turn_of(i) == t).max();
                    let missing = last_covered.map_or(h.last_msg + 1, |i| i + 1);
                    if last_covered.is_some_and(|i| cut_reason[i] == Some(TurnReason::MaxWait)) {
                        out.max_wait_cut += 1;
                    }
                    let cause = match received.get(missing) {
                        Some(&at) if at <= sent => match (bot, bound) {
                            (Bot::Append, _) => StaleCause::NotAsked,
                            (_, true) => StaleCause::Bound,
                            (_, false) => StaleCause::GuardSaidCurrent,
                        },
                        arrived => {
                            let seen = c.truth.get(missing).and_then(|m| m.start_received);
                            if let Some(&a) = arrived {
                                out.after_send_gap_s.push(a.since(sent).as_secs_f64());
                            }
                            if seen.is_some_and(|s| s > h.at && s <= sent) {
                                StaleCause::AfterSendTyping
                            } else {
                                StaleCause::AfterSendUnseen
                            }
                        }
                    };
                    out.causes[cause as usize] += 1;
                }
            }
        }
        // A turn is answered by the first reply that carries its last message.
        for &i in &covered {
            let t = turn_of(i);
            let last = i + 1 == received.len() || turn_of(i + 1) != t;
            if let Some(slot @ false) = answered.get_mut(t as usize) {
                if last {
                    *slot = true;
                    out.answer_s.push(sent.since(received[i]).as_secs_f64());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turns::model::{MessageTruth, Received};
    use crate::turns::replay;
    use lull_core::turn::TurnPolicy;

    fn conv(times: &[(u64, u32)]) -> Conversation {
        Conversation {
            presence: false,
            fragmenter: true,
            turns: times.iter().map(|t| t.1 + 1).max().unwrap_or(0),
            events: times
                .iter()
                .map(|&(at, turn)| Received {
                    at: Millis(at),
                    event: Event::Message { turn },
                })
                .collect(),
            truth: times
                .iter()
                .map(|&(_, turn)| MessageTruth {
                    turn,
                    ..MessageTruth::default()
                })
                .collect(),
        }
    }

    #[test]
    fn an_afterthought_during_the_generation_is_stale_with_append_and_whole_with_supersede() {
        // Turn 0 split by the 8 s quiet period: "2 pizzas" at 1 s, "and one coke" at 10 s
        // (handed off at 9 s, while the bot generates for at least 2 s).
        let c = conv(&[(1_000, 0), (10_000, 0), (200_000, 1)]);
        let r = replay::replay(&TurnPolicy::DEFAULT, &c);
        assert_eq!(r.handoffs.len(), 3);
        let a = run(Bot::Append, &c, &r, 7, None);
        assert_eq!((a.replies, a.stale, a.calls, a.wasted), (3, 1, 3, 0));
        let s = run(Bot::Supersede, &c, &r, 7, None);
        assert_eq!((s.replies, s.stale, s.calls, s.wasted), (2, 0, 3, 1));
        assert_eq!(s.answer_s.len(), 2);
    }

    #[test]
    fn a_user_typing_without_pause_still_gets_an_answer() {
        // A message every 5 s for 5 minutes: max wait closes every 30 s, always superseded.
        let times: Vec<(u64, u32)> = (0..60).map(|i| (1_000 + i * 5_000, 0)).collect();
        let c = conv(&times);
        let r = replay::replay(&TurnPolicy::DEFAULT, &c);
        let s = run(Bot::Supersede, &c, &r, 1, None);
        assert!(s.replies >= r.handoffs.len() as u64 / MAX_THOUGHT_BATCHES as u64);
        assert!(s.wasted <= s.calls - s.replies);
    }
}
