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
//! [`waiting_room`] — a campaign's virtual waiting room (`lua/waiting_room.lua`): joining the
//! line, a user's place, the serving counter (a token bucket in Redis, the same for every
//! replica) and an operator's rate / pause; gated in front of step 1 by the API.
//! [`rate_limit`] — per-(campaign, user) and per-client-address limits (`lua/rate_limit.lua`,
//! GCRA), checked by the API before a request reaches step 1.
//! [`reconcile`] reads a campaign's Redis state field by field for `rushline reconcile`.
//! [`keys`] names every key; [`record`] encodes the compact records stored under them.
//! [`ticket_key`] shares the waiting room's development ticket key between API replicas.
//! [`clock`] reads Redis `TIME`, the one clock every window decision is made with.
//! `connection.rs` holds the one multiplexed connection (a redis-rs `ConnectionManager`, or its
//! cluster client on a Redis Cluster: [`RedisConnection`]) every call above goes through.
//! Every key starts with `rushline:` and carries its campaign's `{tag}`, so each script touches
//! a single Redis Cluster slot.

pub mod accept;
pub mod admin;
pub mod behind;
pub mod clock;
pub mod codes;
mod connection;
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
pub mod ticket_key;
pub mod waiting_room;
pub mod warm;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::connection::{Connection, RedisTarget};

pub use connection::RedisConnection;

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
pub use waiting_room::{
    JoinOutcome, Placement, QueueCounter, QueuePlace, ShownWork, WaitingRoomRead,
};
pub use warm::{WarmError, Warmed};

/// Default bound on a campaign's decision log, in entries (each holds one decided batch, at most
/// a few hundred decisions): about two million decisions waiting for PostgreSQL.
pub const DEFAULT_MAX_LOG_ENTRIES: u64 = 8192;

/// Consumer group every persister reads the decision logs through.
pub const PERSIST_GROUP: &str = "persist";

/// How a process reaches Redis.
#[derive(Clone)]
pub struct QueueConfig {
    /// `redis://…` URL; or a Redis Cluster's node URLs, separated by commas.
    pub url: String,
    /// Treat a single URL as a Redis Cluster's seed node (`RUSHLINE_REDIS_CLUSTER=1`); a list of
    /// URLs is a cluster either way.
    pub cluster: bool,
    /// Optional namespace inserted after `rushline:` (isolates deployments or tests sharing one
    /// Redis).
    pub namespace: Option<String>,
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
            .field("cluster", &self.cluster)
            .field("namespace", &self.namespace)
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
            cluster: false,
            namespace: None,
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
/// Commands go through one multiplexed connection (see `connection.rs`: a redis-rs
/// `ConnectionManager`, or its cluster client, connected on first use, reconnecting by itself);
/// nothing blocking ever runs on it (subscriptions get dedicated connections in [`notify`]).
///
/// Every handler clones it (through the API's state), so everything sits behind an `Arc`: a
/// clone is a few reference counts, never a string copy.
#[derive(Clone)]
pub struct Queue {
    connection: Arc<Connection>,
    target: Arc<RedisTarget>,
    keys: Arc<Keys>,
    code_keys: Arc<codes::CodeKeys>,
    config: Arc<QueueConfig>,
    failed_calls: Arc<AtomicU64>,
}

impl Queue {
    /// Checks the configuration; connects on first use, so it succeeds with Redis down.
    pub fn new(config: QueueConfig) -> Result<Self, QueueError> {
        let keys = Keys::new(config.namespace.as_deref())?;
        let target = RedisTarget::parse(&config.url, config.cluster, config.timeout)?;
        Ok(Self {
            connection: Arc::new(Connection::new(target.clone(), config.timeout)),
            target: Arc::new(target),
            keys: Arc::new(keys),
            code_keys: Arc::default(),
            config: Arc::new(config),
            failed_calls: Arc::default(),
        })
    }

    /// How many Redis calls through this queue (and its clones) have failed so far. A process
    /// that decides compares a campaign's state with the record again after any failure
    /// ([`behind::BehindCheck`]): a failover may
    /// have promoted a replica that lacks the master's last writes, and deciding from such a
    /// state would hand out numbers and stock the record has already given away.
    pub fn failed_calls(&self) -> u64 {
        self.failed_calls.load(Ordering::Relaxed)
    }

