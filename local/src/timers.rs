//! Local triggers: an in-process timer heap, and the task that fires it.
//!
//! [`LocalTrigger::arm`] pushes an entry; [`run`] sleeps until the earliest one is due, pops it
//! and runs the core's flush for it on its own task, so a slow sink holds back only its own
//! conversation. What happens after a flush is the core's decision
//! ([`lull_core::protocol::Disposition`]): done, retry at the time the core chose (the end of a
//! failed batch's backoff hold), or wait for an operator (a parked batch). The batch stays
//! pending in the store meanwhile, never dropped.
//!
//! The heap is memory only, and that is enough: at start-up the server re-arms every conversation
//! in the store's due index ([`TimerQueue::arm_scheduled`]), so a restart resumes every pending
//! window, and the periodic sweep catches anything a lost entry would strand.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lull_core::ports::{Clock, Sink, Trigger, TriggerError, TriggerMsg, WindowStore};
use lull_core::protocol::{Claim, Disposition, FlushEnd, Handoff};
use lull_core::{Conversation, ConversationKey, Millis};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One armed wake-up.
#[derive(Clone, Debug)]
struct Entry {
    at: Millis,
    seq: u64,
    key: ConversationKey,
    claim: Claim,
    /// Flushes of this entry that failed with an error in a row (drives the core's backoff).
    errors: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The timer heap, shared by the trigger handles and the firing task.
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: Mutex<BinaryHeap<Entry>>,
    seq: AtomicU64,
    wake: Notify,
}

impl TimerQueue {
    fn push(&self, key: ConversationKey, claim: Claim, at: Millis, errors: u32) {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = heap.peek().is_none_or(|e| at < e.at);
        heap.push(Entry {
            at,
            seq,
            key,
            claim,
            errors,
        });
        drop(heap);
        if earliest {
            // One waiter (the firing task); `notify_one` keeps a permit if it is not waiting yet.
            self.wake.notify_one();
        }
    }

    fn pop_due(&self, now: Millis) -> Vec<Entry> {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while heap.peek().is_some_and(|e| e.at <= now) {
            if let Some(e) = heap.pop() {
                due.push(e);
            }
        }
        due
    }

    fn next_at(&self) -> Option<Millis> {
        let heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        heap.peek().map(|e| e.at)
    }

    /// Number of armed wake-ups.
    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Arms a wake-up for each conversation read from the store's due index at start-up: its live
    /// chain at its due time (at once when it fell due while the server was down), or a sweep
    /// claim when it has no chain to resume. A parked batch waits for a redrive.
    pub fn arm_scheduled(&self, conversations: &[Conversation]) {
        for c in conversations {
            let Some(due) = c.due_at() else { continue };
            let claim = match c.chain {
                Some(ch) => Claim::Trigger { chain: ch.token },
                None => Claim::Sweep,
            };
            self.push(c.key.clone(), claim, due, 0);
        }
    }

    /// Re-delivers now: a redrive of each conversation (backoff holds and parks lifted).
    pub fn redrive(&self, conversations: &[Conversation], now: Millis) {
        for c in conversations {
            self.push(c.key.clone(), Claim::Redrive, now, 0);
        }
    }
}

/// The `Trigger` port on one machine: arming pushes onto the shared timer heap.
#[derive(Clone, Debug, Default)]
pub struct LocalTrigger {
    queue: Arc<TimerQueue>,
}

impl LocalTrigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The heap this trigger arms.
    pub fn queue(&self) -> &Arc<TimerQueue> {
        &self.queue
    }
}

impl Trigger for LocalTrigger {
    async fn arm(&self, msg: &TriggerMsg, at: Millis) -> Result<(), TriggerError> {
        self.queue
            .push(msg.key.clone(), Claim::Trigger { chain: msg.chain }, at, 0);
        Ok(())
    }
}

/// How the firing task runs flushes.
#[derive(Clone, Debug)]
pub struct TimerSettings {
    /// At most this many flushes (hand-offs) run at once.
    pub max_concurrent: usize,
    /// The secret for `ConversationKey::log_hash` in logs.
    pub log_secret: Arc<[u8]>,
}

