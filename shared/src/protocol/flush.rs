//! The trigger path's executor: read the record, ask the planner (`plan.rs`) for the next step,
//! perform it, repeat. Hands pending batches off one at a time in generation order, each under a
//! lease that every later write is conditional on, and keeps the trigger chain alive while work
//! remains.

use std::time::Duration;

use metrics::{counter, histogram};

use super::outcome::{Claim, FlushEnd, FlushReport, HandedOff};
use super::plan::{plan, Cursor, Step};
use super::retry::{vanished, winner, Contended};
use super::{trigger_for, Handoff};
use crate::key::ConversationKey;
use crate::metrics as m;
use crate::ports::{
    Clock, Sink, SinkError, StoreError, Trigger, TriggerError, WindowStore, Written,
};
use crate::time::Millis;
use crate::window::{Attempt, Conversation};

/// The longest hold a sink's `Retry-After` can ask for (SQS's longest delay).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);

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

impl From<Contended> for FlushError {
    fn from(c: Contended) -> Self {
        FlushError::Contended(c.0)
    }
}

/// What the sink call's answer made of the record.
enum Delivered {
    /// Acknowledged and recorded.
    Acked(Box<Conversation>),
    /// Acknowledged, but the lease had been taken over: nothing recorded.
    LeaseLost,
}

impl<S: WindowStore, T: Trigger, K: Sink, C: Clock> Handoff<S, T, K, C> {
    /// Handles one trigger, sweep hit or redrive of conversation `key`.
    pub async fn flush(
        &self,
        key: &ConversationKey,
        claim: Claim,
    ) -> Result<FlushReport, FlushError> {
        self.flush_until(key, claim, None).await
    }

    /// Like [`Self::flush`], taking no lease that would run past `deadline` (a Lambda passes its
    /// invocation's deadline, so a hand-off never outlives the process that makes it).
    ///
    /// The one loop of conditional writes not run as a [`super::retry::Race`], because its writes
    /// are steps of one executor rather than one write retried: a landed write leads on to the
    /// next step (a hand-off to the sink, then more writes), so its budget of lost races spans the
    /// whole flush, each write's lost races are counted under that write's own label (`close`,
    /// `end_chain`), and the chain start of an `Arm` step is never retried (the append that beat
    /// it starts its own chain). A lost race re-plans from the record the port returned
    /// ([`winner`]), as a race does.
    pub async fn flush_until(
        &self,
        key: &ConversationKey,
        claim: Claim,
        deadline: Option<Millis>,
    ) -> Result<FlushReport, FlushError> {
        let mut handed_off = Vec::new();
        let Some(mut conv) = self.store.load(key).await? else {
            counter!(m::STALE_TRIGGERS).increment(1);
            return Ok(FlushReport {
                handed_off,
                end: FlushEnd::Stale,
            });
        };
        let mut cursor = Cursor {
            claim,
            chain: match claim {
                Claim::Trigger { chain } => chain,
                Claim::Sweep | Claim::Redrive => self.clock.random(),
            },
            lease_token: self.clock.random(),
            lease: self.config.timing.lease(),
            handed_off: 0,
            max_handoffs: self.config.max_handoffs_per_flush,
            deadline,
            first: true,
        };
        let mut conflicts = 0u32;
        let end = loop {
            if conflicts >= self.config.max_write_attempts {
                return Err(FlushError::Contended(conflicts));
            }
            let now = self.clock.now();
            let step = plan(&conv, now, &cursor, self.clock.random());
            cursor.first = false;
            match step {
                Step::End(end) => break end,
                Step::Write { next, then } => match self.store.replace(conv.ver, &next).await? {
                    Written::Ok => break then,
                    Written::Conflict(latest) => {
                        conflicts += 1;
                        counter!(m::WRITE_CONFLICTS, "op" => "end_chain").increment(1);
                        conv = winner(latest)?;
                    }
                },
                Step::Arm {
                    start,
                    token,
                    at,
                    end,
                    early,
                } => {
                    if early {
                        counter!(m::EARLY_TRIGGERS).increment(1);
                    }
                    if matches!(end, FlushEnd::Waiting { .. }) {
                        counter!(m::WAITING_TRIGGERS).increment(1);
                    }
                    if let Some(start) = start {
                        match self.store.replace(conv.ver, &start).await? {
                            Written::Ok => conv = start,
                            // Someone else changed the record; an append starts its own chain
                            // and a flush re-arms its own.
                            Written::Conflict(_) => break end,
                        }
                    }
                    self.trigger.arm(&trigger_for(&conv, token, at), at).await?;
                    break end;
                }
                Step::HandOff(next) => {
                    match self.store.replace(conv.ver, &next).await? {
                        Written::Ok => conv = next,
                        Written::Conflict(latest) => {
                            conflicts += 1;
                            counter!(m::WRITE_CONFLICTS, "op" => "close").increment(1);
                            conv = winner(latest)?;
                            continue;
                        }
                    }
                    if claim.adopts() && handed_off.is_empty() {
                        counter!(m::SWEPT).increment(1);
                    }
                    match self.hand_off_head(conv, cursor.lease_token).await? {
                        Ok((Delivered::Acked(after), done)) => {
                            conv = *after;
                            cursor.handed_off += 1;
                            handed_off.push(done);
                        }
                        Ok((Delivered::LeaseLost, _)) => break FlushEnd::LeaseLost,
                        Err(end) => break end,
                    }
                }
            }
        };
        if end == FlushEnd::Stale {
            counter!(m::STALE_TRIGGERS).increment(1);
        }
        Ok(FlushReport { handed_off, end })
    }

