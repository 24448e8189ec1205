//! The bot behind the sink (issue 26; `docs/batch.md`, "The reply guard"): what it does with a
//! batch it received, and how long that takes.
//!
//! - **Generation time**: uniform in [`GENERATION_MIN`, `GENERATION_MAX`] = 2 to 12 s of virtual
//!   time per batch received, drawn from the world's seeded generator (the "2-12 s").
//! - **How it answers the hand-off** ([`BotMode`], fixed per conversation): after its AI step
//!   (`after-reply`, asking the reply guard just before it replies, or `declares`, answering
//!   `Lull-Reply: superseded` when it saw the user write again since the hand-off started), or at
//!   once (`at-once`: 2xx first, then it generates and asks the guard, as a bot without
//!   supersede does).
//! - **The guard** is the real path: the batch's `reply_guard` URL opens to the claim the flush
//!   sealed into it ([`SimSeal`] writes the claim itself into the URL: the token's crypto is not
//!   the subject here) and the bot's GET is `Intake::guard` with that claim, run as a task of
//!   its own over the simulated store, so its reads and its marking write interleave with
//!   webhook appends and flushes and meet the same crashes, store errors and throttling. Its
//!   answer may be lost on the way back (the sink's lost-acknowledgement rate); the bot asks
//!   again after [`GUARD_RETRY`], at most [`GUARD_ASKS`] times, then sends its reply anyway.
//!   `typing` makes it ask again after `retry_after_ms` (lull says `typing` at most 30 s after
//!   the close).

use std::time::Duration;

use crate::guard::{GuardClaim, GuardSeal, ReplyGuard};
use crate::policy::{OnNewer, Policy};
use crate::turn::TypingRule;

/// The shortest generation of a reply.
pub(crate) const GENERATION_MIN: Duration = Duration::from_secs(2);
/// The longest generation of a reply.
pub(crate) const GENERATION_MAX: Duration = Duration::from_secs(12);
/// How long a bot waits before asking a guard that gave no answer again.
pub(crate) const GUARD_RETRY: Duration = Duration::from_secs(1);
/// Guard requests that may fail in a row before the bot gives up and sends its reply.
pub(crate) const GUARD_ASKS: u32 = 3;
/// The most guard requests per reply (`typing` answers included): a guard that kept saying
/// `typing` past lull's 30 s bound would be a bug the trace shows, not an endless loop.
pub(crate) const MAX_ASKS: u32 = 64;

/// One reply in the making: the batch it answers, and the bot's progress with its guard.
#[derive(Clone, Debug)]
pub(crate) struct BotCall {
    /// The hand-off the bot answers when its reply is decided (`after-reply`, `declares`);
    /// `None` for an `at-once` bot (already answered).
    pub op: Option<crate::exec::OpId>,
    pub conv: usize,
    pub batch_id: uuid::Uuid,
    /// The batch's reply guard, opened; `None` when it carried none.
    pub claim: Option<GuardClaim>,
    /// When the hand-off started (by the world's clock).
    pub started: crate::Millis,
    pub mode: BotMode,
    /// Guard requests made for this reply.
    pub asks: u32,
    /// Guard requests in a row that got no answer.
    pub failures: u32,
}

/// The longest a bot answering after its AI step holds a hand-off open beyond what a sink
/// answering at once would: its generation, lull's `typing` bound, and its guard retries.
/// Liveness allows it on top of its bound (`check/liveness.rs`).
pub(crate) const HOLDS_AT_MOST: Duration = Duration::from_secs(
    GENERATION_MAX.as_secs()
        + crate::guard::MAX_TYPING_WAIT.as_secs()
        + GUARD_ASKS as u64 * GUARD_RETRY.as_secs(),
);

/// How the bot of a conversation answers lull's POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BotMode {
    /// 2xx at once; generates afterwards, then asks the guard (a bot without supersede).
    AtOnce,
    /// Generates, asks the guard, then answers the POST (what supersede needs).
    AfterReply,
    /// Generates, then answers the POST declaring `superseded` when the user wrote again since
    /// the hand-off started (it saw it itself), without asking the guard.
    Declares,
}

impl BotMode {
    /// The bot of conversation `i`, whose tenant's policy is `p` (its first one): supersede
    /// tenants answer after the AI step (one in four by declaring, one in eight at once, which
    /// supersede then cannot use); `append` tenants mostly at once, one in three after the AI
    /// step (its guard still says `superseded`, without `supersede`).
    pub fn for_conversation(i: usize, p: &Policy) -> BotMode {
        let n = i / 10;
        match p.on_newer {
            OnNewer::Supersede => match n % 8 {
                0 | 4 => BotMode::Declares,
                7 => BotMode::AtOnce,
                _ => BotMode::AfterReply,
            },
            OnNewer::Append if n.is_multiple_of(3) => BotMode::AfterReply,
            OnNewer::Append => BotMode::AtOnce,
        }
    }
}

/// The typing rule a guard answers `typing` by: the tenant's, under `on_newer = "supersede"`
/// only (as the guard routes of `lull serve` and the webhook Lambda pass it).
pub(crate) fn guard_typing(p: &Policy) -> Option<TypingRule> {
    match p.on_newer {
        OnNewer::Supersede => p.turn().typing,
        OnNewer::Append => None,
    }
}

/// The simulator's reply guard: the claim itself, in the URL (`sim://guard/<batch>/<claim>`).
#[derive(Debug)]
pub(crate) struct SimSeal;

const PREFIX: &str = "sim://guard/";

impl GuardSeal for SimSeal {
    fn reply_guard(&self, claim: &GuardClaim) -> ReplyGuard {
        let sealed = serde_json::to_string(claim).unwrap_or_default();
        ReplyGuard {
            url: format!("{PREFIX}{}/{sealed}", claim.batch_id),
        }
    }
}

/// The claim a [`SimSeal`] URL carries (what the guard route gets once the token verified).
pub(crate) fn open(url: &str) -> Option<GuardClaim> {
    let (batch, sealed) = url.strip_prefix(PREFIX)?.split_once('/')?;
    let mut claim: GuardClaim = serde_json::from_str(sealed).ok()?;
    claim.batch_id = batch.parse().ok()?;
    Some(claim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ConversationKey, Provider};

    #[test]
    fn a_sealed_claim_opens_to_itself() {
        let claim = GuardClaim {
            key: ConversationKey::new(Provider::Meta, "pn", "5511"),
            gen: 3,
            batch_id: uuid::Uuid::from_u128(7),
            accepted: 12,
            expires_at: 99,
            closed_at: 42,
        };
        let url = SimSeal.reply_guard(&claim).url;
        assert_eq!(open(&url), Some(claim));
        assert_eq!(open("sim://guard/nonsense"), None);
    }
}