    /// Every key name.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The process's one multiplexed connection as (in use, idle) connections: (0, 0) before the
    /// first call connects it; otherwise in use while any call is in flight, else idle.
    pub fn pool_usage(&self) -> (usize, usize) {
        self.connection.usage()
    }

    /// The process's connection itself (connected first if needed), for commands rushline
    /// does not wrap: tests and operator tools. It carries no per-call timeout of its own.
    pub async fn connection(&self) -> Result<RedisConnection, QueueError> {
        self.run(|conn| async move { Ok(conn) }).await
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
    /// holding millions of other keys is never blocked; each step is bounded by the timeout. On a
    /// cluster every master is scanned.
    pub async fn deployment_keys(&self) -> Result<Vec<String>, QueueError> {
        let masters = if self.target.is_cluster() {
            self.cluster_masters()
                .await?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        let pattern = format!("{}*", self.keys.root());
        let mut keys = Vec::new();
        for master in &masters {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(10_000);
                let (next, batch): (u64, Vec<String>) = self.on_node(master.as_ref(), scan).await?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// A cluster's masters that are not failing, as (host, port), from `CLUSTER NODES`.
    pub async fn cluster_masters(&self) -> Result<Vec<(String, u16)>, QueueError> {
        let nodes: String = self
            .run(|mut conn| async move {
                Ok(redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(parse_cluster_masters(&nodes))
    }

    /// Sends `cmd` to `node` (a cluster master's host and port) or, with none, as usual.
    pub(crate) async fn on_node<T: redis::FromRedisValue>(
        &self,
        node: Option<&(String, u16)>,
        cmd: redis::Cmd,
    ) -> Result<T, QueueError> {
        self.run(|conn| async move {
            match (conn, node) {
                (RedisConnection::Cluster(mut cluster), Some((host, port))) => {
                    let routing = redis::cluster_routing::RoutingInfo::SingleNode(
                        redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        },
                    );
                    let value = cluster.route_command(cmd, routing).await?;
                    redis::from_redis_value(value).map_err(|e| QueueError::protocol(format!("{e}")))
                }
                (mut conn, _) => Ok(cmd.query_async(&mut conn).await?),
            }
        })
        .await
    }

    /// Sends `commands` at once and returns their replies in order. Unlike a pipeline's, the
    /// commands may touch different cluster slots (each is routed by its own key); on one
    /// multiplexed connection they still go out back to back.
    pub(crate) async fn each<T: redis::FromRedisValue + Send>(
        &self,
        commands: Vec<redis::Cmd>,
    ) -> Result<Vec<T>, QueueError> {
        self.run(|conn| async move {
            futures::future::try_join_all(commands.iter().map(|command| {
                let mut conn = conn.clone();
                async move { Ok::<T, QueueError>(command.query_async(&mut conn).await?) }
            }))
            .await
        })
        .await
    }

    /// Runs `op` on the process's connection (connecting it first if needed) under the
    /// configured timeout.
    ///
    /// A dropped connection is the manager's to replace (it reconnects by itself). A call that
    /// timed out lets the manager go, so the next call connects afresh: a connection that stopped
    /// answering is not one the manager would ever replace.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, QueueError>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: Future<Output = Result<T, QueueError>>,
    {
        let _in_flight = self.connection.call();
        let mut used = None;
        let work = async {
            let current = self.connection.current().await?;
            used = Some(current.number);
            op(current.manager).await
        };
        let result = tokio::time::timeout(self.config.timeout, work)
            .await
            .unwrap_or(Err(QueueError::Timeout));
        if result.is_err() {
            self.failed_calls.fetch_add(1, Ordering::Relaxed);
        }
        if let (Err(e), Some(number)) = (&result, used)
            && e.is_timeout()
        {
            self.connection.let_go(number);
        }
        result
    }
}

/// The masters of a `CLUSTER NODES` reply that are not failing, as (host, port). A line reads
/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <state> <slots…>`.
fn parse_cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let serving = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
            if !serving {
                return None;
            }
            let host_port = address.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_cluster_masters;

    #[test]
    fn cluster_masters_are_the_serving_masters_of_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,node-b master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 1 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 1 1 connected
e5 127.0.0.1:7004@17004 master - 0 1 5 connected 10923-16383
";
        assert_eq!(
            parse_cluster_masters(nodes),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7004),
            ]
        );
    }
}
