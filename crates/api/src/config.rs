//! Configuration from the environment (CONTRACT.md lists the variables) or the matching flags.
//!
//! [`ApiArgs`] declares every setting once — variable, flag, default, limits — and `--help`
//! prints them all; [`Config`] is what the API runs with. A value out of range is an error at
//! start-up naming its variable, never clamped.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use chrono::TimeDelta;
use clap::Parser;
use rushline_runtime::config::{self, Redacted, Shared, SharedArgs, millis};

use crate::rate_limit::{RateLimitArgs, RateLimits};
use crate::tickets::{self, TicketKeys};

pub use rushline_runtime::config::ConfigError;

/// `rushline-api`: the stateless HTTP front of rushline.
///
/// Every setting is an environment variable; the flag of the same name overrides it.
#[derive(Parser)]
#[command(name = "rushline-api", version, about)]
pub struct ApiArgs {
    #[command(flatten)]
    shared: SharedArgs,

    #[command(flatten)]
    rate_limits: RateLimitArgs,

    /// Where to listen (port 0 picks a free one)
    #[arg(long, env = "RUSHLINE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: String,

    /// Bearer token for the admin endpoints; unset, they answer 403
    #[arg(long, env = "RUSHLINE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Most requests one accept script call takes (group commit); 1 to 4096
    #[arg(long, env = "RUSHLINE_ACCEPT_BATCH", default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..=4096))]
    accept_batch: u64,

    /// Most accept rounds in flight at once; a second one starts only for a full group; 1 to 256
    #[arg(long, env = "RUSHLINE_ACCEPT_IN_FLIGHT", default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=256))]
    accept_in_flight: u64,

    /// Per-campaign queue length past which requests are shed with 503; at least 1
    #[arg(long, env = "RUSHLINE_MAX_QUEUE", default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..))]
    max_queue: u64,

    /// PostgreSQL pool size; 1 to 1000
    #[arg(long, env = "RUSHLINE_DB_MAX_CONNECTIONS", default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_max_connections: u32,

    /// Bound on any one Redis or PostgreSQL call, in milliseconds; at least 10
    #[arg(long, env = "RUSHLINE_BACKEND_TIMEOUT_MS", default_value = "2000",
        value_parser = millis(10))]
    backend_timeout_ms: Duration,

    /// Milliseconds a connection may take to send a complete request head (from opening or its
    /// previous response) before it is closed; at least 1
    #[arg(long, env = "RUSHLINE_HTTP_HEADER_TIMEOUT_MS", default_value = "30000",
        value_parser = millis(1))]
    http_header_timeout_ms: Duration,

    /// Milliseconds a kept-alive connection may stay idle after a response before it is closed;
    /// at least 1
    #[arg(long, env = "RUSHLINE_HTTP_IDLE_TIMEOUT_MS", default_value = "30000",
        value_parser = millis(1))]
    http_idle_timeout_ms: Duration,

    /// Milliseconds a request body may take to arrive once the handler reads it (else 408); at
    /// least 1
    #[arg(long, env = "RUSHLINE_HTTP_BODY_TIMEOUT_MS", default_value = "10000",
        value_parser = millis(1))]
    http_body_timeout_ms: Duration,

    /// Open connections past which new ones are answered 503 and closed; at least 1
    #[arg(long, env = "RUSHLINE_HTTP_MAX_CONNECTIONS", default_value_t = 10_000,
        // A tokio semaphore holds at most usize::MAX >> 3 permits.
        value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS_CAP))]
    http_max_connections: u64,

    /// Waiting-room ticket keys: comma-separated base64url 32-byte Ed25519 seeds (`rushline
    /// ticket-key new` prints one); the first signs, all verify and are published at
    /// /.well-known/jwks.json. Unset: replicas share a generated key through Redis (development
    /// only)
    // Parsed after clap (`Config::try_from`): clap's error would quote the value, a secret.
    #[arg(long, env = "RUSHLINE_TICKET_KEYS", hide_env_values = true)]
    ticket_keys: Option<String>,

    /// Checked tickets each replica remembers, so a poll skips even the MAC check; 0 to
    /// 10,000,000 (0: none)
    #[arg(long, env = "RUSHLINE_TICKET_CACHE_ENTRIES",
        default_value_t = tickets::DEFAULT_CACHE_ENTRIES as u64,
        value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    ticket_cache_entries: u64,
}

/// The largest `RUSHLINE_HTTP_MAX_CONNECTIONS`: what a tokio semaphore can hold.
const MAX_CONNECTIONS_CAP: u64 = tokio::sync::Semaphore::MAX_PERMITS as u64;

