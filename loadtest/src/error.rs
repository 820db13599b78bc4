//! The library's error type; `main` wraps it in `anyhow`.

use thiserror::Error;

/// Everything that can stop a load test before it produces a verdict.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The target is not a loopback address: this tool never blasts other hosts.
    #[error("refusing to target {0}: only 127.0.0.1 and ::1 are allowed")]
    NotLoopback(String),
    /// A URL did not parse.
    #[error("bad URL {url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The plan's numbers do not fit together.
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// The API answered something the tool cannot work with.
    #[error("unexpected answer from {what}: {detail}")]
    Unexpected {
        /// What was being asked.
        what: String,
        /// What came back.
        detail: String,
    },
    /// HTTP transport failure.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// PostgreSQL failure.
    #[error("PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failure.
    #[error("Redis: {0}")]
    Queue(#[from] rushline_queue::QueueError),
    /// File or process I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Chart rendering failure.
    #[error("chart: {0}")]
    Chart(String),
    /// JSON encoding failure.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A condition was not reached in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl LoadError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
