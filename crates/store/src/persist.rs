//! Persisting decisions: the worker's batch write, and reconciliation when the record refuses.
//!
//! One transaction per campaign batch:
//! 1. lock the campaign row (`FOR UPDATE`) and read its room (`stock - issued`);
//! 2. when the batch issues more than the room, find which of its rows are already recorded
//!    (a re-persist after a crash) and turn issued decisions past the room into `sold_out`;
//! 3. one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING`;
//! 4. rows that did not insert are either recorded already (fine — unless the record holds a
//!    different status, which means an earlier rollback must be re-applied to Redis) or were
//!    refused by a unique index: the user holds a coupon already → `duplicate`, inserted so;
//!    or the code is recorded for another request — Redis handed out a sequence number twice,
//!    so its state is behind the record (it came back older: a failover to a lagging replica, a
//!    restored snapshot). Such a decision is no one's final status: recording it `sold_out`
//!    would refuse a user while the record has room and strand that stock. The transaction is
//!    dropped, the campaign's epoch moved past the batch's ([`StoreError::Superseded`]), and
//!    the worker hands the batch's requests back to be decided by the rebuilt state.
//!
//! Step 1 also compares the batch's rebuild epoch (stamped on its log entry) with the campaign's:
//! an older one means a warm-up rebuilt Redis from the record after the batch was decided,
//! without it (Redis lost its data while a worker held the batch in memory). Committing it now
//! would put decisions in the record that the rebuilt holders and `remaining` never counted, so
//! the transaction commits nothing and fails with [`StoreError::Superseded`], naming the
//! decisions the record does not hold. The warm-up bumps the epoch under the same row lock
//! (`Store::begin_rebuild`), so either this transaction committed before the rebuild's reads
//! (which then see it) or it sees the new epoch.
//!
//! Every refusal is returned so the caller undoes it in Redis *after* commit; that undo is
//! idempotent and is re-derived from the record if the caller dies before it (step 4).
//! In normal operation Redis never makes a decision the record refuses, and steps 2 and 4 are a
//! single cheap comparison each.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, CouponCode, Decision, RequestId, RequestStatus, UserId};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Store, StoreError};

/// A decision the record refused; Redis must be brought in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The request.
    pub request_id: RequestId,
    /// Its user.
    pub user_id: UserId,
    /// The code Redis had issued it.
    pub coupon_code: CouponCode,
    /// The sequence number the code was minted from, as the decision carried it (Redis's status
    /// record may name the coupon by either; the undo needs both).
    pub coupon_seq: Option<i64>,
    /// The status the record holds instead (`duplicate` or `sold_out`).
    pub recorded: RequestStatus,
    /// The request holding the user's coupon in the record, if any.
    pub holder: Option<RequestId>,
}

/// What a persist call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Rows newly written (the rest were recorded already).
    pub inserted: u64,
    /// Decisions the record refused.
    pub refused: Vec<Refusal>,
}

/// A row about to be inserted.
struct Row<'a> {
    decision: &'a Decision,
    status: RequestStatus,
}

impl Store {
    /// Records `decisions` (all of `campaign`) in one transaction. Idempotent: persisting the same
    /// batch again inserts nothing and refuses nothing new — so a transaction cut short by the
    /// store's timeout (rolled back when dropped) is simply retried. For decisions that carry no
    /// rebuild epoch (log entries written before epochs existed); see [`Store::persist_at`].
    pub async fn persist(
        &self,
        campaign: &CampaignId,
        decisions: &[Decision],
    ) -> Result<Persisted, StoreError> {
        self.persist_at(campaign, None, decisions).await
    }

    /// As [`Store::persist`], for decisions made by a Redis state of rebuild epoch `epoch`
    /// (`None`: unstamped, accepted as before). Fails with [`StoreError::Superseded`], committing
    /// nothing, when the campaign's epoch is newer (see the module doc).
    pub async fn persist_at(
        &self,
        campaign: &CampaignId,
        epoch: Option<i64>,
        decisions: &[Decision],
    ) -> Result<Persisted, StoreError> {
        self.bounded(self.persist_unbounded(campaign, epoch, decisions))
            .await
    }

