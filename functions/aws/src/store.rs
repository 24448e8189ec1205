//! The DynamoDB `WindowStore`: one table, two kinds of item (see `docs/dynamodb.md`).
//!
//! - conversation `pk = "c#<storage key>"`: `ver` (N), `rec` (B, the record's JSON deflated; S,
//!   the plain JSON, in items written before), and, only
//!   while something is due, `due_shard` (N) + `due_at` (N, ms): the keys of the sparse `due`
//!   index the sweep reads. An idle record carries `ttl` (N, s) so DynamoDB removes it later.
//! - dedupe `pk = "d#<storage key>#<message id>"`: `gen` (N), `expires_at` (N, ms), `ttl` (N, s).
//!
//! Every condition that depends on expiry compares the stored `expires_at` itself: DynamoDB's
//! TTL deletes days late, and emulators never do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use lull_core::ports::{DedupeRecord, StoreError, WindowStore, Written};
use lull_core::{Conversation, ConversationKey, Millis};

use crate::accounting::{
    consistent_read_units, index_write_units, item_size, units, write_units, Accounting,
};
use crate::sdk_error;

/// The name of the sparse due-time index.
pub const DUE_INDEX: &str = "due";

type Item = HashMap<String, AttributeValue>;

/// Where and how records are stored.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub table: String,
    /// Partitions of the due index (records spread over them by key hash; the sweep queries
    /// each). Fixed for the life of a table.
    pub due_shards: u32,
    /// How long an idle conversation record is kept (its generation survives expiry anyway).
    pub idle_ttl: Duration,
}

impl StoreSettings {
    pub fn new(table: impl Into<String>) -> Self {
        StoreSettings {
            table: table.into(),
            due_shards: 4,
            idle_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The `WindowStore` on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    settings: StoreSettings,
    acct: Accounting,
    /// The due-index key (`due_at`) of each record as last read or written here, so a landed
    /// write's index units are counted where the store sees the attribute change. Accounting
    /// only; bounded (cleared when full: an unknown entry counts as the costlier case).
    index_seen: Arc<Mutex<HashMap<String, Option<u64>>>>,
}

/// Times `remember` sends a batch's unprocessed dedupe records again before giving up (the
/// flush is then retried by its shell; the batch stays pending, its ids in the record).
const REMEMBER_RETRIES: u32 = 5;

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
fn encode_rec(c: &Conversation) -> Result<AttributeValue, StoreError> {
    let json = serde_json::to_vec(c)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode record: {e}")))?;
    let deflated = miniz_oxide::deflate::compress_to_vec(&json, REC_LEVEL);
    Ok(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
        deflated,
    )))
}

/// The record in a `rec` attribute: deflated JSON (binary), or plain JSON (a string: items
/// written before `rec` was compressed keep loading).
fn decode_rec(rec: &AttributeValue) -> Result<Conversation, StoreError> {
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

/// Entries of [`DynamoDbStore::index_seen`] before it is cleared.
const INDEX_SEEN_MAX: usize = 65_536;

fn conv_pk(key: &ConversationKey) -> String {
    format!("c#{}", key.storage_key())
}

fn dedupe_pk(key: &ConversationKey, message_id: &str) -> String {
    // Length-prefix the storage key so no (key, message id) pair can collide with another.
    let sk = key.storage_key();
    format!("d#{}#{}#{}", sk.len(), sk, message_id)
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn get_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a u64: {v:?}"))),
        _ => Err(StoreError::Corrupt(format!("attribute {name} missing"))),
    }
}

