//! Benchmark 5, cold-start proxy: process start to the first `GET
//! /2018-06-01/runtime/invocation/next` against a minimal Lambda Runtime API stub on loopback,
//! for lull's three Lambdas and a bare lambda_http hello binary, interleaved in one run; peak RSS
//! (VmHWM) at the first poll; binary sizes (native, and arm64 `bootstrap` from `cargo lambda
//! build --release --arm64` when present).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::mpsc;

use crate::util::{self, Proc, Res};

#[derive(Args, Debug, Clone)]
pub struct ColdstartArgs {
    /// Starts per binary (interleaved round robin).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Start every binary with this `AWS_ENDPOINT_URL` (e.g. http://127.0.0.1:9, as an emulator
    /// setup would): lull's functions then load the system's root certificates, as they did
    /// before they trusted Amazon's compiled-in roots inside Lambda.
    #[arg(long)]
    pub aws_endpoint_url: Option<String>,
}

/// What the stub saw first from a starting runtime.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    InitError(String),
}

async fn runtime_stub() -> Res<(u16, mpsc::UnboundedReceiver<Seen>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (tx1, tx2) = (tx.clone(), tx);
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(move || {
                let tx = tx1.clone();
                async move {
                    let _ = tx.send(Seen::Next(Instant::now()));
                    // Hold the long poll; the benchmark kills the process meanwhile.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            axum::routing::post(move |body: String| {
                let tx = tx2.clone();
                async move {
                    let _ = tx.send(Seen::InitError(body));
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, rx))
}

/// `VmHWM` of a live process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Target {
    name: &'static str,
    path: PathBuf,
    env: Vec<(&'static str, &'static str)>,
    ms: Vec<f64>,
    rss_kb: Vec<f64>,
}

/// The environment Lambda gives every function (region and credentials included). No
/// `AWS_ENDPOINT_URL`: the functions start as deployed (inside Lambda, on AWS's endpoints, they
/// trust Amazon's compiled-in roots), and no AWS request is made before the first poll.
fn base_env(port: u16, name: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API".into(), format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name.into()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{name}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "bench".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "bench".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "bench".into()),
        ("AWS_SESSION_TOKEN".into(), "bench".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("_HANDLER".into(), "bootstrap".into()),
    ]
}

async fn start_once(
    t: &mut Target,
    port: u16,
    endpoint: Option<&str>,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> Res<()> {
    while rx.try_recv().is_ok() {}
    let mut cmd = Command::new(&t.path);
    cmd.env_clear()
        .envs(base_env(port, t.name))
        .envs(t.env.iter().copied())
        .envs(endpoint.map(|url| ("AWS_ENDPOINT_URL", url)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let child = Proc(cmd.spawn()?);
    let seen = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .map_err(|_| format!("{}: no poll within 10 s", t.name))?
        .ok_or("stub stopped")?;
    match seen {
        Seen::Next(at) => {
            t.ms.push(at.duration_since(started).as_secs_f64() * 1000.0);
            if let Some(kb) = peak_rss_kb(child.0.id()) {
                t.rss_kb.push(kb as f64);
            }
            Ok(())
        }
        Seen::InitError(body) => Err(format!("{}: init error: {body}", t.name).into()),
    }
}

fn size(p: &Path) -> String {
    std::fs::metadata(p)
        .map(|m| format!("{:.2}", m.len() as f64 / 1e6))
        .unwrap_or_else(|_| "missing".into())
}

pub async fn run(a: &ColdstartArgs) -> Res<()> {
    let (port, mut rx) = runtime_stub().await?;
    const TABLE: (&str, &str) = ("LULL_TABLE", "lull-bench");
    const QUEUE: (&str, &str) = (
        "LULL_TRIGGER_QUEUE_URL",
        "http://127.0.0.1:9/000000000000/lull-triggers",
    );
    const SINK: (&str, &str) = ("LULL_SINK", "http://127.0.0.1:9/batches");
    let mut targets = [
        Target {
            name: "hello",
            path: util::sibling_bin("lull-bench", "lambda-hello")?,
            env: vec![],
            ms: vec![],
            rss_kb: vec![],
        },
        Target {
            name: "webhook",
            path: util::sibling_bin("lull-webhook", "webhook")?,
            env: vec![TABLE, QUEUE, ("LULL_META_APP_SECRET", "bench-secret")],
            ms: vec![],
            rss_kb: vec![],
        },
        Target {
            name: "flush",
            path: util::sibling_bin("lull-flush", "flush")?,
            env: vec![TABLE, QUEUE, SINK],
            ms: vec![],
            rss_kb: vec![],
        },
        Target {
            name: "sweep",
            path: util::sibling_bin("lull-sweep", "sweep")?,
            env: vec![TABLE, QUEUE, SINK],
            ms: vec![],
            rss_kb: vec![],
        },
    ];
    // One warm-up start each (page cache), not counted.
    for t in targets.iter_mut() {
        start_once(t, port, a.aws_endpoint_url.as_deref(), &mut rx).await?;
        t.ms.clear();
        t.rss_kb.clear();
    }
    for _ in 0..a.runs {
        for t in targets.iter_mut() {
            start_once(t, port, a.aws_endpoint_url.as_deref(), &mut rx).await?;
        }
    }
    let lambda_dir = util::profile_dir()?
        .parent()
        .ok_or("no target directory")?
        .join("lambda");
    let mut fields = vec![format!(
        "bench=coldstart runs={} aws_endpoint_url={}",
        a.runs,
        a.aws_endpoint_url.as_deref().unwrap_or("unset")
    )];
    let mut hello_p50 = f64::NAN;
    for t in targets.iter_mut() {
        util::sort(&mut t.ms);
        util::sort(&mut t.rss_kb);
        let p50 = util::pct(&t.ms, 50.0);
        if t.name == "hello" {
            hello_p50 = p50;
        }
        let bin_name = t.path.file_name().map(PathBuf::from).unwrap_or_default();
        let arm = lambda_dir.join(&bin_name).join("bootstrap");
        fields.push(format!(
            "{n}_start_ms_p50={:.2} {n}_start_ms_p90={:.2} {n}_ratio={:.2} {n}_rss_mb={:.1} {n}_native_mb={} {n}_arm64_bootstrap_mb={}",
            p50,
            util::pct(&t.ms, 90.0),
            p50 / hello_p50,
            util::pct(&t.rss_kb, 50.0) / 1024.0,
            size(&t.path),
            size(&arm),
            n = t.name,
        ));
    }
    println!("{}", fields.join(" "));
    Ok(())
}
