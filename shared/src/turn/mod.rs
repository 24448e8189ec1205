//! End of turn: when a window is due, given what lull knows about the user.
//!
//! A fixed quiet period is a blunt trade: too short and a user who types in fragments gets two
//! answers to one thought; too long and every "hi" waits. This module decides the due time of an
//! open window from everything lull can observe, in ONE pure function, [`due`]:
//!
//! - the window's receive times (first and last message);
//! - the [`QuietRule`]: a fixed quiet period, or an adaptive one drawn from the conversation's
//!   [`GapSummary`] (this user's own within-turn gaps) and bounded by a min and a max;
//! - the [`TypingRule`] and the conversation's latest [`Presence`] (Evolution/WAHA `composing`,
//!   `paused`...): once the gateway sends presence for a conversation, a message not followed by
//!   typing is due after a short grace; a `composing` or `recording` holds the window for at most
//!   the typing hold, and a `paused`/`available` after it (the user stopped typing) lets it close
//!   a grace after that;
//! - max wait, which caps everything the user does (a `composing` included);
//! - an operator pause (a human took over the conversation), which holds the hand-off past all
//!   of the above until it ends.
//!
//! The result names the rule that decided ([`TurnReason`]) and the quiet period in force, so a
//! batch can say why it waited and a checker can recompute the due time from the recorded inputs
//! and verify that no batch closed before it ("never early" against the rule in force).

pub mod gaps;
pub mod presence;
pub mod settings;
pub mod state;

use serde::{Deserialize, Serialize};

use crate::time::Millis;

pub use gaps::{classify, Activity, GapSummary};
pub use presence::{Presence, PresenceKind, PresenceUpdate};
pub use state::{Pause, PauseReason, TurnState};

/// How long presence, once seen, marks a conversation as one whose gateway sends presence: a
/// window opened longer than this after the last presence event is treated as presence-less.
pub const PRESENCE_LIVE_MS: u64 = 10 * 60 * 1000;

/// The quiet period: fixed, or adaptive per conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum QuietRule {
    /// The window is due when its last message is `ms` old (lull's default, 8 s).
    Fixed { ms: u32 },
    /// The quiet period is the conversation's [`GapSummary::quiet_ms`], within `[min_ms, max_ms]`;
    /// `prior_ms` until the summary has observations.
    Adaptive {
        min_ms: u32,
        max_ms: u32,
        prior_ms: u32,
    },
}

/// How presence events shape the end of a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingRule {
    /// With a fixed quiet period, the quiet period of a conversation whose gateway sends presence
    /// (a message not followed by `composing` within it ends the turn).
    pub grace_ms: u32,
    /// The longest a `composing`/`recording` holds the window without a newer event: a lost
    /// `paused` or a late `composing` costs at most this. A `paused`/`available` after the last
    /// message holds it for the stop grace from its arrival.
    pub hold_ms: u32,
    /// The grace after a `paused`/`available` that followed the last message (the user stopped
    /// typing mid-message); `None`: `grace_ms`. A user who pauses mid-message usually goes on
    /// typing within a few seconds, so this can be longer than the grace after a message; it
    /// costs silence only when a draft is abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_ms: Option<u32>,
}

impl TypingRule {
    /// The grace after a `paused`/`available` that followed the last message.
    pub fn stop_grace(&self) -> u32 {
        self.stop_grace_ms.unwrap_or(self.grace_ms)
    }
}

/// The end-of-turn policy of a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnPolicy {
    pub quiet: QuietRule,
    /// The window is due when its first message is this old, whatever the user is doing.
    pub max_wait_ms: u32,
    /// `None`: presence events are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<TypingRule>,
}

