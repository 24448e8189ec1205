//! The reply guard's path: one consistent read of the conversation record answers
//! ([`crate::guard::answer`]). When the answer is `superseded` and the batch may be superseded
//! (its tenant's `on_newer = "supersede"`, its hand-off still open, its thought below
//! [`crate::guard::MAX_THOUGHT_BATCHES`]), one conditional write marks it, so its
//! acknowledgement hands its messages to the next batch as `context`. A `current` answer never
//! writes.

use metrics::counter;

use super::Intake;
use crate::guard::{answer_typing, GuardAnswer, GuardClaim, GuardRefused};
use crate::metrics as m;
use crate::ports::{Clock, StoreError, Trigger, WindowStore, Written};
use crate::turn::TypingRule;

/// Why a guard got no answer.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Expired, or the record is gone: a 4xx for the bot.
    #[error(transparent)]
    Refused(#[from] GuardRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("conversation too busy: {0} conflicting writes in a row")]
    Contended(u32),
}

impl<S: WindowStore, T: Trigger, C: Clock> Intake<S, T, C> {
    /// Answers the reply guard `claim` (already verified by the shell); `typing`: the tenant's
    /// typing rule (`None`: presence off, the guard never answers `typing`).
    pub async fn guard(
        &self,
        claim: &GuardClaim,
        typing: Option<TypingRule>,
    ) -> Result<GuardAnswer, GuardError> {
        let mut current = self.store.load(&claim.key).await?;
        for _ in 0..self.config.max_write_attempts {
            let now = self.clock.now();
            let said = answer_typing(current.as_ref(), claim, now, typing)?;
            let Some(conv) = current.as_ref() else {
                return Ok(said);
            };
            let mut next = conv.clone();
            let marks = matches!(
                said,
                GuardAnswer::Superseded {
                    supersede: false,
                    ..
                }
            ) && next.mark_superseded(claim.gen, now);
            if !marks {
                counter!(m::GUARDS, "state" => state_label(said)).increment(1);
                return Ok(said);
            }
            match self.store.replace(conv.ver, &next).await? {
                Written::Ok => {
                    counter!(m::SUPERSEDED, "by" => "guard").increment(1);
                    let said = answer_typing(Some(&next), claim, now, typing)?;
                    counter!(m::GUARDS, "state" => state_label(said)).increment(1);
                    return Ok(said);
                }
                Written::Conflict(latest) => {
                    counter!(m::WRITE_CONFLICTS, "op" => "supersede").increment(1);
                    current = match latest {
                        Some(c) => Some(*c),
                        None => self.store.load(&claim.key).await?,
                    };
                }
            }
        }
        Err(GuardError::Contended(self.config.max_write_attempts))
    }
}

fn state_label(a: GuardAnswer) -> &'static str {
    match a {
        GuardAnswer::Current => "current",
        GuardAnswer::Superseded {
            supersede: true, ..
        } => "superseded",
        GuardAnswer::Superseded { .. } => "newer",
        GuardAnswer::Typing { .. } => "typing",
    }
}
