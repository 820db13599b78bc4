//! What Redis holds for a campaign, field by field, for `rushline reconcile` to compare with the
//! record. Reads only; the repair is a rebuild ([`Queue::invalidate_for_rebuild`] + warm-up).

use std::collections::HashMap;

use rushline_domain::CampaignId;

use crate::keys::meta_field;
use crate::{Queue, QueueError};

/// A campaign's state as Redis holds it (every field `None` when Redis holds none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisCampaign {
    /// The `ready` flag is "1": accepts and decides.
    pub ready: bool,
    /// Listed in the registry workers sweep.
    pub registered: bool,
    /// Stock.
    pub stock: Option<i64>,
    /// Coupons left.
    pub remaining: Option<i64>,
    /// Coupons issued.
    pub issued: Option<i64>,
    /// Next coupon sequence number.
    pub seq: Option<i64>,
    /// Window start, ms since the epoch.
    pub opens_ms: Option<i64>,
    /// Window end, ms since the epoch (`None`: never, or not held).
    pub closes_ms: Option<i64>,
    /// Rebuild epoch of the state (`None`: not held, or built before epochs existed).
    pub epoch: Option<i64>,
    /// Decided batches not yet persisted.
    pub log_entries: u64,
    /// Requests waiting to be decided.
    pub queued: u64,
}

impl Queue {
    /// Reads `campaign`'s fields, registry membership and pipeline lengths.
    pub async fn redis_campaign(&self, campaign: &CampaignId) -> Result<RedisCampaign, QueueError> {
        let keys = self.keys.campaign(campaign);
        let registry = self.keys.registry();
        let id = campaign.as_str();
        // The campaign's keys share a slot, so they go in one pipeline; the registry does not
        // (on a cluster it lives in another slot), so it is asked beside it.
        let (fields, log_entries, queued): (Vec<Option<String>>, u64, u64) = self
            .run(|mut conn| async move {
                Ok(redis::pipe()
                    .cmd("HMGET")
                    .arg(&keys.meta)
                    .arg(&[
                        meta_field::READY,
                        meta_field::STOCK,
                        meta_field::REMAINING,
                        meta_field::ISSUED,
                        meta_field::SEQ,
                        meta_field::OPENS,
                        meta_field::CLOSES,
                        meta_field::EPOCH,
                    ])
                    .cmd("XLEN")
                    .arg(&keys.log)
                    .cmd("LLEN")
                    .arg(&keys.queue)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        let registered: bool = self
            .run(|mut conn| async move {
                Ok(redis::cmd("SISMEMBER")
                    .arg(&registry)
                    .arg(id)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        let num = |i: usize| -> Option<i64> {
            fields
                .get(i)
                .and_then(|v| v.as_deref())
                .and_then(|v| v.parse().ok())
        };
        Ok(RedisCampaign {
            ready: fields.first().and_then(|v| v.as_deref()) == Some("1"),
            registered,
            stock: num(1),
            remaining: num(2),
            issued: num(3),
            seq: num(4),
            opens_ms: num(5),
            closes_ms: num(6),
            epoch: num(7),
            log_entries,
            queued,
        })
    }

    /// Every coupon holder Redis knows for `campaign`, user id → request id (`HSCAN`, so a
    /// large campaign never blocks Redis).
    pub async fn redis_holders(
        &self,
        campaign: &CampaignId,
    ) -> Result<HashMap<String, String>, QueueError> {
        let key = self.keys.campaign(campaign).holders;
        let mut holders = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            let key = key.as_str();
            let (next, page): (u64, Vec<(String, String)>) = self
                .run(|mut conn| async move {
                    Ok(redis::cmd("HSCAN")
                        .arg(key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(5_000)
                        .query_async(&mut conn)
                        .await?)
                })
                .await?;
            holders.extend(page);
            if next == 0 {
                return Ok(holders);
            }
            cursor = next;
        }
    }
}