/// A turn policy value that makes no sense; the message names the setting and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnPolicyError {
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("adaptive quiet: min ({min_ms} ms) must not exceed max ({max_ms} ms)")]
    MinAboveMax { min_ms: u32, max_ms: u32 },
    #[error("{setting} ({value_ms} ms) must not exceed max wait ({max_wait_ms} ms)")]
    AboveMaxWait {
        setting: &'static str,
        value_ms: u32,
        max_wait_ms: u32,
    },
    #[error("typing hold ({hold_ms} ms) must not be shorter than typing grace ({grace_ms} ms)")]
    HoldBelowGrace { grace_ms: u32, hold_ms: u32 },
    #[error("typing stop grace ({stop_grace_ms} ms) must not be longer than typing hold ({hold_ms} ms): a user who stopped typing would hold the window longer than one still typing")]
    StopGraceAboveHold { stop_grace_ms: u32, hold_ms: u32 },
}

impl TurnPolicy {
    /// lull's default: fixed 8 s quiet, 30 s max wait, presence ignored.
    pub const DEFAULT: TurnPolicy = TurnPolicy {
        quiet: QuietRule::Fixed { ms: 8_000 },
        max_wait_ms: 30_000,
        typing: None,
    };

    /// Checks the policy, naming the first bad value.
    pub fn validate(&self) -> Result<(), TurnPolicyError> {
        let max_wait_ms = self.max_wait_ms;
        if max_wait_ms == 0 {
            return Err(TurnPolicyError::Zero("max wait"));
        }
        let below_max_wait = |setting: &'static str, value_ms: u32| {
            if value_ms > max_wait_ms {
                Err(TurnPolicyError::AboveMaxWait {
                    setting,
                    value_ms,
                    max_wait_ms,
                })
            } else {
                Ok(())
            }
        };
        match self.quiet {
            QuietRule::Fixed { ms } => {
                if ms == 0 {
                    return Err(TurnPolicyError::Zero("quiet period"));
                }
                below_max_wait("quiet period", ms)?;
            }
            QuietRule::Adaptive {
                min_ms,
                max_ms,
                prior_ms,
            } => {
                if min_ms == 0 {
                    return Err(TurnPolicyError::Zero("adaptive quiet min"));
                }
                if min_ms > max_ms {
                    return Err(TurnPolicyError::MinAboveMax { min_ms, max_ms });
                }
                below_max_wait("adaptive quiet max", max_ms)?;
                below_max_wait("adaptive quiet prior", prior_ms)?;
            }
        }
        if let Some(t) = self.typing {
            if t.grace_ms == 0 {
                return Err(TurnPolicyError::Zero("typing grace"));
            }
            if t.hold_ms < t.grace_ms {
                return Err(TurnPolicyError::HoldBelowGrace {
                    grace_ms: t.grace_ms,
                    hold_ms: t.hold_ms,
                });
            }
            below_max_wait("typing hold", t.hold_ms)?;
            if t.stop_grace_ms == Some(0) {
                return Err(TurnPolicyError::Zero("typing stop grace"));
            }
            below_max_wait("typing stop grace", t.stop_grace())?;
            if t.stop_grace() > t.hold_ms {
                return Err(TurnPolicyError::StopGraceAboveHold {
                    stop_grace_ms: t.stop_grace(),
                    hold_ms: t.hold_ms,
                });
            }
        }
        Ok(())
    }
}

impl Default for TurnPolicy {
    fn default() -> Self {
        TurnPolicy::DEFAULT
    }
}

/// Which rule made a window due: what the batch records as the reason it waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnReason {
    /// The fixed quiet period passed since the last message.
    Quiet,
    /// The conversation's adaptive quiet period passed since the last message.
    AdaptiveQuiet,
    /// Presence flows and the user did not start typing again within the grace (after the last
    /// message, or after a `paused`/`available` that followed it).
    TypingGrace,
    /// A `composing`/`recording` went without a newer event for the typing hold.
    TypingHold,
    /// Max wait passed since the first message (caps typing too).
    MaxWait,
    /// An operator pause held the hand-off until it ended.
    Paused,
}

