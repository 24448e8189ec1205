//! `lull console --aws`: the operators' console against an AWS deployment, served on loopback
//! with the caller's AWS credentials (the deployment's `LULL_*` variables name its table and
//! queues, as for `lull conversations --aws`; the flush Lambda's `LULL_SINK` lets it redrive).
//! The local console needs no command: `lull serve` serves it on its ops listener, `/console`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

/// `lull console`.
#[derive(Args, Clone, Debug)]
pub struct ConsoleArgs {
    /// Serve the console of the AWS deployment named by the `LULL_*` variables (`LULL_TABLE`,
    /// `LULL_TRIGGER_QUEUE_URL`; `LULL_SINK` to redrive). Needs a build with `--features aws`.
    #[arg(long)]
    pub aws: bool,
    /// Where to serve it: a loopback address only (the console has no login: whoever reaches it
    /// acts with your AWS credentials).
    #[arg(
        long,
        env = "LULL_CONSOLE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:9091"
    )]
    pub listen: SocketAddr,
}

pub fn run(args: &ConsoleArgs) -> ExitCode {
    if !args.aws {
        eprintln!(
            "lull console: the local console is served by `lull serve` on its ops listener \
             (http://127.0.0.1:9090/console by default); give --aws for an AWS deployment's"
        );
        return ExitCode::from(2);
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "lull console: --listen {} is not a loopback address: the console has no login, so it \
             listens on loopback only (reach it through an SSH tunnel)",
            args.listen
        );
        return ExitCode::from(2);
    }
    match crate::aws::console(args.listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lull console --aws: {e}");
            ExitCode::FAILURE
        }
    }
}
