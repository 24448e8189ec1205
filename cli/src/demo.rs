//! `lull demo`: replays the named scenarios on a virtual clock and prints their timelines:
//! who arrived when, which batch closed and why, what waited for what.

use lull_core::scenarios;

/// Prints every scenario's timeline and the batches the sink received.
pub fn run() -> u8 {
    println!("lull demo: quiet period 8s, max wait 30s, a sink that acknowledges at once.");
    println!("Times are virtual (the clock is compressed): +seconds since the first message.\n");
    for run in scenarios::all() {
        println!("== {}: {}", run.name, run.about);
        for e in &run.timeline {
            println!("  +{:>6.3}s  {}", e.at.as_secs_f64(), e.what);
        }
        println!("  -> the sink received {} batch(es):", run.received.len());
        for r in &run.received {
            let ids: Vec<&str> = r.batch.messages.iter().map(|m| m.id.as_str()).collect();
            println!(
                "     closed +{:.3}s, reason {:<8} messages [{}]  prompt text {:?}",
                r.at.as_secs_f64(),
                r.batch.reason.as_str(),
                ids.join(", "),
                r.batch.text
            );
        }
        println!();
    }
    0
}
