//! Which phone JID a WhatsApp LID stands for, as this process learned it from messages.
//!
//! WhatsApp now addresses many one-to-one chats by a LID (`<digits>@lid`) instead of the phone
//! JID. Evolution (Baileys) forwards what WhatsApp sent: a message of such a chat carries the LID
//! in `key.remoteJid` and the phone JID in `key.remoteJidAlt`, and lull keys the conversation on
//! the phone JID (`parse::evolution`); but a `presence.update` of the same chat names only the
//! LID (`data.id`, `data.presences`), with no phone JID anywhere in the event, and neither
//! Evolution nor its webhooks forward Baileys' own LID mapping. So the presence router looks the
//! LID up here: every message lull accepted whose sender carries both ids teaches the pair.
//!
//! The map lives in memory, per process: `lull serve` (one process) maps every LID of a user
//! who wrote since it started; on AWS a webhook Lambda instance maps only the users whose
//! messages it received itself. A presence whose LID is not mapped goes to the LID's own
//! conversation (where it matches a chat whose messages came without a phone JID) and is
//! otherwise dropped like any presence for a conversation with no open window (counted as
//! `lull_ignored_events_total{reason="lid_unmapped"}`). Presence is advisory: a dropped one
//! only means the turn ends on the quiet period instead of the typing rule.
//!
//! WAHA forwards what its engine saw: with the NOWEB engine (Baileys) the engine's raw message
//! (`payload._data`) carries Baileys' key, whose `remoteJid`/`remoteJidAlt` name both the LID and
//! the phone JID of a one-to-one chat, and [`learned_waha`] reads the pair from there (after the
//! request was authenticated and its message accepted). WAHA's engine-independent fields carry
//! no such pair (WAHA resolves LIDs through its own API, `GET /api/{session}/lids/{lid}`, which
//! lull does not call), so with the WEBJS and GOWS engines a LID presence is never mapped; WAHA
//! then names a LID chat by its LID in messages and presence alike, which keys both on the LID.
//!
//! Bounded by bytes, per account, so one tenant's gateway can neither pin memory nor evict
//! another account's pairs: a LID over [`MAX_LID_BYTES`] or a user over [`MAX_USER_BYTES`] is
//! never learned (counted as `lull_ignored_events_total{reason="lid_too_long"}`); each (provider,
//! account) has its own partition of at most [`PARTITION_BYTES`], two generations of half that
//! each (when the current one is full it becomes the old one and the older is dropped, so the
//! least recently learned go first); and at most [`MAX_PARTITIONS`] accounts are held, the one
//! that learned least recently dropped whole to make room for a new one. At most
//! `MAX_PARTITIONS * PARTITION_BYTES` (64 MiB) in all, whatever the requests say.

use std::collections::HashMap;
use std::sync::Mutex;

use lull_core::metrics as m;
use lull_core::Provider;

use crate::hint::{self, Step};
use crate::parse::Parsed;
use crate::tenant::normalise_account;

/// Longest LID learned: a LID is a number and `@lid` (about 20 bytes).
pub const MAX_LID_BYTES: usize = 64;
/// Longest user (phone JID) learned: a number and `@s.whatsapp.net` (about 30 bytes).
pub const MAX_USER_BYTES: usize = 128;
/// What one pair is counted as besides its two strings: the hash-map slot and two `String`s.
pub const ENTRY_OVERHEAD: usize = 64;
/// Bytes of pairs one account holds, both generations together (at least 1,024 pairs of the
/// longest; about 2,600 of real ones).
pub const PARTITION_BYTES: usize = 256 * 1024;
/// Accounts held at once.
pub const MAX_PARTITIONS: usize = 256;

/// One LID and the conversation user (phone JID) it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub provider: Provider,
    pub account: String,
    pub lid: String,
    pub user: String,
}

impl Learned {
    fn bytes(&self) -> usize {
        self.lid.len() + self.user.len() + ENTRY_OVERHEAD
    }
}

/// One generation of one account's pairs.
#[derive(Default)]
struct Generation {
    pairs: HashMap<String, String>,
    bytes: usize,
}

