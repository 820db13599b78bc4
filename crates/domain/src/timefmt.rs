//! Timestamps are RFC 3339 in UTC with millisecond precision (`2026-12-01T10:00:01.234Z`).
//!
//! Instants a client sends are accepted from 1970-01-01T00:00:00Z through
//! 9999-12-31T23:59:59.999Z ([`accepted_instant`]): within that range PostgreSQL's `timestamptz`
//! stores them, Redis holds them as non-negative milliseconds exactly (below 2^53), and RFC 3339
//! renders them with a four-digit year. Outside it, a `400` — never a backing service refusing
//! the value and the client getting a `503`.

use chrono::{DateTime, SecondsFormat, TimeZone, Timelike, Utc};
use serde::Serializer;

use crate::ValidationError;

/// Earliest instant accepted, in milliseconds since the Unix epoch (1970-01-01T00:00:00Z).
pub const EARLIEST_MILLIS: i64 = 0;
/// Latest instant accepted, in milliseconds since the Unix epoch (9999-12-31T23:59:59.999Z).
pub const LATEST_MILLIS: i64 = 253_402_300_799_999;

/// `at`, when it lies in the accepted range and is not a leap second; otherwise a
/// [`ValidationError`] naming `field`.
pub fn accepted_instant(
    field: &'static str,
    at: DateTime<Utc>,
) -> Result<DateTime<Utc>, ValidationError> {
    let ms = at.timestamp_millis();
    if !(EARLIEST_MILLIS..=LATEST_MILLIS).contains(&ms) {
        return Err(ValidationError::new(
            field,
            "must be from 1970-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z",
        ));
    }
    // chrono represents a leap second as a nanosecond field past one second; rushline's stores
    // have no such instant.
    if at.nanosecond() >= 1_000_000_000 {
        return Err(ValidationError::new(field, "must not be a leap second"));
    }
    Ok(at)
}

/// Renders a timestamp the way every rushline JSON shape does.
pub fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the Unix epoch to a UTC timestamp; `None` when out of chrono's range.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// serde helper: `#[serde(serialize_with = "timefmt::serialize")]`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(at))
}

/// serde helper for optional timestamps: `None` renders as `null`.
pub fn serialize_opt<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&rfc3339(at)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_range_renders_with_four_digit_years() {
        let earliest = from_millis(EARLIEST_MILLIS).unwrap();
        let latest = from_millis(LATEST_MILLIS).unwrap();
        assert_eq!(rfc3339(&earliest), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(&latest), "9999-12-31T23:59:59.999Z");
        assert!(accepted_instant("t", earliest).is_ok());
        assert!(accepted_instant("t", latest).is_ok());
        assert!(accepted_instant("t", from_millis(-1).unwrap()).is_err());
        assert!(accepted_instant("t", from_millis(LATEST_MILLIS + 1).unwrap()).is_err());
        let leap: DateTime<Utc> = "2016-12-31T23:59:60Z".parse().unwrap();
        assert_eq!(accepted_instant("t", leap).unwrap_err().field, "t");
    }
}
