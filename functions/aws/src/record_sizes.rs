//! The size distribution of conversation record writes, as DynamoDB bills them (attribute names
//! plus values, see [`crate::accounting::item_size`]): a write is 1 WRU per started KB, so the
//! share of records over 1 KB is what a compact record would save.
//!
//! A fixed histogram (16-byte buckets up to 16 KB, one bucket above), not a list of sizes: the
//! counters live as long as a Lambda's process and must not grow with its requests.

use std::fmt;

/// Width of a bucket, in bytes.
const BUCKET: usize = 16;
/// Buckets below the overflow bucket: sizes 0..16 KB.
const BUCKETS: usize = 1024;
/// The billing unit of a write.
const KB: usize = 1024;

/// Counts of record writes by size.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSizes {
    /// `counts[i]`: writes of `i * 16 ..= i * 16 + 15` bytes; the last holds everything larger.
    counts: Box<[u64; BUCKETS + 1]>,
    /// Writes counted.
    pub writes: u64,
    /// Writes over 1 KB (2 WRU or more).
    pub over_1kb: u64,
    /// The largest write, exact.
    pub max: usize,
}

impl Default for RecordSizes {
    fn default() -> Self {
        RecordSizes {
            counts: Box::new([0; BUCKETS + 1]),
            writes: 0,
            over_1kb: 0,
            max: 0,
        }
    }
}

impl RecordSizes {
    /// Counts one write of `bytes`.
    pub fn add(&mut self, bytes: usize) {
        self.counts[(bytes / BUCKET).min(BUCKETS)] += 1;
        self.writes += 1;
        self.over_1kb += u64::from(bytes > KB);
        self.max = self.max.max(bytes);
    }

    /// The `p`th percentile (0-100) in bytes, to the bucket's upper edge (never above the
    /// maximum); 0 when nothing was counted.
    pub fn percentile(&self, p: f64) -> usize {
        if self.writes == 0 {
            return 0;
        }
        // The rank of the percentile, 1-based: at least the first write.
        let rank = ((p.clamp(0.0, 100.0) / 100.0 * self.writes as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The overflow bucket has no upper edge: the maximum is its bound.
                return if i == BUCKETS {
                    self.max
                } else {
                    ((i + 1) * BUCKET - 1).min(self.max)
                };
            }
        }
        self.max
    }

    /// The share (0-1) of writes over 1 KB.
    pub fn over_1kb_share(&self) -> f64 {
        if self.writes == 0 {
            0.0
        } else {
            self.over_1kb as f64 / self.writes as f64
        }
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &RecordSizes) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.writes += other.writes;
        self.over_1kb += other.over_1kb;
        self.max = self.max.max(other.max);
    }
}

/// The summary-line fields: `record_writes=.. record_bytes_p50=.. ... record_over_1kb_share=..`.
impl fmt::Display for RecordSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record_writes={} record_bytes_p50={} record_bytes_p90={} record_bytes_p99={} record_bytes_max={} record_over_1kb_share={:.3}",
            self.writes,
            self.percentile(50.0),
            self.percentile(90.0),
            self.percentile(99.0),
            self.max,
            self.over_1kb_share()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_edges_and_the_share_counts_only_above_1kb() {
        let mut s = RecordSizes::default();
        assert_eq!(s.percentile(50.0), 0);
        assert_eq!(s.over_1kb_share(), 0.0);
        for bytes in [100, 200, 300, 1024, 1025, 70_000] {
            s.add(bytes);
        }
        assert_eq!(s.writes, 6);
        assert_eq!(s.over_1kb, 2);
        assert_eq!(s.max, 70_000);
        // 3rd of 6: 300 bytes, in the bucket 288..=303.
        assert_eq!(s.percentile(50.0), 303);
        assert_eq!(s.percentile(0.0), 111);
        // 5th of 6: 1025 bytes.
        assert_eq!(s.percentile(80.0), 1039);
        // The overflow bucket reports the exact maximum.
        assert_eq!(s.percentile(99.0), 70_000);
        assert!((s.over_1kb_share() - 2.0 / 6.0).abs() < 1e-12);
        let mut t = RecordSizes::default();
        t.add(5);
        t.merge(&s);
        assert_eq!((t.writes, t.over_1kb, t.max), (7, 2, 70_000));
        assert!(t.to_string().contains("record_bytes_max=70000"));
    }
}
