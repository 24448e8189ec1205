//! Benchmark 8, memory under wrongly-signed bodies: for each webhook route, a fresh real
//! `lull serve` (two tenants, so no single-tenant shortcut applies) takes `--concurrency`
//! concurrent requests, each exactly at the route's body limit and signed with a wrong secret
//! (`lull_tests::flood`); the figure is the process's peak resident set (`VmHWM`) before and
//! after. The budget (docs/architecture.md, "Budgets") is 256 MB at 64 concurrent requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Args;
use lull_tests::flood;

use crate::util::{self, Proc, Res, ScratchDir};

#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    /// Concurrent wrongly-signed requests per route.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Routes to measure (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub routes: Vec<String>,
    /// Body size of every request, in bytes [default: each route's body limit in lull-ingest].
    #[arg(long)]
    pub body_bytes: Option<usize>,
    /// The `lull` binary [default: next to lull-bench, built if missing].
    #[arg(long)]
    pub lull: Option<PathBuf>,
}

/// One route's figures.
struct RouteResult {
    route: String,
    body_bytes: usize,
    base_kib: u64,
    peak_kib: u64,
    statuses: String,
}

/// Statuses as `401x64` or `401x40,503x24`.
fn histogram(sorted: &[u16]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|&&s| s == sorted[i]).count();
        out.push(format!("{}x{j}", sorted[i]));
        i += j;
    }
    out.join(",")
}

async fn measure(lull: &PathBuf, route: &str, a: &MemoryArgs) -> Res<RouteResult> {
    let scratch = ScratchDir::new("memory")?;
    let config = flood::write_config(&scratch.0);
    let addr: SocketAddr = format!("127.0.0.1:{}", util::free_port()?).parse()?;
    let log = std::fs::File::create(scratch.0.join("lull.log"))?;
    let server = Proc(
        Command::new(lull)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--ops-listen", "127.0.0.1:0", "--sink", "stdout"])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(scratch.0.join("data"))
            .arg("--max-concurrent-requests")
            .arg(a.concurrency.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    util::wait_listening(addr, Duration::from_secs(30)).await?;
    let pid = server.0.id();
    let base_kib = flood::peak_rss_kib(pid).ok_or("no VmHWM for lull")?;
    let body_bytes = a.body_bytes.unwrap_or_else(|| flood::route_limit(route));
    let request = flood::request(route, body_bytes);
    let statuses =
        flood::post_concurrently(&format!("http://{addr}"), &request, a.concurrency).await;
    let peak_kib = flood::peak_rss_kib(pid).ok_or("no VmHWM for lull")?;
    drop(server);
    Ok(RouteResult {
        route: route.to_string(),
        body_bytes,
        base_kib,
        peak_kib,
        statuses: histogram(&statuses),
    })
}

pub async fn run(a: &MemoryArgs) -> Res<()> {
    let lull = match &a.lull {
        Some(p) => p.clone(),
        None => util::sibling_bin("lull", "lull")?,
    };
    let routes: Vec<String> = if a.routes.is_empty() {
        flood::ROUTES.iter().map(|r| r.to_string()).collect()
    } else {
        a.routes.clone()
    };
    let mut line = format!("bench=memory concurrency={}", a.concurrency);
    let mut worst = 0u64;
    for route in &routes {
        if !flood::ROUTES.contains(&route.as_str()) {
            return Err(format!("--routes: unknown route {route:?}").into());
        }
        let r = measure(&lull, route, a).await?;
        worst = worst.max(r.peak_kib);
        line.push_str(&format!(
            " {n}_body_kib={} {n}_base_mb={:.1} {n}_peak_mb={:.1} {n}_statuses={}",
            r.body_bytes / 1024,
            r.base_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0,
            r.statuses,
            n = r.route,
        ));
    }
    line.push_str(&format!(" worst_peak_mb={:.1}", worst as f64 / 1024.0));
    println!("{line}");
    Ok(())
}
