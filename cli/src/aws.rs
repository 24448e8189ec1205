//! `lull redrive --aws`: replays the triggers parked in the AWS deployment's DLQ.
//!
//! Built only with `--features aws`, so the local server's build does not compile the AWS SDK.

use std::process::ExitCode;

/// Replays the DLQ through the DynamoDB store and the configured sink, then prints the report.
#[cfg(feature = "aws")]
pub fn redrive() -> ExitCode {
    use lull_aws::redrive::{redrive, RedriveOptions};
    use lull_aws::{Accounting, AwsClients, Role, Settings};

    let run = async {
        let settings = Settings::from_env(Role::Redrive).map_err(|e| e.to_string())?;
        let dlq = settings
            .dlq_url
            .clone()
            .ok_or("LULL_DLQ_URL is required but not set")?;
        let clients = AwsClients::from_env().await;
        let acct = Accounting::new();
        let buffer = settings
            .handoff_buffer(&clients, &acct)
            .map_err(|e| e.to_string())?;
        redrive(
            &clients.sqs,
            &dlq,
            &buffer,
            &acct,
            RedriveOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lull redrive --aws: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run) {
        Ok(r) => {
            println!(
                "redrive: triggers={} conversations={} handed_off={} failed={} unreadable={}",
                r.triggers, r.conversations, r.handed_off, r.failed, r.unreadable
            );
            if r.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("lull redrive --aws: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Without the `aws` feature: say how to get it.
#[cfg(not(feature = "aws"))]
pub fn redrive() -> ExitCode {
    eprintln!(
        "lull redrive --aws: this lull was built without AWS support; run \
         `cargo run --release -p lull --features aws -- redrive --aws`"
    );
    ExitCode::from(2)
}

/// Without the `aws` feature: say how to get it.
#[cfg(not(feature = "aws"))]
pub fn tenants(_: &crate::tenants::TenantsArgs) -> Result<String, String> {
    Err(
        "this lull was built without AWS support; run `cargo run --release -p lull --features \
         aws -- tenants --aws ...`"
            .into(),
    )
}
