//! The deterministic executor: a virtual clock, an event queue, and the simulated ports.
//!
//! The protocol's async functions run unchanged. Every port call becomes an operation that is
//! executed later, at a virtual time chosen by the seeded generator, so operations of different
//! tasks interleave; one at a time, in a reproducible order. A crash is the executor dropping a
//! task between two operations (before an operation lands, or after it landed but before the task
//! saw the result). Nothing here reads the wall clock or an OS random source: one seed, one run.

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
use super::record::{Recorder, TraceEvent};

pub(crate) type TaskId = u64;

/// One port call, waiting to be executed.
#[derive(Debug)]
pub(crate) enum Op {
    Load(ConversationKey),
    Append {
        expected: Option<u64>,
        next: Box<Conversation>,
        dedupe: DedupeRecord,
        now: Millis,
    },
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
    fn name(&self) -> &'static str {
        match self {
            Op::Load(_) => "load",
            Op::Append { .. } => "append",
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

    fn key(&self) -> Option<&ConversationKey> {
        match self {
            Op::Load(k) => Some(k),
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
}

/// The result of an executed operation.
#[derive(Debug)]
pub(crate) enum OpResult {
    Load(Result<Option<Conversation>, StoreError>),
    Appended(Result<Appended, StoreError>),
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
    /// Task `task`'s pending operation is executed.
    OpReady { task: TaskId },
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
    seq: u64,
    heap: BinaryHeap<Reverse<(Millis, u64)>>,
    events: BTreeMap<u64, Event>,
    current: Option<TaskId>,
    ops: BTreeMap<TaskId, (Op, Millis)>,
    results: BTreeMap<TaskId, OpResult>,
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
            seq: 0,
            heap: BinaryHeap::new(),
            events: BTreeMap::new(),
            current: None,
            ops: BTreeMap::new(),
            results: BTreeMap::new(),
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

    /// A uniformly random duration in `[lo, hi]` ms.
    pub fn between(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.u64(lo..=hi))
    }

    /// True with probability `p` while faults are on.
    pub fn fault(&mut self, p: f64) -> bool {
        !self.draining && p > 0.0 && self.rng.f64() < p
    }

    /// Registers the current task's next operation and schedules its execution.
    fn submit(&mut self, mut op: Op) -> Option<TaskId> {
        let task = self.current?;
        let latency = match &mut op {
            Op::Sleep(d) => *d,
            Op::Arm { .. } => self.between(3, 25),
            Op::Deliver {
                outcome, within, ..
            } => {
                let takes = match outcome {
                    SinkFault::Timeout { .. } => self.faults.sink_timeout,
                    _ => self.between(20, 400),
                };
                if takes > *within {
                    // The adapter gives up at `within`; the receiver may or may not have it.
                    *outcome = SinkFault::Timeout {
                        received: self.rng.bool(),
                    };
                    *within
                } else {
                    takes
                }
            }
            _ => self.between(1, 15),
        };
        let at = self.now.plus(latency);
        self.ops.insert(task, (op, self.now));
        self.schedule(at, Event::OpReady { task });
        Some(task)
    }

    /// Removes a task's pending operation (the task is being executed or dropped).
    pub fn take_op(&mut self, task: TaskId) -> Option<(Op, Millis)> {
        self.ops.remove(&task)
    }

    pub fn forget_task(&mut self, task: TaskId) {
        self.ops.remove(&task);
        self.results.remove(&task);
    }

    pub fn put_result(&mut self, task: TaskId, r: OpResult) {
        self.results.insert(task, r);
    }

    /// Executes an operation against the simulated world, with faults.
    pub fn execute(&mut self, op: Op, started: Millis) -> OpResult {
        let now = self.now;
        if let Some(k) = op.key() {
            let name = op.name();
            self.rec.trace(k, now, TraceEvent::Op(name));
        }
        let store_fault = self.faults.store_error;
        match op {
            Op::Load(key) => {
                if self.fault(store_fault) {
                    self.rec.faults += 1;
                    return OpResult::Load(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Load(Ok(self.store.load_now(&key)))
            }
            Op::Append {
                expected,
                next,
                dedupe,
                now: at,
            } => {
                if self.fault(store_fault) {
                    self.rec.faults += 1;
                    // Half the failures land anyway (a timeout after the write).
                    if self.rng.bool() {
                        let _ = self.store.append_now(expected, &next, &dedupe, at);
                    }
                    return OpResult::Appended(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Appended(Ok(self.store.append_now(expected, &next, &dedupe, at)))
            }
            Op::Replace { expected, next } => {
                if self.fault(store_fault) {
                    self.rec.faults += 1;
                    if self.rng.bool() {
                        let _ = self.store.replace_now(expected, &next);
                    }
                    return OpResult::Written(Err(StoreError::Unavailable("injected".into())));
                }
                OpResult::Written(Ok(self.store.replace_now(expected, &next)))
            }
            Op::Due { now: at, limit } => OpResult::Due(Ok(self.store.due_now(at, limit))),
            Op::Arm { msg, at } => OpResult::Armed(self.arm(msg, at)),
            Op::Deliver {
                batch,
                started: s,
                outcome,
                ..
            } => {
                let received = match outcome {
                    _ if self.sink_down => false,
                    SinkFault::None | SinkFault::LostAck => true,
                    SinkFault::Error => false,
                    SinkFault::Timeout { received } => received,
                };
                let acked = received && outcome == SinkFault::None && !self.sink_down;
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
                OpResult::Written(Ok(self.store.put_if_version(expected, &next)))
            }
            Op::PutUnconditionally(next) => {
                self.store.put_unconditionally(&next);
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

    /// SQS SendMessage with DelaySeconds rounded up to whole seconds (never early), clamped to
    /// 900 s, plus polling slack; and the faults: error, lost, duplicated, late, early.
    fn arm(&mut self, msg: TriggerMsg, at: Millis) -> Result<(), TriggerError> {
        let f = self.faults;
        if self.fault(f.trigger_error) {
            self.rec.faults += 1;
            self.rec
                .trace(&msg.key, self.now, TraceEvent::Fault("trigger send failed"));
            return Err(TriggerError("injected send failure".into()));
        }
        if self.fault(f.trigger_lost) {
            self.rec.faults += 1;
            self.rec
                .trace(&msg.key, self.now, TraceEvent::Fault("trigger lost"));
            return Ok(());
        }
        let delay_s = at.0.saturating_sub(self.now.0).div_ceil(1000).min(900);
        let mut fire = self
            .now
            .plus(Duration::from_secs(delay_s) + self.between(0, 200));
        if self.fault(f.trigger_late) {
            self.rec.faults += 1;
            fire = fire.plus(self.between(1_000, 60_000));
        } else if self.fault(f.trigger_early) {
            self.rec.faults += 1;
            fire = Millis(fire.0.saturating_sub(self.rng.u64(100..=3_000)));
        }
        let copies = if self.fault(f.trigger_duplicated) {
            self.rec.faults += 1;
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
        } else {
            SinkFault::None
        }
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
            task: None,
        }
    }
}

/// The future of one port call.
pub(crate) struct OpCall {
    world: Arc<Mutex<World>>,
    op: Option<Op>,
    task: Option<TaskId>,
}

impl Future for OpCall {
    type Output = OpResult;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<OpResult> {
        let this = self.get_mut();
        let mut w = lock(&this.world);
        if let Some(op) = this.op.take() {
            this.task = w.submit(op);
            return Poll::Pending;
        }
        match this.task.and_then(|t| w.results.remove(&t)) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
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
            OpResult::Load(r) => r,
            r => mismatch("load", r),
        }
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
        dedupe: &DedupeRecord,
        now: Millis,
    ) -> Result<Appended, StoreError> {
        let op = Op::Append {
            expected,
            next: Box::new(next.clone()),
            dedupe: dedupe.clone(),
            now,
        };
        match self.call(op).await {
            OpResult::Appended(r) => r,
            r => mismatch("append", r),
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
        match self
            .call(Op::Arm {
                msg: msg.clone(),
                at,
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
            (w.now, o)
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
        lock(&self.world).now
    }

    async fn sleep(&self, d: Duration) {
        let _ = self.call(Op::Sleep(d)).await;
    }

    fn random(&self) -> u64 {
        lock(&self.world).rng.u64(..)
    }
}
