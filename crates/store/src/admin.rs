//! Operator queries: the campaign list, closing early, adding stock, and decision counts.
//!
//! Each change is a single statement, so it is atomic on its own; the API then brings Redis to
//! what it recorded (`rushline_queue::admin`). PostgreSQL goes first so that Redis never holds
//! more stock, or a later close, than the record.

use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, Stock};

use crate::campaigns::{CAMPAIGN_COLUMNS, CampaignRow};
use crate::{Store, StoreError, StoredCampaign};

/// What an attempt to add stock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockAdded {
    /// Recorded; the campaign's stock is now this.
    Added(u64),
    /// No such campaign.
    NotFound,
    /// The campaign has closed (at or before the given instant).
    Closed,
    /// The sum would pass [`Stock::MAX`]; this is the stock as it stands.
    OverCap(u64),
}

/// What an operator's change to a waiting room's admission found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionSet {
    /// Recorded; the campaign as it now stands.
    Set(Box<StoredCampaign>),
    /// No such campaign.
    NotFound,
    /// The campaign has no waiting room.
    NoWaitingRoom,
}

/// Persisted rows of one campaign, by final status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordedCounts {
    /// Rows `issued`.
    pub issued: u64,
    /// Rows `sold_out`.
    pub sold_out: u64,
    /// Rows `duplicate`.
    pub duplicate: u64,
}

impl RecordedCounts {
    /// Every persisted row.
    pub fn total(&self) -> u64 {
        self.issued + self.sold_out + self.duplicate
    }
}

impl Store {
    /// Up to `limit` campaigns in id order, starting after `after`.
    pub async fn campaigns_page(
        &self,
        after: Option<&CampaignId>,
        limit: i64,
    ) -> Result<Vec<StoredCampaign>, StoreError> {
        self.bounded(async {
            let rows: Vec<CampaignRow> = sqlx::query_as(&format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns
                 WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2"
            ))
            .bind(after.map(CampaignId::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter().map(CampaignRow::into_stored).collect()
        })
        .await
    }

    /// Closes the campaign at `at` unless it closed earlier; a campaign that has not opened by
    /// then gets an empty window. Returns the window as recorded afterwards (`None`: no such
    /// campaign). Idempotent: closing again keeps the first close.
    pub async fn close_campaign(
        &self,
        id: &CampaignId,
        at: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        self.bounded(async {
            let window: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
                "UPDATE campaigns
                 SET closes_at = LEAST(COALESCE(closes_at, $2), $2), opens_at = LEAST(opens_at, $2)
                 WHERE id = $1
                 RETURNING opens_at, closes_at",
            )
            .bind(id.as_str())
            .bind(at)
            .fetch_optional(&self.pool)
            .await?;
            window
                .map(|(opens, closes)| {
                    closes
                        .map(|closes| (opens, closes))
                        .ok_or_else(|| StoreError::corrupt(format!("campaign {id} still open")))
                })
                .transpose()
        })
        .await
    }

