//! A bound on webhook requests in flight: one over the limit is shed at once with
//! `503 Service Unavailable` and `Retry-After: 1`, never queued.
//!
//! Every gateway retries a 503, so shedding loses nothing, while an unbounded queue would turn a
//! burst (or a flood) into unbounded memory: each request in flight may hold up to the body
//! limit plus its parsed form. The limit (`--max-concurrent-requests`) times that is the
//! server's worst case for request memory.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use lull_core::metrics as m;
use tokio::sync::Semaphore;

/// `router` with at most `limit` requests in its handlers at once.
pub fn shed_over(limit: usize, router: Router) -> Router {
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let permits = permits.clone();
        async move {
            match permits.try_acquire_owned() {
                Ok(_permit) => next.run(req).await,
                Err(_) => overloaded(),
            }
        }
    }))
}

fn overloaded() -> Response {
    metrics::counter!(m::REJECTED_REQUESTS, "reason" => "overloaded").increment(1);
    tracing::warn!("webhook request shed: too many requests in flight");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, "1"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "too many requests in flight, retry later",
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

    #[tokio::test]
    async fn requests_over_the_limit_are_shed_with_retry_after() {
        let (entered_tx, entered_rx) = oneshot::channel::<()>();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let gates = Arc::new(std::sync::Mutex::new(Some((entered_tx, release_rx))));
        let app = shed_over(
            1,
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
}
