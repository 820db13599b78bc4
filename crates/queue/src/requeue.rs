//! Handing superseded decisions back to the rebuilt state (issue 10, §5).
//!
//! When Redis lost its data while a worker held a batch of decisions in memory, a warm-up may
//! have rebuilt the campaign from the record before that batch was committed. The record then
//! refuses the batch (its rebuild epoch is older, see `rushline_store::persist`), and its
//! requests — accepted, but with a decision neither the record nor the rebuilt state knows —
//! go back to the head of the campaign's queue, to be decided again (`lua/requeue.lua`).

use redis::Value;
use rushline_domain::{CampaignId, Decision};

use crate::decision_log::{entry_id, parse_entry};
use crate::record::{array, int, status_code};
use crate::{LogEntry, PERSIST_GROUP, Queue, QueueError, scripts};

/// What a hand-back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeued {
    /// The requests went back to the queue and the entries were acknowledged.
    Done {
        /// Requests put back at the head of the queue.
        requeued: u64,
        /// Requests skipped because Redis holds a newer status for them (an earlier hand-back).
        skipped: u64,
    },
    /// The campaign's current Redis state is older than the record's epoch (Redis came back
    /// older, not empty): it was taken out of service and nothing else was done. Warm the
    /// campaign (a rebuild from the record) and hand back again.
    StateSuperseded,
}

/// Log entries read per `XRANGE` when collecting a superseded state's entries.
const LOG_PAGE: usize = 512;

impl Queue {
    /// Every entry of `campaign`'s decision log made by a Redis state older than `record_epoch`,
    /// in log order — pending on any worker or on none. A hand-back gives back all of them at
    /// once, in the order they were decided, rather than each worker its own batches whenever it
    /// meets them: a batch handed back after the rebuilt state had decided later requests would
    /// put its requests behind those (first come, first served broken). Complete only once the
    /// superseded state is out of service (it writes no more entries). Entries without an epoch
    /// (written before epochs existed) and unreadable ones are left to the persist path. Empty
    /// when Redis lost the campaign (its code key, and the log with it).
    pub async fn superseded_log(
        &self,
        campaign: &CampaignId,
        record_epoch: i64,
    ) -> Result<Vec<LogEntry>, QueueError> {
        // The code key lives in the campaign's hash, in the log's slot: a Redis without it lost
        // the log with it, and only the caller's own entries are left to hand back.
        let Some(code_key) = self.code_key(campaign).await? else {
            return Ok(Vec::new());
        };
        let log = self.keys.campaign(campaign).log;
        let mut superseded = Vec::new();
        let mut start = "-".to_owned();
        loop {
            let (log, from) = (log.as_str(), start.as_str());
            let reply: Value = self
                .run(|mut conn| async move {
                    Ok(redis::cmd("XRANGE")
                        .arg(log)
                        .arg(from)
                        .arg("+")
                        .arg("COUNT")
                        .arg(LOG_PAGE)
                        .query_async(&mut conn)
                        .await?)
                })
                .await?;
            let items = array(&reply)?;
            for item in items {
                if let Ok(entry) = parse_entry(item, &code_key)?
                    && entry.epoch.is_some_and(|e| e < record_epoch)
                {
                    superseded.push(entry);
                }
            }
            match items.last() {
                Some(last) if items.len() == LOG_PAGE => start = format!("({}", entry_id(last)?),
                _ => return Ok(superseded),
            }
        }
    }

    /// Puts the requests of `decisions` (superseded decisions the record does not hold, in the
    /// order they were first decided) back at the head of `campaign`'s queue and acknowledges
    /// `entries`, in one atomic step (`lua/requeue.lua`). Idempotent: a request whose status
    /// record is no longer the superseded decision's own (queued or decided again since) is
    /// skipped, so running it again (a lost reply, another worker's takeover) queues nothing
    /// twice. `record_epoch` is the record's rebuild epoch that superseded them.
    pub async fn requeue_superseded(
        &self,
        campaign: &CampaignId,
        record_epoch: i64,
        entries: &[LogEntry],
        decisions: &[Decision],
    ) -> Result<Requeued, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::REQUEUE.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.queue)
            .key(&keys.log)
            .arg(PERSIST_GROUP)
            .arg(&keys.status_prefix)
            .arg(self.keys.work_channel())
            .arg(campaign.as_str())
            .arg(record_epoch)
            .arg(entries.len());
        for entry in entries {
            invocation.arg(&entry.id);
        }
        for decision in decisions {
            invocation
                .arg(decision.request_id.to_string())
                .arg(decision.user_id.as_str())
                .arg(decided_record(campaign, decision));
        }
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        match array(&reply)? {
            [requeued, skipped] => Ok(Requeued::Done {
                requeued: int(requeued)?.max(0) as u64,
                skipped: int(skipped)?.max(0) as u64,
            }),
            [stale] if int(stale)? == -1 => Ok(Requeued::StateSuperseded),
            _ => Err(QueueError::protocol("requeue reply")),
        }
    }
}

/// The status record `decide.lua` / `accept.lua` wrote for `decision`:
/// "status\tcampaign\tuser\tseq\tms".
fn decided_record(campaign: &CampaignId, decision: &Decision) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        status_code(decision.status),
        campaign,
        decision.user_id.as_str(),
        decision
            .coupon_seq
            .map(|seq| seq.to_string())
            .unwrap_or_default(),
        decision.decided_at.timestamp_millis()
    )
}
