//! The decision log: a Redis Stream per campaign, read by persisters through one consumer group.
//!
//! Life of an entry: `decide.lua` (or `accept.lua`'s sold-out path) appends it → a persister
//! reads it with `XREADGROUP … >` (it is now pending on that consumer) → PostgreSQL commits it →
//! `ack.lua` acknowledges and deletes it. A consumer that dies leaves its entries pending; after
//! they have been idle for a while any persister takes them over with `XAUTOCLAIM` and persists
//! them again — harmless, because the insert is idempotent.
//!
//! Issued lines carry their coupon's sequence number; the code is minted here with the
//! campaign's key (see [`crate::codes`]), so a [`Decision`] always holds its code. The key is
//! found *before* entries are taken: a read that took entries and then failed would leave them
//! pending on this consumer, out of reach until claimed as stale.

use std::time::Duration;

use redis::Value;
use rushline_domain::{CampaignId, CouponCode, Decision, RequestId, RequestStatus, UserId};

use crate::record::{array, parse_decision, status_code, text};
use crate::{PERSIST_GROUP, Queue, QueueError, scripts};

/// One log entry: a batch of decisions.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The stream entry id (to acknowledge).
    pub id: String,
    /// The decisions it carries (empty if the entry was deleted meanwhile).
    pub decisions: Vec<Decision>,
}

/// A decision PostgreSQL refused, to be undone in Redis.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The request.
    pub request_id: RequestId,
    /// Its user.
    pub user_id: UserId,
    /// The code Redis issued it.
    pub coupon_code: CouponCode,
    /// The sequence number that code was minted from, when known (the status record may hold
    /// either; the undo matches both).
    pub coupon_seq: Option<i64>,
    /// What the record says instead: `duplicate` or `sold_out`.
    pub new_status: RequestStatus,
    /// The request that holds the user's coupon in PostgreSQL, if any.
    pub holder: Option<RequestId>,
}

