//! First sign of life (`on_close = ["read", "typing"]`): how long after a user's last message of
//! a turn the user sees that the bot is on it, per end-of-turn policy.
//!
//! With `on_close`, lull starts the read + typing call as the window closes (the hand-off's
//! start; `lull_sink::Listening`), so the first sign comes one messaging-API round trip after the
//! close: the turn's silence plus [`API_MS`]. Without it, the first sign is the bot's answer:
//! the silence plus the AI step's generation, uniform over [`GENERATION_MS`] (issue 26's model
//! of an AI step, 2-12 s) plus the answer's own send, one more round trip. The API round trip is
//! an assumption, uniform 150-450 ms (a call to a cloud messaging API from the same region;
//! `tests/listening.rs` measures only loopback), stated here so the figure can be re-derived.
//!
//! Deterministic: each silence sample gets its draws from `seed` and its index.

use crate::util;

/// The messaging API's round trip, ms (uniform over this range).
pub const API_MS: (u64, u64) = (150, 450);
/// The AI step's generation time, ms (uniform over this range).
pub const GENERATION_MS: (u64, u64) = (2_000, 12_000);

/// The first-sign figures of one policy on one population, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Signs {
    pub median_on_close_s: f64,
    pub p90_on_close_s: f64,
    pub median_answer_only_s: f64,
    pub p90_answer_only_s: f64,
}

/// The figures for these silences (seconds, one per answered turn).
pub fn signs(silence_s: &[f64], seed: u64) -> Signs {
    let mut on_close = Vec::with_capacity(silence_s.len());
    let mut answer_only = Vec::with_capacity(silence_s.len());
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5167_4f4c_6966_6521);
    for &s in silence_s {
        let api = rng.u64(API_MS.0..=API_MS.1) as f64 / 1000.0;
        let generation = rng.u64(GENERATION_MS.0..=GENERATION_MS.1) as f64 / 1000.0;
        let send = rng.u64(API_MS.0..=API_MS.1) as f64 / 1000.0;
        on_close.push(s + api);
        answer_only.push(s + generation + send);
    }
    util::sort(&mut on_close);
    util::sort(&mut answer_only);
    Signs {
        median_on_close_s: util::pct(&on_close, 50.0),
        p90_on_close_s: util::pct(&on_close, 90.0),
        median_answer_only_s: util::pct(&answer_only, 50.0),
        p90_answer_only_s: util::pct(&answer_only, 90.0),
    }
}

/// One `bench=turns first_sign ...` line.
pub fn print(policy: &str, signals: &str, s: &Signs) {
    println!(
        "bench=turns first_sign policy={policy} signals={signals} \
         median_first_sign_on_close_s={:.2} p90_first_sign_on_close_s={:.2} \
         median_first_sign_answer_only_s={:.2} p90_first_sign_answer_only_s={:.2}",
        s.median_on_close_s, s.p90_on_close_s, s.median_answer_only_s, s.p90_answer_only_s
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_is_one_round_trip_after_the_close_and_well_before_an_answer() {
        let silences: Vec<f64> = (0..1000).map(|i| 1.0 + (i % 10) as f64 / 10.0).collect();
        let s = signs(&silences, 7);
        // Bounds of the model, not timings: silence + [0.15, 0.45] s against + [2.15, 12.45] s.
        assert!(
            s.median_on_close_s >= 1.15 && s.median_on_close_s <= 1.95,
            "{s:?}"
        );
        assert!(s.median_answer_only_s >= s.median_on_close_s + 1.7, "{s:?}");
        assert_eq!(signs(&silences, 7).median_on_close_s, s.median_on_close_s);
    }
}
