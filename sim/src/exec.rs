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
//!
//! One concern per file: the world and its scheduler here; the operations and what each does to
//! the world (`op.rs`); the faults the world injects (`inject.rs`); the four ports over the world
//! (`ports.rs`).

mod answer;
mod inject;
mod op;
mod ports;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::key::ConversationKey;
use crate::memory::MemoryStore;
use crate::ports::TriggerMsg;
use crate::time::Millis;

use uuid::Uuid;

use super::ai_step::{BotCall, BotMode};
use super::faults::Faults;
use super::index::LaggedIndex;
use super::record::Recorder;
use crate::policy::Policy;

pub(crate) use inject::item_size;
pub(crate) use op::{Op, OpResult, SinkFault};
pub(crate) use ports::SimPorts;

pub(crate) type TaskId = u64;
/// One submitted port call. A task may have several in flight (a `select!` or `join!` in the
/// code under test); dropping a call's future cancels it.
pub(crate) type OpId = u64;

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
    /// The bot finished generating its reply to a batch (`ai_step.rs`).
    Generated { call: Box<BotCall> },
    /// The bot GETs the batch's reply guard (again).
    Ask { call: Box<BotCall> },
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
    /// A reply guard request: the batch it asks about.
    pub guard: Option<Uuid>,
    /// The world's clock at the task's last store read (a load, or a conditional write whose
    /// answer carries the record).
    pub read_at: Option<Millis>,
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
    /// The bot behind the sink of each conversation; `None`: no AI step (the sink answers
    /// at once and nobody asks a guard).
    pub bots: Option<Vec<BotMode>>,
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
            bots: None,
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
                ..TaskState::default()
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

    /// Registers an operation of the current task and schedules its execution.
    fn submit(&mut self, mut op: Op) -> Option<OpId> {
        let task = self.current?;
        let mut generates = None;
        let latency = match &mut op {
            Op::Deliver {
                batch,
                outcome,
                within,
                started,
            } if matches!(outcome, SinkFault::None | SinkFault::LostAck)
                && !self.sink_down
                && self.answers_after_ai_step(batch) =>
            {
                // The receiver has the batch and answers after its AI step: the call ends then
                // (`answer_call`), or at its budget as a timeout.
                let generation = self.generation();
                *outcome = SinkFault::AiStep {
                    lost_ack: *outcome == SinkFault::LostAck,
                };
                generates =
                    (generation < *within).then(|| (generation, self.bot_call(batch, *started)));
                *within
            }
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
        if let Some((generation, Some(mut call))) = generates {
            call.op = Some(id);
            let at = self.now.plus(generation);
            self.schedule(
                at,
                Event::Generated {
                    call: Box::new(call),
                },
            );
        }
        Some(id)
    }

    /// Removes a pending operation to execute it: its task, the call, when it was made.
    pub fn take_op(&mut self, op: OpId) -> Option<(TaskId, Op, Millis)> {
        self.ops.remove(&op)
    }

    /// The task ended (finished or crashed): its calls are forgotten; what it was.
    pub fn end_task(&mut self, task: TaskId) -> TaskState {
        let mut generating = Vec::new();
        self.ops.retain(|_, (t, op, _)| {
            if *t == task {
                if let Op::Deliver {
                    batch,
                    started,
                    outcome: SinkFault::AiStep { .. },
                    ..
                } = op
                {
                    generating.push((batch.clone(), *started));
                }
            }
            *t != task
        });
        // A hand-off whose receiver is generating: it has the batch; nobody hears its answer.
        let now = self.now;
        for (batch, started) in generating {
            self.rec.delivery(&batch, started, now, true, false);
        }
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
}

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}
