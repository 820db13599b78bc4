//! The queue crate's error type.

/// Why a Redis operation failed. Every variant means "Redis is unavailable or misbehaving" to
/// callers: the API answers 503, workers back off and retry.
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
}

impl QueueError {
    pub(crate) fn from_pool(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Timeout(_) => Self::Timeout,
            deadpool_redis::PoolError::Backend(e) => Self::Redis(e),
            other => Self::Pool(other.to_string()),
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Self::Protocol(what.into())
    }
}
