//! What to simulate: the protocol (lull or a deliberately broken variant) and the run's
//! configuration (seed, size, faults, timing, traffic, the world's quirks).

use std::sync::Arc;
use std::time::Duration;

use crate::exec::SimPorts;
use crate::faults::Faults;
use crate::protocol::BufferConfig;
use crate::sut::{Lull, SystemUnderTest};
use crate::variants;
use crate::workload::Shape;

/// Which protocol to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// lull's protocol, as shipped.
    Lull,
    /// The Redis get/setex + `setTimeout` design lull replaces.
    Replaced,
    /// lull, but marking a batch acknowledged before the sink answered.
    AckBeforeSink,
    /// lull, but writing the dedupe record separately from the append.
    SeparateDedupe,
    /// lull, but the webhook stamps `received_at` 2 s early.
    StampsEarly,
    /// lull, but an open window follows every policy change instead of the rule it opened under.
    FollowsLatestPolicy,
    /// lull, but operator pauses are acknowledged and never stored.
    IgnoresPause,
    /// lull, but the flush writes dedupe records after the acknowledgement, not before.
    RemembersLate,
    /// lull, but the flush drops ids pushed out of the record without their dedupe records.
    DropsUnremembered,
    /// lull, but a retried edit is applied again.
    AppliesEditsTwice,
    /// lull, but unsends are acknowledged and never stored.
    ForgetsRevokes,
    /// lull, but the reply guard does not look at the open window.
    GuardIgnoresOpenWindow,
    /// lull, but the reply guard answers from a record it read up to 5 s before.
    GuardCachesReads,
    /// lull, but the flush marks every batch that may be superseded as superseded.
    CarriesUnsuperseded,
    /// lull, but a batch's context names the batch carrying it as the one it supersedes.
    ContextFromWrongBatch,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "lull" => Protocol::Lull,
            "replaced" => Protocol::Replaced,
            "ack-before-sink" => Protocol::AckBeforeSink,
            "separate-dedupe" => Protocol::SeparateDedupe,
            "stamps-early" => Protocol::StampsEarly,
            "follows-latest-policy" => Protocol::FollowsLatestPolicy,
            "ignores-pause" => Protocol::IgnoresPause,
            "remembers-late" => Protocol::RemembersLate,
            "drops-unremembered" => Protocol::DropsUnremembered,
            "applies-edits-twice" => Protocol::AppliesEditsTwice,
            "forgets-revokes" => Protocol::ForgetsRevokes,
            "guard-ignores-open-window" => Protocol::GuardIgnoresOpenWindow,
            "guard-caches-reads" => Protocol::GuardCachesReads,
            "carries-unsuperseded" => Protocol::CarriesUnsuperseded,
            "context-from-wrong-batch" => Protocol::ContextFromWrongBatch,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lull => "lull",
            Protocol::Replaced => "replaced",
            Protocol::AckBeforeSink => "ack-before-sink",
            Protocol::SeparateDedupe => "separate-dedupe",
            Protocol::StampsEarly => "stamps-early",
            Protocol::FollowsLatestPolicy => "follows-latest-policy",
            Protocol::IgnoresPause => "ignores-pause",
            Protocol::RemembersLate => "remembers-late",
            Protocol::DropsUnremembered => "drops-unremembered",
            Protocol::AppliesEditsTwice => "applies-edits-twice",
            Protocol::ForgetsRevokes => "forgets-revokes",
            Protocol::GuardIgnoresOpenWindow => "guard-ignores-open-window",
            Protocol::GuardCachesReads => "guard-caches-reads",
            Protocol::CarriesUnsuperseded => "carries-unsuperseded",
            Protocol::ContextFromWrongBatch => "context-from-wrong-batch",
        }
    }

    /// The system under test for this protocol, over the simulated ports.
    pub(crate) fn system(self, ports: &SimPorts, config: BufferConfig) -> Arc<dyn SystemUnderTest> {
        let lull = Lull::new(ports, config);
        let ports = ports.clone();
        match self {
            Protocol::Lull => Arc::new(lull),
            Protocol::Replaced => Arc::new(variants::Replaced { lull, ports }),
            Protocol::AckBeforeSink => Arc::new(variants::AckBeforeSink { lull, ports }),
            Protocol::SeparateDedupe => Arc::new(variants::SeparateDedupe { lull, ports }),
            Protocol::StampsEarly => Arc::new(variants::StampsEarly::new(&ports, config, lull)),
            Protocol::FollowsLatestPolicy => {
                Arc::new(variants::FollowsLatestPolicy { lull, ports })
            }
            Protocol::IgnoresPause => Arc::new(variants::IgnoresPause { lull }),
            Protocol::RemembersLate => Arc::new(variants::late_dedupe(&ports, config, lull, false)),
            Protocol::DropsUnremembered => {
                Arc::new(variants::late_dedupe(&ports, config, lull, true))
            }
            Protocol::AppliesEditsTwice => Arc::new(variants::AppliesEditsTwice { lull, ports }),
            Protocol::ForgetsRevokes => Arc::new(variants::ForgetsRevokes { lull }),
            Protocol::GuardIgnoresOpenWindow => {
                Arc::new(variants::GuardIgnoresOpenWindow { lull, ports })
            }
            Protocol::GuardCachesReads => Arc::new(variants::GuardCachesReads {
                lull,
                ports,
                cache: Arc::default(),
            }),
            Protocol::CarriesUnsuperseded => {
                Arc::new(variants::carries_unsuperseded(&ports, config, lull))
            }
            Protocol::ContextFromWrongBatch => {
                Arc::new(variants::context_from_wrong_batch(&ports, config, lull))
            }
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub messages: usize,
    pub conversations: usize,
    pub protocol: Protocol,
    pub faults: Faults,
    /// How often the sweep runs (60 s on AWS).
    pub sweep_interval: Duration,
    /// How long a failed trigger stays invisible before SQS redelivers it; at least the flush
    /// function's timeout (`HandoffTiming::min_visibility_timeout`), as SQS requires.
    pub visibility_timeout: Duration,
    /// Receives before a trigger moves to the DLQ.
    pub max_receives: u32,
    pub buffer: BufferConfig,
    /// The traffic to generate.
    pub shape: Shape,
    /// Largest difference between two hosts' clocks: each task reads `now` off by up to half
    /// of it, either way.
    pub clock_skew: Duration,
    /// Longest lag of the sweep's due index behind the table (a GSI is eventually consistent).
    pub index_lag: Duration,
    /// A sink outage at a fixed time: (after the start, how long).
    pub outage: Option<(Duration, Duration)>,
    /// The bot behind the sink takes 2-12 s to generate each reply and asks the batch's reply
    /// guard before it sends it (`ai_step.rs`); off: the sink answers at once and nobody asks.
    pub ai_step: bool,
}

impl SimConfig {
    pub fn new(seed: u64, messages: usize, conversations: usize) -> SimConfig {
        SimConfig {
            seed,
            messages,
            conversations,
            protocol: Protocol::Lull,
            faults: Faults::standard(),
            sweep_interval: Duration::from_secs(60),
            visibility_timeout: BufferConfig::default().timing.min_visibility_timeout(),
            max_receives: 5,
            buffer: BufferConfig::default(),
            shape: Shape::Adversarial,
            clock_skew: Duration::from_millis(500),
            index_lag: Duration::from_secs(2),
            outage: None,
            ai_step: true,
        }
    }
}
