//! `GET /v1/campaigns/{id}/stats` (admin): a campaign's pipeline — queued, decided by outcome,
//! persisted, persistence lag — for an operator watching a drop.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use rushline_domain::admin::{Counts, Decided, Lag, RefusalSource};
use rushline_domain::{CampaignId, CampaignStats, CampaignStatus};
use rushline_queue::PipelineStats;

use crate::http::ApiError;
use crate::http::extract::{Admin, ApiPath};
use crate::http::schemas;
use crate::state::AppState;
use crate::telemetry;

/// The stats route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/campaigns/{id}/stats", get(stats))
}

/// `GET /v1/campaigns/{id}/stats`: the pipeline — queued, decided, persisted, lag. Reading it also
/// carries into Redis any stock the record holds that Redis missed (a crash mid add-stock).
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/stats",
    tag = "campaigns",
    summary = "A campaign's pipeline (admin)",
    params(
        ("id" = String, Path, description = "Campaign id"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Queued, decided, persisted, lag", body = CampaignStats),
        (status = 401, description = "Missing or wrong bearer token", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn stats(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignStats>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| ApiError::no_such_campaign())?;
    let stored = state
        .store
        .campaign(&id)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(ApiError::no_such_campaign)?;
    let mut pipeline = state.warmed(&id, || warm_pipeline(&state, &id)).await?;
    let recorded_stock = stored.spec.stock.get();
    if pipeline.stock < recorded_stock {
        let repaired = state.queue.raise_stock(&id, recorded_stock).await;
        tracing::warn!(campaign = %id, redis = pipeline.stock, record = recorded_stock,
            outcome = ?repaired, "Redis stock behind the record; raised");
        pipeline = self::pipeline(&state, &id).await?;
    }
    let persisted = state
        .store
        .recorded_counts(&id)
        .await
        .map_err(ApiError::unavailable)?;
    metrics::gauge!(telemetry::QUEUE_DEPTH, "campaign" => id.to_string())
        .set(pipeline.queued as f64);
    metrics::gauge!(telemetry::PERSISTENCE_LAG, "campaign" => id.to_string()).set(
        pipeline
            .oldest_unpersisted
            .unwrap_or_default()
            .as_secs_f64(),
    );
    let (sold_out, duplicate, refusals_from) = match pipeline.refusals {
        Some(tally) => (tally.sold_out, tally.duplicate, RefusalSource::Redis),
        None => (
            persisted.sold_out,
            persisted.duplicate,
            RefusalSource::Postgres,
        ),
    };
    // Redis's clock, as accept's: the status shown is the one accept would act on.
    let now = state.now().await?;
    // Revealed only once the pre-queue is frozen: before, it would let anyone predict the order.
    let prequeue_seed = match stored.spec.waiting_room {
        Some(_) if now >= stored.spec.opens_at => state
            .store
            .prequeue_seed(&id)
            .await
            .map_err(ApiError::unavailable)?
            .map(|seed| rushline_queue::waiting_room::hex(&seed)),
        _ => None,
    };
    Ok(Json(CampaignStats {
        prequeue_seed,
        status: CampaignStatus::at(
            now,
            stored.spec.opens_at,
            stored.spec.closes_at,
            pipeline.remaining,
        ),
        campaign_id: id,
        stock: pipeline.stock,
        remaining: pipeline.remaining,
        queued: pipeline.queued,
        decided: Decided {
            issued: pipeline.issued,
            sold_out,
            duplicate,
            total: pipeline.issued + sold_out + duplicate,
            refusals_from,
        },
        persisted: Counts {
            issued: persisted.issued,
            sold_out: persisted.sold_out,
            duplicate: persisted.duplicate,
            total: persisted.total(),
        },
        persistence_lag: Lag {
            log_entries: pipeline.log_entries,
            oldest_unpersisted_ms: pipeline
                .oldest_unpersisted
                .map(|age: Duration| age.as_millis() as u64),
        },
        at: now,
    }))
}

/// The pipeline, `None` while Redis does not hold the campaign.
async fn warm_pipeline(
    state: &AppState,
    id: &CampaignId,
) -> Result<Option<PipelineStats>, ApiError> {
    let pipeline = pipeline(state, id).await?;
    Ok(pipeline.warm.then_some(pipeline))
}

async fn pipeline(state: &AppState, id: &CampaignId) -> Result<PipelineStats, ApiError> {
    state
        .queue
        .pipeline_stats(id)
        .await
        .map_err(ApiError::unavailable)
}
