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
//! Bounded: two generations of at most [`GENERATION`] entries each; when the current one is
//! full it becomes the old one and the older is dropped (least recently learned first, roughly).

use std::collections::HashMap;
use std::sync::Mutex;

use lull_core::Provider;

use crate::parse::Parsed;
use crate::tenant::normalise_account;

/// Entries per generation: the map holds at most twice this many.
pub const GENERATION: usize = 8_192;

/// (provider, account, LID).
type Key = (Provider, String, String);

/// One LID and the conversation user (phone JID) it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub provider: Provider,
    pub account: String,
    pub lid: String,
    pub user: String,
}

#[derive(Default)]
struct Generations {
    current: HashMap<Key, String>,
    old: HashMap<Key, String>,
}

/// LID to phone JID, per provider and account (so one tenant's learning never maps another's).
#[derive(Default)]
pub struct LidMap {
    inner: Mutex<Generations>,
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

impl LidMap {
    /// Remembers `pairs` (after their messages were accepted).
    pub fn learn(&self, pairs: Vec<Learned>) {
        if pairs.is_empty() {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for p in pairs {
            let key = (p.provider, p.account, p.lid);
            if g.current.get(&key) == Some(&p.user) {
                continue;
            }
            if g.current.len() >= GENERATION {
                let full = std::mem::take(&mut g.current);
                g.old = full;
            }
            g.old.remove(&key);
            g.current.insert(key, p.user);
        }
    }

    /// The phone JID `lid` stands for on this provider and account, when learned.
    pub fn user_for(&self, provider: Provider, account: &str, lid: &str) -> Option<String> {
        let key = (
            provider,
            normalise_account(provider, account).to_string(),
            lid.trim().to_string(),
        );
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.current.get(&key).or_else(|| g.old.get(&key)).cloned()
    }

    /// How many pairs are held (at most twice [`GENERATION`]).
    pub fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.current.len() + g.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn maps_per_account_and_stays_bounded() {
        let m = LidMap::default();
        m.learn(vec![pair("a", 1)]);
        assert_eq!(
            m.user_for(Provider::Evolution, "a", "1@lid").as_deref(),
            Some("1@s.whatsapp.net")
        );
        // Another account (another tenant's instance) learned nothing.
        assert_eq!(m.user_for(Provider::Evolution, "b", "1@lid"), None);
        assert_eq!(m.user_for(Provider::Waha, "a", "1@lid"), None);
        m.learn((0..3 * GENERATION).map(|i| pair("a", i)).collect());
        assert!(m.len() <= 2 * GENERATION, "{}", m.len());
        // The most recently learned are kept.
        let last = 3 * GENERATION - 1;
        assert!(m
            .user_for(Provider::Evolution, "a", &format!("{last}@lid"))
            .is_some());
        assert_eq!(m.user_for(Provider::Evolution, "a", "0@lid"), None);
    }
}
