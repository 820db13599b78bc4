//! The API's integration tests: the real server on a random port, real Redis and PostgreSQL,
//! a database and key namespace per test.

mod campaigns;
mod concurrency;
mod helpers;
mod lifecycle;
mod ops;
mod recovery;
mod requests;
