//! A campaign's Redis state copied at one moment and put back later: what a replica that stopped
//! receiving its master's writes holds when a failover promotes it. For tests of a state that
//! came back *older* than the record, on one Redis (no cluster needed).

use rushline_domain::{CampaignId, RequestId};
use rushline_queue::Queue;

/// The campaign's keys as they were when [`LaggingReplica::copy`] ran.
pub struct LaggingReplica {
    queue: Queue,
    campaign: CampaignId,
    dumps: Vec<(String, Option<Vec<u8>>)>,
}

impl LaggingReplica {
    /// Copies `campaign`'s state, queue, holders, decision log and persister flag (`DUMP`).
    pub async fn copy(queue: &Queue, campaign: &CampaignId) -> anyhow::Result<Self> {
        let keys = queue.keys().campaign(campaign);
        let mut redis = queue.connection().await?;
        let mut dumps = Vec::new();
        for key in [keys.meta, keys.queue, keys.holders, keys.log, keys.dirty] {
            let dump: Option<Vec<u8>> =
                redis::cmd("DUMP").arg(&key).query_async(&mut redis).await?;
            dumps.push((key, dump));
        }
        Ok(Self {
            queue: queue.clone(),
            campaign: campaign.clone(),
            dumps,
        })
    }

    /// The master is gone and this copy takes over: the campaign's keys go back to it (`RESTORE`,
    /// or deleted where the copy had none), and the status records of `lost` requests (written
    /// after the copy) are gone.
    pub async fn take_over(&self, lost: &[RequestId]) -> anyhow::Result<()> {
        let mut redis = self.queue.connection().await?;
        for (key, dump) in &self.dumps {
            match dump {
                Some(dump) => {
                    redis::cmd("RESTORE")
                        .arg(key)
                        .arg(0)
                        .arg(dump.as_slice())
                        .arg("REPLACE")
                        .query_async::<()>(&mut redis)
                        .await?
                }
                None => {
                    redis::cmd("DEL")
                        .arg(key)
                        .query_async::<()>(&mut redis)
                        .await?
                }
            }
        }
        let prefix = self.queue.keys().campaign(&self.campaign).status_prefix;
        for id in lost {
            redis::cmd("DEL")
                .arg(format!("{prefix}{id}"))
                .query_async::<()>(&mut redis)
                .await?;
        }
        Ok(())
    }
}
