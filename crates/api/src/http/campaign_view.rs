//! The one home of a campaign's [`CampaignView`]: from Redis's live state or from the record.
//!
//! Every handler that shows a campaign (create, read, list, close, add stock) builds it here, so
//! `status` is always computed the same way: at a `now` read from Redis's clock, the clock
//! `accept.lua` decides windows with. This module imports no handler module; handlers import it.

use chrono::{DateTime, Utc};
use rushline_domain::{
    CampaignId, CampaignName, CampaignStatus, CampaignView, QueueFigures, Stock,
};
use rushline_queue::{CampaignState, QueueCounter, WaitingRoomRead};
use rushline_store::StoredCampaign;

use crate::http::ApiError;
use crate::state::AppState;
use crate::telemetry;

/// The campaign as Redis holds it now, warming it from the record if needed; 404 for a campaign
/// the record does not hold. A campaign with a waiting room also shows its queue figures (one
/// more round trip, which advances the serving counter, as any read of it does).
pub async fn read_live(state: &AppState, id: CampaignId) -> Result<CampaignView, ApiError> {
    // Both reads at once: one round trip's wait, not two.
    let (campaign, now) = tokio::join!(
        state.warmed(&id, || campaign_state(state, &id)),
        state.now()
    );
    let campaign = campaign?;
    let queue = match campaign.waiting_room {
        Some(_) => queue_figures(state, &id).await?,
        None => None,
    };
    let mut view = live(id, campaign, now?)?;
    view.queue = queue;
    Ok(view)
}

/// The waiting room's figures now; `None` if the campaign went cold or lost its waiting room
/// between the two reads (the view then shows none rather than failing).
async fn queue_figures(
    state: &AppState,
    id: &CampaignId,
) -> Result<Option<QueueFigures>, ApiError> {
    let counter = state
        .queue
        .waiting_room_counter(id)
        .await
        .map_err(ApiError::unavailable)?
        .ready();
    if let Some(counter) = &counter {
        telemetry::waiting_room_counter(id, counter);
    }
    Ok(counter.map(figures))
}

/// A counter as a view shows it.
pub fn figures(counter: QueueCounter) -> QueueFigures {
    QueueFigures {
        joined: counter.joined,
        admitted_through: counter.admitted_through,
        paused: counter.paused,
    }
}

/// [`WaitingRoomRead`] for `AppState::warmed`: the answer, or `None` to warm and retry; a
/// campaign without a waiting room is the caller's `409`.
pub fn warm_or<T>(read: WaitingRoomRead<T>) -> Result<Option<Option<T>>, ApiError> {
    Ok(match read {
        WaitingRoomRead::Ready(value) => Some(Some(value)),
        WaitingRoomRead::NoWaitingRoom => Some(None),
        WaitingRoomRead::NotWarm => None,
    })
}

/// The campaign's state in Redis; `None` while Redis does not hold it.
pub async fn campaign_state(
    state: &AppState,
    id: &CampaignId,
) -> Result<Option<CampaignState>, ApiError> {
    state
        .queue
        .campaign_state(id)
        .await
        .map_err(ApiError::unavailable)
}

/// The view of a campaign as Redis holds it, its `status` at `now` (Redis's clock, so it agrees
/// with what accept decides at that instant).
pub fn live(
    id: CampaignId,
    campaign: CampaignState,
    now: DateTime<Utc>,
) -> Result<CampaignView, ApiError> {
    let name = CampaignName::from_record(campaign.name)
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
        decide: campaign.decide,
        shards: campaign.shards,
        waiting_room: campaign.waiting_room,
        queue: None,
    })
}

/// A campaign as PostgreSQL has it (counts lag Redis by the persistence lag), its `status` at
/// `now` by Redis's clock.
pub fn recorded(stored: StoredCampaign, now: DateTime<Utc>) -> CampaignView {
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
        decide: stored.spec.decide,
        shards: stored.spec.shards,
        waiting_room: stored.spec.waiting_room,
        queue: None,
    }
}
