//! `lull check`: resolve the configuration exactly as `lull serve` would (or, with `--aws`, as
//! each Lambda would from its `LULL_*` environment), start nothing, and name every problem on a
//! line of its own. With `--send-test-batch`, hand one test batch to the configured sink through
//! the same sink code as a real hand-off (so it is signed the same way) and report the answer:
//! its status, latency, and whether the sink says the signature verified ([`test_batch`]).
//!
//! Resolution itself stops at its first bad setting (it is `serve`'s own code, called, not
//! copied), so a run names that one plus every independent problem found around it: fix and run
//! again until it says `ok`.

mod test_batch;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lull_sink::AnySink;

use crate::aws::aws_only;
use crate::config::ServeArgs;

/// `lull check`.
#[derive(Args, Clone, Debug)]
pub struct CheckArgs {
    /// Check the AWS deployment's settings instead: the `LULL_*` variables of the webhook, flush
    /// and sweep Lambdas, resolved as each of them does at start-up. Needs a build with
    /// `--features aws`.
    #[arg(long)]
    pub aws: bool,
    /// Also hand one test batch (conversation `generic/lull-check/lull-check`, one text message)
    /// to the configured sink, signed like every hand-off, and report the answer: HTTP status,
    /// latency, and "signature verified by the sink: yes / no / not reported" (from a JSON
    /// `"verified"` field in the answer; see docs/batch.md), or "not applicable" for stdout,
    /// JSONL and SQS sinks. A sink that says no fails the check.
    #[arg(long)]
    pub send_test_batch: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What a check found: problems fail it, notes only inform.
#[derive(Debug, Default)]
struct Report {
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Report {
    fn problem(&mut self, msg: impl Into<String>) {
        self.problems.push(msg.into());
    }
    fn note(&mut self, msg: impl Into<String>) {
        self.notes.push(msg.into());
    }

    /// Prints notes to stdout and problems to stderr, one line each.
    fn finish(self) -> ExitCode {
        for n in &self.notes {
            println!("{n}");
        }
        for p in &self.problems {
            eprintln!("problem: {p}");
        }
        if self.problems.is_empty() {
            println!("ok");
            ExitCode::SUCCESS
        } else {
            eprintln!("{} problem(s)", self.problems.len());
            ExitCode::FAILURE
        }
    }
}

/// `lull check`.
pub async fn run(args: &CheckArgs) -> ExitCode {
    let mut report = Report::default();
    if args.aws {
        let checked: Result<(), String> = aws_only!("check", {
            aws::check(args.send_test_batch, &mut report).await;
            Ok(())
        });
        if let Err(e) = checked {
            report.problem(e);
        }
    } else {
        local(args, &mut report).await;
    }
    report.finish()
}

/// `lull serve`'s configuration, then what would stop it at start-up.
async fn local(args: &CheckArgs, report: &mut Report) {
    let cfg = match args.serve.resolve() {
        Ok(cfg) => cfg,
        Err(e) => return report.problem(e.to_string()),
    };
    report.note(format!(
        "serve: listen {}, data dir {}, quiet {}, max wait {}, sink {}, {}",
        cfg.listen,
        cfg.data_dir.display(),
        humantime::format_duration(cfg.policy.quiet),
        humantime::format_duration(cfg.policy.max_wait),
        sink_kind(&cfg.sink),
        tenant_count(&cfg)
    ));
    if let Err(e) = data_dir_usable(&cfg.data_dir) {
        report.problem(e);
    }
    if let Err(e) = std::net::TcpListener::bind(cfg.listen) {
        report.problem(format!(
            "cannot listen on {}: {e} (another lull serve?)",
            cfg.listen
        ));
    }
    if cfg.allow_unsigned {
        report.note(
            "note: no gateway secret: unsigned webhooks are accepted (loopback only)".to_string(),
        );
    }
    if is_http(&cfg.sink) && cfg.sink_secrets.is_empty() {
        report.note("note: no sink secret: hand-offs are not signed".to_string());
    }
    if args.send_test_batch {
        // The test batch's conversation, generic/lull-check, is no tenant's, so it goes where
        // serve sends it: the default sink (tenants' own sinks are checked when applied).
        match crate::local::default_sink(&cfg) {
            Ok(sink) => {
                let signed = !cfg.sink_secrets.is_empty();
                send_test_batch(&sink, cfg.sink_timeout, signed, report).await
            }
            Err(e) => report.problem(format!("sink: {e}")),
        }
    }
}

/// How many tenants `serve` would start with, read without writing: the data directory's live
/// tenants when it holds any, else the `[[tenants]]` that would seed it, else the one tenant of
/// flags and environment.
fn tenant_count(cfg: &crate::config::Config) -> String {
    let stored = if lull_local::store::db_path(&cfg.data_dir).exists() {
        lull_local::tenants::SqliteTenants::open(&cfg.data_dir)
            .and_then(|t| t.load_now())
            .map(|records| records.iter().filter(|r| r.removed_at.is_none()).count())
    } else {
        Ok(0)
    };
    match stored {
        Ok(0) if !cfg.seed.is_empty() => format!("{} tenant(s) from lull.toml", cfg.seed.len()),
        Ok(0) => "1 tenant (flags and environment)".to_string(),
        Ok(n) => format!("{n} tenant(s) in the data directory"),
        Err(e) => format!("tenants unreadable: {e}"),
    }
}

/// The data directory exists as a writable directory, or can be created (serve creates it).
fn data_dir_usable(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .unwrap_or(Path::new("."));
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let meta =
        std::fs::metadata(existing).map_err(|e| format!("data dir {}: {e}", existing.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "data dir {}: {} is not a directory",
            dir.display(),
            existing.display()
        ));
    }
    if meta.permissions().readonly() {
        return Err(format!(
            "data dir {}: {} is read-only",
            dir.display(),
            existing.display()
        ));
    }
    Ok(())
}

fn is_http(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

/// The sink's kind and host, never its path or query (they may hold credentials).
fn sink_kind(spec: &str) -> String {
    if is_http(spec) {
        let host = spec
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
            .unwrap_or("?");
        format!("http ({host})")
    } else if spec.starts_with("jsonl:") {
        "jsonl".into()
    } else {
        spec.into()
    }
}

/// Hands the test batch to `sink` through the hand-off's own code, allowing it the configured
/// sink timeout as a hand-off would, and reports the answer ([`test_batch::report`]).
async fn send_test_batch(sink: &AnySink, within: Duration, signed: bool, report: &mut Report) {
    let batch = test_batch::batch();
    let receipt = sink.deliver_with_receipt(&batch, within).await;
    let id = batch.batch_id.to_string();
    test_batch::report(&id, test_batch::kind(sink), signed, &receipt, report);
}

#[cfg(feature = "aws")]
mod aws {
    //! The Lambdas' settings, each resolved by `lull_aws::Settings::from_env` as at start-up.

    use lull_aws::{Accounting, AwsClients, BatchSink, Role, Settings};
    use lull_core::ports::Sink;
    use lull_ingest::tenant::env as gateway;
    use lull_ingest::Tenant;
    use lull_sink::Receipt;

    use super::{test_batch, Report};

    pub async fn check(send_test_batch: bool, report: &mut Report) {
        let mut handoff = None;
        for (name, role) in [
            ("webhook", Role::Webhook),
            ("flush", Role::Flush),
            ("sweep", Role::Sweep),
        ] {
            match Settings::from_env(role) {
                Ok(s) => {
                    report.note(format!(
                        "{name}: table {}, quiet {}, max wait {}",
                        s.table,
                        humantime::format_duration(s.policy.quiet),
                        humantime::format_duration(s.policy.max_wait)
                    ));
                    if matches!(role, Role::Flush) {
                        handoff = Some(s);
                    }
                }
                Err(e) => report.problem(format!("{name}: {e}")),
            }
        }
        match Tenant::from_env(|k| std::env::var(k).ok()) {
            Ok(t) if !t.has_any_secret() => report.problem(format!(
                "webhook: no gateway secret is set, so it would refuse to start: set at least one \
                 of {}, {}, {}, {}, {}, {}",
                gateway::META_APP_SECRET,
                gateway::EVOLUTION_TOKEN,
                gateway::EVOLUTION_JWT_KEY,
                gateway::TWILIO_AUTH_TOKEN,
                gateway::GENERIC_SECRET,
                gateway::WAHA_HMAC_KEY
            )),
            Ok(_) => {}
            Err(e) => report.problem(format!("webhook: {e}")),
        }
        if !send_test_batch {
            return;
        }
        let Some(settings) = handoff else {
            return report.problem("sink: not tried, the flush settings have problems");
        };
        let clients = AwsClients::from_env().await;
        match settings.build(&clients, &Accounting::new()) {
            Ok((_, _, Some(BatchSink::Any(sink)))) => {
                let signed = !settings.sink_secrets.is_empty();
                super::send_test_batch(&sink, settings.sink_timeout, signed, report).await
            }
            Ok((_, _, Some(BatchSink::Sqs(sqs)))) => {
                let batch = test_batch::batch();
                let receipt =
                    Receipt::of_unsigned(sqs.deliver(&batch, settings.sink_timeout)).await;
                let id = batch.batch_id.to_string();
                test_batch::report(&id, "SQS FIFO", false, &receipt, report);
            }
            Ok((_, _, None)) => report.problem("sink: LULL_SINK is not set"),
            Err(e) => report.problem(format!("sink: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_kind_never_shows_paths_or_credentials() {
        assert_eq!(
            sink_kind("https://user:pw@bot.example:8443/hook?token=s3cret"),
            "http (bot.example:8443)"
        );
        assert_eq!(sink_kind("jsonl:/var/batches.jsonl"), "jsonl");
        assert_eq!(sink_kind("stdout"), "stdout");
    }

    #[test]
    fn a_data_dir_under_a_file_is_a_problem() {
        let tmp = std::env::temp_dir().join(format!("lull-check-{}", std::process::id()));
        std::fs::write(&tmp, b"not a dir").unwrap();
        let err = data_dir_usable(&tmp.join("data")).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
        assert!(data_dir_usable(&std::env::temp_dir().join("lull-check-new/data")).is_ok());
        std::fs::remove_file(&tmp).unwrap();
    }
}
