//! A stand-in for the waiting-room endpoints, faithful to CONTRACT.md's *Waiting room* and
//! *Issue requests*, serving the real page ([`WaitPage`]) from the same origin.
//!
//! The walks run against the real API ([`super::real::RealRoom`]); this stand-in serves the
//! tests that need a fault the real API cannot be made to show on cue (a `503` on joining, a
//! `429` or `401` on submitting, a pass that expires now). What the fake simplifies:
//! pre-queued users get positions in join order (the real one shuffles), tickets are opaque
//! strings (the real ones are JWS), and a request is decided `issued` on its first status read.
//! What it keeps: every field and status code the page reads, a new ticket in every answer
//! (so a page that keeps an old one is caught: [`Observed::stale_tickets`]), idempotent
//! submits, and a server clock far from the browser's (so a page that trusts the phone's clock
//! shows a countdown of hours instead of seconds).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rushline_api::http::wait_page::{Language, WaitPage};
use rushline_domain::CampaignId;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::WaitingRoom;

/// The fake server's clock runs this far behind the machine's (and so the browser's).
const SERVER_CLOCK_BEHIND: chrono::TimeDelta = chrono::TimeDelta::minutes(137);
/// Admissions per second the fake's ETA assumes.
const ADMIT_PER_SECOND: f64 = 10.0;

/// An endpoint a fault can be armed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/campaigns/{id}/queue`.
    Join,
    /// `POST /v1/campaigns/{id}/requests`.
    Submit,
}

/// What the fake saw, for assertions.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Calls to join the queue (faulted ones included).
    pub joins: usize,
    /// `Idempotency-Key` of every submit (faulted ones included), in order.
    pub submit_keys: Vec<Option<String>>,
    /// Requests created (first submits of a key).
    pub requests_created: usize,
    /// Times a ticket other than the newest one handed to its user was presented.
    pub stale_tickets: usize,
}

#[derive(Default)]
struct Campaign {
    name: String,
    opens_at: DateTime<Utc>,
    admitted_through: u64,
    next_position: u64,
    holders: HashMap<String, Holder>,
}

struct Holder {
    position: u64,
    newest_ticket: String,
    /// The pass ran out (`pass_secs` after admission, in the real one).
    expired: bool,
}

struct IssueRecord {
    request_id: String,
    campaign: String,
    user: String,
    coupon_code: Option<String>,
}

#[derive(Default)]
struct Shared {
    campaigns: HashMap<String, Campaign>,
    /// Ticket → (campaign, user).
    tickets: HashMap<String, (String, String)>,
    tickets_minted: u64,
    /// Idempotency-Key → request id.
    keys: HashMap<String, String>,
    requests: HashMap<String, IssueRecord>,
    faults: VecDeque<(Endpoint, StatusCode)>,
    observed: Observed,
}

/// The running fake.
pub struct FakeRoom {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
    server: JoinHandle<()>,
}

