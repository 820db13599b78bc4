//! Worker configuration from the environment or the matching flags.
//!
//! [`WorkerArgs`] declares every setting once — variable, flag, default, limits — and `--help`
//! prints them all; [`Config`] is what the worker runs with. A value out of range is an error at
//! start-up naming its variable, never clamped.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use rushline_runtime::config::{self, Shared, SharedArgs, millis};

pub use rushline_runtime::config::ConfigError;

/// Where a worker serves `/metrics` unless told otherwise. A second worker on the same machine
/// needs its own (`scripts/stack` hands out 9091, 9092, …).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9091";

/// `rushline-worker`: decides queued requests in Redis and persists them to PostgreSQL.
///
/// Every setting is an environment variable; the flag of the same name overrides it.
#[derive(Parser)]
#[command(name = "rushline-worker", version, about)]
pub struct WorkerArgs {
    #[command(flatten)]
    shared: SharedArgs,

    /// Requests one decide script call takes; 1 to 4096
    #[arg(long, env = "RUSHLINE_DECIDE_BATCH", default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..=4096))]
    decide_batch: u64,

    /// Decide calls one campaign may have in flight at once from this worker; 1 to 16
    #[arg(long, env = "RUSHLINE_DECIDE_IN_FLIGHT", default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(1..=16))]
    decide_in_flight: u64,

    /// Decided batches one PostgreSQL transaction takes; 1 to 1024
    #[arg(long, env = "RUSHLINE_PERSIST_ENTRIES", default_value_t = 16,
        value_parser = clap::value_parser!(u64).range(1..=1024))]
    persist_entries: u64,

    /// Milliseconds a log entry may stay pending on a consumer before it is taken over (its
    /// worker is presumed dead); at least 1
    #[arg(long, env = "RUSHLINE_CLAIM_IDLE_MS", default_value = "10000",
        value_parser = millis(1))]
    claim_idle_ms: Duration,

    /// Milliseconds between two sweeps of every campaign, whatever notifications said; at
    /// least 1
    #[arg(long, env = "RUSHLINE_SWEEP_MS", default_value = "1000",
        value_parser = millis(1))]
    sweep_ms: Duration,

    /// Bound on any one Redis or PostgreSQL call, in milliseconds; at least 1
    #[arg(long, env = "RUSHLINE_BACKEND_TIMEOUT_MS", default_value = "5000",
        value_parser = millis(1))]
    backend_timeout_ms: Duration,

    /// Milliseconds shutdown may spend persisting what is left; at least 1
    #[arg(long, env = "RUSHLINE_SHUTDOWN_GRACE_MS", default_value = "10000",
        value_parser = millis(1))]
    shutdown_grace_ms: Duration,

    /// PostgreSQL pool size; 1 to 1000
    #[arg(long, env = "RUSHLINE_DB_MAX_CONNECTIONS", default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_max_connections: u32,

    /// Where `GET /metrics` is served (port 0 picks a free one), or `off`
    #[arg(long, env = "RUSHLINE_WORKER_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR,
        value_parser = metrics_addr)]
    worker_metrics_addr: MetricsAddr,
}

/// `RUSHLINE_WORKER_METRICS_ADDR`: an address, or `off`.
#[derive(Clone, Copy)]
struct MetricsAddr(Option<SocketAddr>);

fn metrics_addr(value: &str) -> Result<MetricsAddr, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr(None));
    }
    value
        .parse()
        .map(|addr| MetricsAddr(Some(addr)))
        .map_err(|_| "expected `off` or an address like 127.0.0.1:9091".to_owned())
}

/// Everything `rushline-worker` reads at start-up.
#[derive(Clone)]
pub struct Config {
    /// What the API must agree on: Redis, PostgreSQL, the key namespace, the decision-log bound
    /// (past which this worker stops deciding a campaign until persistence catches up), status
    /// TTL and log format.
    pub shared: Shared,
    /// `RUSHLINE_DECIDE_BATCH`: requests one decide script call takes.
    pub decide_batch: usize,
    /// `RUSHLINE_DECIDE_IN_FLIGHT`: decide calls one campaign may have in flight at once from
    /// this worker, so Redis has the next batch in hand while a reply travels back.
    pub decide_in_flight: usize,
    /// `RUSHLINE_PERSIST_ENTRIES`: log entries (decided batches) one PostgreSQL transaction takes.
    pub persist_entries: usize,
    /// `RUSHLINE_CLAIM_IDLE_MS`: log entries pending this long on a consumer are taken over
    /// (their worker is presumed dead).
    pub claim_idle: Duration,
    /// `RUSHLINE_SWEEP_MS`: how often every campaign is checked, whatever notifications said.
    pub sweep_every: Duration,
    /// `RUSHLINE_BACKEND_TIMEOUT_MS`: bound on any one Redis or PostgreSQL call.
    pub backend_timeout: Duration,
    /// `RUSHLINE_SHUTDOWN_GRACE_MS`: how long shutdown may spend persisting what is left.
    pub shutdown_grace: Duration,
    /// `RUSHLINE_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `RUSHLINE_WORKER_METRICS_ADDR`: where `GET /metrics` is served (port 0 picks a free port;
    /// `off` = `None`, not served).
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// How this worker reaches Redis: one multiplexed connection, which the persist loop (one
    /// call at a time) and the decide loop (up to `decide_in_flight` calls, pipelined on it)
    /// share.
    pub fn queue_config(&self) -> rushline_queue::QueueConfig {
        rushline_queue::QueueConfig {
            namespace: self.shared.key_namespace.clone(),
            timeout: self.backend_timeout,
            status_ttl: self.shared.status_ttl,
            max_log_entries: self.shared.max_log_entries,
            cluster: self.shared.redis_cluster,
            ..rushline_queue::QueueConfig::new(self.shared.redis_url.clone())
        }
    }

