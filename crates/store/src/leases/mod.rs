//! The stock-lease ledger of sharded campaigns: where each coupon of a campaign with `shards` > 1
//! is — in the record (`campaigns.unleased`) or leased to one of its shards — and every movement
//! between the two (`stock_moves`). Schema and its invariant:
//! `migrations/20261205000002_stock_moves.sql`.
//!
//! **Not yet used by the engine**: today every campaign is decided on one Redis slot whatever its
//! shard count. This is the foundation the sharded engine's coordinator will move stock through.
//!
//! # Who calls it
//!
//! One coordinator per campaign: the worker holding the campaign's PostgreSQL advisory lock
//! (to be built). It gives a dry shard with demand a lease ([`Store::grant_lease`]), applies it
//! in that shard's Redis state, then confirms it ([`Store::mark_applied`]); when nothing is
//! unleased it takes stock back from shards with no demand (Redis first, then
//! [`Store::credit_return`]). Each move has an id the coordinator picks *before* the first step,
//! so every step is idempotent by that id on both sides.
//!
//! # Where a move is at each moment, and what a crash there does
//!
//! - Lease, before [`Store::grant_lease`] commits: nothing moved; the coordinator (or the next
//!   one) calls again with the same id or a new one.
//! - After it commits, before Redis applied it: the stock is out of `unleased` and in a
//!   `granted` row, in no shard. [`Store::pending_moves`] lists it; the next coordinator applies
//!   it in Redis (idempotent by id there) and marks it applied. A grant is never lost and never
//!   counted twice: replaying [`Store::grant_lease`] with the same id returns the same row.
//! - After Redis applied it, before [`Store::mark_applied`]: still `granted`; replaying the Redis
//!   step finds the id applied and changes nothing, then the mark goes through.
//! - Return: the shard's Redis state gave the stock up first (recording the id), then
//!   [`Store::credit_return`] puts it back in `unleased`, idempotent by id; a crash in between
//!   replays the credit from the id Redis kept.
//!
//! # Why it cannot over-allocate
//!
//! Every change takes the campaign row's lock (`FOR NO KEY UPDATE`, so it serializes with other
//! ledger changes and add-stock but not with foreign-key checks), reads `unleased` under it,
//! grants at most that, and writes `unleased` and the move in one transaction. So at every
//! commit `unleased + sum(delta) = stock` and `unleased >= 0` (a CHECK too): the stock leased to
//! shards never exceeds the stock. This holds however many movers run at once; the coordinator's
//! advisory lock is for the Redis side (one mover per campaign decides when a shard is dry), not
//! for this arithmetic. A return can give back at most what the shard was applied, so `unleased`
//! never exceeds the stock either.

use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, ShardCount, ShardIndex};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{Store, StoreError};

/// Where a move stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveState {
    /// The record's side is done; the shard's (Redis) side is not confirmed.
    Granted,
    /// Both sides are done.
    Applied,
}

impl MoveState {
    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "granted" => Ok(Self::Granted),
            "applied" => Ok(Self::Applied),
            other => Err(StoreError::corrupt(format!("stock move state {other:?}"))),
        }
    }
}

/// One movement of stock between the record and a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMove {
    /// Its idempotency id, chosen by the mover.
    pub move_id: Uuid,
    /// The campaign.
    pub campaign: CampaignId,
    /// The shard the stock went to (lease) or came from (return).
    pub shard: ShardIndex,
    /// Coupons moved: > 0 leased to the shard, < 0 handed back by it. Never 0.
    pub delta: i64,
    /// Where it stands.
    pub state: MoveState,
    /// When the record took it.
    pub created_at: DateTime<Utc>,
}

/// What [`Store::grant_lease`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The move, granted now or (`replayed`) by an earlier call with the same id, in which case
    /// nothing changed now; its `state` says whether Redis's side was confirmed since.
    Granted {
        /// The move (`delta` = the coupons granted, at most what was asked).
        stock_move: StockMove,
        /// Whether an earlier call granted it.
        replayed: bool,
    },
    /// Nothing is unleased: nothing was granted and no row written, so the id is still unused
    /// (a later call with it may grant; nothing moved the first time, so nothing moves twice).
    NothingUnleased,
}

impl Lease {
    /// Coupons this lease gives the shard (0 for [`Lease::NothingUnleased`]).
    pub fn granted(&self) -> u64 {
        match self {
            Self::Granted { stock_move, .. } => stock_move.delta.max(0) as u64,
            Self::NothingUnleased => 0,
        }
    }
}

/// A sharded campaign's stock, as the ledger holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLedger {
    /// The campaign's stock.
    pub stock: u64,
    /// Stock no shard holds.
    pub unleased: u64,
    /// Sum of every move's delta: what the shards hold or were granted.
    pub moved: i64,
    /// Moves granted but not yet applied.
    pub pending: u64,
}

/// Why the ledger refused a change. Each is permanent: the same call fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRefusal {
    /// The record holds no such campaign.
    #[error("no campaign {0}")]
    UnknownCampaign(CampaignId),
    /// The campaign has one shard: its whole stock is its single slot's, no ledger.
    #[error("campaign {0} has one shard and no stock ledger")]
    NotSharded(CampaignId),
    /// The shard is past the campaign's count.
    #[error("campaign {campaign} has {shards} shards, no shard {shard}")]
    NoSuchShard {
        /// The campaign.
        campaign: CampaignId,
        /// Its shard count.
        shards: ShardCount,
        /// The shard asked for.
        shard: ShardIndex,
    },
    /// The move id is taken by a different move (another campaign, shard, direction or amount).
    #[error("move id {0} is taken by a different move")]
    MoveIdTaken(Uuid),
    /// No move has this id.
    #[error("no stock move {0}")]
    UnknownMove(Uuid),
    /// A return of more than the shard's applied allocation: the shard cannot hold it.
    #[error("shard {shard} returns {returned} of an allocation of {allocation}")]
    ReturnExceedsAllocation {
        /// The shard.
        shard: ShardIndex,
        /// Coupons it says it returns.
        returned: u64,
        /// Its applied allocation.
        allocation: u64,
    },
}

