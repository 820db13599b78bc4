//! What an operator sends and reads besides a campaign itself: a page of the campaign list, a
//! stock addition, a campaign's pipeline figures.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CampaignId, CampaignStatus, CampaignView, number, timefmt};

/// `GET /v1/campaigns` body: one page in id order; `next` is the `?after=` of the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignPage {
    /// The campaigns, in id order.
    pub campaigns: Vec<CampaignView>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<CampaignId>,
}

/// `POST /v1/campaigns/{id}/stock` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddStock {
    /// Coupons to add; the total may not exceed 100,000,000. Any whole JSON number (`5.0` too).
    #[serde(deserialize_with = "number::whole")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000))]
    pub add: u64,
}

/// `GET /v1/campaigns/{id}/stats` body: the pipeline — queued, decided, persisted, lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignStats {
    /// The campaign.
    pub campaign_id: CampaignId,
    /// Where it stands, by Redis's clock (the one accept acts on).
    pub status: CampaignStatus,
    /// Coupons it can issue.
    pub stock: u64,
    /// Coupons not yet issued.
    pub remaining: u64,
    /// Requests waiting for a worker.
    pub queued: u64,
    /// Requests decided, by outcome (persisted or not).
    pub decided: Decided,
    /// Rows in PostgreSQL, by outcome.
    pub persisted: Counts,
    /// How far persistence trails the decisions.
    pub persistence_lag: Lag,
    /// When the figures were taken.
    #[serde(serialize_with = "timefmt::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Timestamp))]
    pub at: DateTime<Utc>,
    /// A waiting room's pre-queue seed (64 hex digits), only once the campaign has opened:
    /// position i of the pre-queue is the i-th smallest `sha1hex(seed || user_id)`, so anyone
    /// given it can audit the opening shuffle. Absent before the opening and without a waiting
    /// room (before the opening it would let a user predict the order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prequeue_seed: Option<String>,
}

/// Decisions by outcome, and where the refusal counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decided {
    /// `issued`.
    pub issued: u64,
    /// `sold_out`.
    pub sold_out: u64,
    /// `duplicate`.
    pub duplicate: u64,
    /// All of them.
    pub total: u64,
    /// Where `sold_out` and `duplicate` come from.
    pub refusals_from: RefusalSource,
}

impl Decided {
    /// The three outcomes and their total, without their source.
    pub fn counts(&self) -> Counts {
        Counts {
            issued: self.issued,
            sold_out: self.sold_out,
            duplicate: self.duplicate,
            total: self.total,
        }
    }
}

/// Where a [`Decided`]'s refusal counts were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefusalSource {
    /// Redis's live tallies.
    Redis,
    /// The persisted rows: Redis was rebuilt from a record that already held decisions.
    Postgres,
}

/// Requests by final status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// `issued`.
    pub issued: u64,
    /// `sold_out`.
    pub sold_out: u64,
    /// `duplicate`.
    pub duplicate: u64,
    /// All of them.
    pub total: u64,
}

/// How far persistence trails the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lag {
    /// Decided batches in the log, not yet acknowledged as persisted.
    pub log_entries: u64,
    /// Age of the oldest of them; `null` when everything is persisted.
    pub oldest_unpersisted_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_addition_is_any_whole_number_and_nothing_else() {
        let add = |json: &str| serde_json::from_str::<AddStock>(json).map(|a| a.add);
        assert_eq!(add(r#"{"add": 188}"#).unwrap(), 188);
        assert_eq!(add(r#"{"add": 188.0}"#).unwrap(), 188);
        for bad in [
            r#"{"add": 1.5}"#,
            r#"{"add": -1}"#,
            r#"{"add": "10"}"#,
            r#"{"add": null}"#,
            r#"{}"#,
            r#"{"add": 1, "more": 2}"#,
        ] {
            assert!(add(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stats_round_trip_through_json() {
        let stats = CampaignStats {
            campaign_id: CampaignId::parse("drop").unwrap(),
            status: CampaignStatus::Open,
            stock: 10,
            remaining: 4,
            queued: 1,
            decided: Decided {
                issued: 6,
                sold_out: 0,
                duplicate: 1,
                total: 7,
                refusals_from: RefusalSource::Redis,
            },
            persisted: Counts::default(),
            persistence_lag: Lag {
                log_entries: 2,
                oldest_unpersisted_ms: Some(15),
            },
            at: timefmt::from_millis(1_796_119_201_234).unwrap(),
            prequeue_seed: None,
        };
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["decided"]["refusals_from"], "redis");
        assert_eq!(json["at"], "2026-12-01T10:00:01.234Z");
        assert_eq!(
            serde_json::from_value::<CampaignStats>(json).unwrap(),
            stats
        );
    }
}
