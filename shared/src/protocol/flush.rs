//! The trigger path: close what is due, hand pending batches off one at a time in generation
//! order, and keep the trigger chain alive while work remains.

use metrics::{counter, histogram};
use uuid::Uuid;

use super::{trigger_for, Buffer};
use crate::batch::CloseReason;
use crate::metrics as m;
use crate::ports::{
    Clock, Sink, SinkError, StoreError, Trigger, TriggerError, TriggerMsg, WindowStore, Written,
};
use crate::time::Millis;
use crate::window::{Chain, Conversation};

/// Who is flushing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMode {
    /// A trigger fired: it may be stale (a newer chain exists), early, or a duplicate.
    Trigger,
    /// The sweep found the conversation past due: its chain was lost or is late; adopt it.
    Sweep,
    /// An operator asked to re-deliver now (`lull redrive`): like the sweep, and a failed
    /// batch's backoff hold does not make it wait.
    Redrive,
}

/// One batch handed off and acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandedOff {
    pub gen: u64,
    pub batch_id: Uuid,
    pub reason: CloseReason,
    pub messages: usize,
    pub due_at: Millis,
    pub acked_at: Millis,
}

/// How a flush ended.
#[derive(Clone, Debug)]
pub enum FlushEnd {
    /// The trigger's chain is no longer the live one and nothing was due: dropped.
    Stale,
    /// Nothing left to do; the chain ended.
    Idle,
    /// The live chain was re-armed for `at` (the window is not due yet, or this flush yielded).
    Rearmed { at: Millis },
    /// Another flush holds the hand-off lease; the live chain was re-armed for when it runs out.
    Waiting { until: Millis },
    /// The oldest batch failed recently and is held until `until` (exponential backoff). The
    /// shell retries then (SQS: report the record failed, so repeated failures still reach the
    /// DLQ; locally: re-arm for `until`).
    BackingOff { until: Millis },
    /// A stale trigger did what was due; the live chain covers the rest.
    Covered,
    /// The sink did not acknowledge; the batch stays pending. The shell retries (SQS: report
    /// the record as failed).
    SinkFailed(SinkError),
}

/// What one flush did.
#[derive(Clone, Debug)]
pub struct FlushReport {
    pub handed_off: Vec<HandedOff>,
    pub end: FlushEnd,
}

