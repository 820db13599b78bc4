//! Test support shared by the API's and the worker's integration tests, and the guarantee audit
//! that the load test shares with them.
//!
//! Every test gets its own PostgreSQL database (`rushline_t<uuid>`, migrated) and its own Redis
//! key namespace (`rushline:t<uuid>:`), so tests run in parallel and twice in a row without
//! seeing each other ([`TestEnv`]). The database is created on the real server named by
//! `RUSHLINE_TEST_DATABASE_URL` (default: the contract's URL). The namespace lives on a
//! `redis-server` of the test process's own ([`process_redis`]), so nothing a test does depends
//! on what else the machine's Redis holds; `RUSHLINE_TEST_REDIS_URL` names another Redis instead.
//! [`servers`] starts private Redis and PostgreSQL processes for tests that crash, stop or wipe
//! them. With the `app` feature, [`app::spawn_app`] runs the API and workers in-process on such an
//! environment. [`eventually`] waits for a condition no event announces.
//!
//! [`guarantees`] is the one implementation of the guarantee checks; [`audit`] applies it to one
//! campaign for a test. Everything but [`guarantees`] is behind the `env` feature (on by
//! default), so the load test's release binary can use the audit without building anything
//! test-only.

pub mod binary;
pub mod guarantees;

#[cfg(feature = "app")]
pub mod app;
#[cfg(feature = "env")]
mod campaign_audit;
#[cfg(feature = "env")]
pub mod cluster;
#[cfg(feature = "env")]
mod env;
#[cfg(feature = "env")]
pub mod lagging;
#[cfg(feature = "env")]
pub mod process_redis;
#[cfg(feature = "env")]
pub mod servers;
#[cfg(feature = "env")]
mod wait;

#[cfg(feature = "env")]
pub use campaign_audit::{Audit, audit, recorded_rows};
#[cfg(feature = "env")]
pub use env::*;
#[cfg(feature = "env")]
pub use wait::eventually;
