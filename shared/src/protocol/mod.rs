//! The append / flush / sweep protocol, written once over the ports and run by every shell.
//!
//! - [`Buffer::append`] (webhook path): dedupe and append in one conditional write, then make sure
//!   a trigger chain covers the window. Answer 2xx only when it returns `Ok`.
//! - [`Buffer::flush`] (trigger path): close what is due, take the hand-off lease, hand the oldest
//!   pending batch to the sink, mark it acknowledged, repeat; re-arm the chain for what remains.
//! - [`Buffer::sweep`] (periodic): flush every conversation past due whose trigger was lost.

mod append;
mod flush;
mod guard;
mod handover;
mod operator;
mod outcome;
mod plan;
mod redrive;
mod retry;
pub mod stale;
mod sweep;
#[cfg(test)]
mod tests;
mod turn;

use std::time::Duration;

pub use append::{AppendError, AppendOutcome};
pub use flush::{FlushError, MAX_RETRY_AFTER};
pub use guard::GuardError;
pub use handover::{Handover, HandoverOutcome};
pub use operator::OperatorOutcome;
pub use outcome::{Claim, Disposition, FlushEnd, FlushReport, HandedOff};
pub use redrive::{RedriveEnd, RedriveNext, RedriveReport, MAX_REDRIVE_FLUSHES};
pub use sweep::{SweepReport, SWEEP_CONCURRENCY, SWEEP_LIMIT};
pub use turn::{PauseOutcome, PresenceOutcome};

use crate::key::ConversationKey;
use crate::message::Message;
use crate::policy::Policy;
use crate::ports::{Clock, Sink, Trigger, TriggerMsg, WindowStore};
use crate::timing::HandoffTiming;
use crate::window::Conversation;

/// Settings of the protocol itself (tenant policies travel with each append).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferConfig {
    /// How long a message id is remembered for dedupe (default 7 days: Meta retries that long).
    pub dedupe_horizon: Duration,
    /// The byte budget of a record's recently acknowledged ids (default
    /// [`crate::window::ACKED_IDS_BYTES`]): ids within it need no dedupe record.
    pub acked_ids_bytes: u64,
    /// The sink timeout and the lease that follows from it (default 60 s and 75 s).
    pub timing: HandoffTiming,
    /// How many times a conditional write that lost a race is retried before giving up.
    pub max_write_attempts: u32,
    /// How many batches one flush hands off before yielding (re-armed at once).
    pub max_handoffs_per_flush: u32,
    /// The first backoff hold after a failed hand-off (doubled per failure).
    pub retry_min: Duration,
    /// The longest backoff hold.
    pub retry_max: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            dedupe_horizon: Duration::from_secs(7 * 24 * 3600),
            acked_ids_bytes: crate::window::ACKED_IDS_BYTES,
            timing: HandoffTiming::default(),
            max_write_attempts: 64,
            max_handoffs_per_flush: 16,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// The webhook path's capability: append messages. Needs a store, a trigger and a clock, never a
/// sink (the webhook Lambda holds no sink and no sink secret).
#[derive(Clone, Debug)]
pub struct Intake<S, T, C> {
    store: S,
    trigger: T,
    clock: C,
    config: BufferConfig,
}

impl<S: WindowStore, T: Trigger, C: Clock> Intake<S, T, C> {
    pub fn new(store: S, trigger: T, clock: C, config: BufferConfig) -> Self {
        Intake {
            store,
            trigger,
            clock,
            config,
        }
    }

    /// The webhook path's conditional writes, paced by `pace` ([`retry::Pace`]).
    fn retry(&self, pace: retry::Pace) -> retry::Retry<'_, S, C> {
        retry::Retry {
            store: &self.store,
            clock: &self.clock,
            attempts: self.config.max_write_attempts,
            pace,
        }
    }

    /// Arms the trigger a written plan asked for (`arm`: when; the chain is the record's).
    async fn arm_planned(
        &self,
        next: &Conversation,
        arm: Option<crate::Millis>,
    ) -> Result<(), crate::ports::TriggerError> {
        if let (Some(at), Some(chain)) = (arm, next.chain) {
            self.trigger
                .arm(&trigger_for(next, chain.token, at), at)
                .await?;
        }
        Ok(())
    }
}

