//! The deterministic executor: a virtual clock, an event queue, and the simulated ports.
//!
//! The protocol's async functions run unchanged. Every port call becomes an operation that is
//! executed later, at a virtual time chosen by the seeded generator, so operations of different
//! tasks interleave; one at a time, in a reproducible order. A task may have several calls in
//! flight (`join!`, `select!` in the code under test); dropping a call's future cancels it (a sink
//! call in flight is then abandoned: the receiver may have the batch). A crash is the executor
//! dropping a task between two operations (before an operation lands, or after it landed but
//! before the task saw the result). Nothing here reads the wall clock or an OS random source: one
//! seed, one run.
//!
//! The world also does what the real one does to lull: each task (a process on some host) reads a
//! clock off by a bounded offset; the sweep's due index lags the table (`index.rs`); the store
//! throttles in bursts and refuses items over DynamoDB's 400 KB; sink calls can outlive the lease.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::batch::Batch;
use crate::key::ConversationKey;
use crate::memory::MemoryStore;
use crate::ports::{
    Appended, Clock, DedupeRecord, Sink, SinkError, StoreError, Trigger, TriggerError, TriggerMsg,
    WindowStore, Written,
};
use crate::time::Millis;
use crate::window::Conversation;

use super::faults::Faults;
use super::index::LaggedIndex;
use super::record::{Recorder, TraceEvent};
use crate::policy::Policy;

/// DynamoDB's item size limit: a conversation record larger than this cannot be written.
pub(crate) const ITEM_LIMIT: usize = 400 * 1024;

pub(crate) type TaskId = u64;
/// One submitted port call. A task may have several in flight (a `select!` or `join!` in the
/// code under test); dropping a call's future cancels it.
pub(crate) type OpId = u64;

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
    Delivered(Result<(), SinkError>),
    Unit,
}

/// What happens at a virtual instant.
#[derive(Debug)]
pub(crate) enum Event {
    /// A gateway POSTs message `msg` (first attempt or a retry).
    Arrive { msg: usize },
    /// A gateway POSTs presence or operator event `signal` (never retried: advisory).
    Signal { signal: usize },
    /// Task `task`'s pending operation is executed.
    OpReady { op: OpId },
    /// The trigger queue delivers message `sqs` to a flush worker.
    TriggerDeliver { sqs: u64 },
    /// The periodic sweep runs.
    SweepTick,
    /// The sink goes down or comes back.
    SinkOutage { down: bool },
    /// The replaced design's cleanup deletes a buffer 30 s after processing it.
    Cleanup { key: ConversationKey },
}

/// A trigger in the simulated queue (SQS standard: at least once, delayed, with a DLQ).
#[derive(Debug)]
pub(crate) struct QueuedTrigger {
    pub msg: TriggerMsg,
    pub receives: u32,
}

/// One webhook request in flight: which message, when the world delivered it, under which
/// tenant policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    pub msg: usize,
    pub arrived: Millis,
    pub policy: Policy,
}

/// Per running task: its host's clock offset, the request it serves, and whether it has had any
/// effect on the world yet (a write, a trigger sent, a sink call).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TaskState {
    pub offset_ms: i64,
    pub attempt: Option<Attempt>,
    pub effects: u32,
}

/// Everything the simulated ports touch, behind one lock.
pub(crate) struct World {
    pub now: Millis,
    pub rng: fastrand::Rng,
    pub store: MemoryStore,
    pub faults: Faults,
    pub draining: bool,
    pub sink_down: bool,
    pub rec: Recorder,
    pub queue: BTreeMap<u64, QueuedTrigger>,
    pub dlq: u64,
    /// Store calls fail as throttled (half of them) until then.
    pub throttled_until: Millis,
    /// Largest clock offset of a host, either way (half the skew between two hosts).
    pub max_offset_ms: u64,
    /// Longest lag of the sweep's index behind the table.
    pub index_lag: Duration,
    pub tasks: BTreeMap<TaskId, TaskState>,
    index: LaggedIndex,
    seq: u64,
    heap: BinaryHeap<Reverse<(Millis, u64)>>,
    events: BTreeMap<u64, Event>,
    current: Option<TaskId>,
    /// Submitted calls not executed yet: their task, the call, when it was made.
    ops: BTreeMap<OpId, (TaskId, Op, Millis)>,
    /// Executed calls whose task has not taken the result yet.
    results: BTreeMap<OpId, (TaskId, OpResult)>,
    next_op: OpId,
}

