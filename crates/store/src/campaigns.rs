//! Campaign rows.

use chrono::{DateTime, Utc};
use rushline_domain::{
    CampaignId, CampaignName, CampaignRecord, CampaignSnapshot, CampaignSpec, DecideMode,
    RequestId, ShardCount, Stock, UserId, WaitingRoom, WaitingRoomState,
};
use uuid::Uuid;

use crate::{Store, StoreError};

/// A campaign as the record holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCampaign {
    /// What the operator created.
    pub spec: CampaignSpec,
    /// Issued rows (exact: kept by a trigger).
    pub issued: u64,
    /// Secret key of its coupon-code permutation.
    pub code_key: String,
    /// Whether an operator paused its waiting room's admission (`false` without a waiting room).
    pub admission_paused: bool,
}

/// The columns a [`CampaignRow`] reads, in every query that reads one.
pub(crate) const CAMPAIGN_COLUMNS: &str = "id, name, stock, issued, opens_at, closes_at, code_key, \
     decide, admit_per_second, pass_secs, prequeue_secs, admission_paused, proof_of_work_bits, \
     shards";

/// The code key stays out of logs and panics.
impl std::fmt::Debug for StoredCampaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCampaign")
            .field("spec", &self.spec)
            .field("issued", &self.issued)
            .field("code_key", &rushline_domain::secret::Redacted)
            .field("admission_paused", &self.admission_paused)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CampaignRow {
    id: String,
    name: String,
    stock: i64,
    issued: i64,
    opens_at: DateTime<Utc>,
    closes_at: Option<DateTime<Utc>>,
    code_key: String,
    decide: String,
    admit_per_second: Option<i32>,
    pass_secs: Option<i32>,
    prequeue_secs: Option<i32>,
    admission_paused: bool,
    proof_of_work_bits: i16,
    shards: i16,
}

/// A campaign row with its rebuild epoch, for a warm-up.
#[derive(sqlx::FromRow)]
struct SnapshotRow {
    #[sqlx(flatten)]
    row: CampaignRow,
    epoch: i64,
    prequeue_seed: Option<Vec<u8>>,
}

impl CampaignRow {
    pub(crate) fn into_stored(self) -> Result<StoredCampaign, StoreError> {
        let waiting_room = match (self.admit_per_second, self.pass_secs, self.prequeue_secs) {
            (None, None, None) => None,
            (Some(rate), Some(pass), Some(prequeue)) => {
                let secs = |n: i32| u64::try_from(n).map_err(StoreError::corrupt);
                let bits = u64::try_from(self.proof_of_work_bits).map_err(StoreError::corrupt)?;
                Some(
                    WaitingRoom::new(secs(rate)?, secs(pass)?, secs(prequeue)?)
                        .and_then(|room| room.with_proof_of_work_bits(bits))
                        .map_err(StoreError::corrupt)?,
                )
            }
            _ => return Err(StoreError::corrupt("waiting room columns partly set")),
        };
        Ok(StoredCampaign {
            spec: CampaignSpec {
                id: CampaignId::parse(self.id).map_err(StoreError::corrupt)?,
                name: CampaignName::from_record(self.name).map_err(StoreError::corrupt)?,
                stock: Stock::new(u64::try_from(self.stock).map_err(StoreError::corrupt)?)
                    .map_err(StoreError::corrupt)?,
                opens_at: self.opens_at,
                closes_at: self.closes_at,
                decide: DecideMode::parse(&self.decide).map_err(StoreError::corrupt)?,
                waiting_room,
                shards: ShardCount::new(u64::try_from(self.shards).map_err(StoreError::corrupt)?)
                    .map_err(StoreError::corrupt)?,
            },
            issued: u64::try_from(self.issued).map_err(StoreError::corrupt)?,
            code_key: self.code_key,
            admission_paused: self.admission_paused,
        })
    }
}

