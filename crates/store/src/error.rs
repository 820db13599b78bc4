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
    /// Decisions for a campaign the record does not hold.
    #[error("decisions for campaign {0}, which the record does not hold")]
    UnknownCampaign(rushline_domain::CampaignId),
}

impl StoreError {
    /// Whether the same call fails the same way however often it is retried: the input itself
    /// is refused (a campaign the record does not hold, a corrupt row, a constraint or data error —
    /// SQLSTATE classes 22 and 23), not PostgreSQL being away. Everything else — connection
    /// loss, timeouts, pool exhaustion, serialization failures and deadlocks (40001, 40P01),
    /// shutdowns (57P…), insufficient resources (53…), and errors of the deployment such as a
    /// missing table — is transient: retrying (after a fix, for the last) can succeed, and
    /// every entry would hit it alike.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::UnknownCampaign(_) | Self::Corrupt(_) | Self::Conflict => true,
            Self::Database(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
            Self::Database(_) | Self::Migrate(_) | Self::Timeout(_) => false,
        }
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}
