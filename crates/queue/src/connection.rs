//! The one multiplexed connection every command of a process goes through.
//!
//! On a single Redis it is a redis-rs [`ConnectionManager`]: one multiplexed connection that any
//! number of tasks share at once (concurrent calls share its socket writes and reads, which is
//! what makes it cheaper per call than a pool of connections: loadtest/RESULTS.md, "Connection
//! pool vs ConnectionManager"), and that reconnects by itself when a call finds it dropped (Redis
//! restarted or crashed): that call fails, the calls after it wait for the new connection.
//! On a Redis Cluster it is redis-rs's [`ClusterConnection`]: the same shape, one multiplexed
//! connection per node, each command routed by its first key's slot (every rushline script
//! touches one slot, see [`crate::keys`]). Nothing blocking ever runs on either; blocking reads
//! and subscriptions get dedicated connections in [`crate::notify`].
//!
//! What the managers leave to this module:
//!
//! - **Connecting lazily.** A process must start, and its `/readyz` answer 503, while Redis is
//!   down, so nothing connects until the first call; a failed connect is that call's error and
//!   the next call tries again. One call connects at a time; the others wait for it rather than
//!   each opening a connection of its own.
//! - **Calls that time out.** The manager replaces a connection that dropped, not one that stopped
//!   answering (a hung Redis, a peer gone without a reset): a reply may still come, or never. A
//!   call that times out lets the manager go, so the next call connects afresh.
//! - **Which cluster errors to retry.** redis-rs's cluster client would resend a command after
//!   any error it classes as retryable, a dropped connection included — but a script whose
//!   connection dropped may have run, and running `accept.lua` twice with the same request ids
//!   would queue a request twice. So its own retries are off, and [`RedisConnection`] resends
//!   only on the replies that say the command did not run: `MOVED` (the slot has another master
//!   now; the client rebuilds its slot map on seeing it), `TRYAGAIN`, `CLUSTERDOWN`,
//!   `MASTERDOWN`, `READONLY` (a node demoted in a failover), a few milliseconds apart, within the
//!   call's timeout. While a slot has no master at all (a failover in progress) calls to it
//!   therefore time out and callers shed (the API answers 503 + `Retry-After`); the first call
//!   after the replica took over is served.
//!
//! Every connect is one attempt bounded by the call timeout (the managers' own retries are off):
//! a caller never waits longer than its timeout anyway, and the callers own the retry policy (the
//! API answers 503, workers back off).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use crate::QueueError;

/// Where a process's Redis is: one server, or a cluster reached through any of its nodes.
#[derive(Clone)]
pub(crate) enum RedisTarget {
    /// One Redis server.
    Single(redis::Client),
    /// A Redis Cluster: the node URLs given (masters or replicas; the slot map is read from them).
    Cluster {
        client: Box<ClusterClient>,
        /// One client per node URL given, for what a cluster connection cannot do: subscribing
        /// (a node's classic pub/sub sees every node's `PUBLISH`) and `SCAN`ning each master.
        nodes: Vec<redis::Client>,
    },
}

impl RedisTarget {
    /// `url` is one Redis URL, or several separated by commas (a cluster's nodes); `cluster`
    /// makes a single URL a cluster's seed node.
    pub(crate) fn parse(url: &str, cluster: bool, timeout: Duration) -> Result<Self, QueueError> {
        let urls: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(QueueError::Config("the Redis URL is empty".into()));
        }
        if urls.len() == 1 && !cluster {
            return Ok(Self::Single(redis::Client::open(urls[0])?));
        }
        let nodes = urls
            .iter()
            .map(|u| redis::Client::open(*u))
            .collect::<Result<Vec<_>, _>>()?;
        let client = ClusterClient::builder(urls.iter().copied())
            .retries(0)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()?;
        Ok(Self::Cluster {
            client: Box::new(client),
            nodes,
        })
    }

    /// Whether this is a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Clients of single nodes: the one server, or each node URL of a cluster as given.
    pub(crate) fn node_clients(&self) -> Vec<redis::Client> {
        match self {
            Self::Single(client) => vec![client.clone()],
            Self::Cluster { nodes, .. } => nodes.clone(),
        }
    }
}

/// A multiplexed connection to a single Redis or to a cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub enum RedisConnection {
    /// One server.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

/// Pause between resends of a cluster command a node said it did not run.
const REDIRECT_PAUSE: Duration = Duration::from_millis(10);

/// Did the node refuse to run the command, so that sending it again cannot run it twice?
fn not_run(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        )
    )
}

