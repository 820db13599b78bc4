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
    /// Whether the call did not finish in time: the whole call (`Timeout`), or a connect or a
    /// reply within it (redis-rs's own bounds). Its connection may have stopped answering, which
    /// the manager does not notice by itself.
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout => true,
            Self::Redis(e) => e.is_timeout(),
            Self::Protocol(_) | Self::Config(_) | Self::CodeKeyMissing(_) => false,
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Self::Protocol(what.into())
    }
}
