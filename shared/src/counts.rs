//! A metrics recorder that only counts, installed for the simulation's thread (and a protocol
//! test's) while the protocol runs (`metrics::with_local_recorder`), so the checker can compare
//! what lull counted with what the world saw (invariant 6: every drop is counted). Labels are
//! summed per metric name. A test fixture (feature `fixtures`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counter totals per metric name.
#[derive(Default, Debug)]
pub struct Counts {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Counts {
    /// The total of counter `name` over all its labels.
    pub fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let c = map.entry(key.name().to_string()).or_default().clone();
        Counter::from_arc(c)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_label_of_a_counter_under_its_name() {
        let counts = Counts::default();
        metrics::with_local_recorder(&counts, || {
            metrics::counter!("a", "reason" => "x").increment(2);
            metrics::counter!("a", "reason" => "y").increment(1);
            metrics::counter!("b").increment(5);
        });
        assert_eq!(
            (counts.get("a"), counts.get("b"), counts.get("c")),
            (3, 5, 0)
        );
    }
}
