//! `lull simulate`: runs the deterministic simulator and prints its summary line.

use std::time::Instant;

use clap::Args;
use lull_core::sim::{self, Faults, Protocol, Shape, SimConfig};

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
    /// Protocol: lull, or a broken one to compare (replaced, ack-before-sink, separate-dedupe).
    #[arg(long, default_value = "lull", value_parser = parse_protocol)]
    pub protocol: Protocol,
    /// Turn fault injection off (the happy path).
    #[arg(long)]
    pub no_faults: bool,
    /// Traffic: adversarial (gaps at the quiet-period edge, mixed tenants; the checker's) or
    /// realistic (bursts of 1-6 messages 0.5-4 s apart, default policy; the benchmarks').
    #[arg(long, default_value = "adversarial", value_parser = parse_shape)]
    pub workload: Shape,
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    match s {
        "adversarial" => Ok(Shape::Adversarial),
        "realistic" => Ok(Shape::Realistic),
        _ => Err(format!(
            "unknown workload {s:?}: expected adversarial or realistic"
        )),
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse(s).ok_or_else(|| {
        format!(
            "unknown protocol {s:?}: expected lull, replaced, ack-before-sink or separate-dedupe"
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
    let started = Instant::now();
    let report = sim::run(&cfg);
    let elapsed = started.elapsed();
    print!("{report}");
    eprintln!(
        "protocol={} seed={} simulated={:.0}s wall={:.2}s messages_per_s={:.0} dead_letters={}",
        args.protocol.as_str(),
        args.seed,
        report.simulated.as_secs_f64(),
        elapsed.as_secs_f64(),
        report.messages as f64 / elapsed.as_secs_f64().max(1e-9),
        report.dead_letters
    );
    u8::from(!report.violations.is_empty())
}
