//! The blast: a plan of jobs sent over a pool of C tasks, every request's timing kept.
//!
//! A [`Job`] is one user's presses on one campaign. Its first press may be a group of racing
//! retries (copies sent at the same moment with one `Idempotency-Key`); later presses are sent
//! only after the previous answer came back, the way a person presses again. Tasks take jobs
//! from a shared counter, so the pool never holds more than C requests in flight — except for
//! racing copies, which are the point.
//!
//! Times are microseconds since the blast's start on the monotonic clock. In open loop job `i`
//! is *intended* at `i / rate`; latency counts from that instant, so when the server stalls the
//! backlog it causes shows up in the figures instead of silently slowing the sender.
//!
//! One concern a file:
//! - `plan`: what is sent — the jobs ([`plan`]) and their pacing ([`Load`]);
//! - `send`: sending it — the task pool ([`blast`]) and what each request did ([`Record`]);
//! - `stats`: the figures — counts, rates and latency percentiles ([`Blast::summary`],
//!   [`Blast::timeline`]).

mod plan;
mod send;
mod stats;

pub use plan::{Job, Load, Mix, plan};
pub use send::{Answer, Blast, BlastConfig, Live, Record, blast};
pub use stats::{BlastSummary, Percentiles, TrafficPoint, histogram};
