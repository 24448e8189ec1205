//! `lull serve`, `lull inspect` and `lull redrive`: the local server on SQLite with durable timers.

pub mod config;
pub mod conversations;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lull_core::metrics as m;
use lull_core::protocol::{Claim, Disposition, FlushEnd};
use lull_ingest::{CachedDirectory, IngestConfig, IngestState};
use lull_local::{Local, Settings, SqliteStore};
use lull_sink::{AnySink, Listening, RoutedSink};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use config::ServeArgs;
use config::{Config, LogFormat};

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

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("lull: {msg}");
    ExitCode::FAILURE
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries the stdout sink's batches.
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn install_metrics() -> Option<PrometheusHandle> {
    let lag_buckets = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(m::HANDOFF_LAG.into()), &lag_buckets)
        .ok()?
        .install_recorder()
        .ok()?;
    // Pre-register the counters, so /metrics lists every name from the start.
    for name in m::ALL {
        if m::GAUGES.contains(name) {
            metrics::gauge!(*name).set(0.0);
        } else if *name != m::HANDOFF_LAG {
            metrics::counter!(*name).increment(0);
        }
    }
    Some(handle)
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        data_dir: cfg.data_dir.clone(),
        durability: cfg.durability,
        buffer: cfg.buffer,
        sweep: cfg.sweep,
        max_concurrent_flushes: 256,
        max_concurrent_requests: cfg.max_concurrent_requests,
        ops_tokens: cfg.ops_tokens.clone(),
    }
}

/// The sink `serve` hands off to: the default sink, with each tenant's batches routed to its own
/// sink through the directory.
/// Each tenant's `on_close` (read receipt, typing indicator) goes out beside its hand-offs.
fn sink(cfg: &Config, tenants: Arc<CachedDirectory>) -> Result<Listening<RoutedSink>, String> {
    let routed = RoutedSink::new(default_sink(cfg)?).with_routes(tenants.clone(), cfg.sink_timeout);
    Listening::new(routed, tenants, cfg.listen_timeout)
        .map_err(|e| format!("cannot build the on_close HTTP client: {e}"))
}

/// The deployment's own sink (`--sink`), for conversations of tenants without one (and `lull
/// check --send-test-batch`).
pub(crate) fn default_sink(cfg: &Config) -> Result<AnySink, String> {
    AnySink::parse(&cfg.sink, cfg.sink_secrets.clone(), cfg.sink_timeout).map_err(|e| e.to_string())
}

/// The tenant directory over the data directory's tenant store: seeded from `lull.toml`'s
/// `[[tenants]]` when fresh, read once now (a store that makes no sense stops start-up), then
/// re-read every `tenant_refresh`.
async fn tenants(cfg: &Config) -> Result<Arc<CachedDirectory>, String> {
    let store = lull_local::tenants::source(&cfg.data_dir).map_err(|e| e.to_string())?;
    let now = lull_core::Millis::now_wall();
    let seeded = store
        .seed(cfg.seed.clone(), &cfg.policy, now)
        .map_err(|e| format!("seeding tenants from lull.toml: {e}"))?;
    let stored = store.load_now().map_err(|e| e.to_string())?;
    if !stored.is_empty() && cfg.fallback.as_ref().is_some_and(|f| f.has_any_secret()) {
        return Err(format!(
            "gateway secrets are set by flag, environment or top-level lull.toml keys, but \
                 {} holds tenants (`lull tenants list`): give each tenant its own secrets with \
                 `lull tenants apply`",
            cfg.data_dir.display()
        ));
    }
    if !seeded && !cfg.seed.is_empty() {
        tracing::warn!(
            "lull.toml lists [[tenants]] but the data directory already holds tenants: the \
             stored ones are in force (change them with `lull tenants apply lull.toml`)"
        );
    }
    let dir = Arc::new(CachedDirectory::new(
        store,
        cfg.tenant_refresh,
        cfg.policy,
        cfg.fallback.clone(),
    ));
    let live = dir.refresh().await.map_err(|e| e.to_string())?;
    let quarantined = dir.health().quarantined.len();
    tracing::info!(
        tenants = live,
        quarantined,
        refresh_ms = cfg.tenant_refresh.as_millis() as u64,
        "tenants loaded from the data directory"
    );
    Ok(dir)
}