    /// Hands the oldest pending batch of `conv` (leased under `token`) to the sink within its
    /// lease, and records the answer with a write conditional on that lease.
    async fn hand_off_head(
        &self,
        conv: Conversation,
        token: u64,
    ) -> Result<Result<(Delivered, HandedOff), FlushEnd>, FlushError> {
        let Some(head) = conv.pending.first().cloned() else {
            return Ok(Err(FlushEnd::Idle));
        };
        let lease_until = match head.hold {
            Some(crate::window::Hold::Lease { until, .. }) => until,
            _ => self.clock.now(),
        };
        let started = self.clock.now();
        let mut batch = head.to_batch(&conv.key);
        if let Some(seal) = &self.guard {
            let claim = crate::guard::claim_for(&conv.key, &head, self.config.dedupe_horizon);
            batch.reply_guard = Some(seal.reply_guard(&claim));
        }
        let answer = match self
            .config
            .timing
            .call_budget(self.clock.now(), lease_until)
        {
            Some(within) => self.sink.deliver(&batch, within).await,
            // The lease write took so long that no sink call fits in what is left of it.
            None => Err(SinkError::retryable("no time left in the hand-off lease")),
        };
        match answer {
            Ok(acknowledged) => {
                let acked_at = self.clock.now();
                let done = HandedOff {
                    gen: head.gen,
                    batch_id: head.batch_id,
                    reason: head.reason,
                    messages: head.messages.len(),
                    due_at: head.due_at,
                    acked_at,
                };
                let declared = acknowledged.superseded;
                let delivered = self
                    .record_ack(conv, head.gen, token, acked_at, declared)
                    .await?;
                if let Delivered::Acked(_) = delivered {
                    counter!(m::BATCHES, "reason" => head.reason.as_str()).increment(1);
                    counter!(m::MESSAGES_HANDED_OFF).increment(head.messages.len() as u64);
                    histogram!(m::HANDOFF_LAG).record(acked_at.since(head.due_at).as_secs_f64());
                } else {
                    counter!(m::LEASES_LOST).increment(1);
                }
                Ok(Ok((delivered, done)))
            }
            Err(error) => {
                counter!(m::SINK_FAILURES, "kind" => error.kind()).increment(1);
                Ok(Err(self
                    .record_failure(&conv, head.gen, token, error, started)
                    .await))
            }
        }
    }

