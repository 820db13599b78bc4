//! Deciding: one `decide.lua` call pops and decides a batch of one campaign's queue.

use redis::Value;
use rushline_domain::CampaignId;

use crate::record::{array, int, text};
use crate::{Queue, QueueError, scripts};

/// What one decide call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecideOutcome {
    /// Requests taken off the queue and decided.
    pub decided: u64,
    /// Of those, issued a coupon.
    pub issued: u64,
    /// Of those, refused for lack of stock.
    pub sold_out: u64,
    /// Of those, refused because the user already holds a coupon.
    pub duplicate: u64,
    /// Requests still queued after the call.
    pub left: u64,
    /// Nothing was decided: the campaign's decision log is at its bound (PostgreSQL is behind).
    pub log_full: bool,
}

impl Queue {
    /// Decides up to `batch` requests of `campaign`, oldest first. `Ok(None)` means the campaign
    /// is not warm in Redis (warm it, then call again).
    pub async fn decide(
        &self,
        campaign: &CampaignId,
        batch: usize,
    ) -> Result<Option<DecideOutcome>, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::deciding(&scripts::DECIDE, &keys);
        invocation
            .arg(batch)
            .arg(self.keys.work_channel())
            .arg(self.keys.decided_channel())
            .arg(campaign.as_str())
            .arg(self.config.max_log_entries);
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        let fields = array(&reply)?;
        match fields.first().map(text).transpose()? {
            Some("M") => Ok(None),
            Some("F") if fields.len() == 2 => Ok(Some(DecideOutcome {
                left: int(&fields[1])?.max(0) as u64,
                log_full: true,
                ..DecideOutcome::default()
            })),
            Some("OK") if fields.len() == 6 => {
                let n = |i: usize| int(&fields[i]).map(|v| v.max(0) as u64);
                Ok(Some(DecideOutcome {
                    decided: n(1)?,
                    issued: n(2)?,
                    sold_out: n(3)?,
                    duplicate: n(4)?,
                    left: n(5)?,
                    log_full: false,
                }))
            }
            _ => Err(QueueError::protocol(format!("decide reply {reply:?}"))),
        }
    }
}