/// One account's pairs.
#[derive(Default)]
struct Partition {
    current: Generation,
    old: Generation,
    /// When this account last learned a pair (a counter of `learn` calls).
    touched: u64,
}

impl Partition {
    fn insert(&mut self, lid: String, user: String, size: usize) {
        if self.current.pairs.get(&lid) == Some(&user) {
            return;
        }
        if self.current.bytes + size > PARTITION_BYTES / 2 {
            self.old = std::mem::take(&mut self.current);
        }
        if let Some(prev) = self.old.pairs.remove(&lid) {
            self.old.bytes -= lid.len() + prev.len() + ENTRY_OVERHEAD;
        }
        if let Some(prev) = self.current.pairs.insert(lid.clone(), user) {
            self.current.bytes -= lid.len() + prev.len() + ENTRY_OVERHEAD;
        }
        self.current.bytes += size;
    }

    fn get(&self, lid: &str) -> Option<&String> {
        self.current
            .pairs
            .get(lid)
            .or_else(|| self.old.pairs.get(lid))
    }

    fn bytes(&self) -> usize {
        self.current.bytes + self.old.bytes
    }
}

#[derive(Default)]
struct Partitions {
    by_account: HashMap<(Provider, String), Partition>,
    clock: u64,
}

/// LID to phone JID, partitioned per provider and account (so one tenant's learning never maps,
/// fills or evicts another's).
#[derive(Default)]
pub struct LidMap {
    inner: Mutex<Partitions>,
}

/// The pairs a parsed body teaches: one-to-one messages whose sender has a phone JID as its key
/// and a LID as its other id.
pub fn learned(provider: Provider, parsed: &Parsed) -> Vec<Learned> {
    parsed
        .items
        .iter()
        .filter(|i| i.group.is_none() && !i.user.ends_with("@lid"))
        .filter_map(|i| {
            let lid = i.message.sender.alt_id.as_deref()?.trim();
            lid.ends_with("@lid").then(|| Learned {
                provider,
                account: normalise_account(provider, &i.account).to_string(),
                lid: lid.to_string(),
                user: i.user.clone(),
            })
        })
        .collect()
}

/// Where WAHA's NOWEB engine puts Baileys' message key: `payload._data.key`.
const WAHA_KEY: [Step; 4] = [
    Step::Key("payload"),
    Step::Key("_data"),
    Step::Key("key"),
    Step::Key("remoteJid"),
];
const WAHA_KEY_ALT: [Step; 4] = [
    Step::Key("payload"),
    Step::Key("_data"),
    Step::Key("key"),
    Step::Key("remoteJidAlt"),
];

/// The pair a WAHA body teaches (NOWEB engine): its one message is of a one-to-one chat keyed on
/// a phone JID, and Baileys' key in `payload._data.key` names that chat's LID as `remoteJid` or
/// `remoteJidAlt`. Read from the raw body (already authenticated and parsed) by one bounded scan.
pub fn learned_waha(body: &[u8], parsed: &Parsed) -> Vec<Learned> {
    let Some(item) = parsed.items.first() else {
        return Vec::new();
    };
    if parsed.items.len() != 1 || item.group.is_some() || item.user.ends_with("@lid") {
        return Vec::new();
    }
    [&WAHA_KEY_ALT[..], &WAHA_KEY[..]]
        .iter()
        .filter_map(|path| hint::json_account(body, path))
        .find(|jid| jid.ends_with("@lid"))
        .map(|lid| Learned {
            provider: Provider::Waha,
            account: normalise_account(Provider::Waha, &item.account).to_string(),
            lid,
            user: item.user.clone(),
        })
        .into_iter()
        .collect()
}

impl LidMap {
    /// Remembers `pairs` (after their messages were accepted); pairs over the length caps are
    /// skipped and counted.
    pub fn learn(&self, pairs: Vec<Learned>) {
        if pairs.is_empty() {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.clock += 1;
        let now = g.clock;
        for p in pairs {
            if p.lid.len() > MAX_LID_BYTES || p.user.len() > MAX_USER_BYTES {
                metrics::counter!(m::IGNORED_EVENTS, "reason" => "lid_too_long", "provider" => p.provider.as_str())
                    .increment(1);
                continue;
            }
            let size = p.bytes();
            let account = (p.provider, p.account);
            if !g.by_account.contains_key(&account) && g.by_account.len() >= MAX_PARTITIONS {
                let stalest = g
                    .by_account
                    .iter()
                    .min_by_key(|(_, part)| part.touched)
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    g.by_account.remove(&k);
                }
            }
            let part = g.by_account.entry(account).or_default();
            part.touched = now;
            part.insert(p.lid, p.user, size);
        }
    }

