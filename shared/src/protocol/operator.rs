//! A human on the business side wrote in a conversation (Evolution/WAHA `fromMe` from the
//! WhatsApp app): its hand-offs pause for the tenant's pause time. The message's id is deduped
//! like any other message's, within the dedupe horizon, so a gateway's retry or a replayed
//! capture of it neither pauses again nor extends the pause: WAHA's HMAC carries no timestamp,
//! and one captured operator message sent again every pause period would otherwise hold a
//! conversation forever.
//!
//! - Buffered (the tenant opts into its own messages): appended as a message, then the pause;
//!   a duplicate or stale append pauses nothing. A crash between the two loses the pause, never
//!   the message (the gateway's retry is then a duplicate).
//! - Not buffered: its id joins the record's acknowledged ids (`Conversation::acked`, pushed out
//!   to a dedupe record when the list is full, as a batch's ids are) in the same conditional
//!   write that sets the pause.

use std::time::Duration;

use metrics::counter;

use super::stale::is_stale;
use super::{AppendError, AppendOutcome, Intake};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::metrics as m;
use crate::policy::Policy;
use crate::ports::{Clock, Trigger, WindowStore, Written};
use crate::turn::{Pause, PauseReason};

/// What an operator's message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorOutcome {
    /// The conversation's hand-offs are paused for the pause time from now; `buffered` when the
    /// message was also appended to its window.
    Paused { buffered: bool },
    /// This message id was seen before (a retry or a replay): nothing paused, nothing stored.
    Duplicate,
    /// Older than the dedupe horizon can vouch for (`super::stale`): skipped.
    Stale,
    /// lull holds no record of this conversation and was not asked to buffer the message:
    /// nothing to pause.
    NoConversation,
}

impl<S: WindowStore, T: Trigger, C: Clock> Intake<S, T, C> {
    /// An operator's message `msg` in `key`: pauses the conversation's hand-offs for `pause_for`
    /// unless the message was seen before; appends it under `policy` too when `buffer`.
    pub async fn operator_message(
        &self,
        key: &ConversationKey,
        policy: &Policy,
        msg: Message,
        pause_for: Duration,
        buffer: bool,
    ) -> Result<OperatorOutcome, AppendError> {
        if !buffer {
            return self.pause_remembering(key, &msg, pause_for).await;
        }
        Ok(match self.append(key, policy, msg).await? {
            AppendOutcome::Accepted { .. } => {
                self.pause(key, Some(pause_for), PauseReason::Operator)
                    .await?;
                OperatorOutcome::Paused { buffered: true }
            }
            AppendOutcome::Duplicate { .. } => OperatorOutcome::Duplicate,
            AppendOutcome::Stale => OperatorOutcome::Stale,
        })
    }

    /// The unbuffered case: dedupe the id, then record it and set the pause in one conditional
    /// write (its pushed-out dedupe records first).
    async fn pause_remembering(
        &self,
        key: &ConversationKey,
        msg: &Message,
        pause_for: Duration,
    ) -> Result<OperatorOutcome, AppendError> {
        let horizon = self.config.dedupe_horizon;
        let mut current = self.store.load(key).await?;
        // Set once this call wrote dedupe records itself: a retry after a lost race must not
        // mistake them for an earlier sighting of the id.
        let mut remembered = false;
        for attempt in 0..self.config.max_write_attempts {
            let Some(mut conv) = current.take() else {
                return Ok(OperatorOutcome::NoConversation);
            };
            let now = self.clock.now();
            let seen_in_record =
                conv.holds_message(&msg.id).is_some() || conv.acked_message(&msg.id, now).is_some();
            if seen_in_record {
                counter!(m::DUPLICATES).increment(1);
                return Ok(OperatorOutcome::Duplicate);
            }
            if is_stale(msg.sent_at, now, horizon) {
                counter!(m::STALE_MESSAGES, "what" => "operator").increment(1);
                return Ok(OperatorOutcome::Stale);
            }
            if !remembered
                && conv.needs_dedupe_lookup(now, horizon)
                && self.store.seen(key, &msg.id, now).await?.is_some()
            {
                counter!(m::DUPLICATES).increment(1);
                return Ok(OperatorOutcome::Duplicate);
            }
            let expected = conv.ver;
            let pushed_out =
                conv.remember_operator_id(&msg.id, now, horizon, self.config.acked_ids_bytes);
            let until = now.plus(pause_for);
            let plan = conv.plan_turn_change(now, &mut || self.clock.random(), |turn| {
                turn.pause = Some(Pause {
                    until,
                    reason: PauseReason::Operator,
                });
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
            let Written::Conflict(latest) = self.write_turn(expected, &plan).await? else {
                counter!(m::PAUSES, "what" => PauseReason::Operator.as_str()).increment(1);
                return Ok(OperatorOutcome::Paused { buffered: false });
            };
            counter!(m::WRITE_CONFLICTS, "op" => "pause").increment(1);
            // The port returned the record that won: no second read.
            current = latest.map(|b| *b);
            if attempt >= 2 {
                self.backoff(attempt).await;
            }
        }
        Err(AppendError::Contended(self.config.max_write_attempts))
    }
}

#[cfg(test)]
mod tests;
