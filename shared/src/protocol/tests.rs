//! The protocol's executors (append, flush, sweep) over the in-memory adapters: what each one
//! writes, counts and answers, including lost races, duplicates, the hand-off budget, the backoff
//! formula and the sweep's bounded concurrency. The simulator checks the same code under faults;
//! these pin each decision down on its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use super::*;
use crate::batch::Batch;
use crate::counts::Counts;
use crate::key::Provider;
use crate::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use crate::ports::{Acknowledged, DedupeRecord, SinkError, StoreError, Written};
use crate::scenarios::block_on;
use crate::time::Millis;
use crate::window::Chain;

const T0: Millis = Millis(1_767_225_600_000);

fn key(user: &str) -> ConversationKey {
    ConversationKey::new(Provider::Meta, "pn", user)
}

/// A store that answers the next `n` conditional writes with a conflict (the record unchanged),
/// as if another writer won each race, and counts the records read.
#[derive(Clone, Default)]
struct RacingStore {
    inner: MemoryStore,
    conflicts: Arc<Mutex<u32>>,
    loads: Arc<AtomicUsize>,
}

impl RacingStore {
    fn lose_next(&self, n: u32) {
        *self.conflicts.lock().unwrap() = n;
    }

    fn take_conflict(&self) -> bool {
        let mut left = self.conflicts.lock().unwrap();
        let lose = *left > 0;
        *left = left.saturating_sub(u32::from(lose));
        lose
    }

    fn latest(&self, key: &ConversationKey) -> Option<Box<Conversation>> {
        self.inner.load_now(key).map(Box::new)
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

impl WindowStore for RacingStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        if self.take_conflict() {
            return Ok(Written::Conflict(self.latest(&next.key)));
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
        if self.take_conflict() {
            return Ok(Written::Conflict(self.latest(&next.key)));
        }
        self.inner.replace(expected, next).await
    }
    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        self.inner.due(now, limit).await
    }
}

/// Pending once (waking itself), then ready: a sink call that takes a turn of the executor.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A sink whose calls take a turn, recording how many were in flight at once.
#[derive(Clone, Default)]
struct SlowSink {
    inner: MemorySink,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Sink for SlowSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        YieldOnce(false).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.deliver(batch, within).await
    }
}

/// A clock whose randomness is one fixed number, so the backoff's jitter is known.
#[derive(Clone)]
struct FixedRandom(ManualClock, u64);

impl Clock for FixedRandom {
    fn now(&self) -> Millis {
        self.0.now()
    }
    async fn sleep(&self, d: Duration) {
        self.0.advance(d);
    }
    fn random(&self) -> u64 {
        self.1
    }
}

struct World<S: WindowStore + Clone, K: Sink> {
    store: S,
    trigger: MemoryTrigger,
    sink: K,
    clock: ManualClock,
    buffer: Buffer<S, MemoryTrigger, K, ManualClock>,
}

fn world_with<S: WindowStore + Clone, K: Sink + Clone>(
    store: S,
    sink: K,
    config: BufferConfig,
) -> World<S, K> {
    let trigger = MemoryTrigger::new();
    let clock = ManualClock::new(T0, 11);
    let buffer = Buffer::new(
        store.clone(),
        trigger.clone(),
        sink.clone(),
        clock.clone(),
        config,
    );
    World {
        store,
        trigger,
        sink,
        clock,
        buffer,
    }
}

fn world() -> World<MemoryStore, MemorySink> {
    world_with(
        MemoryStore::new(),
        MemorySink::new(),
        BufferConfig::default(),
    )
}

fn passthrough() -> Policy {
    Policy {
        buffering: false,
        ..Policy::default()
    }
}

impl<S: WindowStore + Clone, K: Sink> World<S, K> {
    fn append(&self, user: &str, id: &str, policy: &Policy) -> AppendOutcome {
        block_on(
            self.buffer
                .append(&key(user), policy, Message::text(id, user, "hi")),
        )
        .expect("append")
    }

    /// Fires every trigger due now; returns their flushes' reports.
    fn fire(&self) -> Vec<FlushReport> {
        let now = self.clock.now();
        self.trigger
            .take_due(now)
            .into_iter()
            .map(|(_, t)| {
                block_on(self.buffer.flush(&t.key, Claim::Trigger { chain: t.chain }))
                    .expect("flush")
            })
            .collect()
    }
}

