//! The operations: one port call each, waiting to be executed, and what executing one does to
//! the world (with the faults `inject.rs` decides).

use std::time::Duration;

use crate::batch::Batch;
use crate::key::ConversationKey;
use crate::ports::{
    Acknowledged, Appended, DedupeRecord, SinkError, StoreError, TriggerError, TriggerMsg, Written,
};
use crate::record::TraceEvent;
use crate::time::Millis;
use crate::window::Conversation;

use super::{TaskId, World};

/// One port call, waiting to be executed.
#[derive(Debug)]
pub(crate) enum Op {
    Load(ConversationKey),
    Append {
        expected: Option<u64>,
        next: Box<Conversation>,
    },
    Seen {
        key: ConversationKey,
        message_id: String,
        now: Millis,
    },
    Remember(Vec<DedupeRecord>),
    Replace {
        expected: u64,
        next: Box<Conversation>,
    },
    Due {
        now: Millis,
        limit: usize,
    },
    Arm {
        msg: TriggerMsg,
        at: Millis,
        /// The sender's clock when it computed the delay.
        sent_at: Millis,
    },
    Deliver {
        batch: Box<Batch>,
        started: Millis,
        outcome: SinkFault,
        /// The call's budget (`Sink::deliver`'s `within`): a slower sink is cut off then, as a
        /// real adapter's timeout would.
        within: Duration,
    },
    Sleep(Duration),
    // Operations only the deliberately broken variants use.
    PutIfVersion {
        expected: Option<u64>,
        next: Box<Conversation>,
    },
    PutUnconditionally(Box<Conversation>),
    DedupeAlone {
        dedupe: DedupeRecord,
        now: Millis,
    },
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Load(_) => "load",
            Op::Append { .. } => "append",
            Op::Seen { .. } => "seen",
            Op::Remember(_) => "remember",
            Op::Replace { .. } => "replace",
            Op::Due { .. } => "due",
            Op::Arm { .. } => "arm",
            Op::Deliver { .. } => "deliver",
            Op::Sleep(_) => "sleep",
            Op::PutIfVersion { .. } => "put_if_version",
            Op::PutUnconditionally(_) => "put",
            Op::DedupeAlone { .. } => "dedupe",
        }
    }

    pub(crate) fn key(&self) -> Option<&ConversationKey> {
        match self {
            Op::Load(k) | Op::Seen { key: k, .. } => Some(k),
            Op::Remember(records) => records.first().map(|d| &d.key),
            Op::Append { next, .. }
            | Op::Replace { next, .. }
            | Op::PutIfVersion { next, .. }
            | Op::PutUnconditionally(next) => Some(&next.key),
            Op::Arm { msg, .. } => Some(&msg.key),
            Op::Deliver { batch, .. } => Some(&batch.conversation),
            Op::DedupeAlone { dedupe, .. } => Some(&dedupe.key),
            Op::Due { .. } | Op::Sleep(_) => None,
        }
    }
}

/// How a sink call will go, decided when it starts (a timeout takes longer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkFault {
    None,
    /// Refused: not received.
    Error,
    /// No answer in time; the receiver may or may not have the batch.
    Timeout {
        received: bool,
    },
    /// Received and accepted, but lull was told it failed.
    LostAck,
    /// Takes `Faults::sink_slow_call` (longer than the lease, say), then succeeds.
    Slow,
    /// The receiver has the batch and answers after its AI step (`World::answer_call`), its
    /// answer lost on the way when `lost_ack`; executed at the call's budget instead, it timed
    /// out (received).
    AiStep {
        lost_ack: bool,
    },
}

/// The result of an executed operation.
#[derive(Debug)]
pub(crate) enum OpResult {
    Load(Result<Option<Box<Conversation>>, StoreError>),
    Appended(Result<Appended, StoreError>),
    Seen(Result<Option<DedupeRecord>, StoreError>),
    Remembered(Result<(), StoreError>),
    Written(Result<Written, StoreError>),
    Due(Result<Vec<ConversationKey>, StoreError>),
    Armed(Result<(), TriggerError>),
    Delivered(Result<Acknowledged, SinkError>),
    Unit,
}

impl World {
    /// A write of `next` landed for `task`: the index learns its due time (after a lag), and
    /// when the task is a webhook request, its message is stored now.
    fn landed(&mut self, task: TaskId, next: &Conversation, stores_message: bool) {
        let lag = self.index_lag.as_millis() as u64;
        let at = self.now.plus(self.between(0, lag));
        self.index.update(&next.key, next.due_at(), at);
        let now = self.now;
        for b in &next.pending {
            self.rec.guard.closed_at.entry(b.batch_id).or_insert(now);
        }
        if let Some(batch) = self.tasks.get(&task).and_then(|t| t.guard) {
            self.rec.guard.marks.entry(batch).or_default().push(now);
        }
        if let (true, Some(a)) = (
            stores_message,
            self.tasks.get(&task).and_then(|t| t.attempt),
        ) {
            let now = self.now;
            self.rec.landed(a.msg, a.arrived, now, a.policy);
        }
    }

    /// Task `task` read the record now (a guard's answer is made from its last read).
    fn read_by(&mut self, task: TaskId) {
        let now = self.now;
        if let Some(t) = self.tasks.get_mut(&task) {
            t.read_at = Some(now);
        }
    }

