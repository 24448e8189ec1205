//! Fault rates: how often each kind of failure is injected. Every fault is counted.

use std::time::Duration;

/// Probabilities (per operation) and shapes of the injected faults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// A task dies before its next operation lands.
    pub crash_before: f64,
    /// A task dies right after its operation landed, before it sees the result.
    pub crash_after: f64,
    /// A store call fails (half of those land anyway, as a timeout after the write would).
    pub store_error: f64,
    /// Trigger send fails.
    pub trigger_error: f64,
    /// Trigger accepted but never delivered.
    pub trigger_lost: f64,
    /// Trigger delivered twice.
    pub trigger_duplicated: f64,
    /// Trigger delivered 1-60 s late.
    pub trigger_late: f64,
    /// Trigger delivered 0.1-3 s before its time.
    pub trigger_early: f64,
    /// Sink refuses a hand-off.
    pub sink_error: f64,
    /// Sink does not answer within the timeout (it may or may not have the batch).
    pub sink_timeout_rate: f64,
    /// How long a timed-out sink call takes (at most the call's budget).
    pub sink_timeout: Duration,
    /// Sink accepts the batch but lull is told it failed.
    pub sink_lost_ack: f64,
    /// Sink takes `sink_slow_call` to answer, then acknowledges (a slow AI step). The call is cut
    /// at its budget (`Sink::deliver`'s `within`, from the sink timeout and the lease) if that
    /// comes first, as every adapter does.
    pub sink_slow: f64,
    /// How long a slow sink call takes.
    pub sink_slow_call: Duration,
    /// Chance, per sweep tick, that the sink goes down for 30 s to `sink_outage_max`.
    pub sink_outage: f64,
    /// The longest random sink outage.
    pub sink_outage_max: Duration,
    /// Chance, per sweep tick, that the store throttles for 1 to 10 s: half its calls fail
    /// without landing (DynamoDB's `ProvisionedThroughputExceeded`).
    pub store_throttle: f64,
    /// Chance that a gateway re-sends a message it already got a 2xx for.
    pub webhook_retry: f64,
}

impl Faults {
    /// The default mix: every kind of fault, often enough that a 100,000-message run sees
    /// thousands of them.
    pub fn standard() -> Faults {
        Faults {
            crash_before: 0.002,
            crash_after: 0.002,
            store_error: 0.002,
            trigger_error: 0.005,
            trigger_lost: 0.01,
            trigger_duplicated: 0.01,
            trigger_late: 0.01,
            trigger_early: 0.01,
            sink_error: 0.01,
            sink_timeout_rate: 0.003,
            sink_timeout: Duration::from_secs(10),
            sink_lost_ack: 0.005,
            sink_slow: 0.0,
            sink_slow_call: Duration::from_secs(40),
            sink_outage: 0.01,
            sink_outage_max: Duration::from_secs(300),
            store_throttle: 0.02,
            webhook_retry: 0.02,
        }
    }

    /// No faults at all: the happy path.
    pub fn none() -> Faults {
        Faults {
            crash_before: 0.0,
            crash_after: 0.0,
            store_error: 0.0,
            trigger_error: 0.0,
            trigger_lost: 0.0,
            trigger_duplicated: 0.0,
            trigger_late: 0.0,
            trigger_early: 0.0,
            sink_error: 0.0,
            sink_timeout_rate: 0.0,
            sink_timeout: Duration::from_secs(10),
            sink_lost_ack: 0.0,
            sink_slow: 0.0,
            sink_slow_call: Duration::from_secs(40),
            sink_outage: 0.0,
            sink_outage_max: Duration::from_secs(300),
            store_throttle: 0.0,
            webhook_retry: 0.0,
        }
    }

    /// The standard mix plus sink calls of 40 s that then succeed (longer than the 30 s lease
    /// lull had before its lease followed from the sink timeout).
    pub fn slow_sink() -> Faults {
        Faults {
            sink_slow: 0.01,
            ..Faults::standard()
        }
    }
}
