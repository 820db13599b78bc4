//! Operator endpoints (admin token): list campaigns, close one now, add stock. Stats are in
//! [`super::stats`].
//!
//! Every change goes to PostgreSQL first, then Redis is brought to what PostgreSQL recorded with
//! one atomic script (`rushline_queue::admin`). So Redis never holds more stock, or a later close,
//! than the record; a crash between the two steps leaves the record ahead, which the next call
//! (close is idempotent, stock is raised *to* the recorded value), a stats read or a rebuild of
//! Redis from the record repairs.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rushline_domain::{
    AddStock, CampaignId, CampaignPage, CampaignStatus, CampaignView, Stock, timefmt,
};
use rushline_queue::{CampaignState, CloseOutcome, StockOutcome, Warmed};
use rushline_store::{StockAdded, StoredCampaign};
use serde::Deserialize;

use crate::http::ApiError;
use crate::http::campaigns::{not_found, view};
use crate::http::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use crate::http::openapi;
use crate::state::AppState;

/// Page size when `?limit=` is absent.
const DEFAULT_PAGE: u32 = 20;
/// Largest `?limit=`.
const MAX_PAGE: u32 = 100;

/// Admin routes (the list is mounted on `/v1/campaigns` by [`super::campaigns`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns/{id}/close", post(close))
        .route("/v1/campaigns/{id}/stock", post(add_stock))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /v1/campaigns?limit=&after=`.
#[utoipa::path(
    get,
    path = "/v1/campaigns",
    tag = "campaigns",
    summary = "List campaigns (admin)",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("after" = Option<CampaignId>, Query, description = "Start after this campaign id (the previous page's `next`)"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "One page, in id order", body = CampaignPage),
        (status = 400, description = "Bad limit or after", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
pub(crate) async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest("limit: must be an integer from 1 to 100".into())
            })?,
    };
    let after = query
        .after
        .map(CampaignId::parse)
        .transpose()
        .map_err(|_| ApiError::BadRequest("after: must be a campaign id".into()))?;
    let mut page = state
        .store
        .campaigns_page(after.as_ref(), i64::from(limit) + 1)
        .await
        .map_err(ApiError::unavailable)?;
    // Redis's clock, as accept's. Should Redis be unreachable (then nothing is accepted), the
    // host's, so an operator still sees the record during the outage.
    let now = match state.now().await {
        Ok(now) => now,
        Err(_) => state.host_now(),
    };
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    // Redis has the live counts; a campaign it does not hold (or a failed read) shows the record's.
    let live = futures::future::join_all(
        page.iter()
            .map(|stored| state.queue.campaign_state(&stored.spec.id)),
    )
    .await;
    let campaigns = page
        .into_iter()
        .zip(live)
        .map(|(stored, live)| match live {
            Ok(Some(live)) => view(stored.spec.id, live, now),
            _ => Ok(recorded_view(stored, now)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = more
        .then(|| campaigns.last().map(|c| c.id.clone()))
        .flatten();
    Ok(Json(CampaignPage { campaigns, next }))
}

/// A campaign as PostgreSQL has it (counts lag Redis by the persistence lag), its `status` at
/// `now` by Redis's clock.
fn recorded_view(stored: StoredCampaign, now: DateTime<Utc>) -> CampaignView {
    let stock = stored.spec.stock.get();
    let remaining = stock.saturating_sub(stored.issued);
    CampaignView {
        status: CampaignStatus::at(now, stored.spec.opens_at, stored.spec.closes_at, remaining),
        id: stored.spec.id,
        name: stored.spec.name,
        stock,
        remaining,
        issued: stored.issued,
        opens_at: stored.spec.opens_at,
        closes_at: stored.spec.closes_at,
    }
}

/// `POST /v1/campaigns/{id}/close`: new requests are refused (409) from now on; requests already
/// queued are still decided. Idempotent: closing again keeps the first close.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/close",
    tag = "campaigns",
    summary = "Close a campaign now (admin)",
    params(
        ("id" = String, Path, description = "Campaign id"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Closed (idempotent)", body = openapi::CampaignView),
        (status = 401, description = "Missing or wrong bearer token", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn close(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| not_found())?;
    // Closed from Redis's now, the clock accept.lua compares with: every accept after this
    // answer sees a time at or past `closes_at` and refuses, whatever this host's clock says.
    let now = state.now().await?;
    let (opens_at, closes_at) = state
        .store
        .close_campaign(&id, now)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(not_found)?;
    for _ in 0..2 {
        match state
            .queue
            .close_campaign(&id, opens_at, closes_at)
            .await
            .map_err(ApiError::unavailable)?
        {
            CloseOutcome::Closed { .. } => {
                tracing::info!(campaign = %id, closes_at = %timefmt::rfc3339(&closes_at), "campaign closed");
                return live_view(&state, id).await.map(Json);
            }
            // The rebuild reads the record, which already holds the close.
            CloseOutcome::NotWarm => warm_or_404(&state, &id).await?,
        }
    }
    Err(not_warm(&id))
}

/// `POST /v1/campaigns/{id}/stock`: `{"add": N}` more coupons for a campaign that is scheduled or
/// open. 409 once it is sold out or closed: stock appearing after requests were refused
/// `sold_out` would let later requests overtake them (guarantee 5).
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/stock",
    tag = "campaigns",
    summary = "Add stock to a scheduled or open campaign (admin)",
    request_body = AddStock,
    params(
        ("id" = String, Path, description = "Campaign id"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Stock added", body = openapi::CampaignView),
        (status = 400, description = "The body does not parse or validate", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Sold out or closed", body = openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn add_stock(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddStock>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| not_found())?;
    if !(1..=Stock::MAX).contains(&body.add) {
        return Err(ApiError::BadRequest(
            "add: must be an integer from 1 to 100000000".into(),
        ));
    }
    // Refuse early what the script would refuse, so the record is rarely touched in vain.
    let current = live_view(&state, id.clone()).await?;
    refuse_unless_growable(current.status)?;
    let target = match state
        .store
        .add_stock(&id, body.add, state.now().await?)
        .await
        .map_err(ApiError::unavailable)?
    {
        StockAdded::Added(stock) => stock,
        StockAdded::NotFound => return Err(not_found()),
        StockAdded::Closed => return Err(not_growable(CampaignStatus::Closed)),
        StockAdded::OverCap(stock) => {
            return Err(ApiError::BadRequest(format!(
                "add: stock {stock} + {} would exceed 100000000",
                body.add
            )));
        }
    };
    // If Redis fails from here on, the record keeps the addition (never more than Redis may
    // issue): the next add-stock, stats read or rebuild carries it into Redis.
    for _ in 0..2 {
        let refused = match state
            .queue
            .raise_stock(&id, target)
            .await
            .map_err(ApiError::unavailable)?
        {
            StockOutcome::Raised { stock, remaining } => {
                tracing::info!(campaign = %id, add = body.add, stock, remaining, "stock added");
                return live_view(&state, id).await.map(Json);
            }
            StockOutcome::NotWarm => {
                warm_or_404(&state, &id).await?;
                continue;
            }
            StockOutcome::Closed => CampaignStatus::Closed,
            StockOutcome::SoldOut => CampaignStatus::SoldOut,
        };
        // Sold out or closed meanwhile: Redis will never take this stock, so the record gives
        // it back (both states are final for stock, so nothing can have used it).
        if let Err(e) = state.store.withdraw_stock(&id, body.add).await {
            tracing::error!(campaign = %id, add = body.add, error = %e,
                "stock refused by Redis but still recorded in PostgreSQL");
        }
        return Err(not_growable(refused));
    }
    Err(not_warm(&id))
}

fn refuse_unless_growable(status: CampaignStatus) -> Result<(), ApiError> {
    match status {
        CampaignStatus::Open | CampaignStatus::Scheduled => Ok(()),
        CampaignStatus::Closed | CampaignStatus::SoldOut => Err(not_growable(status)),
    }
}

/// The 409 for adding stock to a campaign in `status`.
fn not_growable(status: CampaignStatus) -> ApiError {
    ApiError::Conflict(match status {
        CampaignStatus::SoldOut => "campaign is sold out; adding stock now would issue coupons to \
             requests made after earlier ones were refused (first come, first served)"
            .into(),
        _ => "campaign is closed; stock can only be added to a scheduled or open campaign".into(),
    })
}

/// The campaign as Redis holds it now, warming it from the record if needed.
async fn live_view(state: &AppState, id: CampaignId) -> Result<CampaignView, ApiError> {
    let (live, now) = tokio::join!(campaign_state(state, &id), state.now());
    let live = match live? {
        Some(live) => live,
        None => {
            warm_or_404(state, &id).await?;
            campaign_state(state, &id)
                .await?
                .ok_or_else(|| not_warm(&id))?
        }
    };
    view(id, live, now?)
}

async fn campaign_state(
    state: &AppState,
    id: &CampaignId,
) -> Result<Option<CampaignState>, ApiError> {
    state
        .queue
        .campaign_state(id)
        .await
        .map_err(ApiError::unavailable)
}

pub(crate) async fn warm_or_404(state: &AppState, id: &CampaignId) -> Result<(), ApiError> {
    match state.warm(id).await? {
        Warmed::Ready => Ok(()),
        Warmed::NotFound => Err(not_found()),
    }
}

fn not_warm(id: &CampaignId) -> ApiError {
    ApiError::unavailable(anyhow::anyhow!("campaign {id} not warm after warm-up"))
}
