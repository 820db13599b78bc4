//! `POST /v1/campaigns/{id}/requests` (the hot path) and `GET /v1/requests/{id}`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rushline_domain::{
    AcceptedView, CampaignId, IdempotencyKey, IssueRequest, RequestId, RequestStatus, RequestView,
    UserId,
};
use rushline_queue::{AcceptItem, AcceptOutcome, QueueError};
use serde::Deserialize;
use tokio::time::Instant;

use crate::accept::AcceptError;
use crate::http::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, single_header};
use crate::http::queue::TICKET_HEADER;
use crate::http::rate_limit::IdempotentReplay;
use crate::http::schemas;
use crate::state::AppState;
use crate::telemetry;
use crate::waiting_room;

/// Longest `?wait=` honoured, in seconds.
const MAX_WAIT_SECS: u64 = 30;

/// Request routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns/{id}/requests", post(issue))
        .route("/v1/requests/{id}", get(status))
}

#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/requests",
    tag = "requests",
    summary = "Ask for a coupon",
    request_body = schemas::IssueRequest,
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "1-128 printable ASCII characters, at most once; retries with it return the same request"),
        ("Rushline-Ticket" = Option<String>, Header, description = "A campaign with a waiting room: the user's admitted ticket (from POST /v1/campaigns/{id}/queue or GET /v1/campaigns/{id}/queue/me)"),
    ),
    responses(
        (status = 202, description = "Queued", body = schemas::AcceptedView, headers(("Location" = String, description = "The request's status URL"))),
        (status = 200, description = "Decided at once (an instant campaign's request, with its coupon code when issued; or sold out, duplicate once the stock is gone) or an idempotent replay of a final request", body = schemas::RequestView, headers(("Location" = String, description = "The request's status URL"))),
        (status = 400, description = "The body does not parse or validate, or Idempotency-Key is malformed or repeated", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 401, description = "A campaign with a waiting room, and no Rushline-Ticket, or one that is malformed, forged or another campaign's", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The ticket is another user's; or not admitted yet (`type` ending `not-your-turn`, with `Retry-After` and the extension members `position`, `admitted_through`, `ahead`, `eta_secs`); or its pass expired (`type` ending `ticket-expired`)", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Only on not-your-turn: seconds until the next look"))),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign scheduled or closed", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another user_id", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a rate limit (per campaign and user, or per client address); nothing was queued", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a request is allowed again (at least 1)"), ("RateLimit-Policy" = String, description = "The limit that refused it (draft-ietf-httpapi-ratelimit-headers), e.g. `\"user\";q=10;w=1`"), ("RateLimit" = String, description = "What is left of it, e.g. `\"user\";r=0;t=1`"))),
        (status = 503, description = "Overloaded or a backing service is down. When a backing call failed at a point where the request may nonetheless have been queued (a timeout, a connection lost mid-call), the problem carries the request's `request_id` and a `Location` header: GET it to learn the outcome, or retry with the same Idempotency-Key", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"), ("Location" = String, description = "Only when the request may have been queued: its status URL"))),
    ),
)]
async fn issue(
    State(state): State<AppState>,
    ApiPath(campaign): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let campaign = CampaignId::parse(campaign).map_err(|_| {
        refused("unknown_campaign");
        ApiError::no_such_campaign()
    })?;
    let idempotency_key = single_header(&headers, "idempotency-key")?
        .map(IdempotencyKey::parse)
        .transpose()?;
    let admitted = match single_header(&headers, TICKET_HEADER)? {
        Some(ticket) => {
            admit(&state, &campaign, &body.user_id, ticket)
                .await
                .inspect_err(|e| refused(refusal_reason(e)))?;
            true
        }
        None => false,
    };
    let item = AcceptItem {
        request_id: RequestId::new_for(&campaign),
        user_id: body.user_id,
        idempotency_key,
        admitted,
    };
    let (state_ref, campaign_ref, item_ref) = (&state, &campaign, &item);
    let outcome = state
        .warmed(&campaign, || async move {
            let outcome = accept(state_ref, campaign_ref, item_ref).await?;
            Ok((outcome != AcceptOutcome::Unknown).then_some(outcome))
        })
        .await
        .inspect_err(|e| refused(refusal_reason(e)))?;
    count(&outcome);
    match outcome {
        AcceptOutcome::Queued => Ok(queued(item.request_id, campaign)),
        AcceptOutcome::Decided {
            status,
            decided_at,
            coupon_code,
        } => Ok(decided(RequestView {
            request_id: item.request_id,
            campaign_id: campaign,
            user_id: item.user_id,
            status,
            coupon_code,
            decided_at: Some(decided_at),
        })),
        AcceptOutcome::IssuedUnminted { .. } => issued_unminted(&state, item.request_id).await,
        AcceptOutcome::Replay { request_id, view } => {
            let view = match view {
                Some(view) => Some(view),
                None => state
                    .store
                    .request(request_id)
                    .await
                    .map_err(ApiError::unavailable)?,
            };
            let mut response = match view {
                Some(view) if view.status.is_final() => decided(view),
                _ => queued(request_id, campaign),
            };
            // A replay spends no rate limit: the per-address limit gives back what it took.
            response.extensions_mut().insert(IdempotentReplay);
            Ok(response)
        }
        AcceptOutcome::KeyReused => Err(ApiError::Unprocessable(
            "Idempotency-Key was already used with a different user_id".into(),
        )),
        AcceptOutcome::Unknown => Err(ApiError::unavailable(anyhow::anyhow!(
            "campaign {campaign} answered unknown by a warm accept"
        ))),
        AcceptOutcome::TicketRequired => Err(ApiError::TicketInvalid(format!(
            "campaign {campaign} has a waiting room: join it (POST /v1/campaigns/{campaign}/queue) \
             and send the ticket, once admitted, in the Rushline-Ticket header"
        ))),
        AcceptOutcome::Scheduled => Err(ApiError::Conflict("campaign is not open yet".into())),
        AcceptOutcome::Closed => Err(ApiError::Conflict("campaign is closed".into())),
        AcceptOutcome::Overloaded => Err(ApiError::Overloaded(
            "campaign queue is full; retry shortly".into(),
        )),
    }
}

