//! Dead letters: decision-log entries no worker can ever persist, set aside where an operator
//! sees them, and put back into the log once the fault is fixed.
//!
//! A worker retries every failure that can go away (Redis or PostgreSQL unreachable, a timeout, a
//! serialization failure). A *permanent* one — an entry that does not parse, a campaign the
//! record does not hold, a row PostgreSQL rejects however often it is sent — would otherwise
//! block that worker's persist loop and fail again on every takeover. `lua/dead_letter.lua`
//! moves such an entry, with its raw content, the error, the time and the worker, from the log
//! to the campaign's dead-letter stream in one atomic step; `lua/replay_dead_letter.lua` moves
//! it back, as it was, for a fixed worker to persist.
//!
//! **Where the stream lives.** One stream per campaign (`…{tag}:c:<campaign>:dead`), in the
//! campaign's hash slot: the move must be one script, and a Redis Cluster script may only touch
//! keys of one slot, so a namespace-wide stream could not be appended in the same step as the
//! log entry is removed. To list them all, a namespace-wide set (`…:dead-letters`) names every
//! campaign that got one; it is added to *before* the move, so no dead letter is ever unlisted
//! (a crash in between leaves a name whose stream is empty, which costs one `XRANGE`).
//!
//! **The requests in a dead-lettered entry are not lost.** Their status records keep the
//! decision in Redis without a TTL (the TTL starts only when an entry is acknowledged as
//! persisted), so `GET /v1/requests/{id}` still answers it; PostgreSQL holds them once the entry
//! is replayed and persisted.

use redis::Value;
use rushline_domain::CampaignId;

use crate::record::{array, text};
use crate::{PERSIST_GROUP, Queue, QueueError, scripts};

/// Why an entry was dead-lettered: a closed set, so it can label a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The entry (or one of its lines) does not parse as decisions.
    Unparsable,
    /// The entry's campaign is not in the record (PostgreSQL).
    UnknownCampaign,
    /// PostgreSQL refuses the entry's rows for good (a constraint or data error that the
    /// rollback path cannot resolve, or a corrupt row).
    RejectedByRecord,
}

impl DeadLetterReason {
    /// Every reason, for metrics that start at 0.
    pub const ALL: [Self; 3] = [
        Self::Unparsable,
        Self::UnknownCampaign,
        Self::RejectedByRecord,
    ];

    /// Its label value and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unparsable => "unparsable",
            Self::UnknownCampaign => "unknown_campaign",
            Self::RejectedByRecord => "rejected_by_record",
        }
    }

    /// The reason named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dead letter, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The campaign whose log the entry came from.
    pub campaign: CampaignId,
    /// The dead letter's own id (what a replay names).
    pub id: String,
    /// The log entry's id when it was dead-lettered.
    pub entry: String,
    /// Why (the text stored; one of [`DeadLetterReason`] unless written by another version).
    pub reason: String,
    /// The error the worker met.
    pub error: String,
    /// The worker (consumer name) that set it aside.
    pub worker: String,
    /// When, in ms since the epoch (Redis's clock).
    pub at_ms: i64,
    /// The entry's fields exactly as the log held them (`d`: its decision lines).
    pub raw: Vec<(String, String)>,
}

impl Queue {
    /// Moves log entry `entry_id` of `campaign` to its dead-letter stream (see the module doc).
    /// `Ok(false)` when the log no longer held it (someone else finished it first).
    pub async fn dead_letter(
        &self,
        campaign: &CampaignId,
        entry_id: &str,
        reason: DeadLetterReason,
        error: &str,
        worker: &str,
    ) -> Result<bool, QueueError> {
        let keys = self.keys.campaign(campaign);
        let index = self.keys.dead_letter_index();
        let mut invocation = scripts::DEAD_LETTER.prepare_invoke();
        invocation
            .key(&keys.log)
            .key(&keys.dead_letters)
            .arg(PERSIST_GROUP)
            .arg(entry_id)
            .arg(reason.as_str())
            .arg(error)
            .arg(worker);
        self.run(|mut conn| async move {
            // The index first: a dead letter must never exist unlisted.
            redis::cmd("SADD")
                .arg(index)
                .arg(campaign.as_str())
                .query_async::<i64>(&mut conn)
                .await?;
            let moved: i64 = invocation.invoke_async(&mut conn).await?;
            Ok(moved == 1)
        })
        .await
    }

