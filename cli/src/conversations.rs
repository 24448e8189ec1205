//! `lull conversations pause KEY [--for 30m]` and `lull conversations resume KEY`: an operator
//! takes a conversation over (its hand-offs wait; its messages keep being collected) and gives
//! it back (what was collected is handed off as usual, at once when already due).
//!
//! With a server holding the data directory, the command goes through its ops listener
//! (`POST /conversations/pause|resume`); with none, it writes the store directly. With `--aws`
//! it writes the AWS deployment's table through the same core (`Intake::pause`), re-arming the
//! trigger chain on SQS when a resume makes the conversation due sooner.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use lull_core::policy::MAX_PAUSE;
use lull_core::protocol::PauseOutcome;
use lull_core::turn::PauseReason;
use lull_core::ConversationKey;

use crate::aws::aws_only;
use crate::config::{Config, ServeArgs};
use crate::fail;

/// `lull conversations`: operator actions on one conversation.
#[derive(Args, Clone, Debug)]
pub struct ConversationsArgs {
    #[command(subcommand)]
    pub action: Action,
    /// The AWS deployment's conversations (DynamoDB table, SQS trigger queue), found from the
    /// webhook Lambda's variables (`LULL_TABLE`, `LULL_TRIGGER_QUEUE_URL`) and the usual AWS
    /// credentials. Needs a build with `--features aws`.
    #[arg(long, global = true)]
    pub aws: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Clone, Debug)]
pub enum Action {
    /// Pause hand-offs of a conversation (a human takes over); messages keep being collected.
    Pause {
        /// The conversation's key, as `lull inspect --show-keys` prints it
        /// (`evolution|instance|5511999990000@s.whatsapp.net`).
        key: String,
        /// How long the pause lasts (at most 7 days).
        #[arg(long = "for", value_name = "DURATION", default_value = "30m", value_parser = pause_duration)]
        pause_for: Duration,
    },
    /// End a pause: what was collected meanwhile is handed off as usual.
    Resume {
        /// The conversation's key, as `lull inspect --show-keys` prints it.
        key: String,
    },
}

fn pause_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration: {e}"))?;
    if d.is_zero() || d > MAX_PAUSE {
        return Err(format!(
            "{s:?}: a pause lasts more than 0 and at most 7 days"
        ));
    }
    Ok(d)
}

/// `lull conversations`.
#[cfg_attr(not(feature = "aws"), allow(unused_variables))]
pub async fn run(args: &ConversationsArgs) -> ExitCode {
    let (key, pause_for) = match &args.action {
        Action::Pause { key, pause_for } => (key, Some(*pause_for)),
        Action::Resume { key } => (key, None),
    };
    // Checked as the admin route checks it: every part present, within the store's limits.
    let result = match lull_ingest::routes::admin::conversation_key(key) {
        Err(e) => Err(format!("{key:?}: {e}")),
        Ok(parsed) if args.aws => {
            aws_only!("conversations", aws(&parsed, pause_for).await).and_then(said)
        }
        Ok(parsed) => local(args, &parsed, pause_for).await,
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Through the running server's ops listener, or the data directory's store when none runs.
async fn local(
    args: &ConversationsArgs,
    key: &ConversationKey,
    pause_for: Option<Duration>,
) -> Result<String, String> {
    let cfg = args.serve.resolve().map_err(|e| e.to_string())?;
    if lull_local::server::dir_in_use(&cfg.data_dir) {
        remote(&cfg, &key.storage_key(), pause_for).await
    } else {
        here(&cfg, key, pause_for).await
    }
}

async fn remote(cfg: &Config, key: &str, pause_for: Option<Duration>) -> Result<String, String> {
    let (path, body) = match pause_for {
        Some(d) => (
            "conversations/pause",
            serde_json::json!({"key": key, "for": humantime::format_duration(d).to_string()}),
        ),
        None => ("conversations/resume", serde_json::json!({ "key": key })),
    };
    crate::ops_client::post(cfg, path, Some(body)).await
}

async fn here(
    cfg: &Config,
    key: &ConversationKey,
    pause_for: Option<Duration>,
) -> Result<String, String> {
    let local = crate::local::open(cfg).await?;
    let outcome = local
        .intake
        .pause(key, pause_for, PauseReason::Admin)
        .await
        .map_err(|e| e.to_string())?;
    said(outcome)
}

/// `--aws`: the core's `Intake::pause` over the deployment's DynamoDB table and SQS trigger
/// queue (the webhook Lambda's variables: `LULL_TABLE`, `LULL_TRIGGER_QUEUE_URL`), as an admin
/// pause (`pause_for`: `None` resumes).
#[cfg(feature = "aws")]
async fn aws(key: &ConversationKey, pause_for: Option<Duration>) -> Result<PauseOutcome, String> {
    let (settings, clients) = crate::aws::connect(lull_aws::Role::Webhook).await?;
    let intake = settings
        .intake(&clients, &lull_aws::Accounting::new())
        .map_err(|e| e.to_string())?;
    intake
        .pause(key, pause_for, PauseReason::Admin)
        .await
        .map_err(|e| e.to_string())
}

/// What a pause or resume did, as the command prints it.
fn said(outcome: PauseOutcome) -> Result<String, String> {
    match outcome {
        PauseOutcome::NoConversation => Err("no such conversation".into()),
        PauseOutcome::Set(Some(until)) => Ok(format!(
            "paused until {} (hand-offs resume when it ends or on resume)",
            until.rfc3339()
        )),
        PauseOutcome::Set(None) => Ok("resumed".into()),
        PauseOutcome::Unchanged => Ok("unchanged".into()),
    }
}