/// The waiting room's check (guarantee 7): the ticket verifies, is for this campaign and this
/// user, and its fresh standing is admitted and unexpired. `accept.lua` refuses a waiting-room
/// campaign's request that did not pass here.
async fn admit(
    state: &AppState,
    campaign: &CampaignId,
    user: &UserId,
    ticket: &str,
) -> Result<(), ApiError> {
    let claims = state.waiting_room.verify(campaign, ticket)?;
    if &claims.sub != user {
        return Err(ApiError::TicketOtherUser);
    }
    let waiting_room = &state.waiting_room;
    let claims_ref = &*claims;
    let standing = state
        .warmed(campaign, || async move {
            waiting_room
                .standing_of(campaign, ticket, claims_ref)
                .await
                .map_err(ApiError::from)
        })
        .await?;
    waiting_room::admission(standing).inspect_err(|refusal| {
        if matches!(refusal, waiting_room::Refusal::Expired) {
            telemetry::waiting_room_expired(campaign);
        }
    })?;
    Ok(())
}

/// An instant decision whose code this process could not mint: read the request back (Redis,
/// else PostgreSQL) and answer with it. If that fails too, the client gets the request's id and
/// `Location` with the 503 (as for any call after which the request may exist), so one GET
/// learns the outcome; the decision itself is made and recorded either way.
async fn issued_unminted(state: &AppState, request_id: RequestId) -> Result<Response, ApiError> {
    match read_status(state, request_id).await {
        Ok(view) if view.status.is_final() => Ok(decided(view)),
        Ok(view) => Err(ApiError::MaybeQueued {
            request_id,
            source: anyhow::anyhow!(
                "request {request_id} decided at once reads {}",
                view.status.as_str()
            ),
        }),
        Err(e) => Err(ApiError::MaybeQueued {
            request_id,
            source: anyhow::anyhow!("reading back request {request_id} decided at once: {e}"),
        }),
    }
}

