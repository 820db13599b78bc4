//! The shapes the handlers' `#[utoipa::path]` attributes name: the domain's types (whose schemas
//! the domain derives) and [`Problem`], the one HTTP-only shape. Kept apart from [`super::openapi`]
//! so that route modules depend on this and `openapi` on them, never both ways.

use serde::Serialize;
use utoipa::ToSchema;

pub use rushline_domain::{
    AcceptedView, AddStock, AdmissionChange, CampaignId, CampaignPage, CampaignStats,
    CampaignStatus, CampaignView, IdempotencyKey, IssueRequest, NewCampaign, QueueFigures,
    QueueStanding, QueueState, RequestStatus, RequestView, WaitingRoom, WaitingRoomOptions,
};

pub use crate::tickets::{Jwk, JwkSet};

/// An RFC 9457 problem (`application/problem+json`): every error this API answers.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:rushline:problem:<slug>`.
    r#type: String,
    /// The status's reason phrase.
    title: String,
    /// Equal to the HTTP status.
    status: u16,
    /// What went wrong and what to fix.
    detail: String,
    /// Extension member, only on a `503` of `POST /v1/campaigns/{id}/requests` after which the
    /// request may nonetheless have been queued: its id (also in `Location`).
    #[schema(format = "uuid")]
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    /// Extension member of a waiting room's `403 not-your-turn`: the ticket's position.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    /// Extension member of a `not-your-turn`: the serving counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    admitted_through: Option<u64>,
    /// Extension member of a `not-your-turn`: people ahead still waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    ahead: Option<u64>,
    /// Extension member of a `not-your-turn`: estimated seconds until admission.
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_secs: Option<f64>,
}