#[test]
fn a_due_window_is_handed_off_once_and_its_chain_ends() {
    let w = world();
    assert_eq!(
        w.append("u", "m1", &Policy::default()),
        AppendOutcome::Accepted {
            gen: T0.0,
            armed: true
        }
    );
    w.clock.advance(Duration::from_secs(8));
    let reports = w.fire();
    assert_eq!(reports.len(), 1);
    // The acknowledgement that empties the record ends the chain with it.
    assert_eq!(reports[0].end, FlushEnd::Covered);
    assert_eq!(reports[0].handed_off.len(), 1);
    let done = &reports[0].handed_off[0];
    assert_eq!((done.gen, done.messages), (T0.0, 1));
    assert_eq!(done.acked_at, T0.plus(Duration::from_secs(8)));
    let batches = w.sink.delivered();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].messages[0].id, "m1");
    let conv = w.store.load_now(&key("u")).unwrap();
    assert!(conv.is_idle() && conv.chain.is_none());
    assert!(w.trigger.is_empty());
}

#[test]
fn a_flush_yields_after_its_hand_off_budget_and_rearms_at_once() {
    let w = world_with(
        MemoryStore::new(),
        MemorySink::new(),
        BufferConfig {
            max_handoffs_per_flush: 2,
            ..BufferConfig::default()
        },
    );
    for id in ["a", "b", "c"] {
        w.append("u", id, &passthrough());
    }
    let reports = w.fire();
    assert_eq!(reports.len(), 1, "one chain");
    assert_eq!(reports[0].handed_off.len(), 2);
    assert_eq!(reports[0].end, FlushEnd::Rearmed { at: T0 });
    assert_eq!(w.sink.delivered().len(), 2);
    // The re-armed trigger hands off the rest.
    let reports = w.fire();
    assert_eq!(reports[0].handed_off.len(), 1);
    assert_eq!(reports[0].end, FlushEnd::Covered);
    let ids: Vec<_> = w
        .sink
        .delivered()
        .iter()
        .map(|b| b.messages[0].id.clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

/// A redrive runs on through the yields until nothing is left (`lull redrive` once stopped
/// after the first flush and called a yield done).
#[test]
fn a_redrive_hands_off_more_batches_than_one_flush_takes() {
    let w = world_with(
        MemoryStore::new(),
        MemorySink::new(),
        BufferConfig {
            max_handoffs_per_flush: 2,
            ..BufferConfig::default()
        },
    );
    for id in ["a", "b", "c", "d", "e"] {
        w.append("u", id, &passthrough());
    }
    let r = block_on(w.buffer.handoff().redrive(&key("u")));
    assert!(r.is_done(), "{:?}", r.end);
    assert_eq!(r.handed_off.len(), 5);
    let ids: Vec<_> = w
        .sink
        .delivered()
        .iter()
        .map(|b| b.messages[0].id.clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    assert!(w.store.load_now(&key("u")).unwrap().pending.is_empty());
}

#[test]
fn a_flush_gives_up_after_its_write_attempts_whichever_write_loses() {
    let config = BufferConfig {
        max_write_attempts: 3,
        ..BufferConfig::default()
    };
    // The close-and-lease write keeps losing.
    let w = world_with(RacingStore::default(), MemorySink::new(), config);
    w.append("u", "m1", &Policy::default());
    w.clock.advance(Duration::from_secs(8));
    let t = w.trigger.take_due(w.clock.now()).pop().unwrap().1;
    w.store.lose_next(5);
    let r = block_on(w.buffer.flush(&t.key, Claim::Trigger { chain: t.chain }));
    assert!(matches!(r, Err(FlushError::Contended(3))), "{r:?}");
    assert!(w.sink.delivered().is_empty());
    // Two lost races are within the attempts: the batch goes.
    w.store.lose_next(2);
    let r = block_on(w.buffer.flush(&t.key, Claim::Trigger { chain: t.chain })).unwrap();
    assert_eq!((r.handed_off.len(), r.end), (1, FlushEnd::Covered));

    // Ending an idle conversation's chain keeps losing.
    let w = world_with(RacingStore::default(), MemorySink::new(), config);
    let mut idle = Conversation::fresh(key("v"), T0);
    idle.restart_chain(5, T0, T0);
    w.store.inner.put_unconditionally(&idle);
    w.store.lose_next(5);
    let r = block_on(w.buffer.flush(&key("v"), Claim::Trigger { chain: 5 }));
    assert!(matches!(r, Err(FlushError::Contended(3))), "{r:?}");
    w.store.lose_next(2);
    let r = block_on(w.buffer.flush(&key("v"), Claim::Trigger { chain: 5 })).unwrap();
    assert_eq!(r.end, FlushEnd::Idle);
    assert_eq!(w.store.inner.load_now(&key("v")).unwrap().chain, None);
}

#[test]
fn sweeps_and_stale_triggers_are_counted() {
    let w = world();
    for id in ["a", "b"] {
        w.append("u", id, &passthrough());
    }
    w.append("v", "c", &passthrough());
    let chains: Vec<_> = w.trigger.take_due(w.clock.now());
    let counts = Counts::default();
    metrics::with_local_recorder(&counts, || {
        // A trigger of a chain that is no longer the live one, before anything is due: dropped.
        let mut waiting = Conversation::fresh(key("w"), T0);
        waiting.chain = Some(Chain {
            token: 1,
            armed_for: T0,
        });
        w.store.put_unconditionally(&waiting);
        let r = block_on(w.buffer.flush(&key("w"), Claim::Trigger { chain: 2 })).unwrap();
        assert_eq!(r.end, FlushEnd::Stale);
        // The live trigger of v hands off its batch: neither swept nor stale.
        let v = chains.iter().find(|(_, t)| t.key == key("v")).unwrap();
        let r = block_on(
            w.buffer
                .flush(&key("v"), Claim::Trigger { chain: v.1.chain }),
        )
        .unwrap();
        assert_eq!(r.handed_off.len(), 1);
        // u's trigger was lost: the sweep hands off both of its batches in one flush.
        let report = block_on(w.buffer.handoff().sweep(10, 4)).unwrap();
        assert_eq!(
            report,
            SweepReport {
                due: 1,
                handed_off: 2,
                failed: 0
            }
        );
    });
    assert_eq!(counts.get(crate::metrics::STALE_TRIGGERS), 1);
    assert_eq!(
        counts.get(crate::metrics::SWEPT),
        1,
        "one conversation swept"
    );
}

#[test]
fn the_backoff_doubles_per_failure_up_to_its_cap_less_a_quarter_of_jitter() {
    // With the random number fixed at 1000 the jitter is 1000 mod (base / 4 + 1).
    let r = 1000;
    let clock = FixedRandom(ManualClock::new(T0, 0), r);
    let h = Handoff::new(
        MemoryStore::new(),
        MemoryTrigger::new(),
        MemorySink::new(),
        clock,
        BufferConfig::default(),
    );
    let hold = |attempt| h.retry_at_after_error(attempt).since(T0).as_millis();
    let r = u128::from(r);
    assert_eq!(hold(0), 1000 - r % 251);
    assert_eq!(hold(1), 2000 - r % 501);
    assert_eq!(hold(2), 4000 - r % 1001);
    assert_eq!(hold(10), 60_000 - r % 15_001, "capped at retry_max");
}

#[test]
fn a_failed_hand_off_holds_the_batch_at_least_for_the_sinks_retry_after() {
    let w = world();
    w.append("u", "m1", &passthrough());
    w.sink.set_failing(Some(SinkError::Retryable {
        reason: "429".into(),
        retry_after: Some(Duration::from_secs(30)),
        status: Some(429),
    }));
    let r = w.fire().pop().unwrap();
    match r.end {
        FlushEnd::SinkFailed { retry_at, .. } => {
            assert_eq!(retry_at, T0.plus(Duration::from_secs(30)))
        }
        other => panic!("{other:?}"),
    }
    let conv = w.store.load_now(&key("u")).unwrap();
    assert_eq!(conv.head_failures(), 1);
    assert_eq!(conv.held_until(T0), Some(T0.plus(Duration::from_secs(30))));
}

#[test]
fn a_congested_append_backs_off_only_after_its_second_lost_race() {
    let w = world_with(
        RacingStore::default(),
        MemorySink::new(),
        BufferConfig::default(),
    );
    w.store.lose_next(2);
    assert!(matches!(
        w.append("u", "a", &Policy::default()),
        AppendOutcome::Accepted { .. }
    ));
    assert_eq!(w.clock.now(), T0, "two lost races: retried at once");
    // Eight more lost races back off (jittered, up to 4, 8 ... 64 ms): longer than the 3 ms the
    // first two could ever add.
    w.store.lose_next(10);
    assert!(matches!(
        w.append("u", "b", &Policy::default()),
        AppendOutcome::Accepted { .. }
    ));
    assert!(w.clock.now().since(T0) > Duration::from_millis(3));
    // Losing every race: refused after the configured attempts, nothing stored.
    let w = world_with(
        RacingStore::default(),
        MemorySink::new(),
        BufferConfig {
            max_write_attempts: 4,
            ..BufferConfig::default()
        },
    );
    w.store.lose_next(100);
    let r = block_on(
        w.buffer
            .append(&key("u"), &Policy::default(), Message::text("a", "u", "x")),
    );
    assert!(matches!(r, Err(AppendError::Contended(4))), "{r:?}");
    assert!(w.store.inner.load_now(&key("u")).is_none());
}

/// A lost race is decided again from the record the port handed back (`retry.rs`): however many
/// races a write loses, its path reads the record once.
#[test]
fn a_lost_race_is_retried_from_the_winner_the_port_returned_without_a_read() {
    let w = world_with(
        RacingStore::default(),
        MemorySink::new(),
        BufferConfig::default(),
    );
    w.store.lose_next(3);
    let AppendOutcome::Accepted { gen, armed: true } = w.append("u", "m1", &Policy::default())
    else {
        panic!("not accepted");
    };
    assert_eq!(w.store.loads(), 1, "an append that lost three races");
    // A duplicate of a window whose chain is gone restarts it; that write loses twice.
    let mut chainless = w.store.inner.load_now(&key("u")).unwrap();
    chainless.chain = None;
    w.store.inner.put_unconditionally(&chainless);
    w.trigger.lose_all();
    w.store.lose_next(2);
    assert_eq!(
        w.append("u", "m1", &Policy::default()),
        AppendOutcome::Duplicate { gen, rearmed: true }
    );
    assert_eq!(w.store.loads(), 3, "the duplicate's append and its re-arm");
    assert!(w.store.inner.load_now(&key("u")).unwrap().chain.is_some());
    assert_eq!(w.trigger.len(), 1, "the restarted chain's trigger");
}

#[test]
fn a_duplicate_rearms_only_while_its_batch_is_unacknowledged() {
    let w = world();
    w.append("u", "m1", &Policy::default());
    let gen = T0.0;
    // Its trigger was lost (a failed send): the gateway's retry re-arms the chain.
    w.trigger.lose_all();
    assert_eq!(
        w.append("u", "m1", &Policy::default()),
        AppendOutcome::Duplicate { gen, rearmed: true }
    );
    assert_eq!(w.trigger.next_at(), Some(T0.plus(Duration::from_secs(8))));
    // Handed off and acknowledged; a new message opens the next window.
    w.clock.advance(Duration::from_secs(8));
    assert_eq!(w.fire().len(), 1);
    w.append("u", "m2", &Policy::default());
    let armed = w.trigger.len();
    // A late resend of m1 is a duplicate of an acknowledged batch: nothing to re-arm.
    assert_eq!(
        w.append("u", "m1", &Policy::default()),
        AppendOutcome::Duplicate {
            gen,
            rearmed: false
        }
    );
    assert_eq!(w.trigger.len(), armed);
    assert_eq!(w.sink.delivered().len(), 1);
}

/// Acknowledged ids stay in the record while they fit its list: no dedupe record is written or
/// read for them. One pushed out of the list gets its dedupe record first, and a resend is then
/// recognised from the store.
#[test]
fn acknowledged_ids_dedupe_from_the_record_then_from_their_records_once_pushed_out() {
    let w = world_with(
        MemoryStore::new(),
        MemorySink::new(),
        BufferConfig {
            // One batch of one two-byte id.
            acked_ids_bytes: 56 + 5,
            ..BufferConfig::default()
        },
    );
    let p = Policy::default();
    w.append("u", "m1", &p);
    w.clock.advance(Duration::from_secs(8));
    assert_eq!(w.fire().len(), 1);
    assert_eq!(w.store.dedupe_len(), 0, "m1 fits the record's list");
    assert!(matches!(
        w.append("u", "m1", &p),
        AppendOutcome::Duplicate { rearmed: false, .. }
    ));
    w.append("u", "m2", &p);
    w.clock.advance(Duration::from_secs(8));
    assert_eq!(w.fire().len(), 1);
    assert_eq!(w.store.dedupe_len(), 1, "m1 pushed out, remembered");
    let conv = w.store.load_now(&key("u")).unwrap();
    assert_eq!(conv.acked.len(), 1);
    assert_eq!(conv.acked[0].ids, ["m2"]);
    for id in ["m1", "m2"] {
        assert!(
            matches!(w.append("u", id, &p), AppendOutcome::Duplicate { .. }),
            "{id}"
        );
    }
    assert!(matches!(
        w.append("u", "m3", &p),
        AppendOutcome::Accepted { .. }
    ));
    let ids: Vec<_> = w
        .sink
        .delivered()
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.id.clone()))
        .collect();
    assert_eq!(ids, ["m1", "m2"]);
}

#[test]
fn a_sweep_report_counts_hand_offs_and_failures() {
    let mut report = SweepReport::default();
    let done = HandedOff {
        gen: 1,
        batch_id: uuid::Uuid::nil(),
        reason: crate::batch::CloseReason::Quiet,
        messages: 1,
        due_at: T0,
        acked_at: T0,
    };
    report.count(&Ok(FlushReport {
        handed_off: vec![done.clone(), done],
        end: FlushEnd::Idle,
    }));
    assert_eq!((report.handed_off, report.failed), (2, 0));
    report.count(&Ok(FlushReport {
        handed_off: vec![],
        end: FlushEnd::Parked { error: None },
    }));
    report.count(&Err(FlushError::Contended(3)));
    assert_eq!((report.handed_off, report.failed), (2, 2));
}

#[test]
fn a_sweep_flushes_what_is_past_due_at_most_its_concurrency_at_a_time() {
    for concurrency in [1, 2] {
        let w = world_with(
            MemoryStore::new(),
            SlowSink::default(),
            BufferConfig::default(),
        );
        for user in ["a", "b", "c"] {
            w.append(user, "m", &Policy::default());
        }
        // Triggers lost: the sweep finds the windows by their index bound, first message + max
        // wait (30 s), not by their exact due time (8 s).
        w.trigger.lose_all();
        let sweep = |now| {
            w.clock.set(now);
            block_on(w.buffer.handoff().sweep(10, concurrency)).unwrap()
        };
        assert_eq!(
            sweep(T0.plus(Duration::from_millis(29_999))),
            SweepReport::default()
        );
        assert_eq!(
            sweep(T0.plus(Duration::from_secs(30))),
            SweepReport {
                due: 3,
                handed_off: 3,
                failed: 0
            }
        );
        assert_eq!(w.sink.most.load(Ordering::SeqCst), concurrency);
        assert_eq!(w.sink.inner.delivered().len(), 3);
        assert_eq!(
            sweep(T0.plus(Duration::from_secs(31))),
            SweepReport::default()
        );
    }
}

#[test]
fn a_sweep_counts_the_conversations_whose_sink_failed() {
    let w = world();
    for user in ["a", "b"] {
        w.append(user, "m", &passthrough());
    }
    w.trigger.lose_all();
    w.sink.set_failing(Some(SinkError::retryable("503")));
    let report = block_on(w.buffer.handoff().sweep(10, SWEEP_CONCURRENCY)).unwrap();
    assert_eq!(
        report,
        SweepReport {
            due: 2,
            handed_off: 0,
            failed: 2
        }
    );
}