impl World {
    pub fn new(seed: u64, start: Millis, faults: Faults, rec: Recorder) -> World {
        World {
            now: start,
            rng: fastrand::Rng::with_seed(seed),
            store: MemoryStore::new(),
            faults,
            draining: false,
            sink_down: false,
            rec,
            queue: BTreeMap::new(),
            dlq: 0,
            throttled_until: Millis(0),
            max_offset_ms: 0,
            index_lag: Duration::ZERO,
            tasks: BTreeMap::new(),
            index: LaggedIndex::default(),
            seq: 0,
            heap: BinaryHeap::new(),
            events: BTreeMap::new(),
            current: None,
            ops: BTreeMap::new(),
            results: BTreeMap::new(),
            next_op: 0,
        }
    }

    /// Schedules `ev` at `at` (never in the past).
    pub fn schedule(&mut self, at: Millis, ev: Event) {
        self.seq += 1;
        let at = at.max(self.now);
        self.heap.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// Pops the next event, advancing the clock to it.
    pub fn pop(&mut self) -> Option<(Millis, Event)> {
        let Reverse((at, seq)) = self.heap.pop()?;
        self.now = at;
        self.events.remove(&seq).map(|ev| (at, ev))
    }

    pub fn set_current(&mut self, task: Option<TaskId>) {
        self.current = task;
    }

    /// A task starts on some host: it gets that host's clock offset.
    pub fn begin_task(&mut self, task: TaskId, attempt: Option<Attempt>) {
        let m = self.max_offset_ms as i64;
        let offset_ms = if m > 0 { self.rng.i64(-m..=m) } else { 0 };
        self.tasks.insert(
            task,
            TaskState {
                offset_ms,
                attempt,
                effects: 0,
            },
        );
    }

    /// The current task's clock: the world's, off by its host's offset.
    pub fn host_now(&self) -> Millis {
        let off = self
            .current
            .and_then(|t| self.tasks.get(&t))
            .map_or(0, |t| t.offset_ms);
        Millis(self.now.0.saturating_add_signed(off))
    }

    /// A uniformly random duration in `[lo, hi]` ms.
    pub fn between(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.u64(lo..=hi))
    }

    /// True with probability `p` while faults are on.
    pub fn fault(&mut self, p: f64) -> bool {
        !self.draining && p > 0.0 && self.rng.f64() < p
    }

    /// Registers an operation of the current task and schedules its execution.
    fn submit(&mut self, mut op: Op) -> Option<OpId> {
        let task = self.current?;
        let latency = match &mut op {
            Op::Sleep(d) => *d,
            Op::Arm { .. } => self.between(3, 25),
            Op::Deliver {
                outcome, within, ..
            } => {
                let takes = match outcome {
                    SinkFault::Timeout { .. } => self.faults.sink_timeout,
                    SinkFault::Slow => self.faults.sink_slow_call,
                    _ => self.between(20, 400),
                };
                if takes > *within {
                    // The adapter gives up at `within`; the receiver may or may not have it (a
                    // slow one has it).
                    let received = *outcome == SinkFault::Slow || self.rng.bool();
                    *outcome = SinkFault::Timeout { received };
                    *within
                } else {
                    takes
                }
            }
            _ => self.between(1, 15),
        };
        let at = self.now.plus(latency);
        self.next_op += 1;
        let id = self.next_op;
        self.ops.insert(id, (task, op, self.now));
        self.schedule(at, Event::OpReady { op: id });
        Some(id)
    }

