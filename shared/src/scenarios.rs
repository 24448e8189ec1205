//! The named scenarios: the seed failure and its neighbours, run on the in-memory adapters with
//! a manual clock (8 s quiet period, 30 s max wait, a sink that acknowledges at once). The tests
//! assert on them and `lull demo` prints their timelines.
//!
//! Two of them need an event in the middle of another: a message arriving while a batch is being
//! handed off, and a trigger firing while an append is between its read and its write. Both are
//! staged with a hook inside the port call (the sink's `deliver`, the store's `append`), so the
//! interleaving is exact and the run deterministic.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::batch::Batch;
use crate::key::{ConversationKey, Provider};
use crate::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use crate::message::Message;
use crate::policy::Policy;
use crate::ports::{
    Acknowledged, DedupeRecord, Sink, SinkError, StoreError, TriggerMsg, WindowStore, Written,
};
use crate::protocol::{AppendOutcome, Buffer, BufferConfig, Claim, FlushEnd, FlushReport};
use crate::time::Millis;
use crate::window::Conversation;

/// One line of a scenario's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Time since the scenario started.
    pub at: Duration,
    pub what: String,
}

/// A batch as the sink received it, and when.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Duration,
    pub batch: Batch,
}

/// The outcome of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioRun {
    pub name: &'static str,
    pub about: &'static str,
    pub timeline: Vec<TimelineEntry>,
    pub received: Vec<Received>,
}

impl ScenarioRun {
    /// The message ids of each batch received, in order.
    pub fn batches(&self) -> Vec<Vec<String>> {
        self.received
            .iter()
            .map(|r| r.batch.messages.iter().map(|m| m.id.clone()).collect())
            .collect()
    }
}

/// All scenarios, in the order `lull demo` shows them.
pub fn all() -> Vec<ScenarioRun> {
    vec![
        two_messages_inside_the_quiet_period(),
        three_messages_across_the_quiet_edge(),
        message_during_hand_off(),
        trigger_during_append(),
        chatty_user_hits_max_wait(),
    ]
}

const T0: Millis = Millis(1_767_225_600_000);

fn key() -> ConversationKey {
    ConversationKey::new(Provider::Meta, "106540352242922", "16505551234")
}

/// Runs a future whose ports never wait (in-memory adapters, manual clock) to completion.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

type Log = Arc<Mutex<Vec<TimelineEntry>>>;

fn note(log: &Log, clock: &ManualClock, what: String) {
    let at = crate::ports::Clock::now(clock).since(T0);
    if let Ok(mut l) = log.lock() {
        l.push(TimelineEntry { at, what });
    }
}

/// A sink that records what it received and, once, runs a hook in the middle of a hand-off.
#[derive(Clone)]
struct HookSink {
    inner: MemorySink,
    hook: Arc<Mutex<Option<Hook>>>,
}

type Hook = Box<dyn FnOnce() + Send>;

impl Sink for HookSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let hook = self.hook.lock().ok().and_then(|mut h| h.take());
        if let Some(hook) = hook {
            hook();
        }
        self.inner.deliver(batch, within).await
    }
}

/// A store that, once, runs a hook between an append's read and its write.
#[derive(Clone)]
struct HookStore {
    inner: MemoryStore,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl WindowStore for HookStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.inner.load(key).await
    }
    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        let hook = self.hook.lock().ok().and_then(|mut h| h.take());
        if let Some(hook) = hook {
            hook();
        }
        self.inner.append(expected, next).await
    }
    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        self.inner.seen(key, message_id, now).await
    }
    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        self.inner.remember(records).await
    }
    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        self.inner.replace(expected, next).await
    }
    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        self.inner.due(now, limit).await
    }
}

type Plain = Buffer<MemoryStore, MemoryTrigger, MemorySink, ManualClock>;

/// The shared parts of a scenario: one store, trigger queue, sink and clock.
#[derive(Clone)]
struct Stage {
    store: MemoryStore,
    trigger: MemoryTrigger,
    sink: MemorySink,
    clock: ManualClock,
    log: Log,
    policy: Policy,
}

impl Stage {
    fn new() -> Stage {
        Stage {
            store: MemoryStore::new(),
            trigger: MemoryTrigger::new(),
            sink: MemorySink::new(),
            clock: ManualClock::new(T0, 7),
            log: Arc::new(Mutex::new(Vec::new())),
            policy: Policy::default(),
        }
    }

