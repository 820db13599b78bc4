//! The HTTP surface: routes, extractors and errors.
//!
//! - [`requests`]: the hot path (`POST /v1/campaigns/{id}/requests`) and status reads.
//! - [`queue`]: the waiting room — join, and a ticket's standing.
//! - [`campaigns`]: campaign creation and reads.
//! - [`admin`]: operator endpoints — campaign list, close now, add stock.
//! - [`stats`]: a campaign's pipeline for operators (admin).
//! - [`campaign_view`]: a campaign as shown, from Redis's live state or from the record.
//! - [`ops`]: health, readiness, metrics.
//! - [`jwks`]: the waiting-room tickets' public keys (`GET /.well-known/jwks.json`).
//! - [`openapi`]: `GET /openapi.json`, generated from the handlers' attributes.
//! - [`schemas`]: the shapes those attributes name (domain types and `Problem`).
//! - [`extract`]: extractors that reject as problem+json, and the admin guard.
//! - [`correlation`]: the correlation id (`X-Request-Id`) on every request's span and response;
//!   not the domain's `RequestId`.
//! - [`problem`]: [`ApiError`], rendered as RFC 9457 problem details.
//! - [`rate_limit`]: the per-client-address limit on the public POST routes.
//! - [`wait_page`]: `GET /wait/{id}`, the waiting-room page (HTML) a person's browser opens.
//!
//! Dependencies point one way: route modules use the shared modules ([`campaign_view`],
//! [`extract`], [`problem`]) and [`crate::state::AppState`] (whose `warmed` is the one
//! "this campaign, warmed" step); no route module imports another. [`openapi`] gathers the
//! route modules' documented paths; the schemas they still name from it move to the domain types
//! with issue 11 §2, after which nothing imports back from it.

pub mod admin;
pub mod campaign_view;
pub mod campaigns;
pub mod correlation;
pub mod extract;
pub mod jwks;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod queue;
pub mod rate_limit;
pub mod requests;
pub mod schemas;
pub mod stats;
pub mod wait_page;

use std::any::Any;
use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::util::MapRequestLayer;
use tower::{Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use problem::ApiError;

use crate::state::AppState;
use crate::telemetry;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The whole router, state applied.
///
/// Layers run outermost (last added) first: an unusable `X-Request-Id` is dropped, the id layer
/// sets one, the trace span records it (as `correlation_id`), and it is copied onto the
/// response — every response, problem+json and panics included.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(requests::router())
        .merge(queue::router())
        .merge(campaigns::router())
        .merge(admin::router())
        .merge(stats::router())
        .merge(ops::router())
        .merge(jwks::router())
        .merge(openapi::router())
        .merge(wait_page::router());
    // The per-address limit only where it is on: a `from_fn` middleware clones the route's
    // whole service stack on every request, a measurable share of the hot path's CPU.
    let routes = if state.config.rate_limits.ip.is_some() {
        routes.route_layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::per_address,
        ))
    } else {
        routes
    };
    routes
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RecordLatencyLayer)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(correlation::X_REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!(
                    "http",
                    correlation_id = %correlation::of(req),
                    method = %req.method(),
                    path = %req.uri().path(),
                )
            }),
        )
        .layer(SetRequestIdLayer::new(
            correlation::X_REQUEST_ID,
            correlation::MakeRandomUuid,
        ))
        // tower's `MapRequest` calls the inner service in place; axum's `map_request` would
        // clone the service stack per request.
        .layer(MapRequestLayer::new(correlation::drop_unusable))
        .with_state(state)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Records every request's latency under labels from closed sets (see [`telemetry`]): the route
/// template (`/v1/requests/{id}`, never the raw path) or `unmatched`, a standard method or
/// `other`, and the status the API answered.
///
/// A tower layer rather than a `from_fn` middleware: it calls the inner service in place instead
/// of cloning the route's service stack for every request.
#[derive(Debug, Clone, Copy)]
struct RecordLatencyLayer;

impl<S> Layer<S> for RecordLatencyLayer {
    type Service = RecordLatency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordLatency { inner }
    }
}

/// The service of [`RecordLatencyLayer`].
#[derive(Debug, Clone)]
struct RecordLatency<S> {
    inner: S,
}

impl<S> Service<axum::extract::Request> for RecordLatency<S>
where
    S: Service<axum::extract::Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().map_or_else(
            || telemetry::UNMATCHED_ROUTE.to_owned(),
            |m| m.as_str().to_owned(),
        );
        let method = telemetry::method_label(request.method());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            metrics::histogram!(
                telemetry::HTTP_DURATION,
                "route" => route,
                "method" => method,
                // Only the API's own handlers and middleware set it, from the statuses they know.
                "status" => response.status().as_str().to_owned(),
            )
            .record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}
