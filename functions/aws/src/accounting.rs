//! Request accounting: how many DynamoDB and SQS requests lull made, per operation, and the
//! write/read capacity units DynamoDB reported (`ReturnConsumedCapacity=TOTAL`, table plus
//! indexes). Tests and benchmarks divide these by messages and batches.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::record_sizes::RecordSizes;

/// Counts of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpUsage {
    /// Requests sent (a transaction is one request).
    pub requests: u64,
    /// Items written (a transaction counts each of its items).
    pub items_written: u64,
    /// Write capacity units consumed, as DynamoDB reported them.
    pub wcu: f64,
    /// Read capacity units consumed, as DynamoDB reported them.
    pub rcu: f64,
    /// Write units DynamoDB charges for the base table, estimated from the item sizes lull
    /// sent (1 KB units, transactions double, failed conditions charged too). Emulators report
    /// capacity loosely; this is the figure to price with. Index writes are extra (see
    /// `docs/dynamodb.md`).
    pub est_wcu: f64,
    /// Read units estimated from item sizes (4 KB units; consistent reads 1, index queries 0.5).
    pub est_rcu: f64,
    /// Write units of the due index (GSI, keys only: one small item per conversation) that the
    /// writes landed caused, counted by the store where it sees the index attribute change:
    /// 1 when a record enters or leaves the index, 2 when its `due_at` moves (delete + put).
    pub est_index_wcu: f64,
}

/// A snapshot of the counters: `"service.Operation"` -> usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub ops: BTreeMap<String, OpUsage>,
}

impl Usage {
    fn sum(&self, prefix: &str) -> OpUsage {
        self.ops.iter().filter(|(k, _)| k.starts_with(prefix)).fold(
            OpUsage::default(),
            |mut a, (_, u)| {
                a.requests += u.requests;
                a.items_written += u.items_written;
                a.wcu += u.wcu;
                a.rcu += u.rcu;
                a.est_wcu += u.est_wcu;
                a.est_rcu += u.est_rcu;
                a.est_index_wcu += u.est_index_wcu;
                a
            },
        )
    }

    /// All DynamoDB operations together.
    pub fn dynamodb(&self) -> OpUsage {
        self.sum("dynamodb.")
    }

    /// All SQS operations together.
    pub fn sqs(&self) -> OpUsage {
        self.sum("sqs.")
    }

    /// One operation, e.g. `"dynamodb.TransactWriteItems"` or `"sqs.SendMessage"`.
    pub fn op(&self, name: &str) -> OpUsage {
        self.ops.get(name).copied().unwrap_or_default()
    }

    /// The counts since `earlier`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        let mut ops = BTreeMap::new();
        for (k, u) in &self.ops {
            let e = earlier.op(k);
            ops.insert(
                k.clone(),
                OpUsage {
                    requests: u.requests - e.requests,
                    items_written: u.items_written - e.items_written,
                    wcu: u.wcu - e.wcu,
                    rcu: u.rcu - e.rcu,
                    est_wcu: u.est_wcu - e.est_wcu,
                    est_rcu: u.est_rcu - e.est_rcu,
                    est_index_wcu: u.est_index_wcu - e.est_index_wcu,
                },
            );
        }
        Usage { ops }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<34} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "operation", "requests", "items", "WCU", "RCU", "est.WCU", "est.RCU", "index.WCU"
        )?;
        for (k, u) in &self.ops {
            writeln!(
                f,
                "{:<34} {:>8} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                k, u.requests, u.items_written, u.wcu, u.rcu, u.est_wcu, u.est_rcu, u.est_index_wcu
            )?;
        }
        Ok(())
    }
}

/// Shared counters; clones count into the same totals.
#[derive(Clone, Debug, Default)]
pub struct Accounting {
    ops: Arc<Mutex<BTreeMap<&'static str, OpUsage>>>,
    /// Sizes of the conversation record writes sent (a bounded histogram).
    sizes: Arc<Mutex<RecordSizes>>,
}

impl Accounting {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request of `op` that wrote `items` items and consumed the given units.
    pub fn record(&self, op: &'static str, items: u64, wcu: f64, rcu: f64) {
        self.record_with_estimate(op, items, wcu, rcu, 0.0, 0.0);
    }

    /// Like [`Accounting::record`], with the units estimated from item sizes.
    pub fn record_with_estimate(
        &self,
        op: &'static str,
        items: u64,
        wcu: f64,
        rcu: f64,
        est_wcu: f64,
        est_rcu: f64,
    ) {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let u = ops.entry(op).or_default();
        u.requests += 1;
        u.items_written += items;
        u.wcu += wcu;
        u.rcu += rcu;
        u.est_wcu += est_wcu;
        u.est_rcu += est_rcu;
    }

    /// Adds due-index write units caused by a write of `op` already recorded.
    pub fn record_index_units(&self, op: &'static str, units: f64) {
        if units > 0.0 {
            let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
            ops.entry(op).or_default().est_index_wcu += units;
        }
    }