    /// Removes a pending operation to execute it: its task, the call, when it was made.
    pub fn take_op(&mut self, op: OpId) -> Option<(TaskId, Op, Millis)> {
        self.ops.remove(&op)
    }

    /// The task ended (finished or crashed): its calls are forgotten; what it was.
    pub fn end_task(&mut self, task: TaskId) -> TaskState {
        self.ops.retain(|_, (t, _, _)| *t != task);
        self.results.retain(|_, (t, _)| *t != task);
        self.tasks.remove(&task).unwrap_or_default()
    }

    pub fn put_result(&mut self, op: OpId, task: TaskId, r: OpResult) {
        self.results.insert(op, (task, r));
    }

    /// The code under test dropped call `op` before it finished (it lost a `select!`): a sink
    /// call in flight is abandoned by lull now; the receiver may have the batch.
    fn cancel(&mut self, op: OpId) {
        self.results.remove(&op);
        if let Some((
            _,
            Op::Deliver {
                batch,
                started,
                outcome,
                ..
            },
            _,
        )) = self.ops.remove(&op)
        {
            let received = !self.sink_down && outcome != SinkFault::Error;
            let now = self.now;
            self.rec.delivery(&batch, started, now, received, false);
        }
    }

    /// A store call refused before it lands: throttled, or an item over the size limit.
    fn store_refuses(
        &mut self,
        key: Option<&ConversationKey>,
        next: Option<&Conversation>,
    ) -> Option<StoreError> {
        if self.now < self.throttled_until && !self.draining && self.rng.bool() {
            let now = self.now;
            self.rec
                .fault(key, now, TraceEvent::Fault("store throttled"));
            return Some(StoreError::Throttled(
                "injected ProvisionedThroughputExceeded".into(),
            ));
        }
        let size = next.map_or(0, item_size);
        if size > ITEM_LIMIT {
            self.rec.item_limit_hits += 1;
            if let Some(c) = next {
                let now = self.now;
                self.rec
                    .trace(&c.key, now, TraceEvent::Fault("item over 400 KB refused"));
            }
            return Some(StoreError::TooLarge(format!(
                "item of {size} bytes over the {ITEM_LIMIT}-byte limit (ValidationException)"
            )));
        }
        None
    }