impl TurnReason {
    /// The snake_case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnReason::Quiet => "quiet",
            TurnReason::AdaptiveQuiet => "adaptive_quiet",
            TurnReason::TypingGrace => "typing_grace",
            TurnReason::TypingHold => "typing_hold",
            TurnReason::MaxWait => "max_wait",
            TurnReason::Paused => "paused",
        }
    }
}

/// Everything the rule reads about one open window and its conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TurnInputs {
    /// Receive time of the window's first message.
    pub opened_at: Millis,
    /// Receive time of the window's last message.
    pub last_at: Millis,
    /// The conversation's gap summary (read only by an adaptive quiet rule).
    pub gaps: GapSummary,
    /// The conversation's latest presence (read only with a typing rule).
    pub presence: Option<Presence>,
    /// An operator pause: no hand-off before this instant.
    pub paused_until: Option<Millis>,
}

/// When a window is due, why, and the quiet period that was in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnDue {
    pub at: Millis,
    pub reason: TurnReason,
    /// The quiet period applied after the last message, ms.
    pub quiet_ms: u32,
}

/// The end-of-turn rule. Pure and total: the same inputs always give the same answer, and the
/// answer never precedes `last_at + min(quiet in force)` unless max wait (from `opened_at`) came
/// first. Presence only ever moves the due time later, never past max wait; a pause only later.
pub fn due(policy: &TurnPolicy, w: &TurnInputs) -> TurnDue {
    let presence_flows = policy.typing.is_some()
        && w.presence
            .is_some_and(|p| p.at.0.saturating_add(PRESENCE_LIVE_MS) >= w.opened_at.0);
    let (quiet_ms, mut reason) = match (policy.quiet, policy.typing) {
        (QuietRule::Fixed { ms }, Some(t)) if presence_flows => {
            (ms.min(t.grace_ms), TurnReason::TypingGrace)
        }
        (QuietRule::Fixed { ms }, _) => (ms, TurnReason::Quiet),
        (
            QuietRule::Adaptive {
                min_ms,
                max_ms,
                prior_ms,
            },
            _,
        ) => (
            w.gaps.quiet_ms(min_ms, max_ms, prior_ms),
            TurnReason::AdaptiveQuiet,
        ),
    };
    let mut at = w.last_at.0.saturating_add(u64::from(quiet_ms));
    // Presence received after the last message speaks about the next one.
    if let (Some(t), Some(p)) = (policy.typing, w.presence) {
        if let Some((until, why)) = after_last_message(t, p).filter(|_| p.at > w.last_at) {
            if until > at {
                at = until;
                reason = why;
            }
        }
    }
    let max = w.opened_at.0.saturating_add(u64::from(policy.max_wait_ms));
    if max < at {
        at = max;
        reason = TurnReason::MaxWait;
    }
    if let Some(until) = w.paused_until {
        if until.0 > at {
            at = until.0;
            reason = TurnReason::Paused;
        }
    }
    TurnDue {
        at: Millis(at),
        reason,
        quiet_ms,
    }
}

/// How long a presence received after the window's last message holds it, from the presence's
/// receive time: `composing`/`recording` (a next message is being produced) for the typing hold;
/// `paused`/`available` (the user stopped typing: WhatsApp's `paused` chat state, which Baileys,
/// and so Evolution, reports as `available`) for the stop grace only, so a draft the user
/// abandons costs that grace, not the hold; `unavailable` (the app went to the background) not at
/// all. The latest presence is all the record keeps, so a `paused` after a `composing` replaces
/// it and the hold ends there.
fn after_last_message(t: TypingRule, p: Presence) -> Option<(u64, TurnReason)> {
    let from = |ms: u32| p.at.0.saturating_add(u64::from(ms));
    match p.kind {
        PresenceKind::Composing | PresenceKind::Recording => {
            Some((from(t.hold_ms), TurnReason::TypingHold))
        }
        PresenceKind::Paused | PresenceKind::Available => {
            Some((from(t.stop_grace()), TurnReason::TypingGrace))
        }
        PresenceKind::Unavailable => None,
    }
}

#[cfg(test)]
mod tests;