/// Everything `rushline-api` reads at start-up.
#[derive(Clone)]
pub struct Config {
    /// `RUSHLINE_HTTP_ADDR`: where to listen (port 0 picks a free one).
    pub http_addr: String,
    /// What the workers must agree on: Redis, PostgreSQL, the key namespace, the decision-log
    /// bound, status TTL and log format.
    pub shared: Shared,
    /// `RUSHLINE_ADMIN_TOKEN`: admin endpoints are disabled (403) when unset.
    pub admin_token: Option<String>,
    /// `RUSHLINE_ACCEPT_BATCH`: most requests one accept script call takes (group commit).
    pub accept_batch: usize,
    /// `RUSHLINE_ACCEPT_IN_FLIGHT`: most accept rounds in flight at once. While one is in
    /// flight, arriving requests gather into the next; another starts before it is back only
    /// for a full group (`accept_batch` requests).
    pub accept_in_flight: usize,
    /// `RUSHLINE_MAX_QUEUE`: per-campaign queue length past which requests are shed with 503.
    pub max_queue: u64,
    /// `RUSHLINE_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `RUSHLINE_BACKEND_TIMEOUT_MS`: bound on any one Redis or PostgreSQL call.
    pub backend_timeout: Duration,
    /// Added to this host's clock wherever the API reads it. Zero unless a test sets it (it is
    /// not read from the environment) to play a host whose clock is wrong: window decisions use
    /// Redis's clock, and only the reported skew may move with it.
    pub clock_offset: TimeDelta,
    /// How the API treats its HTTP connections.
    pub connections: ConnectionLimits,
    /// `RUSHLINE_RATE_LIMIT_USER`, `RUSHLINE_RATE_LIMIT_IP`, `RUSHLINE_TRUSTED_PROXIES`.
    pub rate_limits: RateLimits,
    /// `RUSHLINE_TICKET_KEYS`: the waiting-room ticket keys, the signing one first; `None`:
    /// the development key shared through Redis (see [`crate::tickets`]).
    pub ticket_keys: Option<TicketKeys>,
    /// `RUSHLINE_TICKET_CACHE_ENTRIES`: checked tickets remembered per replica.
    pub ticket_cache_entries: usize,
}

/// Bounds on what one client connection may hold, so slow or idle clients cannot exhaust the
/// API's connections, memory or file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `RUSHLINE_HTTP_HEADER_TIMEOUT_MS`: a connection that has not sent a complete request head
    /// this long after it opened (or after its previous response) is closed. The contract's
    /// default is 30 s.
    pub header_read_timeout: Duration,
    /// `RUSHLINE_HTTP_IDLE_TIMEOUT_MS`: a kept-alive connection that starts no new request this
    /// long after its last response is closed. The header bound applies to that wait too, so
    /// the smaller of the two wins.
    pub keep_alive_idle: Duration,
    /// `RUSHLINE_HTTP_BODY_TIMEOUT_MS`: the whole request body must arrive within this, counted
    /// from when the handler starts reading it; else `408`.
    pub body_read_timeout: Duration,
    /// `RUSHLINE_HTTP_MAX_CONNECTIONS`: open connections past which new ones are answered `503`
    /// and closed at once, while the open ones keep being served.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            keep_alive_idle: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

impl Config {
    /// Reads the command line and the environment: `--help` and every error come back as
    /// [`ConfigError`] for `main` to print (see `rushline_runtime::config::or_exit`).
    pub fn from_args_and_env() -> Result<Self, ConfigError> {
        config::from_process::<ApiArgs>().and_then(Self::try_from)
    }

    /// Reads configuration through `lookup` (tests pass a map); unset variables take their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        config::parse::<ApiArgs>([OsString::from("rushline-api")], lookup).and_then(Self::try_from)
    }
}

impl TryFrom<ApiArgs> for Config {
    type Error = ConfigError;

    /// The settings clap could not check: the ticket keys, whose error must not quote them.
    fn try_from(args: ApiArgs) -> Result<Self, ConfigError> {
        // Every bound below was checked by the parser (`ApiArgs`' ranges), so the conversions
        // cannot lose anything; `usize` is at least 32 bits on every target tokio supports.
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let ticket_keys = args
            .ticket_keys
            .as_deref()
            .map(TicketKeys::parse)
            .transpose()
            .map_err(|e| ConfigError::Invalid {
                variable: "RUSHLINE_TICKET_KEYS".to_owned(),
                problem: format!("not usable (value not shown: it is secret): {e}"),
            })?;
        Ok(Self {
            shared: args.shared.into(),
            http_addr: args.http_addr,
            admin_token: args.admin_token,
            accept_batch: to_usize(args.accept_batch),
            accept_in_flight: to_usize(args.accept_in_flight),
            max_queue: args.max_queue,
            db_max_connections: args.db_max_connections,
            backend_timeout: args.backend_timeout_ms,
            clock_offset: TimeDelta::zero(),
            connections: ConnectionLimits {
                header_read_timeout: args.http_header_timeout_ms,
                keep_alive_idle: args.http_idle_timeout_ms,
                body_read_timeout: args.http_body_timeout_ms,
                max_connections: to_usize(args.http_max_connections),
            },
            rate_limits: args.rate_limits.into(),
            ticket_keys,
            ticket_cache_entries: to_usize(args.ticket_cache_entries),
        })
    }
}

