//! `lull console --aws`: the operators' console against an AWS deployment, served on loopback
//! with the caller's AWS credentials (the deployment's `LULL_*` variables name its table and
//! queues, as for `lull conversations --aws`; the flush Lambda's `LULL_SINK` lets it redrive).
//! The local console needs no command: `lull serve` serves it on its ops listener, `/console`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

use crate::aws::aws_only;

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

/// `lull console`.
pub async fn run(args: &ConsoleArgs) -> ExitCode {
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
    match aws_only!("console", aws(args.listen).await) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lull console --aws: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--aws`: the console over the deployment's table and queues (the webhook Lambda's
/// variables), redriving through the flush Lambda's sink when `LULL_SINK` is set.
#[cfg(feature = "aws")]
async fn aws(listen: SocketAddr) -> Result<(), String> {
    use std::sync::Arc;

    use lull_aws::console::AwsConsole;
    use lull_aws::{Accounting, Role, Settings};

    let (settings, clients) = crate::aws::connect(Role::Webhook).await?;
    let acct = Accounting::new();
    let (store, _, _) = settings.build(&clients, &acct).map_err(|e| e.to_string())?;
    let intake = settings
        .intake(&clients, &acct)
        .map_err(|e| e.to_string())?;
    let handoff = match Settings::from_env(Role::Flush) {
        Ok(s) => Some(s.handoff(&clients, &acct).map_err(|e| e.to_string())?),
        Err(e) => {
            eprintln!("lull console --aws: redrive is off ({e})");
            None
        }
    };
    let console = AwsConsole {
        store,
        intake,
        handoff,
        tenants: settings.tenant_store(&clients, &acct),
        horizon: settings.buffer.dedupe_horizon,
        table: settings.table.clone(),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "lull console: http://{addr}/console (table {})",
        settings.table
    );
    let secret: Arc<[u8]> = settings.log_secret.as_bytes().into();
    lull_local::console::serve(listener, console, secret, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}