    /// A write of `next` landed for `task`: the index learns its due time (after a lag), and
    /// when the task is a webhook request, its message is stored now.
    fn landed(&mut self, task: TaskId, next: &Conversation, stores_message: bool) {
        let lag = self.index_lag.as_millis() as u64;
        let at = self.now.plus(self.between(0, lag));
        self.index.update(&next.key, next.due_at(), at);
        if let (true, Some(a)) = (
            stores_message,
            self.tasks.get(&task).and_then(|t| t.attempt),
        ) {
            let now = self.now;
            self.rec.landed(a.msg, a.arrived, now, a.policy);
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
                    OpResult::Delivered(Ok(()))
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

    /// SQS SendMessage with DelaySeconds (computed on the sender's clock, `sent_at`) rounded up
    /// to whole seconds (never early), clamped to SQS's 900 s maximum, plus polling slack; and
    /// the faults: error, lost, duplicated, late, early.
    fn arm(&mut self, msg: TriggerMsg, at: Millis, sent_at: Millis) -> Result<(), TriggerError> {
        let f = self.faults;
        let now = self.now;
        if self.fault(f.trigger_error) {
            self.rec.fault(
                Some(&msg.key),
                now,
                TraceEvent::Fault("trigger send failed"),
            );
            return Err(TriggerError("injected send failure".into()));
        }
        if self.fault(f.trigger_lost) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger lost"));
            return Ok(());
        }
        let delay_s = at.0.saturating_sub(sent_at.0).div_ceil(1000).min(900);
        let mut fire = self
            .now
            .plus(Duration::from_secs(delay_s) + self.between(0, 200));
        if self.fault(f.trigger_late) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger late"));
            fire = fire.plus(self.between(1_000, 60_000));
        } else if self.fault(f.trigger_early) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger early"));
            fire = Millis(fire.0.saturating_sub(self.rng.u64(100..=3_000)));
        }
        let copies = if self.fault(f.trigger_duplicated) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger duplicated"));
            2
        } else {
            1
        };
        for i in 0..copies {
            self.seq += 1;
            let id = self.seq;
            self.queue.insert(
                id,
                QueuedTrigger {
                    msg: msg.clone(),
                    receives: 0,
                },
            );
            let when = if i == 0 {
                fire
            } else {
                fire.plus(self.between(0, 5_000))
            };
            self.schedule(when, Event::TriggerDeliver { sqs: id });
        }
        Ok(())
    }

    /// Decides how a sink call starting now will go.
    fn sink_outcome(&mut self) -> SinkFault {
        let f = self.faults;
        if self.fault(f.sink_error) {
            self.rec.faults += 1;
            SinkFault::Error
        } else if self.fault(f.sink_timeout_rate) {
            self.rec.faults += 1;
            SinkFault::Timeout {
                received: self.rng.bool(),
            }
        } else if self.fault(f.sink_lost_ack) {
            self.rec.faults += 1;
            SinkFault::LostAck
        } else if self.fault(f.sink_slow) {
            self.rec.faults += 1;
            SinkFault::Slow
        } else {
            SinkFault::None
        }
    }
}

/// The stored size of a conversation item, as DynamoDB counts it (the record's JSON plus its key
/// and index attributes), serialised only when it could be near the limit: a pending batch's
/// own fields take far less than 1 KB beside its messages' stored bytes.
pub(crate) fn item_size(c: &Conversation) -> usize {
    let bound = c.stored_bytes() as usize + 1024 * (c.pending.len() + 4);
    if bound < ITEM_LIMIT {
        return bound;
    }
    /// Counts what is written, keeping nothing.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer(&mut n, c) {
        Ok(()) => n.0 + c.key.storage_key().len() + 64,
        Err(_) => usize::MAX,
    }
}

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// The simulated ports: all four traits over one shared world.
#[derive(Clone)]
pub(crate) struct SimPorts {
    pub world: Arc<Mutex<World>>,
}

impl SimPorts {
    /// Submits `op` for the current task and waits for the executor to run it.
    pub(crate) fn call(&self, op: Op) -> OpCall {
        OpCall {
            world: self.world.clone(),
            op: Some(op),
            id: None,
        }
    }
}

/// The future of one port call.
pub(crate) struct OpCall {
    world: Arc<Mutex<World>>,
    op: Option<Op>,
    /// Set once submitted; cleared once its result was taken.
    id: Option<OpId>,
}

impl Future for OpCall {
    type Output = OpResult;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<OpResult> {
        let this = self.get_mut();
        let mut w = lock(&this.world);
        if let Some(op) = this.op.take() {
            this.id = w.submit(op);
            return Poll::Pending;
        }
        match this.id.and_then(|id| w.results.remove(&id)) {
            Some((_, r)) => {
                this.id = None;
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for OpCall {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.world).cancel(id);
        }
    }
}

fn mismatch<T>(what: &str, r: OpResult) -> T {
    // The executor answers each operation with its own result kind; anything else is a bug in
    // the simulator itself, not in the protocol under test.
    panic!("simulator bug: {what} answered with {r:?}")
}

impl WindowStore for SimPorts {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        match self.call(Op::Load(key.clone())).await {
            OpResult::Load(r) => r.map(|c| c.map(|b| *b)),
            r => mismatch("load", r),
        }
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        let op = Op::Append {
            expected,
            next: Box::new(next.clone()),
        };
        match self.call(op).await {
            OpResult::Written(r) => r,
            r => mismatch("append", r),
        }
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        let op = Op::Seen {
            key: key.clone(),
            message_id: message_id.to_string(),
            now,
        };
        match self.call(op).await {
            OpResult::Seen(r) => r,
            r => mismatch("seen", r),
        }
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        match self.call(Op::Remember(records.to_vec())).await {
            OpResult::Remembered(r) => r,
            r => mismatch("remember", r),
        }
    }

    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        let op = Op::Replace {
            expected,
            next: Box::new(next.clone()),
        };
        match self.call(op).await {
            OpResult::Written(r) => r,
            r => mismatch("replace", r),
        }
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        match self.call(Op::Due { now, limit }).await {
            OpResult::Due(r) => r,
            r => mismatch("due", r),
        }
    }
}

