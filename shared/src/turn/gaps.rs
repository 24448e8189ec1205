//! A few bytes that remember how this user ends a turn: the per-conversation gap summary.
//!
//! After each message the next *activity* (the next message, or a `composing`/`recording`
//! presence when the gateway sends presence) either continues the same turn or starts the next
//! one. lull cannot see the user's thought, but it can see when the activity came:
//!
//! - before the window was handed off, or within [`SPLIT_HORIZON_MS`] after it (too soon for the
//!   user to have received an answer, read it and typed a reply): a **continuation**, and its gap
//!   is a within-turn gap;
//! - later: the turn had ended.
//!
//! Both observations depend only on receive times, never on the policy's own choice of quiet
//! period beyond the hand-off time, so a short quiet period that split a turn still learns from
//! the split (the late fragment counts as a continuation).
//!
//! The summary keeps two decayed estimates, both integers:
//! - `hi_ms`: a high quantile ([`QUANTILE`]) of within-turn gaps, by the multiplicative
//!   stochastic quantile update (each gap moves the estimate up by a factor when above it, down by
//!   a smaller one when below; the ratio of the two steps fixes the quantile). It needs no sample
//!   store and forgets old behaviour at a fixed rate.
//! - `cont`: the share of messages followed by a continuation, in 1/255 units: a running mean
//!   over the first observations, then decayed with weight 1/8.
//!
//! Until [`MIN_OBSERVATIONS`] the policy's prior applies.
//!
//! A user who writes whole thoughts has a low `cont` and gets the minimum quiet period; a user who
//! types in fragments gets `hi_ms`, bounded by the policy's min and max.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// How long after a hand-off an activity still counts as a continuation of the handed-off turn:
/// shorter than an AI step's answer plus reading it plus typing a reply. A fragment typed while
/// its turn was (wrongly) handed off arrives within it, so a split is learned as a continuation.
pub const SPLIT_HORIZON_MS: u64 = 10_000;

/// Gaps longer than this are never within a turn, whatever the hand-off time.
pub const GAP_CAP_MS: u64 = 60_000;

/// The quantile `hi_ms` tracks (0.95: one continuation in twenty comes later than it).
pub const QUANTILE: f64 = 0.95;

/// Step of the multiplicative quantile update (log-space learning rate).
const STEP: f64 = 0.5;

/// Below this share of continuations (20%, in 1/255) the user is taken to write whole thoughts:
/// an occasional afterthought is not worth making every answer wait.
const WHOLE_THOUGHTS_BELOW: u8 = 51;

/// Weight of one observation in the decayed continuation share, once there are this many (1/8).
const CONT_WEIGHT: u8 = 8;

/// Observations before the summary replaces the prior.
pub const MIN_OBSERVATIONS: u8 = 3;

/// What lull remembers of one user's turn-taking: 6 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapSummary {
    /// High quantile of within-turn gaps, ms (0 until the first continuation).
    #[serde(default)]
    pub hi_ms: u32,
    /// Decayed share of messages followed by a continuation, in 1/255.
    #[serde(default)]
    pub cont: u8,
    /// Observations so far, saturating (the estimate is a prior until there are some).
    #[serde(default)]
    pub n: u8,
}

/// Whether an activity continued the turn of the message before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// The gap, in ms, from the message to the activity.
    Continuation(u64),
    /// The activity came after the turn had ended.
    NextTurn,
}

/// Classifies the first activity after a message: `handed_off` is when the window holding the
/// message was handed off (closed), if it was before the activity.
pub fn classify(message_at: Millis, activity_at: Millis, handed_off: Option<Millis>) -> Activity {
    let gap = activity_at.0.saturating_sub(message_at.0);
    let within_hand_off = match handed_off {
        Some(h) => activity_at.0 <= h.0.saturating_add(SPLIT_HORIZON_MS),
        None => true,
    };
    if within_hand_off && gap <= GAP_CAP_MS {
        Activity::Continuation(gap)
    } else {
        Activity::NextTurn
    }
}

impl GapSummary {
    /// True before the first observation (the record omits it).
    pub fn is_empty(&self) -> bool {
        *self == GapSummary::default()
    }

    /// Folds one observation in. The share is a running mean over the first observations, then
    /// decays with weight 1/8, so a new user's first turns count fully.
    pub fn observe(&mut self, a: Activity) {
        self.n = self.n.saturating_add(1);
        let weight = i32::from(self.n.min(CONT_WEIGHT));
        let cont = i32::from(self.cont);
        let target = match a {
            Activity::Continuation(_) => 255,
            Activity::NextTurn => 0,
        };
        let step = (target - cont) / weight;
        // Always move at least one unit toward the target, so the share can reach 0 and 255.
        let step = if step == 0 {
            (target - cont).signum()
        } else {
            step
        };
        self.cont = (cont + step).clamp(0, 255) as u8;
        if let Activity::Continuation(gap) = a {
            let gap = gap.clamp(1, GAP_CAP_MS) as f64;
            self.hi_ms = if self.hi_ms == 0 {
                // First gap: start above it, the safe side.
                (gap * 2.0).min(GAP_CAP_MS as f64) as u32
            } else {
                let hi = f64::from(self.hi_ms);
                let factor = if gap > hi {
                    (STEP * QUANTILE).exp()
                } else {
                    (-STEP * (1.0 - QUANTILE)).exp()
                };
                (hi * factor).clamp(1.0, GAP_CAP_MS as f64) as u32
            };
        }
    }

