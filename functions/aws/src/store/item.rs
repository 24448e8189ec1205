//! How records are stored as DynamoDB items: the conversation item (its `rec` deflated, its key,
//! version, due-index keys and TTL) and the dedupe item, and their keys.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lull_core::ports::{DedupeRecord, StoreError};
use lull_core::{Conversation, ConversationKey, Millis};

use super::DynamoDbStore;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The deflate level of `rec`: 6 (zlib's default) compresses a typical record (~0.6-1.5 KB of
/// JSON) 2.3-2.5x, as well as 9 does, in tens of microseconds.
const REC_LEVEL: u8 = 6;

/// The largest `rec` JSON inflated: a record never encodes above the item limit (its budget is
/// below it), so this bounds what a corrupt or hostile item can make a read allocate.
const REC_INFLATED_MAX: usize = lull_core::window::STORE_ITEM_LIMIT as usize;

/// The `rec` attribute of `c`: its JSON, raw-deflated (RFC 1951), as a binary attribute.
/// DynamoDB bills a write per started KB of the item, and a record's JSON (field names repeated
/// per message, RFC 3339 times) shrinks 2-2.5x: a typical append and the lease write of a whole
/// batch fit one write unit instead of two.
pub(super) fn encode_rec(c: &Conversation) -> Result<AttributeValue, StoreError> {
    let json = serde_json::to_vec(c)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode record: {e}")))?;
    let deflated = miniz_oxide::deflate::compress_to_vec(&json, REC_LEVEL);
    Ok(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
        deflated,
    )))
}

/// The record in a `rec` attribute: deflated JSON (binary), or plain JSON (a string: items
/// written before `rec` was compressed keep loading).
pub(super) fn decode_rec(rec: &AttributeValue) -> Result<Conversation, StoreError> {
    let bad =
        |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("bad conversation record: {e}"));
    match rec {
        AttributeValue::B(blob) => {
            let json =
                miniz_oxide::inflate::decompress_to_vec_with_limit(blob.as_ref(), REC_INFLATED_MAX)
                    .map_err(|e| bad(&format!("cannot inflate: {:?}", e.status)))?;
            serde_json::from_slice(&json).map_err(|e| bad(&e))
        }
        AttributeValue::S(json) => serde_json::from_str(json).map_err(|e| bad(&e)),
        _ => Err(StoreError::Corrupt(
            "conversation record is neither binary nor a string".into(),
        )),
    }
}

pub(super) fn conv_pk(key: &ConversationKey) -> String {
    format!("c#{}", key.storage_key())
}

pub(super) fn dedupe_pk(key: &ConversationKey, message_id: &str) -> String {
    // Length-prefix the storage key so no (key, message id) pair can collide with another.
    let sk = key.storage_key();
    format!("d#{}#{}#{}", sk.len(), sk, message_id)
}

pub(super) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a u64: {v:?}"))),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing"))),
    }
}

