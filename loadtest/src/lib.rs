//! `rushline-loadtest`: a spike generator that measures how fast rushline swallows a spike and
//! proves, request by request, that it was never wrong.
//!
//! # Layout
//!
//! Follow one scenario from plan to report:
//!
//! 1. [`scenarios`] builds a plan: campaigns on the API ([`api`]) and a list of [`traffic::Job`]s
//!    (distinct users, repeat presses, racing retries sharing one `Idempotency-Key`).
//! 2. [`traffic`] blasts the plan over a keep-alive pool of C tasks, closed loop (as fast as the
//!    tasks can) or open loop (fixed arrival rate; latency counted from the *intended* send time,
//!    so a stalled server cannot hide its queueing — no coordinated omission). Every request's
//!    send and answer instants are kept: they are the evidence for guarantee 5.
//! 3. [`monitor`] samples, while the scenario runs, the API's campaign counters, queue depth in
//!    Redis, persisted rows in PostgreSQL and the API's resident memory.
//! 4. [`resolve`] long-polls (`?wait=30`) every request id to its final status, and measures
//!    each one's time to final.
//! 5. [`verify`] waits for the record to settle, then checks the six guarantees of
//!    `CONTRACT.md` against PostgreSQL (read directly) and the API, naming offending requests,
//!    with the one guarantee audit the test suites use (`rushline_testkit::guarantees`).
//! 6. [`ceiling`] runs a bare axum server in-process answering every POST like rushline's `202`,
//!    measured with the same client settings, so accept rates are reported as a ratio of it;
//!    [`cpu`] says how much CPU each process spent per request in each of those blasts, and
//!    [`groups`] how many requests each of the API's `accept.lua` calls carried.
//! 7. [`report`] writes one JSON object per scenario and an SVG chart; [`workers`] starts and
//!    stops `rushline-worker` processes when the run manages them (pause, scaling).
//!
//! The tool only ever talks to loopback addresses: [`api::Api::new`] refuses anything else.

pub mod api;
pub mod ceiling;
pub mod cpu;
pub mod error;
pub mod groups;
pub mod monitor;
pub mod report;
pub mod resolve;
pub mod scenarios;
pub mod traffic;
pub mod verify;
pub mod workers;

pub use error::LoadError;
