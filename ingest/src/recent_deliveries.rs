//! The Chatwoot deliveries this process answered 2xx, by delivery id and by signature, so that
//! a replay reaching the same process is refused before any store read. Bounded: the oldest
//! entries are forgotten past [`CAPACITY`]. It is the fast path only: the store remembers the
//! ids of every delivery that changed a conversation in the same conditional write as the change
//! (`lull_core::protocol::Handover`), which holds across processes and Lambda instances.
//!
//! Entries are added after the delivery was handled, never before: a delivery that failed (a
//! 5xx) must stay retryable under its delivery id.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// The most keys kept (two per delivery): about 1 MB at most.
pub const CAPACITY: usize = 8192;

#[derive(Default)]
pub struct RecentDeliveries {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentDeliveries {
    /// True when any of `keys` was answered before.
    pub fn seen(&self, keys: &[String]) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter().any(|k| inner.set.contains(k))
    }

    /// Remembers `keys`, forgetting the oldest past [`CAPACITY`].
    pub fn remember(&self, keys: &[String]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if inner.set.insert(k.clone()) {
                inner.order.push_back(k.clone());
            }
        }
        while inner.order.len() > CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_the_capacity_and_forgets_the_oldest() {
        let r = RecentDeliveries::default();
        r.remember(&["d:first".into(), "s:first".into()]);
        assert!(r.seen(&["s:first".into()]));
        assert!(!r.seen(&["d:other".into()]));
        for i in 0..CAPACITY {
            r.remember(&[format!("d:{i}")]);
        }
        assert!(!r.seen(&["d:first".into(), "s:first".into()]));
        assert!(r.seen(&[format!("d:{}", CAPACITY - 1)]));
        assert_eq!(r.inner.lock().unwrap().set.len(), CAPACITY);
    }
}
