//! The interface between Redis state and the record it is rebuilt from.

use std::future::Future;

use crate::{CampaignId, CampaignSnapshot, RequestId, UserId};

/// Where a campaign's durable state can be read from (PostgreSQL, in rushline).
///
/// Defined here, with no I/O, so the Redis layer can rebuild from the record without depending on
/// the crate that implements it.
pub trait CampaignRecord: Sync {
    /// Why a read failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The campaign's snapshot, or `None` when it does not exist.
    fn snapshot(
        &self,
        campaign: &CampaignId,
    ) -> impl Future<Output = Result<Option<CampaignSnapshot>, Self::Error>> + Send;

    /// Starts a rebuild of the campaign's Redis state: moves the record's epoch from `seen` (read
    /// in a [`CampaignSnapshot`]) to `seen + 1`, atomically with respect to every persist of the
    /// campaign's decisions, and returns the new epoch. `None` when the epoch is no longer
    /// `seen` (another rebuild claimed one meanwhile) or the campaign is gone. Every read of the
    /// rebuild comes after this call, so it sees each decision committed before; decisions
    /// stamped with an older epoch are refused from then on.
    fn begin_rebuild(
        &self,
        campaign: &CampaignId,
        seen: i64,
    ) -> impl Future<Output = Result<Option<i64>, Self::Error>> + Send;

    /// One page of the campaign's coupon holders, in user order, after `after`; empty at the end.
    fn holders_after(
        &self,
        campaign: &CampaignId,
        after: Option<&UserId>,
    ) -> impl Future<Output = Result<Vec<(UserId, RequestId)>, Self::Error>> + Send;
}
