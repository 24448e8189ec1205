//! # lull-sim
//!
//! The deterministic fault-injection simulator.
//!
//! A seeded run generates thousands of conversations' bursts, runs the real protocol
//! ([`lull_core::protocol::Buffer`]) over simulated ports whose every call is scheduled on a
//! virtual clock, injects faults (crashes between any two steps, lost / duplicated / late / early
//! triggers, sink errors, timeouts, slow calls and lost acknowledgements, store errors, throttling
//! and item limits, webhook retries, clock skew between hosts, a lagging sweep index, tenant
//! policies changed mid-window), then turns faults off, drains, and checks every invariant
//! ([`Invariant`]) on the world's own clock. The same seed replays the same run; a violation
//! prints the seed and the conversation's trace.
//!
//! Role and imports: a tool beside the shells, not one of them. It imports the core alone
//! (`lull-core`, with its `fixtures`: the in-memory store and the counting metrics recorder) and
//! is imported by the `lull simulate` command, the workspace tests and the benchmarks; the
//! Lambdas and the local server never compile it.
mod amends;
mod check;
mod exec;
mod faults;
mod index;
mod invariant;
mod record;
mod report;
mod sut;
mod variants;
mod work;
mod workload;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use faults::Faults;
pub use invariant::{Invariant, Violation};
pub use report::SimReport;
pub use workload::Shape;

use lull_core::counts::Counts;
use lull_core::metrics as m;
use lull_core::protocol::{BufferConfig, SWEEP_CONCURRENCY};
use lull_core::time::Millis;
use lull_core::ConversationKey;

// The simulator was written inside the core: its files name the core's modules from the crate
// root (`crate::time::Millis`), as they did there.
use lull_core::{batch, key, memory, message, policy, ports, protocol, time, turn, window};
// Files written before the move name this crate `crate::sim`; kept so they still compile.
#[allow(unused_imports)]
use crate as sim;

use check::{Bounds, Counted, Wedged};
use exec::{Attempt, Event, OpId, OpResult, SimPorts, TaskId, World};
use record::{Recorder, TraceEvent};
use sut::{Answer, Boxed, Flushed, Lull, SystemUnderTest};
use workload::Workload;

