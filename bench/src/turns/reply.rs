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

use lull_core::guard::MAX_THOUGHT_BATCHES;
use lull_core::Millis;

use super::model::{Conversation, Event};
use super::replay::Replay;

/// How the bot handles batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bot {
    Append,
    Supersede,
}

impl Bot {
    pub const ALL: [Bot; 2] = [Bot::Append, Bot::Supersede];

    pub fn name(self) -> &'static str {
        match self {
            Bot::Append => "append",
            Bot::Supersede => "supersede",
        }
    }
}

/// The shortest and longest generation, ms.
pub const GENERATION_MS: (u64, u64) = (2_000, 12_000);

/// The generation time of batch `n` of conversation `seed` (deterministic).
fn generation(seed: u64, n: usize) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.u64(GENERATION_MS.0..=GENERATION_MS.1)
}

/// What the user received from one conversation.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Replies sent.
    pub replies: u64,
    /// Thoughts a reply answered only in part (once per thought).
    pub stale: u64,
    /// AI calls (generations), and those discarded.
    pub calls: u64,
    pub wasted: u64,
    /// Per turn answered: its last message to the reply that carried it, s.
    pub answer_s: Vec<f64>,
    /// Per turn: its last message to the hand-off of the batch holding it, s.
    pub silence_s: Vec<f64>,
}

/// Runs the bot `bot` over the hand-offs of `r` (the windows as lull closed them).
pub fn run(bot: Bot, c: &Conversation, r: &Replay, seed: u64) -> Outcome {
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
            Bot::Supersede => h.at.max(free_at),
        };
        for i in own.clone() {
            let t = turn_of(i);
            if turn_of(i + 1) != t || i + 1 == received.len() {
                out.silence_s.push(start.since(received[i]).as_secs_f64());
            }
        }
        let done = start.plus(std::time::Duration::from_millis(generation(seed, n)));
        out.calls += 1;
        if bot == Bot::Supersede {
            free_at = done;
            // The guard: messages accepted after this batch closed, by the time it is asked.
            let newer = received
                .iter()
                .skip(h.last_msg + 1)
                .any(|&at| at > h.at && at <= done);
            if newer && carried_batches + 1 < MAX_THOUGHT_BATCHES {
                out.wasted += 1;
                carried.extend(own);
                carried_batches += 1;
                continue;
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
                    out.answer_s.push(done.since(received[i]).as_secs_f64());
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
        let a = run(Bot::Append, &c, &r, 7);
        assert_eq!((a.replies, a.stale, a.calls, a.wasted), (3, 1, 3, 0));
        let s = run(Bot::Supersede, &c, &r, 7);
        assert_eq!((s.replies, s.stale, s.calls, s.wasted), (2, 0, 3, 1));
        assert_eq!(s.answer_s.len(), 2);
    }

    #[test]
    fn a_user_typing_without_pause_still_gets_an_answer() {
        // A message every 5 s for 5 minutes: max wait closes every 30 s, always superseded.
        let times: Vec<(u64, u32)> = (0..60).map(|i| (1_000 + i * 5_000, 0)).collect();
        let c = conv(&times);
        let r = replay::replay(&TurnPolicy::DEFAULT, &c);
        let s = run(Bot::Supersede, &c, &r, 1);
        assert!(s.replies >= r.handoffs.len() as u64 / MAX_THOUGHT_BATCHES as u64);
        assert!(s.wasted <= s.calls - s.replies);
    }
}
