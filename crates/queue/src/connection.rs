//! The one multiplexed connection every command of a process goes through.
//!
//! It is a redis-rs [`ConnectionManager`]: one multiplexed connection that any number of tasks
//! share at once (concurrent calls share its socket writes and reads, which is what makes it
//! cheaper per call than a pool of connections: loadtest/RESULTS.md, "Connection pool vs
//! ConnectionManager"), and that reconnects by itself when a call finds it dropped (Redis
//! restarted or crashed): that call fails, the calls after it wait for the new connection.
//! Nothing blocking ever runs on it; blocking reads and subscriptions get dedicated connections
//! in [`crate::notify`].
//!
//! What the manager leaves to this module:
//!
//! - **Connecting lazily.** A process must start, and its `/readyz` answer 503, while Redis is
//!   down, so nothing connects until the first call; a failed connect is that call's error and
//!   the next call tries again. One call connects at a time; the others wait for it rather than
//!   each opening a connection of its own.
//! - **Calls that time out.** The manager replaces a connection that dropped, not one that stopped
//!   answering (a hung Redis, a peer gone without a reset): a reply may still come, or never. A
//!   call that times out lets the manager go, so the next call connects afresh.
//!
//! Every connect is one attempt bounded by the call timeout (the manager's own retries are off):
//! a caller never waits longer than its timeout anyway, and the callers own the retry policy (the
//! API answers 503, workers back off).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::QueueError;

/// The process's connection to Redis: empty until the first call, and again after a call timed
/// out on it.
pub(crate) struct Connection {
    client: redis::Client,
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
    pub(crate) manager: ConnectionManager,
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
    pub(crate) fn new(client: redis::Client, timeout: Duration) -> Self {
        Self {
            client,
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
        let manager =
            ConnectionManager::new_with_config(self.client.clone(), self.config.clone()).await?;
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