    /// Of `decisions`, those the record does not hold, in their order: the requests of
    /// superseded decisions that go back to the queue (see [`StoreError::Superseded`]).
    pub async fn unrecorded(&self, decisions: &[Decision]) -> Result<Vec<Decision>, StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await?;
            unrecorded(&mut conn, decisions).await
        })
        .await
    }

    async fn persist_unbounded(
        &self,
        campaign: &CampaignId,
        epoch: Option<i64>,
        decisions: &[Decision],
    ) -> Result<Persisted, StoreError> {
        if decisions.is_empty() {
            return Ok(Persisted::default());
        }
        let mut tx = self.pool.begin().await?;
        let (stock, issued, record_epoch): (i64, i64, i64) =
            sqlx::query_as("SELECT stock, issued, epoch FROM campaigns WHERE id = $1 FOR UPDATE")
                .bind(campaign.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::UnknownCampaign(campaign.clone()))?;
        if let Some(entry_epoch) = epoch
            && entry_epoch < record_epoch
        {
            let unrecorded = unrecorded(&mut tx, decisions).await?;
            // Dropping the transaction rolls it back: nothing of the batch commits.
            return Err(StoreError::Superseded {
                entry_epoch,
                record_epoch,
                unrecorded,
            });
        }
        let mut room = stock - issued;

        let issuing = decisions
            .iter()
            .filter(|d| d.status == RequestStatus::Issued)
            .count() as i64;
        let recorded: HashSet<Uuid> = if issuing > room {
            let ids: Vec<Uuid> = decisions.iter().map(|d| d.request_id.as_uuid()).collect();
            sqlx::query_scalar("SELECT request_id FROM requests WHERE request_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };

        let mut refused = Vec::new();
        let mut rows = Vec::with_capacity(decisions.len());
        for decision in decisions {
            let mut status = decision.status;
            if status == RequestStatus::Issued && !recorded.contains(&decision.request_id.as_uuid())
            {
                if room > 0 {
                    room -= 1;
                } else {
                    status = RequestStatus::SoldOut;
                    refused.push(refusal(decision, RequestStatus::SoldOut, None)?);
                }
            }
            rows.push(Row { decision, status });
        }

        let inserted_ids = insert(&mut tx, campaign, &rows).await?;
        let mut inserted = inserted_ids.len() as u64;
        if inserted_ids.len() < rows.len() {
            let clashes = if epoch.is_some() {
                Clashes::HandBack
            } else {
                Clashes::SoldOut
            };
            match reconcile(&mut tx, campaign, &rows, &inserted_ids, clashes).await? {
                Reconciled::Settled {
                    inserted: more,
                    refused: refusals,
                } => {
                    inserted += more;
                    refused.extend(refusals);
                }
                Reconciled::Behind => {
                    // Nothing of the batch commits: dropping the transaction rolls it back.
                    drop(tx);
                    return Err(self
                        .supersede_behind(campaign, record_epoch, decisions)
                        .await);
                }
            }
        }
        tx.commit().await?;
        Ok(Persisted { inserted, refused })
    }

    /// The batch's Redis state (epoch `entry_epoch`) handed out a code the record holds for
    /// another request: it is behind the record. Moves the campaign's epoch past it (unless
    /// another process did already), so this batch and every other entry that state decided are
    /// refused as superseded and decided again by a state rebuilt from the record, which then
    /// counts every recorded holder and sequence number. Same compare-and-set as a warm-up's
    /// [`Store::begin_rebuild`]: a warm-up that read the old epoch finds it moved and retries.
    async fn supersede_behind(
        &self,
        campaign: &CampaignId,
        entry_epoch: i64,
        decisions: &[Decision],
    ) -> StoreError {
        let superseded = async {
            let mut tx = self.pool.begin().await?;
            let moved: Option<i64> = sqlx::query_scalar(
                "UPDATE campaigns SET epoch = epoch + 1 WHERE id = $1 AND epoch = $2 RETURNING epoch",
            )
            .bind(campaign.as_str())
            .bind(entry_epoch)
            .fetch_optional(&mut *tx)
            .await?;
            let record_epoch = match moved {
                Some(epoch) => epoch,
                None => sqlx::query_scalar("SELECT epoch FROM campaigns WHERE id = $1")
                    .bind(campaign.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::UnknownCampaign(campaign.clone()))?,
            };
            let unrecorded = unrecorded(&mut tx, decisions).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(StoreError::Superseded {
                entry_epoch,
                record_epoch,
                unrecorded,
            })
        };
        match superseded.await {
            Ok(error) | Err(error) => error,
        }
    }
}

/// What to do with an issued decision whose code the record holds for another request.
#[derive(Clone, Copy)]
enum Clashes {
    /// Hand the batch back ([`Reconciled::Behind`]): decisions stamped with an epoch.
    HandBack,
    /// Record it `sold_out`: unstamped decisions (written before epochs existed), which cannot be
    /// handed back.
    SoldOut,
}

/// What sorting out the rows that did not insert found.
enum Reconciled {
    /// Rows inserted with the status the record supports, and the refusals to undo in Redis.
    Settled {
        inserted: u64,
        refused: Vec<Refusal>,
    },
    /// An issued decision's code is recorded for another request: the state that decided the
    /// batch is behind the record.
    Behind,
}

/// Of `decisions`, those the record does not hold, in their order. A superseded batch may have
/// been committed already (before the rebuild) by a persist whose acknowledgement was lost:
/// those rows stand, and only the rest are decided again.
async fn unrecorded(
    conn: &mut sqlx::PgConnection,
    decisions: &[Decision],
) -> Result<Vec<Decision>, StoreError> {
    let ids: Vec<Uuid> = decisions.iter().map(|d| d.request_id.as_uuid()).collect();
    let recorded: HashSet<Uuid> =
        sqlx::query_scalar("SELECT request_id FROM requests WHERE request_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    Ok(decisions
        .iter()
        .filter(|d| !recorded.contains(&d.request_id.as_uuid()))
        .cloned()
        .collect())
}

fn refusal(
    decision: &Decision,
    recorded: RequestStatus,
    holder: Option<RequestId>,
) -> Result<Refusal, StoreError> {
    Ok(Refusal {
        request_id: decision.request_id,
        user_id: decision.user_id.clone(),
        coupon_code: decision
            .coupon_code
            .clone()
            .ok_or_else(|| StoreError::corrupt("issued decision without a code"))?,
        coupon_seq: decision.coupon_seq,
        recorded,
        holder,
    })
}

/// One statement for the whole batch; returns the ids actually inserted.
async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    campaign: &CampaignId,
    rows: &[Row<'_>],
) -> Result<HashSet<Uuid>, StoreError> {
    let n = rows.len();
    let (mut ids, mut users, mut statuses, mut codes, mut seqs, mut times) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::<DateTime<Utc>>::with_capacity(n),
    );
    for row in rows {
        let issued = row.status == RequestStatus::Issued;
        ids.push(row.decision.request_id.as_uuid());
        users.push(row.decision.user_id.as_str());
        statuses.push(row.status.as_str());
        codes.push(if issued {
            row.decision.coupon_code.as_ref().map(CouponCode::as_str)
        } else {
            None
        });
        seqs.push(if issued {
            row.decision.coupon_seq
        } else {
            None
        });
        times.push(row.decision.decided_at);
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO requests (request_id, campaign_id, user_id, status, coupon_code, coupon_seq, decided_at)
         SELECT r.id, $1, r.user_id, r.status, r.code, r.seq, r.decided_at
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[])
              AS r(id, user_id, status, code, seq, decided_at)
         ON CONFLICT DO NOTHING
         RETURNING request_id",
    )
    .bind(campaign.as_str())
    .bind(&ids)
    .bind(&users)
    .bind(&statuses)
    .bind(&codes)
    .bind(&seqs)
    .bind(&times)
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Sorts out rows that did not insert (see the module doc, step 4).
async fn reconcile(
    tx: &mut Transaction<'_, Postgres>,
    campaign: &CampaignId,
    rows: &[Row<'_>],
    inserted: &HashSet<Uuid>,
    clashes: Clashes,
) -> Result<Reconciled, StoreError> {
    let missing: Vec<&Row<'_>> = rows
        .iter()
        .filter(|r| !inserted.contains(&r.decision.request_id.as_uuid()))
        .collect();
    let ids: Vec<Uuid> = missing
        .iter()
        .map(|r| r.decision.request_id.as_uuid())
        .collect();
    let found: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT request_id, status FROM requests WHERE request_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let users: Vec<&str> = missing
        .iter()
        .map(|r| r.decision.user_id.as_str())
        .collect();
    let holders: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
        "SELECT user_id, request_id FROM requests
         WHERE campaign_id = $1 AND status = 'issued' AND user_id = ANY($2)",
    )
    .bind(campaign.as_str())
    .bind(&users)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();

    let mut refused = Vec::new();
    let mut converted = Vec::new();
    for row in missing {
        let decision = row.decision;
        let holder = holders
            .get(decision.user_id.as_str())
            .map(|&h| RequestId::from(h));
        match found.get(&decision.request_id.as_uuid()) {
            Some(status) => {
                // Recorded already. If Redis issued it but the record says otherwise, an earlier
                // persist refused it and its Redis undo may not have run: report it again.
                let status: RequestStatus = status.parse().map_err(StoreError::corrupt)?;
                if decision.status == RequestStatus::Issued && status != RequestStatus::Issued {
                    refused.push(refusal(decision, status, holder)?);
                }
            }
            None => {
                // Refused by a unique index: the user holds a coupon, or (after Redis lost data)
                // the code is taken.
                let recorded = if holder.is_some() {
                    RequestStatus::Duplicate
                } else if let Clashes::HandBack = clashes {
                    return Ok(Reconciled::Behind);
                } else {
                    RequestStatus::SoldOut
                };
                refused.push(refusal(decision, recorded, holder)?);
                converted.push(Row {
                    decision,
                    status: recorded,
                });
            }
        }
    }
    let inserted = if converted.is_empty() {
        0
    } else {
        insert(tx, campaign, &converted).await?.len() as u64
    };
    Ok(Reconciled::Settled { inserted, refused })
}