/// `/healthz`'s tenant check: unhealthy once the tenant store has failed for longer than
/// `STALE_AFTER_REFRESHES` refresh times (the last tenants loaded stay in force meanwhile).
fn tenant_health(dir: Arc<CachedDirectory>) -> lull_local::ops::HealthCheck {
    Arc::new(move || {
        let h = dir.health();
        if !h.stale {
            return Ok(());
        }
        Err(format!(
            "tenants: the tenant store failed {} time(s) in a row; the tenants in force were \
             loaded {} ago (last error: {})",
            h.failures,
            h.age.map_or_else(
                || "never".to_string(),
                |a| humantime::format_duration(Duration::from_secs(a.as_secs())).to_string()
            ),
            h.last_error.as_deref().unwrap_or("none")
        ))
    })
}

/// Waits for SIGINT or SIGTERM.
async fn signalled() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// `lull serve`.
pub fn serve(args: &ServeArgs) -> ExitCode {
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    init_logs(&cfg);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    match rt.block_on(run_server(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run_server(cfg: Config) -> Result<(), String> {
    let metrics = install_metrics();
    if let Some(h) = metrics.clone() {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                h.run_upkeep();
            }
        });
    }
    let directory = tenants(&cfg).await?;
    // `lull tenants apply` resolves tenants' policies with these, not its own shell's.
    lull_local::SqliteTenants::open(&cfg.data_dir)
        .and_then(|t| {
            t.record_deployment(&lull_local::tenants::Deployment {
                defaults: cfg.policy,
                tenant_refresh_ms: cfg.tenant_refresh.as_millis() as u64,
            })
        })
        .map_err(|e| e.to_string())?;
    // Kept fresh in the background: lookups never wait for the store, and /healthz and the
    // snapshot age metric stay current on an idle server.
    directory.spawn_refresher();
    let local = Local::open(settings(&cfg), sink(&cfg, directory.clone())?)
        .await
        .map_err(|e| e.to_string())?
        .with_health(tenant_health(directory.clone()));
    if cfg.allow_unsigned {
        tracing::warn!(
            "UNSIGNED MODE (--allow-unsigned): webhooks for gateways without a secret are accepted \
             without any signature. Anyone who reaches {} (a tunnel such as ngrok or cloudflared, \
             or a proxy on this machine) can write into your buffer. For local trials only: set \
             LULL_META_APP_SECRET, LULL_EVOLUTION_TOKEN, LULL_TWILIO_AUTH_TOKEN, \
             LULL_GENERIC_SECRET or LULL_WAHA_HMAC_KEY and drop --allow-unsigned before exposing lull",
            cfg.listen
        );
    } else if cfg.no_secrets {
        tracing::warn!(
            "no gateway secret configured: every webhook will be refused (401). Set a gateway \
             secret, or add --allow-unsigned (LULL_ALLOW_UNSIGNED=1) to try lull on loopback"
        );
    }
    if cfg.trust_forwarded {
        tracing::info!("trusting X-Forwarded-Proto / X-Forwarded-Host for Twilio's signed URL");
    }
    let state = IngestState::new(
        local.intake.clone(),
        directory,
        IngestConfig {
            allow_unsigned: cfg.allow_unsigned,
            trust_forwarded: cfg.trust_forwarded,
            ..IngestConfig::default()
        },
    );
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let ops_listener = TcpListener::bind(cfg.ops_listen)
        .await
        .map_err(|e| format!("cannot listen on {} (--ops-listen): {e}", cfg.ops_listen))?;
    let ops_addr = ops_listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        ops_listen = %ops_addr,
        "ops routes: GET /healthz, GET /metrics, POST /redrive, POST /conversations/pause|resume; operators' console: GET /console"
    );
    tracing::info!(
        listen = %addr,
        sink = sink_label(&cfg.sink),
        quiet_ms = cfg.policy.quiet.as_millis() as u64,
        max_wait_ms = cfg.policy.max_wait.as_millis() as u64,
        "lull listening: POST webhooks to /webhook/meta, /webhook/evolution, /webhook/twilio, /webhook/generic, /webhook/waha; admin routes POST /admin/conversations/pause|resume (bearer admin_token)"
    );
    local
        .serve(
            listener,
            ops_listener,
            lull_ingest::router(state),
            metrics,
            Some(lull_local::tenants::source(&cfg.data_dir).map_err(|e| e.to_string())?),
            signalled(),
        )
        .await
        .map_err(|e| e.to_string())
}

