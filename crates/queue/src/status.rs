//! Reads behind `GET /v1/requests/{id}` and `GET /v1/campaigns/{id}`, plus the campaign registry.

use chrono::{DateTime, Utc};
use rushline_domain::{
    CampaignId, DecideMode, RequestId, RequestView, ShardCount, WaitingRoom, timefmt,
};

use crate::keys::meta_field;
use crate::record::parse_status;
use crate::{Queue, QueueError};

/// A campaign's state as Redis holds it (warm campaigns only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignState {
    /// Display name.
    pub name: String,
    /// Coupons it started with.
    pub stock: u64,
    /// Coupons not yet issued.
    pub remaining: u64,
    /// Coupons issued.
    pub issued: u64,
    /// Window start.
    pub opens_at: DateTime<Utc>,
    /// Window end, if any.
    pub closes_at: Option<DateTime<Utc>>,
    /// Who decides its requests (`queued` for a state built before the mode existed).
    pub decide: DecideMode,
    /// Its waiting room's settings as Redis holds them (`admit_per_second` as an operator last
    /// set it), if it has one.
    pub waiting_room: Option<WaitingRoom>,
    /// Stock shards it was created with (1 for a state built before shards existed).
    pub shards: ShardCount,
}

impl Queue {
    /// The request's status record, if Redis still has it.
    ///
    /// An issued record holding its coupon's sequence number gets its code minted with the
    /// campaign's key (cached: no extra round trip after a process's first read of a campaign).
    /// Should Redis hold the record but no longer the key, this fails with
    /// [`QueueError::CodeKeyMissing`] rather than answering `None`: callers then read
    /// PostgreSQL as for any Redis failure, and one that finds nothing there too must not say
    /// "no such request" (the request exists; it is not persisted yet).
    pub async fn request_status(&self, id: RequestId) -> Result<Option<RequestView>, QueueError> {
        let key = self.keys.status(&id);
        let raw: Option<String> =
            self.run(|mut conn| async move {
                Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
            })
            .await?;
        match raw {
            None => Ok(None),
            Some(raw) => Ok(Some(self.status_view(parse_status(id, &raw)?).await?)),
        }
    }

    /// The campaign's state, or `None` when it is not warm in Redis.
    pub async fn campaign_state(
        &self,
        id: &CampaignId,
    ) -> Result<Option<CampaignState>, QueueError> {
        let meta = self.keys.campaign(id).meta;
        let fields: Vec<Option<String>> = self
            .run(|mut conn| async move {
                Ok(redis::cmd("HMGET")
                    .arg(meta)
                    .arg(&[
                        meta_field::READY,
                        meta_field::NAME,
                        meta_field::STOCK,
                        meta_field::REMAINING,
                        meta_field::ISSUED,
                        meta_field::OPENS,
                        meta_field::CLOSES,
                        meta_field::DECIDE,
                        meta_field::WAITING_ROOM,
                        meta_field::WR_RATE,
                        meta_field::WR_PASS,
                        meta_field::WR_PREQUEUE,
                        meta_field::WR_POW,
                        meta_field::SHARDS,
                    ])
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        let [
            ready,
            name,
            stock,
            remaining,
            issued,
            opens,
            closes,
            decide,
            waiting_room,
            rate,
            pass,
            prequeue,
            pow,
            shards,
        ] = fields.as_slice()
        else {
            return Err(QueueError::protocol("campaign state reply"));
        };
        if ready.as_deref() != Some("1") {
            return Ok(None);
        }
        let num = |v: &Option<String>| -> Result<i64, QueueError> {
            v.as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| QueueError::protocol("campaign state number"))
        };
        let time =
            |ms: i64| timefmt::from_millis(ms).ok_or_else(|| QueueError::protocol("campaign time"));
        Ok(Some(CampaignState {
            name: name.clone().unwrap_or_default(),
            stock: num(stock)?.max(0) as u64,
            remaining: num(remaining)?.max(0) as u64,
            issued: num(issued)?.max(0) as u64,
            opens_at: time(num(opens)?)?,
            closes_at: match closes.as_deref() {
                None | Some("") => None,
                Some(_) => Some(time(num(closes)?)?),
            },
            decide: match decide.as_deref() {
                None => DecideMode::Queued,
                Some(mode) => DecideMode::parse(mode)
                    .map_err(|_| QueueError::protocol(format!("campaign decide mode {mode:?}")))?,
            },
            waiting_room: match waiting_room.as_deref() {
                Some("1") => {
                    let secs = |v| Ok::<_, QueueError>(num(v)?.max(0) as u64);
                    // Absent in a state warmed before proof of work existed: none asked.
                    let bits = match pow {
                        None => 0,
                        Some(_) => secs(pow)?,
                    };
                    Some(
                        WaitingRoom::new(secs(rate)?, secs(pass)?, secs(prequeue)?)
                            .and_then(|room| room.with_proof_of_work_bits(bits))
                            .map_err(|e| QueueError::protocol(format!("waiting room: {e}")))?,
                    )
                }
                _ => None,
            },
            // Absent in a state warmed before shards existed: it had one.
            shards: match shards {
                None => ShardCount::ONE,
                Some(_) => ShardCount::new(num(shards)?.max(0) as u64)
                    .map_err(|e| QueueError::protocol(format!("campaign shards: {e}")))?,
            },
        }))
    }

    /// Requests waiting in the campaign's queue.
    pub async fn queue_len(&self, id: &CampaignId) -> Result<u64, QueueError> {
        let queue = self.keys.campaign(id).queue;
        self.run(|mut conn| async move {
            Ok(redis::cmd("LLEN").arg(queue).query_async(&mut conn).await?)
        })
        .await
    }

    /// Users holding a coupon in the campaign's Redis state.
    pub async fn holder_count(&self, id: &CampaignId) -> Result<u64, QueueError> {
        let holders = self.keys.campaign(id).holders;
        self.run(|mut conn| async move {
            Ok(redis::cmd("HLEN")
                .arg(holders)
                .query_async(&mut conn)
                .await?)
        })
        .await
    }

    /// Every campaign id workers should sweep (those warmed since Redis last lost its data).
    pub async fn campaigns(&self) -> Result<Vec<CampaignId>, QueueError> {
        let registry = self.keys.registry();
        let ids: Vec<String> = self
            .run(|mut conn| async move {
                Ok(redis::cmd("SMEMBERS")
                    .arg(registry)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(ids
            .into_iter()
            .filter_map(|id| CampaignId::parse(id).ok())
            .collect())
    }
}