fn server_now() -> DateTime<Utc> {
    Utc::now() - SERVER_CLOCK_BEHIND
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panicking handler fails its test anyway; the data is still what the test wants to see.
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeRoom {
    /// Serves on a free loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/wait/{id}", get(page))
            .route("/v1/campaigns/{id}/queue", post(join))
            .route("/v1/campaigns/{id}/queue/me", get(me))
            .route("/v1/campaigns/{id}/requests", post(submit))
            .route("/v1/requests/{id}", get(request_status))
            .layer(middleware::from_fn(date_by_server_clock))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake server");
        });
        Self {
            base_url,
            shared,
            server,
        }
    }

    /// The next call to `endpoint` answers `status` (with `Retry-After: 1`) instead.
    pub fn fail_next(&self, endpoint: Endpoint, status: StatusCode) {
        lock(&self.shared).faults.push_back((endpoint, status));
    }

    /// Faults armed and not yet served.
    pub fn faults_left(&self) -> usize {
        lock(&self.shared).faults.len()
    }

    pub fn observed(&self) -> Observed {
        lock(&self.shared).observed.clone()
    }

    /// `user`'s pass in `campaign` expires.
    pub fn expire(&self, campaign: &str, user: &str) {
        let mut shared = lock(&self.shared);
        let campaign = shared.campaigns.get_mut(campaign).expect("campaign");
        campaign.holders.get_mut(user).expect("holder").expired = true;
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

impl WaitingRoom for FakeRoom {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn create_campaign(&self, opens_in: Duration, already_waiting: u64) -> String {
        let mut shared = lock(&self.shared);
        let id = format!("drop-{}", shared.campaigns.len() + 1);
        let opens_in = chrono::TimeDelta::from_std(opens_in).expect("opens_in");
        shared.campaigns.insert(
            id.clone(),
            Campaign {
                name: "Winter concert presale".into(),
                opens_at: server_now() + opens_in,
                next_position: already_waiting + 1,
                ..Campaign::default()
            },
        );
        id
    }

    async fn admit_through(&self, campaign: &str, position: u64) -> u64 {
        let mut shared = lock(&self.shared);
        let campaign = shared.campaigns.get_mut(campaign).expect("campaign");
        campaign.admitted_through = campaign.admitted_through.max(position);
        campaign.admitted_through
    }
}

/// Every answer's `Date` by the fake server's clock, as a real server's would be by its own.
async fn date_by_server_clock(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let date = server_now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = HeaderValue::try_from(date) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

fn problem(status: StatusCode, slug: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": format!("urn:rushline:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": slug,
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::SERVICE_UNAVAILABLE
        || slug == "not-your-turn"
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn armed_fault(shared: &mut Shared, endpoint: Endpoint) -> Option<Response> {
    let (next, status) = *shared.faults.front()?;
    (next == endpoint).then(|| {
        shared.faults.pop_front();
        problem(status, "armed-fault", json!({}))
    })
}

async fn page(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let shared = lock(&shared);
    let (Ok(campaign_id), Some(campaign)) =
        (CampaignId::parse(id.clone()), shared.campaigns.get(&id))
    else {
        return problem(StatusCode::NOT_FOUND, "not-found", json!({}));
    };
    WaitPage {
        campaign: &campaign_id,
        name: &campaign.name,
        opens_at: campaign.opens_at,
        server_now: server_now(),
        language: Language::from_headers(&headers),
    }
    .into_response()
}

#[derive(Deserialize)]
struct UserBody {
    user_id: String,
}

/// The contract's queue body for `user`, with a new ticket.
fn queue_view(shared: &mut Shared, campaign_id: &str, user: &str) -> Value {
    shared.tickets_minted += 1;
    let ticket = format!("fake-ticket-{}", shared.tickets_minted);
    shared
        .tickets
        .insert(ticket.clone(), (campaign_id.to_owned(), user.to_owned()));
    let now = server_now();
    let campaign = shared.campaigns.get_mut(campaign_id).expect("campaign");
    let admitted_through = campaign.admitted_through;
    let opened = now >= campaign.opens_at;
    let holder = campaign.holders.get_mut(user).expect("holder");
    holder.newest_ticket = ticket.clone();
    let position = holder.position;
    let ahead = position.saturating_sub(admitted_through + 1);
    let state = if holder.expired {
        "expired"
    } else if !opened {
        "prequeued"
    } else if position <= admitted_through {
        "admitted"
    } else {
        "waiting"
    };
    json!({
        "ticket": ticket, "campaign_id": campaign_id, "user_id": user, "state": state,
        "position": opened.then_some(position),
        "admitted_through": if opened { admitted_through } else { 0 },
        "ahead": opened.then_some(ahead),
        "eta_secs": ahead as f64 / ADMIT_PER_SECOND,
        "poll_after_secs": 1,
        "admitted_at": (state == "admitted").then(|| now.to_rfc3339()),
        "pass_expires_at": (state == "admitted").then(|| (now + chrono::TimeDelta::minutes(10)).to_rfc3339()),
    })
}

async fn join(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    Json(body): Json<UserBody>,
) -> Response {
    let mut shared = lock(&shared);
    shared.observed.joins += 1;
    if let Some(fault) = armed_fault(&mut shared, Endpoint::Join) {
        return fault;
    }
    let Some(campaign) = shared.campaigns.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", json!({}));
    };
    // A first join, or joining again after the pass expired: a new place at the back.
    let first = campaign
        .holders
        .get(&body.user_id)
        .is_none_or(|holder| holder.expired);
    if first {
        let position = campaign.next_position;
        campaign.next_position += 1;
        campaign.holders.insert(
            body.user_id.clone(),
            Holder {
                position,
                newest_ticket: String::new(),
                expired: false,
            },
        );
    }
    let view = queue_view(&mut shared, &id, &body.user_id);
    let status = if first {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(view)).into_response()
}

/// The (campaign, user) of a presented ticket, counting a stale one; `None` for a missing or
/// unknown ticket or another campaign's.
fn ticket_holder(shared: &mut Shared, campaign: &str, headers: &HeaderMap) -> Option<String> {
    let ticket = headers.get("rushline-ticket")?.to_str().ok()?;
    let (of_campaign, user) = shared.tickets.get(ticket)?.clone();
    if of_campaign != campaign {
        return None;
    }
    let newest = &shared
        .campaigns
        .get(campaign)?
        .holders
        .get(&user)?
        .newest_ticket;
    if newest != ticket {
        shared.observed.stale_tickets += 1;
    }
    Some(user)
}

async fn me(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut shared = lock(&shared);
    let Some(user) = ticket_holder(&mut shared, &id, &headers) else {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized", json!({}));
    };
    Json(queue_view(&mut shared, &id, &user)).into_response()
}

fn request_view(record: &IssueRecord) -> Value {
    json!({
        "request_id": record.request_id, "campaign_id": record.campaign, "user_id": record.user,
        "status": if record.coupon_code.is_some() { "issued" } else { "queued" },
        "coupon_code": record.coupon_code,
        "decided_at": record.coupon_code.as_ref().map(|_| server_now().to_rfc3339()),
    })
}

async fn submit(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<UserBody>,
) -> Response {
    let mut shared = lock(&shared);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared.observed.submit_keys.push(key.clone());
    if let Some(fault) = armed_fault(&mut shared, Endpoint::Submit) {
        return fault;
    }
    let Some(user) = ticket_holder(&mut shared, &id, &headers) else {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized", json!({}));
    };
    if user != body.user_id {
        return problem(StatusCode::FORBIDDEN, "forbidden", json!({}));
    }
    let campaign = &shared.campaigns[&id];
    let position = campaign.holders[&user].position;
    if position > campaign.admitted_through {
        let ahead = position - campaign.admitted_through - 1;
        return problem(
            StatusCode::FORBIDDEN,
            "not-your-turn",
            json!({"position": position, "admitted_through": campaign.admitted_through,
                   "ahead": ahead, "eta_secs": ahead as f64 / ADMIT_PER_SECOND}),
        );
    }
    if let Some(request_id) = key.as_ref().and_then(|k| shared.keys.get(k)) {
        return Json(request_view(&shared.requests[request_id])).into_response();
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    shared.observed.requests_created += 1;
    if let Some(key) = key {
        shared.keys.insert(key, request_id.clone());
    }
    shared.requests.insert(
        request_id.clone(),
        IssueRecord {
            request_id: request_id.clone(),
            campaign: id.clone(),
            user,
            coupon_code: None,
        },
    );
    let location = format!("/v1/requests/{request_id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({"request_id": request_id, "status": "queued", "campaign_id": id})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

async fn request_status(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Response {
    let mut shared = lock(&shared);
    let issued = shared
        .requests
        .values()
        .filter(|r| r.coupon_code.is_some())
        .count();
    let Some(record) = shared.requests.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", json!({}));
    };
    // Decided when first asked with `?wait=` (as a worker would decide while the page waits).
    if record.coupon_code.is_none() && query.wait.is_some() {
        record.coupon_code = Some(format!("RL-TEST-{:04}", issued + 1));
    }
    Json(request_view(record)).into_response()
}