    /// The quiet period this summary asks for, within `[min_ms, max_ms]`: `prior_ms` (also
    /// bounded) until [`MIN_OBSERVATIONS`] and while no within-turn gap was seen; the minimum
    /// for a user who writes whole thoughts; else the high quantile of their gaps.
    pub fn quiet_ms(&self, min_ms: u32, max_ms: u32, prior_ms: u32) -> u32 {
        let max_ms = max_ms.max(min_ms);
        if self.n < MIN_OBSERVATIONS {
            return prior_ms.clamp(min_ms, max_ms);
        }
        if self.cont < WHOLE_THOUGHTS_BELOW {
            return min_ms;
        }
        if self.hi_ms == 0 {
            return prior_ms.clamp(min_ms, max_ms);
        }
        self.hi_ms.clamp(min_ms, max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_hand_off_and_cap() {
        assert_eq!(
            classify(Millis(1_000), Millis(3_000), None),
            Activity::Continuation(2_000)
        );
        // 8 s after a hand-off at 5 s: too soon to be an answer to the bot read and replied to.
        assert_eq!(
            classify(Millis(1_000), Millis(13_000), Some(Millis(5_000))),
            Activity::Continuation(12_000)
        );
        assert_eq!(
            classify(
                Millis(1_000),
                Millis(5_000 + SPLIT_HORIZON_MS + 1),
                Some(Millis(5_000))
            ),
            Activity::NextTurn
        );
        assert_eq!(
            classify(Millis(0), Millis(GAP_CAP_MS + 1), None),
            Activity::NextTurn
        );
        // An activity stamped before the message (clock order) is a zero gap, not a wrap.
        assert_eq!(
            classify(Millis(5_000), Millis(4_000), None),
            Activity::Continuation(0)
        );
    }

    #[test]
    fn prior_until_observed_then_bounded() {
        let s = GapSummary::default();
        assert_eq!(s.quiet_ms(1_000, 8_000, 4_000), 4_000);
        assert_eq!(s.quiet_ms(5_000, 8_000, 4_000), 5_000);
        // A max below the min is read as the min.
        assert_eq!(s.quiet_ms(5_000, 2_000, 4_000), 5_000);
    }

    #[test]
    fn whole_thought_writers_get_the_minimum() {
        let mut s = GapSummary::default();
        for _ in 0..20 {
            s.observe(Activity::NextTurn);
        }
        assert_eq!(s.cont, 0);
        assert_eq!(s.quiet_ms(1_000, 8_000, 4_000), 1_000);
    }

    #[test]
    fn fragmenters_converge_near_the_high_quantile_of_their_gaps() {
        // Gaps cycling 1..=20 s: the 95th percentile is 19-20 s; bounded by max 30 s.
        let mut s = GapSummary::default();
        for i in 0..400u64 {
            s.observe(Activity::Continuation(1_000 * (1 + i % 20)));
        }
        let q = s.quiet_ms(1_000, 30_000, 4_000);
        assert!((14_000..=27_000).contains(&q), "{q}");
        assert!(s.cont > 200, "{}", s.cont);
        // And the max bounds it.
        assert_eq!(s.quiet_ms(1_000, 8_000, 4_000), 8_000);
    }

    #[test]
    fn forgets_old_behaviour() {
        let mut s = GapSummary::default();
        for _ in 0..50 {
            s.observe(Activity::Continuation(6_000));
        }
        let before = s.quiet_ms(500, 10_000, 4_000);
        for _ in 0..200 {
            s.observe(Activity::Continuation(500));
        }
        let after = s.quiet_ms(500, 10_000, 4_000);
        assert!(before >= 5_000 && after < 1_500, "{before} -> {after}");
    }

    #[test]
    fn counters_saturate_and_serialise_small() {
        let mut s = GapSummary::default();
        for _ in 0..1_000 {
            s.observe(Activity::Continuation(GAP_CAP_MS * 10));
        }
        assert_eq!(s.n, 255);
        assert_eq!(s.cont, 255);
        assert!(u64::from(s.hi_ms) <= GAP_CAP_MS);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.len() < 40, "{json}");
        assert_eq!(serde_json::from_str::<GapSummary>(&json).unwrap(), s);
    }
}
