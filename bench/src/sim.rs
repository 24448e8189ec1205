//! Benchmarks 4 (LLM calls saved) and 6 (simulator throughput): both run the real
//! `lull simulate` and read its summary lines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;

use crate::util::{self, Res};

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Messages per simulator run.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `lull` binary [default: next to lull-bench, built if missing].
    #[arg(long)]
    pub lull: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct LlmArgs {
    /// Messages of the realistic workload.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Conversations they are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub conversations: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Assumed price of one AI call in USD (see BENCHMARKS.md for what it stands for).
    #[arg(long, default_value_t = 0.002)]
    pub usd_per_call: f64,
    /// The `lull` binary [default: next to lull-bench, built if missing].
    #[arg(long)]
    pub lull: Option<PathBuf>,
}

/// One `lull simulate` run.
struct SimRun {
    messages: u64,
    batches: u64,
    violations: u64,
    /// The simulator's own messages/s (its run, without building the workload).
    sim_mps: f64,
    /// Process wall time, seconds (workload generation and start-up included).
    wall_s: f64,
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn simulate(lull: &Path, args: &[String]) -> Res<SimRun> {
    let started = Instant::now();
    let out = Command::new(lull).arg("simulate").args(args).output()?;
    let wall_s = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("messages="))
        .ok_or_else(|| format!("no summary line from lull simulate {args:?}: {stderr}"))?;
    let run_line = stderr
        .lines()
        .find(|l| l.contains("messages_per_s="))
        .ok_or_else(|| format!("no run line from lull simulate {args:?}: {stderr}"))?;
    let get = |line: &str, k: &str| field(line, k).ok_or_else(|| format!("no {k} in {line:?}"));
    Ok(SimRun {
        messages: get(summary, "messages")? as u64,
        batches: get(summary, "batches")? as u64,
        violations: get(summary, "violations")? as u64,
        sim_mps: get(run_line, "messages_per_s")?,
        wall_s,
    })
}

fn lull_bin(p: &Option<PathBuf>) -> Res<PathBuf> {
    match p {
        Some(p) => Ok(p.clone()),
        None => util::sibling_bin("lull", "lull"),
    }
}

pub fn run_sim(a: &SimArgs) -> Res<()> {
    let lull = lull_bin(&a.lull)?;
    let base = vec![
        "--messages".to_string(),
        a.messages.to_string(),
        "--seed".into(),
        a.seed.to_string(),
    ];
    let with = |extra: &[&str]| {
        let mut v = base.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let faults = simulate(&lull, &with(&[]))?;
    let clean = simulate(&lull, &with(&["--no-faults"]))?;
    let realistic = simulate(&lull, &with(&["--workload", "realistic", "--no-faults"]))?;
    let mps = |r: &SimRun| r.messages as f64 / r.wall_s;
    println!(
        "bench=sim messages={} seed={} adversarial_faults_mps={:.0} adversarial_faults_wall_mps={:.0} adversarial_nofaults_mps={:.0} adversarial_nofaults_wall_mps={:.0} realistic_mps={:.0} realistic_wall_mps={:.0} violations={}",
        a.messages,
        a.seed,
        faults.sim_mps,
        mps(&faults),
        clean.sim_mps,
        mps(&clean),
        realistic.sim_mps,
        mps(&realistic),
        faults.violations + clean.violations + realistic.violations,
    );
    Ok(())
}

pub fn run_llm(a: &LlmArgs) -> Res<()> {
    let lull = lull_bin(&a.lull)?;
    let r = simulate(
        &lull,
        &[
            "--workload".into(),
            "realistic".into(),
            "--no-faults".into(),
            "--messages".into(),
            a.messages.to_string(),
            "--conversations".into(),
            a.conversations.to_string(),
            "--seed".into(),
            a.seed.to_string(),
        ],
    )?;
    let (m, b) = (r.messages as f64, r.batches as f64);
    let per_million_without = 1e6 * a.usd_per_call;
    let per_million_with = 1e6 * (b / m) * a.usd_per_call;
    println!(
        "bench=llm workload=realistic messages={} conversations={} batches={} batches_per_message={:.4} messages_per_batch={:.3} calls_saved_pct={:.1} usd_per_call={} usd_per_million_messages_without={:.0} usd_per_million_messages_with={:.0} usd_saved_per_million_messages={:.0} violations={}",
        r.messages,
        a.conversations,
        r.batches,
        b / m,
        m / b,
        100.0 * (1.0 - b / m),
        a.usd_per_call,
        per_million_without,
        per_million_with,
        per_million_without - per_million_with,
        r.violations,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_fields_of_summary_lines() {
        let l = "messages=10 batches=3 faults=0 violations=0";
        assert_eq!(super::field(l, "batches"), Some(3.0));
        assert_eq!(super::field(l, "nope"), None);
    }
}
