//! `rushline-api`: the stateless HTTP front.
//!
//! # Layout
//!
//! The hot path, in the order a request meets it:
//!
//! 1. [`http::requests`] — `POST /v1/campaigns/{id}/requests` validates (extractors in
//!    [`http::extract`] turn every bad input into a problem+json 4xx) and hands the request to…
//! 2. [`accept`] — the group-commit [`accept::Acceptor`]: concurrent requests share one Redis
//!    script call (`rushline_queue::accept`); the handler answers `202` once Redis has it.
//! 3. [`http::requests`] again for `GET /v1/requests/{id}`: Redis, then PostgreSQL; `?wait=`
//!    parks the caller in [`waiters`] until a worker's `decided` notification arrives.
//!
//! Around it: [`http::campaigns`] (admin create, public read), [`http::wait_page`] (the
//! waiting-room page a person's browser opens), [`http::ops`] (health, readiness, metrics),
//! [`state`] (what handlers share), [`config`] (environment and flags),
//! [`rate_limit`] (per-user and per-address limits, checked in [`accept`] and by a middleware
//! in `http::rate_limit`), [`waiting_room`] (a ticket's standing and the admission check behind
//! [`http::queue`] and the requests of waiting-room campaigns), [`telemetry`] (metrics recorder) and [`startup`] (build, serve, shut down). Process plumbing
//! shared with the worker (configuration parser, logs, signals, backoff, connecting to
//! PostgreSQL) is `rushline_runtime`.

pub mod accept;
pub mod config;
pub mod http;
pub mod rate_limit;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tickets;
pub mod waiters;
pub mod waiting_room;

pub use config::Config;
pub use startup::Application;
