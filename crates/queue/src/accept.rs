//! Accepting requests: one `accept.lua` call for a group of requests to one campaign.
//!
//! The script queues each request, or decides it at once: every request of an instant campaign
//! (`"decide": "instant"`) while nothing waits in its queue, and every request once the stock is
//! gone. An issued decision comes back with its coupon sequence number, and the code is minted
//! here from the campaign's key ([`crate::codes`]), as every other reader of a decision does.

use chrono::{DateTime, Utc};
use redis::Value;
use rushline_domain::{
    CampaignId, CouponCode, IdempotencyKey, RequestId, RequestStatus, RequestView, UserId, timefmt,
};

use crate::record::{StatusRecord, array, int, parse_status, text};
use crate::{Queue, QueueError, scripts};

/// One request to accept.
#[derive(Debug, Clone)]
pub struct AcceptItem {
    /// Its freshly minted id (used unless the idempotency key replays an earlier one).
    pub request_id: RequestId,
    /// Who it is for.
    pub user_id: UserId,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The API verified an admitted, unexpired waiting-room ticket of this user. A campaign with
    /// a waiting room refuses requests without it ([`AcceptOutcome::TicketRequired`]); other
    /// campaigns ignore it.
    pub admitted: bool,
}

/// What became of one accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Queued for a worker to decide (answer 202).
    Queued,
    /// Decided at once (answer 200): `sold_out` or `duplicate` because the stock is gone, or any
    /// final status for an instant campaign.
    Decided {
        /// The final status.
        status: RequestStatus,
        /// When it was decided.
        decided_at: DateTime<Utc>,
        /// The coupon, exactly when `status` is `issued`.
        coupon_code: Option<CouponCode>,
    },
    /// Issued at once (instant campaign), but this process could not mint the coupon code: the
    /// campaign's key could not be read from Redis after the script ran. The decision stands —
    /// recorded in the request's status record and the decision log like any other — only its
    /// code is unknown here; read the request back (its status record, else PostgreSQL once
    /// persisted) to answer with it.
    IssuedUnminted {
        /// When it was decided.
        decided_at: DateTime<Utc>,
    },
    /// The idempotency key was used before with this user: the earlier request, and its status
    /// record when Redis still has it and can mint its coupon code (else read PostgreSQL).
    Replay {
        /// The earlier request.
        request_id: RequestId,
        /// Its current status, when still in Redis.
        view: Option<RequestView>,
    },
    /// The idempotency key was used before with another user (answer 422).
    KeyReused,
    /// The campaign is not in Redis (unknown, or not warmed yet).
    Unknown,
    /// The campaign has a waiting room and the request carried no admitted ticket (answer 401).
    TicketRequired,
    /// The campaign has not opened yet (answer 409).
    Scheduled,
    /// The campaign has closed (answer 409).
    Closed,
    /// The queue (or, for a decision at once, the decision log) is at its bound (answer 503).
    Overloaded,
}

