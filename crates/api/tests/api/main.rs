//! The API's integration tests: the real server on a random port, real Redis and PostgreSQL,
//! a database and key namespace per test.

mod admin;
mod campaigns;
mod chaos;
mod clock;
mod cluster;
mod concurrency;
mod dashboard;
mod fuzzed;
mod helpers;
mod hostile;
mod instant;
mod jwks;
mod lifecycle;
mod metrics;
mod openapi;
mod ops;
mod outages;
mod rate_limits;
mod recovery;
mod request_id;
mod requests;
mod wait_page;
mod waiting_room;