/// Stable FNV-1a hash of the key, for the due-index shard.
fn shard_of(pk: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pk.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

impl DynamoDbStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        settings: StoreSettings,
        acct: Accounting,
    ) -> Self {
        DynamoDbStore {
            client,
            settings,
            acct,
            index_seen: Arc::default(),
        }
    }

    /// Remembers the index key of the record `pk` as read or returned by a failed condition.
    fn saw_index(&self, pk: String, item: Option<&Item>) {
        let due = item.and_then(|i| get_n(i, "due_at").ok());
        let mut seen = self.index_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= INDEX_SEEN_MAX {
            seen.clear();
        }
        seen.insert(pk, due);
    }

    /// Counts the index units of a landed write of record `pk` with index key `new` under `op`
    /// (`created`: the write required the item to be absent) and remembers the key.
    fn wrote_index(&self, op: &'static str, (pk, new): (String, Option<u64>), created: bool) {
        let mut seen = self.index_seen.lock().unwrap_or_else(|e| e.into_inner());
        let old = if created {
            Some(None)
        } else {
            seen.get(&pk).copied()
        };
        self.acct
            .record_index_units(op, index_write_units(old, new));
        if seen.len() >= INDEX_SEEN_MAX {
            seen.clear();
        }
        seen.insert(pk, new);
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

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

    fn decode(item: &Item) -> Result<Conversation, StoreError> {
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

    /// The record a failed condition returned, or a consistent read when it returned none
    /// (the item does not exist, or the API left it out).
    async fn current(
        &self,
        key: &ConversationKey,
        returned: Option<&Item>,
    ) -> Result<Option<Box<Conversation>>, StoreError> {
        match returned {
            Some(item) if !item.is_empty() => Ok(Some(Box::new(Self::decode(item)?))),
            _ => Ok(self.load(key).await?.map(Box::new)),
        }
    }

    /// Writes `next` if the stored version is `expected` (`None`: no record): one conditional
    /// `PutItem`, what both `append` and `replace` are.
    async fn put_if_version(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        let item = self.conversation_item(next)?;
        let written = (conv_pk(&next.key), next.index_due().map(|d| d.0));
        let size = item_size(&item);
        self.acct.record_write_size(size);
        let est = write_units([size]);
        let put = self
            .client
            .put_item()
            .table_name(&self.settings.table)
            .set_item(Some(item));
        let put = match expected {
            Some(v) => put
                .condition_expression("ver = :expected")
                .expression_attribute_values(":expected", n(v)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        let result = put
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                let wcu = out.consumed_capacity().map_or(0.0, |c| units([c]));
                self.acct
                    .record_with_estimate("dynamodb.PutItem", 1, wcu, 0.0, est, 0.0);
                self.wrote_index("dynamodb.PutItem", written, expected.is_none());
                Ok(Written::Ok)
            }
            Err(SdkError::ServiceError(se)) => {
                self.acct
                    .record_with_estimate("dynamodb.PutItem", 0, 0.0, 0.0, est, 0.0);
                match se.err() {
                    PutItemError::ConditionalCheckFailedException(ccf) => {
                        if let Some(item) = ccf.item() {
                            self.saw_index(conv_pk(&next.key), Some(item));
                        }
                        Ok(Written::Conflict(
                            self.current(&next.key, ccf.item()).await?,
                        ))
                    }
                    other => Err(classify("PutItem", se.raw().status().as_u16(), other)),
                }
            }
            Err(e) => Err(Self::unavailable("PutItem", &e)),
        }
    }

    fn unavailable<E: std::error::Error>(op: &str, e: &E) -> StoreError {
        StoreError::Unavailable(format!("DynamoDB {op}: {}", sdk_error(e)))
    }
}

/// Maps a DynamoDB error that is not a failed condition: throttling backs off, a validation error
/// (an item over 400 KB, a key over its limit) is refused outright, anything else is unavailable.
fn classify<E>(op: &str, _status: u16, e: &E) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    let detail = format!("DynamoDB {op}: {}", sdk_error(e));
    match e.code().unwrap_or("") {
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "RequestLimitExceeded" => StoreError::Throttled(detail),
        "ValidationException" => StoreError::TooLarge(detail),
        _ => StoreError::Unavailable(detail),
    }
}

