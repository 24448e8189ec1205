//! `lull serve`: the local server on SQLite with durable timers: the webhook listener, the ops
//! listener (health, metrics, redrive, pause, the operators' console), logs and metrics.

use std::process::ExitCode;
use std::time::Duration;

use lull_core::metrics as m;
use lull_ingest::{IngestConfig, IngestState};
use lull_local::Local;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::config::{Config, LogFormat, ServeArgs};
use crate::{fail, local};

/// Logs to stderr, with `cfg`'s filter and format (also `lull redrive`'s when it hands off).
pub fn init_logs(cfg: &Config) {
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
pub async fn run(args: &ServeArgs) -> ExitCode {
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    init_logs(&cfg);
    match run_server(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run_server(mut cfg: Config) -> Result<(), String> {
    // Bound first: the reply guards' default base URL is the address actually listened on.
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if cfg.public_url.is_empty() {
        cfg.public_url = format!("http://{addr}");
    }
    let metrics = install_metrics();
    if let Some(h) = metrics.clone() {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                h.run_upkeep();
            }
        });
    }
    let directory = local::tenants(&cfg).await?;
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
    let local = Local::open(local::settings(&cfg), local::sink(&cfg, directory.clone())?)
        .await
        .map_err(|e| e.to_string())?
        .with_health(local::tenant_health(directory.clone()));
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
    )
    .with_guard(local.guard_key());
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
        public_url = %cfg.public_url,
        "lull listening: POST webhooks to /webhook/meta, /webhook/evolution, /webhook/twilio, /webhook/generic, /webhook/waha, /webhook/chatwoot; admin routes POST /admin/conversations/pause|resume (bearer admin_token); reply guards GET /guard/{{token}}"
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
