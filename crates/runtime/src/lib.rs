//! `rushline-runtime`: process plumbing shared by `rushline-api` and `rushline-worker`.
//!
//! # Layout
//!
//! What both programs do around their real work, written once:
//!
//! - [`config`] — the settings both must agree on ([`config::SharedArgs`], flattened into each
//!   program's clap arguments, read into the [`config::Shared`] each program's `Config` holds)
//!   and the one parser that reads arguments and the environment, so an unusable value stops
//!   start-up with a message naming its variable.
//! - [`logs`] — the tracing subscriber (`RUST_LOG`, pretty or JSON lines).
//! - [`shutdown`] — Ctrl-C or SIGTERM cancels the process's one shutdown token.
//! - [`postgres`] — connecting to PostgreSQL patiently, so a stack can start in any order.
//! - [`backoff`] — jittered exponential backoff for retrying a failing backing service.
//! - [`Backend`] — which backing service failed, the label both programs' metrics use.

pub mod backoff;
pub mod config;
pub mod logs;
pub mod postgres;
pub mod shutdown;

pub use backoff::Backoff;

/// A backing service, as the `backend` label of `rushline_backend_errors_total` names it in both
/// programs (so one query sums the API's and the workers' failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Redis.
    Redis,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// Its label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}
