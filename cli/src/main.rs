//! `lull`: a message buffer for WhatsApp AI bots.

mod demo;
mod simulate;

use clap::{Parser, Subcommand};

/// lull holds each WhatsApp conversation's messages until the user goes quiet, then hands the AI
/// step one batch with all of them.
#[derive(Parser, Debug)]
#[command(name = "lull", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the deterministic fault-injection simulator and check the invariants.
    Simulate(simulate::SimulateArgs),
    /// Replay the named scenarios (the seed failure and its neighbours) and print their timelines.
    Demo,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Simulate(args)) => simulate::run(&args),
        Some(Command::Demo) | None => demo::run(),
    };
    std::process::exit(code);
}