impl Queue {
    /// Accepts `items` for `campaign` in one script call; outcomes come back in item order.
    ///
    /// Requests that come back [`AcceptOutcome::Queued`] or decided are durable in Redis when
    /// this returns (as durable as Redis's AOF policy makes them).
    ///
    /// Once the script has run, nothing here fails the group: a code that cannot be minted
    /// turns that one outcome into [`AcceptOutcome::IssuedUnminted`] (a replay's into a view
    /// to read from PostgreSQL), since the decisions are made and must reach their requests.
    pub async fn accept(
        &self,
        campaign: &CampaignId,
        items: &[AcceptItem],
    ) -> Result<Vec<AcceptOutcome>, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::deciding(&scripts::ACCEPT, &keys);
        invocation
            .arg(&keys.idempotency_prefix)
            .arg(self.config.idempotency_ttl.as_secs())
            .arg(self.config.max_queue)
            .arg(self.keys.work_channel())
            .arg(campaign.as_str())
            .arg(self.config.max_log_entries);
        for item in items {
            invocation
                .arg(item.request_id.to_string())
                .arg(item.user_id.as_str())
                .arg(item.idempotency_key.as_ref().map_or("", |k| k.as_str()))
                .arg(if item.admitted { "1" } else { "" });
        }
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        let replies = array(&reply)?;
        if replies.len() != items.len() {
            return Err(QueueError::protocol("accept reply length"));
        }
        let parsed = replies
            .iter()
            .map(parse_outcome)
            .collect::<Result<Vec<_>, _>>()?;
        let mut outcomes = Vec::with_capacity(parsed.len());
        for (parsed, item) in parsed.into_iter().zip(items) {
            outcomes.push(match parsed {
                Parsed::Outcome(outcome) => outcome,
                Parsed::Replay { request_id, record } => AcceptOutcome::Replay {
                    request_id,
                    view: self.replay_view(record).await,
                },
                Parsed::Issued { decided_at, seq } => {
                    self.issued_at_once(campaign, item, decided_at, seq).await
                }
            });
        }
        Ok(outcomes)
    }

    /// The outcome of a request the script issued at once, its code minted from `seq` with the
    /// campaign's key (from memory after this process's first request of the campaign). The
    /// script has already run, so a key that cannot be read fails only this outcome's code, not
    /// the group: the request is answered from its record instead (see
    /// [`AcceptOutcome::IssuedUnminted`]).
    async fn issued_at_once(
        &self,
        campaign: &CampaignId,
        item: &AcceptItem,
        decided_at: DateTime<Utc>,
        seq: u64,
    ) -> AcceptOutcome {
        match self.require_code_key(campaign).await {
            Ok(key) => AcceptOutcome::Decided {
                status: RequestStatus::Issued,
                decided_at,
                coupon_code: Some(CouponCode::mint(&key, seq)),
            },
            Err(e) => {
                tracing::warn!(request_id = %item.request_id, error = %e, "coupon code of a request issued at once not mintable here; answering from its record");
                AcceptOutcome::IssuedUnminted { decided_at }
            }
        }
    }

    /// The view of a replayed request's status record. The script has already run, so nothing
    /// here may fail the group: a record whose code cannot be minted (the campaign's key is gone
    /// from Redis, or reading it failed) counts as not in Redis, and the caller reads PostgreSQL.
    async fn replay_view(&self, record: Option<StatusRecord>) -> Option<RequestView> {
        let record = record?;
        let request_id = record.view.request_id;
        match self.status_view(record).await {
            Ok(view) => Some(view),
            Err(e) => {
                tracing::warn!(request_id = %request_id, error = %e, "replayed request's coupon code not mintable from Redis; reading the record instead");
                None
            }
        }
    }
}

/// A script reply element decoded, short of the work a replayed status record or an issued
/// decision (its coupon code) may still need.
enum Parsed {
    Outcome(AcceptOutcome),
    Issued {
        decided_at: DateTime<Utc>,
        seq: u64,
    },
    Replay {
        request_id: RequestId,
        record: Option<StatusRecord>,
    },
}

fn parse_outcome(value: &Value) -> Result<Parsed, QueueError> {
    let fields = array(value)?;
    let kind = fields
        .first()
        .ok_or_else(|| QueueError::protocol("empty outcome"))?;
    let at = |i: usize| -> Result<DateTime<Utc>, QueueError> {
        let ms = int(fields
            .get(i)
            .ok_or_else(|| QueueError::protocol("outcome time"))?)?;
        timefmt::from_millis(ms).ok_or_else(|| QueueError::protocol("outcome time"))
    };
    Ok(Parsed::Outcome(match text(kind)? {
        "Q" => AcceptOutcome::Queued,
        "I" => {
            let seq = fields
                .get(2)
                .ok_or_else(|| QueueError::protocol("issued seq"))
                .and_then(int)
                .and_then(|seq| {
                    u64::try_from(seq).map_err(|_| QueueError::protocol("issued seq"))
                })?;
            return Ok(Parsed::Issued {
                decided_at: at(1)?,
                seq,
            });
        }
        "S" => AcceptOutcome::Decided {
            status: RequestStatus::SoldOut,
            decided_at: at(1)?,
            coupon_code: None,
        },
        "D" => AcceptOutcome::Decided {
            status: RequestStatus::Duplicate,
            decided_at: at(1)?,
            coupon_code: None,
        },
        "R" => {
            let rid = fields
                .get(1)
                .ok_or_else(|| QueueError::protocol("replay id"))?;
            let request_id =
                RequestId::parse(text(rid)?).map_err(|_| QueueError::protocol("replay id"))?;
            let record = match fields.get(2) {
                Some(Value::Nil) | None => None,
                Some(record) => Some(parse_status(request_id, text(record)?)?),
            };
            return Ok(Parsed::Replay { request_id, record });
        }
        "U" => AcceptOutcome::KeyReused,
        "M" => AcceptOutcome::Unknown,
        "T" => AcceptOutcome::TicketRequired,
        "E" => AcceptOutcome::Scheduled,
        "C" => AcceptOutcome::Closed,
        "O" => AcceptOutcome::Overloaded,
        other => return Err(QueueError::protocol(format!("accept outcome {other:?}"))),
    }))
}
