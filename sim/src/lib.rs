//! # lull-sim
//!
//! The deterministic fault-injection simulator.
//!
//! A seeded run generates thousands of conversations' bursts, runs the real protocol
//! ([`lull_core::protocol::Buffer`]) over simulated ports whose every call is scheduled on a
//! virtual clock, injects faults (crashes between any two steps, lost / duplicated / late / early
//! triggers, sink errors, timeouts, slow calls and lost acknowledgements, store errors, throttling
//! and item limits, webhook retries, clock skew between hosts, a lagging sweep index, tenant
//! policies changed mid-window), puts a bot behind the sink that takes 2-12 s per reply and asks
//! the real reply guard before it replies (`ai_step.rs`; supersede tenants' next batches repeat
//! the batches superseded), then turns faults off, drains, and checks every invariant
//! ([`Invariant`]) on the world's own clock. The same seed replays the same run; a violation
//! prints the seed and the conversation's trace.
//!
//! Role and imports: a tool beside the shells, not one of them. It imports the core alone
//! (`lull-core`, with its `fixtures`: the in-memory store and the counting metrics recorder) and
//! is imported by the `lull simulate` command, the workspace tests and the benchmarks; the
//! Lambdas and the local server never compile it.
mod ai_step;
mod amends;
mod check;
mod config;
mod driver;
mod exec;
mod faults;
mod index;
mod invariant;
mod record;
mod report;
mod sut;
mod variants;
mod work;
mod workload;

pub use config::{Protocol, SimConfig};
pub use faults::Faults;
pub use invariant::{Invariant, Violation};
pub use report::{GuardCounts, SimReport};
pub use workload::Shape;

// Files name the virtual clock's instants `crate::Millis`.
use lull_core::time::Millis;

// The simulator was written inside the core: its files name the core's modules from the crate
// root (`crate::time::Millis`), as they did there.
use lull_core::{batch, guard, key, memory, message, policy, ports, protocol, time, turn, window};
// Files written before the move name this crate `crate::sim`; kept so they still compile.
#[allow(unused_imports)]
use crate as sim;

use driver::run_traced;

/// Runs one simulation. A run that breaks an invariant is run again with the same seed, tracing
/// the conversations whose violations the report shows (at most [`TRACED`]): the same seed
/// replays the same run, and only those conversations' whole traces are kept in memory.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut report = run_traced(cfg, &[]);
    let traced = traced_conversations(&report.violations);
    if traced.is_empty() {
        return report;
    }
    let mut replay = run_traced(cfg, &traced);
    report.traces = std::mem::take(&mut replay.traces);
    if replay.summary() != report.summary() {
        // Never expected (one seed, one run): say so rather than print a trace of another run.
        report.traces.push(format!(
            "  the replay diverged from the run (not deterministic): {}\n",
            replay.summary()
        ));
    }
    report
}

/// Conversations whose traces a report prints: those of the first violations, at most this many.
const TRACED: usize = 2;

/// The first [`TRACED`] conversations with violations, in the order of their first violation.
fn traced_conversations(violations: &[Violation]) -> Vec<usize> {
    let mut convs: Vec<usize> = Vec::new();
    for c in violations.iter().filter_map(|v| v.conversation) {
        if convs.len() < TRACED && !convs.contains(&c) {
            convs.push(c);
        }
    }
    convs
}
