//! rushline's Redis layer: the one definition of every key, script and channel.
//!
//! # Layout
//!
//! Follow one request through Redis:
//!
//! 1. [`accept`] — the API's hot path. One `EVALSHA` of `lua/accept.lua` per *group* of
//!    concurrent requests to a campaign: checks the campaign, claims idempotency keys, writes
//!    each request's status record and pushes it onto the campaign's queue (or decides it at once
//!    when stock is gone).
//! 2. [`decide`] — the worker. `lua/decide.lua` pops a batch off the queue and decides each
//!    request in FIFO order, writing final status records and appending the batch to the
//!    campaign's decision log (a Redis Stream) in the same atomic step.
//! 3. [`log`] — the worker's persister reads the log through a consumer group, writes PostgreSQL,
//!    then acknowledges with `lua/ack.lua`; entries of a dead consumer are claimed after an idle
//!    time. `lua/rollback.lua` undoes decisions PostgreSQL refused.
//! 4. [`status`] — `GET /v1/requests/{id}` and `GET /v1/campaigns/{id}` read records here.
//! 5. [`warm`] — a campaign's Redis state is (re)built from PostgreSQL when missing.
//! 6. [`admin`] — operator actions: close a campaign now, raise its stock, read its pipeline
//!    (`lua/close.lua`, `lua/add_stock.lua`, `lua/stats.lua`); PostgreSQL changes first.
//! 7. [`notify`] — pub/sub on dedicated connections: workers learn of new work, API processes
//!    learn which requests were decided (to answer `?wait=` callers at once).
//!
//! [`keys`] names every key; [`record`] encodes the compact records stored under them.
//! Every key starts with `rushline:` and carries its campaign's `{tag}`, so each script touches
//! a single Redis Cluster slot.

pub mod accept;
pub mod admin;
pub mod decide;
pub mod error;
pub mod keys;
pub mod log;
pub mod notify;
pub mod record;
mod scripts;
pub mod status;
pub mod warm;

use std::future::Future;
use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};

pub use accept::{AcceptItem, AcceptOutcome};
pub use admin::{CloseOutcome, PipelineStats, RefusalTally, StockOutcome};
pub use decide::DecideOutcome;
pub use error::QueueError;
pub use keys::{CampaignKeys, Keys};
pub use log::{LogEntry, Rollback};
pub use notify::{Notifications, Subscriber};
pub use status::CampaignState;
pub use warm::{WarmError, Warmed};

/// Default bound on a campaign's decision log, in entries (each holds one decided batch, at most
/// a few hundred decisions): about two million decisions waiting for PostgreSQL.
pub const DEFAULT_MAX_LOG_ENTRIES: u64 = 8192;

/// Consumer group every persister reads the decision logs through.
pub const PERSIST_GROUP: &str = "persist";

/// How a process reaches Redis.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `redis://…` URL.
    pub url: String,
    /// Optional namespace inserted after `rushline:` (isolates deployments or tests sharing one
    /// Redis).
    pub namespace: Option<String>,
    /// Pooled multiplexed connections.
    pub pool_size: usize,
    /// Upper bound for any one Redis call, so a stuck Redis never hangs a caller.
    pub timeout: Duration,
    /// How long a final status stays in Redis once PostgreSQL holds it.
    pub status_ttl: Duration,
    /// How long an idempotency key is remembered (the contract asks for at least 24 h).
    pub idempotency_ttl: Duration,
    /// Queue length past which new requests are shed with 503 instead of queued.
    pub max_queue: u64,
    /// Decision-log entries (decided batches not yet in PostgreSQL) past which workers stop
    /// deciding a campaign and decisions at once are shed: with `max_queue`, the bound on what
    /// Redis buffers while PostgreSQL is away.
    pub max_log_entries: u64,
}

impl QueueConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: None,
            pool_size: 16,
            timeout: Duration::from_secs(2),
            status_ttl: Duration::from_secs(600),
            idempotency_ttl: Duration::from_secs(25 * 3600),
            max_queue: 1_000_000,
            max_log_entries: DEFAULT_MAX_LOG_ENTRIES,
        }
    }
}

/// A handle on rushline's Redis state: cheap to clone, shared by every task of a process.
///
/// Commands go through a pool of multiplexed connections; nothing blocking ever runs on them
/// (blocking reads and subscriptions get dedicated connections in [`notify`]).
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    client: redis::Client,
    keys: Keys,
    config: QueueConfig,
}

impl Queue {
    /// Builds the pool; connects lazily.
    pub fn new(config: QueueConfig) -> Result<Self, QueueError> {
        let keys = Keys::new(config.namespace.as_deref())?;
        let client = redis::Client::open(config.url.as_str())?;
        let mut pool_config = deadpool_redis::Config::from_url(config.url.clone());
        pool_config.pool = Some(PoolConfig {
            max_size: config.pool_size,
            timeouts: Timeouts {
                wait: Some(config.timeout),
                create: Some(config.timeout),
                recycle: Some(config.timeout),
            },
            ..PoolConfig::default()
        });
        let pool = pool_config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| QueueError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            client,
            keys,
            config,
        })
    }

    /// Every key name.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Pooled connections: (in use, idle).
    pub fn pool_usage(&self) -> (usize, usize) {
        let status = self.pool.status();
        (
            status.size.saturating_sub(status.available),
            status.available,
        )
    }

    /// `PING`: is Redis reachable?
    pub async fn ping(&self) -> Result<(), QueueError> {
        self.run(|mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok(())
        })
        .await
    }

    /// Runs `op` on a pooled connection under the configured timeout.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, QueueError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: Future<Output = Result<T, QueueError>>,
    {
        let work = async {
            let conn = self.pool.get().await.map_err(QueueError::from_pool)?;
            op(conn).await
        };
        tokio::time::timeout(self.config.timeout, work)
            .await
            .map_err(|_| QueueError::Timeout)?
    }
}
