//! Rate limits (CONTRACT.md, *Rate limits*): per (campaign, user) on joins and requests, per
//! client address on every public POST. Over a limit: `429` problem+json with `Retry-After`,
//! `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
//!
//! # Where each limit is checked, and why
//!
//! - **Per (campaign, user)** — in the group-commit acceptor ([`crate::accept`]): one
//!   `rate_limit.lua` call screens a whole accept group just before its `accept.lua` call; the
//!   keys share the campaign's slot. Under load a group holds hundreds of requests, so the limit
//!   adds one round trip per group, not per request. The same script sees the group's
//!   idempotency claims (same slot): a replay spends nothing. A request that met a campaign not
//!   in Redis yet gets its request back (it is asked again after the warm-up).
//! - **Per client address** — a middleware on the public POST routes
//!   ([`crate::http::rate_limit`]), before the body is read: one script call per request on the
//!   address's own key (its own slot). A refused request carrying an `Idempotency-Key` is let
//!   through when that key is already claimed (one `EXISTS`, on the refusal path only); an
//!   allowed request that turns out to be a replay gets its request back.
//!
//! Both keep their whole state in Redis (one string per subject, expiring once its quota is
//! back), so the limits hold across API replicas and nothing per client grows in the process.
//!
//! # Redis failing while a limit is checked: fail open
//!
//! The request goes on as if allowed (logged, counted in `rushline_backend_errors_total`). The
//! limits protect Redis and the queue from one client's excess; while Redis itself fails, the
//! accept that follows fails too and answers `503` — refusing with `429` instead would tell
//! well-behaved clients they were at fault, and a limiter that fails closed turns a slow Redis
//! into refusals for everyone.
//!
//! # Client address
//!
//! See [`client`]: the TCP peer, or — only when the peer is a trusted proxy — the rightmost
//! `X-Forwarded-For` address that is not one. IPv6 clients are limited by their /64.

pub mod client;

use std::time::Duration;

use clap::Args;
pub use rushline_queue::rate_limit::Rate;

pub use client::TrustedProxies;

/// The rate-limit settings, flattened into the API's arguments.
#[derive(Clone, Args)]
pub struct RateLimitArgs {
    /// Per (campaign, user_id) limit on joins and requests: `N/s`, `N/min` or `off`
    #[arg(long, env = "RUSHLINE_RATE_LIMIT_USER", default_value = "off",
        value_parser = parse_limit)]
    rate_limit_user: Limit,

    /// Per client address limit on every public POST: `N/s`, `N/min` or `off`
    #[arg(long, env = "RUSHLINE_RATE_LIMIT_IP", default_value = "off",
        value_parser = parse_limit)]
    rate_limit_ip: Limit,

    /// Comma-separated CIDRs (or addresses) of proxies whose X-Forwarded-For is believed
    #[arg(long, env = "RUSHLINE_TRUSTED_PROXIES", value_parser = TrustedProxies::parse)]
    trusted_proxies: Option<TrustedProxies>,
}

/// A parsed limit setting: a rate, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(Option<Rate>);

/// Largest `N` of a limit: far above any per-client rate, small enough that the emission
/// interval stays a comfortable number of microseconds.
const MAX_QUOTA: u32 = 1_000_000;

/// Parses `N/s`, `N/min` (N from 1 to 1,000,000) or `off`.
fn parse_limit(raw: &str) -> Result<Limit, String> {
    if raw.eq_ignore_ascii_case("off") {
        return Ok(Limit(None));
    }
    let usage = || format!("expected N/s, N/min (N from 1 to {MAX_QUOTA}) or off");
    let (n, unit) = raw.split_once('/').ok_or_else(usage)?;
    let period = match unit {
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        _ => return Err(usage()),
    };
    let quota = n
        .parse::<u32>()
        .ok()
        .filter(|q| (1..=MAX_QUOTA).contains(q) && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(usage)?;
    Rate::new(quota, period)
        .map(|r| Limit(Some(r)))
        .ok_or_else(usage)
}

/// What the API limits, read at start-up.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    /// `RUSHLINE_RATE_LIMIT_USER`: per (campaign, user); `None` when off.
    pub user: Option<Rate>,
    /// `RUSHLINE_RATE_LIMIT_IP`: per client address; `None` when off.
    pub ip: Option<Rate>,
    /// `RUSHLINE_TRUSTED_PROXIES`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
}

impl From<RateLimitArgs> for RateLimits {
    fn from(args: RateLimitArgs) -> Self {
        Self {
            user: args.rate_limit_user.0,
            ip: args.rate_limit_ip.0,
            trusted_proxies: args.trusted_proxies.unwrap_or_default(),
        }
    }
}

/// Which limit refused a request: a closed set (metric label, policy name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Per (campaign, user).
    User,
    /// Per client address.
    Ip,
}

impl LimitKind {
    /// The policy name in the `RateLimit-Policy` and `RateLimit` headers, and the `limit` label
    /// of `rushline_rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Ip => "ip",
        }
    }
}

/// A request refused by a limit: everything its `429` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// Which limit.
    pub kind: LimitKind,
    /// Its rate.
    pub rate: Rate,
    /// When one request will be allowed again.
    pub retry_after: Duration,
}

impl Denial {
    /// `Retry-After`, and the `t` of `RateLimit`: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// `RateLimit-Policy`, e.g. `"user";q=10;w=1` (a structured-field list of one item).
    pub fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.kind.label(),
            self.rate.quota(),
            self.rate.period().as_secs().max(1)
        )
    }

    /// `RateLimit`, e.g. `"user";r=0;t=1`: nothing remaining, the next request in `t` seconds.
    pub fn limit_header(&self) -> String {
        format!(
            "\"{}\";r=0;t={}",
            self.kind.label(),
            self.retry_after_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_per_second_per_minute_and_off() {
        assert_eq!(parse_limit("off"), Ok(Limit(None)));
        assert_eq!(parse_limit("OFF"), Ok(Limit(None)));
        assert_eq!(
            parse_limit("10/s"),
            Ok(Limit(Rate::new(10, Duration::from_secs(1))))
        );
        assert_eq!(
            parse_limit("1/min"),
            Ok(Limit(Rate::new(1, Duration::from_secs(60))))
        );
        assert!(parse_limit("1000000/s").is_ok());
        for bad in [
            "",
            "0/s",
            "-1/s",
            "+1/s",
            "1",
            "1/h",
            "1/sec",
            "/s",
            "1.5/s",
            "1000001/s",
            "10 /s",
            "on",
        ] {
            assert!(parse_limit(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn denial_headers_follow_the_draft() {
        let denial = Denial {
            kind: LimitKind::User,
            rate: Rate::new(10, Duration::from_secs(1)).unwrap(),
            retry_after: Duration::from_millis(100),
        };
        assert_eq!(denial.retry_after_secs(), 1);
        assert_eq!(denial.policy_header(), "\"user\";q=10;w=1");
        assert_eq!(denial.limit_header(), "\"user\";r=0;t=1");
        let denial = Denial {
            kind: LimitKind::Ip,
            rate: Rate::new(3, Duration::from_secs(60)).unwrap(),
            retry_after: Duration::from_millis(20_001),
        };
        assert_eq!(denial.retry_after_secs(), 21);
        assert_eq!(denial.policy_header(), "\"ip\";q=3;w=60");
    }
}
