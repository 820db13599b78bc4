//! The ledger's reads: pending moves to replay, a shard's allocation and its users' issued rows
//! (a shard's rebuild), the totals.

use rushline_domain::{CampaignId, ShardCount, ShardIndex, shard_of};
use uuid::Uuid;

use super::{
    ISSUED_PAGE, LeaseRefusal, MOVE_COLUMNS, MoveRow, StockLedger, StockMove, allocation,
    find_move, lock_sharded,
};
use crate::{Store, StoreError};

impl Store {
    /// The campaign's leases granted but not yet applied, oldest first: what a coordinator
    /// replays (in Redis, then [`Store::mark_applied`]) after a crash.
    pub async fn pending_moves(&self, campaign: &CampaignId) -> Result<Vec<StockMove>, StoreError> {
        self.in_transaction(async |tx| {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM campaigns WHERE id = $1")
                .bind(campaign.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(LeaseRefusal::UnknownCampaign(campaign.clone()).into());
            }
            let rows: Vec<MoveRow> = sqlx::query_as(&format!(
                "SELECT {MOVE_COLUMNS} FROM stock_moves
                 WHERE campaign_id = $1 AND state = 'granted' ORDER BY created_at, move_id"
            ))
            .bind(campaign.as_str())
            .fetch_all(&mut *tx)
            .await?;
            rows.into_iter().map(MoveRow::into_move).collect()
        })
        .await
    }

    /// The shard's allocation: the sum of its applied moves' deltas. A rebuild of the shard's
    /// Redis `remaining` starts from it: allocation − issued rows of the shard's users (those
    /// [`rushline_domain::shard_of`] maps to it). Granted moves are not in it: they are not in
    /// Redis yet, and their replay adds them.
    pub async fn shard_allocation(
        &self,
        campaign: &CampaignId,
        shard: ShardIndex,
    ) -> Result<u64, StoreError> {
        self.in_transaction(async |tx| {
            // The lock orders this read after any move in flight, so it reads a committed whole.
            lock_sharded(tx, campaign, Some(shard)).await?;
            allocation(tx, campaign, shard).await
        })
        .await
    }

    /// Issued rows of the campaign whose users [`shard_of`] maps to `shard`: what a rebuild of
    /// the shard's `remaining` subtracts from [`Store::shard_allocation`]. Reads every holder in
    /// pages (its cost grows with the issued rows), so it is for rebuilds, not the hot path; like
    /// a warm-up, it is exact when the shard decides nothing meanwhile.
    pub async fn shard_issued(
        &self,
        campaign: &CampaignId,
        shard: ShardIndex,
    ) -> Result<u64, StoreError> {
        let shards: Option<i16> = self
            .bounded(async {
                Ok(
                    sqlx::query_scalar("SELECT shards FROM campaigns WHERE id = $1")
                        .bind(campaign.as_str())
                        .fetch_optional(&self.pool)
                        .await?,
                )
            })
            .await?;
        let Some(shards) = shards else {
            return Err(LeaseRefusal::UnknownCampaign(campaign.clone()).into());
        };
        let shards = u64::try_from(shards)
            .map_err(StoreError::corrupt)
            .and_then(|n| ShardCount::new(n).map_err(StoreError::corrupt))?;
        if shard.get() >= shards.get() {
            return Err(LeaseRefusal::NoSuchShard {
                campaign: campaign.clone(),
                shards,
                shard,
            }
            .into());
        }
        let mut issued = 0;
        let mut after = None;
        loop {
            let page = self
                .holders_page(campaign, after.as_ref(), ISSUED_PAGE)
                .await?;
            issued += page
                .iter()
                .filter(|(user, _)| shard_of(user, shards) == shard)
                .count() as u64;
            match page.last() {
                Some((user, _)) => after = Some(user.clone()),
                None => return Ok(issued),
            }
        }
    }

    /// The sharded campaign's stock as the ledger holds it (one consistent read).
    pub async fn stock_ledger(&self, campaign: &CampaignId) -> Result<StockLedger, StoreError> {
        self.in_transaction(async |tx| {
            let unleased = lock_sharded(tx, campaign, None).await?;
            let (stock, moved, pending): (i64, i64, i64) = sqlx::query_as(
                "SELECT c.stock,
                        COALESCE((SELECT sum(delta) FROM stock_moves WHERE campaign_id = c.id), 0)
                            ::bigint,
                        (SELECT count(*) FROM stock_moves
                         WHERE campaign_id = c.id AND state = 'granted')
                 FROM campaigns c WHERE c.id = $1",
            )
            .bind(campaign.as_str())
            .fetch_one(&mut *tx)
            .await?;
            Ok(StockLedger {
                stock: u64::try_from(stock).map_err(StoreError::corrupt)?,
                unleased,
                moved,
                pending: u64::try_from(pending).map_err(StoreError::corrupt)?,
            })
        })
        .await
    }

    /// The move with this id, if any.
    pub async fn stock_move(&self, move_id: Uuid) -> Result<Option<StockMove>, StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await?;
            find_move(&mut conn, move_id).await
        })
        .await
    }
}
