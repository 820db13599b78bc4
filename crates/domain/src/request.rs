//! Issue requests: what a client posts, the status it moves through, what it reads back.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CampaignId, CouponCode, RequestId, UserId, timefmt};

/// `POST /v1/campaigns/{id}/requests` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueRequest {
    /// Who wants a coupon.
    pub user_id: UserId,
}

/// A request's status: `queued`, then one final status, which never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Accepted, not decided yet.
    Queued,
    /// Holds a unique coupon code.
    Issued,
    /// No stock was left when it was decided.
    SoldOut,
    /// The user already holds this campaign's coupon (takes precedence over `sold_out`).
    Duplicate,
}

impl RequestStatus {
    /// Every status, for exhaustive checks.
    pub const ALL: [Self; 4] = [Self::Queued, Self::Issued, Self::SoldOut, Self::Duplicate];

    /// Whether the status is final (it will never change again).
    pub fn is_final(self) -> bool {
        self != Self::Queued
    }

    /// The contract's name for it, also used in PostgreSQL and Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Issued => "issued",
            Self::SoldOut => "sold_out",
            Self::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a known status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown request status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for RequestStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The `202 Accepted` body: a request accepted into the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptedView {
    /// Resolve with `GET /v1/requests/{request_id}`.
    pub request_id: RequestId,
    /// Always `queued`.
    pub status: RequestStatus,
    /// The campaign it was posted to.
    pub campaign_id: CampaignId,
}

/// `GET /v1/requests/{id}` body (also the `200` body of an at-once final answer): a request and
/// its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestView {
    /// Its id.
    pub request_id: RequestId,
    /// The campaign it was posted to.
    pub campaign_id: CampaignId,
    /// Who it is for.
    #[serde(deserialize_with = "UserId::deserialize_record")]
    pub user_id: UserId,
    /// Where it stands; a final status never changes.
    pub status: RequestStatus,
    /// The coupon, once `issued`; `null` until then.
    pub coupon_code: Option<CouponCode>,
    /// When it was decided, once final; `null` until then.
    #[serde(serialize_with = "timefmt::serialize_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Timestamp>))]
    pub decided_at: Option<DateTime<Utc>>,
}

/// A final decision about one request, as Redis made it and PostgreSQL records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The request decided.
    pub request_id: RequestId,
    /// Who it is for.
    pub user_id: UserId,
    /// `issued`, `sold_out` or `duplicate` — never `queued`.
    pub status: RequestStatus,
    /// Present exactly when `issued`.
    pub coupon_code: Option<CouponCode>,
    /// The campaign's coupon sequence number the code was minted from, when `issued`.
    pub coupon_seq: Option<i64>,
    /// When Redis decided it.
    pub decided_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for status in RequestStatus::ALL {
            assert_eq!(status.as_str().parse::<RequestStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert!("maybe".parse::<RequestStatus>().is_err());
        assert!(!RequestStatus::Queued.is_final());
        assert!(RequestStatus::Issued.is_final());
    }

    #[test]
    fn view_renders_the_contract_shape() {
        let campaign = CampaignId::parse("concert-2026").unwrap();
        let view = RequestView {
            request_id: RequestId::new_for(&campaign),
            campaign_id: campaign,
            user_id: UserId::parse("u-123").unwrap(),
            status: RequestStatus::Issued,
            coupon_code: Some(CouponCode::parse("RL-7K3M-Q9XD").unwrap()),
            decided_at: timefmt::from_millis(1_796_119_201_234),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["status"], "issued");
        assert_eq!(json["coupon_code"], "RL-7K3M-Q9XD");
        assert_eq!(json["decided_at"], "2026-12-01T10:00:01.234Z");
        assert_eq!(json["user_id"], "u-123");
        assert_eq!(json["request_id"], view.request_id.to_string());
    }

    proptest::proptest! {
        /// Any body text parses to a valid, normalized user id or is refused, never a panic.
        #[test]
        fn any_request_body_parses_or_is_refused(
            body in "\\PC{0,80}|\\{\"user_id\": \"\\PC{0,40}\"\\}|\\{\"user_id\": \"[a-z\\\\u0-9]{0,20}\"\\}"
        ) {
            if let Ok(request) = serde_json::from_str::<IssueRequest>(&body) {
                let id = request.user_id.as_str();
                proptest::prop_assert_eq!(UserId::parse(id).unwrap(), request.user_id.clone());
            }
        }
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(serde_json::from_str::<IssueRequest>(r#"{"user_id":""}"#).is_err());
        assert!(serde_json::from_str::<IssueRequest>(r#"{"user_id":5}"#).is_err());
        assert!(serde_json::from_str::<IssueRequest>(r#"{}"#).is_err());
        assert!(serde_json::from_str::<IssueRequest>(r#"{"user_id":"u-1"}"#).is_ok());
    }
}
