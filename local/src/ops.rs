//! Operations routes: `GET /healthz`, `GET /metrics` (Prometheus text), `POST /redrive` and the
//! operator pause: `POST /conversations/pause` (`{"key": KEY, "for": "30m"}`) and
//! `POST /conversations/resume` (`{"key": KEY}`), KEY being a conversation's storage key as
//! `lull inspect --show-keys` prints it.
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
use axum::{Json, Router};
use lull_core::policy::MAX_PAUSE;
use lull_core::protocol::PauseOutcome;
use lull_core::turn::PauseReason;
use lull_core::{ConversationKey, Millis};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

use crate::server::LocalIntake;
use crate::store::SqliteStore;
use crate::timers::TimerQueue;

struct Ops {
    store: SqliteStore,
    timers: Arc<TimerQueue>,
    intake: Arc<LocalIntake>,
    metrics: Option<PrometheusHandle>,
}

/// The ops routes (serve them on their own listener).
pub fn router(
    store: SqliteStore,
    timers: Arc<TimerQueue>,
    intake: Arc<LocalIntake>,
    metrics: Option<PrometheusHandle>,
) -> Router {
    let state = Arc::new(Ops {
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

/// The body of a pause or resume.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    /// The conversation's storage key (`lull inspect --show-keys`).
    key: String,
    /// How long (`30m`, `2h`); default 30 min. Ignored by resume.
    #[serde(default, rename = "for")]
    pause_for: Option<String>,
}

async fn pause(State(ops): State<Arc<Ops>>, body: Json<PauseBody>) -> Response {
    let pause_for = match body.pause_for.as_deref().map(humantime::parse_duration) {
        None => lull_core::policy::DEFAULT_PAUSE,
        Some(Ok(d)) if !d.is_zero() && d <= MAX_PAUSE => d,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "\"for\" must be a duration between 1ms and 7 days, such as 30m\n",
            )
                .into_response()
        }
    };
    set_pause(&ops, &body.key, Some(pause_for)).await
}

async fn resume(State(ops): State<Arc<Ops>>, body: Json<PauseBody>) -> Response {
    set_pause(&ops, &body.key, None).await
}

async fn set_pause(ops: &Ops, key: &str, pause_for: Option<std::time::Duration>) -> Response {
    let Ok(key) = ConversationKey::from_storage_key(key) else {
        return (
            StatusCode::BAD_REQUEST,
            "\"key\" is not a conversation key (as `lull inspect --show-keys` prints them)\n",
        )
            .into_response();
    };
    match ops.intake.pause(&key, pause_for, PauseReason::Admin).await {
        Ok(PauseOutcome::NoConversation) => {
            (StatusCode::NOT_FOUND, "no such conversation\n").into_response()
        }
        Ok(PauseOutcome::Set(Some(until))) => (
            StatusCode::OK,
            format!("paused until {}\n", until.rfc3339()),
        )
            .into_response(),
        Ok(PauseOutcome::Set(None)) => (StatusCode::OK, "resumed\n").into_response(),
        Ok(PauseOutcome::Unchanged) => (StatusCode::OK, "unchanged\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
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