/// Which protocol to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// lull's protocol, as shipped.
    Lull,
    /// The Redis get/setex + `setTimeout` design lull replaces.
    Replaced,
    /// lull, but marking a batch acknowledged before the sink answered.
    AckBeforeSink,
    /// lull, but writing the dedupe record separately from the append.
    SeparateDedupe,
    /// lull, but the webhook stamps `received_at` 2 s early.
    StampsEarly,
    /// lull, but an open window follows every policy change instead of the rule it opened under.
    FollowsLatestPolicy,
    /// lull, but operator pauses are acknowledged and never stored.
    IgnoresPause,
    /// lull, but the flush writes dedupe records after the acknowledgement, not before.
    RemembersLate,
    /// lull, but the flush drops ids pushed out of the record without their dedupe records.
    DropsUnremembered,
    /// lull, but a retried edit is applied again.
    AppliesEditsTwice,
    /// lull, but unsends are acknowledged and never stored.
    ForgetsRevokes,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "lull" => Protocol::Lull,
            "replaced" => Protocol::Replaced,
            "ack-before-sink" => Protocol::AckBeforeSink,
            "separate-dedupe" => Protocol::SeparateDedupe,
            "stamps-early" => Protocol::StampsEarly,
            "follows-latest-policy" => Protocol::FollowsLatestPolicy,
            "ignores-pause" => Protocol::IgnoresPause,
            "remembers-late" => Protocol::RemembersLate,
            "drops-unremembered" => Protocol::DropsUnremembered,
            "applies-edits-twice" => Protocol::AppliesEditsTwice,
            "forgets-revokes" => Protocol::ForgetsRevokes,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lull => "lull",
            Protocol::Replaced => "replaced",
            Protocol::AckBeforeSink => "ack-before-sink",
            Protocol::SeparateDedupe => "separate-dedupe",
            Protocol::StampsEarly => "stamps-early",
            Protocol::FollowsLatestPolicy => "follows-latest-policy",
            Protocol::IgnoresPause => "ignores-pause",
            Protocol::RemembersLate => "remembers-late",
            Protocol::DropsUnremembered => "drops-unremembered",
            Protocol::AppliesEditsTwice => "applies-edits-twice",
            Protocol::ForgetsRevokes => "forgets-revokes",
        }
    }

    /// The system under test for this protocol, over the simulated ports.
    fn system(self, ports: &SimPorts, config: BufferConfig) -> Arc<dyn SystemUnderTest> {
        let lull = Lull::new(ports, config);
        let ports = ports.clone();
        match self {
            Protocol::Lull => Arc::new(lull),
            Protocol::Replaced => Arc::new(variants::Replaced { lull, ports }),
            Protocol::AckBeforeSink => Arc::new(variants::AckBeforeSink { lull, ports }),
            Protocol::SeparateDedupe => Arc::new(variants::SeparateDedupe { lull, ports }),
            Protocol::StampsEarly => Arc::new(variants::StampsEarly::new(&ports, config, lull)),
            Protocol::FollowsLatestPolicy => {
                Arc::new(variants::FollowsLatestPolicy { lull, ports })
            }
            Protocol::IgnoresPause => Arc::new(variants::IgnoresPause { lull }),
            Protocol::RemembersLate => Arc::new(variants::late_dedupe(&ports, config, lull, false)),
            Protocol::DropsUnremembered => {
                Arc::new(variants::late_dedupe(&ports, config, lull, true))
            }
            Protocol::AppliesEditsTwice => Arc::new(variants::AppliesEditsTwice { lull, ports }),
            Protocol::ForgetsRevokes => Arc::new(variants::ForgetsRevokes { lull }),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub messages: usize,
    pub conversations: usize,
    pub protocol: Protocol,
    pub faults: Faults,
    /// How often the sweep runs (60 s on AWS).
    pub sweep_interval: Duration,
    /// How long a failed trigger stays invisible before SQS redelivers it; at least the flush
    /// function's timeout (`HandoffTiming::min_visibility_timeout`), as SQS requires.
    pub visibility_timeout: Duration,
    /// Receives before a trigger moves to the DLQ.
    pub max_receives: u32,
    pub buffer: BufferConfig,
    /// The traffic to generate.
    pub shape: Shape,
    /// Largest difference between two hosts' clocks: each task reads `now` off by up to half
    /// of it, either way.
    pub clock_skew: Duration,
    /// Longest lag of the sweep's due index behind the table (a GSI is eventually consistent).
    pub index_lag: Duration,
    /// A sink outage at a fixed time: (after the start, how long).
    pub outage: Option<(Duration, Duration)>,
}

impl SimConfig {
    pub fn new(seed: u64, messages: usize, conversations: usize) -> SimConfig {
        SimConfig {
            seed,
            messages,
            conversations,
            protocol: Protocol::Lull,
            faults: Faults::standard(),
            sweep_interval: Duration::from_secs(60),
            visibility_timeout: BufferConfig::default().timing.min_visibility_timeout(),
            max_receives: 5,
            buffer: BufferConfig::default(),
            shape: Shape::Adversarial,
            clock_skew: Duration::from_millis(500),
            index_lag: Duration::from_secs(2),
            outage: None,
        }
    }
}

enum TaskKind {
    Append { msg: usize },
    Signal { signal: usize, started: Millis },
    Flush { sqs: u64 },
    Sweep,
    SweepOne { key: ConversationKey },
}

enum TaskOutput {
    Append(Answer),
    /// A presence event, pause or resume ended; true for a pause or resume lull answered as stored.
    Signal(bool),
    Flush(Flushed),
    /// The sweep's query: the conversations past due.
    Sweep(Vec<ConversationKey>),
}

type TaskFuture = Boxed<TaskOutput>;

struct Driver {
    cfg: SimConfig,
    world: Arc<Mutex<World>>,
    sut: Arc<dyn SystemUnderTest>,
    /// lull's counters, recorded while its futures are polled.
    counts: Counts,
    work: Arc<Workload>,
    tasks: BTreeMap<TaskId, (TaskKind, TaskFuture)>,
    next_task: TaskId,
    /// True from a sweep tick's query until the last flush of its pass ended: like the shells'
    /// sweep, a pass does not overlap the next.
    sweep_running: bool,
    /// Conversations the running pass found and has not started flushing yet.
    sweep_queue: std::collections::VecDeque<ConversationKey>,
    /// The pass's flushes in flight: at most [`SWEEP_CONCURRENCY`].
    sweeping: std::collections::BTreeSet<ConversationKey>,
    drain_at: Millis,
}

/// Runs one simulation. A run that breaks an invariant is run again with the same seed, tracing
/// the conversations whose violations the report shows (at most [`TRACED`]): the same seed
/// replays the same run, and only those conversations' whole traces are kept in memory.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut report = run_traced(cfg, &[]);
    let traced = traced_conversations(&report.violations);
    if traced.is_empty() {
        return report;
    }
    let mut replay = run_traced(cfg, &traced);
    report.traces = std::mem::take(&mut replay.traces);
    if replay.summary() != report.summary() {
        // Never expected (one seed, one run): say so rather than print a trace of another run.
        report.traces.push(format!(
            "  the replay diverged from the run (not deterministic): {}\n",
            replay.summary()
        ));
    }
    report
}

