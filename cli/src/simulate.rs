//! `lull simulate`: runs the deterministic simulator and prints its summary line.

use std::time::{Duration, Instant};

use clap::Args;
use lull_core::timing::HandoffTiming;
use lull_sim::{self as sim, Faults, Protocol, Shape, SimConfig};

/// Run the deterministic fault-injection simulator.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Messages to simulate.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Conversations to spread them over.
    #[arg(long, default_value_t = 1_000)]
    pub conversations: usize,
    /// Seed; the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Protocol: lull, or a broken one to compare (replaced, ack-before-sink, separate-dedupe,
    /// stamps-early, follows-latest-policy, ignores-pause, remembers-late, drops-unremembered,
    /// applies-edits-twice, forgets-revokes, guard-ignores-open-window, guard-caches-reads,
    /// carries-unsuperseded, context-from-wrong-batch).
    #[arg(long, default_value = "lull", value_parser = parse_protocol)]
    pub protocol: Protocol,
    /// Turn fault injection off (the happy path).
    #[arg(long, conflicts_with = "slow_sink")]
    pub no_faults: bool,
    /// Add sink calls of 40 s that then succeed (a slow AI step).
    #[arg(long)]
    pub slow_sink: bool,
    /// lull's sink timeout; the lease and the queue's visibility follow from it.
    #[arg(long, default_value = "60s", value_parser = parse_timing)]
    pub sink_timeout: HandoffTiming,
    /// Traffic: adversarial (gaps at the quiet-period edge, mixed tenants, policy changes; the
    /// checker's), realistic (bursts of 1-6 messages 0.5-4 s apart, default policy; the
    /// benchmarks') or backlog (small messages from passthrough tenants, tenants with batches of
    /// two and passthrough tenants switched to buffering: fills records to the store's limits
    /// when the sink is down; use with --outage).
    #[arg(long, default_value = "adversarial", value_parser = parse_shape)]
    pub workload: Shape,
    /// A sink outage of this length (e.g. 90m), starting one minute in.
    #[arg(long, value_parser = parse_duration)]
    pub outage: Option<Duration>,
    /// Largest difference between two hosts' clocks (e.g. 500ms, 3s).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub clock_skew: Duration,
    /// Turn the AI step off: the sink answers at once and no bot asks a reply guard (by
    /// default each bot generates for 2-12 s and asks the guard before it replies; some answer
    /// the hand-off after that, as supersede needs).
    #[arg(long)]
    pub no_ai_step: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("bad duration {s:?}: {e}"))
}

fn parse_timing(s: &str) -> Result<HandoffTiming, String> {
    HandoffTiming::new(parse_duration(s)?).map_err(|e| e.to_string())
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    match s {
        "adversarial" => Ok(Shape::Adversarial),
        "realistic" => Ok(Shape::Realistic),
        "backlog" => Ok(Shape::Backlog),
        _ => Err(format!(
            "unknown workload {s:?}: expected adversarial, realistic or backlog"
        )),
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse(s).ok_or_else(|| {
        format!(
            "unknown protocol {s:?}: expected lull, replaced, ack-before-sink, separate-dedupe, \
             stamps-early, follows-latest-policy, ignores-pause, remembers-late, drops-unremembered, \
             applies-edits-twice, forgets-revokes, guard-ignores-open-window, guard-caches-reads, \
             carries-unsuperseded or context-from-wrong-batch"
        )
    })
}

/// Runs the simulation; returns the process exit code (1 when an invariant broke).
pub fn run(args: &SimulateArgs) -> u8 {
    let mut cfg = SimConfig::new(args.seed, args.messages, args.conversations);
    cfg.protocol = args.protocol;
    cfg.shape = args.workload;
    if args.no_faults {
        cfg.faults = Faults::none();
    }
    if args.slow_sink {
        cfg.faults = Faults::slow_sink();
    }
    cfg.outage = args.outage.map(|len| (Duration::from_secs(60), len));
    cfg.clock_skew = args.clock_skew;
    cfg.ai_step = !args.no_ai_step;
    cfg.buffer.timing = args.sink_timeout;
    cfg.visibility_timeout = cfg.buffer.timing.min_visibility_timeout();
    let started = Instant::now();
    let report = sim::run(&cfg);
    let elapsed = started.elapsed();
    print!("{report}");
    eprintln!(
        "protocol={} seed={} simulated={:.0}s wall={:.2}s messages_per_s={:.0} dead_letters={} \
         refused_appends={} item_limit_hits={}",
        args.protocol.as_str(),
        args.seed,
        report.simulated.as_secs_f64(),
        elapsed.as_secs_f64(),
        report.messages as f64 / elapsed.as_secs_f64().max(1e-9),
        report.dead_letters,
        report.refused_appends,
        report.item_limit_hits
    );
    u8::from(!report.violations.is_empty())
}