/// One accept; a failure where Redis may nonetheless have queued the request answers with the
/// request's id and `Location` ([`ApiError::MaybeQueued`]).
async fn accept(
    state: &AppState,
    campaign: &CampaignId,
    item: &AcceptItem,
) -> Result<AcceptOutcome, ApiError> {
    state
        .acceptor
        .accept(campaign.clone(), item.clone())
        .await
        .map_err(|e| match e {
            AcceptError::RateLimited(denial) => ApiError::RateLimited(denial),
            AcceptError::Backlog => {
                ApiError::Overloaded("too many requests in flight; retry shortly".into())
            }
            other => {
                if script_may_have_run(&other) {
                    ApiError::MaybeQueued {
                        request_id: item.request_id,
                        source: other.into(),
                    }
                } else {
                    ApiError::unavailable(other)
                }
            }
        })
}

/// Whether `accept.lua` may have run although the call failed. Only failures that happen before
/// anything reaches Redis are certain: no connection could be made, or the configuration is
/// unusable. A timeout, a connection lost mid-call, an error reply from inside the script (Redis
/// does not roll back what a failing script wrote) or an unreadable reply all may follow a script
/// that ran; so may an acceptor that dropped a request it had taken.
fn script_may_have_run(error: &AcceptError) -> bool {
    match error {
        AcceptError::Backlog | AcceptError::RateLimited(_) => false,
        AcceptError::Stopped => true,
        AcceptError::Queue(e) => match e.as_ref() {
            QueueError::Config(_) => false,
            QueueError::Redis(e) => !e.is_connection_refusal(),
            _ => true,
        },
    }
}

/// Counts an accept outcome: every outcome in `rushline_requests_total`, and each as accepted,
/// replayed or refused with its reason.
fn count(outcome: &AcceptOutcome) {
    let label = outcome_label(outcome);
    metrics::counter!(telemetry::REQUESTS, "outcome" => label).increment(1);
    match outcome {
        AcceptOutcome::Queued => metrics::counter!(telemetry::ACCEPTED).increment(1),
        AcceptOutcome::Replay { .. } => {}
        AcceptOutcome::Decided {
            status: RequestStatus::Issued,
            ..
        }
        | AcceptOutcome::IssuedUnminted { .. } => {
            metrics::counter!(telemetry::DECIDED_AT_ONCE, "status" => label).increment(1);
        }
        AcceptOutcome::Decided { .. } => {
            metrics::counter!(telemetry::DECIDED_AT_ONCE, "status" => label).increment(1);
            refused(label);
        }
        _ => refused(label),
    }
}

/// Why a request that failed before it had an outcome was not queued: the acceptor's backlog was
/// full, the campaign does not exist (its warm-up found no record), or a backing service failed.
fn refusal_reason(error: &ApiError) -> &'static str {
    match error {
        ApiError::Overloaded(_) => "backlog",
        ApiError::RateLimited(_) => "rate_limited",
        ApiError::NotFound(_) => "unknown_campaign",
        ApiError::TicketInvalid(_) => "ticket_invalid",
        ApiError::TicketOtherUser => "ticket_other_user",
        ApiError::NotYourTurn(_) => "not_your_turn",
        ApiError::TicketExpired => "ticket_expired",
        _ => "unavailable",
    }
}

/// Counts a request that was not queued, by why.
fn refused(reason: &'static str) {
    metrics::counter!(telemetry::REFUSED, "reason" => reason).increment(1);
}

fn outcome_label(outcome: &AcceptOutcome) -> &'static str {
    match outcome {
        AcceptOutcome::Queued => "queued",
        AcceptOutcome::Decided {
            status: RequestStatus::Duplicate,
            ..
        } => "duplicate",
        AcceptOutcome::Decided {
            status: RequestStatus::Issued,
            ..
        }
        | AcceptOutcome::IssuedUnminted { .. } => "issued",
        AcceptOutcome::Decided { .. } => "sold_out",
        AcceptOutcome::Replay { .. } => "replay",
        AcceptOutcome::KeyReused => "key_reused",
        AcceptOutcome::Unknown => "unknown_campaign",
        AcceptOutcome::TicketRequired => "ticket_required",
        AcceptOutcome::Scheduled => "scheduled",
        AcceptOutcome::Closed => "closed",
        AcceptOutcome::Overloaded => "overloaded",
    }
}

