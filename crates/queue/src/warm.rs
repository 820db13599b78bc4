//! Warm-up: (re)building a campaign's Redis state from PostgreSQL.
//!
//! Runs when Redis has no state for a campaign: just after it was created, or after Redis lost
//! its data. Counts come from PostgreSQL's issued rows, never from a stale counter, and holders
//! are reloaded from issued rows, so guarantees 1–3 survive an empty Redis. Several processes may
//! try at once; `warm_begin.lua` lets one own it (with a lease), the others wait for it.

use std::time::Duration;

use rushline_domain::{CampaignId, CampaignRecord};
use uuid::Uuid;

use crate::{PERSIST_GROUP, Queue, QueueError, scripts};

/// A warm-up's owner must finish within this lease or another process takes over.
const LEASE: Duration = Duration::from_secs(30);
/// How long a process waits for another's warm-up before giving up.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(10);

/// How a warm-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmed {
    /// Redis now holds the campaign (built here or by another process).
    Ready,
    /// PostgreSQL has no such campaign.
    NotFound,
}

/// A warm-up failed.
#[derive(Debug, thiserror::Error)]
pub enum WarmError<E: std::error::Error + 'static> {
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Reading PostgreSQL failed.
    #[error("reading the campaign from PostgreSQL: {0}")]
    Source(#[source] E),
    /// Another process's warm-up did not finish in time.
    #[error("campaign warm-up by another process did not finish in time")]
    Busy,
}

impl Queue {
    /// Makes sure `campaign` is warm in Redis, rebuilding it from `record` if needed.
    pub async fn warm<R: CampaignRecord>(
        &self,
        campaign: &CampaignId,
        record: &R,
    ) -> Result<Warmed, WarmError<R::Error>> {
        let Some(snapshot) = record.snapshot(campaign).await.map_err(WarmError::Source)? else {
            return Ok(Warmed::NotFound);
        };
        // The record's key is the one Redis holds or is about to (it never changes), so codes
        // can be minted without the first `HGET`.
        self.remember_code_key(campaign, &snapshot.code_key);
        let keys = self.keys.campaign(campaign);
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let token = Uuid::new_v4().to_string();
            let mut begin = scripts::WARM_BEGIN.prepare_invoke();
            begin
                .key(&keys.meta)
                .key(&keys.holders)
                .arg(&token)
                .arg(LEASE.as_millis() as u64);
            let claimed: i64 = self
                .run(|mut conn| async move { Ok(begin.invoke_async(&mut conn).await?) })
                .await?;
            let ready = match claimed {
                0 => true,
                1 => self.build(campaign, &token, record).await?,
                _ => false,
            };
            if ready {
                self.register(campaign).await?;
                return Ok(Warmed::Ready);
            }
            // Another process owns the warm-up (or took it over from us): wait for it.
            if tokio::time::Instant::now() >= deadline {
                return Err(WarmError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Loads holders and publishes the state; `false` when ownership was lost on the way.
    async fn build<R: CampaignRecord>(
        &self,
        campaign: &CampaignId,
        token: &str,
        record: &R,
    ) -> Result<bool, WarmError<R::Error>> {
        let keys = self.keys.campaign(campaign);
        let mut after = None;
        let mut holders = 0usize;
        loop {
            let page = record
                .holders_after(campaign, after.as_ref())
                .await
                .map_err(WarmError::Source)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            holders += page.len();
            let mut chunk = scripts::WARM_HOLDERS.prepare_invoke();
            chunk
                .key(&keys.meta)
                .key(&keys.holders)
                .arg(token)
                .arg(LEASE.as_millis() as u64);
            for (user, request) in &page {
                chunk.arg(user.as_str()).arg(request.to_string());
            }
            let owned: i64 = self
                .run(|mut conn| async move { Ok(chunk.invoke_async(&mut conn).await?) })
                .await?;
            if owned != 1 {
                return Ok(false);
            }
        }
        // Read the counts after the holders: nothing is decided while the campaign is not ready,
        // so they cannot have moved in between.
        let Some(data) = record.snapshot(campaign).await.map_err(WarmError::Source)? else {
            return Ok(false);
        };
        let mut finish = scripts::WARM_FINISH.prepare_invoke();
        finish
            .key(&keys.meta)
            .key(&keys.log)
            .arg(token)
            .arg(&data.name)
            .arg(data.stock)
            .arg(data.opens_at.timestamp_millis())
            .arg(
                data.closes_at
                    .map(|t| t.timestamp_millis().to_string())
                    .unwrap_or_default(),
            )
            .arg(data.issued)
            .arg(data.next_seq)
            .arg(&data.code_key)
            .arg(PERSIST_GROUP);
        let published: i64 = self
            .run(|mut conn| async move { Ok(finish.invoke_async(&mut conn).await?) })
            .await?;
        if published == 1 {
            // The operator's account of a rebuild (after Redis lost its data, this is exactly what
            // was restored from the record).
            tracing::info!(
                campaign = %campaign,
                stock = data.stock,
                issued = data.issued,
                remaining = data.stock.saturating_sub(data.issued),
                holders,
                next_coupon_seq = data.next_seq,
                "campaign state built in Redis from PostgreSQL"
            );
        }
        Ok(published == 1)
    }

    async fn register(&self, campaign: &CampaignId) -> Result<(), QueueError> {
        let registry = self.keys.registry();
        let id = campaign.to_string();
        self.run(|mut conn| async move {
            redis::cmd("SADD")
                .arg(registry)
                .arg(id)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }
}
