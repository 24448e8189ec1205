//! Bounds on webhook requests in flight: their number, and the bytes of their large bodies.
//!
//! Every gateway retries a 503, so shedding loses nothing, while an unbounded queue would turn a
//! burst (or a flood) into unbounded memory. A request over the count
//! (`--max-concurrent-requests`) is shed at once with `503 Service Unavailable` and
//! `Retry-After: 1`, never queued. Each request in flight holds its body (up to the body limit,
//! 4 MiB) until it is refused or appended: 64 requests at the limit would hold 256 MiB, the
//! whole memory budget, before a single signature is checked. So a request declaring a body over
//! [`SMALL_BODY`] also reserves its declared length (the body limit when it declares none) from
//! a budget of [`LARGE_BODY_BUDGET`] bytes before its body is read, and gives it back when it is
//! answered. One that finds the budget taken waits for it at most [`LARGE_BODY_WAIT`] (it holds
//! its place among the counted requests, and no body: its bytes wait in the socket), then is
//! shed with 503 + `Retry-After: 1`; waiting rather than answering at once matters because a
//! client still sending megabytes may not read an early answer before the connection closes.
//! Gateways' ordinary requests (a few KiB) never touch the budget, so a flood of large forged
//! bodies cannot delay them; the server's worst case for request bodies is
//! `LARGE_BODY_BUDGET + max_concurrent_requests * SMALL_BODY`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use lull_core::metrics as m;
use tokio::sync::Semaphore;

/// Bodies up to this size (declared) need no share of the large-body budget.
pub const SMALL_BODY: usize = 64 * 1024;

/// Bytes of large bodies in flight at once (96 MiB: 24 bodies at the 4 MiB limit).
pub const LARGE_BODY_BUDGET: usize = 96 * 1024 * 1024;

/// How long a large body waits for its share of the budget before it is shed.
pub const LARGE_BODY_WAIT: Duration = Duration::from_secs(5);

/// How large bodies share memory: the largest body the routes read (reserved for a request that
/// declares no length), the bytes they may hold at once, and how long one waits for its share.
#[derive(Clone, Copy, Debug)]
pub struct LargeBodies {
    pub body_limit: usize,
    pub budget: usize,
    pub wait: Duration,
}

/// `router` with at most `limit` requests in its handlers at once, and at most
/// `large.budget` bytes ([`LARGE_BODY_BUDGET`] in `lull serve`) of large bodies among them.
pub fn shed_over(limit: usize, large: LargeBodies, router: Router) -> Router {
    let LargeBodies {
        body_limit,
        budget: large_bodies,
        wait,
    } = large;
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    // Counted in KiB, so a reservation always fits a permit count.
    let budget = Arc::new(Semaphore::new(large_bodies / 1024));
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let permits = permits.clone();
        let budget = budget.clone();
        async move {
            let Ok(_permit) = permits.try_acquire_owned() else {
                return overloaded("overloaded", "too many requests in flight, retry later");
            };
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(body_limit, |n| usize::try_from(n).unwrap_or(usize::MAX))
                .min(body_limit);
            let _reserved = if declared > SMALL_BODY {
                let kib = u32::try_from(declared.div_ceil(1024)).unwrap_or(u32::MAX);
                match tokio::time::timeout(wait, budget.clone().acquire_many_owned(kib)).await {
                    Ok(Ok(r)) => Some(r),
                    _ => {
                        return overloaded(
                            "large_bodies",
                            "too many large request bodies in flight, retry later",
                        )
                    }
                }
            } else {
                None
            };
            next.run(req).await
        }
    }))
}

fn overloaded(reason: &'static str, body: &'static str) -> Response {
    metrics::counter!(m::REJECTED_REQUESTS, "reason" => reason).increment(1);
    tracing::warn!(reason, "webhook request shed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, "1"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tokio::sync::oneshot;
    use tower::ServiceExt;

    /// `shed_over` around a handler whose first request waits, once it has entered, until
    /// released: (app, entered, release).
    fn gated(
        limit: usize,
        large: LargeBodies,
    ) -> (Router, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (entered_tx, entered_rx) = oneshot::channel::<()>();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let gates = Arc::new(std::sync::Mutex::new(Some((entered_tx, release_rx))));
        let app = shed_over(
            limit,
            large,
            Router::new().route(
                "/w",
                post(move || {
                    let gate = gates.lock().unwrap().take();
                    async move {
                        if let Some((entered, release)) = gate {
                            let _ = entered.send(());
                            let _ = release.await;
                        }
                        "ok"
                    }
                }),
            ),
        );
        (app, entered_rx, release_tx)
    }

    #[tokio::test]
    async fn requests_over_the_limit_are_shed_with_retry_after() {
        let large = LargeBodies {
            body_limit: 4096,
            budget: LARGE_BODY_BUDGET,
            wait: LARGE_BODY_WAIT,
        };
        let (app, entered_rx, release_tx) = gated(1, large);
        let req = || Request::post("/w").body(Body::empty()).unwrap();
        let first = tokio::spawn(app.clone().oneshot(req()));
        entered_rx.await.unwrap();
        let shed = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The permit is back: the next request is served.
        assert_eq!(app.oneshot(req()).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn large_bodies_share_a_byte_budget_small_ones_never_wait_for_it() {
        const LIMIT: usize = 1024 * 1024;
        // Room for one large body at the limit; a short wait, so the shed case answers soon.
        let large = LargeBodies {
            body_limit: LIMIT,
            budget: LIMIT,
            wait: Duration::from_millis(50),
        };
        let (app, entered_rx, release_tx) = gated(8, large);
        let req = |declared: Option<usize>| {
            let r = Request::post("/w");
            let r = match declared {
                Some(n) => r.header(header::CONTENT_LENGTH, n.to_string()),
                None => r,
            };
            r.body(Body::empty()).unwrap()
        };
        // A large body holds the whole budget while it is handled...
        let first = tokio::spawn(app.clone().oneshot(req(Some(LIMIT))));
        entered_rx.await.unwrap();
        // ...so another large one, or one declaring no length (reserved at the limit), waits
        // for it and is shed when it does not come back in time,
        for declared in [Some(SMALL_BODY + 1), None] {
            let shed = app.clone().oneshot(req(declared)).await.unwrap();
            assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        }
        // ...while a gateway's ordinary request is served.
        let small = app.clone().oneshot(req(Some(2_000))).await.unwrap();
        assert_eq!(small.status(), StatusCode::OK);
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The bytes are back.
        let again = app.oneshot(req(Some(LIMIT))).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_large_body_waiting_for_the_budget_is_served_once_it_is_back() {
        const LIMIT: usize = 1024 * 1024;
        let large = LargeBodies {
            body_limit: LIMIT,
            budget: LIMIT,
            wait: Duration::from_secs(3600),
        };
        let (app, entered_rx, release_tx) = gated(8, large);
        let req = || {
            Request::post("/w")
                .header(header::CONTENT_LENGTH, LIMIT.to_string())
                .body(Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(app.clone().oneshot(req()));
        entered_rx.await.unwrap();
        let second = tokio::spawn(app.clone().oneshot(req()));
        // Let the second one reach the budget and wait on it (one thread: it runs now).
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the second large body waits");
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
    }
}
