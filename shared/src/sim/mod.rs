//! The deterministic fault-injection simulator.
//!
//! A seeded run generates thousands of conversations' bursts, runs the real protocol
//! ([`crate::protocol::Buffer`]) over simulated ports whose every call is scheduled on a virtual
//! clock, injects faults (crashes between any two steps, lost / duplicated / late / early
//! triggers, sink errors, timeouts and lost acknowledgements, store errors, webhook retries), then
//! turns faults off, drains, and checks all six invariants and the liveness bound. The same seed
//! replays the same run; a violation prints the seed and the conversation's trace.

mod exec;
mod faults;
mod record;
mod variants;
mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use faults::Faults;
pub use record::Violation;
pub use workload::Shape;

use crate::message::Message;
use crate::protocol::{AppendOutcome, Buffer, BufferConfig, FlushEnd, FlushMode};
use crate::time::Millis;

use exec::{Event, OpResult, SimPorts, TaskId, World};
use record::{Bounds, Recorder, TraceEvent};
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
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "lull" => Protocol::Lull,
            "replaced" => Protocol::Replaced,
            "ack-before-sink" => Protocol::AckBeforeSink,
            "separate-dedupe" => Protocol::SeparateDedupe,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lull => "lull",
            Protocol::Replaced => "replaced",
            Protocol::AckBeforeSink => "ack-before-sink",
            Protocol::SeparateDedupe => "separate-dedupe",
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
    /// How long a failed trigger stays invisible before SQS redelivers it.
    pub visibility_timeout: Duration,
    /// Receives before a trigger moves to the DLQ.
    pub max_receives: u32,
    pub buffer: BufferConfig,
    /// The traffic to generate.
    pub shape: Shape,
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
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
            buffer: BufferConfig::default(),
            shape: Shape::Adversarial,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub protocol: Protocol,
    /// Messages accepted (answered 2xx).
    pub messages: usize,
    /// Distinct batches acknowledged.
    pub batches: usize,
    pub faults: u64,
    pub violations: Vec<Violation>,
    /// Triggers moved to the DLQ.
    pub dead_letters: u64,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Traces of the first conversations with violations.
    pub traces: Vec<String>,
}

impl SimReport {
    /// The one summary line: `messages=N batches=N faults=N violations=N`.
    pub fn summary(&self) -> String {
        format!(
            "messages={} batches={} faults={} violations={}",
            self.messages,
            self.batches,
            self.faults,
            self.violations.len()
        )
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary())?;
        if !self.violations.is_empty() {
            writeln!(
                f,
                "seed {} ({}) broke invariants; replay with --seed {}",
                self.seed,
                self.protocol.as_str(),
                self.seed
            )?;
            let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
            for v in &self.violations {
                *by_kind.entry(v.invariant).or_default() += 1;
            }
            for (k, n) in by_kind {
                writeln!(f, "  {n} x invariant {k}")?;
            }
            for v in self.violations.iter().take(5) {
                writeln!(f, "  - [{}] {}", v.invariant, v.detail)?;
            }
            for t in &self.traces {
                write!(f, "{t}")?;
            }
        }
        Ok(())
    }
}

type SimBuffer = Buffer<SimPorts, SimPorts, SimPorts, SimPorts>;
type TaskFuture = Pin<Box<dyn Future<Output = TaskOutput> + Send>>;

enum TaskKind {
    Append { msg: usize },
    Flush { sqs: u64 },
    Sweep,
    SweepOne { key: crate::key::ConversationKey },
}