/// Conversations whose traces a report prints: those of the first violations, at most this many.
const TRACED: usize = 2;

/// The first [`TRACED`] conversations with violations, in the order of their first violation.
fn traced_conversations(violations: &[Violation]) -> Vec<usize> {
    let mut convs: Vec<usize> = Vec::new();
    for c in violations.iter().filter_map(|v| v.conversation) {
        if convs.len() < TRACED && !convs.contains(&c) {
            convs.push(c);
        }
    }
    convs
}

/// One run, tracing the conversations in `traced`.
fn run_traced(cfg: &SimConfig, traced: &[usize]) -> SimReport {
    let start = Millis(1_767_225_600_000); // 2026-01-01T00:00:00Z
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let work = Arc::new(workload::generate(
        &mut rng,
        cfg.shape,
        cfg.messages,
        cfg.conversations,
        start,
    ));
    let mut world = World::new(rng.u64(..), start, cfg.faults, Recorder::new(&work, traced));
    world.max_offset_ms = cfg.clock_skew.as_millis() as u64 / 2;
    world.index_lag = cfg.index_lag;
    let world = Arc::new(Mutex::new(world));
    let ports = SimPorts {
        world: world.clone(),
    };
    let last = work.messages.last().map_or(start, |m| m.at);
    let mut d = Driver {
        sut: cfg.protocol.system(&ports, cfg.buffer),
        cfg: cfg.clone(),
        world,
        counts: Counts::default(),
        work,
        tasks: BTreeMap::new(),
        next_task: 1,
        sweep_running: false,
        sweep_queue: std::collections::VecDeque::new(),
        sweeping: std::collections::BTreeSet::new(),
        drain_at: last.plus(Duration::from_secs(10)),
    };
    d.run(start)
}

fn lock(w: &Mutex<World>) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

