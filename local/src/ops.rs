//! Operations routes: `GET /healthz`, `GET /metrics` (Prometheus text) and `POST /redrive`.
//!
//! They share the webhook listener but answer loopback clients only: on a VPS the webhook port
//! faces the internet, and metrics (or a redrive) are nobody else's business. A reverse proxy on
//! the same machine would appear as loopback, so put them behind it only with care.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lull_core::Millis;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::store::SqliteStore;
use crate::timers::TimerQueue;

struct Ops {
    store: SqliteStore,
    timers: Arc<TimerQueue>,
    metrics: Option<PrometheusHandle>,
}

/// The ops routes, guarded to loopback peers (serve with `ConnectInfo<SocketAddr>`).
pub fn router(
    store: SqliteStore,
    timers: Arc<TimerQueue>,
    metrics: Option<PrometheusHandle>,
) -> Router {
    let state = Arc::new(Ops {
        store,
        timers,
        metrics,
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
        .route("/redrive", post(redrive))
        .with_state(state)
        .layer(middleware::from_fn(loopback_only))
}

async fn loopback_only(req: Request, next: Next) -> Response {
    let local = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    if local {
        next.run(req).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// Healthy when the store answers a query.
async fn healthz(State(ops): State<Arc<Ops>>) -> Response {
    match ops.store.dedupe_len().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

async fn render(State(ops): State<Arc<Ops>>) -> Response {
    match &ops.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// Re-delivers every pending batch now (and closes windows past due), lifting backoff holds and
/// parked batches.
async fn redrive(State(ops): State<Arc<Ops>>) -> Response {
    match ops.store.scheduled().await {
        Ok(convs) => {
            let now = Millis::now_wall();
            let pending: Vec<_> = convs
                .into_iter()
                .filter(|c| !c.pending.is_empty() || c.is_past_due(now))
                .collect();
            ops.timers.redrive(&pending, now);
            tracing::info!(conversations = pending.len(), "redrive requested");
            (StatusCode::OK, format!("{}\n", pending.len())).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}
