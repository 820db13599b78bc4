//! `GET /healthz`, `GET /readyz`, `GET /metrics` (the metrics are listed in [`crate::telemetry`]).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use rushline_queue::QueueError;
use serde_json::json;

use crate::http::ApiError;
use crate::http::schemas;
use crate::state::AppState;
use crate::telemetry::{self, Backend};

/// Operations routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
}

/// The process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "The process is alive",
    responses(
        (status = 200, description = "Alive", body = Object),
    ),
)]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Redis and PostgreSQL both answer (each call is bounded by the backend timeout).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Redis and PostgreSQL reachable",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "A backing service is unreachable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (redis, postgres) = tokio::join!(state.queue.ping(), state.store.ping());
    match (redis, postgres) {
        (Ok(()), Ok(())) => Ok(Json(
            json!({"status": "ready", "redis": "ok", "postgres": "ok"}),
        )),
        (redis, postgres) => Err({
            if redis.is_err() {
                telemetry::backend_error(Backend::Redis);
            }
            if postgres.is_err() {
                telemetry::backend_error(Backend::Postgres);
            }
            ApiError::unavailable(anyhow::anyhow!(
                "redis: {}, postgres: {}",
                redis.map_or_else(|e| e.to_string(), |()| "ok".into()),
                postgres.map_or_else(|e| e.to_string(), |()| "ok".into()),
            ))
        }),
    }
}

/// Prometheus text format. Gauges read from Redis are refreshed first, so each scrape sees the
/// queues and the clock skew as they are (a failed refresh is counted and leaves the previous
/// values).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    ),
)]
async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!(telemetry::WAITERS).set(state.waiters.len() as f64);
    record_pool_usage(&state);
    telemetry::waiting_rooms(&state.waiting_room.counters().snapshot());
    let (depths, clock) = tokio::join!(refresh_queue_depths(&state), state.read_clock());
    if let Err(e) = depths {
        telemetry::backend_error(Backend::Redis);
        tracing::warn!(error = %e, "refreshing queue depths for /metrics");
    }
    if let Err(e) = clock {
        telemetry::backend_error(Backend::Redis);
        tracing::warn!(error = %e, "reading Redis's clock for /metrics");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::metrics().render(),
    )
}

/// Connections by state, read without I/O: PostgreSQL's pool, and Redis's one multiplexed
/// connection (in use while any call is in flight on it, none before the first call connects it).
fn record_pool_usage(state: &AppState) {
    let (redis_in_use, redis_idle) = state.queue.pool_usage();
    let postgres = state.store.pool();
    let postgres_idle = postgres.num_idle();
    let postgres_in_use = (postgres.size() as usize).saturating_sub(postgres_idle);
    for (backend, in_use, idle) in [
        ("redis", redis_in_use, redis_idle),
        ("postgres", postgres_in_use, postgres_idle),
    ] {
        metrics::gauge!(telemetry::POOL_CONNECTIONS, "backend" => backend, "state" => "in_use")
            .set(in_use as f64);
        metrics::gauge!(telemetry::POOL_CONNECTIONS, "backend" => backend, "state" => "idle")
            .set(idle as f64);
    }
}

/// Most campaigns whose queue depth one scrape refreshes: bounds the scrape's cost (one pipelined
/// `LLEN` each) however many campaigns Redis holds.
const MAX_GAUGED_CAMPAIGNS: usize = 1_000;

async fn refresh_queue_depths(state: &AppState) -> Result<(), QueueError> {
    let mut campaigns = state.queue.campaigns().await?;
    campaigns.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    campaigns.truncate(MAX_GAUGED_CAMPAIGNS);
    for (campaign, depth) in state.queue.queue_depths(&campaigns).await? {
        metrics::gauge!(telemetry::QUEUE_DEPTH, "campaign" => campaign.to_string())
            .set(depth as f64);
    }
    Ok(())
}
