//! The webhook path: dedupe from the record (its window, pending batches and recently
//! acknowledged ids; for a conversation whose acknowledged ids were pushed out of the record
//! within the horizon, the store's dedupe records too), append in one conditional write, then make
//! sure a trigger covers the window.

use metrics::counter;

use super::retry::{Contended, Pace};
use super::stale::is_stale;
use super::{trigger_for, Intake};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::metrics as m;
use crate::policy::Policy;
use crate::ports::{Clock, DedupeRecord, StoreError, Trigger, TriggerError, WindowStore};
use crate::window::{AppendRefused, Conversation};

/// What happened to an appended message. Both mean "answer 2xx".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored in generation `gen`; `armed` when this append started a trigger chain.
    Accepted { gen: u64, armed: bool },
    /// Accepted before (dropped and counted); `rearmed` when its window's trigger was re-armed.
    Duplicate { gen: u64, rearmed: bool },
    /// Its provider timestamp is older than the dedupe horizon can vouch for (`super::stale`):
    /// skipped and counted, nothing stored.
    Stale,
}

/// Why an append did not succeed. Answer 5xx (or 413 for `TooLarge`) so the gateway retries.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Refused(#[from] AppendRefused),
    #[error("conversation too busy: {0} conflicting writes in a row")]
    Contended(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message is stored but its trigger was not armed: a retry (a duplicate) re-arms it.
    #[error(transparent)]
    Trigger(#[from] TriggerError),
}

impl From<Contended> for AppendError {
    fn from(c: Contended) -> Self {
        AppendError::Contended(c.0)
    }
}

impl<S: WindowStore, T: Trigger, C: Clock> Intake<S, T, C> {
    /// Appends one message to its conversation's window under `policy`.
    pub async fn append(
        &self,
        key: &ConversationKey,
        policy: &Policy,
        msg: Message,
    ) -> Result<AppendOutcome, AppendError> {
        let mut race = self.retry(Pace::BackOff).load(key, "append").await?;
        while let Some((current, _)) = race.attempt() {
            let now = self.clock.now();
            let conv = current.unwrap_or_else(|| Conversation::fresh(key.clone(), now));
            // A message still held in the record (its window, or a batch pending behind a failing
            // sink) is a duplicate however long ago it came, whatever the dedupe horizon.
            if let Some(gen) = conv.holds_message(&msg.id) {
                counter!(m::DUPLICATES).increment(1);
                if conv.is_revoked(&msg.id) {
                    counter!(m::AMENDS, "effect" => "suppressed").increment(1);
                }
                let record = DedupeRecord {
                    key: key.clone(),
                    message_id: msg.id.clone(),
                    gen,
                    expires_at: now,
                };
                let rearmed = self.rearm_for_duplicate(&record).await?;
                return Ok(AppendOutcome::Duplicate { gen, rearmed });
            }
            // A message the horizon no longer covers could be a replay of one handed off long
            // ago: skipped (after the check above, so a gateway's retry of a message still held
            // re-arms its trigger as any duplicate does).
            if is_stale(msg.sent_at, now, self.config.dedupe_horizon) {
                counter!(m::STALE_MESSAGES, "what" => "message").increment(1);
                return Ok(AppendOutcome::Stale);
            }
            // An id acknowledged within the horizon and still listed in the record: no read.
            if let Some(gen) = conv.acked_message(&msg.id, now) {
                counter!(m::DUPLICATES).increment(1);
                return Ok(AppendOutcome::Duplicate {
                    gen,
                    rearmed: false,
                });
            }
            // An id acknowledged within the horizon left the record; its dedupe record was
            // written before the acknowledgement did, so this read (after the record's) sees it.
            if conv.needs_dedupe_lookup(now, self.config.dedupe_horizon) {
                if let Some(record) = self.store.seen(key, &msg.id, now).await? {
                    counter!(m::DUPLICATES).increment(1);
                    let rearmed = self.rearm_for_duplicate(&record).await?;
                    return Ok(AppendOutcome::Duplicate {
                        gen: record.gen,
                        rearmed,
                    });
                }
            }
            let horizon = self.config.dedupe_horizon;
            let plan = match conv.plan_item(msg.clone(), policy, now, horizon, &mut || {
                self.clock.random()
            }) {
                Ok(plan) => plan,
                Err(refused) => {
                    let reason = match refused {
                        AppendRefused::TooLarge { .. } => "too_large",
                        AppendRefused::Backlogged { .. } => "backlogged",
                    };
                    counter!(m::APPENDS_REFUSED, "reason" => reason).increment(1);
                    return Err(refused.into());
                }
            };
            if race.append(&plan.next).await? {
                counter!(m::MESSAGES_RECEIVED, "provider" => key.provider.as_str()).increment(1);
                if let Some(effect) = plan.amend {
                    counter!(m::AMENDS, "effect" => effect.label()).increment(1);
                }
                self.arm_planned(&plan.next, plan.arm).await?;
                return Ok(AppendOutcome::Accepted {
                    gen: plan.gen,
                    armed: plan.arm.is_some(),
                });
            }
        }
        counter!(m::APPENDS_REFUSED, "reason" => "contended").increment(1);
        Err(race.contended().into())
    }

    /// A duplicate of a message not yet acknowledged makes sure its conversation has a live
    /// trigger: a gateway retry after a failed trigger send must never strand a window.
    async fn rearm_for_duplicate(&self, record: &DedupeRecord) -> Result<bool, AppendError> {
        let mut race = self.retry(Pace::AtOnce).load(&record.key, "rearm").await?;
        while let Some((current, _)) = race.attempt() {
            let Some(mut conv) = current else {
                return Ok(false);
            };
            let oldest_unacked = conv.pending_gens().next().unwrap_or(conv.gen);
            let Some(due) = conv.hand_off_due() else {
                return Ok(false);
            };
            if record.gen < oldest_unacked {
                return Ok(false);
            }
            let token = match conv.chain {
                Some(chain) => chain.token,
                None => {
                    let token = self.clock.random();
                    conv.restart_chain(token, due, self.clock.now());
                    if !race.replace(&conv).await? {
                        continue;
                    }
                    token
                }
            };
            self.trigger
                .arm(&trigger_for(&conv, token, due), due)
                .await?;
            return Ok(true);
        }
        Err(race.contended().into())
    }
}
