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

use super::handover::{Handover, HandoverOutcome};
use super::{AppendError, AppendOutcome, Intake};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::policy::Policy;
use crate::ports::{Clock, Trigger, WindowStore};
use crate::turn::PauseReason;

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
    /// write (`super::handover`).
    async fn pause_remembering(
        &self,
        key: &ConversationKey,
        msg: &Message,
        pause_for: Duration,
    ) -> Result<OperatorOutcome, AppendError> {
        let ids = [msg.id.clone()];
        let change = Handover::Pause(pause_for);
        Ok(
            match self
                .handover(key, &ids, msg.sent_at, change, PauseReason::Operator)
                .await?
            {
                HandoverOutcome::Applied(_) | HandoverOutcome::Unchanged => {
                    OperatorOutcome::Paused { buffered: false }
                }
                HandoverOutcome::Duplicate => OperatorOutcome::Duplicate,
                HandoverOutcome::Stale => OperatorOutcome::Stale,
                HandoverOutcome::NoConversation => OperatorOutcome::NoConversation,
            },
        )
    }
}

#[cfg(test)]
mod tests;
