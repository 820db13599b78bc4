//! The waiting room's part of the HTTP contract, as the storm's clients use it: create a campaign
//! with a `waiting_room`, join (`POST …/queue`), poll (`GET …/queue/me` with `Rushline-Ticket`),
//! post a request with the ticket, and read the campaign's `queue` figures.
//!
//! Answers are kept as the projections the checks compare: a [`QueueView`] per join or poll
//! answer, a [`Posted`] per request post (the shared [`Answer`] plus the problem `type` and
//! whether `Retry-After` came with a `403`).

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::LoadError;
use crate::api::{Api, IssueAnswer};
use crate::traffic::Answer;

/// The header a ticket travels in.
pub const TICKET_HEADER: &str = "rushline-ticket";

/// A waiting room's settings (the campaign option `waiting_room`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WaitingRoomOption {
    /// Positions admitted per second.
    pub admit_per_second: u32,
    /// Seconds a pass stays valid after admission.
    pub pass_secs: u32,
    /// Seconds before `opens_at` that joining starts (pre-queue).
    pub prequeue_secs: u32,
}

/// Where a user stands (`state` of a join or poll answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Joined before `opens_at`: no position until the opening shuffle.
    Prequeued,
    /// Has a position, not admitted yet.
    Waiting,
    /// `position <= admitted_through`: may post a request.
    Admitted,
    /// Admitted more than `pass_secs` ago.
    Expired,
}

/// A `201`/`200` answer to a join or a status poll (the fields the storm reads).
#[derive(Debug, Clone, Deserialize)]
pub struct QueueView {
    /// The newest ticket (a client keeps the latest one it was given).
    pub ticket: String,
    /// The user the ticket is for.
    pub user_id: String,
    /// Where the user stands.
    pub state: QueueState,
    /// 1-based place in line; `null` while pre-queued.
    pub position: Option<u64>,
    /// The serving counter (`null` tolerated before the opening).
    pub admitted_through: Option<u64>,
    /// When the user's position was admitted (server clock).
    pub admitted_at: Option<DateTime<Utc>>,
    /// When the server suggests polling again, seconds.
    pub poll_after_secs: Option<f64>,
    /// The server's clock when it answered (rushline's addition to the contract's body).
    pub server_time: Option<DateTime<Utc>>,
}

/// How a join or poll ended.
#[derive(Debug, Clone)]
pub enum QueueAnswer {
    /// `201` (first join) or `200`.
    View {
        /// HTTP status.
        status: u16,
        /// The body.
        view: Box<QueueView>,
    },
    /// Any other HTTP status.
    Refused(u16),
    /// Transport error or unreadable body.
    Failed(String),
}

/// A request post with a ticket, as the client saw it.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The outcome, as the other scenarios record it.
    pub answer: Answer,
    /// The problem `type` of a refusal, when it had one.
    pub problem_type: Option<String>,
    /// A `Retry-After` header came with the answer.
    pub retry_after: bool,
}

/// The campaign's queue figures (`GET /v1/campaigns/{id}`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct QueueFigures {
    /// Positions handed out.
    pub joined: u64,
    /// The serving counter.
    pub admitted_through: u64,
}

#[derive(Deserialize)]
struct CampaignQueue {
    status: String,
    queue: Option<QueueFigures>,
}

#[derive(Deserialize)]
struct ProblemType {
    r#type: Option<String>,
}

/// `POST /v1/campaigns` with a waiting room: `stock`, opening at `opens_at`, decided as the
/// client's [`Api::deciding`] says.
pub async fn create_campaign(
    api: &Api,
    id: &str,
    stock: u64,
    opens_at: DateTime<Utc>,
    waiting_room: WaitingRoomOption,
) -> Result<(), LoadError> {
    let body = serde_json::json!({
        "id": id,
        "name": format!("loadtest {id}"),
        "stock": stock,
        "opens_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "decide": api.decide().as_str(),
        "waiting_room": waiting_room,
    });
    let response = api
        .admin(api.client().post(api.url("/v1/campaigns")))
        .json(&body)
        .send()
        .await?;
    if response.status() != StatusCode::CREATED {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(LoadError::Unexpected {
            what: format!("POST /v1/campaigns ({id}, waiting room)"),
            detail: format!("{status}: {body}"),
        });
    }
    Ok(())
}