/// Holders read per page by [`Store::shard_issued`].
const ISSUED_PAGE: i64 = 5_000;

/// `stock_moves` as read back.
#[derive(sqlx::FromRow)]
struct MoveRow {
    move_id: Uuid,
    campaign_id: String,
    shard: i16,
    delta: i64,
    state: String,
    created_at: DateTime<Utc>,
}

const MOVE_COLUMNS: &str = "move_id, campaign_id, shard, delta, state, created_at";

impl MoveRow {
    fn into_move(self) -> Result<StockMove, StoreError> {
        let shard = u64::try_from(self.shard).map_err(StoreError::corrupt)?;
        Ok(StockMove {
            move_id: self.move_id,
            campaign: CampaignId::parse(self.campaign_id).map_err(StoreError::corrupt)?,
            // Any shard a row holds is below 64 (its CHECK), so below the largest count.
            shard: ShardCount::new(ShardCount::MAX)
                .and_then(|most| most.shard(shard))
                .map_err(StoreError::corrupt)?,
            delta: self.delta,
            state: MoveState::parse(&self.state)?,
            created_at: self.created_at,
        })
    }
}

impl From<LeaseRefusal> for StoreError {
    fn from(refusal: LeaseRefusal) -> Self {
        Self::Lease(refusal)
    }
}

/// Locks the sharded campaign's row and returns its `unleased`, after checking `shard` is one of
/// its shards.
async fn lock_sharded(
    tx: &mut PgConnection,
    campaign: &CampaignId,
    shard: Option<ShardIndex>,
) -> Result<u64, StoreError> {
    let row: Option<(i16, Option<i64>)> =
        sqlx::query_as("SELECT shards, unleased FROM campaigns WHERE id = $1 FOR NO KEY UPDATE")
            .bind(campaign.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((shards, unleased)) = row else {
        return Err(LeaseRefusal::UnknownCampaign(campaign.clone()).into());
    };
    let Some(unleased) = unleased else {
        return Err(LeaseRefusal::NotSharded(campaign.clone()).into());
    };
    let shards = u64::try_from(shards)
        .map_err(StoreError::corrupt)
        .and_then(|n| ShardCount::new(n).map_err(StoreError::corrupt))?;
    if let Some(shard) = shard
        && shard.get() >= shards.get()
    {
        return Err(LeaseRefusal::NoSuchShard {
            campaign: campaign.clone(),
            shards,
            shard,
        }
        .into());
    }
    u64::try_from(unleased).map_err(StoreError::corrupt)
}

async fn find_move(tx: &mut PgConnection, move_id: Uuid) -> Result<Option<StockMove>, StoreError> {
    let row: Option<MoveRow> = sqlx::query_as(&format!(
        "SELECT {MOVE_COLUMNS} FROM stock_moves WHERE move_id = $1"
    ))
    .bind(move_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(MoveRow::into_move).transpose()
}

/// The shard's applied allocation, read inside `tx`.
async fn allocation(
    tx: &mut PgConnection,
    campaign: &CampaignId,
    shard: ShardIndex,
) -> Result<u64, StoreError> {
    let sum: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(delta), 0)::bigint FROM stock_moves
         WHERE campaign_id = $1 AND shard = $2 AND state = 'applied'",
    )
    .bind(campaign.as_str())
    .bind(i16::from(shard.get()))
    .fetch_one(&mut *tx)
    .await?;
    u64::try_from(sum).map_err(|_| {
        StoreError::corrupt(format!(
            "campaign {campaign} shard {shard} allocation {sum} is negative"
        ))
    })
}

/// Whether `error` is a second insert of the same move id (a concurrent call on another
/// campaign's lock, which the row lock does not serialize with this one).
fn is_move_id_taken(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(db))
        if db.constraint() == Some("stock_moves_pkey"))
}

mod reads;
mod writes;

impl Store {
    /// Runs `work` in a transaction under the store's timeout: committed when it returns `Ok`,
    /// rolled back (dropped) otherwise.
    async fn in_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.bounded(async {
            let mut tx: Transaction<'_, Postgres> = self.pool.begin().await?;
            let value = work(&mut tx).await?;
            tx.commit().await?;
            Ok(value)
        })
        .await
    }
}

/// A lease an earlier call recorded under the id, or a refusal if the id names another move.
fn replayed_lease(
    existing: StockMove,
    same: impl Fn(&StockMove) -> bool,
) -> Result<Lease, StoreError> {
    if same(&existing) {
        Ok(Lease::Granted {
            stock_move: existing,
            replayed: true,
        })
    } else {
        Err(LeaseRefusal::MoveIdTaken(existing.move_id).into())
    }
}

/// The move an earlier call recorded under the id, or a refusal if it is another move.
fn same_move(
    existing: StockMove,
    same: impl Fn(&StockMove) -> bool,
) -> Result<StockMove, StoreError> {
    if same(&existing) {
        Ok(existing)
    } else {
        Err(LeaseRefusal::MoveIdTaken(existing.move_id).into())
    }
}
