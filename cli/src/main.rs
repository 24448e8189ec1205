//! `lull`: a message buffer for WhatsApp AI bots. With no subcommand it runs `lull serve`.
//!
//! One file (or folder) per subcommand; [`config`] resolves the settings they share, [`local`]
//! opens the data directory's deployment as `serve` does, [`ops_client`] talks to a running
//! server, and [`aws`] (built with `--features aws`) reaches the AWS deployment. `main` builds
//! the one async runtime every command runs on.

mod aws;
mod check;
mod config;
mod console;
mod conversations;
mod demo;
mod inspect;
mod local;
mod ops_client;
#[cfg(test)]
mod readme_test;
mod redact;
mod redrive;
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
    serve: config::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the webhooks on an embedded SQLite store with durable timers (the default).
    Serve(config::ServeArgs),
    /// List open windows and pending batches in a data directory.
    Inspect(inspect::InspectArgs),
    /// Re-deliver pending batches now (through the running server, or directly when none runs).
    Redrive(redrive::RedriveArgs),
    /// Pause a conversation's hand-offs while a human takes over, or resume them (locally or,
    /// with --aws, in the AWS deployment).
    Conversations(conversations::ConversationsArgs),
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
    // `lull` alone is `lull serve`, environment variables included.
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => on_runtime(serve::run(&args)),
        Command::Inspect(args) => on_runtime(inspect::run(&args)),
        Command::Redrive(args) => on_runtime(redrive::run(&args)),
        Command::Conversations(args) => on_runtime(conversations::run(&args)),
        Command::Console(args) => on_runtime(console::run(&args)),
        Command::Check(args) => on_runtime(check::run(&args)),
        Command::Tenants(args) => on_runtime(tenants::run(&args)),
        // The simulator and the demo run on virtual time: no runtime.
        Command::Simulate(args) => ExitCode::from(simulate::run(&args)),
        Command::Demo => ExitCode::from(demo::run()),
    }
}

/// Runs a command on the process's one async runtime (built here, once).
fn on_runtime(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(command),
        Err(e) => fail(format!("cannot start the async runtime: {e}")),
    }
}

/// Prints `lull: MSG` to stderr; the failure exit code.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("lull: {msg}");
    ExitCode::FAILURE
}
