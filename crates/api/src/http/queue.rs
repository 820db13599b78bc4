//! The waiting room's public endpoints: `POST /v1/campaigns/{id}/queue` (join) and
//! `GET /v1/campaigns/{id}/queue/me` (a ticket's standing). The logic is
//! [`crate::waiting_room`]'s; the request check is in [`super::requests`].

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rushline_domain::{CampaignId, IssueRequest, QueueStanding};
use rushline_queue::rate_limit::{UserRequest, Verdict};
use rushline_queue::{JoinOutcome, ShownWork};

use crate::http::ApiError;
use crate::http::extract::{ApiJson, ApiPath, single_header};
use crate::http::problem::ProofChallenge;
use crate::http::schemas;
use crate::rate_limit::{Denial, LimitKind};
use crate::state::AppState;
use crate::telemetry;
use crate::waiting_room::proof;

/// The header a ticket travels in.
pub const TICKET_HEADER: &str = "rushline-ticket";
/// The header a join's proof of work travels in: `<minute>.<nonce>`.
pub const PROOF_HEADER: &str = "rushline-proof";

/// Waiting-room routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns/{id}/queue", post(join))
        .route("/v1/campaigns/{id}/queue/me", get(me))
}

#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/queue",
    tag = "waiting room",
    summary = "Join a campaign's waiting room",
    request_body = schemas::IssueRequest,
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Rushline-Proof" = Option<String>, Header, nullable = false, description = "Proof of work, `<minute>.<nonce>` (nonce: 1-32 ASCII letters or digits), for a campaign whose `waiting_room.proof_of_work_bits` is above 0: SHA-256 of the `403 proof-of-work-required`'s `challenge` followed by the nonce starts with that many zero bits; good for the minute it names and the two after. Every join of such a campaign needs one", pattern = r"^[0-9]{1,15}\.[A-Za-z0-9]{1,32}$"),
    ),
    responses(
        (status = 201, description = "Joined: a new position (or a place in the pre-queue), with its ticket", body = schemas::QueueStanding),
        (status = 200, description = "Joined before: the same place, with fresh figures and a ticket", body = schemas::QueueStanding),
        (status = 400, description = "The body does not parse or validate, or Rushline-Proof is malformed or repeated", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`proof-of-work-required`: the campaign asks for a proof of work and the join showed none, too little, or one for a stale minute; `proof_of_work_bits`, `challenge` and `minute` say what to solve", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign, or it has no waiting room", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within the server's bound (the connection is closed)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The waiting room is not open (before `opens_at − prequeue_secs`, or the campaign closed or sold out)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a rate limit (per campaign and user, or per client address)", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until a join is allowed again"), ("RateLimit-Policy" = String, description = "The limit that refused it"), ("RateLimit" = String, description = "What is left of it"))),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn join(
    State(state): State<AppState>,
    ApiPath(campaign): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let campaign = CampaignId::parse(campaign).map_err(|_| ApiError::no_such_campaign())?;
    let user = body.user_id;
    // One hash, before any Redis call; the script judges the bits and the minute.
    let work = match single_header(&headers, PROOF_HEADER)? {
        None => ShownWork::default(),
        Some(header) => {
            let (minute, bits) = proof::shown(header, campaign.as_str(), user.as_str())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            ShownWork {
                bits,
                minute: Some(minute),
            }
        }
    };
    limit_user(&state, &campaign, &user).await?;
    let (queue, campaign_ref, user_ref) = (&state.queue, &campaign, &user);
    let outcome = state
        .warmed(&campaign, || async move {
            match queue.join_queue_proven(campaign_ref, user_ref, work).await {
                Ok(JoinOutcome::Unknown) => Ok(None),
                Ok(outcome) => Ok(Some(outcome)),
                Err(e) => Err(ApiError::unavailable(e)),
            }
        })
        .await?;
    match outcome {
        JoinOutcome::Joined { first, place } => {
            let standing = state
                .waiting_room
                .joined(&campaign, &user, &place)
                .map_err(ApiError::from)?;
            if first {
                telemetry::waiting_room_joined(&campaign);
            }
            let status = if first {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(standing)).into_response())
        }
        JoinOutcome::NoWaitingRoom => Err(ApiError::NotFound(
            "this campaign has no waiting room; post requests directly".into(),
        )),
        JoinOutcome::NotOpenYet => Err(ApiError::Conflict(
            "the waiting room is not open yet (it opens prequeue_secs before opens_at)".into(),
        )),
        JoinOutcome::Closed => Err(ApiError::Conflict(
            "the campaign is closed or sold out".into(),
        )),
        JoinOutcome::ProofRequired { bits, minute } => {
            Err(ApiError::ProofOfWorkRequired(Box::new(ProofChallenge {
                proof_of_work_bits: bits,
                challenge: proof::challenge(campaign.as_str(), user.as_str(), minute),
                minute,
            })))
        }
        JoinOutcome::Unknown => Err(ApiError::unavailable(anyhow::anyhow!(
            "campaign {campaign} answered unknown by a warm join"
        ))),
    }
}

#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/queue/me",
    tag = "waiting room",
    summary = "A ticket's standing, with fresh figures",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Rushline-Ticket" = String, Header, description = "The ticket the join (or an earlier read) answered with"),
    ),
    responses(
        (status = 200, description = "Where the ticket stands; keep the `ticket` it carries (it may be new)", body = schemas::QueueStanding),
        (status = 400, description = "Rushline-Ticket repeated or not text", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, forged or another campaign's ticket, or one the waiting room no longer holds (join again)", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn me(
    State(state): State<AppState>,
    ApiPath(campaign): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Json<QueueStanding>, ApiError> {
    let campaign = CampaignId::parse(campaign).map_err(|_| ApiError::no_such_campaign())?;
    let raw = single_header(&headers, TICKET_HEADER)?
        .ok_or_else(|| ApiError::TicketInvalid("a Rushline-Ticket header is required".into()))?;
    let claims = state.waiting_room.verify(&campaign, raw)?;
    let (waiting_room, campaign_ref, claims) = (&state.waiting_room, &campaign, &*claims);
    let standing = state
        .warmed(&campaign, || async move {
            waiting_room
                .standing_of(campaign_ref, raw, claims)
                .await
                .map_err(ApiError::from)
        })
        .await;
    telemetry::waiting_room_polled();
    Ok(Json(standing?))
}

/// The per-(campaign, user) limit on joins (the same budget as the user's requests). Fails
/// open, as every limit does (see [`crate::rate_limit`]).
async fn limit_user(
    state: &AppState,
    campaign: &CampaignId,
    user: &rushline_domain::UserId,
) -> Result<(), ApiError> {
    let Some(rate) = state.config.rate_limits.user else {
        return Ok(());
    };
    let request = UserRequest {
        user_id: user,
        idempotency_key: None,
    };
    match state.queue.limit_users(campaign, rate, &[request]).await {
        Ok(verdicts) => match verdicts.first() {
            Some(Verdict::Denied { retry_after, .. }) => Err(ApiError::RateLimited(Denial {
                kind: LimitKind::User,
                rate,
                retry_after: *retry_after,
            })),
            _ => Ok(()),
        },
        Err(e) => {
            tracing::warn!(error = %e, "per-user limit not checked on a join (Redis failed); letting it through");
            telemetry::backend_error(telemetry::Backend::Redis);
            Ok(())
        }
    }
}
