//! Operations routes: `GET /healthz`, `GET /metrics` (Prometheus text), `POST /redrive` and the
//! operator pause: `POST /conversations/pause` (`{"key": KEY, "for": "30m"}`) and
//! `POST /conversations/resume` (`{"key": KEY}`), KEY being a conversation's storage key as
//! `lull inspect --show-keys` prints it (the webhook listener serves the same two, for a
//! tenant's own conversations with its `admin_token`, at `/admin/conversations/...`).
//!
//! They have their own listener (`--ops-listen`, default `127.0.0.1:9090`), never the webhook
//! one: on a VPS the webhook port faces the internet (often through a proxy or a tunnel, which
//! makes every caller look like loopback), and metrics or a redrive are nobody else's business.
//! Reaching the listener is not enough for the routes that change something (`/redrive`, the
//! pause and resume): they refuse cross-site requests, want JSON, and want the ops token when
//! one is set (and on a non-loopback address): [`crate::ops_guard`]. A 503 says only that the
//! store is unavailable; the cause goes to the log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lull_core::Millis;
use lull_ingest::routes::admin;
use lull_ingest::IngestError;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::capability::LocalIntake;
use crate::ops_guard::OpsGuard;
use crate::store::SqliteStore;
use crate::timers::TimerQueue;

struct Ops {
    guard: OpsGuard,
    store: SqliteStore,
    timers: Arc<TimerQueue>,
    intake: Arc<LocalIntake>,
    metrics: Option<PrometheusHandle>,
}

/// The ops routes (serve them on their own listener).
pub fn router(
    guard: OpsGuard,
    store: SqliteStore,
    timers: Arc<TimerQueue>,
    intake: Arc<LocalIntake>,
    metrics: Option<PrometheusHandle>,
) -> Router {
    let state = Arc::new(Ops {
        guard,
        store,
        timers,
        intake,
        metrics,
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
        .route("/redrive", post(redrive))
        .route("/conversations/pause", post(pause))
        .route("/conversations/resume", post(resume))
        .with_state(state)
}

/// `POST /conversations/pause` and `/conversations/resume`: the body and the answers of the
/// webhook listener's authenticated admin routes (`lull_ingest::routes::admin`), without their
/// tenant's bearer token: the operator is whoever passes [`OpsGuard`].
async fn pause(State(ops): State<Arc<Ops>>, headers: HeaderMap, body: Bytes) -> Response {
    match ops.guard.check(&headers) {
        Ok(()) => set_pause(&ops, &body, false).await,
        Err(refused) => refused.into_response(),
    }
}

async fn resume(State(ops): State<Arc<Ops>>, headers: HeaderMap, body: Bytes) -> Response {
    match ops.guard.check(&headers) {
        Ok(()) => set_pause(&ops, &body, true).await,
        Err(refused) => refused.into_response(),
    }
}

/// The store failed: the cause to the log, a fixed reason to the caller.
fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "ops route: store unavailable");
    (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
}

async fn set_pause(ops: &Ops, body: &[u8], resume: bool) -> Response {
    if body.len() > admin::ADMIN_BODY_LIMIT {
        return IngestError::BodyTooLarge {
            limit: admin::ADMIN_BODY_LIMIT,
        }
        .into_response();
    }
    match admin::PauseRequest::parse(body, resume) {
        Ok((key, pause_for)) => admin::apply(ops.intake.as_ref(), key, pause_for).await,
        Err(e) => e.into_response(),
    }
}

/// A check `/healthz` runs besides the store's (the server adds the tenant snapshot's
/// freshness): an error is the reason it is unhealthy.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Healthy when the store answers a query and every added check passes.
async fn healthz(
    State(ops): State<Arc<Ops>>,
    check: Option<axum::Extension<Option<HealthCheck>>>,
) -> Response {
    if let Err(e) = ops.store.dedupe_len().await {
        return unavailable(e);
    }
    if let Some(axum::Extension(Some(check))) = check {
        if let Err(e) = check() {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
        }
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn render(State(ops): State<Arc<Ops>>) -> Response {
    match &ops.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// Re-delivers every pending batch now (and closes windows past due), lifting backoff holds and
/// parked batches.
async fn redrive(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    if let Err(refused) = ops.guard.check(&headers) {
        return refused.into_response();
    }
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
        Err(e) => unavailable(e),
    }
}