/// `GET /v1/campaigns/{id}`: its status and queue figures.
pub async fn campaign_queue(
    api: &Api,
    id: &str,
) -> Result<(String, Option<QueueFigures>), LoadError> {
    let response = api
        .client()
        .get(api.url(&format!("/v1/campaigns/{id}")))
        .send()
        .await?;
    if response.status() != StatusCode::OK {
        return Err(LoadError::Unexpected {
            what: format!("GET /v1/campaigns/{id}"),
            detail: response.status().to_string(),
        });
    }
    let view: CampaignQueue = response.json().await?;
    Ok((view.status, view.queue))
}

/// `POST /v1/campaigns/{campaign}/queue` for `user`.
pub async fn join(api: &Api, campaign: &str, user: &str) -> QueueAnswer {
    let request = api
        .client()
        .post(api.url(&format!("/v1/campaigns/{campaign}/queue")))
        .header("content-type", "application/json")
        .body(format!(r#"{{"user_id":"{user}"}}"#));
    queue_answer(request).await
}

/// `GET /v1/campaigns/{campaign}/queue/me` with `ticket`.
pub async fn poll(api: &Api, campaign: &str, ticket: &str) -> QueueAnswer {
    let request = api
        .client()
        .get(api.url(&format!("/v1/campaigns/{campaign}/queue/me")))
        .header(TICKET_HEADER, ticket);
    queue_answer(request).await
}

async fn queue_answer(request: reqwest::RequestBuilder) -> QueueAnswer {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return QueueAnswer::Failed(e.to_string()),
    };
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return QueueAnswer::Failed(e.to_string()),
    };
    if status != StatusCode::OK && status != StatusCode::CREATED {
        return QueueAnswer::Refused(status.as_u16());
    }
    match serde_json::from_slice::<QueueView>(&bytes) {
        Ok(view) => QueueAnswer::View {
            status: status.as_u16(),
            view: Box::new(view),
        },
        Err(e) => QueueAnswer::Failed(format!("{status} with unreadable body: {e}")),
    }
}

/// `POST /v1/campaigns/{campaign}/requests` for `user`, with `ticket` (none: the header is left
/// out) and an optional `Idempotency-Key`.
pub async fn post_request(
    api: &Api,
    campaign: &str,
    user: &str,
    ticket: Option<&str>,
    idempotency_key: Option<&str>,
) -> Posted {
    let mut request = api
        .client()
        .post(api.url(&format!("/v1/campaigns/{campaign}/requests")))
        .header("content-type", "application/json")
        .body(format!(r#"{{"user_id":"{user}"}}"#));
    if let Some(ticket) = ticket {
        request = request.header(TICKET_HEADER, ticket);
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let failed = |e: String| Posted {
        answer: Answer::Failed(e),
        problem_type: None,
        retry_after: false,
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return failed(e.to_string()),
    };
    let status = response.status();
    let retry_after = response.headers().contains_key("retry-after");
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return failed(e.to_string()),
    };
    if status != StatusCode::ACCEPTED && status != StatusCode::OK {
        return Posted {
            answer: Answer::Refused(status.as_u16()),
            problem_type: serde_json::from_slice::<ProblemType>(&bytes)
                .ok()
                .and_then(|p| p.r#type),
            retry_after,
        };
    }
    let answer = match serde_json::from_slice::<IssueAnswer>(&bytes) {
        Ok(answer) if status == StatusCode::ACCEPTED => Answer::Accepted(answer.request_id),
        Ok(answer) => Answer::Decided(answer.request_id, answer.status),
        Err(e) => Answer::Failed(format!("{status} with unreadable body: {e}")),
    };
    Posted {
        answer,
        problem_type: None,
        retry_after,
    }
}