/// Secrets stay out of logs and panics: the admin token shows only whether it is set, database
/// and Redis URLs without their passwords (see [`Shared`]'s `Debug`).
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("shared", &self.shared)
            .field("admin_token", &Redacted(&self.admin_token))
            .field("accept_batch", &self.accept_batch)
            .field("accept_in_flight", &self.accept_in_flight)
            .field("max_queue", &self.max_queue)
            .field("db_max_connections", &self.db_max_connections)
            .field("backend_timeout", &self.backend_timeout)
            .field("clock_offset", &self.clock_offset)
            .field("connections", &self.connections)
            .field("rate_limits", &self.rate_limits)
            // Key ids only (`TicketKeys`' `Debug`): never a seed.
            .field("ticket_keys", &self.ticket_keys)
            .field("ticket_cache_entries", &self.ticket_cache_entries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:8080");
        assert_eq!(config.shared.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(
            config.shared.database_url,
            "postgres://rushline:rushline@127.0.0.1:5432/rushline"
        );
        assert_eq!(config.admin_token, None);
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(30),
            "the contract's bound on a request head"
        );
        assert_eq!(config.connections, ConnectionLimits::default());
    }

    #[test]
    fn connection_bounds_are_read_and_zero_is_refused() {
        let config = Config::from_lookup(|n| match n {
            "RUSHLINE_HTTP_HEADER_TIMEOUT_MS" => Some("250".to_owned()),
            "RUSHLINE_HTTP_MAX_CONNECTIONS" => Some("7".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(config.connections.max_connections, 7);
        for name in [
            "RUSHLINE_HTTP_HEADER_TIMEOUT_MS",
            "RUSHLINE_HTTP_IDLE_TIMEOUT_MS",
            "RUSHLINE_HTTP_BODY_TIMEOUT_MS",
            "RUSHLINE_HTTP_MAX_CONNECTIONS",
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| "0".to_owned())).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn bad_numbers_are_reported_by_name() {
        let err = Config::from_lookup(|n| (n == "RUSHLINE_MAX_QUEUE").then(|| "lots".to_owned()))
            .unwrap_err();
        assert!(err.to_string().starts_with("RUSHLINE_MAX_QUEUE"));
    }

    #[test]
    fn out_of_range_is_refused_not_clamped() {
        for (name, value) in [
            ("RUSHLINE_ACCEPT_BATCH", "10000"),
            ("RUSHLINE_ACCEPT_IN_FLIGHT", "0"),
            ("RUSHLINE_DB_MAX_CONNECTIONS", "1001"),
            ("RUSHLINE_BACKEND_TIMEOUT_MS", "5"),
            ("RUSHLINE_STATUS_TTL_SECS", "0"),
            ("RUSHLINE_LOG_FORMAT", "yaml"),
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| value.to_owned())).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn ticket_keys_are_read_in_order_and_bad_ones_are_named() {
        let (a, b) = (
            tickets::TicketKey::generate(),
            tickets::TicketKey::generate(),
        );
        let list = format!("{},{}", b.to_secret_string(), a.to_secret_string());
        let config =
            Config::from_lookup(|n| (n == "RUSHLINE_TICKET_KEYS").then(|| list.clone())).unwrap();
        let keys = config.ticket_keys.unwrap();
        assert_eq!(keys.current().kid(), b.kid());
        assert_eq!(keys.all().len(), 2);
        assert_eq!(config.ticket_cache_entries, tickets::DEFAULT_CACHE_ENTRIES);
        assert!(Config::from_lookup(|_| None).unwrap().ticket_keys.is_none());
        for (name, value) in [
            ("RUSHLINE_TICKET_KEYS", "not-a-key".to_owned()),
            ("RUSHLINE_TICKET_KEYS", ",".to_owned()),
            (
                "RUSHLINE_TICKET_KEYS",
                format!("{},AAAA", a.to_secret_string()),
            ),
            ("RUSHLINE_TICKET_CACHE_ENTRIES", "10000001".to_owned()),
            ("RUSHLINE_TICKET_CACHE_ENTRIES", "-1".to_owned()),
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| value.clone())).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
            assert!(!err.to_string().contains(&a.to_secret_string()), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let ticket_key = tickets::TicketKey::generate();
        let config = Config::from_lookup(|n| match n {
            "RUSHLINE_ADMIN_TOKEN" => Some("admin-s3cret".to_owned()),
            "RUSHLINE_DATABASE_URL" => {
                Some("postgres://rushline:db-s3cret@db:5432/rushline".to_owned())
            }
            "RUSHLINE_REDIS_URL" => Some("redis://:redis-s3cret@cache:6379".to_owned()),
            "RUSHLINE_TICKET_KEYS" => Some(ticket_key.to_secret_string()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains(&ticket_key.to_secret_string()), "{shown}");
        assert!(shown.contains(ticket_key.kid()), "{shown}");
        for secret in ["admin-s3cret", "db-s3cret", "redis-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("postgres://rushline:***@db:5432/rushline"),
            "{shown}"
        );
        assert!(shown.contains("admin_token: Some(\"***\")"), "{shown}");
    }
}
