//! Benchmark 1, local ingest: the real `lull serve` against a bare axum handler answering 200,
//! the same load generator, the same machine, the same run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::util::{self, Proc, Res, ScratchDir};

#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// lull's durability: normal (the default of `lull serve`) or full (fsync per commit).
    #[arg(long, default_value = "normal")]
    pub durability: String,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured seconds per target (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Warm-up seconds per target (requests sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Active conversations the messages are spread over (round robin).
    #[arg(long, default_value_t = 20_000)]
    pub conversations: u64,
    /// Messages each conversation receives (one per round of the active set, ~2 s apart at
    /// 10,000 req/s) before it falls quiet and a fresh conversation takes its place: the
    /// burst shape of WhatsApp users. 0 = the same conversations forever (windows then close
    /// only at the max wait, 30 s, holding ~15 messages each).
    #[arg(long, default_value_t = 3)]
    pub burst: u64,
    /// The `lull` binary [default: next to lull-bench, built if missing].
    #[arg(long)]
    pub lull: Option<PathBuf>,
}

/// One target's result.
pub struct LoadResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ok: u64,
    pub errors: u64,
}

/// Posts a new Meta-shaped message per request (unique wamid, conversations as `--burst` says)
/// with `--connections` keep-alive clients for warm-up + measured seconds; counts what
/// completed in the measured window.
pub async fn load(url: &str, tag: &str, a: &IngestArgs) -> Res<LoadResult> {
    let (connections, conversations, burst) = (a.connections, a.conversations, a.burst);
    let warmup = Duration::from_secs_f64(a.warmup);
    let measure = Duration::from_secs_f64(a.seconds);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop = measure_from + measure;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (url, next, tag) = (url.to_string(), next.clone(), tag.to_string());
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build();
            let mut lat = Vec::with_capacity(65_536);
            let (mut ok, mut errors) = (0u64, 0u64);
            let Ok(client) = client else {
                return (lat, ok, 1u64);
            };
            loop {
                let sent = Instant::now();
                if sent >= stop {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let conversation = match burst {
                    0 => i % conversations,
                    b => i / (conversations * b) * conversations + i % conversations,
                };
                let body = util::meta_body(
                    "106540352242922",
                    &format!("55{conversation:011}"),
                    &format!("wamid.bench-{tag}-{i}"),
                    "quero 2 pizzas, uma vegana",
                );
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let good = match r {
                    Ok(resp) => {
                        let s = resp.status().is_success();
                        let _ = resp.bytes().await;
                        s
                    }
                    Err(_) => false,
                };
                let done = Instant::now();
                if sent >= measure_from && done <= stop {
                    if good {
                        ok += 1;
                        lat.push(done.duration_since(sent).as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, ok, errors)
        });
    }
    let mut all = Vec::new();
    let (mut ok, mut errors) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (l, o, e) = r?;
        all.extend(l);
        ok += o;
        errors += e;
    }
    util::sort(&mut all);
    Ok(LoadResult {
        rps: ok as f64 / measure.as_secs_f64(),
        p50_ms: util::pct(&all, 50.0),
        p99_ms: util::pct(&all, 99.0),
        ok,
        errors,
    })
}

/// `lull-bench bare-server --listen ADDR`: the baseline, an axum handler that reads the body
/// and answers 200, in its own process with the same runtime shape as `lull serve`.
pub fn bare_server(listen: SocketAddr) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = axum::Router::new().route(
            "/webhook/meta",
            axum::routing::post(|_body: axum::body::Bytes| async { axum::http::StatusCode::OK }),
        );
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

pub async fn run(a: &IngestArgs) -> Res<()> {
    if a.durability != "normal" && a.durability != "full" {
        return Err(format!("--durability {}: expected normal or full", a.durability).into());
    }
    let lull = match &a.lull {
        Some(p) => p.clone(),
        None => util::sibling_bin("lull", "lull")?,
    };
    let me = std::env::current_exe()?;
    let tag = format!("{:x}", std::process::id());

    // Baseline first.
    let bare_addr: SocketAddr = format!("127.0.0.1:{}", util::free_port()?).parse()?;
    let bare = Proc(
        Command::new(&me)
            .arg("bare-server")
            .arg("--listen")
            .arg(bare_addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?,
    );
    util::wait_listening(bare_addr, Duration::from_secs(10)).await?;
    let bare_res = load(
        &format!("http://{bare_addr}/webhook/meta"),
        &format!("{tag}-bare"),
        a,
    )
    .await?;
    drop(bare);

    // The real lull serve, default quiet period, batches to a JSONL file.
    let scratch = ScratchDir::new("ingest")?;
    let data = scratch.0.join("data");
    let sink = scratch.0.join("batches.jsonl");
    let lull_addr: SocketAddr = format!("127.0.0.1:{}", util::free_port()?).parse()?;
    let server = util::spawn_lull(
        &lull,
        lull_addr,
        &data,
        &[
            "--durability".into(),
            a.durability.clone(),
            "--sink".into(),
            format!("jsonl:{}", sink.display()),
        ],
    )?;
    util::wait_listening(lull_addr, Duration::from_secs(20)).await?;
    let lull_res = load(
        &format!("http://{lull_addr}/webhook/meta"),
        &format!("{tag}-lull-{}", a.durability),
        a,
    )
    .await?;
    drop(server);

    println!(
        "bench=ingest durability={} connections={} conversations={} burst={} seconds={} lull_rps={:.0} bare_rps={:.0} ratio={:.3} p50_ms={:.2} p99_ms={:.2} bare_p50_ms={:.2} bare_p99_ms={:.2} lull_ok={} lull_errors={} bare_errors={}",
        a.durability,
        a.connections,
        a.conversations,
        a.burst,
        a.seconds,
        lull_res.rps,
        bare_res.rps,
        lull_res.rps / bare_res.rps,
        lull_res.p50_ms,
        lull_res.p99_ms,
        bare_res.p50_ms,
        bare_res.p99_ms,
        lull_res.ok,
        lull_res.errors,
        bare_res.errors,
    );
    Ok(())
}