    /// Reads the command line and the environment: `--help` and every error come back as
    /// [`ConfigError`] for `main` to print (see `rushline_runtime::config::or_exit`).
    pub fn from_args_and_env() -> Result<Self, ConfigError> {
        config::from_process::<WorkerArgs>().map(Self::from)
    }

    /// Reads configuration through `lookup`; unset variables take their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        config::parse::<WorkerArgs>([OsString::from("rushline-worker")], lookup).map(Self::from)
    }
}

impl From<WorkerArgs> for Config {
    fn from(args: WorkerArgs) -> Self {
        // The parser checked every bound (`WorkerArgs`' ranges), all far below `u32::MAX`.
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            shared: args.shared.into(),
            decide_batch: to_usize(args.decide_batch),
            decide_in_flight: to_usize(args.decide_in_flight),
            persist_entries: to_usize(args.persist_entries),
            claim_idle: args.claim_idle_ms,
            sweep_every: args.sweep_ms,
            backend_timeout: args.backend_timeout_ms,
            shutdown_grace: args.shutdown_grace_ms,
            db_max_connections: args.db_max_connections,
            metrics_addr: args.worker_metrics_addr.0,
        }
    }
}

/// Secrets stay out of logs and panics: database and Redis URLs show without their passwords
/// (see [`Shared`]'s `Debug`).
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("shared", &self.shared)
            .field("decide_batch", &self.decide_batch)
            .field("decide_in_flight", &self.decide_in_flight)
            .field("persist_entries", &self.persist_entries)
            .field("claim_idle", &self.claim_idle)
            .field("sweep_every", &self.sweep_every)
            .field("backend_timeout", &self.backend_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("db_max_connections", &self.db_max_connections)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_readme() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.decide_batch, 256);
        assert_eq!(config.decide_in_flight, 2);
        assert_eq!(config.persist_entries, 16);
        assert_eq!(config.backend_timeout, Duration::from_secs(5));
        assert_eq!(config.db_max_connections, 8);
        assert_eq!(config.metrics_addr, DEFAULT_METRICS_ADDR.parse().ok());
        assert_eq!(
            config.shared.max_log_entries,
            rushline_queue::DEFAULT_MAX_LOG_ENTRIES
        );
    }

    #[test]
    fn metrics_can_be_switched_off_and_bad_addresses_are_named() {
        let off =
            Config::from_lookup(|n| (n == "RUSHLINE_WORKER_METRICS_ADDR").then(|| "off".into()));
        assert_eq!(off.unwrap().metrics_addr, None);
        let err = Config::from_lookup(|n| {
            (n == "RUSHLINE_WORKER_METRICS_ADDR").then(|| "nowhere".into())
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("RUSHLINE_WORKER_METRICS_ADDR"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_is_refused_not_clamped() {
        for (name, value) in [
            ("RUSHLINE_DECIDE_BATCH", "10000"),
            ("RUSHLINE_DECIDE_IN_FLIGHT", "0"),
            ("RUSHLINE_PERSIST_ENTRIES", "2000"),
            ("RUSHLINE_SWEEP_MS", "0"),
            ("RUSHLINE_DB_MAX_CONNECTIONS", "1001"),
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| value.to_owned())).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config::from_lookup(|n| match n {
            "RUSHLINE_DATABASE_URL" => {
                Some("postgres://rushline:db-s3cret@db:5432/rushline".to_owned())
            }
            "RUSHLINE_REDIS_URL" => Some("redis://:redis-s3cret@cache:6379".to_owned()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{config:?}");
        for secret in ["db-s3cret", "redis-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("postgres://rushline:***@db:5432/rushline"),
            "{shown}"
        );
    }
}
