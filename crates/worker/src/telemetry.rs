//! The worker's metrics: their names, the Prometheus recorder and `GET /metrics`.
//!
//! | metric | type | labels | what it tells an operator |
//! | --- | --- | --- | --- |
//! | `rushline_decisions_total` | counter | `outcome` (`issued`, `sold_out`, `duplicate`) | decisions made in Redis; its rate is decisions/s |
//! | `rushline_decide_batch_size` | histogram | — | requests per decide script call (full batches: the queue is deep) |
//! | `rushline_persist_batch_size` | histogram | — | decisions per PostgreSQL transaction |
//! | `rushline_persisted_rows_total` | counter | — | rows PostgreSQL inserted (re-persisted rows are not counted) |
//! | `rushline_rollbacks_total` | counter | — | decisions the record refused and Redis undid (0 in normal operation) |
//! | `rushline_backend_errors_total` | counter | `backend` (`redis`, `postgres`), `step` | failed backing-service calls, each retried |
//! | `rushline_decide_paused_total` | counter | — | times a campaign was skipped because its decision log was full (PostgreSQL behind) |
//! | `rushline_dead_letters_total` | counter | `reason` (`unparsable`, `unknown_campaign`, `rejected_by_record`) | log entries this worker set aside because they can never be persisted |
//! | `rushline_dead_letter_entries` | gauge | — | dead letters waiting in Redis over all campaigns (every worker reports the same figure; refreshed each sweep) |
//!
//! `rushline_backend_errors_total` shares its name and `backend` label with the API's, so one
//! query sums both. Each worker serves these on `RUSHLINE_WORKER_METRICS_ADDR` (see
//! [`crate::Config::metrics_addr`]); workers started in-process by tests record into whatever
//! recorder the process has.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Decisions by `outcome`.
pub const DECISIONS: &str = "rushline_decisions_total";
/// Requests per decide call.
pub const DECIDE_BATCH: &str = "rushline_decide_batch_size";
/// Decisions per PostgreSQL transaction.
pub const PERSIST_BATCH: &str = "rushline_persist_batch_size";
/// Rows inserted into PostgreSQL.
pub const PERSISTED_ROWS: &str = "rushline_persisted_rows_total";
/// Decisions the record refused, undone in Redis.
pub const ROLLBACKS: &str = "rushline_rollbacks_total";
/// Failed backing-service calls by `backend` and `step`.
pub const BACKEND_ERRORS: &str = "rushline_backend_errors_total";
/// Campaigns skipped because their decision log was full.
pub const DECIDE_PAUSED: &str = "rushline_decide_paused_total";
/// Log entries dead-lettered, by `reason`.
pub const DEAD_LETTERS: &str = "rushline_dead_letters_total";
/// Dead letters waiting, over all campaigns.
pub const DEAD_LETTER_ENTRIES: &str = "rushline_dead_letter_entries";
/// Superseded decisions handed back after a rebuild, by `action`.
pub use crate::persist::SUPERSEDED;

/// Batch-size buckets: decide batches hold up to `RUSHLINE_DECIDE_BATCH` (default 256) requests,
/// persist batches up to `RUSHLINE_PERSIST_ENTRIES` of those. Buckets (not summaries) so sizes can
/// be aggregated across workers.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];

/// A backing service (one definition for the API and the workers, so their labels agree).
pub use rushline_runtime::Backend;

/// Counts one failed call to `backend` during `step`.
pub fn backend_error(backend: Backend, step: &'static str) {
    metrics::counter!(BACKEND_ERRORS, "backend" => backend.label(), "step" => step).increment(1);
}

/// Installs the process-wide Prometheus recorder; `None` if another recorder was installed first
/// (then nothing this process records would be rendered, so there is nothing to serve).
///
/// The `metrics` facade is process-global by design; `main` calls this once.
pub fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DECIDE_BATCH.into()), BATCH_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(PERSIST_BATCH.into()), BATCH_BUCKETS))
        // The bucket list is a non-empty constant, the only thing the builder can reject.
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    describe();
    // Series exist from the start at 0, so rate() over a worker's first decisions is exact and a
    // dashboard shows an idle worker as 0, not as missing.
    for outcome in ["issued", "sold_out", "duplicate"] {
        metrics::counter!(DECISIONS, "outcome" => outcome).increment(0);
    }
    for counter in [PERSISTED_ROWS, ROLLBACKS, DECIDE_PAUSED] {
        metrics::counter!(counter).increment(0);
    }
    for reason in rushline_queue::DeadLetterReason::ALL {
        metrics::counter!(DEAD_LETTERS, "reason" => reason.as_str()).increment(0);
    }
    for action in ["requeued", "skipped"] {
        metrics::counter!(SUPERSEDED, "action" => action).increment(0);
    }
    metrics::gauge!(DEAD_LETTER_ENTRIES).set(0.0);
    Some(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(DECISIONS, "Requests decided in Redis, by outcome.");
    describe_histogram!(DECIDE_BATCH, "Requests per decide script call.");
    describe_histogram!(PERSIST_BATCH, "Decisions per PostgreSQL transaction.");
    describe_counter!(PERSISTED_ROWS, "Decision rows inserted into PostgreSQL.");
    describe_counter!(
        ROLLBACKS,
        "Decisions the record refused and Redis undid (0 in normal operation)."
    );
    describe_counter!(
        BACKEND_ERRORS,
        "Failed Redis or PostgreSQL calls, by backend and step (each is retried)."
    );
    metrics::describe_gauge!(
        DEAD_LETTER_ENTRIES,
        "Dead letters waiting in Redis, over all campaigns."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Decision-log entries set aside because they can never be persisted, by reason."
    );
    describe_counter!(
        SUPERSEDED,
        "Decisions refused as superseded by a rebuild (Redis lost data), by what became of them."
    );
    describe_counter!(
        DECIDE_PAUSED,
        "Times a campaign was not decided because its decision log was full."
    );
}

/// `GET /metrics` on `listener` until `shutdown` is cancelled.
///
/// A router of its own, not the API's: a worker has no other HTTP surface, and a slow scraper
/// must never stand between it and the queue (the loops never touch this task).
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Folds recorded histogram samples into their buckets every second until `shutdown`: the
/// recorder keeps each sample until something folds it, and only a scrape would, so a worker
/// nobody scrapes would grow with every batch it decides or persists.
async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// Installs the recorder and serves `/metrics` on `addr` until `shutdown` is cancelled.
///
/// A worker that cannot serve its metrics (the port is taken, say by a second worker left on the
/// default) still decides and persists: it logs an error and runs without `/metrics`, because
/// stopping a queue consumer over its metrics would turn an observability problem into an
/// outage. `None` when nothing is served.
pub async fn start(addr: SocketAddr, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let Some(handle) = install() else {
        tracing::error!("a metrics recorder was already installed; /metrics not served");
        return None;
    };
    tokio::spawn(upkeep(handle.clone(), shutdown.clone()));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve worker metrics (set RUSHLINE_WORKER_METRICS_ADDR to a free port, or off); running without /metrics");
            return None;
        }
    };
    match listener.local_addr() {
        Ok(local) => tracing::info!(addr = %local, "worker metrics listening"),
        Err(e) => tracing::warn!(error = %e, "worker metrics listening on an unknown address"),
    }
    Some(tokio::spawn(async move {
        if let Err(e) = serve(listener, handle, shutdown).await {
            tracing::error!(error = %e, "serving worker metrics failed");
        }
    }))
}
