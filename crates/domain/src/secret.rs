//! Keeping secrets out of `Debug` output and logs.
//!
//! Database and Redis URLs carry passwords inline, and a campaign's code key is what makes its
//! coupon codes unguessable: neither may appear where logs or panics can show them.

use std::fmt;

/// What `Debug` shows in place of a secret value.
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A URL (or a comma-separated list of them, as a Redis Cluster's) with each password replaced
/// by `***`, for `Debug` output and logs: database and Redis URLs carry passwords inline.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(redact_one)
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one(url: &str) -> String {
    // scheme://user:password@host…: the password is between the first ':' after "//" and the
    // last '@' before the path.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::CampaignSnapshot;

    #[test]
    fn a_snapshot_shows_no_code_key() {
        let snapshot = CampaignSnapshot {
            name: "drop".into(),
            stock: 1,
            // A fixed instant: a clock reading's digits could contain the seed byte's "171".
            opens_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
            closes_at: None,
            issued: 0,
            next_seq: 1,
            code_key: "s3cr3t-code-key".into(),
            epoch: 0,
            decide: crate::DecideMode::Queued,
            waiting_room: Some(crate::WaitingRoomState {
                room: crate::WaitingRoom::new(5, 600, 0).unwrap(),
                paused: false,
                prequeue_seed: vec![0xAB; 32],
            }),
            shards: crate::ShardCount::ONE,
        };
        let shown = format!("{snapshot:?}");
        assert!(!shown.contains("171, 171"), "the seed's bytes: {shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn passwords_are_taken_out_of_urls() {
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