    fn plain(&self) -> Plain {
        Buffer::new(
            self.store.clone(),
            self.trigger.clone(),
            self.sink.clone(),
            self.clock.clone(),
            BufferConfig::default(),
        )
    }

    fn set(&self, t_ms: u64) {
        self.clock.set(Millis(T0.0 + t_ms));
    }

    fn say(&self, what: String) {
        note(&self.log, &self.clock, what);
    }

    fn append_with<S, T, K>(&self, b: &Buffer<S, T, K, ManualClock>, id: &str, text: &str)
    where
        S: WindowStore,
        T: crate::ports::Trigger,
        K: Sink,
    {
        self.say(format!("message {id} arrives: {text:?}"));
        let out = block_on(b.append(&key(), &self.policy, Message::text(id, "16505551234", text)));
        let what = match out {
            Ok(AppendOutcome::Accepted { armed: true, .. }) => {
                format!("  {id} stored; trigger armed")
            }
            Ok(AppendOutcome::Accepted { .. }) => {
                format!("  {id} stored; the armed trigger already covers it")
            }
            Ok(AppendOutcome::Duplicate { .. }) => format!("  {id} is a duplicate"),
            Ok(AppendOutcome::Stale) => format!("  {id} is older than the dedupe horizon: skipped"),
            Err(e) => format!("  {id} refused: {e}"),
        };
        self.say(what);
    }

    fn send(&self, t_ms: u64, id: &str, text: &str) {
        self.set(t_ms);
        self.append_with(&self.plain(), id, text);
    }

    fn report(&self, r: Result<FlushReport, crate::protocol::FlushError>) {
        match r {
            Ok(rep) => {
                for h in &rep.handed_off {
                    self.say(format!(
                        "  batch gen +{} ({} msgs, reason {}) acknowledged by the sink",
                        h.gen.saturating_sub(T0.0),
                        h.messages,
                        h.reason.as_str()
                    ));
                }
                let end = match rep.end {
                    FlushEnd::Stale => "stale trigger dropped".to_string(),
                    FlushEnd::Idle => "nothing left; trigger chain ended".to_string(),
                    FlushEnd::Rearmed { at } => format!(
                        "window not due yet; re-armed for +{:.1}s",
                        at.since(T0).as_secs_f64()
                    ),
                    FlushEnd::Waiting { until } => format!(
                        "another hand-off is in flight; waits (re-armed for +{:.1}s)",
                        until.since(T0).as_secs_f64()
                    ),
                    FlushEnd::Covered => "done; the live trigger covers the rest".to_string(),
                    FlushEnd::SinkFailed { error, retry_at } => format!(
                        "sink failed: {error}; held until +{:.1}s",
                        retry_at.since(T0).as_secs_f64()
                    ),
                    FlushEnd::Parked { error } => format!(
                        "the sink refused the batch ({}); parked for an operator",
                        error.as_deref().unwrap_or("?")
                    ),
                    FlushEnd::LeaseLost => {
                        "acknowledged after the lease was taken over; nothing recorded".to_string()
                    }
                    FlushEnd::BackingOff { until } => format!(
                        "the batch failed recently; held until +{:.1}s",
                        until.since(T0).as_secs_f64()
                    ),
                };
                self.say(format!("  flush: {end}"));
            }
            Err(e) => self.say(format!("  flush failed: {e}")),
        }
    }

    /// Fires every trigger due by `t_ms`, in time order, through `b`.
    fn run_until_with<S, T, K>(&self, b: &Buffer<S, T, K, ManualClock>, t_ms: u64)
    where
        S: WindowStore,
        T: crate::ports::Trigger,
        K: Sink,
    {
        let end = Millis(T0.0 + t_ms);
        while let Some(at) = self.trigger.next_at().filter(|at| *at <= end) {
            self.clock
                .set(at.max(crate::ports::Clock::now(&self.clock)));
            for (_, trig) in self.trigger.take_due(at) {
                self.say("trigger fires".into());
                let r = block_on(b.flush(&trig.key, Claim::Trigger { chain: trig.chain }));
                self.report(r);
            }
        }
        self.clock.set(end);
    }

    fn run_until(&self, t_ms: u64) {
        self.run_until_with(&self.plain(), t_ms);
    }

