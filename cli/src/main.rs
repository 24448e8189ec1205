//! `lull`: a message buffer for WhatsApp AI bots. With no subcommand it runs `lull serve`.

mod aws;
mod check;
mod console;
mod demo;
mod redact;
mod serve;
mod simulate;
mod tenants;
mod toml_error;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers on
/// several threads, and glibc's arena locks and chunk consolidation were a sixth of `lull
/// serve`'s CPU under load (BENCHMARKS.md, section 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// lull holds each WhatsApp conversation's messages until the user goes quiet, then hands the AI
/// step one batch with all of them.
///
/// Settings: flags > environment variables > lull.toml > defaults. Run `lull serve --help` for
/// every setting.
#[derive(Parser, Debug)]
#[command(
    name = "lull",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `lull` takes `lull serve`'s settings.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the webhooks on an embedded SQLite store with durable timers (the default).
    Serve(serve::ServeArgs),
    /// List open windows and pending batches in a data directory.
    Inspect(serve::InspectArgs),
    /// Re-deliver pending batches now (through the running server, or directly when none runs).
    Redrive(serve::RedriveArgs),
    /// Pause a conversation's hand-offs while a human takes over, or resume them (locally or,
    /// with --aws, in the AWS deployment).
    Conversations(serve::conversations::ConversationsArgs),
    /// Serve the operators' console of an AWS deployment (--aws) on loopback; `lull serve`
    /// serves the local one on its ops listener at /console.
    Console(console::ConsoleArgs),
    /// Resolve the configuration as `serve` (or, with --aws, each Lambda) would, start nothing,
    /// and name every problem; --send-test-batch also hands the sink one signed test batch.
    Check(check::CheckArgs),
    /// Manage tenants (accounts, secrets, policy, sink) in the data directory or, with --aws,
    /// in the AWS deployment; running servers pick changes up without a restart.
    Tenants(tenants::TenantsArgs),
    /// Run the deterministic fault-injection simulator and check the invariants.
    Simulate(simulate::SimulateArgs),
    /// Replay the named scenarios (the seed failure and its neighbours) and print their timelines.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve::serve(&args),
        Some(Command::Inspect(args)) => serve::inspect(&args),
        Some(Command::Redrive(args)) => serve::redrive(&args),
        Some(Command::Conversations(args)) => serve::conversations::run(&args),
        Some(Command::Console(args)) => console::run(&args),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Tenants(args)) => tenants::run(&args),
        Some(Command::Simulate(args)) => ExitCode::from(simulate::run(&args)),
        Some(Command::Demo) => ExitCode::from(demo::run()),
        // `lull` alone is `lull serve`, environment variables included.
        None => serve::serve(&cli.serve),
    }
}
