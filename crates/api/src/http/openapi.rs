//! `GET /openapi.json`: the OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]`
//! attributes and the schemas below.
//!
//! The JSON shapes themselves live in `rushline_domain`, which stays free of HTTP concerns; the
//! schemas here describe them field for field, and the API's tests check both directions: the
//! committed `openapi.json` must equal what this module generates, and every documented shape
//! must have exactly the fields the domain type serializes.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::http::{admin, campaigns, ops, requests, stats};
use crate::state::AppState;

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// The OpenAPI description of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The whole document: every route and shape.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rushline",
        description = "Spike-traffic coupon issuing: requests are accepted into a queue at once \
            (202), decided first come, first served, and recorded in PostgreSQL. Every response \
            carries an `X-Request-Id` header: the request's own when it sent one of 1-128 \
            printable ASCII characters, a generated UUID otherwise; the server's logs carry the \
            same id.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        campaigns::create, admin::list, campaigns::show, admin::close, admin::add_stock,
        stats::stats, requests::issue, requests::status, ops::healthz, ops::readyz,
        ops::prometheus, openapi,
    ),
    components(schemas(
        Problem, NewCampaign, CampaignView, CampaignStatus, IssueRequest, AcceptedView,
        RequestView, RequestStatus, admin::CampaignPage, admin::AddStock, stats::CampaignStats,
    )),
    modifiers(&AdminToken),
    tags(
        (name = "campaigns", description = "Campaign admin (bearer token) and public reads"),
        (name = "requests", description = "Issue requests and their status"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
pub struct ApiDoc;

/// Declares the `admin_token` bearer scheme the admin paths require.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "RUSHLINE_ADMIN_TOKEN; admin endpoints answer 403 when the server has none",
                    ))
                    .build(),
            ),
        );
    }
}

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
}

/// `POST /v1/campaigns` body.
#[derive(Serialize, ToSchema)]
pub struct NewCampaign {
    /// Generated when absent.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    id: Option<String>,
    /// Display name: 1–200 visible characters, normalized to NFC; no control, format, line or
    /// paragraph separator, private-use or unassigned characters (U+0000 in particular, which
    /// PostgreSQL's text cannot hold), no space at either end.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\u0000]*$")]
    name: String,
    /// Coupons to issue.
    #[schema(minimum = 1, maximum = 100_000_000)]
    stock: u64,
    /// RFC 3339, from 1970-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z; absent = open now.
    #[schema(format = DateTime)]
    opens_at: Option<String>,
    /// RFC 3339, after `opens_at`, within the same range; absent = never closes.
    #[schema(format = DateTime)]
    closes_at: Option<String>,
}

/// A campaign as anyone reads it.
#[derive(Serialize, ToSchema)]
pub struct CampaignView {
    /// Its id.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    id: String,
    /// Display name.
    name: String,
    /// Coupons it can issue.
    stock: u64,
    /// Coupons not yet issued (lags by the queue, never more).
    remaining: u64,
    /// Coupons issued so far.
    issued: u64,
    /// Where it stands now.
    status: CampaignStatus,
    /// First instant requests are accepted.
    #[schema(format = DateTime)]
    opens_at: String,
    /// First instant requests are refused again; `null` = never.
    #[schema(format = DateTime)]
    closes_at: Option<String>,
}

/// Where a campaign stands: the window decides first, then the stock.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// `opens_at` is still ahead.
    Scheduled,
    /// Accepting requests, stock left.
    Open,
    /// Accepting requests, every coupon taken (answered `sold_out`).
    SoldOut,
    /// Past `closes_at`: requests are refused with 409.
    Closed,
}

/// `POST /v1/campaigns/{id}/requests` body.
#[derive(Serialize, ToSchema)]
pub struct IssueRequest {
    /// 1–128 visible characters, normalized to NFC (canonically equivalent ids are one user; the
    /// normalized form is stored and echoed): no control, format, separator, private-use or
    /// unassigned characters, no space other than U+0020 and none at either end.
    #[schema(min_length = 1, max_length = 128)]
    user_id: String,
}

/// A request accepted into the queue.
#[derive(Serialize, ToSchema)]
pub struct AcceptedView {
    /// Resolve with `GET /v1/requests/{request_id}`.
    #[schema(format = "uuid")]
    request_id: String,
    /// Always `queued`.
    status: RequestStatus,
    /// The campaign.
    campaign_id: String,
}

/// A request and its status.
#[derive(Serialize, ToSchema)]
pub struct RequestView {
    /// Its id.
    #[schema(format = "uuid")]
    request_id: String,
    /// The campaign.
    campaign_id: String,
    /// Who asked.
    user_id: String,
    /// Where it stands; a final status never changes.
    status: RequestStatus,
    /// The coupon, once `issued`.
    coupon_code: Option<String>,
    /// When it was decided, once final.
    #[schema(format = DateTime)]
    decided_at: Option<String>,
}

/// A request's status: `queued`, then one final status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Not decided yet.
    Queued,
    /// Holds a unique coupon code.
    Issued,
    /// No stock was left.
    SoldOut,
    /// The user already holds this campaign's coupon.
    Duplicate,
}
