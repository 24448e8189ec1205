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
use lull_core::ports::{Clock, Sink};
use lull_core::Buffer;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::store::SqliteStore;
use crate::timers::LocalTrigger;

struct Ops<K, C> {
    buffer: Arc<Buffer<SqliteStore, LocalTrigger, K, C>>,
    metrics: Option<PrometheusHandle>,
}

/// The ops routes, guarded to loopback peers (serve with `ConnectInfo<SocketAddr>`).
pub fn router<K, C>(
    buffer: Arc<Buffer<SqliteStore, LocalTrigger, K, C>>,
    metrics: Option<PrometheusHandle>,
) -> Router
where
    K: Sink + 'static,
    C: Clock + 'static,
{
    let state = Arc::new(Ops { buffer, metrics });
    Router::new()
        .route("/healthz", get(healthz::<K, C>))
        .route("/metrics", get(render::<K, C>))
        .route("/redrive", post(redrive::<K, C>))
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
async fn healthz<K: Sink, C: Clock>(State(ops): State<Arc<Ops<K, C>>>) -> Response {
    match ops.buffer.store.dedupe_len().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

async fn render<K: Sink, C: Clock>(State(ops): State<Arc<Ops<K, C>>>) -> Response {
    match &ops.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// Re-delivers every pending batch now (and closes windows past due), resetting backoff.
async fn redrive<K: Sink, C: Clock>(State(ops): State<Arc<Ops<K, C>>>) -> Response {
    match ops.buffer.store.scheduled().await {
        Ok(convs) => {
            let pending: Vec<_> = convs
                .into_iter()
                .filter(|c| !c.pending.is_empty() || c.is_past_due(ops.buffer.clock.now()))
                .collect();
            ops.buffer
                .trigger
                .queue()
                .redrive(&pending, ops.buffer.clock.now());
            tracing::info!(conversations = pending.len(), "redrive requested");
            (StatusCode::OK, format!("{}\n", pending.len())).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}
