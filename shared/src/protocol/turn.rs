//! The webhook path's end-of-turn signals: presence events and operator pauses. Neither is a
//! message: nothing is appended, nothing deduped, nothing handed off. Each is at most one
//! conditional write of the conversation record (a pause or resume retries it on a conflict, a
//! presence event does not: presence is advisory and only ever delays), plus a trigger when the
//! change made the conversation due sooner than its chain covers.

use std::time::Duration;

use metrics::counter;

use super::retry::Pace;
use super::{AppendError, Intake};
use crate::key::ConversationKey;
use crate::metrics as m;
use crate::policy::Policy;
use crate::ports::{Clock, StoreError, Trigger, WindowStore, Written};
use crate::time::Millis;
use crate::turn::{Pause, PauseReason, Presence, PresenceKind, PresenceUpdate, QuietRule};
use crate::window::Conversation;

/// What a presence event did. Every one answers 2xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceOutcome {
    /// Stored as the conversation's presence.
    Applied,
    /// The same as stored: nothing written.
    Unchanged,
    /// Older than the stored one by the gateway's clock: dropped.
    OutOfOrder,
    /// No open window (and no hand-off a reply guard of a `supersede` tenant could ask about):
    /// presence only matters to those, so nothing is written.
    NoWindow,
    /// The tenant's policy ignores presence: not even read.
    TypingOff,
    /// The record changed under the write: dropped (presence is advisory; the next one counts).
    Conflict,
}

impl PresenceOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceOutcome::Applied => "applied",
            PresenceOutcome::Unchanged => "unchanged",
            PresenceOutcome::OutOfOrder => "out_of_order",
            PresenceOutcome::NoWindow => "no_window",
            PresenceOutcome::TypingOff => "typing_off",
            PresenceOutcome::Conflict => "conflict",
        }
    }
}

/// What a pause or resume did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseOutcome {
    /// Stored: paused until this instant (`None`: resumed).
    Set(Option<Millis>),
    /// Already so: nothing written.
    Unchanged,
    /// lull holds no record of this conversation: nothing to pause.
    NoConversation,
}

impl<S: WindowStore, T: Trigger, C: Clock> Intake<S, T, C> {
    /// Applies a presence event (`kind`, with the gateway's own time `sent_at` if it sent one)
    /// to the conversation under `policy`.
    pub async fn presence(
        &self,
        key: &ConversationKey,
        policy: &Policy,
        kind: PresenceKind,
        sent_at: Option<Millis>,
    ) -> Result<PresenceOutcome, AppendError> {
        let outcome = self.presence_inner(key, policy, kind, sent_at).await?;
        counter!(m::PRESENCE_EVENTS, "outcome" => outcome.as_str()).increment(1);
        Ok(outcome)
    }

    async fn presence_inner(
        &self,
        key: &ConversationKey,
        policy: &Policy,
        kind: PresenceKind,
        sent_at: Option<Millis>,
    ) -> Result<PresenceOutcome, AppendError> {
        if policy.typing.is_none() {
            return Ok(PresenceOutcome::TypingOff);
        }
        let Some(conv) = self.store.load(key).await? else {
            return Ok(PresenceOutcome::NoWindow);
        };
        // Without an open window presence matters only to a reply guard: under `supersede`,
        // while a batch's hand-off is open, the guard answers `typing` from it.
        let guarded =
            policy.on_newer == crate::policy::OnNewer::Supersede && !conv.pending.is_empty();
        if conv.window.is_none() && !guarded {
            return Ok(PresenceOutcome::NoWindow);
        }
        let open = conv.window.is_some();
        let now = self.clock.now();
        let incoming = Presence {
            kind,
            at: now,
            sent_at,
        };
        let adaptive = matches!(policy.turn().quiet, QuietRule::Adaptive { .. });
        let mut update = PresenceUpdate::Unchanged;
        let expected = conv.ver;
        let plan = conv.plan_turn_change(now, &mut || self.clock.random(), |turn| {
            update = turn.presence(incoming);
            if update == PresenceUpdate::Replaced && adaptive && kind.is_producing() && open {
                // Typing again is the next activity after the last message: a continuation.
                turn.observe_activity(now);
            }
            update == PresenceUpdate::Replaced
        });
        let Some(plan) = plan else {
            return Ok(match update {
                PresenceUpdate::OutOfOrder => PresenceOutcome::OutOfOrder,
                _ => PresenceOutcome::Unchanged,
            });
        };
        // One write, never retried: presence is advisory (the next one counts).
        match self.store.replace(expected, &plan.next).await? {
            Written::Ok => {
                self.arm_planned(&plan.next, plan.arm).await?;
                Ok(PresenceOutcome::Applied)
            }
            Written::Conflict(_) => Ok(PresenceOutcome::Conflict),
        }
    }

    /// Pauses the conversation's hand-offs for `pause_for` from now (`reason` says who), or
    /// resumes them (`None`: the pause in force ends now). Messages keep being collected; on
    /// resume (or when the pause ends) the window is handed off as its rule says, at once if it is
    /// already due, and a batch the pause held past its rule says `paused`.
    pub async fn pause(
        &self,
        key: &ConversationKey,
        pause_for: Option<Duration>,
        reason: PauseReason,
    ) -> Result<PauseOutcome, AppendError> {
        let mut race = self.retry(Pace::BackOff).load(key, "pause").await?;
        while let Some((current, _)) = race.attempt() {
            let Some(conv) = current else {
                return Ok(PauseOutcome::NoConversation);
            };
            let now = self.clock.now();
            let until = pause_for.map(|d| now.plus(d));
            let plan = conv.plan_turn_change(now, &mut || self.clock.random(), |turn| {
                let pause = match until {
                    Some(until) => Some(Pause { until, reason }),
                    // A resume ends the pause in force now rather than erasing it: what it held
                    // is due at once, and a batch it held past its own rule says it waited for
                    // the pause (`paused`), as when a pause runs out by itself.
                    None => turn.pause.map(|p| Pause {
                        until: p.until.min(now),
                        ..p
                    }),
                };
                let changed = turn.pause != pause;
                turn.pause = pause;
                changed
            });
            let Some(plan) = plan else {
                return Ok(PauseOutcome::Unchanged);
            };
            if !race.replace(&plan.next).await? {
                continue;
            }
            self.arm_planned(&plan.next, plan.arm).await?;
            let what = if until.is_some() {
                reason.as_str()
            } else {
                "resume"
            };
            counter!(m::PAUSES, "what" => what).increment(1);
            return Ok(PauseOutcome::Set(until));
        }
        Err(race.contended().into())
    }

    /// The stored record of a conversation (for the admin route's answer).
    pub async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.store.load(key).await
    }
}

#[cfg(test)]
mod tests;
