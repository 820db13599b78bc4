//! Operator actions on a warm campaign: close it now, raise its stock, read its pipeline.
//!
//! PostgreSQL is changed first and these calls bring Redis to what it records (see each script's
//! header), so Redis never promises more than the record allows and a crash between the two steps
//! is repaired by the next call or by a rebuild.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;
use rushline_domain::{CampaignId, timefmt};

use crate::record::{array, int, text};
use crate::{Queue, QueueError, scripts};

/// What `close.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Redis now refuses new requests from `closes_at` on.
    Closed {
        /// Window start as Redis now holds it.
        opens_at: DateTime<Utc>,
        /// Window end as Redis now holds it.
        closes_at: DateTime<Utc>,
    },
    /// The campaign is not warm in Redis: warm it (the record already holds the close), retry.
    NotWarm,
}

/// What `add_stock.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockOutcome {
    /// Redis's stock is now at least the target.
    Raised {
        /// Stock as Redis now holds it.
        stock: u64,
        /// Coupons left as Redis now holds them.
        remaining: u64,
    },
    /// The campaign is not warm in Redis: warm it (the record already holds the stock), retry.
    NotWarm,
    /// Refused: the campaign has closed.
    Closed,
    /// Refused: every coupon is taken; more stock now would break first come, first served.
    SoldOut,
}

/// How many requests ended in each refusal, counted by Redis as it decided them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalTally {
    /// Decided `sold_out`.
    pub sold_out: u64,
    /// Decided `duplicate`.
    pub duplicate: u64,
}

/// A campaign's pipeline as Redis holds it, taken in one atomic read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStats {
    /// Whether the campaign is warm (when not, the counters below are zero).
    pub warm: bool,
    /// Stock as Redis holds it.
    pub stock: u64,
    /// Coupons not yet issued.
    pub remaining: u64,
    /// Coupons issued.
    pub issued: u64,
    /// Refusals by outcome; `None` when Redis does not keep them for this campaign (it was
    /// rebuilt from a record that already held decisions): count PostgreSQL's rows instead.
    pub refusals: Option<RefusalTally>,
    /// Requests waiting to be decided.
    pub queued: u64,
    /// Decided batches not yet acknowledged as persisted.
    pub log_entries: u64,
    /// Age of the oldest of those batches; `None` when everything is persisted.
    pub oldest_unpersisted: Option<Duration>,
}

impl Queue {
    /// Closes `campaign` in Redis at `closes_at` (with `opens_at` as the record has it after the
    /// close). Idempotent; see `lua/close.lua`.
    pub async fn close_campaign(
        &self,
        campaign: &CampaignId,
        opens_at: DateTime<Utc>,
        closes_at: DateTime<Utc>,
    ) -> Result<CloseOutcome, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::CLOSE.prepare_invoke();
        invocation
            .key(&keys.meta)
            .arg(closes_at.timestamp_millis())
            .arg(opens_at.timestamp_millis());
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        let fields = array(&reply)?;
        let time = |i: usize| -> Result<DateTime<Utc>, QueueError> {
            let ms = int(fields
                .get(i)
                .ok_or_else(|| QueueError::protocol("close reply"))?)?;
            timefmt::from_millis(ms).ok_or_else(|| QueueError::protocol("close reply time"))
        };
        match fields.first().map(text).transpose()? {
            Some("M") => Ok(CloseOutcome::NotWarm),
            Some("OK") => Ok(CloseOutcome::Closed {
                opens_at: time(1)?,
                closes_at: time(2)?,
            }),
            _ => Err(QueueError::protocol(format!("close reply {reply:?}"))),
        }
    }

    /// Raises `campaign`'s stock in Redis to `target`, the stock PostgreSQL records after an
    /// operator's addition. Idempotent and order-independent; see `lua/add_stock.lua`.
    pub async fn raise_stock(
        &self,
        campaign: &CampaignId,
        target: u64,
    ) -> Result<StockOutcome, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::ADD_STOCK.prepare_invoke();
        invocation.key(&keys.meta).arg(target);
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        let fields = array(&reply)?;
        let n = |i: usize| -> Result<u64, QueueError> {
            let v = int(fields
                .get(i)
                .ok_or_else(|| QueueError::protocol("add_stock reply"))?)?;
            Ok(v.max(0) as u64)
        };
        match fields.first().map(text).transpose()? {
            Some("M") => Ok(StockOutcome::NotWarm),
            Some("C") => Ok(StockOutcome::Closed),
            Some("S") => Ok(StockOutcome::SoldOut),
            Some("OK") => Ok(StockOutcome::Raised {
                stock: n(1)?,
                remaining: n(2)?,
            }),
            _ => Err(QueueError::protocol(format!("add_stock reply {reply:?}"))),
        }
    }

    /// The campaign's pipeline in one atomic read; see `lua/stats.lua`.
    pub async fn pipeline_stats(&self, campaign: &CampaignId) -> Result<PipelineStats, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::STATS.prepare_invoke();
        invocation.key(&keys.meta).key(&keys.queue).key(&keys.log);
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        let fields = array(&reply)?;
        if fields.len() != 10 {
            return Err(QueueError::protocol(format!("stats reply {reply:?}")));
        }
        let opt = |i: usize| -> Result<Option<u64>, QueueError> {
            match &fields[i] {
                Value::Nil => Ok(None),
                v => Ok(Some(int(v)?.max(0) as u64)),
            }
        };
        let num = |i: usize| opt(i).map(Option::unwrap_or_default);
        let refusals = match (opt(4)?, opt(5)?) {
            (Some(sold_out), Some(duplicate)) => Some(RefusalTally {
                sold_out,
                duplicate,
            }),
            _ => None,
        };
        let now = num(9)?;
        Ok(PipelineStats {
            warm: num(0)? == 1,
            stock: num(1)?,
            remaining: num(2)?,
            issued: num(3)?,
            refusals,
            queued: num(6)?,
            log_entries: num(7)?,
            oldest_unpersisted: opt(8)?.map(|ms| Duration::from_millis(now.saturating_sub(ms))),
        })
    }

    /// Queue length of each campaign, for the queue-depth gauge. Campaigns whose read fails are
    /// left out (the caller counts the failure).
    pub async fn queue_depths(
        &self,
        campaigns: &[CampaignId],
    ) -> Result<Vec<(CampaignId, u64)>, QueueError> {
        if campaigns.is_empty() {
            return Ok(Vec::new());
        }
        let queues: Vec<String> = campaigns
            .iter()
            .map(|c| self.keys.campaign(c).queue)
            .collect();
        // One command per campaign: their queues live in different cluster slots.
        let lengths: Vec<u64> = self
            .each(
                queues
                    .iter()
                    .map(|queue| {
                        let mut llen = redis::cmd("LLEN");
                        llen.arg(queue);
                        llen
                    })
                    .collect(),
            )
            .await?;
        Ok(campaigns.iter().cloned().zip(lengths).collect())
    }
}