impl redis::aio::ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(manager) => manager.req_packed_command(cmd),
            // Resent until the caller's timeout ends it (see the module docs).
            Self::Cluster(cluster) => Box::pin(async move {
                loop {
                    match cluster.req_packed_command(cmd).await {
                        Err(e) if not_run(&e) => tokio::time::sleep(REDIRECT_PAUSE).await,
                        other => return other,
                    }
                }
            }),
        }
    }

    // rushline's pipelines are reads, or writes that may run twice (`SET NX`), so resending one
    // a node refused part of is as safe as resending a single command.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => Box::pin(async move {
                loop {
                    match cluster.req_packed_commands(pipeline, offset, count).await {
                        Err(e) if not_run(&e) => tokio::time::sleep(REDIRECT_PAUSE).await,
                        other => return other,
                    }
                }
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// The process's connection to Redis: empty until the first call, and again after a call timed
/// out on it.
pub(crate) struct Connection {
    target: RedisTarget,
    config: ConnectionManagerConfig,
    current: RwLock<Option<Current>>,
    /// Held while connecting, so concurrent first calls make one connection.
    connecting: tokio::sync::Mutex<()>,
    /// Numbers each manager, so a call that timed out lets go only the one it used, never a
    /// fresh one another call has made since.
    made: AtomicU64,
    in_flight: AtomicUsize,
}

/// The manager in use and its number.
#[derive(Clone)]
pub(crate) struct Current {
    pub(crate) manager: RedisConnection,
    pub(crate) number: u64,
}

/// Counts a call as in flight until dropped (also when the call is cancelled).
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// Connects on first use; `timeout` bounds each connect and each reply.
    pub(crate) fn new(target: RedisTarget, timeout: Duration) -> Self {
        Self {
            target,
            config: ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(0),
            current: RwLock::default(),
            connecting: tokio::sync::Mutex::new(()),
            made: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Marks a call in flight for [`Connection::usage`].
    pub(crate) fn call(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// The manager to send a call through, connected first if there is none.
    pub(crate) async fn current(&self) -> Result<Current, QueueError> {
        if let Some(current) = self.peek() {
            return Ok(current);
        }
        let _connecting = self.connecting.lock().await;
        // Another call may have connected while this one waited for the lock.
        if let Some(current) = self.peek() {
            return Ok(current);
        }
        let manager = match &self.target {
            RedisTarget::Single(client) => RedisConnection::Single(
                ConnectionManager::new_with_config(client.clone(), self.config.clone()).await?,
            ),
            RedisTarget::Cluster { client, .. } => {
                RedisConnection::Cluster(client.get_async_connection().await?)
            }
        };
        let current = Current {
            manager,
            number: self.made.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(current.clone());
        Ok(current)
    }

    /// Lets manager `number` go if it is still the current one: the next call connects afresh.
    /// Calls in flight on it finish (or time out) on their own clones.
    pub(crate) fn let_go(&self, number: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.number == number) {
            *current = None;
        }
    }

    /// The connection as `(in use, idle)` connections: none before the first connect (or after
    /// a timeout let it go); otherwise one, in use while any call is in flight on it. The manager
    /// may be reconnecting at that moment: it counts as the one connection all the same.
    pub(crate) fn usage(&self) -> (usize, usize) {
        if self.peek().is_none() {
            return (0, 0);
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            (1, 0)
        } else {
            (0, 1)
        }
    }

    fn peek(&self) -> Option<Current> {
        // A poisoned lock still holds a valid `Option` (only clones and assignments run under
        // it), so its value is used as it is.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RedisTarget;
    use crate::QueueError;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[test]
    fn a_url_list_or_the_flag_makes_a_cluster_and_one_url_a_single_server() {
        let single = RedisTarget::parse("redis://127.0.0.1:6379", false, TIMEOUT);
        assert!(matches!(single, Ok(RedisTarget::Single(_))));
        let flagged = RedisTarget::parse("redis://127.0.0.1:7000", true, TIMEOUT);
        assert!(matches!(&flagged, Ok(t) if t.is_cluster() && t.node_clients().len() == 1));
        let listed = RedisTarget::parse(
            "redis://127.0.0.1:7000, redis://127.0.0.1:7001,redis://127.0.0.1:7002,",
            false,
            TIMEOUT,
        );
        assert!(matches!(&listed, Ok(t) if t.is_cluster() && t.node_clients().len() == 3));
    }

    #[test]
    fn an_empty_or_malformed_url_is_a_configuration_error() {
        assert!(matches!(
            RedisTarget::parse(" , ", false, TIMEOUT),
            Err(QueueError::Config(_))
        ));
        assert!(matches!(
            RedisTarget::parse("redis://127.0.0.1:7000,not a url", false, TIMEOUT),
            Err(QueueError::Redis(_))
        ));
    }
}