enum TaskOutput {
    /// The webhook answered: Ok(how) is a 2xx.
    Append(Result<&'static str, String>),
    /// The flush finished: Ok(true) deletes the trigger, Ok(false) or Err leaves it for a retry.
    Flush(Result<bool, String>),
    /// The sweep's query: the conversations past due.
    Sweep(Vec<crate::key::ConversationKey>),
}

struct Driver {
    cfg: SimConfig,
    world: Arc<Mutex<World>>,
    ports: SimPorts,
    buffer: Arc<SimBuffer>,
    work: Arc<Workload>,
    tasks: BTreeMap<TaskId, (TaskKind, TaskFuture)>,
    next_task: TaskId,
    sweep_running: bool,
    sweeping: std::collections::BTreeSet<crate::key::ConversationKey>,
    drain_at: Millis,
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    let start = Millis(1_767_225_600_000); // 2026-01-01T00:00:00Z
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let work = Arc::new(workload::generate(
        &mut rng,
        cfg.shape,
        cfg.messages,
        cfg.conversations,
        start,
    ));
    let world = Arc::new(Mutex::new(World::new(
        rng.u64(..),
        start,
        cfg.faults,
        Recorder::new(&work),
    )));
    let ports = SimPorts {
        world: world.clone(),
    };
    let buffer = Arc::new(Buffer::new(
        ports.clone(),
        ports.clone(),
        ports.clone(),
        ports.clone(),
        cfg.buffer,
    ));
    let last = work.messages.last().map_or(start, |m| m.at);
    let mut d = Driver {
        cfg: cfg.clone(),
        world,
        ports,
        buffer,
        work,
        tasks: BTreeMap::new(),
        next_task: 1,
        sweep_running: false,
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
            }
            if self.cfg.protocol != Protocol::Replaced {
                w.schedule(start.plus(self.cfg.sweep_interval), Event::SweepTick);
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
                    && w.rec.all_acked()
                    && self.tasks.is_empty()
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
            Event::OpReady { task } => self.op_ready(task),
            Event::TriggerDeliver { sqs } => self.trigger_deliver(sqs),
            Event::SweepTick => self.sweep_tick(),
            Event::SinkOutage { down } => lock(&self.world).sink_down = down,
            Event::Cleanup { key } => lock(&self.world).store.delete_unconditionally(&key),
        }
    }

    fn arrive(&mut self, i: usize) {
        let m = &self.work.messages[i];
        let conv = &self.work.conversations[m.conv];
        let key = conv.key.clone();
        let policy = conv.policy;
        let msg = Message::text(m.id.clone(), key.user.clone(), m.text.clone());
        {
            let mut w = lock(&self.world);
            let now = w.now;
            w.rec.first_attempt[i].get_or_insert(now);
            w.rec
                .trace_conv(m.conv, now, TraceEvent::Arrive(m.id.clone()));
        }
        let b = self.buffer.clone();
        let p = self.ports.clone();
        let fut: TaskFuture = match self.cfg.protocol {
            Protocol::Lull | Protocol::AckBeforeSink => Box::pin(async move {
                TaskOutput::Append(match b.append(&key, &policy, msg).await {
                    Ok(AppendOutcome::Accepted { .. }) => Ok("accepted"),
                    Ok(AppendOutcome::Duplicate { .. }) => Ok("duplicate"),
                    Err(e) => Err(e.to_string()),
                })
            }),
            Protocol::SeparateDedupe => Box::pin(async move {
                TaskOutput::Append(variants::append_separate_dedupe(&p, &key, &policy, msg).await)
            }),
            Protocol::Replaced => Box::pin(async move {
                TaskOutput::Append(variants::replaced_webhook(&p, &key, policy.quiet, msg).await)
            }),
        };
        self.spawn(TaskKind::Append { msg: i }, fut);
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
        let b = self.buffer.clone();
        let p = self.ports.clone();
        let fut: TaskFuture = match self.cfg.protocol {
            Protocol::Lull | Protocol::SeparateDedupe => Box::pin(async move {
                let r = b.flush(&trig, FlushMode::Trigger).await;
                let out = match &r {
                    Ok(rep) => Ok(!matches!(
                        rep.end,
                        FlushEnd::SinkFailed(_) | FlushEnd::BackingOff { .. }
                    )),
                    Err(e) => Err(e.to_string()),
                };
                if let Ok(mut w) = p.world.lock() {
                    let now = w.now;
                    let what = match &r {
                        Ok(rep) => format!("{:?}, {} handed off", rep.end, rep.handed_off.len()),
                        Err(e) => format!("error {e}"),
                    };
                    w.rec.trace(&trig.key, now, TraceEvent::FlushEnded(what));
                }
                TaskOutput::Flush(out)
            }),
            Protocol::AckBeforeSink => {
                Box::pin(
                    async move { TaskOutput::Flush(variants::flush_ack_first(&p, &trig).await) },
                )
            }
            Protocol::Replaced => {
                Box::pin(
                    async move { TaskOutput::Flush(variants::replaced_timer(&p, &trig).await) },
                )
            }
        };
        self.spawn(TaskKind::Flush { sqs }, fut);
    }

