//! Metrics set-up and the name of every metric the API exports (logs are set up by
//! `rushline_runtime::logs`).
//!
//! | metric | type | labels | what it tells an operator |
//! | --- | --- | --- | --- |
//! | `rushline_requests_total` | counter | `outcome` | every accept outcome, replays included |
//! | `rushline_requests_accepted_total` | counter | — | requests queued (answered 202) |
//! | `rushline_requests_refused_total` | counter | `reason` | requests not queued, and why |
//! | `rushline_rate_limited_total` | counter | `limit` (`user`, `ip`) | requests answered 429, by the limit that refused them |
//! | `rushline_http_request_duration_seconds` | histogram | `route`, `method`, `status` | latency per route template |
//! | `rushline_accept_group_size` | histogram | — | requests per `accept.lua` call (group commit): how well concurrent accepts share a call |
//! | `rushline_http_connections` | gauge | — | open client connections |
//! | `rushline_http_connections_refused_total` | counter | — | connections refused over `RUSHLINE_HTTP_MAX_CONNECTIONS` |
//! | `rushline_queue_depth` | gauge | `campaign` | requests waiting for a worker |
//! | `rushline_persistence_lag_seconds` | gauge | `campaign` | age of the oldest decision not yet in PostgreSQL |
//! | `rushline_backend_errors_total` | counter | `backend` (`redis`, `postgres`) | failed backing-service calls |
//! | `rushline_waiters` | gauge | — | callers parked on `?wait=` |
//! | `rushline_pool_connections` | gauge | `backend`, `state` (`in_use`, `idle`) | connection-pool usage |
//! | `rushline_clock_skew_seconds` | gauge | — | this host's clock minus Redis's (windows follow Redis's) |
//! | `rushline_waiting_room_joined_total` | counter | `campaign` | places made in a waiting room by this replica (first joins and rejoins after an expired pass) |
//! | `rushline_waiting_room_expired_total` | counter | `campaign` | expired passes this replica saw used (a rejoin, a refused ticket) |
//! | `rushline_waiting_room_admitted_through` | gauge | `campaign` | the serving counter at this replica's last read (same on every replica: take `max`) |
//! | `rushline_waiting_room_waiting` | gauge | `campaign` | positions handed out and not yet admitted, plus the pre-queue |
//! | `rushline_waiting_room_outflow_per_second` | gauge | `campaign` | measured advance of the serving counter (~10 s window) |
//! | `rushline_waiting_room_polls_total` | counter | — | ticket standings answered (`GET …/queue/me`) |
//! | `rushline_tickets_checked_total` | counter | `result` (`cached`, `verified`, `refused`) | waiting-room tickets checked: from the verified-ticket cache, by their signature, or refused |
//!
//! Every label value comes from a closed set, so no client can grow `/metrics` (or the
//! recorder's memory) by what it sends: `route` is a route template or `unmatched`, `method` a
//! standard method or `other` ([`method_label`]), `status` one of the statuses the API answers.
//!
//! Queue depth is refreshed on every scrape of `/metrics` and whenever a campaign's stats are
//! read, so it is as fresh as the scrape without a background task.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rushline_queue::{QueueError, WarmError};
use rushline_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::accept::AcceptError;

