//! `POST /v1/campaigns` (admin) and `GET /v1/campaigns/{id}`. The admin list on the same path
//! is [`super::admin`]'s; both shape campaigns through [`super::campaign_view`].

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rushline_domain::{CampaignId, CampaignView, NewCampaign};
use rushline_store::StoreError;
use uuid::Uuid;

use crate::http::extract::{Admin, ApiJson, ApiPath};
use crate::http::schemas;
use crate::http::{ApiError, campaign_view};
use crate::state::AppState;

/// Campaign routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", post(create))
        .route("/v1/campaigns/{id}", get(show))
}

#[utoipa::path(
    post,
    path = "/v1/campaigns",
    tag = "campaigns",
    summary = "Create a campaign",
    request_body = schemas::NewCampaign,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = schemas::CampaignView, headers(("Location" = String, description = "Where to read it back"))),
        (status = 400, description = "The body does not parse or validate", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id exists", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
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
    let view = campaign_view::recorded(stored, now);
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
        (status = 200, description = "The campaign", body = schemas::CampaignView),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| ApiError::no_such_campaign())?;
    campaign_view::read_live(&state, id).await.map(Json)
}
