//! Local triggers: an in-process timer heap, and the task that fires it.
//!
//! [`LocalTrigger::arm`] pushes an entry; [`run`] sleeps until the earliest one is due, pops it
//! and runs `Buffer::flush` for it on its own task, so a slow sink holds back only its own
//! conversation. A flush whose sink failed (or that hit a store error) is pushed back with
//! exponential backoff and jitter: the batch stays pending in the store and is retried, never
//! dropped.
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
use lull_core::protocol::{FlushEnd, FlushMode};
use lull_core::{Buffer, Conversation, Millis};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;

/// One armed wake-up.
#[derive(Clone, Debug)]
struct Entry {
    at: Millis,
    seq: u64,
    msg: TriggerMsg,
    mode: FlushMode,
    /// Failed hand-offs so far (drives the backoff).
    attempt: u32,
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
    fn push(&self, msg: TriggerMsg, at: Millis, mode: FlushMode, attempt: u32) {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = heap.peek().is_none_or(|e| at < e.at);
        heap.push(Entry {
            at,
            seq,
            msg,
            mode,
            attempt,
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
    /// chain at its due time (at once when it fell due while the server was down), or a sweep-mode
    /// flush when it has no chain to resume.
    pub fn arm_scheduled(&self, conversations: &[Conversation]) {
        for c in conversations {
            let Some(due) = c.due_at() else { continue };
            let msg = TriggerMsg {
                key: c.key.clone(),
                chain: c.chain.map_or(0, |ch| ch.token),
                gen: c.gen,
                ver: c.ver,
                due,
            };
            let mode = if c.chain.is_some() {
                FlushMode::Trigger
            } else {
                FlushMode::Sweep
            };
            self.push(msg, due, mode, 0);
        }
    }

    /// Re-delivers now: a sweep-mode flush of each conversation, with a fresh backoff.
    pub fn redrive(&self, conversations: &[Conversation], now: Millis) {
        for c in conversations {
            let msg = TriggerMsg {
                key: c.key.clone(),
                chain: c.chain.map_or(0, |ch| ch.token),
                gen: c.gen,
                ver: c.ver,
                due: now,
            };
            self.push(msg, now, FlushMode::Redrive, 0);
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
        self.queue.push(msg.clone(), at, FlushMode::Trigger, 0);
        Ok(())
    }
}

/// How the firing task runs flushes.
#[derive(Clone, Debug)]
pub struct TimerSettings {
    pub backoff: Backoff,
    /// At most this many flushes (hand-offs) run at once.
    pub max_concurrent: usize,
    /// The secret for `ConversationKey::log_hash` in logs.
    pub log_secret: Arc<[u8]>,
}

/// The firing task: pops due entries and flushes each on its own task (tracked by `flushes`, so
/// shutdown can wait for hand-offs in flight). Returns on shutdown without starting new flushes.
pub async fn run<S, K, C>(
    buffer: Arc<Buffer<S, LocalTrigger, K, C>>,
    settings: TimerSettings,
    flushes: TaskTracker,
    shutdown: CancellationToken,
) where
    S: WindowStore + 'static,
    K: Sink + 'static,
    C: Clock + 'static,
{
    let queue = buffer.trigger.queue().clone();
    let permits = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
    while !shutdown.is_cancelled() {
        let now = buffer.clock.now();
        for entry in queue.pop_due(now) {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p,
                _ = shutdown.cancelled() => {
                    // Not started: leave it in the heap's place (the store still holds it).
                    queue.push(entry.msg, entry.at, entry.mode, entry.attempt);
                    continue;
                }
            };
            let Ok(permit) = permit else { return };
            let buffer = buffer.clone();
            let settings = settings.clone();
            flushes.spawn(async move {
                flush_one(&buffer, entry, &settings).await;
                drop(permit);
            });
        }
        // Sleep until the earliest entry is due (a millisecond past it: the wall clock and
        // tokio's timer disagree by less than that, and early is never allowed), or until an
        // earlier entry is pushed, or until shutdown.
        let wait = queue.next_at().map_or(Duration::from_secs(3600), |at| {
            at.since(buffer.clock.now()) + Duration::from_millis(1)
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = queue.wake.notified() => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

async fn flush_one<S, K, C>(
    buffer: &Buffer<S, LocalTrigger, K, C>,
    entry: Entry,
    settings: &TimerSettings,
) where
    S: WindowStore,
    K: Sink,
    C: Clock,
{
    let conv = entry.msg.key.log_hash(&settings.log_secret);
    let failure = match buffer.flush(&entry.msg, entry.mode).await {
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
            match report.end {
                FlushEnd::SinkFailed(e) => e.to_string(),
                // Held after a failure: come back when the hold ends, same attempt count.
                FlushEnd::BackingOff { until } => {
                    tracing::debug!(conversation = %conv, "batch held after a failure");
                    buffer
                        .trigger
                        .queue()
                        .push(entry.msg, until, entry.mode, entry.attempt);
                    return;
                }
                end => {
                    tracing::debug!(conversation = %conv, ?end, "flush done");
                    return;
                }
            }
        }
        Err(e) => e.to_string(),
    };
    let delay = settings.backoff.delay(entry.attempt);
    tracing::warn!(
        conversation = %conv,
        attempt = entry.attempt + 1,
        retry_in_ms = delay.as_millis() as u64,
        error = %failure,
        "hand-off failed; the batch stays pending and will be retried"
    );
    let at = buffer.clock.now().plus(delay);
    buffer
        .trigger
        .queue()
        .push(entry.msg, at, entry.mode, entry.attempt.saturating_add(1));
}