/// Accept outcomes, by `outcome`.
pub const REQUESTS: &str = "rushline_requests_total";
/// Requests queued.
pub const ACCEPTED: &str = "rushline_requests_accepted_total";
/// Requests refused, by `reason`.
pub const REFUSED: &str = "rushline_requests_refused_total";
/// Requests refused by a rate limit (429), by `limit`.
pub const RATE_LIMITED: &str = "rushline_rate_limited_total";
/// Requests decided by the accept step itself (answered 200), by final `status`.
pub const DECIDED_AT_ONCE: &str = "rushline_requests_decided_at_once_total";
/// HTTP latency by `route`, `method`, `status`.
pub const HTTP_DURATION: &str = "rushline_http_request_duration_seconds";
/// Requests per `accept.lua` call (group commit).
pub const ACCEPT_GROUP_SIZE: &str = "rushline_accept_group_size";
/// Queue length by `campaign`.
pub const QUEUE_DEPTH: &str = "rushline_queue_depth";
/// Oldest unpersisted decision's age by `campaign`.
pub const PERSISTENCE_LAG: &str = "rushline_persistence_lag_seconds";
/// Backing-service failures by `backend`.
pub const BACKEND_ERRORS: &str = "rushline_backend_errors_total";
/// Parked `?wait=` callers.
pub const WAITERS: &str = "rushline_waiters";
/// Pooled connections by `backend` and `state` (`in_use`, `idle`).
pub const POOL_CONNECTIONS: &str = "rushline_pool_connections";
/// Open client connections.
pub const HTTP_CONNECTIONS: &str = "rushline_http_connections";
/// Client connections refused because the cap was reached.
pub const HTTP_CONNECTIONS_REFUSED: &str = "rushline_http_connections_refused_total";
/// Waiting-room ticket standings answered.
pub const WAITING_ROOM_POLLS: &str = "rushline_waiting_room_polls_total";
/// This host's clock minus Redis's, measured at each read of Redis's clock.
pub const CLOCK_SKEW: &str = "rushline_clock_skew_seconds";
/// Places made in a waiting room, by `campaign`.
pub const WAITING_ROOM_JOINED: &str = "rushline_waiting_room_joined_total";
/// Expired passes seen used, by `campaign`.
pub const WAITING_ROOM_EXPIRED: &str = "rushline_waiting_room_expired_total";
/// The serving counter, by `campaign`.
pub const WAITING_ROOM_ADMITTED: &str = "rushline_waiting_room_admitted_through";
/// People waiting in line (and pre-queued), by `campaign`.
pub const WAITING_ROOM_WAITING: &str = "rushline_waiting_room_waiting";
/// Measured outflow, by `campaign`.
pub const WAITING_ROOM_OUTFLOW: &str = "rushline_waiting_room_outflow_per_second";
/// Waiting-room tickets checked, by `result`: `cached` (the verified-ticket cache answered),
/// `verified` (the signature was checked), `refused`.
pub const TICKETS_CHECKED: &str = "rushline_tickets_checked_total";

/// Latency buckets (seconds): the hot path answers in about a millisecond, `?wait=` up to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Group-size buckets (requests per call): fine where groups are small, up to the largest
/// allowed group (`RUSHLINE_ACCEPT_BATCH` ≤ 4096).
const GROUP_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 256.0, 512.0,
    1024.0, 4096.0,
];

/// How often recorded histogram samples are folded into their buckets (see [`upkeep`]).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// The process's Prometheus recorder handle, installed on first use.
///
/// The `metrics` facade is process-global by design; this is the one place that touches it.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Histograms, not summaries, so latency can be aggregated across API replicas. The bucket
        // list is a non-empty constant, the only thing the builder can reject.
        // Group sizes too: a summary's quantiles cover a rolling minute, buckets can be
        // differenced over any interval (the load test's figure per blast).
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(ACCEPT_GROUP_SIZE.into()),
                    GROUP_SIZE_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then this handle renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// Folds the histogram samples recorded since the last fold into their buckets, every
/// [`UPKEEP_EVERY`], until `shutdown`.
///
/// The recorder keeps each recorded value (8 bytes) until something folds them; rendering
/// `/metrics` does, but a deployment nobody scrapes — the load test, a replica Prometheus does
/// not reach — kept every request's latency and every accept group's size: the API's memory
/// grew with the requests it served. Folding every second bounds that buffer to about one
/// second of traffic.
pub async fn upkeep(shutdown: CancellationToken) {
    let handle = metrics();
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "Issue requests by accept outcome.");
    describe_counter!(
        ACCEPTED,
        "Issue requests queued for a worker (answered 202)."
    );
    describe_counter!(REFUSED, "Issue requests not queued, by reason.");
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 by a rate limit, by limit (user, ip)."
    );
    describe_counter!(
        DECIDED_AT_ONCE,
        "Issue requests decided by the accept step (instant campaigns, or stock gone), by final status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by route template, method and status."
    );
    describe_histogram!(
        ACCEPT_GROUP_SIZE,
        "Requests per accept script call (group commit)."
    );
    describe_gauge!(QUEUE_DEPTH, "Requests waiting in a campaign's queue.");
    describe_gauge!(
        PERSISTENCE_LAG,
        Unit::Seconds,
        "Age of a campaign's oldest decision not yet persisted to PostgreSQL."
    );
    describe_counter!(BACKEND_ERRORS, "Failed Redis or PostgreSQL calls.");
    describe_gauge!(WAITERS, "Callers parked on ?wait=.");
    describe_gauge!(HTTP_CONNECTIONS, "Open client connections.");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "Client connections refused (503, closed) because RUSHLINE_HTTP_MAX_CONNECTIONS were open."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Pooled Redis / PostgreSQL connections, in use or idle."
    );
    describe_counter!(
        WAITING_ROOM_JOINED,
        "Places made in a campaign's waiting room by this replica (first joins, rejoins after an expired pass)."
    );
    describe_counter!(
        WAITING_ROOM_EXPIRED,
        "Expired waiting-room passes this replica saw used (a rejoin, a refused ticket)."
    );
    describe_counter!(
        WAITING_ROOM_POLLS,
        "Waiting-room ticket standings answered."
    );
    describe_gauge!(
        WAITING_ROOM_ADMITTED,
        "A waiting room's serving counter (admitted_through) at this replica's last read; the same for every replica."
    );
    describe_gauge!(
        WAITING_ROOM_WAITING,
        "People in a waiting room's line not yet admitted, pre-queued ones included."
    );
    describe_gauge!(
        WAITING_ROOM_OUTFLOW,
        "Measured advance of a waiting room's serving counter per second (about 10 s window)."
    );
    describe_gauge!(
        CLOCK_SKEW,
        Unit::Seconds,
        "This host's clock minus Redis's (campaign windows follow Redis's clock)."
    );
}

