//! `lull redrive`: re-deliver pending batches now (backoff holds and parks lifted). Through the
//! running server's ops listener when one holds the data directory; else from here, each
//! conversation redriven by the core (`Handoff::redrive`: on through every yield, until nothing
//! is left or the sink fails again). With `--aws`, the AWS deployment's DLQ is replayed the same
//! way (`lull_aws::redrive`).

use std::process::ExitCode;

use clap::Args;

use crate::aws::aws_only;
use crate::config::{Config, ServeArgs};
use crate::fail;

/// `lull redrive`: re-deliver pending batches now.
#[derive(Args, Clone, Debug, Default)]
pub struct RedriveArgs {
    /// Redrive the AWS deployment instead: replay the triggers parked in the DLQ
    /// (`LULL_DLQ_URL`) through the DynamoDB store and the sink, oldest batch first, each with its
    /// original batch id. Reads the Lambdas' environment variables (`LULL_TABLE`,
    /// `LULL_TRIGGER_QUEUE_URL`, `LULL_SINK`, ...) and the usual AWS credentials. Needs a build
    /// with `--features aws`.
    #[arg(long)]
    pub aws: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `lull redrive`.
pub async fn run(args: &RedriveArgs) -> ExitCode {
    if args.aws {
        let replayed: Result<(String, bool), String> = aws_only!("redrive", aws().await);
        return match replayed {
            Ok((report, all_done)) => {
                println!("{report}");
                if all_done {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("lull redrive --aws: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match local(args).await {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Through the running server, or from here when none holds the data directory.
async fn local(args: &RedriveArgs) -> Result<String, String> {
    let cfg = args.serve.resolve().map_err(|e| e.to_string())?;
    if lull_local::server::dir_in_use(&cfg.data_dir) {
        let body = crate::ops_client::post(&cfg, "redrive", None).await?;
        return Ok(format!(
            "the running server is re-delivering {body} conversation(s)"
        ));
    }
    crate::serve::init_logs(&cfg);
    here(&cfg).await
}

/// Redrives every conversation with pending batches or past due, from this process.
async fn here(cfg: &Config) -> Result<String, String> {
    let local = crate::local::open(cfg).await?;
    let now = lull_core::Millis::now_wall();
    let convs = local.store.scheduled().await.map_err(|e| e.to_string())?;
    let (mut batches, mut failed) = (0usize, 0usize);
    for c in convs
        .iter()
        .filter(|c| !c.pending.is_empty() || c.is_past_due(now))
    {
        let r = local.handoff.redrive(&c.key).await;
        batches += r.handed_off.len();
        if let Some(why) = r.failure() {
            failed += 1;
            tracing::warn!(error = %why, "redrive: hand-off failed; the batch stays pending");
        }
    }
    if failed > 0 {
        return Err(format!(
            "{batches} batch(es) handed off; {failed} conversation(s) still failing (pending, not lost)"
        ));
    }
    Ok(format!("{batches} batch(es) handed off"))
}

/// Replays the DLQ through the DynamoDB store and the configured sink: the report's line, and
/// whether every conversation is done.
#[cfg(feature = "aws")]
async fn aws() -> Result<(String, bool), String> {
    use lull_aws::redrive::{redrive, RedriveOptions};
    use lull_aws::{Accounting, Role};

    let (settings, clients) = crate::aws::connect(Role::Redrive).await?;
    let dlq = settings
        .dlq_url
        .clone()
        .ok_or("LULL_DLQ_URL is required but not set")?;
    let acct = Accounting::new();
    let buffer = settings
        .handoff(&clients, &acct)
        .map_err(|e| e.to_string())?;
    let r = redrive(
        &clients.sqs,
        &dlq,
        &buffer,
        &acct,
        RedriveOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((
        format!(
            "redrive: triggers={} conversations={} handed_off={} failed={} unreadable={}",
            r.triggers, r.conversations, r.handed_off, r.failed, r.unreadable
        ),
        r.failed == 0,
    ))
}