/// The sink's kind, for logs (an HTTP URL may carry credentials).
fn sink_label(spec: &str) -> &str {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        "http"
    } else if spec.starts_with("jsonl:") {
        "jsonl"
    } else {
        spec
    }
}

/// `lull inspect`.
pub fn inspect(args: &InspectArgs) -> ExitCode {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("lull-data"));
    if !lull_local::store::db_path(&dir).exists() {
        return fail(format!("no lull store in {}", dir.display()));
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let result = rt.block_on(async {
        let store =
            SqliteStore::open(&dir, lull_local::Durability::Normal).map_err(|e| e.to_string())?;
        let secret = lull_local::server::log_secret(&dir).map_err(|e| e.to_string())?;
        let convs = store.scheduled().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((convs, secret))
    });
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

/// `lull redrive`: asks the running server to retry every pending batch now, or, when no server
/// holds the data directory, hands them off from here.
pub fn redrive(args: &RedriveArgs) -> ExitCode {
    if args.aws {
        return crate::aws::redrive();
    }
    let cfg = match args.serve.resolve() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let result = if lull_local::server::dir_in_use(&cfg.data_dir) {
        rt.block_on(redrive_remote(&cfg))
    } else {
        init_logs(&cfg);
        rt.block_on(redrive_here(&cfg))
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn redrive_remote(cfg: &Config) -> Result<String, String> {
    let body = ops_post(cfg, "redrive", None).await?;
    Ok(format!(
        "the running server is re-delivering {body} conversation(s)"
    ))
}

/// POSTs to the running server's ops route `path` (on `--ops-listen`, loopback when it listens
/// on every address), with an optional JSON body; the answer's text, or a message naming the URL.
pub(crate) async fn ops_post(
    cfg: &Config,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<String, String> {
    let mut addr = cfg.ops_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/{path}");
    // JSON, and the ops token when one is set: the ops listener's rules (`lull_local::ops_guard`).
    let body = body.unwrap_or_else(|| serde_json::json!({}));
    let mut req = reqwest::Client::new()
        .post(&url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = cfg.ops_tokens.iter().next() {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| {
        format!(
            "a server holds {} but {url} failed: {e}",
            cfg.data_dir.display()
        )
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {}", text.trim()));
    }
    Ok(text.trim().to_string())
}

async fn redrive_here(cfg: &Config) -> Result<String, String> {
    let directory = tenants(cfg).await?;
    let local = Local::open(settings(cfg), sink(cfg, directory)?)
        .await
        .map_err(|e| e.to_string())?;
    let now = lull_core::Millis::now_wall();
    let convs = local.store.scheduled().await.map_err(|e| e.to_string())?;
    let (mut batches, mut failed) = (0usize, 0usize);
    for c in convs
        .iter()
        .filter(|c| !c.pending.is_empty() || c.is_past_due(now))
    {
        match local.handoff.flush(&c.key, Claim::Redrive).await {
            Ok(r) => {
                batches += r.handed_off.len();
                if r.end.disposition() != Disposition::Done {
                    failed += 1;
                    let why = match &r.end {
                        FlushEnd::SinkFailed { error, .. } => error.to_string(),
                        FlushEnd::Parked { error } => format!(
                            "the sink refused the batch again: {}",
                            error.as_deref().unwrap_or("?")
                        ),
                        other => format!("{other:?}"),
                    };
                    tracing::warn!(error = %why, "redrive: hand-off failed; the batch stays pending");
                }
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(error = %e, "redrive: flush failed");
            }
        }
    }
    if failed > 0 {
        return Err(format!(
            "{batches} batch(es) handed off; {failed} conversation(s) still failing (pending, not lost)"
        ));
    }
    Ok(format!("{batches} batch(es) handed off"))
}