/// The `method` label of a request: the method when it is one of HTTP's standard ones, else
/// `other`. A client can send any token as a method; echoing it would grow a series per token.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts one ticket standing answered.
pub fn waiting_room_polled() {
    metrics::counter!(WAITING_ROOM_POLLS).increment(1);
}

/// Sets the waiting-room gauges of every campaign this replica holds a counter copy of (each
/// scrape of `/metrics`).
pub fn waiting_rooms(counters: &[(rushline_domain::CampaignId, rushline_queue::QueueCounter)]) {
    for (campaign, counter) in counters {
        waiting_room_counter(campaign, counter);
    }
}

/// Counts one request refused by the `kind` rate limit.
pub fn rate_limited(kind: crate::rate_limit::LimitKind) {
    metrics::counter!(RATE_LIMITED, "limit" => kind.label()).increment(1);
}

/// Counts a place made in `campaign`'s waiting room (a join that answered `first`). The
/// `campaign` label is bounded: campaigns are created by operators only.
pub fn waiting_room_joined(campaign: &rushline_domain::CampaignId) {
    metrics::counter!(WAITING_ROOM_JOINED, "campaign" => campaign.to_string()).increment(1);
}

/// Counts an expired pass seen used in `campaign`'s waiting room.
pub fn waiting_room_expired(campaign: &rushline_domain::CampaignId) {
    metrics::counter!(WAITING_ROOM_EXPIRED, "campaign" => campaign.to_string()).increment(1);
}

/// Records a reading of `campaign`'s serving counter (any read: a join, a status poll, a view).
pub fn waiting_room_counter(
    campaign: &rushline_domain::CampaignId,
    counter: &rushline_queue::QueueCounter,
) {
    let campaign = campaign.to_string();
    metrics::gauge!(WAITING_ROOM_ADMITTED, "campaign" => campaign.clone())
        .set(counter.admitted_through as f64);
    metrics::gauge!(WAITING_ROOM_WAITING, "campaign" => campaign.clone())
        .set(counter.waiting() as f64);
    metrics::gauge!(WAITING_ROOM_OUTFLOW, "campaign" => campaign).set(counter.outflow_per_sec);
}

/// The `route` label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A backing service (one definition for the API and the workers, so their labels agree).
pub use rushline_runtime::Backend;

/// Counts one failed call to `backend`.
pub fn backend_error(backend: Backend) {
    metrics::counter!(BACKEND_ERRORS, "backend" => backend.label()).increment(1);
}

/// Which backing service an error came from, when it is one of rushline's backend errors.
pub fn backend_of(error: &anyhow::Error) -> Option<Backend> {
    if error.downcast_ref::<QueueError>().is_some() {
        return Some(Backend::Redis);
    }
    if error.downcast_ref::<StoreError>().is_some() {
        return Some(Backend::Postgres);
    }
    if let Some(e) = error.downcast_ref::<AcceptError>() {
        return matches!(e, AcceptError::Queue(_)).then_some(Backend::Redis);
    }
    match error.downcast_ref::<WarmError<StoreError>>()? {
        WarmError::Source(_) => Some(Backend::Postgres),
        WarmError::Queue(_) | WarmError::Busy => Some(Backend::Redis),
    }
}
