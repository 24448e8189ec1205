//! The deterministic simulator: lull keeps all six invariants under faults, and the checker
//! catches deliberately broken protocols.

use lull_core::sim::{self, Faults, Protocol, SimConfig};

fn run(seed: u64, messages: usize, conversations: usize, protocol: Protocol) -> sim::SimReport {
    let mut cfg = SimConfig::new(seed, messages, conversations);
    cfg.protocol = protocol;
    let report = sim::run(&cfg);
    println!("{} ({}, seed {seed})", report.summary(), protocol.as_str());
    report
}

#[test]
fn lull_keeps_every_invariant_over_100k_messages_with_faults() {
    let report = run(20261128, 100_000, 1_000, Protocol::Lull);
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.messages, 100_000);
    assert!(report.faults > 5_000, "faults injected: {}", report.faults);
    assert!(report.batches > 10_000 && report.batches < 100_000);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(7, 5_000, 100, Protocol::Lull);
    let b = run(7, 5_000, 100, Protocol::Lull);
    assert_eq!(a.summary(), b.summary());
    assert_eq!(a.simulated, b.simulated);
    let c = run(8, 5_000, 100, Protocol::Lull);
    assert_ne!((a.faults, a.batches), (c.faults, c.batches));
}

#[test]
fn the_happy_path_has_no_dead_letters() {
    let mut cfg = SimConfig::new(3, 10_000, 200);
    cfg.faults = Faults::none();
    let report = sim::run(&cfg);
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!((report.faults, report.dead_letters), (0, 0));
}

#[test]
fn the_checker_catches_the_replaced_design() {
    let report = run(1, 10_000, 200, Protocol::Replaced);
    assert!(
        report.violations.iter().any(|v| v.invariant == "1 no loss"),
        "{report}"
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.invariant == "3 never early"),
        "{report}"
    );
}

#[test]
fn the_replaced_design_loses_messages_even_without_faults() {
    let mut cfg = SimConfig::new(1, 10_000, 200);
    cfg.protocol = Protocol::Replaced;
    cfg.faults = Faults::none();
    let report = sim::run(&cfg);
    assert!(
        report.violations.iter().any(|v| v.invariant == "1 no loss"),
        "{report}"
    );
}

#[test]
fn the_checker_catches_acknowledging_before_the_sink_answers() {
    let report = run(1, 10_000, 200, Protocol::AckBeforeSink);
    assert!(
        report.violations.iter().any(|v| v.invariant == "1 no loss"),
        "{report}"
    );
}

#[test]
fn the_checker_catches_dedupe_in_a_separate_write() {
    let report = run(1, 20_000, 200, Protocol::SeparateDedupe);
    assert!(
        report.violations.iter().any(|v| v.invariant == "1 no loss"),
        "{report}"
    );
}