    /// The phone JID `lid` stands for on this provider and account, when learned.
    pub fn user_for(&self, provider: Provider, account: &str, lid: &str) -> Option<String> {
        let key = (provider, normalise_account(provider, account).to_string());
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.by_account.get(&key)?.get(lid.trim()).cloned()
    }

    /// How many pairs are held.
    pub fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.by_account
            .values()
            .map(|p| p.current.pairs.len() + p.old.pairs.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of pairs held (as counted against the bounds).
    pub fn bytes(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.by_account.values().map(Partition::bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(account: &str, i: usize) -> Learned {
        Learned {
            provider: Provider::Evolution,
            account: account.into(),
            lid: format!("{i}@lid"),
            user: format!("{i}@s.whatsapp.net"),
        }
    }

    #[test]
    fn maps_per_account_and_stays_bounded_by_bytes() {
        let m = LidMap::default();
        m.learn(vec![pair("a", 1)]);
        assert_eq!(
            m.user_for(Provider::Evolution, "a", "1@lid").as_deref(),
            Some("1@s.whatsapp.net")
        );
        // Another account (another tenant's instance) learned nothing.
        assert_eq!(m.user_for(Provider::Evolution, "b", "1@lid"), None);
        assert_eq!(m.user_for(Provider::Waha, "a", "1@lid"), None);
        m.learn((0..20_000).map(|i| pair("a", i)).collect());
        assert!(m.bytes() <= PARTITION_BYTES, "{}", m.bytes());
        // The most recently learned are kept, the oldest dropped.
        assert!(m.user_for(Provider::Evolution, "a", "19999@lid").is_some());
        assert_eq!(m.user_for(Provider::Evolution, "a", "0@lid"), None);
    }

    #[test]
    fn long_ids_are_never_learned() {
        let m = LidMap::default();
        let mut long_lid = pair("a", 1);
        long_lid.lid = format!("{}@lid", "9".repeat(MAX_LID_BYTES));
        let mut long_user = pair("a", 2);
        long_user.user = format!("{}@s.whatsapp.net", "9".repeat(MAX_USER_BYTES));
        m.learn(vec![long_lid.clone(), long_user, pair("a", 3)]);
        assert_eq!(m.len(), 1);
        assert_eq!(m.user_for(Provider::Evolution, "a", &long_lid.lid), None);
        assert!(m.user_for(Provider::Evolution, "a", "3@lid").is_some());
    }

    #[test]
    fn one_account_cannot_evict_another_accounts_pairs() {
        let m = LidMap::default();
        m.learn(vec![pair("victim", 7)]);
        // The noisy account learns far more than its partition holds...
        for chunk in 0..50 {
            m.learn(
                (0..1_000)
                    .map(|i| pair("noisy", chunk * 1_000 + i))
                    .collect(),
            );
        }
        // ...and the victim's pair is still there; the total stays bounded.
        assert!(m.user_for(Provider::Evolution, "victim", "7@lid").is_some());
        assert!(m.bytes() <= 2 * PARTITION_BYTES, "{}", m.bytes());
        // New accounts beyond the cap drop the one that learned least recently, not a busy one.
        m.learn(vec![pair("victim", 8)]);
        for a in 0..MAX_PARTITIONS {
            m.learn(vec![pair(&format!("acct-{a}"), 1)]);
            m.learn(vec![pair("victim", 9)]);
        }
        assert!(m.user_for(Provider::Evolution, "victim", "9@lid").is_some());
        assert_eq!(m.user_for(Provider::Evolution, "noisy", "1@lid"), None);
        assert!(m.bytes() <= MAX_PARTITIONS * PARTITION_BYTES);
    }
}
