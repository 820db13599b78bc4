//! Configuration from the environment (CONTRACT.md lists the variables).

use std::time::Duration;

use chrono::TimeDelta;

/// A variable is set to something unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    name: &'static str,
    problem: String,
}

/// Everything `rushline-api` reads at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RUSHLINE_HTTP_ADDR`: where to listen (port 0 picks a free one).
    pub http_addr: String,
    /// `RUSHLINE_REDIS_URL`.
    pub redis_url: String,
    /// `RUSHLINE_DATABASE_URL`.
    pub database_url: String,
    /// `RUSHLINE_ADMIN_TOKEN`: admin endpoints are disabled (403) when unset.
    pub admin_token: Option<String>,
    /// `RUSHLINE_KEY_NAMESPACE`: optional segment after `rushline:` in every Redis key.
    pub key_namespace: Option<String>,
    /// `RUSHLINE_ACCEPT_BATCH`: most requests one accept script call takes (group commit).
    pub accept_batch: usize,
    /// `RUSHLINE_ACCEPT_IN_FLIGHT`: accept script calls in flight at once; while all are busy,
    /// arriving requests gather into the next group.
    pub accept_in_flight: usize,
    /// `RUSHLINE_MAX_QUEUE`: per-campaign queue length past which requests are shed with 503.
    pub max_queue: u64,
    /// `RUSHLINE_MAX_LOG_ENTRIES`: per-campaign decided batches waiting for PostgreSQL past which
    /// decisions at once are shed with 503 (must match the workers').
    pub max_log_entries: u64,
    /// `RUSHLINE_STATUS_TTL_SECS`: how long Redis keeps a persisted request's status.
    pub status_ttl: Duration,
    /// `RUSHLINE_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `RUSHLINE_BACKEND_TIMEOUT_MS`: bound on any one Redis or PostgreSQL call.
    pub backend_timeout: Duration,
    /// `RUSHLINE_LOG_FORMAT`: `json` for machines, anything else for people.
    pub log_json: bool,
    /// Added to this host's clock wherever the API reads it. Zero unless a test sets it (it is
    /// not read from the environment) to play a host whose clock is wrong: window decisions use
    /// Redis's clock, and only the reported skew may move with it.
    pub clock_offset: TimeDelta,
    /// How the API treats its HTTP connections.
    pub connections: ConnectionLimits,
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
    /// Reads the environment; unset variables take the contract's defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = |name: &str, default: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError {
                    name,
                    problem: format!("{v:?} is not a non-negative integer"),
                }),
            }
        };
        // Connection bounds are refused, not clamped, when unusable: a zero timeout would close
        // every connection, which nobody means.
        let positive_millis = |name: &'static str, default: Duration| {
            let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
            match number(name, default_ms)? {
                0 => Err(ConfigError {
                    name,
                    problem: "must be at least 1 millisecond".into(),
                }),
                ms => Ok(Duration::from_millis(ms)),
            }
        };
        let defaults = ConnectionLimits::default();
        Ok(Self {
            http_addr: text("RUSHLINE_HTTP_ADDR", "127.0.0.1:8080"),
            redis_url: text("RUSHLINE_REDIS_URL", "redis://127.0.0.1:6379"),
            database_url: text(
                "RUSHLINE_DATABASE_URL",
                "postgres://rushline:rushline@127.0.0.1:5432/rushline",
            ),
            admin_token: lookup("RUSHLINE_ADMIN_TOKEN").filter(|t| !t.is_empty()),
            key_namespace: lookup("RUSHLINE_KEY_NAMESPACE").filter(|t| !t.is_empty()),
            accept_batch: number("RUSHLINE_ACCEPT_BATCH", 256)?.clamp(1, 4096) as usize,
            accept_in_flight: number("RUSHLINE_ACCEPT_IN_FLIGHT", 4)?.clamp(1, 256) as usize,
            max_queue: number("RUSHLINE_MAX_QUEUE", 1_000_000)?.max(1),
            max_log_entries: number(
                "RUSHLINE_MAX_LOG_ENTRIES",
                rushline_queue::DEFAULT_MAX_LOG_ENTRIES,
            )?
            .max(1),
            status_ttl: Duration::from_secs(number("RUSHLINE_STATUS_TTL_SECS", 600)?.max(1)),
            db_max_connections: number("RUSHLINE_DB_MAX_CONNECTIONS", 16)?.clamp(1, 1000) as u32,
            backend_timeout: Duration::from_millis(
                number("RUSHLINE_BACKEND_TIMEOUT_MS", 2000)?.max(10),
            ),
            log_json: text("RUSHLINE_LOG_FORMAT", "pretty") == "json",
            connections: ConnectionLimits {
                header_read_timeout: positive_millis(
                    "RUSHLINE_HTTP_HEADER_TIMEOUT_MS",
                    defaults.header_read_timeout,
                )?,
                keep_alive_idle: positive_millis(
                    "RUSHLINE_HTTP_IDLE_TIMEOUT_MS",
                    defaults.keep_alive_idle,
                )?,
                body_read_timeout: positive_millis(
                    "RUSHLINE_HTTP_BODY_TIMEOUT_MS",
                    defaults.body_read_timeout,
                )?,
                max_connections: match number(
                    "RUSHLINE_HTTP_MAX_CONNECTIONS",
                    defaults.max_connections as u64,
                )? {
                    0 => {
                        return Err(ConfigError {
                            name: "RUSHLINE_HTTP_MAX_CONNECTIONS",
                            problem: "must be at least 1".into(),
                        });
                    }
                    // A tokio semaphore holds at most usize::MAX >> 3 permits.
                    n => usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= tokio::sync::Semaphore::MAX_PERMITS)
                        .ok_or_else(|| ConfigError {
                            name: "RUSHLINE_HTTP_MAX_CONNECTIONS",
                            problem: format!("{n} is too large"),
                        })?,
                },
            },
            clock_offset: TimeDelta::zero(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:8080");
        assert_eq!(config.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(
            config.database_url,
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
}