fn location(id: RequestId) -> [(header::HeaderName, String); 1] {
    [(header::LOCATION, format!("/v1/requests/{id}"))]
}

fn queued(request_id: RequestId, campaign_id: CampaignId) -> Response {
    let body = AcceptedView {
        request_id,
        status: RequestStatus::Queued,
        campaign_id,
    };
    (StatusCode::ACCEPTED, location(request_id), Json(body)).into_response()
}

fn decided(view: RequestView) -> Response {
    (StatusCode::OK, location(view.request_id), Json(view)).into_response()
}

#[derive(Deserialize)]
struct StatusQuery {
    wait: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "requests",
    summary = "Read a request's status",
    params(
        ("id" = String, Path, format = "uuid", description = "Request id"),
        ("wait" = Option<u32>, Query, description = "Hold up to N seconds (max 30) until final"),
    ),
    responses(
        (status = 200, description = "The request", body = schemas::RequestView),
        (status = 400, description = "Malformed id or wait", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    let wait = parse_wait(query.wait.as_deref())?;
    let deadline = Instant::now() + wait;
    loop {
        // Register before reading: a decision landing after the read still wakes us.
        let mut waiting = (!wait.is_zero()).then(|| state.waiters.register(id));
        let view = read_status(&state, id).await?;
        let now = Instant::now();
        let Some(waiting) = waiting.as_mut() else {
            return Ok(Json(view));
        };
        if view.status.is_final() || now >= deadline || state.shutdown.is_cancelled() {
            return Ok(Json(view));
        }
        waiting.wait(deadline - now).await;
    }
}

/// `?wait=N`: whole seconds, capped at 30; anything but a non-negative integer is a 400.
fn parse_wait(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(Duration::ZERO);
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(
            "wait: must be a non-negative whole number of seconds".into(),
        ));
    }
    // All digits: only overflow can fail, and an overflowing number is "above 30".
    let secs = raw
        .parse::<u64>()
        .unwrap_or(MAX_WAIT_SECS)
        .min(MAX_WAIT_SECS);
    Ok(Duration::from_secs(secs))
}

/// Redis first (it has every queued and recently decided request), PostgreSQL second.
async fn read_status(state: &AppState, id: RequestId) -> Result<RequestView, ApiError> {
    let redis = state.queue.request_status(id).await;
    if let Ok(Some(view)) = redis {
        return Ok(view);
    }
    match state.store.request(id).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => match redis {
            Err(e) => Err(ApiError::unavailable(e)),
            Ok(_) => Err(ApiError::NotFound("no such request".into())),
        },
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_parsing_follows_the_contract() {
        assert_eq!(parse_wait(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("0")).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("5")).unwrap(), Duration::from_secs(5));
        assert_eq!(parse_wait(Some("31")).unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_wait(Some("99999999999999999999999")).unwrap(),
            Duration::from_secs(30)
        );
        for bad in ["", "-1", "1.5", "abc", " 1", "+1"] {
            assert!(parse_wait(Some(bad)).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Any `?wait=` text is a 400 or a wait of at most 30 s, never a panic; digits always
        /// parse, however many.
        #[test]
        fn any_wait_is_refused_or_capped(raw in "\\PC{0,30}|[0-9]{1,40}") {
            match parse_wait(Some(&raw)) {
                Ok(wait) => {
                    proptest::prop_assert!(wait <= Duration::from_secs(MAX_WAIT_SECS));
                    proptest::prop_assert!(raw.bytes().all(|b| b.is_ascii_digit()));
                }
                Err(_) => proptest::prop_assert!(
                    raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit())
                ),
            }
        }
    }
}
