//! rushline's PostgreSQL record.
//!
//! # Layout
//!
//! - [`campaigns`]: create and read campaigns, and the data a Redis warm-up needs.
//! - [`admin`]: the operator's list, close and add-stock changes, and decision counts.
//! - [`persist`]: the worker's batch write of decisions — one `INSERT … SELECT FROM UNNEST …
//!   ON CONFLICT DO NOTHING` per batch — and the reconciliation when the record refuses one.
//! - [`leases`]: the stock-lease ledger of sharded campaigns (stock in the record or leased to a
//!   shard, and every move between them, idempotent by move id); not yet used by the engine.
//! - [`requests`]: reading a decided request back (the API's fallback once Redis forgot it).
//!
//! The schema lives in `migrations/` at the repository root; its constraints, not this code, are
//! what finally keeps guarantees 1–3 (see the migration's comments).

pub mod admin;
pub mod campaigns;
pub mod error;
pub mod leases;
pub mod persist;
pub mod requests;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use admin::{AdmissionSet, RecordedCounts, StockAdded};
pub use campaigns::StoredCampaign;
pub use error::StoreError;
pub use leases::{Lease, LeaseRefusal, MoveState, StockLedger, StockMove};
pub use persist::{Persisted, Refusal};

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Bound on one operation of a store built with [`Store::from_pool`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the record: a connection pool, cheap to clone.
///
/// Every operation but [`Store::migrate`] is bounded by the store's timeout, from acquiring a
/// connection to the last row: a PostgreSQL that hangs (not down, just not answering) surfaces
/// as [`StoreError::Timeout`], never as a caller stuck forever. A transaction cut short is
/// dropped, which rolls it back; every write here is safe to retry.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    timeout: Duration,
}

impl Store {
    /// Connects a pool of at most `max_connections`; every acquire waits at most `timeout`, so a
    /// stuck database surfaces as an error, never a hang.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let connecting = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect(url);
        let pool = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| StoreError::Timeout(timeout))??;
        Ok(Self { pool, timeout })
    }

    /// Wraps an existing pool; operations are bounded by [`DEFAULT_TIMEOUT`].
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Runs `operation` under the store's timeout.
    pub(crate) async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, operation)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }

    /// The pool, for callers that need raw access (tests, audits).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations. Safe when several processes start at once: sqlx serialises
    /// them with an advisory lock and each migration is applied once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// `SELECT 1`: is PostgreSQL reachable?
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }
}
