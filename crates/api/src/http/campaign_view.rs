//! The one home of a campaign's [`CampaignView`]: from Redis's live state or from the record.
//!
//! Every handler that shows a campaign (create, read, list, close, add stock) builds it here, so
//! `status` is always computed the same way: at a `now` read from Redis's clock, the clock
//! `accept.lua` decides windows with. This module imports no handler module; handlers import it.

use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, CampaignName, CampaignStatus, CampaignView, Stock};
use rushline_queue::CampaignState;
use rushline_store::StoredCampaign;

use crate::http::ApiError;
use crate::state::AppState;

/// The campaign as Redis holds it now, warming it from the record if needed; 404 for a campaign
/// the record does not hold.
pub async fn read_live(state: &AppState, id: CampaignId) -> Result<CampaignView, ApiError> {
    // Both reads at once: one round trip's wait, not two.
    let (campaign, now) = tokio::join!(
        state.warmed(&id, || campaign_state(state, &id)),
        state.now()
    );
    live(id, campaign?, now?)
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
    }
}
