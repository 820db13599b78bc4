//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Every handler returns `Result<_, ApiError>`. Client mistakes become 4xx with a detail that says
//! what to fix; backing-service failures become 503 with `Retry-After`; anything else is a 500
//! whose body reveals nothing (the cause is logged). Backing-service failures are also counted in
//! `rushline_backend_errors_total`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rushline_domain::{QueueStanding, RequestId, ValidationError};
use serde::Serialize;

use crate::rate_limit::Denial;
use crate::telemetry;
use crate::tickets::TicketError;
use crate::waiting_room::{self, Refusal};

/// Seconds a client should wait before retrying a 429/503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Everything a handler can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body, path, query or a header does not parse or validate.
    #[error("{0}")]
    BadRequest(String),
    /// 401: the admin token is missing or wrong.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 403: admin endpoints are disabled (no token configured).
    #[error("admin endpoints are disabled: RUSHLINE_ADMIN_TOKEN is not set")]
    AdminDisabled,
    /// 408: the request body did not arrive in time. The connection is closed after it, since
    /// the rest of the body may still be on its way.
    #[error("{0}")]
    RequestTimeout(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the state of the resource forbids it.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but contradicting earlier input.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: over a rate limit; carries `Retry-After`, `RateLimit-Policy` and `RateLimit`.
    #[error("rate limit exceeded ({} requests per {} s); retry after Retry-After seconds", .0.rate.quota(), .0.rate.period().as_secs())]
    RateLimited(Denial),
    /// 401: a waiting-room campaign's request or status read without a valid `Rushline-Ticket`
    /// (missing, malformed, forged, or another campaign's).
    #[error("{0}")]
    TicketInvalid(String),
    /// 403: the ticket is another user's than the body's `user_id`.
    #[error("the Rushline-Ticket belongs to another user_id")]
    TicketOtherUser,
    /// 403 `not-your-turn`: the serving counter has not reached the ticket's position; carries
    /// `Retry-After` and the standing's figures as extension members.
    #[error("not your turn yet: the serving counter has not reached your position")]
    NotYourTurn(Box<QueueStanding>),
    /// 403 `proof-of-work-required`: a join of a campaign that asks for a proof of work showed
    /// none, too little, or one for a stale minute; carries the puzzle as extension members.
    #[error(
        "this waiting room asks for a proof of work: find a nonce (1-32 ASCII letters or digits) \
         such that SHA-256(challenge + nonce) starts with proof_of_work_bits zero bits, and join \
         again with Rushline-Proof: <minute>.<nonce>"
    )]
    ProofOfWorkRequired(Box<ProofChallenge>),
    /// 403 `ticket-expired`: admitted more than the campaign's `pass_secs` ago.
    #[error("the ticket's pass has expired; join the queue again for a new position")]
    TicketExpired,
    /// 503: shed to protect the service; retry later.
    #[error("{0}")]
    Overloaded(String),
    /// 503: Redis or PostgreSQL is unreachable, failing or too slow. When a slow accept timed
    /// out, Redis may still have queued the request, so the detail tells clients how to retry
    /// without pressing twice.
    #[error(
        "a backing service is unavailable or too slow; retry after Retry-After seconds, with the \
         same Idempotency-Key so that a request that did get through is not queued twice"
    )]
    Unavailable(#[source] anyhow::Error),
    /// 503: a backing call failed while a request was being queued, at a point where Redis may
    /// nonetheless have queued it (a timeout, a connection lost mid-call). The problem carries
    /// the id the request would have (extension member `request_id`) and its `Location`, so the
    /// client learns the outcome with one GET.
    #[error(
        "a backing service failed while the request was being queued; it may have been queued \
         nonetheless: GET its Location (request_id) to learn its outcome, or retry after \
         Retry-After seconds with the same Idempotency-Key"
    )]
    MaybeQueued {
        /// The id the request was queued under, if it was.
        request_id: RequestId,
        /// What failed.
        #[source]
        source: anyhow::Error,
    },
    /// 500: a bug. Logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The puzzle a `proof-of-work-required` refusal sets (its extension members).
#[derive(Debug, Serialize)]
pub struct ProofChallenge {
    /// Leading zero bits asked.
    pub proof_of_work_bits: u8,
    /// The text to hash, without the nonce.
    pub challenge: String,
    /// The server's current minute, the one `challenge` names.
    pub minute: i64,
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: String,
    /// Extension member: the request a `503` may nonetheless have queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
    /// Extension members of a `not-your-turn`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    standing: Option<Figures>,
    /// Extension members of a `proof-of-work-required`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    puzzle: Option<&'a ProofChallenge>,
}

