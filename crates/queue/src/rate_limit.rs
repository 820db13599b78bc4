//! Rate limits: GCRA in Redis (`lua/rate_limit.lua`), so every API replica spends one quota.
//!
//! Two kinds of subject, each one key holding a theoretical arrival time ([`crate::keys`]):
//!
//! - a (campaign, user): the key sits in the campaign's slot, so one script call screens a whole
//!   accept group ([`Queue::limit_users`]) and can see the group's idempotency claims — a request
//!   whose `Idempotency-Key` is already claimed is a replay and spends nothing;
//! - a client address: its own slot, one call per request ([`Queue::limit_address`]).
//!
//! Nothing is kept in the process: a subject's whole state is one Redis string that expires once
//! its quota is back.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};
use rushline_domain::{CampaignId, IdempotencyKey, UserId};

use crate::record::{array, int};
use crate::{Queue, QueueError};

/// `lua/rate_limit.lua`, loaded once per process (kept here rather than in `scripts.rs`, beside
/// the one module that calls it).
static RATE_LIMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/rate_limit.lua")));

/// A limit: `quota` requests per `period`, with bursts of up to `quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    quota: u32,
    period: Duration,
}

impl Rate {
    /// `quota` (at least 1) requests per `period` (at least 1 µs); `None` otherwise.
    pub fn new(quota: u32, period: Duration) -> Option<Self> {
        (quota >= 1 && period.as_micros() >= 1).then_some(Self { quota, period })
    }

    /// Requests allowed per period.
    pub fn quota(&self) -> u32 {
        self.quota
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    fn period_micros(&self) -> u64 {
        u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX)
    }
}

/// What the limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, and counted.
    Allowed {
        /// Requests the subject could still make right now.
        remaining: u64,
        /// When the subject's whole quota is back.
        reset: Duration,
    },
    /// Allowed without being counted: the request replays an `Idempotency-Key` already claimed.
    Replay,
    /// Refused; nothing was counted.
    Denied {
        /// When one request will be allowed again.
        retry_after: Duration,
        /// When the subject's whole quota is back.
        reset: Duration,
    },
}

/// One request of an accept group, as the per-user limit sees it.
#[derive(Debug, Clone, Copy)]
pub struct UserRequest<'a> {
    /// Who asks.
    pub user_id: &'a UserId,
    /// The request's `Idempotency-Key`: when already claimed, the request is a replay.
    pub idempotency_key: Option<&'a IdempotencyKey>,
}

impl Queue {
    /// Screens one accept group's requests against the per-(campaign, user) limit in one script
    /// call; verdicts come back in request order. A request replaying a claimed `Idempotency-Key`
    /// is [`Verdict::Replay`] and spends nothing.
    pub async fn limit_users(
        &self,
        campaign: &CampaignId,
        rate: Rate,
        requests: &[UserRequest<'_>],
    ) -> Result<Vec<Verdict>, QueueError> {
        let idempotency_prefix = self.keys.campaign(campaign).idempotency_prefix;
        let mut invocation = RATE_LIMIT.prepare_invoke();
        invocation
            .arg(rate.quota)
            .arg(rate.period_micros())
            .arg("take");
        for request in requests {
            invocation.key(self.keys.user_rate_limit(campaign, request.user_id));
            invocation.arg(
                request
                    .idempotency_key
                    .map_or_else(String::new, |k| format!("{idempotency_prefix}{k}")),
            );
        }
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        let verdicts = array(&reply)?
            .iter()
            .map(parse_verdict)
            .collect::<Result<Vec<_>, _>>()?;
        if verdicts.len() != requests.len() {
            return Err(QueueError::protocol("rate limit reply length"));
        }
        Ok(verdicts)
    }

    /// Gives each of `users` back one request they spent under the per-user limit (their request
    /// was a replay after all, or met a campaign Redis did not hold yet and is asked again).
    pub async fn refund_users(
        &self,
        campaign: &CampaignId,
        rate: Rate,
        users: &[&UserId],
    ) -> Result<(), QueueError> {
        let keys = users
            .iter()
            .map(|user| self.keys.user_rate_limit(campaign, user))
            .collect::<Vec<_>>();
        self.refund(keys, rate).await
    }

    /// Checks one request against the per-client-address limit. `address` is the normalised
    /// client address or prefix the API limits by.
    pub async fn limit_address(&self, address: &str, rate: Rate) -> Result<Verdict, QueueError> {
        let mut invocation = RATE_LIMIT.prepare_invoke();
        invocation
            .key(self.keys.address_rate_limit(address))
            .arg(rate.quota)
            .arg(rate.period_micros())
            .arg("take")
            .arg("");
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        match array(&reply)? {
            [verdict] => parse_verdict(verdict),
            _ => Err(QueueError::protocol("rate limit reply length")),
        }
    }

    /// Gives `address` back one request it spent (the request was an idempotent replay).
    pub async fn refund_address(&self, address: &str, rate: Rate) -> Result<(), QueueError> {
        self.refund(vec![self.keys.address_rate_limit(address)], rate)
            .await
    }

    /// Whether `key` is claimed for `campaign`, i.e. a request carrying it replays an earlier one.
    /// Asked only for a request a limit refused (see the API's per-address limit).
    pub async fn idempotency_claimed(
        &self,
        campaign: &CampaignId,
        key: &IdempotencyKey,
    ) -> Result<bool, QueueError> {
        let claim = format!("{}{key}", self.keys.campaign(campaign).idempotency_prefix);
        self.run(|mut conn| async move {
            Ok(redis::cmd("EXISTS")
                .arg(claim)
                .query_async::<bool>(&mut conn)
                .await?)
        })
        .await
    }

    async fn refund(&self, keys: Vec<String>, rate: Rate) -> Result<(), QueueError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut invocation = RATE_LIMIT.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation
            .arg(rate.quota)
            .arg(rate.period_micros())
            .arg("refund");
        self.run(|mut conn| async move {
            let _: Value = invocation.invoke_async(&mut conn).await?;
            Ok(())
        })
        .await
    }
}

fn parse_verdict(value: &Value) -> Result<Verdict, QueueError> {
    let micros = |v: &Value| -> Result<Duration, QueueError> {
        u64::try_from(int(v)?)
            .map(Duration::from_micros)
            .map_err(|_| QueueError::protocol("negative rate limit time"))
    };
    match array(value)? {
        [kind, a, b] => match int(kind)? {
            1 => Ok(Verdict::Allowed {
                remaining: u64::try_from(int(a)?).unwrap_or(0),
                reset: micros(b)?,
            }),
            2 => Ok(Verdict::Replay),
            0 => Ok(Verdict::Denied {
                retry_after: micros(a)?,
                reset: micros(b)?,
            }),
            other => Err(QueueError::protocol(format!("rate limit verdict {other}"))),
        },
        _ => Err(QueueError::protocol("rate limit verdict shape")),
    }
}
