//! In-memory adapters: the reference `WindowStore` (the contract the DynamoDB and SQLite stores
//! must match), a recording `Trigger` and `Sink`, and a manual `Clock`. Tests and the router use
//! them directly; the simulator drives the same store through its fault-injecting scheduler.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::batch::Batch;
use crate::key::ConversationKey;
use crate::ports::{
    Acknowledged, Clock, DedupeRecord, Sink, SinkError, StoreError, Trigger, TriggerError,
    TriggerMsg, WindowStore, Written,
};
use crate::time::Millis;
use crate::window::{Conversation, STORE_ITEM_LIMIT, STORE_KEY_LIMIT};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default, Debug)]
struct Tables {
    conversations: HashMap<ConversationKey, Conversation>,
    dedupe: HashMap<(ConversationKey, String), DedupeRecord>,
    /// The sparse due-time index: (due, key).
    due_index: BTreeSet<(Millis, ConversationKey)>,
}

impl Tables {
    fn put(&mut self, next: &Conversation) {
        if let Some(old) = self.conversations.get(&next.key) {
            if let Some(d) = old.index_due() {
                self.due_index.remove(&(d, next.key.clone()));
            }
        }
        if let Some(d) = next.index_due() {
            self.due_index.insert((d, next.key.clone()));
        }
        self.conversations.insert(next.key.clone(), next.clone());
    }

    fn version_matches(&self, key: &ConversationKey, expected: Option<u64>) -> bool {
        self.conversations.get(key).map(|c| c.ver) == expected
    }

    fn current(&self, key: &ConversationKey) -> Option<Box<Conversation>> {
        self.conversations.get(key).cloned().map(Box::new)
    }
}

/// DynamoDB's limits, which every store must meet: a conversation item (key, version, due-index
/// numbers and the encoded record) within [`STORE_ITEM_LIMIT`], and its key within
/// [`STORE_KEY_LIMIT`] (dedupe keys: [`dedupe_key_within_limit`]). A write that breaks them
/// fails whole, as DynamoDB's does.
fn within_limits(next: &Conversation) -> Result<(), StoreError> {
    let key = next.key.storage_key().len() as u64;
    if key + 2 > STORE_KEY_LIMIT {
        return Err(StoreError::TooLarge(format!(
            "key of {} bytes is over the store's {STORE_KEY_LIMIT}",
            key + 2
        )));
    }
    // The item's other attributes: its key, names and numbers (generously).
    let item = next.encoded_len() + key + 128;
    if item > STORE_ITEM_LIMIT {
        return Err(StoreError::TooLarge(format!(
            "item of {item} bytes is over the store's {STORE_ITEM_LIMIT}"
        )));
    }
    Ok(())
}

/// A dedupe record's key (conversation key and message id) within [`STORE_KEY_LIMIT`].
fn dedupe_key_within_limit(d: &DedupeRecord) -> Result<(), StoreError> {
    let dedupe_key = d.key.storage_key().len() as u64 + d.message_id.len() as u64 + 8;
    if dedupe_key > STORE_KEY_LIMIT {
        return Err(StoreError::TooLarge(format!(
            "dedupe key of {dedupe_key} bytes is over the store's {STORE_KEY_LIMIT}"
        )));
    }
    Ok(())
}

/// The reference store: a `HashMap` behind a mutex, with the exact conditional semantics every
/// other store must have (the contract tests run against all of them).
#[derive(Clone, Default, Debug)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Synchronous [`WindowStore::load`].
    pub fn load_now(&self, key: &ConversationKey) -> Option<Conversation> {
        lock(&self.tables).conversations.get(key).cloned()
    }

    /// Synchronous [`WindowStore::append`].
    pub fn append_now(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        within_limits(next)?;
        let mut t = lock(&self.tables);
        if !t.version_matches(&next.key, expected) {
            return Ok(Written::Conflict(t.current(&next.key)));
        }
        t.put(next);
        Ok(Written::Ok)
    }

    /// Synchronous [`WindowStore::seen`].
    pub fn seen_now(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Option<DedupeRecord> {
        let t = lock(&self.tables);
        t.dedupe
            .get(&(key.clone(), message_id.to_string()))
            .filter(|d| d.expires_at >= now)
            .cloned()
    }

    /// Synchronous [`WindowStore::remember`]: all or nothing (the key limits are checked first).
    pub fn remember_now(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        for d in records {
            dedupe_key_within_limit(d)?;
        }
        let mut t = lock(&self.tables);
        for d in records {
            t.dedupe
                .insert((d.key.clone(), d.message_id.clone()), d.clone());
        }
        Ok(())
    }

    /// Synchronous [`WindowStore::replace`].
    pub fn replace_now(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        within_limits(next)?;
        let mut t = lock(&self.tables);
        if !t.version_matches(&next.key, Some(expected)) {
            return Ok(Written::Conflict(t.current(&next.key)));
        }
        t.put(next);
        Ok(Written::Ok)
    }

    /// Synchronous [`WindowStore::due`].
    pub fn due_now(&self, now: Millis, limit: usize) -> Vec<ConversationKey> {
        lock(&self.tables)
            .due_index
            .iter()
            .take_while(|(d, _)| *d <= now)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Writes a dedupe record alone if no unexpired one exists; true when written. Only the
    /// simulator's broken "separate dedupe write" variant uses it: lull writes dedupe and append
    /// atomically.
    pub fn put_dedupe_alone(&self, dedupe: &DedupeRecord, now: Millis) -> bool {
        let mut t = lock(&self.tables);
        let dkey = (dedupe.key.clone(), dedupe.message_id.clone());
        if t.dedupe.get(&dkey).is_some_and(|d| d.expires_at >= now) {
            return false;
        }
        t.dedupe.insert(dkey, dedupe.clone());
        true
    }

    /// Writes a record if its version is `expected` (None: absent), without any dedupe record.
    /// Only the simulator's broken variants use it.
    pub fn put_if_version(&self, expected: Option<u64>, next: &Conversation) -> Written {
        let mut t = lock(&self.tables);
        if !t.version_matches(&next.key, expected) {
            return Written::Conflict(t.current(&next.key));
        }
        t.put(next);
        Written::Ok
    }

    /// Writes a record with no condition at all. Only the simulator's model of the replaced
    /// design uses it (Redis `SETEX` semantics); lull never does.
    pub fn put_unconditionally(&self, next: &Conversation) {
        lock(&self.tables).put(next);
    }

    /// Deletes a record with no condition (the replaced design's cleanup).
    pub fn delete_unconditionally(&self, key: &ConversationKey) {
        let mut t = lock(&self.tables);
        if let Some(old) = t.conversations.remove(key) {
            if let Some(d) = old.index_due() {
                t.due_index.remove(&(d, key.clone()));
            }
        }
    }

    /// Every stored conversation (inspection and checks).
    pub fn conversations(&self) -> Vec<Conversation> {
        let t = lock(&self.tables);
        let mut all: Vec<_> = t.conversations.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// Number of stored dedupe records.
    pub fn dedupe_len(&self) -> usize {
        lock(&self.tables).dedupe.len()
    }
}

impl WindowStore for MemoryStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        Ok(self.load_now(key))
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        self.append_now(expected, next)
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        Ok(self.seen_now(key, message_id, now))
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        self.remember_now(records)
    }

    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        self.replace_now(expected, next)
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        Ok(self.due_now(now, limit))
    }
}

