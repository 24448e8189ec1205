//! Benchmark 2, hand-off timeliness: many conversations of 1-3 messages sent at a steady rate to
//! the real `lull serve --quiet 1s`, batches captured by an HTTP sink on loopback; lag from each
//! batch's due time to its arrival, and early hand-offs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::util::{self, Res, ScratchDir};

#[derive(Args, Debug, Clone)]
pub struct HandoffArgs {
    /// Conversations (each becomes exactly one batch: its messages are < quiet apart).
    #[arg(long, default_value_t = 10_500)]
    pub conversations: u64,
    /// Conversations started per second (spread evenly; keeps the server unsaturated).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Quiet period given to `lull serve --quiet`, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub quiet_ms: u64,
    /// lull's durability.
    #[arg(long, default_value = "normal")]
    pub durability: String,
    /// Seed of the message counts and gaps.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The `lull` binary [default: next to lull-bench, built if missing].
    #[arg(long)]
    pub lull: Option<PathBuf>,
}

/// A tiny deterministic generator (xorshift64*), to keep dependencies few.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, lo: u64, hi_incl: u64) -> u64 {
        lo + self.next() % (hi_incl - lo + 1)
    }
}

type Captured = Arc<Mutex<Vec<(f64, axum::body::Bytes)>>>;

/// An HTTP sink on loopback that stamps each POST's arrival time (system clock, ms) and keeps
/// its body; answers 200.
async fn capture_sink() -> Res<(SocketAddr, Captured)> {
    let captured: Captured = Arc::new(Mutex::new(Vec::with_capacity(16_384)));
    let c = captured.clone();
    let app = axum::Router::new().route(
        "/batches",
        axum::routing::post(move |body: axum::body::Bytes| {
            let c = c.clone();
            async move {
                let at = util::now_ms();
                if let Ok(mut v) = c.lock() {
                    v.push((at, body));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, captured))
}

pub async fn run(a: &HandoffArgs) -> Res<()> {
    let lull = match &a.lull {
        Some(p) => p.clone(),
        None => util::sibling_bin("lull", "lull")?,
    };
    let (sink_addr, captured) = capture_sink().await?;
    let scratch = ScratchDir::new("handoff")?;
    let addr: SocketAddr = format!("127.0.0.1:{}", util::free_port()?).parse()?;
    let server = util::spawn_lull(
        &lull,
        addr,
        &scratch.0.join("data"),
        &[
            "--quiet".into(),
            format!("{}ms", a.quiet_ms),
            "--durability".into(),
            a.durability.clone(),
            "--sink".into(),
            format!("http://{sink_addr}/batches"),
        ],
    )?;
    util::wait_listening(addr, Duration::from_secs(20)).await?;

    // Plan: conversation c starts at c / rate seconds, sends 1-3 messages 100-600 ms apart
    // (always under the quiet period, so one batch per conversation).
    let mut rng = Rng(a.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let gap_hi = (a.quiet_ms * 6 / 10).max(101);
    let plans: Vec<Vec<u64>> = (0..a.conversations)
        .map(|_| {
            let n = rng.range(1, 3);
            (0..n)
                .map(|i| if i == 0 { 0 } else { rng.range(100, gap_hi) })
                .collect()
        })
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("http://{addr}/webhook/meta");
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tag = format!("{:x}", std::process::id());
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = tokio::task::JoinSet::new();
    for (c, gaps) in plans.into_iter().enumerate() {
        let at = start + Duration::from_secs_f64(c as f64 / a.rate);
        let (client, url, accepted, failed, tag) = (
            client.clone(),
            url.clone(),
            accepted.clone(),
            failed.clone(),
            tag.clone(),
        );
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            for (i, gap) in gaps.into_iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let body = util::meta_body(
                    "106540352242922",
                    &format!("56{c:011}"),
                    &format!("wamid.handoff-{tag}-{c}-{i}"),
                    "oi",
                );
                let ok = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success(),
                    Err(_) => false,
                };
                if ok {
                    accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r?;
    }
    let want = accepted.load(Ordering::Relaxed);
    // Drain: every accepted message captured, or quiet + 30 s after the last send. Cheap check
    // first (batches <= messages); the exact count is done below.
    let drain = Duration::from_millis(a.quiet_ms) + Duration::from_secs(30);
    lull_testkit::holds_within(drain, async || {
        captured
            .lock()
            .map_or(true, |v| v.len() as u64 >= a.conversations)
    })
    .await;
    // A little longer, so a late duplicate delivery would be seen (a duplicate is what must not
    // happen: there is no condition to wait for, only a window to watch).
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);

    let captured = captured
        .lock()
        .map_err(|_| "capture lock poisoned")?
        .clone();
    let quiet = a.quiet_ms as f64;
    let max_wait = 30_000.0;
    let mut seen = HashSet::new();
    let mut lags = Vec::with_capacity(captured.len());
    let (mut early_close, mut early_arrival, mut dup, mut messages) = (0u64, 0u64, 0u64, 0u64);
    let mut reasons = std::collections::BTreeMap::<String, u64>::new();
    for (arrival, body) in &captured {
        let v: Value = serde_json::from_slice(body)?;
        let id = v["batch_id"].as_str().unwrap_or_default().to_string();
        if !seen.insert(id) {
            dup += 1;
            continue;
        }
        let received: Vec<f64> = v["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m["received_at"].as_str().and_then(util::rfc3339_ms))
                    .collect()
            })
            .unwrap_or_default();
        messages += received.len() as u64;
        let first = received.iter().copied().fold(f64::INFINITY, f64::min);
        let last = received.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let reason = v["reason"].as_str().unwrap_or("?").to_string();
        let due = match reason.as_str() {
            "quiet" => last + quiet,
            "max_wait" => first + max_wait,
            _ => last,
        };
        *reasons.entry(reason).or_default() += 1;
        let closed = v["closed_at"]
            .as_str()
            .and_then(util::rfc3339_ms)
            .unwrap_or(f64::NAN);
        if closed < due {
            early_close += 1;
        }
        if *arrival < due {
            early_arrival += 1;
        }
        lags.push(arrival - due);
    }
    util::sort(&mut lags);
    let reasons: Vec<String> = reasons.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    println!(
        "bench=handoff quiet_ms={} durability={} conversations={} rate={} messages_accepted={} messages_failed={} messages_handed_off={} batches={} duplicate_deliveries={} reasons={} lag_p50_ms={:.1} lag_p99_ms={:.1} lag_max_ms={:.1} lag_min_ms={:.1} early_closed_at={} early_arrivals={}",
        a.quiet_ms,
        a.durability,
        a.conversations,
        a.rate,
        want,
        failed.load(Ordering::Relaxed),
        messages,
        lags.len(),
        dup,
        reasons.join(","),
        util::pct(&lags, 50.0),
        util::pct(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN),
        lags.first().copied().unwrap_or(f64::NAN),
        early_close,
        early_arrival,
    );
    Ok(())
}
