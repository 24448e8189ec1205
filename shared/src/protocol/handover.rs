//! A person took a conversation over, or gave it back, with ids that say which signal it was:
//! an operator's unbuffered message (`super::operator`) or a help desk's webhook delivery
//! (Chatwoot's delivery id and signature). The turn change and the ids go into the record in one
//! conditional write, so a signal seen before (a retry, a replayed capture) changes nothing, on
//! every instance that shares the store: two instances racing with the same signal both read the
//! record, one write lands, the other's conflicts and its reload finds the ids.
//!
//! The ids join the record's acknowledged ids (`Conversation::acked`, pushed out to dedupe
//! records when the list is full, as a batch's ids are), within the dedupe horizon.

use std::time::Duration;

use metrics::counter;

use super::retry::Pace;
use super::stale::is_stale;
use super::{AppendError, Intake};
use crate::key::ConversationKey;
use crate::metrics as m;
use crate::ports::{Clock, Trigger, WindowStore};
use crate::time::Millis;
use crate::turn::{Pause, PauseReason};

/// What the signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// Pause hand-offs for this long from now (the tenant's pause time).
    Pause(Duration),
    /// End the pause in force now (what it held is due at once), as a resume by an admin does.
    Resume,
}

/// What a signal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverOutcome {
    /// Written: paused until this instant (`Some`), or the pause ended (`None`).
    Applied(Option<Millis>),
    /// A resume with no pause in force: nothing to end (the ids are remembered all the same).
    Unchanged,
    /// One of the ids was seen before: nothing changed.
    Duplicate,
    /// Older than the dedupe horizon can vouch for (`super::stale`): skipped.
    Stale,
    /// lull holds no record of this conversation: nothing to pause or resume.
    NoConversation,
}

impl<S: WindowStore, T: Trigger, C: Clock> Intake<S, T, C> {
    /// Applies `change` to `key` with `reason`, unless one of `ids` was seen before; remembers
    /// every id in the same conditional write (their pushed-out dedupe records first).
    /// `sent_at` is when the signal was sent, for the stale rule.
    pub async fn handover(
        &self,
        key: &ConversationKey,
        ids: &[String],
        sent_at: Option<Millis>,
        change: Handover,
        reason: PauseReason,
    ) -> Result<HandoverOutcome, AppendError> {
        let horizon = self.config.dedupe_horizon;
        let mut race = self.retry(Pace::BackOff).load(key, "pause").await?;
        // Set once this call wrote dedupe records itself: a retry after a lost race must not
        // mistake them for an earlier sighting of the ids.
        let mut remembered = false;
        while let Some((current, attempt)) = race.attempt() {
            let Some(mut conv) = current else {
                return Ok(HandoverOutcome::NoConversation);
            };
            let now = self.clock.now();
            let seen_in_record = ids.iter().any(|id| {
                conv.holds_message(id).is_some() || conv.acked_message(id, now).is_some()
            });
            if seen_in_record {
                counter!(m::DUPLICATES).increment(1);
                return Ok(HandoverOutcome::Duplicate);
            }
            if is_stale(sent_at, now, horizon) {
                counter!(m::STALE_MESSAGES, "what" => "operator").increment(1);
                return Ok(HandoverOutcome::Stale);
            }
            if !remembered && conv.needs_dedupe_lookup(now, horizon) {
                for id in ids {
                    if self.store.seen(key, id, now).await?.is_some() {
                        counter!(m::DUPLICATES).increment(1);
                        return Ok(HandoverOutcome::Duplicate);
                    }
                }
            }
            let mut pushed_out = Vec::new();
            for id in ids {
                pushed_out.extend(conv.remember_operator_id(
                    id,
                    now,
                    horizon,
                    self.config.acked_ids_bytes,
                ));
            }
            let (next, applied) = turn_change(conv.turn.pause, change, reason, now);
            let plan = conv.plan_turn_change(now, &mut || self.clock.random(), |turn| {
                turn.pause = next;
                // Always written: the ids must be remembered even when the pause stays.
                true
            });
            let Some(plan) = plan else {
                // The change above always reports one, so a plan always comes back.
                return Err(AppendError::Contended(attempt));
            };
            if !pushed_out.is_empty() {
                self.store.remember(&pushed_out).await?;
                remembered = true;
            }
            if !race.replace(&plan.next).await? {
                continue;
            }
            self.arm_planned(&plan.next, plan.arm).await?;
            let Some(applied) = applied else {
                return Ok(HandoverOutcome::Unchanged);
            };
            let what = match change {
                Handover::Pause(_) => reason.as_str(),
                Handover::Resume => "resume",
            };
            counter!(m::PAUSES, "what" => what).increment(1);
            return Ok(HandoverOutcome::Applied(applied));
        }
        Err(race.contended().into())
    }
}

/// The pause after `change` at `now`, and what changed: `Some(until)` (a pause set until then,
/// or `None` for one ended), or `None` when a resume found no pause in force.
fn turn_change(
    pause: Option<Pause>,
    change: Handover,
    reason: PauseReason,
    now: Millis,
) -> (Option<Pause>, Option<Option<Millis>>) {
    match change {
        Handover::Pause(d) => {
            let until = now.plus(d);
            (Some(Pause { until, reason }), Some(Some(until)))
        }
        // A resume ends the pause in force now rather than erasing it (`Intake::pause`).
        Handover::Resume => match pause {
            Some(p) if p.until > now => (Some(Pause { until: now, ..p }), Some(None)),
            other => (other, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_sets_until_and_a_resume_ends_only_a_pause_in_force() {
        let now = Millis(10_000);
        let (p, what) = turn_change(
            None,
            Handover::Pause(Duration::from_secs(60)),
            PauseReason::Operator,
            now,
        );
        assert_eq!(what, Some(Some(Millis(70_000))));
        let (ended, what) = turn_change(p, Handover::Resume, PauseReason::Operator, now);
        assert_eq!(what, Some(None));
        assert_eq!(ended.map(|p| p.until), Some(now));
        // Nothing in force (never paused, or already over): unchanged.
        assert_eq!(
            turn_change(None, Handover::Resume, PauseReason::Operator, now),
            (None, None)
        );
        let (again, what) = turn_change(ended, Handover::Resume, PauseReason::Operator, now);
        assert_eq!((again, what), (ended, None));
    }
}