    /// Adds `add` coupons to a campaign that has not closed by `now`, within [`Stock::MAX`].
    ///
    /// A sharded campaign's added coupons go to its unleased stock (`unleased + moved = stock`
    /// keeps holding; see [`crate::leases`]); shards get them by lease like the rest. A
    /// one-shard campaign has no `unleased` (NULL stays NULL).
    pub async fn add_stock(
        &self,
        id: &CampaignId,
        add: u64,
        now: DateTime<Utc>,
    ) -> Result<StockAdded, StoreError> {
        self.bounded(async {
            let add = i64::try_from(add).map_err(StoreError::corrupt)?;
            let added: Option<i64> = sqlx::query_scalar(
                "UPDATE campaigns SET stock = stock + $2, unleased = unleased + $2
                 WHERE id = $1 AND stock + $2 <= $3 AND (closes_at IS NULL OR closes_at > $4)
                 RETURNING stock",
            )
            .bind(id.as_str())
            .bind(add)
            .bind(Stock::MAX as i64)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(stock) = added {
                return Ok(StockAdded::Added(stock.max(0) as u64));
            }
            let found: Option<(i64, Option<DateTime<Utc>>)> =
                sqlx::query_as("SELECT stock, closes_at FROM campaigns WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(match found {
                None => StockAdded::NotFound,
                Some((_, Some(closes))) if closes <= now => StockAdded::Closed,
                Some((stock, _)) => StockAdded::OverCap(stock.max(0) as u64),
            })
        })
        .await
    }

    /// Takes back an addition Redis refused (the campaign sold out or closed meanwhile), so the
    /// record does not promise stock no request can get. Never below what is issued: the
    /// constraint refuses, and the error says so. A sharded campaign takes it out of its
    /// unleased stock; if a shard was leased part of it meanwhile, `unleased` would go negative
    /// and the constraint refuses likewise (the stock stays, leased, as the record says).
    pub async fn withdraw_stock(&self, id: &CampaignId, amount: u64) -> Result<(), StoreError> {
        self.bounded(async {
            let amount = i64::try_from(amount).map_err(StoreError::corrupt)?;
            sqlx::query(
                "UPDATE campaigns SET stock = stock - $2, unleased = unleased - $2 WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(amount)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Persisted rows of the campaign, by status. Counts the campaign's rows: its cost grows with
    /// them, so callers use it for operator reads, never on the hot path.
    pub async fn recorded_counts(&self, id: &CampaignId) -> Result<RecordedCounts, StoreError> {
        self.bounded(async {
            let (issued, sold_out, duplicate): (i64, i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'issued'),
                        count(*) FILTER (WHERE status = 'sold_out'),
                        count(*) FILTER (WHERE status = 'duplicate')
                 FROM requests WHERE campaign_id = $1",
            )
            .bind(id.as_str())
            .fetch_one(&self.pool)
            .await?;
            Ok(RecordedCounts {
                issued: issued.max(0) as u64,
                sold_out: sold_out.max(0) as u64,
                duplicate: duplicate.max(0) as u64,
            })
        })
        .await
    }

    /// Records an operator's change to the campaign's admission: a new `admit_per_second`
    /// and/or paused or resumed (`None`: unchanged). One statement; the API then carries it into
    /// Redis, and every warm-up copies it from here.
    pub async fn set_admission(
        &self,
        id: &CampaignId,
        admit_per_second: Option<u32>,
        paused: Option<bool>,
    ) -> Result<AdmissionSet, StoreError> {
        self.bounded(async {
            let row: Option<CampaignRow> = sqlx::query_as(&format!(
                "UPDATE campaigns
                 SET admit_per_second = COALESCE($2, admit_per_second),
                     admission_paused = COALESCE($3, admission_paused)
                 WHERE id = $1 AND admit_per_second IS NOT NULL
                 RETURNING {CAMPAIGN_COLUMNS}"
            ))
            .bind(id.as_str())
            .bind(admit_per_second.map(|n| n as i32))
            .bind(paused)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return Ok(AdmissionSet::Set(Box::new(row.into_stored()?)));
            }
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM campaigns WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            Ok(match exists {
                None => AdmissionSet::NotFound,
                Some(_) => AdmissionSet::NoWaitingRoom,
            })
        })
        .await
    }

    /// The campaign's pre-queue seed (`None`: no such campaign or no waiting room), for an audit
    /// of the opening shuffle. Callers reveal it only once the campaign has opened.
    pub async fn prequeue_seed(&self, id: &CampaignId) -> Result<Option<Vec<u8>>, StoreError> {
        self.bounded(async {
            let seed: Option<Option<Vec<u8>>> =
                sqlx::query_scalar("SELECT prequeue_seed FROM campaigns WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(seed.flatten())
        })
        .await
    }
}
