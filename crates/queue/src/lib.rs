//! rushline's Redis layer: the one definition of every key, script and channel.
//!
//! # Layout
//!
//! Follow one request through Redis:
//!
//! 1. [`accept`] — the API's hot path. One `EVALSHA` of `lua/accept.lua` per *group* of
//!    concurrent requests to a campaign: checks the campaign, claims idempotency keys, writes
//!    each request's status record and pushes it onto the campaign's queue (or decides it at once,
//!    by decide.lua's rule: every request of an instant campaign, `"decide": "instant"`, and any
//!    request once stock is gone).
//! 2. [`decide`] — the worker. `lua/decide.lua` pops a batch off the queue and decides each
//!    request in FIFO order, writing final status records and appending the batch to the
//!    campaign's decision log (a Redis Stream) in the same atomic step. An issued request gets
//!    the campaign's next coupon sequence number; its code is minted from that number outside
//!    Redis by whoever reads it ([`codes`]).
//! 3. [`decision_log`] — the worker's persister reads the log through a consumer group, writes PostgreSQL,
//!    then acknowledges with `lua/ack.lua`; entries of a dead consumer are claimed after an idle
//!    time. `lua/rollback.lua` undoes decisions PostgreSQL refused. Entries no worker can ever
//!    persist go to the campaign's dead-letter stream ([`dead_letters`]) and back on replay.
//!    Entries of a Redis state older than the record's rebuild epoch (decided before Redis lost
//!    its data, committed after a rebuild) are refused by the record; [`requeue`] puts their
//!    requests back at the head of the queue to be decided again.
//! 4. [`status`] — `GET /v1/requests/{id}` and `GET /v1/campaigns/{id}` read records here.
//! 5. [`warm`] — a campaign's Redis state is (re)built from PostgreSQL when missing.
//! 6. [`admin`] — operator actions: close a campaign now, raise its stock, read its pipeline
//!    (`lua/close.lua`, `lua/add_stock.lua`, `lua/stats.lua`); PostgreSQL changes first.
//! 7. [`notify`] — pub/sub on dedicated connections: workers learn of new work, API processes
//!    learn which requests were decided (to answer `?wait=` callers at once).
//!
//! [`rate_limit`] — per-(campaign, user) and per-client-address limits (`lua/rate_limit.lua`,
//! GCRA), checked by the API before a request reaches step 1.
//! [`reconcile`] reads a campaign's Redis state field by field for `rushline reconcile`.
//! [`keys`] names every key; [`record`] encodes the compact records stored under them.
//! [`clock`] reads Redis `TIME`, the one clock every window decision is made with.
//! Every key starts with `rushline:` and carries its campaign's `{tag}`, so each script touches
//! a single Redis Cluster slot.

pub mod accept;
pub mod admin;
pub mod clock;
pub mod codes;
pub mod dead_letters;
pub mod decide;
pub mod decision_log;
pub mod error;
pub mod keys;
pub mod notify;
pub mod rate_limit;
pub mod reconcile;
pub mod record;
pub mod requeue;
mod scripts;
pub mod status;
pub mod warm;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

pub use accept::{AcceptItem, AcceptOutcome};
pub use admin::{CloseOutcome, PipelineStats, RefusalTally, StockOutcome};
pub use clock::ClockReading;
pub use dead_letters::{DeadLetter, DeadLetterReason};
pub use decide::DecideOutcome;
pub use decision_log::{LogEntry, LogRead, Rollback, UnreadableEntry};
pub use error::QueueError;
pub use keys::{CampaignKeys, Keys};
pub use notify::{Notifications, Subscriber};
pub use reconcile::RedisCampaign;
pub use requeue::Requeued;
pub use status::CampaignState;
pub use warm::{WarmError, Warmed};

/// Default bound on a campaign's decision log, in entries (each holds one decided batch, at most
/// a few hundred decisions): about two million decisions waiting for PostgreSQL.
pub const DEFAULT_MAX_LOG_ENTRIES: u64 = 8192;

/// Consumer group every persister reads the decision logs through.
pub const PERSIST_GROUP: &str = "persist";

/// How a process reaches Redis.
#[derive(Clone)]
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

