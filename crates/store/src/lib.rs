//! rushline's PostgreSQL record.
//!
//! # Layout
//!
//! - [`campaigns`]: create and read campaigns, and the data a Redis warm-up needs.
//! - [`admin`]: the operator's list, close and add-stock changes, and decision counts.
//! - [`persist`]: the worker's batch write of decisions — one `INSERT … SELECT FROM UNNEST …
//!   ON CONFLICT DO NOTHING` per batch — and the reconciliation when the record refuses one.
//! - [`requests`]: reading a decided request back (the API's fallback once Redis forgot it).
//!
//! The schema lives in `migrations/` at the repository root; its constraints, not this code, are
//! what finally keeps guarantees 1–3 (see the migration's comments).

pub mod admin;
pub mod campaigns;
pub mod error;
pub mod persist;
pub mod requests;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use admin::{RecordedCounts, StockAdded};
pub use campaigns::StoredCampaign;
pub use error::StoreError;
pub use persist::{Persisted, Refusal};

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle on the record: a connection pool, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects a pool of at most `max_connections`; every acquire waits at most `timeout`, so a
    /// stuck database surfaces as an error, never a hang.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
