//! The sparse due index (`due_shard`, `due_at`): what the sweep and the console read from it,
//! and its write units counted where a landed write changes a record's index key.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use lull_core::ports::StoreError;
use lull_core::ConversationKey;

use super::item::{get_n, n, Item};
use super::DynamoDbStore;
use crate::accounting::{index_write_units, item_size, units};

/// The name of the sparse due-time index.
pub const DUE_INDEX: &str = "due";

/// Entries of [`DynamoDbStore::index_seen`] before it is cleared.
const INDEX_SEEN_MAX: usize = 65_536;

impl DynamoDbStore {
    /// Remembers the index key of the record `pk` as read or returned by a failed condition.
    pub(super) fn saw_index(&self, pk: String, item: Option<&Item>) {
        let due = item.and_then(|i| get_n(i, "due_at").ok());
        let mut seen = self.index_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= INDEX_SEEN_MAX {
            seen.clear();
        }
        seen.insert(pk, due);
    }

    /// Counts the index units of a landed write of record `pk` with index key `new` under `op`
    /// (`created`: the write required the item to be absent) and remembers the key.
    pub(super) fn wrote_index(
        &self,
        op: &'static str,
        (pk, new): (String, Option<u64>),
        created: bool,
    ) {
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

    /// Reads up to `cap` entries of due-index shard `shard` whose `due_at` meets `condition`
    /// (over `:a`, `:b`: `values` in order), ascending, following `LastEvaluatedKey`: what the
    /// sweep and the console read. Every `Query` is counted (0.5 RCU per started 4 KB read,
    /// eventually consistent, as a GSI is).
    pub(super) async fn index_range(
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
}

/// The console's lists (`lull console --aws`): the Lambdas never read them.
#[cfg(feature = "console")]
impl lull_local::console::ConsoleIndex for DynamoDbStore {
    /// One console page of the due index: up to `limit` conversations after `after` in
    /// (due_at, key) order, parked ones left out. One `Query` per shard from the cursor's
    /// `due_at` (entries of that same millisecond at or before the cursor's key are read again
    /// and dropped), merged: `limit` index entries per shard at most, never a scan.
    async fn due_page(
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
    async fn parked_page(
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
