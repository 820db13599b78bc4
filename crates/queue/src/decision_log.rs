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
//! pending on this consumer, out of reach until claimed as stale. For the same reason an entry
//! that does not decode never fails the read: it comes back apart ([`LogRead::unreadable`]), to
//! be dead-lettered ([`crate::dead_letters`]) while the rest of the read is persisted.

use std::time::Duration;

use redis::Value;
use rushline_domain::{CampaignId, Decision, RequestId, RequestStatus, UserId};

use crate::keys::log_field;
use crate::record::{array, parse_decision, status_code, text};
use crate::{PERSIST_GROUP, Queue, QueueError, scripts};

/// One log entry: a batch of decisions.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The stream entry id (to acknowledge).
    pub id: String,
    /// The decisions it carries (empty if the entry was deleted meanwhile).
    pub decisions: Vec<Decision>,
    /// The rebuild epoch of the Redis state that made them (field `e`); `None` for entries
    /// written before epochs existed, which are persisted as before.
    pub epoch: Option<i64>,
}

/// A log entry whose content does not decode: it can never be persisted as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEntry {
    /// The stream entry id.
    pub id: String,
    /// What is wrong with it.
    pub error: String,
}

/// What one read of a log took: entries that decode, and entries that do not (both now pending
/// on the reader).
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    /// Entries that decode, in log order.
    pub entries: Vec<LogEntry>,
    /// Entries that do not.
    pub unreadable: Vec<UnreadableEntry>,
}

impl LogRead {
    /// How many entries the read took.
    pub fn len(&self) -> usize {
        self.entries.len() + self.unreadable.len()
    }

    /// Whether it took none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, entry: Result<LogEntry, UnreadableEntry>) {
        match entry {
            Ok(entry) => self.entries.push(entry),
            Err(unreadable) => self.unreadable.push(unreadable),
        }
    }
}