/// The trigger path's capability: hand batches off (flush, sweep, redrive).
#[derive(Clone, Debug)]
pub struct Handoff<S, T, K, C> {
    store: S,
    trigger: T,
    sink: K,
    clock: C,
    config: BufferConfig,
    /// Seals each batch's reply guard; `None`: batches carry none.
    guard: Option<std::sync::Arc<dyn crate::guard::GuardSeal>>,
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Handoff<S, T, K, C> {
    pub fn new(store: S, trigger: T, sink: K, clock: C, config: BufferConfig) -> Self {
        Handoff {
            store,
            trigger,
            sink,
            clock,
            config,
            guard: None,
        }
    }

    /// Every batch handed off carries a reply guard sealed by `seal`.
    pub fn with_reply_guard(mut self, seal: std::sync::Arc<dyn crate::guard::GuardSeal>) -> Self {
        self.guard = Some(seal);
        self
    }

    /// The protocol settings this hand-off runs under.
    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// The sink batches are handed to (a shell may need its own handle on it, e.g. to wait for
    /// best-effort work it started before a Lambda freezes).
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// The trigger path's conditional writes: retried at once ([`retry::Pace::AtOnce`]).
    fn retry(&self) -> retry::Retry<'_, S, C> {
        retry::Retry {
            store: &self.store,
            clock: &self.clock,
            attempts: self.config.max_write_attempts,
            pace: retry::Pace::AtOnce,
        }
    }
}

/// Both capabilities over one set of ports: what a shell that appends and hands off in one
/// process (the local server, the simulator, tests) builds.
#[derive(Clone, Debug)]
pub struct Buffer<S, T, K, C> {
    intake: Intake<S, T, C>,
    handoff: Handoff<S, T, K, C>,
}

impl<S, T, K, C> Buffer<S, T, K, C>
where
    S: WindowStore + Clone,
    T: Trigger + Clone,
    K: Sink,
    C: Clock + Clone,
{
    pub fn new(store: S, trigger: T, sink: K, clock: C, config: BufferConfig) -> Self {
        Buffer {
            intake: Intake::new(store.clone(), trigger.clone(), clock.clone(), config),
            handoff: Handoff::new(store, trigger, sink, clock, config),
        }
    }
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Buffer<S, T, K, C> {
    /// Every batch its hand-off hands off carries a reply guard sealed by `seal` (see
    /// [`Handoff::with_reply_guard`]; the simulator's buffers).
    pub fn with_reply_guard(mut self, seal: std::sync::Arc<dyn crate::guard::GuardSeal>) -> Self {
        self.handoff = self.handoff.with_reply_guard(seal);
        self
    }

    /// The append capability.
    pub fn intake(&self) -> &Intake<S, T, C> {
        &self.intake
    }

    /// The hand-off capability.
    pub fn handoff(&self) -> &Handoff<S, T, K, C> {
        &self.handoff
    }

    /// See [`Intake::append`].
    pub async fn append(
        &self,
        key: &ConversationKey,
        policy: &Policy,
        msg: Message,
    ) -> Result<AppendOutcome, AppendError> {
        self.intake.append(key, policy, msg).await
    }

    /// See [`Handoff::flush`].
    pub async fn flush(
        &self,
        key: &ConversationKey,
        claim: Claim,
    ) -> Result<FlushReport, FlushError> {
        self.handoff.flush(key, claim).await
    }
}

/// The trigger body for the live chain of `conv`, armed for `due`.
pub(crate) fn trigger_for(conv: &Conversation, chain: u64, due: crate::Millis) -> TriggerMsg {
    TriggerMsg {
        key: conv.key.clone(),
        chain,
        gen: conv.gen,
        ver: conv.ver,
        due,
    }
}
