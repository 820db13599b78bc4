//! Worker configuration from the environment.

use std::net::SocketAddr;
use std::time::Duration;

/// Where a worker serves `/metrics` unless told otherwise. A second worker on the same machine
/// needs its own (`scripts/stack` hands out 9091, 9092, …).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9091";

/// A variable is set to something unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {value:?} is not {expected}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    expected: &'static str,
}

/// Everything `rushline-worker` reads at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RUSHLINE_REDIS_URL`.
    pub redis_url: String,
    /// `RUSHLINE_DATABASE_URL`.
    pub database_url: String,
    /// `RUSHLINE_KEY_NAMESPACE`: must match the API's.
    pub key_namespace: Option<String>,
    /// `RUSHLINE_DECIDE_BATCH`: requests one decide script call takes.
    pub decide_batch: usize,
    /// `RUSHLINE_DECIDE_IN_FLIGHT`: decide calls one campaign may have in flight at once from
    /// this worker, so Redis has the next batch in hand while a reply travels back.
    pub decide_in_flight: usize,
    /// `RUSHLINE_MAX_LOG_ENTRIES`: per-campaign decided batches waiting for PostgreSQL past which
    /// this worker stops deciding the campaign until persistence catches up.
    pub max_log_entries: u64,
    /// `RUSHLINE_PERSIST_ENTRIES`: log entries (decided batches) one PostgreSQL transaction takes.
    pub persist_entries: usize,
    /// `RUSHLINE_CLAIM_IDLE_MS`: log entries pending this long on a consumer are taken over
    /// (their worker is presumed dead).
    pub claim_idle: Duration,
    /// `RUSHLINE_SWEEP_MS`: how often every campaign is checked, whatever notifications said.
    pub sweep_every: Duration,
    /// `RUSHLINE_STATUS_TTL_SECS`: how long Redis keeps a persisted request's status.
    pub status_ttl: Duration,
    /// `RUSHLINE_BACKEND_TIMEOUT_MS`: bound on any one Redis or PostgreSQL call.
    pub backend_timeout: Duration,
    /// `RUSHLINE_SHUTDOWN_GRACE_MS`: how long shutdown may spend persisting what is left.
    pub shutdown_grace: Duration,
    /// `RUSHLINE_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `RUSHLINE_LOG_FORMAT`: `json` for machines.
    pub log_json: bool,
    /// `RUSHLINE_WORKER_METRICS_ADDR`: where `GET /metrics` is served (port 0 picks a free port;
    /// `off` = `None`, not served).
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// How this worker reaches Redis: a small pool of multiplexed connections (the persist loop
    /// runs one call at a time, the decide loop up to `decide_in_flight`, pipelined).
    pub fn queue_config(&self) -> rushline_queue::QueueConfig {
        rushline_queue::QueueConfig {
            namespace: self.key_namespace.clone(),
            timeout: self.backend_timeout,
            status_ttl: self.status_ttl,
            max_log_entries: self.max_log_entries,
            pool_size: 4,
            ..rushline_queue::QueueConfig::new(self.redis_url.clone())
        }
    }

    /// Reads the environment; unset variables take defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = |name: &str, default: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|_| ConfigError {
                    name,
                    value,
                    expected: "a non-negative integer",
                }),
            }
        };
        let ms = |name: &'static str, default: u64| {
            number(name, default).map(|v| Duration::from_millis(v.max(1)))
        };
        let metrics_addr = match text("RUSHLINE_WORKER_METRICS_ADDR", DEFAULT_METRICS_ADDR) {
            off if off.eq_ignore_ascii_case("off") => None,
            addr => Some(addr.parse().map_err(|_| ConfigError {
                name: "RUSHLINE_WORKER_METRICS_ADDR",
                value: addr,
                expected: "`off` or an address like 127.0.0.1:9091",
            })?),
        };
        Ok(Self {
            redis_url: text("RUSHLINE_REDIS_URL", "redis://127.0.0.1:6379"),
            database_url: text(
                "RUSHLINE_DATABASE_URL",
                "postgres://rushline:rushline@127.0.0.1:5432/rushline",
            ),
            key_namespace: lookup("RUSHLINE_KEY_NAMESPACE").filter(|v| !v.is_empty()),
            decide_batch: number("RUSHLINE_DECIDE_BATCH", 256)?.clamp(1, 4096) as usize,
            decide_in_flight: number("RUSHLINE_DECIDE_IN_FLIGHT", 2)?.clamp(1, 16) as usize,
            max_log_entries: number(
                "RUSHLINE_MAX_LOG_ENTRIES",
                rushline_queue::DEFAULT_MAX_LOG_ENTRIES,
            )?
            .max(1),
            persist_entries: number("RUSHLINE_PERSIST_ENTRIES", 16)?.clamp(1, 1024) as usize,
            claim_idle: ms("RUSHLINE_CLAIM_IDLE_MS", 10_000)?,
            sweep_every: ms("RUSHLINE_SWEEP_MS", 1_000)?,
            status_ttl: Duration::from_secs(number("RUSHLINE_STATUS_TTL_SECS", 600)?.max(1)),
            backend_timeout: ms("RUSHLINE_BACKEND_TIMEOUT_MS", 5_000)?,
            shutdown_grace: ms("RUSHLINE_SHUTDOWN_GRACE_MS", 10_000)?,
            db_max_connections: number("RUSHLINE_DB_MAX_CONNECTIONS", 8)?.clamp(1, 1000) as u32,
            log_json: text("RUSHLINE_LOG_FORMAT", "pretty") == "json",
            metrics_addr,
        })
    }
}
