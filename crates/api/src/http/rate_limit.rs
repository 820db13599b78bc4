//! The per-client-address limit (`RUSHLINE_RATE_LIMIT_IP`), as a middleware on every public POST
//! route: it runs before the handler reads the body, so a flood of bad bodies is limited too.
//! Where the per-user limit is checked, and why the limits fail open: [`crate::rate_limit`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rushline_domain::{CampaignId, IdempotencyKey};
use rushline_queue::rate_limit::{Rate, Verdict};

use crate::http::ApiError;
use crate::http::extract::single_header;
use crate::rate_limit::client::limited_subject;
use crate::rate_limit::{Denial, LimitKind};
use crate::state::AppState;
use crate::telemetry;

/// The public POST routes (templates) the per-address limit covers: requests and waiting-room
/// joins.
pub const PUBLIC_POSTS: &[&str] = &["/v1/campaigns/{id}/requests", "/v1/campaigns/{id}/queue"];

/// Marks a response that replayed an earlier request by its `Idempotency-Key`: the per-address
/// limit gives back the request it counted, so replays never count.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentReplay;

/// Applies the per-address limit to the public POST routes; anything else passes untouched.
pub async fn per_address(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let Some(rate) = state.config.rate_limits.ip else {
        return next.run(request).await;
    };
    let public = request.method() == Method::POST
        && matched.is_some_and(|m| PUBLIC_POSTS.contains(&m.as_str()));
    // Every connection the API serves carries its peer; a router driven without one (`oneshot`
    // in tests) has no client to limit.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (true, Some(peer)) = (public, peer) else {
        return next.run(request).await;
    };
    let client = state
        .config
        .rate_limits
        .trusted_proxies
        .client(peer, request.headers());
    let subject = limited_subject(client);
    match state.queue.limit_address(&subject, rate).await {
        Ok(Verdict::Allowed { .. }) => {
            let response = next.run(request).await;
            if response.extensions().get::<IdempotentReplay>().is_some() {
                refund(&state, &subject, rate).await;
            }
            response
        }
        Ok(Verdict::Replay) => next.run(request).await,
        Ok(Verdict::Denied { retry_after, .. }) => {
            let (mut parts, body) = request.into_parts();
            if replays(&state, &mut parts).await {
                return next.run(Request::from_parts(parts, body)).await;
            }
            ApiError::RateLimited(Denial {
                kind: LimitKind::Ip,
                rate,
                retry_after,
            })
            .into_response()
        }
        Err(e) => {
            // Fail open: the handler's own Redis call answers 503 if Redis is really down.
            tracing::warn!(error = %e, "per-address rate limit unreadable; letting the request through");
            telemetry::backend_error(telemetry::Backend::Redis);
            next.run(request).await
        }
    }
}

/// Whether a refused request replays an earlier one: it carries a well-formed `Idempotency-Key`
/// already claimed for the campaign in its path. Asked only on the refusal path, so the common
/// path pays nothing for it; anything unreadable counts as not a replay.
async fn replays(state: &AppState, parts: &mut axum::http::request::Parts) -> bool {
    let Ok(Some(key)) = single_header(&parts.headers, "idempotency-key") else {
        return false;
    };
    let Ok(key) = IdempotencyKey::parse(key) else {
        return false;
    };
    let Ok(params) = RawPathParams::from_request_parts(parts, state).await else {
        return false;
    };
    let Some(campaign) = params
        .iter()
        .find(|(name, _)| *name == "id")
        .and_then(|(_, id)| CampaignId::parse(id).ok())
    else {
        return false;
    };
    state
        .queue
        .idempotency_claimed(&campaign, &key)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "idempotency claim unreadable; the limit stands");
            false
        })
}

/// Gives the address back the request a replay spent. Best effort: a failure leaves the client
/// one request short for a period.
async fn refund(state: &AppState, subject: &str, rate: Rate) {
    if let Err(e) = state.queue.refund_address(subject, rate).await {
        tracing::warn!(error = %e, "per-address rate limit refund failed");
    }
}
