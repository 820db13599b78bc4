//! The queue crate's error type.

use rushline_domain::CampaignId;

/// Why a Redis operation failed. Every variant means "Redis is unavailable or misbehaving" to
/// callers: the API answers 503 (after trying PostgreSQL, for reads it can serve), workers back
/// off and retry.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis answered with an error or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No pooled connection could be had in time, or one could not be created.
    #[error("redis pool: {0}")]
    Pool(String),
    /// The call did not finish within the configured timeout.
    #[error("redis call timed out")]
    Timeout,
    /// A script or record returned something rushline did not write.
    #[error("unexpected redis reply: {0}")]
    Protocol(String),
    /// Invalid configuration (URL, namespace).
    #[error("redis configuration: {0}")]
    Config(String),
    /// A record holds a coupon sequence number, but Redis no longer holds the campaign's code key
    /// to mint its code with: the campaign's state was lost and is not rebuilt yet (a warm-up
    /// restores it from PostgreSQL). Readers answer from PostgreSQL meanwhile.
    #[error("campaign {0} has no coupon code key in Redis (state lost, not rebuilt yet)")]
    CodeKeyMissing(CampaignId),
}

impl QueueError {
    pub(crate) fn from_pool(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Timeout(_) => Self::Timeout,
            deadpool_redis::PoolError::Backend(e) => Self::Redis(e),
            other => Self::Pool(other.to_string()),
        }
    }

    /// Whether the connection the call ran on should be replaced: it broke, or a call on it did
    /// not finish in time (a reply may still be on its way). Redis's own error replies and
    /// rushline's parsing errors leave it usable.
    pub(crate) fn breaks_connection(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
            Self::Timeout | Self::Pool(_) => true,
            Self::Protocol(_) | Self::Config(_) | Self::CodeKeyMissing(_) => false,
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Self::Protocol(what.into())
    }
}