/// A decision PostgreSQL refused, to be undone in Redis.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The request.
    pub request_id: RequestId,
    /// Its user.
    pub user_id: UserId,
    /// The sequence number of the coupon Redis issued it (the status record holds it; without
    /// one, nothing is undone).
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
    /// Entries that do not parse come back apart, in [`LogRead::unreadable`] (they are pending
    /// too: the caller dead-letters them rather than leave them to fail on every takeover).
    ///
    /// Fails with [`QueueError::CodeKeyMissing`], taking nothing, while the campaign's code key
    /// is gone from Redis (a warm-up brings it back).
    pub async fn read_log(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        count: usize,
    ) -> Result<LogRead, QueueError> {
        let code_key = self.require_code_key(campaign).await?;
        let reply = self.read_new_raw(campaign, consumer, count).await?;
        let mut read = LogRead::default();
        for item in read_items(&reply)? {
            read.push(parse_entry(item, &code_key)?);
        }
        Ok(read)
    }

    /// Takes over up to `count` entries that have been pending on any consumer for at least
    /// `min_idle` (their consumer is presumed dead). Needs the code key as [`Queue::read_log`],
    /// and sets unreadable entries apart the same way.
    pub async fn claim_stale(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<LogRead, QueueError> {
        let code_key = self.require_code_key(campaign).await?;
        let reply = self
            .claim_stale_raw(campaign, consumer, min_idle, count)
            .await?;
        let (items, deleted) = claim_items(&reply)?;
        let mut read = LogRead::default();
        for item in items {
            read.push(parse_entry(item, &code_key)?);
        }
        read.entries.extend(deleted.into_iter().map(|id| LogEntry {
            id,
            decisions: Vec::new(),
            epoch: None,
        }));
        Ok(read)
    }

    /// Takes up to `count` entries without decoding them — unseen ones, or with `stale` those
    /// pending longer than it — and returns their ids. For a campaign the record does not hold,
    /// whose entries can only be dead-lettered: no code key is needed (Redis holds none).
    pub async fn take_log_ids(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        count: usize,
        stale: Option<Duration>,
    ) -> Result<Vec<String>, QueueError> {
        let mut ids = Vec::new();
        match stale {
            None => {
                let reply = self.read_new_raw(campaign, consumer, count).await?;
                for item in read_items(&reply)? {
                    ids.push(entry_id(item)?);
                }
            }
            Some(min_idle) => {
                let reply = self
                    .claim_stale_raw(campaign, consumer, min_idle, count)
                    .await?;
                let (items, deleted) = claim_items(&reply)?;
                for item in items {
                    ids.push(entry_id(item)?);
                }
                ids.extend(deleted);
            }
        }
        Ok(ids)
    }

    /// `XREADGROUP … >`, recreating the group if the log was lost.
    async fn read_new_raw(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        count: usize,
    ) -> Result<Value, QueueError> {
        let log = self.keys.campaign(campaign).log;
        self.run(|mut conn| async move {
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
        .await
    }

    /// `XAUTOCLAIM` of entries idle at least `min_idle`.
    async fn claim_stale_raw(
        &self,
        campaign: &CampaignId,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Value, QueueError> {
        let log = self.keys.campaign(campaign).log;
        self.run(|mut conn| async move {
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
        .await
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

/// The entries of an `XREADGROUP` reply: nil, or [[log, [[id, [field, value…]]…]]].
fn read_items(reply: &Value) -> Result<Vec<&Value>, QueueError> {
    let Value::Array(streams) = reply else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    for stream in streams {
        if let Some(entries) = array(stream)?.get(1) {
            items.extend(array(entries)?);
        }
    }
    Ok(items)
}

/// The entries and deleted ids of an `XAUTOCLAIM` reply: [cursor, [[id, fields]…], [ids]].
fn claim_items(reply: &Value) -> Result<(Vec<&Value>, Vec<String>), QueueError> {
    let Value::Array(parts) = reply else {
        return Ok((Vec::new(), Vec::new()));
    };
    let items = match parts.get(1) {
        Some(items) => array(items)?.iter().collect(),
        None => Vec::new(),
    };
    let mut deleted = Vec::new();
    if let Some(ids) = parts.get(2) {
        for id in array(ids)? {
            deleted.push(text(id)?.to_owned());
        }
    }
    Ok((items, deleted))
}

pub(crate) fn entry_id(item: &Value) -> Result<String, QueueError> {
    Ok(text(
        array(item)?
            .first()
            .ok_or_else(|| QueueError::protocol("entry id"))?,
    )?
    .to_owned())
}

/// Decodes one entry: a reply that is not shaped like a stream entry is a protocol error (Redis
/// misbehaving); an entry whose content does not decode is [`UnreadableEntry`].
pub(crate) fn parse_entry(
    item: &Value,
    code_key: &str,
) -> Result<Result<LogEntry, UnreadableEntry>, QueueError> {
    let id = entry_id(item)?;
    let fields = match array(item)?.get(1) {
        Some(Value::Array(fields)) => fields,
        // A pending entry deleted meanwhile reads back without fields: nothing to persist.
        _ => {
            return Ok(Ok(LogEntry {
                id,
                decisions: Vec::new(),
                epoch: None,
            }));
        }
    };
    match parse_decisions(fields, code_key) {
        Ok((decisions, epoch)) => Ok(Ok(LogEntry {
            id,
            decisions,
            epoch,
        })),
        Err(e) => Ok(Err(UnreadableEntry {
            id,
            error: e.to_string(),
        })),
    }
}

/// The decision lines of an entry's `d` field, and its rebuild epoch (field `e`, optional).
fn parse_decisions(
    fields: &[Value],
    code_key: &str,
) -> Result<(Vec<Decision>, Option<i64>), QueueError> {
    let mut decisions = None;
    let mut epoch = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match text(name)? {
            log_field::DECISIONS => {
                let mut lines = Vec::new();
                for line in text(value)?.split('\n').filter(|l| !l.is_empty()) {
                    lines.push(parse_decision(line, code_key)?);
                }
                decisions = Some(lines);
            }
            log_field::EPOCH => {
                let stamped = text(value)?;
                epoch = Some(stamped.parse::<i64>().map_err(|_| {
                    QueueError::protocol(format!("log entry epoch {stamped:?} is not an integer"))
                })?);
            }
            _ => {}
        }
    }
    let decisions =
        decisions.ok_or_else(|| QueueError::protocol("log entry without a decisions field"))?;
    Ok((decisions, epoch))
}
