//! Handing superseded decisions back to the rebuilt state (issue 10, §5).
//!
//! When Redis lost its data while a worker held a batch of decisions in memory, a warm-up may
//! have rebuilt the campaign from the record before that batch was committed. The record then
//! refuses the batch (its rebuild epoch is older, see `rushline_store::persist`), and its
//! requests — accepted, but with a decision neither the record nor the rebuilt state knows —
//! go back to the head of the campaign's queue, to be decided again (`lua/requeue.lua`).

use redis::Value;
use rushline_domain::{CampaignId, Decision};

use crate::record::{array, int};
use crate::{LogEntry, PERSIST_GROUP, Queue, QueueError, scripts};

/// What a hand-back did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Requests put back at the head of the queue.
    pub requeued: u64,
    /// Requests skipped because Redis already holds their status (an earlier hand-back).
    pub skipped: u64,
}

impl Queue {
    /// Puts the requests of `decisions` (superseded decisions the record does not hold, in the
    /// order they were first decided) back at the head of `campaign`'s queue and acknowledges
    /// `entries`, in one atomic step. Idempotent: a request whose status record exists is
    /// skipped, so running it again (a lost reply, another worker's takeover) queues nothing
    /// twice.
    pub async fn requeue_superseded(
        &self,
        campaign: &CampaignId,
        entries: &[LogEntry],
        decisions: &[Decision],
    ) -> Result<Requeued, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::REQUEUE.prepare_invoke();
        invocation
            .key(&keys.queue)
            .key(&keys.log)
            .arg(PERSIST_GROUP)
            .arg(&keys.status_prefix)
            .arg(self.keys.work_channel())
            .arg(campaign.as_str())
            .arg(entries.len());
        for entry in entries {
            invocation.arg(&entry.id);
        }
        for decision in decisions {
            invocation
                .arg(decision.request_id.to_string())
                .arg(decision.user_id.as_str());
        }
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        match array(&reply)? {
            [requeued, skipped] => Ok(Requeued {
                requeued: int(requeued)?.max(0) as u64,
                skipped: int(skipped)?.max(0) as u64,
            }),
            _ => Err(QueueError::protocol("requeue reply")),
        }
    }
}
