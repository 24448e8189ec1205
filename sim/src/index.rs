//! The sweep's due-time index as the sweep sees it: eventually consistent. On DynamoDB it is a
//! global secondary index, updated asynchronously after each write (usually within a second,
//! sometimes longer); the sweep's query may miss a conversation that just became due or list
//! one that no longer is. Each landed write's due time reaches this view after a random lag,
//! in write order per conversation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::key::ConversationKey;
use crate::time::Millis;

#[derive(Default, Debug)]
pub(crate) struct LaggedIndex {
    visible: BTreeSet<(Millis, ConversationKey)>,
    due_of: HashMap<ConversationKey, Millis>,
    /// Updates not visible yet: (visible at, seq) -> (key, due).
    pending: BTreeMap<(Millis, u64), (ConversationKey, Option<Millis>)>,
    last_visible_at: HashMap<ConversationKey, Millis>,
    seq: u64,
}

impl LaggedIndex {
    /// A write of `key` landed; its due time `due` becomes visible at `at` (or after the key's
    /// previous update, whichever is later).
    pub fn update(&mut self, key: &ConversationKey, due: Option<Millis>, at: Millis) {
        let at = self.last_visible_at.get(key).map_or(at, |&p| p.max(at));
        self.last_visible_at.insert(key.clone(), at);
        self.seq += 1;
        self.pending.insert((at, self.seq), (key.clone(), due));
    }

    /// Up to `limit` conversations visible as due at or before `now`, oldest due first.
    pub fn due(&mut self, now: Millis, limit: usize) -> Vec<ConversationKey> {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (key, due) = entry.remove();
            if let Some(old) = self.due_of.remove(&key) {
                self.visible.remove(&(old, key.clone()));
            }
            if let Some(d) = due {
                self.due_of.insert(key.clone(), d);
                self.visible.insert((d, key));
            }
        }
        self.visible
            .iter()
            .take_while(|(d, _)| *d <= now)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Provider;

    #[test]
    fn a_write_is_visible_only_after_its_lag_and_in_write_order() {
        let k = ConversationKey::new(Provider::Meta, "pn", "u");
        let mut ix = LaggedIndex::default();
        // Due at 10, visible at 50; then idle (no due time), visible at 20 but not before 50.
        ix.update(&k, Some(Millis(10)), Millis(50));
        ix.update(&k, None, Millis(20));
        assert!(ix.due(Millis(49), 10).is_empty(), "not visible yet");
        // Both updates land at 50, in write order: the conversation is no longer due.
        assert!(ix.due(Millis(50), 10).is_empty());
        ix.update(&k, Some(Millis(60)), Millis(70));
        assert!(ix.due(Millis(65), 10).is_empty(), "due, but the index lags");
        assert_eq!(ix.due(Millis(70), 10), vec![k]);
    }
}
