//! Extractors whose rejections are problem+json, and the admin-token guard.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::http::ApiError;
use crate::state::AppState;

/// `axum::Json`, rejecting as problem+json: 415 without a JSON content type, 413 over the body
/// limit, 408 when the whole body has not arrived within `RUSHLINE_HTTP_BODY_TIMEOUT_MS`, 400 for
/// anything that does not parse or validate (the detail names the field).
///
/// The body's time is bounded in total, not per chunk, so a client dribbling a byte at a time
/// holds its connection for the bound at most.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.connections.body_read_timeout;
        match tokio::time::timeout(limit, axum::Json::<T>::from_request(req, state)).await {
            Ok(Ok(axum::Json(value))) => Ok(Self(value)),
            Ok(Err(rejection)) => Err(json_rejection(rejection)),
            Err(_elapsed) => Err(ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} ms",
                limit.as_millis()
            ))),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("request bodies are limited to 64 KiB".into())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        _ => ApiError::BadRequest(detail),
    }
}

/// `axum::extract::Query`, rejecting with 400 problem+json.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// Proof that the caller presented `Authorization: Bearer $RUSHLINE_ADMIN_TOKEN`.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(ApiError::AdminDisabled);
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes()))
            .ok_or(ApiError::Unauthorized)?;
        // Constant time, so response timing does not leak how much of a guess was right.
        if bool::from(presented.ct_eq(expected.as_bytes())) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive and
/// may be followed by several spaces (RFC 9110 §11.4: `auth-scheme 1*SP token68`).
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(b"Bearer".len())?;
    if !scheme.eq_ignore_ascii_case(b"Bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii_start();
    (!token.is_empty()).then_some(token)
}

/// The one value of an optional header that must not be repeated, as text: `None` when absent;
/// 400 when it appears twice or is not visible ASCII (a header's value a client controls).
pub fn single_header<'a>(
    headers: &'a header::HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "{name}: must appear at most once"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::BadRequest(format!("{name}: must be printable ASCII")))
}

/// `axum::extract::Path`, rejecting with 400 problem+json.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;
    use proptest::prelude::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_token(value.as_bytes()), Some(&b"t0k"[..]), "{value}");
        }
        for value in [
            "Bearert0k",
            "Bearer",
            "Bearer ",
            "Basic t0k",
            "Bear t0k",
            "",
            "\u{e9}",
        ] {
            assert_eq!(bearer_token(value.as_bytes()), None, "{value}");
        }
    }

    proptest! {
        /// Any header bytes: no panic, and a token comes back only after a bearer scheme.
        #[test]
        fn any_authorization_value_is_parsed_or_refused(value in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(token) = bearer_token(&value) {
                prop_assert!(value[..6].eq_ignore_ascii_case(b"bearer"));
                prop_assert!(!token.is_empty() && token[0] != b' ');
            }
        }

        #[test]
        fn bearer_in_any_case_yields_the_token(
            scheme in "[bB][eE][aA][rR][eE][rR]",
            spaces in " {1,3}",
            token in "[A-Za-z0-9._~+/=-]{1,40}",
        ) {
            let value = format!("{scheme}{spaces}{token}");
            prop_assert_eq!(bearer_token(value.as_bytes()), Some(token.as_bytes()));
        }
    }
}
