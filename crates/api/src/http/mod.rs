//! The HTTP surface: routes, extractors and errors.
//!
//! - [`requests`]: the hot path (`POST /v1/campaigns/{id}/requests`) and status reads.
//! - [`campaigns`]: campaign admin and reads.
//! - [`ops`]: health, readiness, metrics.
//! - [`extract`]: extractors that reject as problem+json, and the admin guard.
//! - [`problem`]: [`ApiError`], rendered as RFC 9457 problem details.

pub mod campaigns;
pub mod extract;
pub mod ops;
pub mod problem;
pub mod requests;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use problem::ApiError;

use crate::state::AppState;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The whole router, state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(requests::router())
        .merge(campaigns::router())
        .merge(ops::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
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
