//! What a conversation's record keeps for the end-of-turn rule, across its windows: the gap
//! summary, the latest presence and an operator pause. A few dozen bytes at most, every field
//! omitted while unused, so a conversation under the default policy stores nothing here.

use serde::{Deserialize, Serialize};

use super::gaps::{classify, GapSummary};
use super::presence::{Presence, PresenceUpdate};
use crate::time::Millis;

/// The most a [`TurnState`] takes encoded: within the record's per-record overhead
/// (`Conversation::encoded_len_bound`).
pub const MAX_TURN_STATE_BYTES: u64 = 320;

/// Why hand-offs of a conversation are paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// A human wrote from the business side (an Evolution `fromMe` message from a phone).
    Operator,
    /// An operator paused it through the admin route or `lull conversations pause`.
    Admin,
}

impl PauseReason {
    /// The snake_case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Operator => "operator",
            PauseReason::Admin => "admin",
        }
    }
}

/// An operator pause: no hand-off of the conversation before `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub until: Millis,
    pub reason: PauseReason,
}

/// The per-conversation inputs of the end-of-turn rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnState {
    /// This user's own within-turn gaps (learned only under an adaptive quiet period).
    #[serde(default, skip_serializing_if = "GapSummary::is_empty")]
    pub gaps: GapSummary,
    /// The receive time of the last message, until the first activity after it is folded into
    /// `gaps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unobserved: Option<Millis>,
    /// When the window holding that message closed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Millis>,
    /// The latest presence the gateway sent (only while a window is open or was recently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
    /// An operator pause, until it ends or is resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
}

impl TurnState {
    /// True when nothing is kept: the record omits the whole state.
    pub fn is_empty(&self) -> bool {
        *self == TurnState::default()
    }

    /// A new activity at `at` (a message, or a `composing`/`recording`): the first one after
    /// the last message teaches the gap summary whether that message's turn went on.
    pub fn observe_activity(&mut self, at: Millis) {
        if let Some(msg_at) = self.unobserved.take() {
            self.gaps
                .observe(classify(msg_at, at, self.closed_at.take()));
        }
    }

    /// A message received at `at` (after [`Self::observe_activity`]): the next activity is
    /// classified against it.
    pub fn message(&mut self, at: Millis) {
        self.unobserved = Some(at);
        self.closed_at = None;
    }

    /// The window holding the last message closed at `now`.
    pub fn closed(&mut self, now: Millis) {
        if self.unobserved.is_some() && self.closed_at.is_none() {
            self.closed_at = Some(now);
        }
    }

    /// Applies an incoming presence; see [`Presence::apply`].
    pub fn presence(&mut self, incoming: Presence) -> PresenceUpdate {
        Presence::apply(&mut self.presence, incoming)
    }

    /// The largest state there can be (every field at its longest), for the record budget's tests.
    #[cfg(test)]
    pub(crate) fn largest() -> TurnState {
        let t = Millis(u64::from(u32::MAX) * 1000);
        TurnState {
            gaps: GapSummary {
                hi_ms: u32::MAX,
                cont: 255,
                n: 255,
            },
            unobserved: Some(t),
            closed_at: Some(t),
            presence: Some(Presence {
                kind: super::presence::PresenceKind::Unavailable,
                at: t,
                sent_at: Some(t),
            }),
            // Every instant encodes to the same length; this pause has ended, so a flush may run.
            pause: Some(Pause {
                until: Millis(1_000),
                reason: PauseReason::Operator,
            }),
        }
    }

    /// The end of a pause still in force at `now`.
    pub fn paused_until(&self, now: Millis) -> Option<Millis> {
        self.pause.map(|p| p.until).filter(|&u| u > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_activity_after_a_message_is_observed_once() {
        let mut s = TurnState::default();
        s.message(Millis(1_000));
        s.observe_activity(Millis(3_000));
        assert_eq!(s.gaps.n, 1);
        // A second activity before the next message teaches nothing more.
        s.observe_activity(Millis(4_000));
        assert_eq!(s.gaps.n, 1);
        // A message handed off at 9 s and an activity a minute later: the turn had ended.
        s.message(Millis(5_000));
        s.closed(Millis(9_000));
        s.observe_activity(Millis(70_000));
        assert_eq!(s.gaps.n, 2);
        assert!(s.gaps.cont < 255);
    }

    #[test]
    fn default_state_is_omitted_and_a_full_one_is_small() {
        assert!(TurnState::default().is_empty());
        let full = TurnState::largest();
        let json = serde_json::to_string(&full).unwrap();
        assert!(
            json.len() <= MAX_TURN_STATE_BYTES as usize,
            "{}",
            json.len()
        );
        assert_eq!(serde_json::from_str::<TurnState>(&json).unwrap(), full);
    }
}
