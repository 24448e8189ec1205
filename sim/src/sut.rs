//! The system under test, behind one trait: lull as shipped, or one of the deliberately broken
//! variants (`variants.rs`). The driver calls what a shell would call: append for a webhook
//! request, flush for a trigger, the sweep's query and a sweep flush per conversation found.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::guard::{GuardAnswer, GuardClaim};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::policy::Policy;
use crate::ports::{Clock, TriggerMsg};
use crate::protocol::{
    AppendError, AppendOutcome, Buffer, Claim, Disposition, FlushEnd, FlushError, FlushReport,
    PauseOutcome,
};
use crate::time::Millis;
use crate::turn::{PauseReason, PresenceKind, TypingRule};

use super::exec::SimPorts;

pub(crate) type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How a webhook request was answered.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// 2xx: stored.
    Accepted,
    /// 2xx: accepted before, dropped.
    Duplicate,
    /// Refused by the protocol (no room, too large, too busy): the gateway retries later.
    Refused(String),
    /// Failed (store or trigger error): the gateway retries.
    Failed(String),
}

/// How a flush ended, for the shell.
#[derive(Clone, Debug)]
pub(crate) struct Flushed {
    /// The shell deletes the trigger (SQS); otherwise it is redelivered.
    pub delete: bool,
    /// The protocol dropped the trigger as stale.
    pub stale: bool,
    /// For the trace.
    pub what: String,
}

/// What the driver runs: one method per thing a shell does. Each defaults to lull's own; a
/// broken variant overrides the step it breaks.
pub(crate) trait SystemUnderTest: Send + Sync {
    /// lull's protocol over the same ports.
    fn lull(&self) -> Lull;

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        let b = self.lull().buffer;
        Box::pin(async move { answer(b.append(&key, &policy, msg).await) })
    }

    fn flush(&self, trig: TriggerMsg) -> Boxed<Flushed> {
        let b = self.lull().buffer;
        let claim = Claim::Trigger { chain: trig.chain };
        Box::pin(async move { flushed(b.flush(&trig.key, claim).await) })
    }

    fn sweep_due(&self, limit: usize) -> Boxed<Vec<ConversationKey>> {
        let b = self.lull().buffer;
        Box::pin(async move { b.handoff().sweep_due(limit).await.unwrap_or_default() })
    }

    fn sweep_one(&self, key: ConversationKey) -> Boxed<Flushed> {
        let b = self.lull().buffer;
        Box::pin(async move { flushed(b.handoff().sweep_one(&key).await) })
    }

    /// A presence event (lull's `Intake::presence`); the answer does not matter to the world.
    fn presence(
        &self,
        key: ConversationKey,
        policy: Policy,
        kind: PresenceKind,
        sent_at: Millis,
    ) -> Boxed<()> {
        let b = self.lull().buffer;
        Box::pin(async move {
            let _ = b
                .intake()
                .presence(&key, &policy, kind, Some(sent_at))
                .await;
        })
    }

    /// An operator pause for `pause_for`; true when it was stored.
    fn pause(&self, key: ConversationKey, pause_for: Duration) -> Boxed<bool> {
        let b = self.lull().buffer;
        Box::pin(async move {
            matches!(
                b.intake()
                    .pause(&key, Some(pause_for), PauseReason::Operator)
                    .await,
                Ok(PauseOutcome::Set(_) | PauseOutcome::Unchanged)
            )
        })
    }

    /// An operator resume (the pause ends now); true when lull answered it (stored, or no pause
    /// was in force).
    fn resume(&self, key: ConversationKey) -> Boxed<bool> {
        let b = self.lull().buffer;
        Box::pin(async move {
            matches!(
                b.intake().pause(&key, None, PauseReason::Admin).await,
                Ok(PauseOutcome::Set(_) | PauseOutcome::Unchanged)
            )
        })
    }

    /// The reply guard's route once the token verified: `Intake::guard` with the batch's
    /// claim and the tenant's typing rule (`ai_step::guard_typing`).
    fn guard(
        &self,
        claim: GuardClaim,
        typing: Option<TypingRule>,
    ) -> Boxed<Result<GuardAnswer, String>> {
        let b = self.lull().buffer;
        Box::pin(async move {
            b.intake()
                .guard(&claim, typing)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// False for a design with no sweep and no redelivery of failed triggers.
    fn retries(&self) -> bool {
        true
    }
}

pub(crate) type SimBuffer<C = SimPorts> = Buffer<SimPorts, SimPorts, SimPorts, C>;

/// lull's protocol, as shipped.
#[derive(Clone)]
pub(crate) struct Lull {
    pub buffer: Arc<SimBuffer>,
}

impl Lull {
    pub fn new(ports: &SimPorts, config: crate::protocol::BufferConfig) -> Lull {
        Lull {
            buffer: Arc::new(buffer(ports, ports.clone(), config)),
        }
    }
}

impl SystemUnderTest for Lull {
    fn lull(&self) -> Lull {
        self.clone()
    }
}

/// A protocol instance over the simulated ports, with clock `clock`; its batches carry a reply
/// guard (`ai_step::SimSeal`).
pub(crate) fn buffer<C: Clock + Clone>(
    ports: &SimPorts,
    clock: C,
    config: crate::protocol::BufferConfig,
) -> SimBuffer<C> {
    Buffer::new(ports.clone(), ports.clone(), ports.clone(), clock, config)
        .with_reply_guard(Arc::new(crate::ai_step::SimSeal))
}

/// The webhook's answer for an append's result.
pub(crate) fn answer(r: Result<AppendOutcome, AppendError>) -> Answer {
    match r {
        Ok(AppendOutcome::Accepted { .. }) => Answer::Accepted,
        Ok(AppendOutcome::Duplicate { .. }) => Answer::Duplicate,
        // The simulator's messages carry no provider timestamp: never stale.
        Ok(AppendOutcome::Stale) => Answer::Refused("stale".into()),
        Err(e @ (AppendError::Refused(_) | AppendError::Contended(_))) => {
            Answer::Refused(e.to_string())
        }
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// What the shell does with a flush's result: what the core says it means (as the flush Lambda:
/// anything but done is reported failed to SQS, which redelivers it).
pub(crate) fn flushed(r: Result<FlushReport, FlushError>) -> Flushed {
    match r {
        Ok(rep) => Flushed {
            delete: rep.end.disposition() == Disposition::Done,
            stale: matches!(rep.end, FlushEnd::Stale),
            what: format!("{:?}, {} handed off", rep.end, rep.handed_off.len()),
        },
        Err(e) => Flushed {
            delete: false,
            stale: false,
            what: format!("error {e}"),
        },
    }
}
