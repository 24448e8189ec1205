//! A quick loopback load: `cargo run --release -p lull-tests --example load -- ADDR [N] [CONC]`
//! posts N Meta-shaped messages (distinct conversations of 5 messages each) with CONC
//! concurrent clients to a running lull and prints appends per second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let conc: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let url = format!("http://{addr}/webhook/meta");
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let run = format!("{:x}", std::process::id());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (url, next, failed, run) = (url.clone(), next.clone(), failed.clone(), run.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body = lull_tests::meta_text(
                    "106540352242922",
                    &format!("55{:09}", i / 5),
                    &format!("load-{run}-{i}"),
                    "hello",
                );
                let ok = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} appends in {secs:.2}s: {:.0}/s ({} failed, {conc} concurrent)",
        n as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
}