impl Trigger for SimPorts {
    async fn arm(&self, msg: &TriggerMsg, at: Millis) -> Result<(), TriggerError> {
        let sent_at = lock(&self.world).host_now();
        match self
            .call(Op::Arm {
                msg: msg.clone(),
                at,
                sent_at,
            })
            .await
        {
            OpResult::Armed(r) => r,
            r => mismatch("arm", r),
        }
    }
}

impl Sink for SimPorts {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<(), SinkError> {
        let (started, outcome) = {
            let mut w = lock(&self.world);
            let o = w.sink_outcome();
            let now = w.now;
            let ev = TraceEvent::SinkCall {
                gen: batch.generation,
                messages: batch.messages.len(),
            };
            w.rec.trace(&batch.conversation, now, ev);
            (now, o)
        };
        let op = Op::Deliver {
            batch: Box::new(batch.clone()),
            started,
            outcome,
            within,
        };
        match self.call(op).await {
            OpResult::Delivered(r) => r,
            r => mismatch("deliver", r),
        }
    }
}

impl Clock for SimPorts {
    fn now(&self) -> Millis {
        lock(&self.world).host_now()
    }

    async fn sleep(&self, d: Duration) {
        let _ = self.call(Op::Sleep(d)).await;
    }

    fn random(&self) -> u64 {
        lock(&self.world).rng.u64(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Runs the world's events for task 1 until `fut` is ready (what the driver does).
    fn drive<F: Future>(world: &Arc<Mutex<World>>, fut: Pin<&mut F>) -> F::Output {
        let mut fut = fut;
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            lock(world).set_current(Some(1));
            let r = fut.as_mut().poll(&mut cx);
            lock(world).set_current(None);
            if let Poll::Ready(out) = r {
                return out;
            }
            let mut w = lock(world);
            let Some((_, Event::OpReady { op })) = w.pop() else {
                panic!("nothing left to run");
            };
            if let Some((task, call, started)) = w.take_op(op) {
                let r = w.execute(task, call, started);
                w.put_result(op, task, r);
            }
        }
    }

    #[test]
    fn a_task_may_have_calls_in_flight_together_and_a_dropped_call_is_cancelled() {
        let rec = Recorder::default();
        let world = Arc::new(Mutex::new(World::new(1, Millis(0), Faults::none(), rec)));
        let ports = SimPorts {
            world: world.clone(),
        };
        lock(&world).begin_task(1, None);
        let both = async {
            tokio::join!(
                ports.sleep(Duration::from_millis(10)),
                ports.sleep(Duration::from_millis(20))
            )
        };
        drive(&world, std::pin::pin!(both));
        assert_eq!(lock(&world).now, Millis(20), "both ran, concurrently");

        let mut call = Box::pin(ports.call(Op::Sleep(Duration::from_millis(5))));
        lock(&world).set_current(Some(1));
        let first = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        lock(&world).set_current(None);
        assert!(first.is_pending());
        assert_eq!(lock(&world).ops.len(), 1);
        drop(call);
        assert!(lock(&world).ops.is_empty(), "the dropped call is cancelled");
    }
}