    /// Executes task `task`'s operation against the simulated world, with faults.
    pub fn execute(&mut self, task: TaskId, op: Op, started: Millis) -> OpResult {
        let now = self.now;
        if let Some(k) = op.key() {
            let name = op.name();
            self.rec.trace(k, now, TraceEvent::Op(name));
        }
        if !matches!(op, Op::Load(_) | Op::Due { .. } | Op::Sleep(_)) {
            if let Some(t) = self.tasks.get_mut(&task) {
                t.effects += 1;
            }
        }
        let store_fault = self.faults.store_error;
        match op {
            Op::Load(key) => {
                if let Some(e) = self.store_refuses(Some(&key), None) {
                    return OpResult::Load(Err(e));
                }
                if self.fault(store_fault) {
                    self.rec
                        .fault(Some(&key), now, TraceEvent::Fault("store error"));
                    return OpResult::Load(Err(StoreError::Unavailable("injected".into())));
                }
                self.read_by(task);
                OpResult::Load(Ok(self.store.load_now(&key).map(Box::new)))
            }
            Op::Append { expected, next } => {
                if let Some(e) = self.store_refuses(Some(&next.key), Some(&next)) {
                    return OpResult::Written(Err(e));
                }
                let failed = self.fault(store_fault);
                // Half the failures land anyway (a timeout after the write).
                if failed {
                    self.rec
                        .fault(Some(&next.key), now, TraceEvent::Fault("store error"));
                    if !self.rng.bool() {
                        return OpResult::Written(Err(StoreError::Unavailable("injected".into())));
                    }
                }
                let r = self.store.append_now(expected, &next);
                if matches!(r, Ok(Written::Ok)) {
                    self.landed(task, &next, true);
                }
                if failed {
                    return OpResult::Written(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Written(r)
            }
            Op::Seen {
                key,
                message_id,
                now: at,
            } => {
                if let Some(e) = self.store_refuses(Some(&key), None) {
                    return OpResult::Seen(Err(e));
                }
                if self.fault(store_fault) {
                    self.rec
                        .fault(Some(&key), now, TraceEvent::Fault("store error"));
                    return OpResult::Seen(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Seen(Ok(self.store.seen_now(&key, &message_id, at)))
            }
            Op::Remember(records) => {
                let key = records.first().map(|d| d.key.clone());
                if let Some(e) = self.store_refuses(key.as_ref(), None) {
                    return OpResult::Remembered(Err(e));
                }
                let failed = self.fault(store_fault);
                // Half the failures land anyway (a timeout after the write).
                if failed {
                    self.rec
                        .fault(key.as_ref(), now, TraceEvent::Fault("store error"));
                    if !self.rng.bool() {
                        return OpResult::Remembered(Err(StoreError::Unavailable(
                            "injected".into(),
                        )));
                    }
                }
                let r = self.store.remember_now(&records);
                if failed {
                    return OpResult::Remembered(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Remembered(r)
            }
            Op::Replace { expected, next } => {
                if let Some(e) = self.store_refuses(Some(&next.key), Some(&next)) {
                    return OpResult::Written(Err(e));
                }
                let failed = self.fault(store_fault);
                if failed {
                    self.rec
                        .fault(Some(&next.key), now, TraceEvent::Fault("store error"));
                    if !self.rng.bool() {
                        return OpResult::Written(Err(StoreError::Unavailable("injected".into())));
                    }
                }
                let r = self.store.replace_now(expected, &next);
                if matches!(r, Ok(Written::Ok)) {
                    self.landed(task, &next, false);
                }
                if r.is_ok() {
                    self.read_by(task);
                }
                if failed {
                    return OpResult::Written(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Written(r)
            }
            Op::Due { now: at, limit } => {
                if let Some(e) = self.store_refuses(None, None) {
                    return OpResult::Due(Err(e));
                }
                OpResult::Due(Ok(self.index.due(at, limit)))
            }
            Op::Arm { msg, at, sent_at } => OpResult::Armed(self.arm(msg, at, sent_at)),
            Op::Deliver {
                batch,
                started: s,
                outcome,
                ..
            } => {
                let received = match outcome {
                    // Received when the call started; its bot did not answer in time.
                    SinkFault::AiStep { .. } => true,
                    _ if self.sink_down => false,
                    SinkFault::None | SinkFault::LostAck | SinkFault::Slow => true,
                    SinkFault::Error => false,
                    SinkFault::Timeout { received } => received,
                };
                let acked = received
                    && matches!(outcome, SinkFault::None | SinkFault::Slow)
                    && !self.sink_down;
                self.rec.delivery(&batch, s, now, received, acked);
                if acked {
                    self.generate_after_ack(&batch, s);
                    OpResult::Delivered(Ok(Acknowledged::default()))
                } else {
                    OpResult::Delivered(Err(SinkError::retryable("injected sink failure")))
                }
            }
            Op::Sleep(_) => {
                let _ = started;
                OpResult::Unit
            }
            Op::PutIfVersion { expected, next } => {
                let r = self.store.put_if_version(expected, &next);
                if r == Written::Ok {
                    self.landed(task, &next, true);
                }
                OpResult::Written(Ok(r))
            }
            Op::PutUnconditionally(next) => {
                self.store.put_unconditionally(&next);
                self.landed(task, &next, true);
                OpResult::Unit
            }
            Op::DedupeAlone { dedupe, now: at } => {
                let written = self.store.put_dedupe_alone(&dedupe, at);
                OpResult::Appended(Ok(if written {
                    Appended::Ok
                } else {
                    Appended::Duplicate(dedupe)
                }))
            }
        }
    }

    /// The replaced design's cleanup deletes a record with no condition.
    pub fn delete(&mut self, key: &ConversationKey) {
        self.store.delete_unconditionally(key);
        let at = self.now;
        self.index.update(key, None, at);
    }
}
