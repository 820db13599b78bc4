//! Connecting to PostgreSQL at start-up, patiently: a stack (compose, `scripts/stack`) starts its
//! programs in any order, so PostgreSQL may come up a little after the API or a worker.

use std::time::Duration;

use rushline_store::{Store, StoreError};
use tokio::time::Instant;

/// How long start-up keeps trying to reach PostgreSQL before giving up.
pub const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How to reach PostgreSQL.
#[derive(Clone, Copy)]
pub struct Connect<'a> {
    /// `RUSHLINE_DATABASE_URL`.
    pub url: &'a str,
    /// Pool size (`RUSHLINE_DB_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// Bound on any one call (`RUSHLINE_BACKEND_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// Connects, retrying every half second (each failure logged as a warning) for up to
/// [`STARTUP_PATIENCE`]; then the last error.
pub async fn connect_patiently(to: Connect<'_>) -> Result<Store, StoreError> {
    let deadline = Instant::now() + STARTUP_PATIENCE;
    loop {
        match Store::connect(to.url, to.max_connections, to.timeout).await {
            Ok(store) => return Ok(store),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "PostgreSQL not reachable yet; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}
