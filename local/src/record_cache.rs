//! A bounded write-through cache of conversation records in front of the SQLite store.
//!
//! Most `load`s read a record the same process wrote moments before (the next message of a
//! burst, the flush of a window): with the cache that read is a map lookup on the caller's
//! thread, with no trip through the store thread, no SQLite page walk and no JSON decode.
//!
//! The database stays the truth, and the cache only ever mirrors what it committed:
//! - it is filled by the store thread alone, in commit order, *after* the transaction holding
//!   the write committed and *before* the caller is answered, so a caller that saw its write
//!   succeed reads it back (or something newer);
//! - conditional writes are still decided by SQLite, never by the cache;
//! - a request whose transaction failed, whose write was refused (version conflict) or whose own
//!   statements failed drops its conversation from the cache, so the next `load` reads SQLite;
//! - only this process writes the `conversations` table (the data directory's lock keeps other
//!   servers out; `lull inspect` only reads), so nothing changes a record behind its back;
//! - it lives in memory only: a restart begins empty and reads the database.
//!
//! Bounded by a count and by bytes (a record's encoded JSON length plus its key's: a proxy of
//! its footprint) with two generations: entries go to `hot`; when `hot` reaches half a limit it
//! becomes `cold` and the old `cold` is dropped, and a hit in `cold` moves the entry back to
//! `hot`. That keeps recently used records at O(1) cost without an LRU list, and the whole
//! cache within the limits.

use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};

use lull_core::{Conversation, ConversationKey};

/// How much the cache may hold. `CacheLimits::OFF` disables it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Conversations held at most (present or known absent).
    pub entries: usize,
    /// Bytes held at most, counted as encoded record length plus key length.
    pub bytes: usize,
}

impl CacheLimits {
    /// No cache: every `load` reads SQLite.
    pub const OFF: CacheLimits = CacheLimits {
        entries: 0,
        bytes: 0,
    };
}

impl Default for CacheLimits {
    /// 65,536 conversations or 64 MiB of encoded records, whichever comes first: a typical
    /// window of a few messages encodes to about 1 KB.
    fn default() -> CacheLimits {
        CacheLimits {
            entries: 65_536,
            bytes: 64 << 20,
        }
    }
}

/// What the cache knows of one conversation.
#[derive(Clone, Debug)]
pub(crate) enum Cached {
    /// The database holds no record for it (records are never deleted: only a write, which
    /// replaces this entry, can create one).
    Absent,
    /// The record as last committed, and its size in bytes as counted against the limit.
    Record(Arc<Conversation>, usize),
}

impl Cached {
    fn bytes(&self, key: &ConversationKey) -> usize {
        let own = match self {
            Cached::Absent => 0,
            Cached::Record(_, bytes) => *bytes,
        };
        own.saturating_add(key.storage_key_len())
    }
}

#[derive(Debug, Default)]
struct Generation {
    map: HashMap<ConversationKey, Cached>,
    bytes: usize,
}

impl Generation {
    fn remove(&mut self, key: &ConversationKey) -> Option<Cached> {
        let old = self.map.remove(key)?;
        self.bytes = self.bytes.saturating_sub(old.bytes(key));
        Some(old)
    }
}

/// What a [`RecordCache::put`] displaced: dropping it frees it.
#[derive(Debug, Default)]
pub(crate) struct Leftovers {
    _replaced: Option<Cached>,
    _retired: Option<Generation>,
}

#[derive(Debug, Default)]
struct Generations {
    hot: Generation,
    cold: Generation,
}

/// The cache. Shared by the store's handles (reads) and its thread (fills and drops).
#[derive(Debug)]
pub(crate) struct RecordCache {
    /// Per generation: half of each limit.
    half: CacheLimits,
    inner: Mutex<Generations>,
}

