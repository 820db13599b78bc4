//! Timestamps are RFC 3339 in UTC with millisecond precision (`2026-12-01T10:00:01.234Z`).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serializer;

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