    /// Counts one conversation record write of `bytes` (as billed) in the size distribution.
    pub fn record_write_size(&self, bytes: usize) {
        self.sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(bytes);
    }

    /// The size distribution of the record writes so far.
    pub fn record_sizes(&self) -> RecordSizes {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Usage {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        Usage {
            ops: ops.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
        }
    }
}

/// Sums the capacity units (table plus indexes) of DynamoDB's consumed-capacity reports.
pub(crate) fn units<'a>(
    reports: impl IntoIterator<Item = &'a aws_sdk_dynamodb::types::ConsumedCapacity>,
) -> f64 {
    reports
        .into_iter()
        .map(|c| c.capacity_units().unwrap_or(0.0))
        .sum()
}

/// An item's size as DynamoDB bills it: attribute names plus values (strings in UTF-8 bytes,
/// numbers about one byte per two significant digits plus one).
pub fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    A::S(s) => s.len(),
                    A::N(n) => n.trim_start_matches('0').len().div_ceil(2) + 1,
                    A::B(b) => b.as_ref().len(),
                    A::Bool(_) | A::Null(_) => 1,
                    _ => 0,
                }
        })
        .sum()
}

/// Write units of writing items of these sizes (1 KB units each).
pub fn write_units(sizes: impl IntoIterator<Item = usize>) -> f64 {
    sizes
        .into_iter()
        .map(|s| s.div_ceil(1024).max(1) as f64)
        .sum()
}

/// Due-index write units of a landed write that changed a record's index key from `old` to
/// `new` (`None`: not in the index). `old` unknown (`None` outer) is counted as a move when the
/// record lands in the index, an exit otherwise: never less than the truth.
pub fn index_write_units(old: Option<Option<u64>>, new: Option<u64>) -> f64 {
    match (old, new) {
        (Some(None), None) => 0.0,
        (Some(Some(o)), Some(n)) if o == n => 0.0,
        (Some(None), Some(_)) | (Some(Some(_)), None) => 1.0,
        (Some(Some(_)), Some(_)) => 2.0,
        (None, Some(_)) => 2.0,
        (None, None) => 1.0,
    }
}

/// Read units of a strongly consistent read of an item of `size` bytes (4 KB units, at least 1).
pub fn consistent_read_units(size: usize) -> f64 {
    size.div_ceil(4096).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_operation_and_sums_by_service() {
        let a = Accounting::new();
        a.record("dynamodb.TransactWriteItems", 2, 4.0, 0.0);
        a.record("dynamodb.GetItem", 0, 0.0, 1.0);
        let before = a.snapshot();
        a.record("sqs.SendMessage", 0, 0.0, 0.0);
        a.record("dynamodb.GetItem", 0, 0.0, 1.0);
        let s = a.snapshot();
        assert_eq!(s.dynamodb().requests, 3);
        assert_eq!(s.dynamodb().items_written, 2);
        assert_eq!(s.dynamodb().rcu, 2.0);
        assert_eq!(s.sqs().requests, 1);
        let d = s.since(&before);
        assert_eq!(d.op("dynamodb.GetItem").requests, 1);
        assert_eq!(d.op("dynamodb.TransactWriteItems").requests, 0);
        assert!(s.to_string().contains("sqs.SendMessage"));
    }

    #[test]
    fn unit_estimates_follow_dynamodb_sizes() {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        let item = std::collections::HashMap::from([
            ("pk".to_string(), A::S("abc".into())),
            ("ver".to_string(), A::N("12345".into())),
        ]);
        assert_eq!(item_size(&item), 2 + 3 + 3 + 4);
        assert_eq!(write_units([10, 1024, 1025]), 1.0 + 1.0 + 2.0);
        assert_eq!(consistent_read_units(0), 1.0);
        assert_eq!(consistent_read_units(4097), 2.0);
    }

    #[test]
    fn index_units_follow_what_the_index_sees() {
        assert_eq!(index_write_units(Some(Some(5)), Some(5)), 0.0);
        assert_eq!(index_write_units(Some(None), None), 0.0);
        assert_eq!(index_write_units(Some(None), Some(5)), 1.0);
        assert_eq!(index_write_units(Some(Some(5)), None), 1.0);
        assert_eq!(index_write_units(Some(Some(5)), Some(6)), 2.0);
        assert_eq!(index_write_units(None, Some(6)), 2.0);
        assert_eq!(index_write_units(None, None), 1.0);
        let a = Accounting::new();
        a.record("dynamodb.PutItem", 1, 0.0, 0.0);
        a.record_index_units("dynamodb.PutItem", 2.0);
        assert_eq!(a.snapshot().dynamodb().est_index_wcu, 2.0);
    }

    #[test]
    fn record_write_sizes_are_shared_by_clones() {
        let a = Accounting::new();
        a.clone().record_write_size(900);
        a.record_write_size(1500);
        let s = a.record_sizes();
        assert_eq!((s.writes, s.over_1kb, s.max), (2, 1, 1500));
    }
}
