//! The one thing the router needs from the core: append a message to its conversation.
//!
//! An object-safe trait so the router is not generic over the store, trigger, sink and clock:
//! the Lambda (DynamoDB + SQS), the local server (SQLite + timers) and the tests (memory) all
//! hand the same `Router` an `Arc<dyn Appender>`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use lull_core::guard::{GuardAnswer, GuardClaim};
use lull_core::ports::{Clock, Sink, Trigger, WindowStore};
use lull_core::protocol::Intake;
use lull_core::protocol::{
    AppendError, AppendOutcome, GuardError, Handover, HandoverOutcome, OperatorOutcome,
    PauseOutcome, PresenceOutcome,
};
use lull_core::turn::{PauseReason, PresenceKind};
use lull_core::{Buffer, ConversationKey, Message, Millis, Policy};

/// The future [`Appender::append`] returns.
pub type AppendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AppendOutcome, AppendError>> + Send + 'a>>;

/// The future of a presence event.
pub type PresenceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PresenceOutcome, AppendError>> + Send + 'a>>;

/// The future of an operator's message.
pub type OperatorFuture<'a> =
    Pin<Box<dyn Future<Output = Result<OperatorOutcome, AppendError>> + Send + 'a>>;

/// The future of a pause or resume.
pub type PauseFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PauseOutcome, AppendError>> + Send + 'a>>;

/// The future of a help desk's handover signal.
pub type HandoverFuture<'a> =
    Pin<Box<dyn Future<Output = Result<HandoverOutcome, AppendError>> + Send + 'a>>;

/// The future of a reply guard.
pub type GuardFuture<'a> =
    Pin<Box<dyn Future<Output = Result<GuardAnswer, GuardError>> + Send + 'a>>;

/// Appends one normalised message to the window of `key` under `policy`; applies presence
/// events and operator pauses to it (`lull_core::protocol::Intake`).
pub trait Appender: Send + Sync {
    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> AppendFuture<'_>;

    fn presence(
        &self,
        key: ConversationKey,
        policy: Policy,
        kind: PresenceKind,
        sent_at: Option<Millis>,
    ) -> PresenceFuture<'_>;

    /// Pauses hand-offs of `key` for `pause_for` (`None`: resumes them).
    fn pause(
        &self,
        key: ConversationKey,
        pause_for: Option<Duration>,
        reason: PauseReason,
    ) -> PauseFuture<'_>;

    /// An operator's message: pauses `key` for `policy.pause` unless its id was seen before;
    /// appends it too when `buffer` (`Intake::operator_message`).
    fn operator_message(
        &self,
        key: ConversationKey,
        policy: Policy,
        msg: Message,
        buffer: bool,
    ) -> OperatorFuture<'_>;

    /// A help desk took `key` over or gave it back: `change` with `reason`, unless one of `ids`
    /// was seen before; the ids are remembered in the same write (`Intake::handover`).
    fn handover(
        &self,
        key: ConversationKey,
        ids: Vec<String>,
        sent_at: Option<Millis>,
        change: Handover,
        reason: PauseReason,
    ) -> HandoverFuture<'_>;

    /// Answers a verified reply guard under its tenant's `policy` (`Intake::guard`).
    fn guard(&self, claim: GuardClaim, policy: Policy) -> GuardFuture<'_>;
}

/// A `Buffer` appends through its intake (the same calls, one place: the impl below).
impl<S, T, K, C> Appender for Buffer<S, T, K, C>
where
    S: WindowStore + 'static,
    T: Trigger + 'static,
    K: Sink + 'static,
    C: Clock + 'static,
{
    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> AppendFuture<'_> {
        Appender::append(self.intake(), key, policy, msg)
    }

    fn presence(
        &self,
        key: ConversationKey,
        policy: Policy,
        kind: PresenceKind,
        sent_at: Option<Millis>,
    ) -> PresenceFuture<'_> {
        Appender::presence(self.intake(), key, policy, kind, sent_at)
    }

    fn pause(
        &self,
        key: ConversationKey,
        pause_for: Option<Duration>,
        reason: PauseReason,
    ) -> PauseFuture<'_> {
        Appender::pause(self.intake(), key, pause_for, reason)
    }

    fn operator_message(
        &self,
        key: ConversationKey,
        policy: Policy,
        msg: Message,
        buffer: bool,
    ) -> OperatorFuture<'_> {
        Appender::operator_message(self.intake(), key, policy, msg, buffer)
    }

    fn handover(
        &self,
        key: ConversationKey,
        ids: Vec<String>,
        sent_at: Option<Millis>,
        change: Handover,
        reason: PauseReason,
    ) -> HandoverFuture<'_> {
        Appender::handover(self.intake(), key, ids, sent_at, change, reason)
    }

    fn guard(&self, claim: GuardClaim, policy: Policy) -> GuardFuture<'_> {
        Appender::guard(self.intake(), claim, policy)
    }
}

impl<S, T, C> Appender for Intake<S, T, C>
where
    S: WindowStore + 'static,
    T: Trigger + 'static,
    C: Clock + 'static,
{
    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> AppendFuture<'_> {
        Box::pin(async move { Intake::append(self, &key, &policy, msg).await })
    }

    fn presence(
        &self,
        key: ConversationKey,
        policy: Policy,
        kind: PresenceKind,
        sent_at: Option<Millis>,
    ) -> PresenceFuture<'_> {
        Box::pin(async move { Intake::presence(self, &key, &policy, kind, sent_at).await })
    }

    fn pause(
        &self,
        key: ConversationKey,
        pause_for: Option<Duration>,
        reason: PauseReason,
    ) -> PauseFuture<'_> {
        Box::pin(async move { Intake::pause(self, &key, pause_for, reason).await })
    }

    fn operator_message(
        &self,
        key: ConversationKey,
        policy: Policy,
        msg: Message,
        buffer: bool,
    ) -> OperatorFuture<'_> {
        Box::pin(async move {
            let pause_for = policy.pause;
            Intake::operator_message(self, &key, &policy, msg, pause_for, buffer).await
        })
    }

    fn handover(
        &self,
        key: ConversationKey,
        ids: Vec<String>,
        sent_at: Option<Millis>,
        change: Handover,
        reason: PauseReason,
    ) -> HandoverFuture<'_> {
        Box::pin(async move { Intake::handover(self, &key, &ids, sent_at, change, reason).await })
    }

    fn guard(&self, claim: GuardClaim, policy: Policy) -> GuardFuture<'_> {
        Box::pin(async move { Intake::guard(self, &claim, typing_rule(&policy)).await })
    }
}

/// The typing rule a guard answers `typing` by: the tenant's, under `on_newer = "supersede"`
/// only (the presence after a close is kept for those tenants alone).
fn typing_rule(policy: &Policy) -> Option<lull_core::turn::TypingRule> {
    (policy.on_newer == lull_core::policy::OnNewer::Supersede)
        .then(|| policy.turn().typing)
        .flatten()
}
