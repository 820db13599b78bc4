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
    /// Decisions stamped with a rebuild epoch older than the record's: a warm-up rebuilt the
    /// campaign's Redis state from the record after they were made, without them. Nothing was
    /// committed; `unrecorded` are the decisions the record does not hold (in the order given),
    /// to be decided again by the rebuilt state. The rest were committed before the rebuild.
    #[error(
        "decisions of rebuild epoch {entry_epoch} superseded by the record's epoch {record_epoch}"
    )]
    Superseded {
        /// The epoch the decisions were stamped with.
        entry_epoch: i64,
        /// The record's epoch.
        record_epoch: i64,
        /// The decisions the record does not hold.
        unrecorded: Vec<rushline_domain::Decision>,
    },
    /// The stock-lease ledger refused a change (see [`crate::leases`]).
    #[error("stock ledger: {0}")]
    Lease(crate::leases::LeaseRefusal),
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
            // Retrying a superseded batch fails the same way; the worker hands its decisions to
            // the rebuilt state instead (crates/worker/src/persist.rs).
            Self::UnknownCampaign(_)
            | Self::Corrupt(_)
            | Self::Conflict
            | Self::Lease(_)
            | Self::Superseded { .. } => true,
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