/// A flush that could not finish; the shell retries it (the trigger stays).
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error("conversation too busy: {0} conflicting writes in a row")]
    Contended(u32),
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Buffer<S, T, K, C> {
    /// Handles one trigger (or one sweep hit) for `trig.key`.
    pub async fn flush(
        &self,
        trig: &TriggerMsg,
        mode: FlushMode,
    ) -> Result<FlushReport, FlushError> {
        let mut handed_off = Vec::new();
        let done = |handed_off, end| Ok(FlushReport { handed_off, end });
        let Some(mut conv) = self.store.load(&trig.key).await? else {
            counter!(m::STALE_TRIGGERS).increment(1);
            return done(handed_off, FlushEnd::Stale);
        };
        let lease_token = self.clock.random();
        let mut conflicts = 0u32;
        let mut first = true;
        // The chain token this flush re-arms with once it owns the chain. The sweep brings a
        // fresh one: it visits conversations whose chain is lost or late.
        let token = match mode {
            FlushMode::Trigger => trig.chain,
            FlushMode::Sweep | FlushMode::Redrive => self.clock.random(),
        };
        loop {
            let now = self.clock.now();
            let owns_chain = conv.chain.is_some_and(|c| c.token == token);
            let live = owns_chain || mode != FlushMode::Trigger;
            if !live && !conv.is_past_due(now) {
                if first {
                    counter!(m::STALE_TRIGGERS).increment(1);
                    return done(handed_off, FlushEnd::Stale);
                }
                return done(handed_off, FlushEnd::Covered);
            }
            first = false;
            if conflicts >= self.config.max_write_attempts {
                return Err(FlushError::Contended(conflicts));
            }
            let mut next = conv.clone();
            next.close_if_due(now);
            if next.pending.is_empty() {
                // Nothing to hand off now: the window is not due, or there is no window.
                if next.window.is_none() {
                    if live && next.end_chain(now) {
                        match self.store.replace(conv.ver, &next).await? {
                            Written::Ok => {}
                            Written::Conflict(latest) => {
                                conflicts += 1;
                                counter!(m::WRITE_CONFLICTS, "op" => "end_chain").increment(1);
                                conv = self.reloaded(latest, &trig.key).await?;
                                continue;
                            }
                        }
                    }
                    return done(handed_off, FlushEnd::Idle);
                }
                if !live {
                    return done(handed_off, FlushEnd::Covered);
                }
                if handed_off.is_empty() && mode == FlushMode::Trigger {
                    counter!(m::EARLY_TRIGGERS).increment(1);
                }
                let at = conv.due_at().unwrap_or(now);
                self.rearm(&mut conv, at).await?;
                return done(handed_off, FlushEnd::Rearmed { at });
            }
            if mode == FlushMode::Redrive {
                next.lift_hold();
            }
            if let Some(until) = next.held_until(now) {
                return done(handed_off, FlushEnd::BackingOff { until });
            }
            if !next.lease_head(now, self.config.timing.lease(), lease_token) {
                // Another flush is handing off; it continues with what follows. Cover the case
                // where it dies: wake up when its lease runs out.
                counter!(m::WAITING_TRIGGERS).increment(1);
                let until = next.due_at().unwrap_or(now);
                if live {
                    self.rearm(&mut conv, until).await?;
                    return done(handed_off, FlushEnd::Waiting { until });
                }
                return done(handed_off, FlushEnd::Covered);
            }
            if !owns_chain {
                // Whoever hands off owns the chain from now on: the stored chain's trigger may
                // never have been sent (its append died before arming it), and this flush is
                // the one that will re-arm for what remains. Free: it rides on the lease write.
                next.chain = Some(Chain {
                    token,
                    armed_for: now,
                });
            }
            match self.store.replace(conv.ver, &next).await? {
                Written::Ok => conv = next,
                Written::Conflict(latest) => {
                    conflicts += 1;
                    counter!(m::WRITE_CONFLICTS, "op" => "close").increment(1);
                    conv = self.reloaded(latest, &trig.key).await?;
                    continue;
                }
            }
            let head = conv.pending[0].clone();
            if mode != FlushMode::Trigger && handed_off.is_empty() {
                counter!(m::SWEPT).increment(1);
            }
            let batch = head.to_batch(&conv.key);
            let lease_until = head.lease.map_or(now, |l| l.until);
            let within = self
                .config
                .timing
                .call_budget(self.clock.now(), lease_until)
                .unwrap_or(std::time::Duration::ZERO);
            match self.sink.deliver(&batch, within).await {
                Ok(()) => {}
                Err(e) => {
                    counter!(m::SINK_FAILURES, "kind" => e.kind()).increment(1);
                    // Hold the batch for a backoff that grows with its failures (1 s, 2 s, 4 s ...
                    // up to `retry_max`, jittered): no flush, sweep or duplicate trigger hammers a
                    // failing sink meanwhile. If this write loses a race, the lease runs out.
                    let mut held = conv.clone();
                    let hold = self.retry_hold(conv.head_failures());
                    if held.hold_after_failure(head.gen, lease_token, self.clock.now(), hold) {
                        let _ = self.store.replace(conv.ver, &held).await;
                    }
                    return done(handed_off, FlushEnd::SinkFailed(e));
                }
            }
            let acked_at = self.clock.now();
            conv = self.ack(conv, head.gen, acked_at).await?;
            counter!(m::BATCHES, "reason" => head.reason.as_str()).increment(1);
            counter!(m::MESSAGES_HANDED_OFF).increment(head.messages.len() as u64);
            histogram!(m::HANDOFF_LAG).record(acked_at.since(head.due_at).as_secs_f64());
            handed_off.push(HandedOff {
                gen: head.gen,
                batch_id: head.batch_id,
                reason: head.reason,
                messages: head.messages.len(),
                due_at: head.due_at,
                acked_at,
            });
            if conv.is_idle() {
                return done(handed_off, FlushEnd::Idle);
            }
            if handed_off.len() as u32 >= self.config.max_handoffs_per_flush {
                let at = self.clock.now();
                self.rearm(&mut conv, at).await?;
                return done(handed_off, FlushEnd::Rearmed { at });
            }
        }
    }

    /// The backoff before retrying a batch that failed `failures` times: `retry_min` doubled per
    /// failure, at most `retry_max`, with up to 25% jitter taken off.
    fn retry_hold(&self, failures: u32) -> std::time::Duration {
        let min = self.config.retry_min.as_millis() as u64;
        let max = self.config.retry_max.as_millis() as u64;
        let base = min.saturating_mul(1u64 << failures.min(20)).min(max).max(1);
        let jitter = self.clock.random() % (base / 4 + 1);
        std::time::Duration::from_millis(base - jitter)
    }

    /// Marks batch `gen` acknowledged, retrying lost races; returns the record after it.
    async fn ack(
        &self,
        mut conv: Conversation,
        gen: u64,
        now: Millis,
    ) -> Result<Conversation, FlushError> {
        for _ in 0..self.config.max_write_attempts {
            let mut next = conv.clone();
            if !next.ack(gen, now) {
                return Ok(conv);
            }
            match self.store.replace(conv.ver, &next).await? {
                Written::Ok => return Ok(next),
                Written::Conflict(latest) => {
                    counter!(m::WRITE_CONFLICTS, "op" => "ack").increment(1);
                    conv = self.reloaded(latest, &conv.key).await?;
                }
            }
        }
        Err(FlushError::Contended(self.config.max_write_attempts))
    }

    /// The record returned by a failed condition, or a fresh read when the store returned none.
    async fn reloaded(
        &self,
        latest: Option<Box<Conversation>>,
        key: &crate::ConversationKey,
    ) -> Result<Conversation, FlushError> {
        match latest {
            Some(c) => Ok(*c),
            None => {
                self.store.load(key).await?.ok_or_else(|| {
                    StoreError::Corrupt("conversation record vanished".into()).into()
                })
            }
        }
    }

    /// Re-arms the conversation's live chain for `at`, starting a chain when it has none.
    async fn rearm(&self, conv: &mut Conversation, at: Millis) -> Result<(), FlushError> {
        let token = match conv.chain {
            Some(chain) => chain.token,
            None => {
                let token = self.clock.random();
                let expected = conv.ver;
                let mut next = conv.clone();
                next.restart_chain(token, at, self.clock.now());
                match self.store.replace(expected, &next).await? {
                    Written::Ok => *conv = next,
                    // Someone else changed the record (an append starts its own chain).
                    Written::Conflict(_) => return Ok(()),
                }
                token
            }
        };
        self.trigger.arm(&trigger_for(conv, token, at), at).await?;
        Ok(())
    }
}