impl WindowStore for DynamoDbStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.table)
            .key("pk", s(conv_pk(key)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| Self::unavailable("GetItem", &e))?;
        let size = out.item().map_or(0, item_size);
        self.saw_index(conv_pk(key), out.item());
        self.acct.record_with_estimate(
            "dynamodb.GetItem",
            0,
            0.0,
            units(out.consumed_capacity()),
            0.0,
            consistent_read_units(size),
        );
        match out.item() {
            Some(item) if !item.is_empty() => Ok(Some(Self::decode(item)?)),
            _ => Ok(None),
        }
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        self.put_if_version(expected, next).await
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.table)
            .key("pk", s(dedupe_pk(key, message_id)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| Self::unavailable("GetItem", &e))?;
        let size = out.item().map_or(0, item_size);
        self.acct.record_with_estimate(
            "dynamodb.GetItem(dedupe)",
            0,
            0.0,
            units(out.consumed_capacity()),
            0.0,
            consistent_read_units(size),
        );
        let Some(item) = out.item().filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        // Expiry by the stored timestamp: DynamoDB's TTL deletes days late, emulators never.
        let expires_at = get_n(item, "expires_at")?;
        if expires_at < now.0 {
            return Ok(None);
        }
        Ok(Some(DedupeRecord {
            key: key.clone(),
            message_id: message_id.to_string(),
            gen: get_n(item, "gen")?,
            expires_at: Millis(expires_at),
        }))
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        // BatchWriteItem takes 25 items a request; a batch holds at most `max_messages` (100).
        for chunk in records.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            let mut sizes = Vec::with_capacity(chunk.len());
            for d in chunk {
                let item = Self::dedupe_item(d);
                sizes.push(item_size(&item));
                let put = aws_sdk_dynamodb::types::PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let mut pending = requests;
            // Unprocessed items (throttling) are sent again, a bounded number of times.
            for attempt in 0..=REMEMBER_RETRIES {
                if pending.is_empty() {
                    break;
                }
                if attempt == REMEMBER_RETRIES {
                    return Err(StoreError::Throttled(format!(
                        "BatchWriteItem: {} dedupe records unprocessed",
                        pending.len()
                    )));
                }
                let n = pending.len();
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.settings.table, std::mem::take(&mut pending))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| match e {
                        SdkError::ServiceError(se) => {
                            classify("BatchWriteItem", se.raw().status().as_u16(), se.err())
                        }
                        e => Self::unavailable("BatchWriteItem", &e),
                    })?;
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&self.settings.table))
                    .cloned()
                    .unwrap_or_default();
                let done = n - pending.len();
                let est = write_units(sizes.iter().copied().take(done));
                self.acct.record_with_estimate(
                    "dynamodb.BatchWriteItem",
                    done as u64,
                    units(out.consumed_capacity()),
                    0.0,
                    est,
                    0.0,
                );
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
        Ok(())
    }

    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        self.put_if_version(Some(expected), next).await
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        let mut found: Vec<(u64, ConversationKey)> = Vec::new();
        for shard in 0..self.settings.due_shards.max(1) {
            found.extend(
                self.index_range(shard, "due_at <= :a", &[n(now.0)], limit)
                    .await?,
            );
        }
        found.sort();
        found.truncate(limit);
        Ok(found.into_iter().map(|(_, k)| k).collect())
    }
}