/// Where a ticket that is not admitted yet stands (`not-your-turn`'s extension members).
#[derive(Serialize)]
struct Figures {
    position: Option<u64>,
    admitted_through: u64,
    ahead: Option<u64>,
    eta_secs: Option<f64>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::AdminDisabled => (StatusCode::FORBIDDEN, "admin-disabled"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request-timeout"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            Self::TicketInvalid(_) => (StatusCode::UNAUTHORIZED, "ticket-invalid"),
            Self::TicketOtherUser => (StatusCode::FORBIDDEN, "ticket-other-user"),
            Self::NotYourTurn(_) => (StatusCode::FORBIDDEN, "not-your-turn"),
            Self::TicketExpired => (StatusCode::FORBIDDEN, "ticket-expired"),
            Self::ProofOfWorkRequired(_) => (StatusCode::FORBIDDEN, "proof-of-work-required"),
            Self::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Unavailable(_) | Self::MaybeQueued { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A backing-service failure.
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }

    /// The 404 for a campaign id that is malformed or that the record does not hold (the two are
    /// answered alike: a malformed id names no campaign).
    pub fn no_such_campaign() -> Self {
        Self::NotFound("no such campaign".into())
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(detail) => Self::TicketInvalid(detail),
            Refusal::NotYourTurn(standing) => Self::NotYourTurn(standing),
            Refusal::Expired => Self::TicketExpired,
            Refusal::Queue(e) => Self::unavailable(e),
            Refusal::Tickets(e) => Self::from(e),
        }
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::KeysUnavailable => Self::unavailable(e),
            TicketError::Encoding(_) => Self::Internal(e.into()),
            e => Self::TicketInvalid(format!("the Rushline-Ticket does not verify: {e}")),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.parts();
        match &self {
            Self::Internal(e) => tracing::error!(error = ?e, "internal error"),
            Self::Unavailable(e) | Self::MaybeQueued { source: e, .. } => {
                if let Some(backend) = telemetry::backend_of(e) {
                    telemetry::backend_error(backend);
                }
                tracing::warn!(error = %e, "backing service unavailable");
            }
            Self::RateLimited(denial) => telemetry::rate_limited(denial.kind),
            _ => {}
        }
        let problem = Problem {
            r#type: format!("urn:rushline:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            request_id: match &self {
                Self::MaybeQueued { request_id, .. } => Some(*request_id),
                _ => None,
            },
            standing: match &self {
                Self::NotYourTurn(standing) => Some(Figures {
                    position: standing.position,
                    admitted_through: standing.admitted_through,
                    ahead: standing.ahead,
                    eta_secs: standing.eta_secs,
                }),
                _ => None,
            },
            puzzle: match &self {
                Self::ProofOfWorkRequired(puzzle) => Some(puzzle.as_ref()),
                _ => None,
            },
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Overloaded(_) | Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::MaybeQueued { request_id, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                // A UUID in a path: always a valid header value.
                if let Ok(location) = HeaderValue::try_from(format!("/v1/requests/{request_id}")) {
                    headers.insert(header::LOCATION, location);
                }
            }
            Self::RateLimited(denial) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(denial.retry_after_secs()),
                );
                // Digits, quotes, letters and `;=`: always valid header values.
                for (name, value) in [
                    ("ratelimit-policy", denial.policy_header()),
                    ("ratelimit", denial.limit_header()),
                ] {
                    if let Ok(value) = HeaderValue::try_from(value) {
                        headers.insert(name, value);
                    }
                }
            }
            Self::RequestTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TicketInvalid(_) => {
                // The scheme is rushline's own header, named so a client knows what to send.
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Rushline-Ticket realm=\"waiting-room\""),
                );
            }
            Self::NotYourTurn(standing) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(waiting_room::retry_after(&standing).as_secs()),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rushline_domain::CampaignId;

    fn rendered(error: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes =
            futures::executor::block_on(axum::body::to_bytes(body, 1 << 20)).unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    #[test]
    fn a_503_that_may_have_queued_carries_its_request_id_and_location() {
        let id = RequestId::new_for(&CampaignId::parse("c").unwrap());
        let (status, headers, body) = rendered(ApiError::MaybeQueued {
            request_id: id,
            source: anyhow::anyhow!("redis call timed out"),
        });
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["request_id"], id.to_string());
        assert_eq!(
            headers.get(header::LOCATION).unwrap(),
            &format!("/v1/requests/{id}")
        );
        assert!(headers.contains_key(header::RETRY_AFTER));
        let (_, headers, body) = rendered(ApiError::unavailable(anyhow::anyhow!("refused")));
        assert!(body.get("request_id").is_none());
        assert!(!headers.contains_key(header::LOCATION));
    }

    proptest! {
        /// Whatever a detail holds (a client's input echoed in it included), the body is one
        /// well-formed problem+json object with the status it is sent with.
        #[test]
        fn any_detail_renders_a_well_formed_problem(detail in "\\PC{0,200}|.{0,50}", kind in 0..5u8) {
            let error = match kind {
                0 => ApiError::BadRequest(detail.clone()),
                1 => ApiError::NotFound(detail.clone()),
                2 => ApiError::Conflict(detail.clone()),
                3 => ApiError::RequestTimeout(detail.clone()),
                _ => ApiError::Unprocessable(detail.clone()),
            };
            let (status, headers, body) = rendered(error);
            prop_assert_eq!(
                headers.get(header::CONTENT_TYPE).unwrap(),
                "application/problem+json"
            );
            prop_assert_eq!(body["status"].as_u64(), Some(u64::from(status.as_u16())));
            prop_assert_eq!(body["detail"].as_str(), Some(detail.as_str()));
            prop_assert!(body["type"].as_str().unwrap().starts_with("urn:rushline:problem:"));
        }
    }
}