    fn sweep_tick(&mut self) {
        let mut w = lock(&self.world);
        let now = w.now;
        w.schedule(now.plus(self.cfg.sweep_interval), Event::SweepTick);
        if !w.sink_down && w.fault(self.cfg.faults.sink_outage) {
            w.rec.faults += 1;
            w.sink_down = true;
            let back = now.plus(w.between(30_000, 300_000));
            w.schedule(back, Event::SinkOutage { down: false });
        }
        drop(w);
        if self.sweep_running {
            return;
        }
        self.sweep_running = true;
        let b = self.buffer.clone();
        let fut: TaskFuture =
            Box::pin(async move { TaskOutput::Sweep(b.sweep_due(1000).await.unwrap_or_default()) });
        self.spawn(TaskKind::Sweep, fut);
    }

    /// The sweep flushes every conversation it found past due, concurrently, as the shells do.
    fn sweep_found(&mut self, keys: Vec<crate::key::ConversationKey>) {
        for key in keys {
            if !self.sweeping.insert(key.clone()) {
                continue;
            }
            let b = self.buffer.clone();
            let p = self.ports.clone();
            let k = key.clone();
            let fut: TaskFuture = match self.cfg.protocol {
                Protocol::AckBeforeSink => Box::pin(async move {
                    let now = crate::ports::Clock::now(&p);
                    let trig = crate::ports::TriggerMsg {
                        key: k,
                        chain: 0,
                        gen: 0,
                        ver: 0,
                        due: now,
                    };
                    let _ = variants::flush_ack_first(&p, &trig).await;
                    TaskOutput::Sweep(Vec::new())
                }),
                _ => Box::pin(async move {
                    let _ = b.sweep_one(k).await;
                    TaskOutput::Sweep(Vec::new())
                }),
            };
            self.spawn(TaskKind::SweepOne { key }, fut);
        }
    }

    fn spawn(&mut self, kind: TaskKind, fut: TaskFuture) {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.insert(id, (kind, fut));
        self.poll(id);
    }

    fn poll(&mut self, id: TaskId) {
        let Some((_, fut)) = self.tasks.get_mut(&id) else {
            return;
        };
        lock(&self.world).set_current(Some(id));
        let mut cx = Context::from_waker(Waker::noop());
        let r = fut.as_mut().poll(&mut cx);
        lock(&self.world).set_current(None);
        if let Poll::Ready(out) = r {
            if let Some((kind, _)) = self.tasks.remove(&id) {
                self.complete(kind, out);
            }
        }
    }

    fn op_ready(&mut self, task: TaskId) {
        if !self.tasks.contains_key(&task) {
            return;
        }
        let mut w = lock(&self.world);
        let Some((op, started)) = w.take_op(task) else {
            return;
        };
        let is_sleep = matches!(op, exec::Op::Sleep(_));
        let name = match &op {
            exec::Op::Load(_) => "load",
            exec::Op::Append { .. } => "append",
            exec::Op::Replace { .. } => "replace",
            exec::Op::Arm { .. } => "arm",
            exec::Op::Deliver { .. } => "deliver",
            _ => "other",
        };
        let key = match &op {
            exec::Op::Load(k) => Some(k.clone()),
            exec::Op::Append { next, .. } | exec::Op::Replace { next, .. } => {
                Some(next.key.clone())
            }
            exec::Op::Arm { msg, .. } => Some(msg.key.clone()),
            exec::Op::Deliver { batch, .. } => Some(batch.conversation.clone()),
            _ => None,
        };
        // A crash before the operation lands, or after it landed but before the task sees it.
        let dies = |w: &mut World, p: f64| {
            let dead = !is_sleep && w.fault(p);
            if dead {
                w.rec.faults += 1;
                if let Some(k) = &key {
                    let now = w.now;
                    w.rec.trace(k, now, TraceEvent::Crash(name));
                }
            }
            dead
        };
        if dies(&mut w, self.cfg.faults.crash_before) {
            drop(w);
            self.crash(task);
            return;
        }
        let result: OpResult = w.execute(op, started);
        if dies(&mut w, self.cfg.faults.crash_after) {
            drop(w);
            self.crash(task);
            return;
        }
        w.put_result(task, result);
        drop(w);
        self.poll(task);
    }