/// The URL's password stays out of logs and panics.
impl std::fmt::Debug for QueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConfig")
            .field("url", &rushline_domain::secret::redact_url(&self.url))
            .field("namespace", &self.namespace)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("status_ttl", &self.status_ttl)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("max_queue", &self.max_queue)
            .field("max_log_entries", &self.max_log_entries)
            .finish()
    }
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
///
/// Every handler clones it (through the API's state), so everything but the pool (itself an
/// `Arc`) sits behind an `Arc`: a clone is a few reference counts, never a string copy.
///
/// Each call takes one of `pool_size` connections round-robin, kept checked out between calls
/// while busy (`Conns`): a pool checkout costs a Redis round trip of its own (deadpool-redis
/// sends `UNWATCH` + `PING` to recycle a connection), which the profile showed doubling the
/// round trips of every single-command call and of every accept group.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    conns: Arc<Conns>,
    client: Arc<redis::Client>,
    keys: Arc<Keys>,
    code_keys: Arc<codes::CodeKeys>,
    config: Arc<QueueConfig>,
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
            conns: Arc::new(Conns::new(config.pool_size)),
            pool,
            client: Arc::new(client),
            keys: Arc::new(keys),
            code_keys: Arc::default(),
            config: Arc::new(config),
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

    /// Every key of this deployment (under [`Keys::root`]), sorted, each once: for tests that
    /// wipe a namespace and for the load test's key counts. `SCAN`, not `KEYS`, so a shared Redis
    /// holding millions of other keys is never blocked; each step is bounded by the timeout.
    pub async fn deployment_keys(&self) -> Result<Vec<String>, QueueError> {
        let pattern = format!("{}*", self.keys.root());
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let pattern = pattern.as_str();
            let (next, batch): (u64, Vec<String>) = self
                .run(|mut conn| async move {
                    Ok(redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(10_000)
                        .query_async(&mut conn)
                        .await?)
                })
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Runs `op` on one of the process's connections under the configured timeout.
    ///
    /// When a call finds its connection broken (I/O, dropped, timed out), every held connection
    /// is let go — they almost always share the cause (Redis restarted) — so the next calls
    /// connect afresh through the pool; Redis answering with an error keeps them.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, QueueError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, QueueError>>,
    {
        let work = async {
            let conn = self.conns.pick().checkout(&self.pool).await?;
            op(conn).await
        };
        let result = tokio::time::timeout(self.config.timeout, work)
            .await
            .unwrap_or(Err(QueueError::Timeout));
        if let Err(e) = &result
            && e.breaks_connection()
        {
            self.conns.release_all();
        }
        result
    }
}

/// A held connection unused for this long goes back through the pool, whose recycling check
/// (`PING`) proves it alive before the next call, as before; under load no connection ever idles
/// this long, so the hot path never pays that round trip.
const REVALIDATE_AFTER: Duration = Duration::from_secs(1);

/// The connections a process's Redis calls go through: `pool_size` slots, each holding one
/// pooled multiplexed connection checked out (so the pool counts it as in use), whose handle is
/// cloned for every call. Multiplexing lets any number of calls share a slot at once.
struct Conns {
    slots: Box<[Slot]>,
    next: AtomicUsize,
}

impl Conns {
    fn new(size: usize) -> Self {
        Self {
            slots: (0..size.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> &Slot {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        &self.slots[i]
    }

    /// Lets every held connection go, taking each out of the pool (it is not reused). Never
    /// waits: a slot locked right now is being filled afresh, or its next failure releases it,
    /// and waiting could stretch the failed call past its timeout.
    fn release_all(&self) {
        for slot in &self.slots {
            if let Ok(mut held) = slot.held.try_lock()
                && let Some(held) = held.take()
            {
                drop(deadpool_redis::Connection::take(held.conn));
            }
        }
    }
}

/// One slot: empty until first used, after a failure or after idling. The lock is held only to
/// clone the handle, or while filling an empty slot (callers of that slot wait for it rather than
/// each checking out a connection of their own).
#[derive(Default)]
struct Slot {
    held: tokio::sync::Mutex<Option<Held>>,
}

struct Held {
    conn: deadpool_redis::Connection,
    used: Instant,
}

impl Slot {
    /// A handle on this slot's connection, checked out of the pool first if the slot is empty
    /// or its connection idled past [`REVALIDATE_AFTER`].
    async fn checkout(&self, pool: &Pool) -> Result<MultiplexedConnection, QueueError> {
        let mut held = self.held.lock().await;
        let now = Instant::now();
        match held.as_mut() {
            Some(h) if now.duration_since(h.used) < REVALIDATE_AFTER => {
                h.used = now;
                return Ok(MultiplexedConnection::clone(&h.conn));
            }
            // Back to the pool: the checkout below recycles (pings) it or opens another.
            _ => *held = None,
        }
        let conn = pool.get().await.map_err(QueueError::from_pool)?;
        let handle = MultiplexedConnection::clone(&conn);
        *held = Some(Held { conn, used: now });
        Ok(handle)
    }
}