/// The firing task: pops due entries and flushes each on its own task (tracked by `flushes`, so
/// shutdown can wait for hand-offs in flight). Returns on shutdown without starting new flushes.
pub async fn run<S, K, C>(
    handoff: Arc<Handoff<S, LocalTrigger, K, C>>,
    queue: Arc<TimerQueue>,
    clock: C,
    settings: TimerSettings,
    flushes: TaskTracker,
    shutdown: CancellationToken,
) where
    S: WindowStore + 'static,
    K: Sink + 'static,
    C: Clock + 'static,
{
    let permits = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
    while !shutdown.is_cancelled() {
        let now = clock.now();
        for entry in queue.pop_due(now) {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p,
                _ = shutdown.cancelled() => {
                    // Not started: leave it in the heap's place (the store still holds it).
                    queue.push(entry.key, entry.claim, entry.at, entry.errors);
                    continue;
                }
            };
            let Ok(permit) = permit else { return };
            let handoff = handoff.clone();
            let queue = queue.clone();
            let settings = settings.clone();
            flushes.spawn(async move {
                flush_one(&handoff, &queue, entry, &settings).await;
                drop(permit);
            });
        }
        // Sleep until the earliest entry is due (a millisecond past it: the wall clock and
        // tokio's timer disagree by less than that, and early is never allowed), or until an
        // earlier entry is pushed, or until shutdown.
        let wait = queue.next_at().map_or(Duration::from_secs(3600), |at| {
            at.since(clock.now()) + Duration::from_millis(1)
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = queue.wake.notified() => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Runs one flush and does what the core says its end means.
async fn flush_one<S, K, C>(
    handoff: &Handoff<S, LocalTrigger, K, C>,
    queue: &TimerQueue,
    entry: Entry,
    settings: &TimerSettings,
) where
    S: WindowStore,
    K: Sink,
    C: Clock,
{
    let conv = entry.key.log_hash(&settings.log_secret);
    // A retried redrive is a sweep: the backoff the core chose must hold this time.
    let retry_claim = match entry.claim {
        Claim::Redrive => Claim::Sweep,
        c => c,
    };
    match handoff.flush(&entry.key, entry.claim).await {
        Ok(report) => {
            for h in &report.handed_off {
                tracing::info!(
                    conversation = %conv,
                    batch_id = %h.batch_id,
                    gen = h.gen,
                    reason = h.reason.as_str(),
                    messages = h.messages,
                    lag_ms = h.acked_at.since(h.due_at).as_millis() as u64,
                    "batch handed off"
                );
            }
            match report.end.disposition() {
                Disposition::Done => {
                    tracing::debug!(conversation = %conv, end = ?report.end, "flush done");
                }
                Disposition::RetryAt(at) => {
                    if let FlushEnd::SinkFailed { error, .. } = &report.end {
                        tracing::warn!(
                            conversation = %conv,
                            retry_in_ms = at.since(Millis::now_wall()).as_millis() as u64,
                            error = %error,
                            "hand-off failed; the batch stays pending and will be retried"
                        );
                    }
                    queue.push(entry.key, retry_claim, at, 0);
                }
                Disposition::Operator => {
                    let error = match &report.end {
                        FlushEnd::Parked { error } => error.clone().unwrap_or_default(),
                        _ => String::new(),
                    };
                    tracing::error!(
                        conversation = %conv,
                        error = %error,
                        "the sink refused a batch: parked (pending, not lost) until `lull redrive`"
                    );
                }
            }
        }
        Err(e) => {
            let at = handoff.retry_at_after_error(entry.errors);
            tracing::warn!(
                conversation = %conv,
                attempt = entry.errors + 1,
                error = %e,
                "flush failed; the batch stays pending and will be retried"
            );
            queue.push(entry.key, retry_claim, at, entry.errors.saturating_add(1));
        }
    }
}
