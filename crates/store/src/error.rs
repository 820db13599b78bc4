//! The store's error type.

/// Why a PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id is taken (e.g. a campaign id that exists).
    #[error("already exists")]
    Conflict,
    /// PostgreSQL failed or is unreachable.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// PostgreSQL did not answer within the store's timeout (hung or overloaded).
    #[error("postgres did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// A stored row does not hold a valid domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}
