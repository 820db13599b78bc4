//! The waiting room's part of the HTTP contract, as the storm's clients use it: create a campaign
//! with a `waiting_room`, join (`POST …/queue`), poll (`GET …/queue/me` with `Rushline-Ticket`),
//! post a request with the ticket, and read the campaign's `queue` figures.
//!
//! Answers are parsed by the API's own types from `rushline_domain` and kept as the projections
//! the checks compare (see [`crate::api`]): a [`QueueView`] per join or poll answer, a [`Posted`] per request post (the shared [`Answer`] plus the problem `type` and
//! whether `Retry-After` came with a `403`).

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use rushline_domain::{
    CampaignId, CampaignName, CampaignView, NewCampaign, QueueStanding, Stock, WaitingRoomOptions,
};
use serde::Deserialize;

use crate::LoadError;
use crate::api::{Api, IssueAnswer};
use crate::traffic::Answer;

pub use rushline_domain::{QueueFigures, QueueState};

/// The header a ticket travels in.
pub const TICKET_HEADER: &str = "rushline-ticket";

/// A `201`/`200` answer to a join or a status poll: the API's [`QueueStanding`], as the checks
/// read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "QueueStanding")]
pub struct QueueView {
    /// The newest ticket (a client keeps the latest one it was given).
    pub ticket: String,
    /// The user the ticket is for.
    pub user_id: String,
    /// Where the user stands.
    pub state: QueueState,
    /// 1-based place in line; `None` while pre-queued.
    pub position: Option<u64>,
    /// When the user's position was admitted (server clock).
    pub admitted_at: Option<DateTime<Utc>>,
    /// When the server suggests polling again, seconds.
    pub poll_after_secs: f64,
    /// The server's clock when it answered.
    pub server_time: DateTime<Utc>,
}

impl From<QueueStanding> for QueueView {
    fn from(standing: QueueStanding) -> Self {
        Self {
            ticket: standing.ticket,
            user_id: standing.user_id.into(),
            state: standing.state,
            position: standing.position,
            admitted_at: standing.admitted_at,
            poll_after_secs: standing.poll_after_secs,
            server_time: standing.server_time,
        }
    }
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
    waiting_room: WaitingRoomOptions,
) -> Result<(), LoadError> {
    let invalid = |detail: String| LoadError::Unexpected {
        what: format!("campaign {id}"),
        detail,
    };
    let body = NewCampaign {
        id: Some(CampaignId::parse(id).map_err(|e| invalid(e.to_string()))?),
        name: CampaignName::parse(format!("loadtest {id}")).map_err(|e| invalid(e.to_string()))?,
        stock: Stock::new(stock).map_err(|e| invalid(e.to_string()))?,
        opens_at: Some(opens_at),
        closes_at: None,
        decide: Some(api.decide()),
        waiting_room: Some(waiting_room),
        shards: None,
    };
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
    let view: CampaignView = response.json().await?;
    Ok((view.status.as_str().to_owned(), view.queue))
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
