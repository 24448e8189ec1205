//! The memory budget (docs/architecture.md, "Budgets") on the real `lull serve`: 64 concurrent
//! wrongly-signed requests at each webhook route's body limit keep its peak resident set under
//! 256 MB, and store nothing. Memory, unlike time, does not depend on how loaded the machine is,
//! so the budget is asserted here; `lull-bench memory` reports the figures.

use lull_tests::{flood, Flags, Server};

/// 256 MB, in KiB (`VmHWM` is reported in KiB).
const BUDGET_KIB: u64 = 256 * 1000 * 1000 / 1024;

/// Requests at once: `lull serve`'s default `--max-concurrent-requests`.
const CONCURRENCY: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_signed_bodies_at_every_routes_limit_stay_under_the_memory_budget() {
    let mut report = Vec::new();
    for route in flood::ROUTES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = flood::write_config(tmp.path());
        let flags = Flags::new()
            .set("--config", config.display().to_string())
            .set("--max-concurrent-requests", CONCURRENCY.to_string());
        let server = Server::start_with(&tmp.path().join("data"), &flags).await;
        let request = flood::request(route, flood::route_limit(route));
        let statuses =
            flood::post_concurrently(&format!("http://{}", server.addr), &request, CONCURRENCY)
                .await;
        let peak = flood::peak_rss_kib(server.child.id()).expect("VmHWM of lull");
        // Every request is refused: 401 (wrong signature), or 503 + Retry-After when the
        // large-body budget is taken (the gateway retries); never parsed into a 400 or stored.
        // 0: the server answered and closed before the client finished sending its 4 MiB, so the
        // client saw a reset instead of the answer (a gateway retries that too).
        assert!(
            statuses.iter().all(|s| *s == 401 || *s == 503 || *s == 0),
            "{route}: {statuses:?}\n{}",
            server.logs()
        );
        assert!(statuses.contains(&401), "{route}: {statuses:?}");
        assert!(server.inspect().is_empty(), "{route}: something was stored");
        report.push(format!("{route}: peak {} MiB", peak / 1024));
        assert!(
            peak < BUDGET_KIB,
            "{route}: peak RSS {peak} KiB over the budget of {BUDGET_KIB} KiB ({report:?})"
        );
    }
    eprintln!("{report:?}");
}
