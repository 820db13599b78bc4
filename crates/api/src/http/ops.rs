//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::http::ApiError;
use crate::state::AppState;
use crate::telemetry;

/// Operations routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
}

/// The process is alive.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Redis and PostgreSQL both answer (each call is bounded by the backend timeout).
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (redis, postgres) = tokio::join!(state.queue.ping(), state.store.ping());
    match (redis, postgres) {
        (Ok(()), Ok(())) => Ok(Json(
            json!({"status": "ready", "redis": "ok", "postgres": "ok"}),
        )),
        (redis, postgres) => Err(ApiError::unavailable(anyhow::anyhow!(
            "redis: {}, postgres: {}",
            redis.map_or_else(|e| e.to_string(), |()| "ok".into()),
            postgres.map_or_else(|e| e.to_string(), |()| "ok".into()),
        ))),
    }
}

/// Prometheus text format.
async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("rushline_waiters").set(state.waiters.len() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::metrics().render(),
    )
}
