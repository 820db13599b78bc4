//! Redis's clock: the one clock every decision about a campaign's window is made with.
//!
//! `accept.lua` decides "scheduled / open / closed" with Redis `TIME` (and `add_stock.lua`
//! "closed", `decide.lua` and the refusals at once their `decided_at`). Redis is the serial
//! resource every replica shares, so its clock is the same for all of them; an API host's clock
//! is not. Anything else that needs "now" for a window — a new campaign's default `opens_at`, an
//! operator's close, add-stock's "closed yet?", the `status` a view shows — reads the same clock
//! here, so no answer can contradict what accept decides: a close that answered `200` is in force
//! for the very next accept, however wrong the API host's clock is.
//!
//! Each reading also measures this host's clock against Redis's ([`ClockReading::skew`]), which
//! the API reports as a metric: a skew is harmless for decisions now, but worth an operator's eye
//! (logs and `Date` headers still carry the host's time).

use chrono::{DateTime, TimeDelta, Utc};
use rushline_domain::timefmt;

use crate::{Queue, QueueError};

/// One reading of Redis's clock, with this host's clock read on either side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// Redis `TIME`, truncated to the millisecond: the precision the scripts compare at.
    pub redis_now: DateTime<Utc>,
    /// This host's clock minus Redis's, taking the host's reading at the middle of the round
    /// trip: wrong by at most half of it (well under a millisecond on a LAN).
    pub skew: TimeDelta,
}

impl Queue {
    /// Reads Redis `TIME` (one round trip, bounded by the call timeout). `local` is this host's
    /// clock, passed in so tests can play a host whose clock is wrong.
    pub async fn read_clock(
        &self,
        local: impl Fn() -> DateTime<Utc>,
    ) -> Result<ClockReading, QueueError> {
        // On a cluster a keyless read goes to any node, and one that is down (a failover, a
        // restart) fails it at once while the others answer: `TIME` only reads, so another try
        // is safe. Never after a timeout, which took the call's whole bound already.
        let attempts = if self.target.is_cluster() { 3 } else { 1 };
        let mut attempt = 1;
        let (before, (secs, micros), after) = loop {
            let before = local();
            let reply: Result<(i64, i64), QueueError> = self
                .run(|mut conn| async move { Ok(redis::cmd("TIME").query_async(&mut conn).await?) })
                .await;
            match reply {
                Ok(time) => break (before, time, local()),
                Err(e) if attempt < attempts && !e.is_timeout() => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        let redis_now = secs
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(micros / 1000))
            .and_then(timefmt::from_millis)
            .ok_or_else(|| QueueError::protocol(format!("TIME reply {secs} {micros}")))?;
        let midpoint = before + (after - before) / 2;
        Ok(ClockReading {
            redis_now,
            skew: midpoint - redis_now,
        })
    }
}
