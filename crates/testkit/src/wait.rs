//! Waiting for a condition that no event announces (across processes, or in PostgreSQL).

use std::time::Duration;

/// How often [`eventually`] asks again: each poll is one cheap read.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// Polls `condition` until it holds.
///
/// # Panics
///
/// When `limit` passes first, naming `what` (a test that waits forever proves nothing).
pub async fn eventually(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        // A bounded poll of a condition with no event to await, not synchronisation by sleep.
        tokio::time::sleep(POLL_EVERY).await;
    }
}
