//! A user's standing in a campaign's waiting room: the body of `POST /v1/campaigns/{id}/queue`
//! and `GET /v1/campaigns/{id}/queue/me` (CONTRACT.md, *Waiting room*).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CampaignId, UserId, timefmt};

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Joined before the opening; gets a position, in random order, at `opens_at`.
    Prequeued,
    /// Has a position the serving counter has not reached.
    Waiting,
    /// `position <= admitted_through`, less than `pass_secs` ago: may post its request.
    Admitted,
    /// Admitted more than `pass_secs` ago; joining again gives a new position at the back.
    Expired,
}

impl QueueState {
    /// The contract's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prequeued => "prequeued",
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::Expired => "expired",
        }
    }
}

/// A user's place in a waiting room, with fresh figures and the ticket that proves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStanding {
    /// Compact JWS (EdDSA) to send as `Rushline-Ticket`; keep the newest one an answer carries.
    pub ticket: String,
    /// The campaign.
    pub campaign_id: CampaignId,
    /// Whose place it is.
    #[serde(deserialize_with = "UserId::deserialize_record")]
    pub user_id: UserId,
    /// Where the ticket stands.
    pub state: QueueState,
    /// 1-based place in line; `null` while pre-queued.
    pub position: Option<u64>,
    /// The serving counter: every position up to it has been admitted.
    pub admitted_through: u64,
    /// People ahead still waiting; `null` while pre-queued.
    pub ahead: Option<u64>,
    /// Estimated seconds until admission, from the measured outflow; `null` when unknown
    /// (pre-queued, or admission paused with nobody moving).
    pub eta_secs: Option<f64>,
    /// When to ask again (seconds), spread so that a crowd does not come back in one instant.
    pub poll_after_secs: f64,
    /// When the serving counter reached `position`; `null` until then.
    #[serde(serialize_with = "timefmt::serialize_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Timestamp>))]
    pub admitted_at: Option<DateTime<Utc>>,
    /// When the pass ends (`admitted_at + pass_secs`); `null` until admitted.
    #[serde(serialize_with = "timefmt::serialize_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Timestamp>))]
    pub pass_expires_at: Option<DateTime<Utc>>,
    /// When admission starts (the campaign's `opens_at`): the page counts down to it.
    #[serde(serialize_with = "timefmt::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Timestamp))]
    pub opens_at: DateTime<Utc>,
    /// The server's clock when this answer was made (Redis's, the one every decision uses), so a
    /// page can count down by server time rather than the phone's.
    #[serde(serialize_with = "timefmt::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Timestamp))]
    pub server_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standing_renders_the_contract_shape() {
        let at = |ms| timefmt::from_millis(ms).unwrap();
        let standing = QueueStanding {
            ticket: "h.p.s".into(),
            campaign_id: CampaignId::parse("concert-2026").unwrap(),
            user_id: UserId::parse("u-123").unwrap(),
            state: QueueState::Waiting,
            position: Some(1234),
            admitted_through: 1000,
            ahead: Some(233),
            eta_secs: Some(0.47),
            poll_after_secs: 1.0,
            admitted_at: None,
            pass_expires_at: None,
            opens_at: at(1_796_119_200_000),
            server_time: at(1_796_119_201_234),
        };
        let json = serde_json::to_value(&standing).unwrap();
        assert_eq!(json["state"], "waiting");
        assert_eq!(json["position"], 1234);
        assert_eq!(json["ahead"], 233);
        assert_eq!(json["admitted_at"], serde_json::Value::Null);
        assert_eq!(json["opens_at"], "2026-12-01T10:00:00.000Z");
        let back: QueueStanding = serde_json::from_value(json).unwrap();
        assert_eq!(back.state, QueueState::Waiting);
        assert_eq!(back.position, Some(1234));
    }
}
