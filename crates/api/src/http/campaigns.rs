//! `POST /v1/campaigns` (admin) and `GET /v1/campaigns/{id}`; `GET /v1/campaigns` (admin) is
//! mounted here and lives in [`super::admin`].

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, CampaignStatus, CampaignView, NewCampaign, Stock};
use rushline_queue::{CampaignState, Warmed};
use rushline_store::StoreError;
use uuid::Uuid;

use crate::http::extract::{Admin, ApiJson, ApiPath};
use crate::http::openapi;
use crate::http::{ApiError, admin};
use crate::state::AppState;

/// Campaign routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", post(create).get(admin::list))
        .route("/v1/campaigns/{id}", get(show))
}

#[utoipa::path(
    post,
    path = "/v1/campaigns",
    tag = "campaigns",
    summary = "Create a campaign",
    request_body = openapi::NewCampaign,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = openapi::CampaignView, headers(("Location" = String, description = "Where to read it back"))),
        (status = 400, description = "The body does not parse or validate", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id exists", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn create(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCampaign>,
) -> Result<Response, ApiError> {
    // Redis's clock, as accept's: a campaign that opens "now" is open for the next request.
    let now = state.now().await?;
    let spec = body.validate(now, generated_id)?;
    // 244 random bits: the secret behind the campaign's coupon codes.
    let code_key = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let stored = match state.store.create_campaign(&spec, &code_key).await {
        Ok(stored) => stored,
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict(format!(
                "campaign {} already exists",
                spec.id
            )));
        }
        Err(e) => return Err(ApiError::unavailable(e)),
    };
    // Warm Redis now so the first request is fast; if Redis is down, the first request warms it.
    if let Err(e) = state.warm(&spec.id).await {
        tracing::warn!(campaign = %spec.id, error = %e, "campaign created; warming Redis deferred");
    }
    tracing::info!(campaign = %spec.id, stock = spec.stock.get(), "campaign created");
    let view = CampaignView {
        status: CampaignStatus::at(now, spec.opens_at, spec.closes_at, spec.stock.get()),
        id: stored.spec.id.clone(),
        name: stored.spec.name.clone(),
        stock: stored.spec.stock.get(),
        remaining: stored.spec.stock.get(),
        issued: 0,
        opens_at: stored.spec.opens_at,
        closes_at: stored.spec.closes_at,
    };
    let location = format!("/v1/campaigns/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

fn generated_id() -> CampaignId {
    // "c-" + 20 hex digits: within the id alphabet by construction.
    let id = format!("c-{}", &Uuid::new_v4().simple().to_string()[..20]);
    CampaignId::parse(id).unwrap_or_else(|_| unreachable!("generated ids use the id alphabet"))
}

#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    tag = "campaigns",
    summary = "Read a campaign",
    params(
        ("id" = String, Path, description = "Campaign id"),
    ),
    responses(
        (status = 200, description = "The campaign", body = openapi::CampaignView),
        (status = 404, description = "No such campaign", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| not_found())?;
    // Both reads at once: one round trip's wait, not two.
    let (campaign, now) = tokio::join!(state.queue.campaign_state(&id), state.now());
    let campaign = match campaign.map_err(ApiError::unavailable)? {
        Some(campaign) => campaign,
        None => {
            if state.warm(&id).await? == Warmed::NotFound {
                return Err(not_found());
            }
            state
                .queue
                .campaign_state(&id)
                .await
                .map_err(ApiError::unavailable)?
                .ok_or_else(|| {
                    ApiError::unavailable(anyhow::anyhow!("campaign {id} not warm after warm-up"))
                })?
        }
    };
    Ok(Json(view(id, campaign, now?)?))
}

/// The view of a campaign as Redis holds it, its `status` at `now` (Redis's clock, so it agrees
/// with what accept decides at that instant).
pub(crate) fn view(
    id: CampaignId,
    campaign: CampaignState,
    now: DateTime<Utc>,
) -> Result<CampaignView, ApiError> {
    let name = rushline_domain::CampaignName::from_record(campaign.name)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("campaign {id} name in Redis: {e}")))?;
    Stock::new(campaign.stock)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("campaign {id} stock in Redis: {e}")))?;
    Ok(CampaignView {
        status: CampaignStatus::at(
            now,
            campaign.opens_at,
            campaign.closes_at,
            campaign.remaining,
        ),
        id,
        name,
        stock: campaign.stock,
        remaining: campaign.remaining,
        issued: campaign.issued,
        opens_at: campaign.opens_at,
        closes_at: campaign.closes_at,
    })
}

pub(crate) fn not_found() -> ApiError {
    ApiError::NotFound("no such campaign".into())
}
