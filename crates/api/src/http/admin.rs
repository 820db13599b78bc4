//! Operator endpoints (admin token): list campaigns, close one now, add stock, change a waiting
//! room's admission. Stats are in [`super::stats`].
//!
//! Every change goes to PostgreSQL first, then Redis is brought to what PostgreSQL recorded with
//! one atomic script (`rushline_queue::admin`). So Redis never holds more stock, or a later close,
//! than the record; a crash between the two steps leaves the record ahead, which the next call
//! (close is idempotent, stock is raised *to* the recorded value), a stats read or a rebuild of
//! Redis from the record repairs.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use rushline_domain::{
    AddStock, AdmissionChange, CampaignId, CampaignPage, CampaignStatus, CampaignView, Stock,
    timefmt,
};
use rushline_queue::{CloseOutcome, StockOutcome};
use rushline_store::{AdmissionSet, StockAdded};
use serde::Deserialize;

use crate::http::ApiError;
use crate::http::campaign_view;
use crate::http::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use crate::http::schemas;
use crate::state::AppState;

/// Page size when `?limit=` is absent.
const DEFAULT_PAGE: u32 = 20;
/// Largest `?limit=`.
const MAX_PAGE: u32 = 100;

/// Admin routes. `GET /v1/campaigns` shares its path with [`super::campaigns`]'s `POST`; the
/// router merges the two methods.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", get(list))
        .route("/v1/campaigns/{id}/close", post(close))
        .route("/v1/campaigns/{id}/stock", post(add_stock))
        .route("/v1/campaigns/{id}/admission", post(admission))
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
        (status = 400, description = "Bad limit or after", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
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
            Ok(Some(live)) => campaign_view::live(stored.spec.id, live, now),
            _ => Ok(campaign_view::recorded(stored, now)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = more
        .then(|| campaigns.last().map(|c| c.id.clone()))
        .flatten();
    Ok(Json(CampaignPage { campaigns, next }))
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
        (status = 200, description = "Closed (idempotent)", body = schemas::CampaignView),
        (status = 401, description = "Missing or wrong bearer token", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn close(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| ApiError::no_such_campaign())?;
    // Closed from Redis's now, the clock accept.lua compares with: every accept after this
    // answer sees a time at or past `closes_at` and refuses, whatever this host's clock says.
    let now = state.now().await?;
    let (opens_at, closes_at) = state
        .store
        .close_campaign(&id, now)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(ApiError::no_such_campaign)?;
    // A cold campaign needs no close in Redis: the warm-up reads the record, which already holds
    // it, and the second attempt finds it closed.
    let (queue, campaign) = (&state.queue, &id);
    state
        .warmed(campaign, || async move {
            match queue
                .close_campaign(campaign, opens_at, closes_at)
                .await
                .map_err(ApiError::unavailable)?
            {
                CloseOutcome::Closed { .. } => Ok(Some(())),
                CloseOutcome::NotWarm => Ok(None),
            }
        })
        .await?;
    tracing::info!(campaign = %id, closes_at = %timefmt::rfc3339(&closes_at), "campaign closed");
    campaign_view::read_live(&state, id).await.map(Json)
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
        (status = 200, description = "Stock added", body = schemas::CampaignView),
        (status = 400, description = "The body does not parse or validate, or the campaign's total would pass 100,000,000", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Sold out or closed", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn add_stock(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddStock>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| ApiError::no_such_campaign())?;
    if !(1..=Stock::MAX).contains(&body.add) {
        return Err(ApiError::BadRequest(
            "add: must be an integer from 1 to 100000000".into(),
        ));
    }
    // Refuse early what the script would refuse, so the record is rarely touched in vain.
    let current = campaign_view::read_live(&state, id.clone()).await?;
    refuse_unless_growable(current.status)?;
    let target = match state
        .store
        .add_stock(&id, body.add, state.now().await?)
        .await
        .map_err(ApiError::unavailable)?
    {
        StockAdded::Added(stock) => stock,
        StockAdded::NotFound => return Err(ApiError::no_such_campaign()),
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
    // A cold campaign is rebuilt from the record, which already holds the addition; raising it
    // *to* `target` again is then a no-op that still answers `Raised`.
    let (queue, campaign) = (&state.queue, &id);
    // Raised: `Ok((stock, remaining))`; refused: `Err(status)`, the campaign's state that refused.
    let raised = state
        .warmed(campaign, || async move {
            Ok(
                match queue
                    .raise_stock(campaign, target)
                    .await
                    .map_err(ApiError::unavailable)?
                {
                    StockOutcome::Raised { stock, remaining } => Some(Ok((stock, remaining))),
                    StockOutcome::Closed => Some(Err(CampaignStatus::Closed)),
                    StockOutcome::SoldOut => Some(Err(CampaignStatus::SoldOut)),
                    StockOutcome::NotWarm => None,
                },
            )
        })
        .await?;
    let refused = match raised {
        Ok((stock, remaining)) => {
            tracing::info!(campaign = %id, add = body.add, stock, remaining, "stock added");
            return campaign_view::read_live(&state, id).await.map(Json);
        }
        Err(status) => status,
    };
    // Sold out or closed meanwhile: Redis will never take this stock, so the record gives it
    // back (both states are final for stock, so nothing can have used it).
    if let Err(e) = state.store.withdraw_stock(&id, body.add).await {
        tracing::error!(campaign = %id, add = body.add, error = %e,
            "stock refused by Redis but still recorded in PostgreSQL");
    }
    Err(not_growable(refused))
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

/// `POST /v1/campaigns/{id}/admission`: `{"admit_per_second"?: N, "paused"?: bool}` changes a
/// running waiting room's rate and/or pauses or resumes admission. PostgreSQL first, then Redis
/// (`waiting_room.lua` advances the counter at the old settings before applying the new ones); a
/// crash in between leaves the record ahead, which the next change or a rebuild carries into
/// Redis (every warm-up copies the record's settings). Idempotent.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/admission",
    tag = "campaigns",
    summary = "Change a waiting room's admission rate, pause or resume it (admin)",
    request_body = AdmissionChange,
    params(
        ("id" = String, Path, description = "Campaign id"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Changed; the campaign with its waiting room and queue", body = schemas::CampaignView),
        (status = 400, description = "The body does not parse or validate (it must set admit_per_second, paused or both)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled (no token configured)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign has no waiting room", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn admission(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AdmissionChange>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = CampaignId::parse(id).map_err(|_| ApiError::no_such_campaign())?;
    let (admit_per_second, paused) = body.validate()?;
    match state
        .store
        .set_admission(&id, admit_per_second, paused)
        .await
        .map_err(ApiError::unavailable)?
    {
        AdmissionSet::Set(_) => {}
        AdmissionSet::NotFound => return Err(ApiError::no_such_campaign()),
        AdmissionSet::NoWaitingRoom => return Err(no_waiting_room()),
    }
    // A cold campaign is rebuilt from the record, which already holds the change; applying it
    // again is a no-op.
    let (queue, campaign) = (&state.queue, &id);
    let counter = state
        .warmed(campaign, || async move {
            campaign_view::warm_or(
                queue
                    .set_admission(campaign, admit_per_second, paused)
                    .await
                    .map_err(ApiError::unavailable)?,
            )
        })
        .await?
        .ok_or_else(no_waiting_room)?;
    tracing::info!(campaign = %id, admit_per_second = counter.admit_per_second, paused = counter.paused,
        admitted_through = counter.admitted_through, joined = counter.joined, "waiting room admission changed");
    campaign_view::read_live(&state, id).await.map(Json)
}

fn no_waiting_room() -> ApiError {
    ApiError::Conflict("campaign has no waiting room".into())
}