    /// Marks batch `gen` acknowledged, conditional on lease `token`; retries lost races. The
    /// write moves the batch's ids into the record's list of acknowledged ids; ids it pushes out
    /// of that list while still inside the dedupe horizon get their long-horizon dedupe records
    /// first, in a write of their own before the acknowledgement (from then on only those
    /// records recognise a gateway's resend). A crash between the two writes leaves both (the
    /// ids still in the record, their records written): harmless.
    async fn record_ack(
        &self,
        conv: Conversation,
        gen: u64,
        token: u64,
        now: Millis,
        declared_superseded: bool,
    ) -> Result<Delivered, FlushError> {
        let mut remembered: Vec<String> = Vec::new();
        let mut race = self.retry().over(Some(conv), "ack");
        while let Some((current, attempt)) = race.attempt() {
            let mut next = current.ok_or_else(vanished)?;
            // The hand-off's answer said the bot discarded its reply: honoured as a guard's
            // `superseded` would be (the policy, the bound, something newer), else counted.
            if declared_superseded && !next.is_superseded(gen) {
                let honoured = next.mark_superseded(gen, now);
                if attempt == 0 {
                    let by = if honoured { "answer" } else { "ignored" };
                    counter!(m::SUPERSEDED, "by" => by).increment(1);
                }
            }
            // The ids pushed out; `ack` refuses (and they are dropped) unless the head is batch
            // `gen` under our lease.
            let records =
                next.retire_head_ids(now, self.config.dedupe_horizon, self.config.acked_ids_bytes);
            if !next.ack(gen, token, now) {
                return Ok(Delivered::LeaseLost);
            }
            let unwritten: Vec<_> = records
                .into_iter()
                .filter(|d| !remembered.contains(&d.message_id))
                .collect();
            if !unwritten.is_empty() {
                self.store.remember(&unwritten).await?;
                remembered.extend(unwritten.into_iter().map(|d| d.message_id));
            }
            if race.replace(&next).await? {
                return Ok(Delivered::Acked(Box::new(next)));
            }
        }
        Err(race.contended().into())
    }

    /// After a failed hand-off: a retryable failure holds the batch for a backoff that grows with
    /// its failures (at least the sink's `Retry-After`), a refusal parks it for an operator. The
    /// write is conditional on the lease; if it loses a race, the lease runs out instead.
    async fn record_failure(
        &self,
        conv: &Conversation,
        gen: u64,
        token: u64,
        error: SinkError,
        started: Millis,
    ) -> FlushEnd {
        let now = self.clock.now();
        let mut next = conv.clone();
        let attempt = Attempt {
            at: started.0,
            ms: now.since(started).as_millis() as u64,
            status: error.status(),
            refused: matches!(error, SinkError::Permanent { .. }),
        };
        let (written, end) = match &error {
            SinkError::Retryable { retry_after, .. } => {
                let hold = self.retry_hold(conv.head_failures(), *retry_after);
                let written = next.hold_after_failure(gen, token, now, hold, error.reason());
                let retry_at = now.plus(hold);
                (written, FlushEnd::SinkFailed { error, retry_at })
            }
            SinkError::Permanent { reason, .. } => {
                let written = next.park(gen, token, now, reason);
                counter!(m::BATCHES_PARKED).increment(1);
                let reason = reason.clone();
                (
                    written,
                    FlushEnd::Parked {
                        error: Some(reason),
                    },
                )
            }
        };
        if written {
            next.note_attempt(gen, attempt);
            if let Err(e) = self.store.replace(conv.ver, &next).await {
                tracing::debug!(error = %e, "failure hold not written; the lease runs out instead");
            }
        }
        end
    }

    /// The hold before retrying a batch that failed `failures` times: `retry_min` doubled per
    /// failure, at most `retry_max`, with up to 25% jitter taken off; never shorter than the
    /// sink's own `Retry-After` (capped at [`MAX_RETRY_AFTER`]).
    fn retry_hold(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let min = self.config.retry_min.as_millis() as u64;
        let max = self.config.retry_max.as_millis() as u64;
        let base = min.saturating_mul(1u64 << failures.min(20)).min(max).max(1);
        let jitter = self.clock.random() % (base / 4 + 1);
        let backoff = Duration::from_millis(base - jitter);
        retry_after.map_or(backoff, |ra| backoff.max(ra.min(MAX_RETRY_AFTER)))
    }

    /// When a shell should retry a flush that failed with an error (store or trigger), for the
    /// `attempt`-th time in a row: the same backoff as a failed hand-off.
    pub fn retry_at_after_error(&self, attempt: u32) -> Millis {
        self.clock.now().plus(self.retry_hold(attempt, None))
    }
}
