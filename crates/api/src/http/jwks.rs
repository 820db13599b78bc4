//! `GET /.well-known/jwks.json`: the public keys waiting-room tickets are signed with, so a
//! checkout or an edge proxy verifies tickets without calling rushline (see
//! [`crate::tickets`] for the claims and what makes a ticket a pass).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::http::{ApiError, schemas};
use crate::state::AppState;

/// How long a verifier may cache the key set. The rotation procedure (README) publishes a new
/// key at least this long before it signs anything.
pub const MAX_AGE_SECS: u64 = 300;

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// Every public key a ticket may be signed with, the signing key first.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "waiting room",
    summary = "Public keys of waiting-room tickets (JWK Set)",
    responses(
        (status = 200, description = "JWK Set (RFC 7517): every Ed25519 key a ticket may be signed with", body = schemas::JwkSet, headers(("Cache-Control" = String, description = "public, max-age=300: keys are published before they sign"))),
        (status = 503, description = "No key yet: RUSHLINE_TICKET_KEYS is unset and the development key has not been read from Redis", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let keys = state.tickets.jwks().map_err(ApiError::unavailable)?;
    Ok((
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={MAX_AGE_SECS}"),
        )],
        Json(keys.clone()),
    ))
}
