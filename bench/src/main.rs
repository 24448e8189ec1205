//! `lull-bench`: lull's benchmarks. Each subcommand prints ONE machine-readable summary line
//! (`bench=NAME key=value ...`) on stdout. Traffic goes to loopback only; every loop is bounded
//! in count and time. See BENCHMARKS.md for the figures and how to reproduce them:
//! `cargo run --release -p lull-bench -- <subcommand>`.

mod aws;
mod aws_table;
mod coldstart;
mod handoff;
mod ingest;
mod memory;
mod sim;
mod turns;
mod util;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lull-bench",
    about = "lull's benchmarks (one summary line each)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// 1. Local ingest: `lull serve` vs a bare axum handler, same load, same run.
    Ingest(ingest::IngestArgs),
    /// 2. Hand-off timeliness: lag from due time to arrival at an HTTP sink, early hand-offs.
    Handoff(handoff::HandoffArgs),
    /// 3. AWS requests and cost per message: the standard workload on moto, with lull-aws's accounting.
    Aws(aws::AwsArgs),
    /// 5. Cold-start proxy: process start to first Runtime API poll, peak RSS, binary sizes.
    Coldstart(coldstart::ColdstartArgs),
    /// 4. LLM calls saved: batches vs messages on the realistic workload.
    Llm(sim::LlmArgs),
    /// 6. Simulator throughput: messages/s of `lull simulate`.
    Sim(sim::SimArgs),
    /// 7. End of turn: silence after a turn and split turns, per end-of-turn policy.
    Turns(turns::TurnsArgs),
    /// 8. Memory: peak RSS of `lull serve` under concurrent wrongly-signed bodies at each route's limit.
    Memory(memory::MemoryArgs),
    /// The ingest baseline (started by `ingest` as a child process).
    #[command(hide = true)]
    BareServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::BareServer { listen } => ingest::bare_server(*listen),
        Cmd::Llm(a) => sim::run_llm(a),
        Cmd::Sim(a) => sim::run_sim(a),
        Cmd::Turns(a) => turns::run(a),
        cmd => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(async {
                match cmd {
                    Cmd::Ingest(a) => ingest::run(a).await,
                    Cmd::Handoff(a) => handoff::run(a).await,
                    Cmd::Aws(a) => aws::run(a).await,
                    Cmd::Coldstart(a) => coldstart::run(a).await,
                    Cmd::Memory(a) => memory::run(a).await,
                    _ => Ok(()),
                }
            }),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lull-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
