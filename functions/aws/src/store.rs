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
//!
//! One concern per file: the store and its conditional writes here; how a record and a dedupe
//! record are encoded as items (`item.rs`); the due index, read and accounted (`index.rs`); the
//! table's creation for tests and set-up (`table.rs`).

mod index;
mod item;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use lull_core::ports::{DedupeRecord, StoreError, WindowStore, Written};
use lull_core::{Conversation, ConversationKey, Millis};

use crate::accounting::{consistent_read_units, item_size, units, write_units, Accounting};
use crate::sdk_error;

pub use index::{CONSOLE_PARKED_CAP, DUE_INDEX};
pub use table::create_table;

use item::{conv_pk, dedupe_pk, get_n, n, s, Item};

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

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
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
