//! The correlation id: one id per HTTP exchange, carried in the `X-Request-Id` header, on its
//! tracing span (field `correlation_id`) and echoed in the response.
//!
//! Named for what it does rather than for its header: it correlates log lines across hops, and
//! it is not the domain's `rushline_domain::RequestId` (the id of a coupon request, returned in
//! bodies as `request_id`), which a client's `X-Request-Id` has nothing to do with.
//!
//! A caller's (or a load balancer's) id is kept when it is 1–128 printable ASCII characters, so
//! one id follows a request through every hop's logs; anything else is replaced by a fresh UUID
//! rather than refused, because a bad correlation header is no reason to fail a request. The
//! same rule as `Idempotency-Key`, and for the same reason: it ends up in log lines.
//!
//! The layers (tower-http's `SetRequestIdLayer` / `PropagateRequestIdLayer`) are applied in
//! [`super::router`]; the span reads the id through [`of`].

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
// tower-http's `RequestId` is the header value it propagates, under a name that says so here.
use tower_http::request_id::{MakeRequestId, RequestId as HeaderId};

/// The header, lower-case as HTTP/2 sends it.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied id kept.
pub const MAX_LEN: usize = 128;

/// Whether a caller's id is kept: 1–128 bytes, each printable ASCII (space to `~`).
pub fn acceptable(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| (0x20..0x7f).contains(b))
}

/// Drops an unusable incoming `X-Request-Id` (and any second one), so the id layer generates
/// one instead of propagating it.
pub fn drop_unusable(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let keep = {
        let mut values = headers.get_all(&X_REQUEST_ID).iter();
        match (values.next(), values.next()) {
            (Some(only), None) => acceptable(only.as_bytes()),
            (None, _) => true,
            (Some(_), Some(_)) => false,
        }
    };
    if !keep {
        headers.remove(&X_REQUEST_ID);
    }
    request
}

/// Makes the fresh ids: random (v4) UUIDs, as tower-http's `MakeRequestUuid` does, but from the
/// thread's CSPRNG instead of a `getrandom` system call per request, which the profile showed on
/// the hot path.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeRandomUuid;

impl MakeRequestId for MakeRandomUuid {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<HeaderId> {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        let value = HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut text)).ok()?;
        Some(HeaderId::new(value))
    }
}

/// The exchange's correlation id as set by the id layer (empty before it ran, which the router's
/// order rules out).
pub fn of<B>(request: &axum::http::Request<B>) -> &str {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::acceptable;
    use proptest::prelude::*;

    #[test]
    fn ids_at_the_limits() {
        assert!(acceptable(b"a"));
        assert!(acceptable(b"req 42 ~"));
        assert!(acceptable(&[b'x'; 128]));
        assert!(!acceptable(b""));
        assert!(!acceptable(&[b'x'; 129]));
        assert!(!acceptable(b"tab\there"));
        assert!(!acceptable("caf\u{e9}".as_bytes()));
        assert!(!acceptable(b"del\x7f"));
    }

    proptest! {
        #[test]
        fn any_header_bytes_are_kept_only_when_printable_ascii(
            value in proptest::collection::vec(any::<u8>(), 0..140)
        ) {
            let expected = (1..=128).contains(&value.len())
                && value.iter().all(|b| (0x20..0x7f).contains(b));
            prop_assert_eq!(acceptable(&value), expected);
        }
    }
}