    fn finish(self, name: &'static str, about: &'static str) -> ScenarioRun {
        let received = self
            .sink
            .delivered()
            .into_iter()
            .map(|batch| Received {
                at: batch.closed_at.since(T0),
                batch,
            })
            .collect();
        let timeline = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        ScenarioRun {
            name,
            about,
            timeline,
            received,
        }
    }
}

/// Messages at t=0 and t=7.8 s: one batch of both (the seed failure lost the second).
pub fn two_messages_inside_the_quiet_period() -> ScenarioRun {
    let s = Stage::new();
    s.send(0, "m1", "hi");
    s.send(7_800, "m2", "I want to order");
    s.run_until(60_000);
    s.finish(
        "quiet-edge",
        "messages at t=0 and t=7.8s give one batch of both",
    )
}

/// Messages at t=0, 7.8 and 8.1 s: one batch of three.
pub fn three_messages_across_the_quiet_edge() -> ScenarioRun {
    let s = Stage::new();
    s.send(0, "m1", "hi");
    s.send(7_800, "m2", "I want to order");
    s.run_until(8_100);
    s.send(8_100, "m3", "2 pizzas, one vegan");
    s.run_until(60_000);
    s.finish(
        "quiet-edge-three",
        "t=0, 7.8s, 8.1s give one batch of three",
    )
}

/// A message arrives while the previous batch is being handed off: it goes into the next batch,
/// which is handed off only after the first is acknowledged (a duplicate trigger that fires
/// meanwhile waits).
pub fn message_during_hand_off() -> ScenarioRun {
    let s = Stage::new();
    let hook_stage = s.clone();
    let hook: Hook = Box::new(move || {
        let st = hook_stage;
        st.say("  (sink is still busy with the first batch)".into());
        st.set(11_500);
        st.append_with(&st.plain(), "m3", "and a coke");
        st.set(20_000);
        st.say("a duplicate trigger fires while the first hand-off is in flight".into());
        if let Some(conv) = st.store.load_now(&key()) {
            if let Some(chain) = conv.chain {
                let trig = TriggerMsg {
                    key: key(),
                    chain: chain.token,
                    gen: conv.gen,
                    ver: conv.ver,
                    due: Millis(T0.0 + 20_000),
                };
                let r = block_on(
                    st.plain()
                        .flush(&trig.key, Claim::Trigger { chain: trig.chain }),
                );
                st.report(r);
            }
        }
        st.say("  (the sink acknowledges the first batch)".into());
    });
    let hooked = Buffer::new(
        s.store.clone(),
        s.trigger.clone(),
        HookSink {
            inner: s.sink.clone(),
            hook: Arc::new(Mutex::new(Some(hook))),
        },
        s.clock.clone(),
        BufferConfig::default(),
    );
    s.send(0, "m1", "hi");
    s.send(3_000, "m2", "I want to order");
    s.run_until_with(&hooked, 60_000);
    s.finish("during-hand-off", "a message during a hand-off goes into the next batch, handed off after the first is acknowledged")
}

/// The trigger fires while an append is between its read and its write: the write loses the
/// version race, the append retries into the next window, and the message is not lost.
pub fn trigger_during_append() -> ScenarioRun {
    let s = Stage::new();
    s.send(0, "m1", "hi");
    let hook_stage = s.clone();
    let hook: Hook = Box::new(move || {
        let st = hook_stage;
        st.say("  (m2's append has read the window and is about to write)".into());
        st.run_until(8_000);
    });
    let hooked = Buffer::new(
        HookStore {
            inner: s.store.clone(),
            hook: Arc::new(Mutex::new(Some(hook))),
        },
        s.trigger.clone(),
        s.sink.clone(),
        s.clock.clone(),
        BufferConfig::default(),
    );
    s.set(7_999);
    s.append_with(&hooked, "m2", "I want to order");
    s.say("  (m2's first write conflicted with the flush and was retried)".into());
    s.run_until(60_000);
    s.finish(
        "trigger-during-append",
        "a trigger firing during an append never loses the message",
    )
}

/// A user who writes every 5 s for 60 s: max wait closes a batch at least every 30 s.
pub fn chatty_user_hits_max_wait() -> ScenarioRun {
    let s = Stage::new();
    for i in 0..=12u64 {
        s.run_until(i * 5_000);
        s.send(i * 5_000, &format!("m{}", i + 1), "...");
    }
    s.run_until(120_000);
    s.finish(
        "chatty-user",
        "a user who writes every 5 s for 60 s gets batches no more than 30 s apart",
    )
}
