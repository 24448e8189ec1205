//! `lull conversations pause KEY [--for 30m]` and `lull conversations resume KEY`: an operator
//! takes a conversation over (its hand-offs wait; its messages keep being collected) and gives
//! it back (what was collected is handed off as usual, at once when already due).
//!
//! With a server holding the data directory, the command goes through its ops listener
//! (`POST /conversations/pause|resume`); with none, it writes the store directly.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use lull_core::policy::MAX_PAUSE;
use lull_core::protocol::PauseOutcome;
use lull_core::turn::PauseReason;
use lull_core::ConversationKey;
use lull_local::Local;

use super::config::{Config, ServeArgs};
use super::{fail, runtime, settings, sink, tenants};

/// `lull conversations`: operator actions on one conversation.
#[derive(Args, Clone, Debug)]
pub struct ConversationsArgs {
    #[command(subcommand)]
    pub action: Action,
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

pub fn run(args: &ConversationsArgs) -> ExitCode {
    let (key, pause_for) = match &args.action {
        Action::Pause { key, pause_for } => (key, Some(*pause_for)),
        Action::Resume { key } => (key, None),
    };
    let parsed = match ConversationKey::from_storage_key(key) {
        Ok(k) => k,
        Err(_) => {
            return fail(format!(
                "{key:?} is not a conversation key (`lull inspect --show-keys` prints them)"
            ))
        }
    };
    let cfg = match args.serve.resolve() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let result = if lull_local::server::dir_in_use(&cfg.data_dir) {
        rt.block_on(remote(&cfg, key, pause_for))
    } else {
        rt.block_on(here(&cfg, &parsed, pause_for))
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
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
    super::ops_post(cfg, path, Some(body)).await
}

async fn here(
    cfg: &Config,
    key: &ConversationKey,
    pause_for: Option<Duration>,
) -> Result<String, String> {
    let directory = tenants(cfg).await?;
    let local = Local::open(settings(cfg), sink(cfg, directory)?)
        .await
        .map_err(|e| e.to_string())?;
    match local
        .intake
        .pause(key, pause_for, PauseReason::Admin)
        .await
        .map_err(|e| e.to_string())?
    {
        PauseOutcome::NoConversation => Err("no such conversation".into()),
        PauseOutcome::Set(Some(until)) => Ok(format!(
            "paused until {} (the server hands off when it ends or on resume)",
            until.rfc3339()
        )),
        PauseOutcome::Set(None) => Ok("resumed".into()),
        PauseOutcome::Unchanged => Ok("unchanged".into()),
    }
}
