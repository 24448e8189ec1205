//! `lull inspect`: what a data directory's store holds (open windows, pending batches, parked
//! ones and why), as a table or one JSON object per conversation. Conversation keys hold phone
//! numbers: they are shown as keyed hashes unless `--show-keys` asks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lull_local::SqliteStore;

use crate::fail;

/// `lull inspect`: what the store holds.
#[derive(Args, Clone, Debug)]
pub struct InspectArgs {
    /// Directory of the SQLite store [default: ./lull-data].
    #[arg(long, env = "LULL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print conversation keys (they hold phone numbers) instead of their keyed hashes.
    #[arg(long)]
    pub show_keys: bool,
    /// One JSON object per conversation instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `lull inspect`.
pub async fn run(args: &InspectArgs) -> ExitCode {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::defaults::DATA_DIR));
    if !lull_local::store::db_path(&dir).exists() {
        return fail(format!("no lull store in {}", dir.display()));
    }
    let result = async {
        let store =
            SqliteStore::open(&dir, lull_local::Durability::Normal).map_err(|e| e.to_string())?;
        let secret = lull_local::server::log_secret(&dir).map_err(|e| e.to_string())?;
        let convs = store.scheduled().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((convs, secret))
    }
    .await;
    let (convs, secret) = match result {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let now = lull_core::Millis::now_wall();
    let label = |k: &lull_core::ConversationKey| {
        if args.show_keys {
            k.storage_key()
        } else {
            k.log_hash(&secret)
        }
    };
    if args.json {
        for c in &convs {
            let v = serde_json::json!({
                "conversation": label(&c.key),
                "generation": c.gen,
                "due_at": c.due_at(),
                "window": c.window.as_ref().map(|w| serde_json::json!({
                    "batch_id": w.batch_id, "messages": w.messages.len(),
                    "opened_at": w.opened_at, "last_at": w.last_at,
                    "due_at": w.due(&c.turn).at, "waiting_for": w.due(&c.turn).reason.as_str(),
                })),
                "paused_until": c.turn.pause.map(|p| p.until),
                "pending": c.pending.iter().map(|b| serde_json::json!({
                    "generation": b.gen, "batch_id": b.batch_id, "reason": b.reason.as_str(),
                    "messages": b.messages.len(), "closed_at": b.closed_at,
                    "leased": b.lease_token().is_some() && b.is_held(now),
                    "parked": b.is_parked(),
                    "failures": b.failures,
                    "last_error": b.last_error,
                    "attempts": b.attempts,
                })).collect::<Vec<_>>(),
            });
            println!("{v}");
        }
        return ExitCode::SUCCESS;
    }
    let open = convs.iter().filter(|c| c.window.is_some()).count();
    let pending: usize = convs.iter().map(|c| c.pending.len()).sum();
    println!(
        "{} conversation(s) with work: {open} open window(s), {pending} pending batch(es)",
        convs.len()
    );
    for c in &convs {
        let key = label(&c.key);
        if let Some(w) = &c.window {
            let due = w.due(&c.turn);
            let when = if due.at <= now {
                "overdue".to_string()
            } else {
                format!("due in {}ms ({})", due.at.0 - now.0, due.reason.as_str())
            };
            println!(
                "open     {key}  gen {}  {} message(s)  {when}  batch {}",
                c.gen,
                w.messages.len(),
                w.batch_id
            );
        }
        for b in &c.pending {
            println!(
                "pending  {key}  gen {}  {} message(s)  {}  closed {}  batch {}{}",
                b.gen,
                b.messages.len(),
                b.reason.as_str(),
                b.closed_at,
                b.batch_id,
                if b.is_parked() {
                    format!(
                        "  (PARKED: the sink refused it: {}; `lull redrive` retries)",
                        b.last_error.as_deref().unwrap_or("?")
                    )
                } else if b.lease_token().is_some() && b.is_held(now) {
                    "  (hand-off in flight)".to_string()
                } else if b.is_held(now) {
                    format!(
                        "  (failed {} time(s): {}; retried after a backoff)",
                        b.failures,
                        b.last_error.as_deref().unwrap_or("?")
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    ExitCode::SUCCESS
}