impl Store {
    /// Records a new campaign; [`StoreError::Conflict`] when the id exists. A campaign with
    /// several shards starts with its whole stock unleased (see [`crate::leases`]). A campaign with a
    /// waiting room gets its pre-queue seed here: 32 random bytes (two v4 UUIDs, 244 random
    /// bits, as the code key), never shown before the opening.
    pub async fn create_campaign(
        &self,
        spec: &CampaignSpec,
        code_key: &str,
    ) -> Result<StoredCampaign, StoreError> {
        let room = spec.waiting_room;
        let seed = room.map(|_| {
            let mut seed = Uuid::new_v4().as_bytes().to_vec();
            seed.extend_from_slice(Uuid::new_v4().as_bytes());
            seed
        });
        self.bounded(async {
            let inserted = sqlx::query(
                "INSERT INTO campaigns (id, name, stock, opens_at, closes_at, code_key, decide,
                     admit_per_second, pass_secs, prequeue_secs, prequeue_seed,
                     proof_of_work_bits, shards, unleased)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     CASE WHEN $13 > 1 THEN $3 END)",
            )
            .bind(spec.id.as_str())
            .bind(spec.name.as_str())
            .bind(spec.stock.get() as i64)
            .bind(spec.opens_at)
            .bind(spec.closes_at)
            .bind(code_key)
            .bind(spec.decide.as_str())
            .bind(room.map(|r| r.admit_per_second as i32))
            .bind(room.map(|r| r.pass_secs as i32))
            .bind(room.map(|r| r.prequeue_secs as i32))
            .bind(seed)
            .bind(room.map_or(0, |r| i16::from(r.proof_of_work_bits)))
            .bind(i16::from(spec.shards.get()))
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => Ok(StoredCampaign {
                    spec: spec.clone(),
                    issued: 0,
                    code_key: code_key.to_owned(),
                    admission_paused: false,
                }),
                Err(sqlx::Error::Database(e)) if e.constraint() == Some("campaigns_pkey") => {
                    Err(StoreError::Conflict)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The campaign, or `None`.
    pub async fn campaign(&self, id: &CampaignId) -> Result<Option<StoredCampaign>, StoreError> {
        self.bounded(async {
            let row: Option<CampaignRow> = sqlx::query_as(&format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| r.into_stored()).transpose()
        })
        .await
    }

    /// Ids of the campaigns whose window has not ended, or ended less than `grace` ago: the ones
    /// that can still have requests queued or decisions unpersisted in Redis. Workers check each
    /// is in Redis's registry (see `Queue::register_ready`).
    pub async fn campaigns_in_play(
        &self,
        grace: std::time::Duration,
    ) -> Result<Vec<CampaignId>, StoreError> {
        self.bounded(async {
            let grace = chrono::Duration::from_std(grace).map_err(StoreError::corrupt)?;
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM campaigns WHERE closes_at IS NULL OR closes_at > now() - $1
                 ORDER BY id",
            )
            .bind(grace)
            .fetch_all(&self.pool)
            .await?;
            ids.into_iter()
                .map(|id| CampaignId::parse(id).map_err(StoreError::corrupt))
                .collect()
        })
        .await
    }

    /// What a Redis warm-up of the campaign needs, or `None` when it does not exist.
    pub async fn campaign_snapshot(
        &self,
        id: &CampaignId,
    ) -> Result<Option<CampaignSnapshot>, StoreError> {
        self.bounded(async {
            let Some(SnapshotRow {
                row,
                epoch,
                prequeue_seed,
            }) = sqlx::query_as::<_, SnapshotRow>(&format!(
                "SELECT {CAMPAIGN_COLUMNS}, epoch, prequeue_seed FROM campaigns WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let max_seq = high_seq(&self.pool, id).await?;
            let stored = row.into_stored()?;
            let stock = stored.spec.stock.get();
            let waiting_room = match (stored.spec.waiting_room, prequeue_seed) {
                (None, _) => None,
                (Some(room), Some(seed)) => Some(WaitingRoomState {
                    room,
                    paused: stored.admission_paused,
                    prequeue_seed: seed,
                }),
                (Some(_), None) => {
                    return Err(StoreError::corrupt(format!(
                        "campaign {id} has no pre-queue seed"
                    )));
                }
            };
            Ok(Some(CampaignSnapshot {
                name: stored.spec.name.as_str().to_owned(),
                stock,
                opens_at: stored.spec.opens_at,
                closes_at: stored.spec.closes_at,
                issued: stored.issued,
                next_seq: max_seq.unwrap_or(-1) + 1 + stock as i64,
                code_key: stored.code_key,
                epoch,
                decide: stored.spec.decide,
                waiting_room,
                shards: stored.spec.shards,
            }))
        })
        .await
    }

    /// Claims the next rebuild epoch of the campaign if it still is `seen` (see
    /// [`CampaignRecord::begin_rebuild`]). One `UPDATE`: it takes the campaign row's lock, so it
    /// waits for a persist transaction in flight (which holds that lock, see [`crate::persist`])
    /// and every persist after it reads the new epoch.
    pub async fn begin_rebuild(
        &self,
        id: &CampaignId,
        seen: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.bounded(async {
            Ok(sqlx::query_scalar(
                "UPDATE campaigns SET epoch = epoch + 1 WHERE id = $1 AND epoch = $2 RETURNING epoch",
            )
            .bind(id.as_str())
            .bind(seen)
            .fetch_optional(&self.pool)
            .await?)
        })
        .await
    }

    /// The campaign's rebuild epoch, `None` when the record does not hold it.
    pub async fn epoch(&self, id: &CampaignId) -> Result<Option<i64>, StoreError> {
        self.bounded(async {
            Ok(
                sqlx::query_scalar("SELECT epoch FROM campaigns WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
        .await
    }

    /// The highest coupon sequence number the campaign has recorded (`None` before its first
    /// issued row). Redis's next sequence number must exceed it; when it does not, Redis is
    /// behind the record. One index entry (`requests_campaign_coupon_seq`), not a scan.
    pub async fn recorded_high_seq(&self, id: &CampaignId) -> Result<Option<i64>, StoreError> {
        self.bounded(high_seq(&self.pool, id)).await
    }

    /// One page of the campaign's coupon holders, in user order, after `after`.
    pub async fn holders_page(
        &self,
        id: &CampaignId,
        after: Option<&UserId>,
        limit: i64,
    ) -> Result<Vec<(UserId, RequestId)>, StoreError> {
        self.bounded(async {
            let rows: Vec<(String, Uuid)> = sqlx::query_as(
                "SELECT user_id, request_id FROM requests
                 WHERE campaign_id = $1 AND status = 'issued' AND ($2::text IS NULL OR user_id > $2)
                 ORDER BY user_id LIMIT $3",
            )
            .bind(id.as_str())
            .bind(after.map(UserId::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(user, request)| {
                    Ok((
                        UserId::from_record(user).map_err(StoreError::corrupt)?,
                        request.into(),
                    ))
                })
                .collect()
        })
        .await
    }
}

async fn high_seq(pool: &sqlx::PgPool, id: &CampaignId) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT max(coupon_seq) FROM requests WHERE campaign_id = $1 AND coupon_seq IS NOT NULL",
    )
    .bind(id.as_str())
    .fetch_one(pool)
    .await?)
}

/// Holders read per page when Redis is rebuilt.
const HOLDERS_PAGE: i64 = 5_000;

impl CampaignRecord for Store {
    type Error = StoreError;

    async fn snapshot(
        &self,
        campaign: &CampaignId,
    ) -> Result<Option<CampaignSnapshot>, StoreError> {
        self.campaign_snapshot(campaign).await
    }

    async fn begin_rebuild(
        &self,
        campaign: &CampaignId,
        seen: i64,
    ) -> Result<Option<i64>, StoreError> {
        Store::begin_rebuild(self, campaign, seen).await
    }

    async fn holders_after(
        &self,
        campaign: &CampaignId,
        after: Option<&UserId>,
    ) -> Result<Vec<(UserId, RequestId)>, StoreError> {
        self.holders_page(campaign, after, HOLDERS_PAGE).await
    }
}