/// Stable FNV-1a hash of the key, for the due-index shard.
pub(super) fn shard_of(pk: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pk.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

impl DynamoDbStore {
    /// The conversation item for `c`, as every record write sends it (public so a benchmark can
    /// fill a table with real-shaped records of idle conversations).
    pub fn conversation_item(&self, c: &Conversation) -> Result<Item, StoreError> {
        let pk = conv_pk(&c.key);
        let rec = encode_rec(c)?;
        let mut item = Item::with_capacity(6);
        if let Some(due) = c.index_due() {
            item.insert(
                "due_shard".into(),
                n(u64::from(shard_of(&pk, self.settings.due_shards))),
            );
            item.insert("due_at".into(), n(due.0));
        }
        if c.is_idle() {
            // Never before the conversation's dedupe records expire: the record's
            // `dedupe_until` is what tells an append to look them up.
            let dedupe_until = c
                .dedupe_until
                .filter(|&d| d != lull_core::window::LEGACY_DEDUPE)
                .unwrap_or(Millis(0));
            // Nor before the acknowledged ids it keeps leave their horizon.
            let acked_until = Millis(c.acked.iter().map(|g| g.until).max().unwrap_or(0));
            let until = c
                .updated_at
                .plus(self.settings.idle_ttl)
                .max(dedupe_until)
                .max(acked_until);
            item.insert("ttl".into(), n(until.0 / 1000 + 1));
        }
        item.insert("pk".into(), s(pk));
        item.insert("ver".into(), n(c.ver));
        item.insert("rec".into(), rec);
        Ok(item)
    }

    /// The dedupe item for `d`, as `remember` writes it.
    pub fn dedupe_item(d: &DedupeRecord) -> Item {
        HashMap::from([
            ("pk".to_string(), s(dedupe_pk(&d.key, &d.message_id))),
            ("gen".to_string(), n(d.gen)),
            ("expires_at".to_string(), n(d.expires_at.0)),
            ("ttl".to_string(), n(d.expires_at.0 / 1000 + 1)),
        ])
    }

    pub(super) fn decode(item: &Item) -> Result<Conversation, StoreError> {
        let c = match item.get("rec") {
            Some(rec) => decode_rec(rec)?,
            None => return Err(StoreError::Corrupt("conversation item without rec".into())),
        };
        let ver = get_n(item, "ver")?;
        if ver != c.ver {
            return Err(StoreError::Corrupt(format!(
                "version attribute {ver} disagrees with record version {}",
                c.ver
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide_and_shards_are_stable() {
        let a = ConversationKey::new(lull_core::Provider::Meta, "a", "b").in_group("c#d");
        let b = ConversationKey::new(lull_core::Provider::Meta, "a", "b").in_group("c");
        assert_ne!(dedupe_pk(&a, "x"), dedupe_pk(&b, "d#x"));
        assert_ne!(conv_pk(&a), dedupe_pk(&a, "x"));
        assert_eq!(shard_of("c#meta|a|b", 4), shard_of("c#meta|a|b", 4));
        assert!((0..100).all(|i| shard_of(&format!("k{i}"), 4) < 4));
        assert_eq!(shard_of("anything", 1), 0);
    }

    fn record() -> Conversation {
        let key = ConversationKey::new(lull_core::Provider::Meta, "106540352242922", "5511");
        let now = Millis(1_764_400_000_000);
        let mut c = Conversation::fresh(key, now);
        for i in 0..3 {
            c = c
                .plan_append(
                    lull_core::Message::text(format!("wamid.{i}"), "5511", "quero 2 pizzas"),
                    &lull_core::Policy::default(),
                    Millis(now.0 + i),
                    &mut || 7,
                )
                .expect("append")
                .next;
        }
        c
    }

    #[test]
    fn rec_is_deflated_json_and_items_with_a_string_rec_still_load() {
        let c = record();
        let store_item = |rec: AttributeValue| {
            HashMap::from([
                ("pk".to_string(), s(conv_pk(&c.key))),
                ("ver".to_string(), n(c.ver)),
                ("rec".to_string(), rec),
            ])
        };
        let rec = encode_rec(&c).expect("encode");
        let AttributeValue::B(blob) = &rec else {
            panic!("binary: {rec:?}")
        };
        let json = serde_json::to_vec(&c).expect("json");
        assert!(
            blob.as_ref().len() * 2 < json.len(),
            "{} of {}",
            blob.as_ref().len(),
            json.len()
        );
        assert_eq!(DynamoDbStore::decode(&store_item(rec)).expect("new"), c);
        // An item written before: `rec` the plain JSON string.
        let old = store_item(s(String::from_utf8(json).expect("utf-8")));
        assert_eq!(DynamoDbStore::decode(&old).expect("old"), c);
    }

    #[test]
    fn a_corrupt_or_oversized_rec_is_refused_as_corrupt() {
        let garbage = AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0xff; 64]));
        assert!(matches!(decode_rec(&garbage), Err(StoreError::Corrupt(_))));
        // A small blob inflating past the limit (a deflate bomb) stops at the limit.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![b' '; REC_INFLATED_MAX + 1], 6);
        assert!(bomb.len() < 4096);
        let bomb = AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bomb));
        assert!(matches!(decode_rec(&bomb), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode_rec(&AttributeValue::N("1".into())),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn keys_accepted_at_ingestion_fit_dynamodb_key_limits() {
        use lull_core::key::{MAX_DEDUPE_KEY_BYTES, MAX_MESSAGE_ID_BYTES, MAX_STORAGE_KEY_BYTES};
        // The longest key ingestion accepts: escaping ('|' -> "%7C") fills the storage cap.
        let part = format!("{}{}", "|".repeat(100), "u".repeat(150));
        let key = ConversationKey::new(lull_core::Provider::Evolution, "acct", part.clone())
            .in_group(part);
        let id = "i".repeat(MAX_MESSAGE_ID_BYTES);
        assert_eq!(key.check_lengths(&id), Ok(()));
        assert!(key.storage_key().len() > MAX_STORAGE_KEY_BYTES - 100);
        assert!(conv_pk(&key).len() <= 1024);
        assert!(dedupe_pk(&key, &id).len() <= MAX_DEDUPE_KEY_BYTES);
    }
}
