//! `GET /openapi.json`: the OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]`
//! attributes and the domain's types.
//!
//! Every JSON shape is a `rushline_domain` type whose schema is derived where the type is defined
//! (the domain's `openapi` feature), so the document describes exactly what is serialized and
//! parsed; [`super::schemas`] re-exports them for the handlers' attributes and defines the one
//! HTTP-only shape, `Problem`. This module imports the route modules (for their paths); they
//! import only `schemas`, so the dependency runs one way. The API's tests check the rest: the committed
//! `openapi.json` must equal what this module generates, and every documented shape must have
//! exactly the fields the API really sends.

use std::sync::LazyLock;

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::schemas::{
    AcceptedView, AddStock, AdmissionChange, CampaignId, CampaignPage, CampaignStats,
    CampaignStatus, CampaignView, IdempotencyKey, IssueRequest, Jwk, JwkSet, NewCampaign, Problem,
    QueueFigures, QueueStanding, QueueState, RequestStatus, RequestView, WaitingRoom,
    WaitingRoomOptions,
};
use crate::http::{admin, campaigns, jwks, ops, queue, requests, stats, wait_page};
use crate::state::AppState;

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// The OpenAPI description of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    // Built once: the document does not change while the process runs.
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);
    Json(&DOCUMENT)
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
        admin::admission,
        stats::stats, requests::issue, requests::status, queue::join, queue::me, ops::healthz,
        ops::readyz, ops::prometheus, openapi, jwks::jwks, wait_page::waiting_room_page,
    ),
    components(schemas(
        Problem, NewCampaign, CampaignView, CampaignStatus, IssueRequest, AcceptedView,
        RequestView, RequestStatus, CampaignPage, AddStock, CampaignStats, AdmissionChange,
        WaitingRoom, WaitingRoomOptions, QueueFigures, QueueStanding, QueueState, JwkSet, Jwk,
        // Named only by parameters, which utoipa does not collect.
        IdempotencyKey, CampaignId,
    )),
    modifiers(&AdminToken),
    tags(
        (name = "campaigns", description = "Campaign admin (bearer token) and public reads"),
        (name = "requests", description = "Issue requests and their status"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "waiting room", description = "The waiting room: join, follow a ticket, the page a person's browser opens, and the tickets' public keys"),
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