impl Queue {
    /// Clears the campaign's "persisters were told" flag. Call before reading new entries, so an
    /// entry appended after the read announces itself again (no lost wake-up).
    pub async fn clear_log_flag(&self, campaign: &CampaignId) -> Result<(), QueueError> {
        let dirty = self.keys.campaign(campaign).dirty;
        self.run(|mut conn| async move {
            redis::cmd("DEL")
                .arg(dirty)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Takes up to `count` entries no consumer has seen yet; they become pending on `consumer`.
    ///
    /// Fails with [`QueueError::CodeKeyMissing`], taking nothing, while the campaign's code key
    /// is gone from Redis (a warm-up brings it back).
    pub async fn read_log(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LogEntry>, QueueError> {
        let code_key = self.require_code_key(campaign).await?;
        let log = self.keys.campaign(campaign).log;
        let reply = self
            .run(|mut conn| async move {
                let read = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(PERSIST_GROUP)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(&log)
                    .arg(">")
                    .query_async::<Value>(&mut conn)
                    .await;
                match read {
                    Err(e) if e.code() == Some("NOGROUP") => {
                        // The log was lost (e.g. Redis restarted empty): recreate the group.
                        redis::cmd("XGROUP")
                            .arg("CREATE")
                            .arg(&log)
                            .arg(PERSIST_GROUP)
                            .arg("0")
                            .arg("MKSTREAM")
                            .query_async::<Value>(&mut conn)
                            .await
                            .or_else(|e| {
                                if e.code() == Some("BUSYGROUP") {
                                    Ok(Value::Nil)
                                } else {
                                    Err(e)
                                }
                            })?;
                        Ok(Value::Nil)
                    }
                    other => Ok(other?),
                }
            })
            .await?;
        // Reply: nil, or [[log, [[id, [field, value…]]…]]].
        let Value::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for stream in &streams {
            let parts = array(stream)?;
            if let Some(items) = parts.get(1) {
                for item in array(items)? {
                    entries.push(parse_entry(item, &code_key)?);
                }
            }
        }
        Ok(entries)
    }

    /// Takes over up to `count` entries that have been pending on any consumer for at least
    /// `min_idle` (their consumer is presumed dead). Needs the code key as [`Queue::read_log`].
    pub async fn claim_stale(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<LogEntry>, QueueError> {
        let code_key = self.require_code_key(campaign).await?;
        let log = self.keys.campaign(campaign).log;
        let reply = self
            .run(|mut conn| async move {
                let claimed = redis::cmd("XAUTOCLAIM")
                    .arg(&log)
                    .arg(PERSIST_GROUP)
                    .arg(consumer)
                    .arg(min_idle.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(count)
                    .query_async::<Value>(&mut conn)
                    .await;
                match claimed {
                    Err(e) if e.code() == Some("NOGROUP") => Ok(Value::Nil),
                    other => Ok(other?),
                }
            })
            .await?;
        // Reply: [next cursor, [[id, [field, value…]]…], [deleted ids]].
        let Value::Array(parts) = reply else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        if let Some(items) = parts.get(1) {
            for item in array(items)? {
                entries.push(parse_entry(item, &code_key)?);
            }
        }
        if let Some(deleted) = parts.get(2) {
            for id in array(deleted)? {
                entries.push(LogEntry {
                    id: text(id)?.to_owned(),
                    decisions: Vec::new(),
                });
            }
        }
        Ok(entries)
    }

    /// Acknowledges `entries` (now durable in PostgreSQL) and starts the TTL of their requests'
    /// status records.
    pub async fn ack(&self, campaign: &CampaignId, entries: &[LogEntry]) -> Result<(), QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::ACK.prepare_invoke();
        invocation
            .key(&keys.log)
            .arg(PERSIST_GROUP)
            .arg(self.config.status_ttl.as_secs().max(1))
            .arg(&keys.status_prefix)
            .arg(entries.len());
        for entry in entries {
            invocation.arg(&entry.id);
        }
        for decision in entries.iter().flat_map(|e| &e.decisions) {
            invocation.arg(decision.request_id.to_string());
        }
        self.run(|mut conn| async move {
            invocation.invoke_async::<i64>(&mut conn).await?;
            Ok(())
        })
        .await
    }

    /// Undoes decisions PostgreSQL refused (see `lua/rollback.lua`); returns how many changed.
    pub async fn rollback(
        &self,
        campaign: &CampaignId,
        rollbacks: &[Rollback],
    ) -> Result<u64, QueueError> {
        if rollbacks.is_empty() {
            return Ok(0);
        }
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::ROLLBACK.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.holders)
            .arg(&keys.status_prefix);
        for r in rollbacks {
            invocation
                .arg(r.request_id.to_string())
                .arg(r.user_id.as_str())
                .arg(r.coupon_code.as_str())
                .arg(r.coupon_seq.map(|seq| seq.to_string()).unwrap_or_default())
                .arg(status_code(r.new_status))
                .arg(r.holder.map(|h| h.to_string()).unwrap_or_default());
        }
        self.run(|mut conn| async move {
            let undone: i64 = invocation.invoke_async(&mut conn).await?;
            Ok(undone.max(0) as u64)
        })
        .await
    }

    /// Log entries delivered to a persister but not acknowledged yet.
    pub async fn pending_len(&self, campaign: &CampaignId) -> Result<u64, QueueError> {
        let log = self.keys.campaign(campaign).log;
        let summary: Value = self
            .run(|mut conn| async move {
                let reply = redis::cmd("XPENDING")
                    .arg(log)
                    .arg(PERSIST_GROUP)
                    .query_async::<Value>(&mut conn)
                    .await;
                match reply {
                    Err(e) if e.code() == Some("NOGROUP") => Ok(Value::Nil),
                    other => Ok(other?),
                }
            })
            .await?;
        // Reply: [count, smallest id, greatest id, [[consumer, count]…]].
        match summary {
            Value::Array(parts) => parts
                .first()
                .map_or(Ok(0), |n| crate::record::int(n).map(|n| n.max(0) as u64)),
            _ => Ok(0),
        }
    }

    /// Entries in the campaign's log (not yet acknowledged as persisted).
    pub async fn log_len(&self, campaign: &CampaignId) -> Result<u64, QueueError> {
        let log = self.keys.campaign(campaign).log;
        self.run(|mut conn| async move {
            Ok(redis::cmd("XLEN")
                .arg(log)
                .query_async::<u64>(&mut conn)
                .await?)
        })
        .await
    }
}

fn parse_entry(item: &Value, code_key: &str) -> Result<LogEntry, QueueError> {
    let parts = array(item)?;
    let id = text(
        parts
            .first()
            .ok_or_else(|| QueueError::protocol("entry id"))?,
    )?
    .to_owned();
    let mut decisions = Vec::new();
    if let Some(Value::Array(fields)) = parts.get(1) {
        for pair in fields.chunks(2) {
            if let [name, value] = pair
                && text(name)? == "d"
            {
                for line in text(value)?.split('\n').filter(|l| !l.is_empty()) {
                    decisions.push(parse_decision(line, code_key)?);
                }
            }
        }
    }
    Ok(LogEntry { id, decisions })
}