impl Driver {
    fn run(&mut self, start: Millis) -> SimReport {
        {
            let mut w = lock(&self.world);
            for (i, m) in self.work.messages.iter().enumerate() {
                w.schedule(m.at, Event::Arrive { msg: i });
                if let Some(again) = m.resend_at {
                    w.schedule(again, Event::Arrive { msg: i });
                }
            }
            for (i, s) in self.work.signals.iter().enumerate() {
                w.schedule(s.at, Event::Signal { signal: i });
            }
            if self.sut.retries() {
                w.schedule(start.plus(self.cfg.sweep_interval), Event::SweepTick);
            }
            if let Some((after, len)) = self.cfg.outage {
                w.schedule(start.plus(after), Event::SinkOutage { down: true });
                w.schedule(start.plus(after + len), Event::SinkOutage { down: false });
            }
        }
        let hard_stop = self.drain_at.plus(Duration::from_secs(6 * 3600));
        let mut steps: u64 = 0;
        loop {
            let next = {
                let mut w = lock(&self.world);
                if !w.draining && w.now >= self.drain_at {
                    w.draining = true;
                    w.sink_down = false;
                }
                if w.draining
                    && steps.is_multiple_of(256)
                    && self.tasks.is_empty()
                    && w.rec.all_acked()
                    && w.store.conversations().iter().all(|c| c.is_idle())
                {
                    None
                } else {
                    w.pop().filter(|(at, _)| *at <= hard_stop)
                }
            };
            let Some((_, ev)) = next else { break };
            steps += 1;
            self.handle(ev);
        }
        self.report(start)
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Arrive { msg } => self.arrive(msg),
            Event::Signal { signal } => self.signal(signal),
            Event::OpReady { op } => self.op_ready(op),
            Event::TriggerDeliver { sqs } => self.trigger_deliver(sqs),
            Event::SweepTick => self.sweep_tick(),
            Event::SinkOutage { down } => {
                let mut w = lock(&self.world);
                if !w.draining {
                    w.sink_down = down;
                }
            }
            Event::Cleanup { key } => lock(&self.world).delete(&key),
        }
    }

    fn arrive(&mut self, i: usize) {
        let m = &self.work.messages[i];
        let conv = &self.work.conversations[m.conv];
        let key = conv.key.clone();
        let msg = amends::message(m, &key.user);
        let now = {
            let mut w = lock(&self.world);
            let now = w.now;
            w.rec.first_attempt[i].get_or_insert(now);
            w.rec.attempts[i] += 1;
            w.rec
                .trace_conv(m.conv, now, TraceEvent::Arrive(m.id.clone()));
            now
        };
        let policy = conv.policy_at(now);
        let attempt = Attempt {
            msg: i,
            arrived: now,
            policy,
        };
        let sut = self.sut.clone();
        let fut: TaskFuture =
            Box::pin(async move { TaskOutput::Append(sut.append(key, policy, msg).await) });
        self.spawn(TaskKind::Append { msg: i }, Some(attempt), fut);
    }

    fn signal(&mut self, i: usize) {
        let s = self.work.signals[i];
        let conv = &self.work.conversations[s.conv];
        let (key, now) = (conv.key.clone(), lock(&self.world).now);
        let policy = conv.policy_at(now);
        let sut = self.sut.clone();
        let fut: TaskFuture = match s.what {
            workload::Signal::Presence { kind, sent_at } => Box::pin(async move {
                sut.presence(key, policy, kind, sent_at).await;
                TaskOutput::Signal(false)
            }),
            workload::Signal::Pause => {
                Box::pin(async move { TaskOutput::Signal(sut.pause(key, policy.pause).await) })
            }
            workload::Signal::Resume => {
                Box::pin(async move { TaskOutput::Signal(sut.resume(key).await) })
            }
        };
        let kind = TaskKind::Signal {
            signal: i,
            started: now,
        };
        self.spawn(kind, None, fut);
    }

    fn trigger_deliver(&mut self, sqs: u64) {
        let trig = {
            let mut w = lock(&self.world);
            let Some(q) = w.queue.get_mut(&sqs) else {
                return;
            };
            q.receives += 1;
            let (msg, receives) = (q.msg.clone(), q.receives);
            let now = w.now;
            w.rec.trace(
                &msg.key,
                now,
                TraceEvent::TriggerFired {
                    chain: msg.chain,
                    receives,
                },
            );
            msg
        };
        let sut = self.sut.clone();
        let fut: TaskFuture = Box::pin(async move { TaskOutput::Flush(sut.flush(trig).await) });
        self.spawn(TaskKind::Flush { sqs }, None, fut);
    }

    fn sweep_tick(&mut self) {
        let mut w = lock(&self.world);
        let now = w.now;
        w.schedule(now.plus(self.cfg.sweep_interval), Event::SweepTick);
        let f = self.cfg.faults;
        if !w.sink_down && w.fault(f.sink_outage) {
            w.rec.faults += 1;
            w.sink_down = true;
            let max = f.sink_outage_max.as_millis() as u64;
            let back = now.plus(w.between(30_000.min(max), max));
            w.schedule(back, Event::SinkOutage { down: false });
        }
        if w.fault(f.store_throttle) {
            w.rec.faults += 1;
            w.throttled_until = now.plus(w.between(1_000, 10_000));
        }
        drop(w);
        if self.sweep_running {
            return;
        }
        self.sweep_running = true;
        let sut = self.sut.clone();
        let fut: TaskFuture = Box::pin(async move { TaskOutput::Sweep(sut.sweep_due(1000).await) });
        self.spawn(TaskKind::Sweep, None, fut);
    }

    /// The sweep flushes every conversation it found past due, at most [`SWEEP_CONCURRENCY`] at a
    /// time, as the shells' `Handoff::sweep` does: one slow sink holds back its own conversation
    /// and a share of the pass, and a pass ends only when its last flush did.
    fn sweep_found(&mut self, keys: Vec<ConversationKey>) {
        self.sweep_queue.extend(keys);
        self.sweep_more();
    }

    /// Starts the pass's next flushes while fewer than [`SWEEP_CONCURRENCY`] run; ends the pass
    /// when none is left.
    fn sweep_more(&mut self) {
        while self.sweeping.len() < SWEEP_CONCURRENCY {
            let Some(key) = self.sweep_queue.pop_front() else {
                break;
            };
            if !self.sweeping.insert(key.clone()) {
                continue;
            }
            let sut = self.sut.clone();
            let k = key.clone();
            let fut: TaskFuture =
                Box::pin(async move { TaskOutput::Flush(sut.sweep_one(k).await) });
            self.spawn(TaskKind::SweepOne { key }, None, fut);
        }
        if self.sweeping.is_empty() && self.sweep_queue.is_empty() {
            self.sweep_running = false;
        }
    }

    fn spawn(&mut self, kind: TaskKind, attempt: Option<Attempt>, fut: TaskFuture) {
        let id = self.next_task;
        self.next_task += 1;
        lock(&self.world).begin_task(id, attempt);
        self.tasks.insert(id, (kind, fut));
        self.poll(id);
    }

    fn poll(&mut self, id: TaskId) {
        let Some((_, fut)) = self.tasks.get_mut(&id) else {
            return;
        };
        lock(&self.world).set_current(Some(id));
        let mut cx = Context::from_waker(Waker::noop());
        let r = metrics::with_local_recorder(&self.counts, || fut.as_mut().poll(&mut cx));
        lock(&self.world).set_current(None);
        if let Poll::Ready(out) = r {
            if let Some((kind, _)) = self.tasks.remove(&id) {
                self.complete(id, kind, out);
            }
        }
    }

    fn op_ready(&mut self, id: OpId) {
        let mut w = lock(&self.world);
        let Some((task, op, started)) = w.take_op(id) else {
            return;
        };
        if !self.tasks.contains_key(&task) {
            return;
        }
        let is_sleep = matches!(op, exec::Op::Sleep(_));
        let name = op.name();
        let key = op.key().cloned();
        // A crash before the operation lands, or after it landed but before the task sees it.
        let dies = |w: &mut World, p: f64| {
            let dead = !is_sleep && w.fault(p);
            if dead {
                let now = w.now;
                w.rec.fault(key.as_ref(), now, TraceEvent::Crash(name));
            }
            dead
        };
        if dies(&mut w, self.cfg.faults.crash_before) {
            drop(w);
            self.crash(task);
            return;
        }
        let result: OpResult = w.execute(task, op, started);
        if dies(&mut w, self.cfg.faults.crash_after) {
            drop(w);
            self.crash(task);
            return;
        }
        // Evidence of a duplicate reaching a live webhook task: the store's dedupe answer (a
        // dedupe record found), or a read of a record that still holds the task's message (lull recognises those from the
        // record itself, whatever the dedupe horizon, and from its recently acknowledged ids).
        let holds_own_message = match (&result, self.tasks.get(&task)) {
            (OpResult::Load(Ok(Some(conv))), Some((TaskKind::Append { msg }, _))) => {
                let id = &self.work.messages[*msg].id;
                conv.holds_message(id).is_some() || conv.acked_message(id, w.now).is_some()
            }
            _ => false,
        };
        if holds_own_message
            || matches!(
                result,
                OpResult::Appended(Ok(crate::ports::Appended::Duplicate(_)))
                    | OpResult::Seen(Ok(Some(_)))
            )
        {
            w.rec.drops.duplicate_results += 1;
        }
        w.put_result(id, task, result);
        drop(w);
        self.poll(task);
    }

    /// The task's process died: drop it, and let the world react as it would.
    fn crash(&mut self, task: TaskId) {
        lock(&self.world).end_task(task);
        if let Some((kind, _)) = self.tasks.remove(&task) {
            match kind {
                TaskKind::Append { msg } => self.gateway_retry(msg, "crashed".into()),
                TaskKind::Signal { signal, started } => {
                    // A resume's write may have landed before the crash.
                    let s = self.work.signals[signal];
                    if let workload::Signal::Resume = s.what {
                        let mut w = lock(&self.world);
                        let now = w.now;
                        w.rec.resumes[s.conv].push((started, now));
                    }
                }
                TaskKind::Flush { sqs } => self.redeliver(sqs),
                TaskKind::Sweep => self.sweep_running = false,
                TaskKind::SweepOne { key } => {
                    self.sweeping.remove(&key);
                    self.sweep_more();
                }
            }
        }
    }

    /// The gateway retries a request that failed: within a minute at first, then backing off
    /// (doubling up to an hour), as Meta's and Twilio's do.
    fn gateway_retry(&mut self, msg: usize, why: String) {
        let mut w = lock(&self.world);
        let now = w.now;
        let m = &self.work.messages[msg];
        w.rec
            .trace_conv(m.conv, now, TraceEvent::AppendFailed(m.id.clone(), why));
        let attempts = w.rec.attempts[msg];
        let wait = w.between(1_000, 60_000) * (1u32 << attempts.saturating_sub(3).min(6));
        let at = now.plus(wait.min(Duration::from_secs(3600)));
        w.schedule(at, Event::Arrive { msg });
    }

    /// SQS: a trigger not deleted becomes visible again after the visibility timeout, until
    /// it has been received `max_receives` times; then it moves to the DLQ.
    fn redeliver(&mut self, sqs: u64) {
        let mut w = lock(&self.world);
        let receives = w.queue.get(&sqs).map_or(0, |q| q.receives);
        if !self.sut.retries() {
            w.queue.remove(&sqs);
            return;
        }
        if receives >= self.cfg.max_receives {
            w.queue.remove(&sqs);
            w.dlq += 1;
        } else {
            let at = w.now.plus(self.cfg.visibility_timeout);
            w.schedule(at, Event::TriggerDeliver { sqs });
        }
    }

    fn complete(&mut self, task: TaskId, kind: TaskKind, out: TaskOutput) {
        let state = lock(&self.world).end_task(task);
        match (kind, out) {
            (TaskKind::Append { msg }, TaskOutput::Append(answer)) => {
                let mut w = lock(&self.world);
                let now = w.now;
                let m = &self.work.messages[msg];
                let how = match &answer {
                    Answer::Accepted => "accepted",
                    Answer::Duplicate => "duplicate",
                    Answer::Refused(e) | Answer::Failed(e) => {
                        if matches!(answer, Answer::Refused(_)) {
                            w.rec.drops.refused_answers += 1;
                        }
                        let e = e.clone();
                        drop(w);
                        self.gateway_retry(msg, e);
                        return;
                    }
                };
                if matches!(answer, Answer::Duplicate) {
                    w.rec.drops.duplicate_answers += 1;
                }
                w.rec
                    .trace_conv(m.conv, now, TraceEvent::Accepted(m.id.clone(), how));
                if w.rec.accepted[msg].is_none() {
                    w.rec.accepted[msg] = Some(now);
                    w.rec.accepted_count += 1;
                }
                if w.fault(self.cfg.faults.webhook_retry) {
                    w.rec.faults += 1;
                    let at = now.plus(w.between(100, 600_000));
                    w.schedule(at, Event::Arrive { msg });
                }
            }
            (TaskKind::Flush { sqs }, TaskOutput::Flush(f)) => {
                let mut w = lock(&self.world);
                if let Some(q) = w.queue.get(&sqs) {
                    let (key, now) = (q.msg.key.clone(), w.now);
                    w.rec
                        .trace(&key, now, TraceEvent::FlushEnded(f.what.clone()));
                }
                if f.stale {
                    w.rec.drops.stale_triggers += 1;
                }
                if f.delete && state.effects == 0 {
                    w.rec.drops.dropped_triggers += 1;
                }
                drop(w);
                if f.delete {
                    lock(&self.world).queue.remove(&sqs);
                } else {
                    self.redeliver(sqs);
                }
            }
            (TaskKind::Signal { signal, started }, TaskOutput::Signal(stored)) => {
                let s = self.work.signals[signal];
                let mut w = lock(&self.world);
                let now = w.now;
                match s.what {
                    // Every resume request may have ended the pause, answered or not: a write
                    // can land before the crash or failure that hides its answer.
                    workload::Signal::Resume => w.rec.resumes[s.conv].push((started, now)),
                    _ if stored => w.rec.pauses[s.conv].push((started, now)),
                    _ => {}
                }
            }
            (TaskKind::Sweep, TaskOutput::Sweep(keys)) => self.sweep_found(keys),
            (TaskKind::SweepOne { key }, out) => {
                if let TaskOutput::Flush(f) = out {
                    if f.stale {
                        lock(&self.world).rec.drops.stale_triggers += 1;
                    }
                }
                self.sweeping.remove(&key);
                self.sweep_more();
            }
            (_, _) => {}
        }
    }

    /// Conversations whose record still holds work: after a drain that ran to its end, they no
    /// longer progress.
    fn wedged(&self, w: &World) -> Vec<Wedged> {
        w.store
            .conversations()
            .into_iter()
            .filter(|c| !c.is_idle())
            .filter_map(|c| {
                let conv = *w.rec.conv_index.get(&c.key)?;
                let size = exec::item_size(&c);
                Some(Wedged {
                    conv,
                    what: format!(
                        "{} pending batches, {} open window, record of {size} bytes",
                        c.pending.len(),
                        if c.window.is_some() { "an" } else { "no" },
                    ),
                })
            })
            .collect()
    }

    fn report(&mut self, start: Millis) -> SimReport {
        // Drop unfinished tasks before reading the world, so no future holds a borrow; their calls
        // are forgotten first, as a crash's would be.
        for id in self.tasks.keys() {
            lock(&self.world).end_task(*id);
        }
        self.tasks.clear();
        let w = lock(&self.world);
        // Liveness (`check/liveness.rs`). With no fault: a trigger fires at the due time plus
        // SQS's rounding and polling; one sweep pass and the index's lag are allowed on top. Each
        // fault adds at most the longest recovery from one (the hand-off timing rule,
        // `timing.rs`): a flush that died holds its lease, and the next one acts when SQS
        // redelivers its trigger (the visibility timeout, at least the function timeout, itself
        // lease + 15 s) or, on the sweep path, at the first sweep pass after the lease ended
        // (lease + one sweep interval, seen through the index's lag); a lost or failed trigger,
        // a store error or throttle costs one sweep interval or one visibility timeout; a late
        // trigger at most 60 s.
        let timing = self.cfg.buffer.timing;
        let slack = Duration::from_secs(5);
        let bounds = Bounds {
            max_lag: self.cfg.sweep_interval + self.cfg.index_lag + slack,
            per_fault: self
                .cfg
                .visibility_timeout
                .max(timing.lease() + self.cfg.sweep_interval)
                + self.cfg.index_lag
                + slack,
            lease: timing.lease(),
            skew: self.cfg.clock_skew,
        };
        let wedged = self.wedged(&w);
        let counted = Counted {
            duplicates: self.counts.get(m::DUPLICATES),
            appends_refused: self.counts.get(m::APPENDS_REFUSED),
            stale_triggers: self.counts.get(m::STALE_TRIGGERS),
            waiting_triggers: self.counts.get(m::WAITING_TRIGGERS),
        };
        let input = check::Input {
            rec: &w.rec,
            work: &self.work,
            bounds,
            counted,
            wedged: &wedged,
        };
        let violations = check::check(&input);
        let released_by_resume = check::released_by_resume(&input);
        let accepted_amends = (self.work.messages.iter())
            .zip(&w.rec.accepted)
            .filter(|(m, a)| m.amend.is_some() && a.is_some())
            .count();
        let mut batches: Vec<_> = w
            .rec
            .deliveries
            .iter()
            .filter(|d| d.acked)
            .map(|d| d.batch.batch_id)
            .collect();
        batches.sort();
        batches.dedup();
        SimReport {
            seed: self.cfg.seed,
            protocol: self.cfg.protocol,
            messages: w.rec.accepted_count - accepted_amends,
            amends: accepted_amends,
            batches: batches.len(),
            faults: w.rec.faults,
            traces: self.traces(&w, &violations, start),
            violations,
            dead_letters: w.dlq,
            simulated: w.now.since(start),
            wedged: wedged.len(),
            released_by_resume,
            item_limit_hits: w.rec.item_limit_hits,
            refused_appends: w.rec.drops.refused_answers,
            longest_sink_call: w
                .rec
                .deliveries
                .iter()
                .map(|d| d.end.since(d.start))
                .max()
                .unwrap_or_default(),
        }
    }

    /// The traces of the conversations this run traced, each around its first violation: every
    /// event from 30 s before the stretch the violation names to 1 s after it (the first and
    /// last [`TRACE_LINES`] of a longer one).
    fn traces(&self, w: &World, violations: &[Violation], start: Millis) -> Vec<String> {
        let mut traces = Vec::new();
        for (&c, events) in &w.rec.traces {
            let Some(v) = violations.iter().find(|v| v.conversation == Some(c)) else {
                continue;
            };
            let key = &self.work.conversations[c].key;
            let mut t = format!(
                "  trace of conversation #{c} ({}, hash {}) for [{}] {}:\n",
                key.provider,
                key.log_hash(b"sim"),
                v.invariant,
                v.detail
            );
            let (from, to) = v.around.map_or((Millis(0), Millis(u64::MAX)), |(a, b)| {
                (
                    Millis(a.0.saturating_sub(30_000)),
                    b.plus(Duration::from_secs(1)),
                )
            });
            let events: Vec<_> = events
                .iter()
                .filter(|(at, _)| *at >= from && *at <= to)
                .collect();
            let elided = events.len().saturating_sub(2 * TRACE_LINES);
            for (i, (at, ev)) in events.iter().enumerate() {
                if elided > 0 && i == TRACE_LINES {
                    t.push_str(&format!("    ... {elided} events ...\n"));
                }
                if elided > 0 && i >= TRACE_LINES && i < TRACE_LINES + elided {
                    continue;
                }
                t.push_str(&format!(
                    "    +{:>9.3}s {ev}\n",
                    at.since(start).as_secs_f64()
                ));
            }
            traces.push(t);
        }
        traces
    }
}

/// Events printed from each end of a long trace.
const TRACE_LINES: usize = 150;
