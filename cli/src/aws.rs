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
            .handoff(&clients, &acct)
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

/// `lull tenants --aws ...`: the deployment's tenant store, found from the Lambdas' variables
/// (`LULL_TABLE`, `LULL_SECRET_PREFIX`, `LULL_QUIET`, `LULL_MAX_WAIT`) and the usual AWS
/// credentials.
#[cfg(feature = "aws")]
pub fn tenants(args: &crate::tenants::TenantsArgs) -> Result<String, String> {
    use crate::tenants::{
        applied_summary, parse_file, removed_summary, render_list, render_show, TenantsCommand,
    };
    use lull_aws::{Accounting, AwsClients, Role, Settings};

    let settings = Settings::from_env(Role::Tenants).map_err(|e| e.to_string())?;
    let run = async {
        let clients = AwsClients::from_env().await;
        let store = settings.tenant_store(&clients, &Accounting::new());
        let now = lull_core::Millis::now_wall();
        let err = |e: lull_aws::tenants::TenantStoreError| e.to_string();
        match &args.command {
            TenantsCommand::Apply { file } => {
                let specs = parse_file(file)?;
                let r = store
                    .apply(specs, &settings.policy, now, settings.tenant_refresh)
                    .await
                    .map_err(err)?;
                Ok(format!(
                    "{}\npolicies resolved with the deployment's defaults (the Lambdas' \
                     LULL_QUIET, LULL_MAX_WAIT, ... as set here): quiet {}, max wait {}",
                    applied_summary(&r.created, &r.updated, &r.unchanged, &r.released),
                    humantime::format_duration(settings.policy.quiet),
                    humantime::format_duration(settings.policy.max_wait)
                ))
            }
            TenantsCommand::List { json } => {
                Ok(render_list(&store.list().await.map_err(err)?, *json))
            }
            TenantsCommand::Show { id } => render_show(&store.list().await.map_err(err)?, id),
            TenantsCommand::Remove { id, purge } => {
                // A purge is refused while the tenant's conversations still hold work.
                store.remove(id, *purge, now).await.map_err(err)?;
                Ok(removed_summary(id, *purge))
            }
        }
    };
    block_on(run)
}

/// Without the `aws` feature: say how to get it.
#[cfg(not(feature = "aws"))]
pub fn pause(
    _: &lull_core::ConversationKey,
    _: Option<std::time::Duration>,
) -> Result<lull_core::protocol::PauseOutcome, String> {
    Err(
        "this lull was built without AWS support; run `cargo run --release -p lull --features \
         aws -- conversations --aws ...`"
            .into(),
    )
}

/// `lull conversations --aws pause|resume KEY`: the core's `Intake::pause` over the
/// deployment's DynamoDB table and SQS trigger queue (the webhook Lambda's variables:
/// `LULL_TABLE`, `LULL_TRIGGER_QUEUE_URL`), as an admin pause (`pause_for`: `None` resumes).
#[cfg(feature = "aws")]
pub fn pause(
    key: &lull_core::ConversationKey,
    pause_for: Option<std::time::Duration>,
) -> Result<lull_core::protocol::PauseOutcome, String> {
    use lull_aws::{Accounting, AwsClients, Role, Settings};

    let settings = Settings::from_env(Role::Webhook).map_err(|e| e.to_string())?;
    let run = async {
        let clients = AwsClients::from_env().await;
        let intake = settings
            .intake(&clients, &Accounting::new())
            .map_err(|e| e.to_string())?;
        intake
            .pause(key, pause_for, lull_core::turn::PauseReason::Admin)
            .await
            .map_err(|e| e.to_string())
    };
    block_on(run)
}

/// Without the `aws` feature: say how to get it.
#[cfg(not(feature = "aws"))]
pub fn console(_: std::net::SocketAddr) -> Result<(), String> {
    Err(
        "this lull was built without AWS support; run `cargo run --release -p lull --features \
         aws -- console --aws`"
            .into(),
    )
}

/// `lull console --aws`: the console over the deployment's table and queues (the webhook
/// Lambda's variables), redriving through the flush Lambda's sink when `LULL_SINK` is set.
#[cfg(feature = "aws")]
pub fn console(listen: std::net::SocketAddr) -> Result<(), String> {
    use std::sync::Arc;

    use lull_aws::console::AwsConsole;
    use lull_aws::{Accounting, AwsClients, Role, Settings};

    let settings = Settings::from_env(Role::Webhook).map_err(|e| e.to_string())?;
    let run = async {
        let clients = AwsClients::from_env().await;
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
    };
    block_on(run)
}

/// Runs `run` on a fresh multi-thread runtime (each `--aws` command is one such run).
#[cfg(feature = "aws")]
fn block_on<T>(run: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(run)
}