    /// The task's process died: drop it, and let the world react as it would.
    fn crash(&mut self, task: TaskId) {
        lock(&self.world).forget_task(task);
        if let Some((kind, _)) = self.tasks.remove(&task) {
            match kind {
                TaskKind::Append { msg } => self.gateway_retry(msg, "crashed".into()),
                TaskKind::Flush { sqs } => self.redeliver(sqs),
                TaskKind::Sweep => self.sweep_running = false,
                TaskKind::SweepOne { key } => {
                    self.sweeping.remove(&key);
                }
            }
        }
    }

    fn gateway_retry(&mut self, msg: usize, why: String) {
        let mut w = lock(&self.world);
        let now = w.now;
        let m = &self.work.messages[msg];
        w.rec
            .trace_conv(m.conv, now, TraceEvent::AppendFailed(m.id.clone(), why));
        let at = now.plus(w.between(1_000, 60_000));
        w.schedule(at, Event::Arrive { msg });
    }

    /// SQS: a trigger not deleted becomes visible again after the visibility timeout, until
    /// it has been received `max_receives` times; then it moves to the DLQ.
    fn redeliver(&mut self, sqs: u64) {
        let mut w = lock(&self.world);
        let receives = w.queue.get(&sqs).map_or(0, |q| q.receives);
        if self.cfg.protocol == Protocol::Replaced {
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

    fn complete(&mut self, kind: TaskKind, out: TaskOutput) {
        match (kind, out) {
            (TaskKind::Append { msg }, TaskOutput::Append(Ok(how))) => {
                let mut w = lock(&self.world);
                let now = w.now;
                let m = &self.work.messages[msg];
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
            (TaskKind::Append { msg }, TaskOutput::Append(Err(e))) => self.gateway_retry(msg, e),
            (TaskKind::Flush { sqs }, TaskOutput::Flush(Ok(true))) => {
                lock(&self.world).queue.remove(&sqs);
            }
            (TaskKind::Flush { sqs }, TaskOutput::Flush(_)) => self.redeliver(sqs),
            (TaskKind::Sweep, TaskOutput::Sweep(keys)) => {
                self.sweep_running = false;
                self.sweep_found(keys);
            }
            (TaskKind::SweepOne { key }, _) => {
                self.sweeping.remove(&key);
            }
            (_, _) => {}
        }
    }

    fn report(&mut self, start: Millis) -> SimReport {
        // Drop unfinished tasks before reading the world, so no future holds a borrow.
        self.tasks.clear();
        let w = lock(&self.world);
        let lease = self.cfg.buffer.timing.lease();
        let bounds = Bounds {
            max_lag: self.cfg.sweep_interval * 2
                + lease
                + self.cfg.visibility_timeout
                + Duration::from_secs(5),
        };
        let violations = record::check(&w.rec, &self.work, bounds);
        let mut batches: Vec<_> = w
            .rec
            .deliveries
            .iter()
            .filter(|d| d.acked)
            .map(|d| d.batch.batch_id)
            .collect();
        batches.sort();
        batches.dedup();
        let mut traces = Vec::new();
        let mut shown = Vec::new();
        for v in &violations {
            let Some(c) = v.conversation else { continue };
            if shown.contains(&c) || shown.len() >= 2 {
                continue;
            }
            shown.push(c);
            let key = &self.work.conversations[c].key;
            let mut t = format!(
                "  trace of conversation #{c} ({}, hash {}):\n",
                key.provider,
                key.log_hash(b"sim"),
            );
            let (from, to) = v.around.map_or((Millis(0), Millis(u64::MAX)), |(a, b)| {
                (
                    Millis(a.0.saturating_sub(30_000)),
                    b.plus(Duration::from_secs(1)),
                )
            });
            let events: Vec<_> = w.rec.traces[c]
                .iter()
                .filter(|(at, _)| *at >= from && *at <= to)
                .collect();
            let skip = events.len().saturating_sub(60);
            for (at, ev) in events.into_iter().skip(skip) {
                t.push_str(&format!(
                    "    +{:>9.3}s {ev}\n",
                    at.since(start).as_secs_f64()
                ));
            }
            traces.push(t);
        }
        SimReport {
            seed: self.cfg.seed,
            protocol: self.cfg.protocol,
            messages: w.rec.accepted_count,
            batches: batches.len(),
            faults: w.rec.faults,
            violations,
            dead_letters: w.dlq,
            simulated: w.now.since(start),
            traces,
        }
    }
}