    /// Campaigns that have (or had) dead letters, in id order.
    pub async fn dead_letter_campaigns(&self) -> Result<Vec<CampaignId>, QueueError> {
        let index = self.keys.dead_letter_index();
        let ids: Vec<String> = self
            .run(|mut conn| async move {
                Ok(redis::cmd("SMEMBERS")
                    .arg(index)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        let mut campaigns: Vec<CampaignId> = ids
            .into_iter()
            .filter_map(|id| CampaignId::parse(id).ok())
            .collect();
        campaigns.sort();
        Ok(campaigns)
    }

    /// The dead letters of `campaign`, oldest first.
    pub async fn dead_letters(&self, campaign: &CampaignId) -> Result<Vec<DeadLetter>, QueueError> {
        let dead = self.keys.campaign(campaign).dead_letters;
        let reply: Value = self
            .run(|mut conn| async move {
                Ok(redis::cmd("XRANGE")
                    .arg(dead)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        array(&reply)?
            .iter()
            .map(|item| parse_dead_letter(campaign, item))
            .collect()
    }

    /// How many dead letters wait, over every campaign (the gauge operators alert on).
    pub async fn dead_letter_count(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        for campaign in self.dead_letter_campaigns().await? {
            let dead = self.keys.campaign(&campaign).dead_letters;
            total += self
                .run(|mut conn| async move {
                    Ok(redis::cmd("XLEN")
                        .arg(dead)
                        .query_async::<u64>(&mut conn)
                        .await?)
                })
                .await?;
        }
        Ok(total)
    }

    /// Puts dead letter `id` of `campaign` back into its decision log, as it was; returns the
    /// new log entry's id, or `None` if there is no such dead letter (replayed already).
    pub async fn replay_dead_letter(
        &self,
        campaign: &CampaignId,
        id: &str,
    ) -> Result<Option<String>, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::REPLAY_DEAD_LETTER.prepare_invoke();
        invocation
            .key(&keys.dead_letters)
            .key(&keys.log)
            .key(&keys.dirty)
            .arg(id)
            .arg(self.keys.work_channel())
            .arg(campaign.as_str());
        self.run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await
    }
}

fn parse_dead_letter(campaign: &CampaignId, item: &Value) -> Result<DeadLetter, QueueError> {
    let parts = array(item)?;
    let id = text(
        parts
            .first()
            .ok_or_else(|| QueueError::protocol("dead letter id"))?,
    )?;
    let fields = array(
        parts
            .get(1)
            .ok_or_else(|| QueueError::protocol("dead letter fields"))?,
    )?;
    let mut letter = DeadLetter {
        campaign: campaign.clone(),
        id: id.to_owned(),
        entry: String::new(),
        reason: String::new(),
        error: String::new(),
        worker: String::new(),
        at_ms: 0,
        raw: Vec::new(),
    };
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err(QueueError::protocol("dead letter field without a value"));
        };
        // Raw content may be anything an entry held (that is often why it is here): lossy.
        let (name, value) = (lossy(name), lossy(value));
        match name.as_str() {
            "entry" => letter.entry = value,
            "reason" => letter.reason = value,
            "error" => letter.error = value,
            "worker" => letter.worker = value,
            "at" => letter.at_ms = value.parse().unwrap_or(0),
            other => {
                if let Some(field) = other.strip_prefix("raw:") {
                    letter.raw.push((field.to_owned(), value));
                }
            }
        }
    }
    Ok(letter)
}

fn lossy(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}
