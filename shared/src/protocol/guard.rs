//! The reply guard's path: one consistent read of the conversation record answers
//! ([`crate::guard::answer`]). When the answer is `superseded` and the batch may be superseded
//! (its tenant's `on_newer = "supersede"`, its hand-off still open, its thought below
//! [`crate::guard::MAX_THOUGHT_BATCHES`]), one conditional write marks it, so its
//! acknowledgement hands its messages to the next batch as `context`. A `current` answer never
//! writes.

use metrics::counter;

use super::retry::{Contended, Pace};
use super::Intake;
use crate::guard::{answer_typing, GuardAnswer, GuardClaim, GuardRefused};
use crate::metrics as m;
use crate::ports::{Clock, StoreError, Trigger, WindowStore};
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
        let mut race = self
            .retry(Pace::AtOnce)
            .load(&claim.key, "supersede")
            .await?;
        while let Some((current, _)) = race.attempt() {
            let now = self.clock.now();
            let said = answer_typing(current.as_ref(), claim, now, typing)?;
            let Some(mut next) = current else {
                return Ok(said);
            };
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
            if race.replace(&next).await? {
                counter!(m::SUPERSEDED, "by" => "guard").increment(1);
                let said = answer_typing(Some(&next), claim, now, typing)?;
                counter!(m::GUARDS, "state" => state_label(said)).increment(1);
                return Ok(said);
            }
        }
        Err(race.contended().into())
    }
}

impl From<Contended> for GuardError {
    fn from(c: Contended) -> Self {
        GuardError::Contended(c.0)
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
