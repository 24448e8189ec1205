//! Operations routes: `GET /healthz`, `GET /metrics` (Prometheus text) and `POST /redrive`.
//!
//! They have their own listener (`--ops-listen`, default `127.0.0.1:9090`), never the webhook
//! one: on a VPS the webhook port faces the internet (often through a proxy or a tunnel, which
//! makes every caller look like loopback), and metrics or a redrive are nobody else's business.
//! Who may reach them is decided by the address they are bound to: loopback by default, a
//! private interface for container probes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
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

/// The ops routes (serve them on their own listener).
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
