//! The ledger's changes: a lease, its confirmation, a return. Each is one transaction under the
//! campaign row's lock (see the module above for why that is enough).

use std::num::NonZeroU64;

use rushline_domain::{CampaignId, ShardIndex};
use uuid::Uuid;

use super::{
    Lease, LeaseRefusal, MOVE_COLUMNS, MoveRow, StockMove, allocation, find_move, is_move_id_taken,
    lock_sharded, replayed_lease, same_move,
};
use crate::{Store, StoreError};

impl Store {
    /// Leases up to `want` coupons of the campaign's unleased stock to `shard`: grants
    /// min(`want`, unleased) as move `move_id`, state `granted`, in one transaction under the
    /// campaign row's lock. Idempotent on `move_id`: a call with an id already granted returns
    /// that move (`replayed`) and grants nothing, whatever `want` says; an id taken by a move
    /// of another campaign or shard, or by a return, is refused.
    pub async fn grant_lease(
        &self,
        campaign: &CampaignId,
        shard: ShardIndex,
        want: NonZeroU64,
        move_id: Uuid,
    ) -> Result<Lease, StoreError> {
        let same = |m: &StockMove| &m.campaign == campaign && m.shard == shard && m.delta > 0;
        let attempt = self
            .in_transaction(async |tx| {
                let unleased = lock_sharded(tx, campaign, Some(shard)).await?;
                if let Some(existing) = find_move(tx, move_id).await? {
                    return replayed_lease(existing, same);
                }
                let granted = want.get().min(unleased);
                if granted == 0 {
                    return Ok(Lease::NothingUnleased);
                }
                let granted = i64::try_from(granted).map_err(StoreError::corrupt)?;
                sqlx::query("UPDATE campaigns SET unleased = unleased - $2 WHERE id = $1")
                    .bind(campaign.as_str())
                    .bind(granted)
                    .execute(&mut *tx)
                    .await?;
                let row: MoveRow = sqlx::query_as(&format!(
                    "INSERT INTO stock_moves (move_id, campaign_id, shard, delta, state)
                     VALUES ($1, $2, $3, $4, 'granted') RETURNING {MOVE_COLUMNS}"
                ))
                .bind(move_id)
                .bind(campaign.as_str())
                .bind(i16::from(shard.get()))
                .bind(granted)
                .fetch_one(&mut *tx)
                .await?;
                Ok(Lease::Granted {
                    stock_move: row.into_move()?,
                    replayed: false,
                })
            })
            .await;
        match attempt {
            // The id was inserted by a concurrent call this one's lock did not wait for (another
            // campaign's): the transaction rolled back; read what that call recorded.
            Err(e) if is_move_id_taken(&e) => match self.stock_move(move_id).await? {
                Some(existing) => replayed_lease(existing, same),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Confirms that the shard's side of a lease is done: state `applied`. Idempotent: applying
    /// an applied move returns it unchanged. Returns the move.
    pub async fn mark_applied(&self, move_id: Uuid) -> Result<StockMove, StoreError> {
        self.bounded(async {
            let row: Option<MoveRow> = sqlx::query_as(&format!(
                "UPDATE stock_moves
                 SET state = 'applied', applied_at = COALESCE(applied_at, now())
                 WHERE move_id = $1 RETURNING {MOVE_COLUMNS}"
            ))
            .bind(move_id)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some(row) => row.into_move(),
                None => Err(LeaseRefusal::UnknownMove(move_id).into()),
            }
        })
        .await
    }

    /// Credits `returned` coupons a shard handed back: records move `move_id` with delta
    /// `-returned`, state `applied` (the shard's Redis state gave them up before this call), and
    /// adds them to `unleased`, in one transaction under the campaign row's lock. Idempotent on
    /// `move_id`: a second call with the same return gives back the recorded move and credits
    /// nothing. A return past the shard's applied allocation is refused.
    pub async fn credit_return(
        &self,
        campaign: &CampaignId,
        shard: ShardIndex,
        move_id: Uuid,
        returned: NonZeroU64,
    ) -> Result<StockMove, StoreError> {
        let delta = i64::try_from(returned.get())
            .map(|n| -n)
            .map_err(StoreError::corrupt)?;
        let same = |m: &StockMove| &m.campaign == campaign && m.shard == shard && m.delta == delta;
        let attempt = self
            .in_transaction(async |tx| {
                lock_sharded(tx, campaign, Some(shard)).await?;
                if let Some(existing) = find_move(tx, move_id).await? {
                    return same_move(existing, same);
                }
                let allocation = allocation(tx, campaign, shard).await?;
                if returned.get() > allocation {
                    return Err(LeaseRefusal::ReturnExceedsAllocation {
                        shard,
                        returned: returned.get(),
                        allocation,
                    }
                    .into());
                }
                sqlx::query("UPDATE campaigns SET unleased = unleased + $2 WHERE id = $1")
                    .bind(campaign.as_str())
                    .bind(-delta)
                    .execute(&mut *tx)
                    .await?;
                let row: MoveRow = sqlx::query_as(&format!(
                    "INSERT INTO stock_moves (move_id, campaign_id, shard, delta, state, applied_at)
                     VALUES ($1, $2, $3, $4, 'applied', now()) RETURNING {MOVE_COLUMNS}"
                ))
                .bind(move_id)
                .bind(campaign.as_str())
                .bind(i16::from(shard.get()))
                .bind(delta)
                .fetch_one(&mut *tx)
                .await?;
                row.into_move()
            })
            .await;
        match attempt {
            Err(e) if is_move_id_taken(&e) => match self.stock_move(move_id).await? {
                Some(existing) => same_move(existing, same),
                None => Err(e),
            },
            other => other,
        }
    }
}
