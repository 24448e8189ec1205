//! The conversation key: which window a message belongs to.
//!
//! A conversation is (provider, business number or instance, user, optional group). For Meta the
//! business number is `phone_number_id`, so two business numbers talking to one user are two
//! conversations. The key is personal data (it holds phone numbers): logs carry
//! [`ConversationKey::log_hash`], a keyed hash, never the key itself.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The gateway a message came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// WhatsApp Cloud API (and 360dialog, which forwards the same body).
    Meta,
    /// Evolution API v2.
    Evolution,
    /// Twilio's WhatsApp channel.
    Twilio,
    /// lull's own JSON format, for other channels.
    Generic,
    /// WAHA (devlikeapro/waha), WhatsApp Web through an HTTP API.
    Waha,
}

impl Provider {
    /// Every gateway, in a fixed order (tenant indexes, listings).
    pub const ALL: [Provider; 5] = [
        Provider::Meta,
        Provider::Evolution,
        Provider::Twilio,
        Provider::Generic,
        Provider::Waha,
    ];

    /// The lowercase name used in JSON, store keys and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Meta => "meta",
            Provider::Evolution => "evolution",
            Provider::Twilio => "twilio",
            Provider::Generic => "generic",
            Provider::Waha => "waha",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Provider> {
        Some(match s {
            "meta" => Provider::Meta,
            "evolution" => Provider::Evolution,
            "twilio" => Provider::Twilio,
            "generic" => Provider::Generic,
            "waha" => Provider::Waha,
            _ => return None,
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one conversation, and so one sequence of windows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationKey {
    /// The gateway.
    pub provider: Provider,
    /// The business side: Meta `phone_number_id`, Evolution instance, Twilio `To` number.
    pub account: String,
    /// The user (for a group conversation, the group: every member writes into one window).
    pub user: String,
    /// The group id, for group conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Longest message id accepted at ingestion, in bytes (real ids: wamid ~60, Twilio SID 34,
/// Evolution key id ~32).
pub const MAX_MESSAGE_ID_BYTES: usize = 256;
/// Longest account, user or group accepted at ingestion, in bytes.
pub const MAX_KEY_PART_BYTES: usize = 256;
/// Longest [`ConversationKey::storage_key`] (escaped) accepted at ingestion, in bytes. With
/// the message id cap it keeps every store key within DynamoDB's limits (2,048 bytes for a
/// partition key, 1,024 for a sort key): the conversation item `c#<storage key>` is at most
/// 1,002 bytes and the dedupe item `d#<len>#<storage key>#<message id>` at most
/// [`MAX_DEDUPE_KEY_BYTES`].
pub const MAX_STORAGE_KEY_BYTES: usize = 1000;
/// The longest dedupe store key the caps allow (`d#` + 4 length digits + `#` + storage key +
/// `#` + message id).
pub const MAX_DEDUPE_KEY_BYTES: usize =
    2 + 4 + 1 + MAX_STORAGE_KEY_BYTES + 1 + MAX_MESSAGE_ID_BYTES;

// DynamoDB: a partition key holds at most 2,048 bytes, a sort key 1,024.
const _: () = assert!(2 + MAX_STORAGE_KEY_BYTES <= 1024 && MAX_DEDUPE_KEY_BYTES <= 2048);

/// A conversation key or message id longer than the store can key (refused at ingestion, 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} is {len} bytes; at most {max} are accepted")]
pub struct KeyTooLong {
    /// `message id`, `account`, `user`, `group` or `conversation key`.
    pub part: &'static str,
    pub len: usize,
    pub max: usize,
}

/// A store key that does not parse back into a [`ConversationKey`].
#[derive(Debug, thiserror::Error)]
#[error("malformed conversation storage key {0:?}")]
pub struct BadStorageKey(pub String);

impl ConversationKey {
    /// A one-to-one conversation.
    pub fn new(provider: Provider, account: impl Into<String>, user: impl Into<String>) -> Self {
        ConversationKey {
            provider,
            account: account.into(),
            user: user.into(),
            group: None,
        }
    }

    /// The same conversation key in a group.
    pub fn in_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// A stable, reversible string form for store keys: `provider|account|user[|group]`, each part
    /// with `%` and `|` percent-escaped so any id round-trips.
    pub fn storage_key(&self) -> String {
        let mut out = String::with_capacity(16 + self.account.len() + self.user.len());
        out.push_str(self.provider.as_str());
        for part in [Some(&self.account), Some(&self.user), self.group.as_ref()]
            .into_iter()
            .flatten()
        {
            out.push('|');
            for c in part.chars() {
                match c {
                    '%' => out.push_str("%25"),
                    '|' => out.push_str("%7C"),
                    c => out.push(c),
                }
            }
        }
        out
    }

    /// Checks every part of the key, and `message_id`, against the ingestion caps, so no store
    /// key built from them can exceed the store's key limits.
    pub fn check_lengths(&self, message_id: &str) -> Result<(), KeyTooLong> {
        let cap = |part: &'static str, len: usize, max: usize| {
            if len > max {
                Err(KeyTooLong { part, len, max })
            } else {
                Ok(())
            }
        };
        cap("message id", message_id.len(), MAX_MESSAGE_ID_BYTES)?;
        cap("account", self.account.len(), MAX_KEY_PART_BYTES)?;
        cap("user", self.user.len(), MAX_KEY_PART_BYTES)?;
        cap(
            "group",
            self.group.as_ref().map_or(0, String::len),
            MAX_KEY_PART_BYTES,
        )?;
        cap(
            "conversation key",
            self.storage_key_len(),
            MAX_STORAGE_KEY_BYTES,
        )
    }

    /// The length of [`ConversationKey::storage_key`] without building it.
    pub fn storage_key_len(&self) -> usize {
        let escaped =
            |s: &str| s.len() + 2 * s.bytes().filter(|b| matches!(b, b'%' | b'|')).count();
        self.provider.as_str().len()
            + 1
            + escaped(&self.account)
            + 1
            + escaped(&self.user)
            + self.group.as_deref().map_or(0, |g| 1 + escaped(g))
    }

    /// Parses [`ConversationKey::storage_key`]'s output.
    pub fn from_storage_key(s: &str) -> Result<Self, BadStorageKey> {
        let bad = || BadStorageKey(s.to_string());
        let mut parts = s.split('|');
        let provider = parts.next().and_then(Provider::parse).ok_or_else(bad)?;
        let account = unescape(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
        let user = unescape(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
        let group = match parts.next() {
            Some(g) => Some(unescape(g).ok_or_else(bad)?),
            None => None,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(ConversationKey {
            provider,
            account,
            user,
            group,
        })
    }

    /// A keyed hash of the key (HMAC-SHA256, first 8 bytes in hex) for logs and spans: it tells
    /// conversations apart without exposing a phone number, and cannot be reversed by hashing
    /// every phone number without the secret.
    pub fn log_hash(&self, secret: &[u8]) -> String {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => return String::from("unhashable"),
        };
        mac.update(self.storage_key().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    }
}

fn unescape(part: &str) -> Option<String> {
    if !part.contains('%') {
        return Some(part.to_string());
    }
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "7C" => '|',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_key_round_trips_awkward_ids() {
        let keys = [
            ConversationKey::new(Provider::Meta, "106540352242922", "16505551234"),
            ConversationKey::new(Provider::Evolution, "inst|1%", "a|b%7C@s.whatsapp.net")
                .in_group("120363@g.us"),
            ConversationKey::new(Provider::Generic, "", "").in_group(""),
        ];
        for k in keys {
            let s = k.storage_key();
            assert_eq!(ConversationKey::from_storage_key(&s).unwrap(), k, "{s}");
        }
        assert!(ConversationKey::from_storage_key("smtp|a|b").is_err());
        assert!(ConversationKey::from_storage_key("meta|a").is_err());
        assert!(ConversationKey::from_storage_key("meta|a|b%ZZ").is_err());
    }

    #[test]
    fn length_caps_bound_every_store_key() {
        let part = "|".repeat(MAX_KEY_PART_BYTES);
        let worst = ConversationKey::new(Provider::Evolution, part.clone(), part.clone())
            .in_group(part.clone());
        assert_eq!(worst.storage_key_len(), worst.storage_key().len());
        assert_eq!(
            worst.check_lengths("m").unwrap_err().part,
            "conversation key"
        );
        let id = "i".repeat(MAX_MESSAGE_ID_BYTES);
        let long_id = "i".repeat(MAX_MESSAGE_ID_BYTES + 1);
        let small = ConversationKey::new(Provider::Meta, "1", "2");
        assert_eq!(
            small.check_lengths(&long_id),
            Err(KeyTooLong {
                part: "message id",
                len: MAX_MESSAGE_ID_BYTES + 1,
                max: MAX_MESSAGE_ID_BYTES
            })
        );
        assert_eq!(small.check_lengths(&id), Ok(()));
        let long_user = ConversationKey::new(Provider::Meta, "1", "u".repeat(257));
        assert_eq!(long_user.check_lengths("m").unwrap_err().part, "user");
    }

    #[test]
    fn log_hash_hides_the_number_and_depends_on_the_secret() {
        let k = ConversationKey::new(Provider::Meta, "106540352242922", "16505551234");
        let h = k.log_hash(b"secret");
        assert_eq!(h.len(), 16);
        assert!(!h.contains("16505551234"));
        assert_ne!(h, k.log_hash(b"other"));
        assert_eq!(h, k.log_hash(b"secret"));
    }
}