impl RecordCache {
    pub(crate) fn new(limits: CacheLimits) -> RecordCache {
        RecordCache {
            half: CacheLimits {
                entries: limits.entries / 2,
                bytes: limits.bytes / 2,
            },
            inner: Mutex::new(Generations::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters: at worst an entry is missing, which is a miss.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `None`: not cached (ask SQLite). `Some(None)`: known to have no record.
    pub(crate) fn get(&self, key: &ConversationKey) -> Option<Option<Conversation>> {
        let mut dropped = None;
        let found = {
            let mut g = self.lock();
            if let Some(hit) = g.hot.map.get(key) {
                Some(hit.clone())
            } else if let Some(hit) = g.cold.remove(key) {
                // Still in use: back to the hot generation.
                dropped = self.insert_hot(&mut g, key.clone(), hit.clone());
                Some(hit)
            } else {
                None
            }
        };
        drop(dropped);
        found.map(|c| match c {
            Cached::Absent => None,
            Cached::Record(conv, _) => Some(Conversation::clone(&conv)),
        })
    }

    /// Records what the database now holds for `key` (call only after the commit). Returns
    /// what it displaced, for the caller to drop where it pleases: outside the lock, and not on
    /// the store thread (records are allocated on the request's thread; freeing them there
    /// spares the one serial thread the allocator's cross-thread work).
    pub(crate) fn put(&self, key: ConversationKey, value: Cached) -> Leftovers {
        let mut g = self.lock();
        let replaced = g.cold.remove(&key).or_else(|| g.hot.remove(&key));
        let retired = self.insert_hot(&mut g, key, value);
        Leftovers {
            _replaced: replaced,
            _retired: retired,
        }
    }

    /// Forgets `key`: the next `load` reads the database.
    pub(crate) fn forget(&self, key: &ConversationKey) {
        let mut g = self.lock();
        g.hot.remove(key);
        g.cold.remove(key);
    }

    /// Inserts into `hot`, first retiring it to `cold` when the entry would take it past half a
    /// limit; returns the generation retired, to be dropped by the caller after unlocking.
    fn insert_hot(
        &self,
        g: &mut Generations,
        key: ConversationKey,
        value: Cached,
    ) -> Option<Generation> {
        let bytes = value.bytes(&key);
        if bytes > self.half.bytes || self.half.entries == 0 {
            return None; // Larger than a generation may hold: never cached.
        }
        let mut retired = None;
        if g.hot.map.len() >= self.half.entries
            || g.hot.bytes.saturating_add(bytes) > self.half.bytes
        {
            let hot = mem::take(&mut g.hot);
            retired = Some(mem::replace(&mut g.cold, hot));
        }
        g.hot.bytes = g.hot.bytes.saturating_add(bytes);
        g.hot.map.insert(key, value);
        retired
    }

    /// (entries, bytes) held now.
    #[cfg(test)]
    pub(crate) fn size(&self) -> (usize, usize) {
        let g = self.lock();
        (
            g.hot.map.len() + g.cold.map.len(),
            g.hot.bytes + g.cold.bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_core::{Millis, Provider};

    fn key(user: &str) -> ConversationKey {
        ConversationKey::new(Provider::Meta, "acct", user)
    }

    fn record(user: &str, bytes: usize) -> Cached {
        Cached::Record(Arc::new(Conversation::fresh(key(user), Millis(1))), bytes)
    }

    #[test]
    fn a_put_reads_back_and_forget_removes_it() {
        let cache = RecordCache::new(CacheLimits::default());
        assert!(cache.get(&key("a")).is_none());
        cache.put(key("a"), record("a", 100));
        let got = cache.get(&key("a")).expect("hit").expect("present");
        assert_eq!(got.key, key("a"));
        cache.put(key("b"), Cached::Absent);
        assert_eq!(cache.get(&key("b")), Some(None));
        cache.forget(&key("a"));
        assert!(cache.get(&key("a")).is_none());
    }

    #[test]
    fn entries_stay_within_the_count_and_recent_ones_survive() {
        let cache = RecordCache::new(CacheLimits {
            entries: 10,
            bytes: 1 << 20,
        });
        for i in 0..100 {
            let u = format!("u{i}");
            cache.put(key(&u), record(&u, 10));
            // One key read after every write stays in use and is never evicted.
            assert!(cache.get(&key("u0")).is_some(), "u0 evicted at {i}");
            assert!(cache.size().0 <= 10, "{} entries", cache.size().0);
        }
        assert!(cache.get(&key("u99")).is_some());
        assert!(cache.get(&key("u50")).is_none());
    }

    #[test]
    fn bytes_stay_within_the_limit_and_oversized_records_are_not_cached() {
        let limits = CacheLimits {
            entries: 1_000,
            bytes: 10_000,
        };
        let cache = RecordCache::new(limits);
        for i in 0..200 {
            let u = format!("u{i}");
            cache.put(key(&u), record(&u, 900));
            assert!(cache.size().1 <= limits.bytes, "{} bytes", cache.size().1);
        }
        cache.put(key("big"), record("big", 6_000));
        assert!(cache.get(&key("big")).is_none());
    }

    #[test]
    fn a_put_replaces_the_older_entry_in_either_generation() {
        let cache = RecordCache::new(CacheLimits {
            entries: 4,
            bytes: 1 << 20,
        });
        cache.put(key("a"), record("a", 10));
        cache.put(key("b"), record("b", 10));
        cache.put(key("c"), record("c", 10)); // "a" and "b" now cold
        cache.put(key("a"), Cached::Absent);
        assert_eq!(cache.get(&key("a")), Some(None));
        assert_eq!(cache.size().0, 3);
    }

    #[test]
    fn off_caches_nothing() {
        let cache = RecordCache::new(CacheLimits::OFF);
        cache.put(key("a"), record("a", 1));
        cache.put(key("b"), Cached::Absent);
        assert!(cache.get(&key("a")).is_none());
        assert!(cache.get(&key("b")).is_none());
        assert_eq!(cache.size(), (0, 0));
    }
}
