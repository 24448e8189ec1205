//! The driver: does what the shells and the world around them do (webhook requests with gateway
//! retries, an SQS-like trigger queue, the periodic sweep, the bot behind the sink), one event
//! at a time, and polls the system under test's futures as their port calls complete. The
//! sweep's passes (`driver/sweep.rs`), the bot's AI step and reply guard (`driver/bot.rs`) and
//! the report at the end of a run (`driver/report.rs`) are files of their own.

mod bot;
mod report;
mod sweep;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lull_core::counts::Counts;
use lull_core::time::Millis;
use lull_core::ConversationKey;

use crate::ai_step::{BotCall, BotMode};
use crate::amends;
use crate::config::SimConfig;
use crate::exec::{self, Attempt, Event, OpId, OpResult, SimPorts, TaskId, World};
use crate::record::Recorder;
use crate::record::TraceEvent;
use crate::report::SimReport;
use crate::sut::{Answer, Boxed, Flushed, SystemUnderTest};
use crate::workload::{self, Workload};

pub(crate) enum TaskKind {
    Append {
        msg: usize,
    },
    Signal {
        signal: usize,
        started: Millis,
    },
    Flush {
        sqs: u64,
    },
    Sweep,
    SweepOne {
        key: ConversationKey,
    },
    /// The bot's GET of a reply guard.
    Guard {
        call: Box<BotCall>,
    },
}

pub(crate) enum TaskOutput {
    Append(Answer),
    /// A presence event, pause or resume ended; true for a pause or resume lull answered as stored.
    Signal(bool),
    Flush(Flushed),
    /// The sweep's query: the conversations past due.
    Sweep(Vec<ConversationKey>),
    /// A reply guard's answer, or why there was none.
    Guard(Result<crate::guard::GuardAnswer, String>),
}

pub(crate) type TaskFuture = Boxed<TaskOutput>;

pub(crate) struct Driver {
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

/// One run, tracing the conversations in `traced`.
pub(crate) fn run_traced(cfg: &SimConfig, traced: &[usize]) -> SimReport {
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
    world.bots = cfg.ai_step.then(|| {
        (work.conversations.iter().enumerate())
            .map(|(i, c)| BotMode::for_conversation(i, &c.policy))
            .collect()
    });
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

pub(crate) fn lock(w: &Mutex<World>) -> std::sync::MutexGuard<'_, World> {
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
            Event::Generated { call } => self.generated(call),
            Event::Ask { call } => self.ask(call),
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
                TaskKind::Guard { call } => self.guard_done(call, Err("crashed".into()), None),
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
                if matches!(answer, Answer::Accepted) {
                    w.rec.guard.last_accepted[m.conv] = now;
                }
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
            (TaskKind::Guard { call }, TaskOutput::Guard(said)) => {
                self.guard_done(call, said, state.read_at)
            }
            (_, _) => {}
        }
    }
}