/// A trigger that records what was armed; tests fire them by hand ([`MemoryTrigger::take_due`]).
#[derive(Clone, Default, Debug)]
pub struct MemoryTrigger {
    armed: Arc<Mutex<BTreeMap<(Millis, u64), TriggerMsg>>>,
    seq: Arc<Mutex<u64>>,
    failing: Arc<Mutex<bool>>,
}

impl MemoryTrigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns the triggers due at or before `now`, earliest first.
    pub fn take_due(&self, now: Millis) -> Vec<(Millis, TriggerMsg)> {
        let mut armed = lock(&self.armed);
        let later = armed.split_off(&(Millis(now.0.saturating_add(1)), 0));
        let due = std::mem::replace(&mut *armed, later);
        due.into_iter().map(|((at, _), m)| (at, m)).collect()
    }

    /// The earliest armed time, if any.
    pub fn next_at(&self) -> Option<Millis> {
        lock(&self.armed).keys().next().map(|(at, _)| *at)
    }

    /// Number of triggers waiting.
    pub fn len(&self) -> usize {
        lock(&self.armed).len()
    }

    /// True when no trigger waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every armed trigger (a lost-trigger fault).
    pub fn lose_all(&self) {
        lock(&self.armed).clear();
    }

    /// Makes `arm` fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

impl Trigger for MemoryTrigger {
    async fn arm(&self, msg: &TriggerMsg, at: Millis) -> Result<(), TriggerError> {
        if *lock(&self.failing) {
            return Err(TriggerError("injected trigger failure".into()));
        }
        let mut seq = lock(&self.seq);
        *seq += 1;
        lock(&self.armed).insert((at, *seq), msg.clone());
        Ok(())
    }
}

/// A sink that records every hand-off, and can be told to fail.
#[derive(Clone, Default, Debug)]
pub struct MemorySink {
    delivered: Arc<Mutex<Vec<Batch>>>,
    failing: Arc<Mutex<Option<SinkError>>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every batch handed off so far, in order (retries included).
    pub fn delivered(&self) -> Vec<Batch> {
        lock(&self.delivered).clone()
    }

    /// Makes every hand-off fail with `err` (None: succeed again).
    pub fn set_failing(&self, err: Option<SinkError>) {
        *lock(&self.failing) = err;
    }
}

impl Sink for MemorySink {
    /// Answers at once, so `within` never runs out.
    async fn deliver(&self, batch: &Batch, _within: Duration) -> Result<Acknowledged, SinkError> {
        if let Some(e) = lock(&self.failing).clone() {
            return Err(e);
        }
        lock(&self.delivered).push(batch.clone());
        Ok(Acknowledged::default())
    }
}

/// A clock that only moves when told; `sleep` advances it. Randomness from a seeded generator.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Millis>>,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl ManualClock {
    pub fn new(start: Millis, seed: u64) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
        }
    }

    pub fn set(&self, t: Millis) {
        *lock(&self.now) = t;
    }

    pub fn advance(&self, d: Duration) {
        let mut now = lock(&self.now);
        *now = now.plus(d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        *lock(&self.now)
    }

    async fn sleep(&self, d: Duration) {
        self.advance(d);
    }

    fn random(&self) -> u64 {
        lock(&self.rng).u64(..)
    }
}

#[cfg(all(test, feature = "contract"))]
mod tests {
    #[tokio::test(flavor = "current_thread")]
    async fn memory_store_meets_the_contract() {
        crate::contract::check_all(&super::MemoryStore::new()).await;
    }
}