impl DynamoDbStore {
    /// Reads up to `cap` entries of due-index shard `shard` whose `due_at` meets `condition`
    /// (over `:a`, `:b`: `values` in order), ascending, following `LastEvaluatedKey`: what the
    /// sweep and the console read. Every `Query` is counted (0.5 RCU per started 4 KB read,
    /// eventually consistent, as a GSI is).
    async fn index_range(
        &self,
        shard: u32,
        condition: &str,
        values: &[AttributeValue],
        cap: usize,
    ) -> Result<Vec<(u64, ConversationKey)>, StoreError> {
        let mut found = Vec::new();
        let page = i32::try_from(cap.clamp(1, 1000)).unwrap_or(1000);
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.settings.table)
                .index_name(DUE_INDEX)
                .key_condition_expression(format!("due_shard = :s AND {condition}"))
                .expression_attribute_values(":s", n(u64::from(shard)));
            for (name, v) in [":a", ":b"].iter().zip(values) {
                q = q.expression_attribute_values(*name, v.clone());
            }
            let out = q
                .scan_index_forward(true)
                .limit(page)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| Self::unavailable("Query", &e))?;
            let bytes: usize = out.items().iter().map(item_size).sum();
            self.acct.record_with_estimate(
                "dynamodb.Query",
                0,
                0.0,
                units(out.consumed_capacity()),
                0.0,
                0.5 * bytes.div_ceil(4096).max(1) as f64,
            );
            for item in out.items() {
                let due_at = get_n(item, "due_at")?;
                let pk = match item.get("pk") {
                    Some(AttributeValue::S(pk)) => pk,
                    _ => return Err(StoreError::Corrupt("index item without pk".into())),
                };
                let sk = pk.strip_prefix("c#").ok_or_else(|| {
                    StoreError::Corrupt("index item is not a conversation".into())
                })?;
                let key = ConversationKey::from_storage_key(sk)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                found.push((due_at, key));
            }
            match out.last_evaluated_key() {
                Some(k) if found.len() < cap && !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(found)
    }

    /// One console page of the due index: up to `limit` conversations after `after` in
    /// (due_at, key) order, parked ones left out. One `Query` per shard from the cursor's
    /// `due_at` (entries of that same millisecond at or before the cursor's key are read again
    /// and dropped), merged: `limit` index entries per shard at most, never a scan.
    pub async fn console_due_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let from = after.as_ref().map_or(0, |(d, _)| *d);
        let below = lull_core::window::PARKED.0 - 1;
        let mut found = Vec::new();
        for shard in 0..self.settings.due_shards.max(1) {
            let range = self
                .index_range(
                    shard,
                    "due_at BETWEEN :a AND :b",
                    &[n(from), n(below)],
                    limit,
                )
                .await?;
            found.extend(range.into_iter().map(|(d, k)| (d, k.storage_key())));
        }
        found.retain(|e| after.as_ref().is_none_or(|a| e > a));
        found.sort();
        found.truncate(limit);
        Ok(found)
    }

    /// One console page of parked conversations: up to `limit` after key `after`, in key order.
    /// Parked entries share one `due_at` (`window::PARKED`), so each shard's are read whole (at
    /// most [`CONSOLE_PARKED_CAP`] per shard) and paged here.
    pub async fn console_parked_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let mut found = Vec::new();
        for shard in 0..self.settings.due_shards.max(1) {
            let range = self
                .index_range(
                    shard,
                    "due_at = :a",
                    &[n(lull_core::window::PARKED.0)],
                    CONSOLE_PARKED_CAP,
                )
                .await?;
            found.extend(range.into_iter().map(|(d, k)| (d, k.storage_key())));
        }
        found.retain(|(_, k)| after.as_ref().is_none_or(|a| k > a));
        found.sort_by(|a, b| a.1.cmp(&b.1));
        found.truncate(limit);
        Ok(found)
    }
}

/// The most parked entries the console reads per due-index shard (a parked batch is an
/// incident an operator clears; thousands of them are an outage the alarms already report).
pub const CONSOLE_PARKED_CAP: usize = 1_000;

/// Creates the table (pay per request), its due index, and turns on TTL. For tests and
/// `lull` set-up scripts; production tables come from infrastructure code with the same shape.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let err = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Corrupt(e.to_string());
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .map_err(err)
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .map_err(err)
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("due_shard", ScalarAttributeType::N)?)
        .attribute_definitions(attr("due_at", ScalarAttributeType::N)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(DUE_INDEX)
                .key_schema(key("due_shard", KeyType::Hash)?)
                .key_schema(key("due_at", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(err)?,
        )
        .send()
        .await
        .map_err(|e| DynamoDbStore::unavailable("CreateTable", &e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .map_err(err)?,
        )
        .send()
        .await
        .map_err(|e| DynamoDbStore::unavailable("UpdateTimeToLive", &e))?;
    Ok(())
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
