//! After the blast: long-poll every request id to its final status.
//!
//! Each id gets `GET /v1/requests/{id}?wait=30`, repeated while it answers `queued`, with at
//! most `concurrency` polls in flight. The API answers a waiting poll the moment the request is
//! decided, so the instant a poll returns is when the client *learned* the request was final; the
//! server's `decided_at` says when it *became* final (the same machine's clock).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::api::{Api, RequestView};
use crate::traffic::Blast;

/// The final view of each request, and when the last became final.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Final (or last seen) view per request id.
    pub views: HashMap<Uuid, RequestView>,
    /// Ids that never resolved (still `queued` after the deadline, or every poll failed), with
    /// the reason.
    pub unresolved: Vec<(Uuid, String)>,
    /// Summary figures.
    pub summary: ResolveSummary,
}

/// Resolution in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResolveSummary {
    /// Distinct request ids resolved.
    pub ids: usize,
    /// Ids not final at the deadline.
    pub unresolved: usize,
    /// Seconds the resolve phase took.
    pub seconds: f64,
    /// Latest `decided_at`, seconds after the blast started (server clock).
    pub last_decided_s: Option<f64>,
    /// When the last poll returned final, seconds after the blast started (client clock; an
    /// upper bound, as polls are bounded in number).
    pub last_final_seen_s: f64,
    /// Seconds it took to post everything (blast duration).
    pub post_seconds: f64,
    /// `last_decided_s / post_seconds`: the presale (S1) target is ≤ 1.5.
    pub final_over_post: Option<f64>,
}

/// Resolves every id the blast received, `concurrency` polls at a time, giving up on an id after
/// `deadline` from the start of resolution.
pub async fn resolve(api: &Api, blast: &Blast, concurrency: usize, deadline: Duration) -> Resolved {
    let mut ids: Vec<Uuid> = blast
        .records
        .iter()
        .filter_map(|r| r.answer.request_id())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let started = Instant::now();
    let give_up = started + deadline;
    let outcomes: Vec<(Uuid, Result<RequestView, String>, Instant)> =
        futures::stream::iter(ids.iter().copied())
            .map(|id| async move {
                let outcome = poll_final(api, id, give_up).await;
                (id, outcome, Instant::now())
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let mut resolved = Resolved::default();
    let mut last_seen = blast.started;
    let mut last_decided: Option<DateTime<Utc>> = None;
    for (id, outcome, at) in outcomes {
        match outcome {
            Ok(view) => {
                if view.status == "queued" {
                    resolved
                        .unresolved
                        .push((id, "still queued at the deadline".into()));
                } else {
                    last_seen = last_seen.max(at);
                    last_decided = last_decided.max(view.decided_at);
                }
                resolved.views.insert(id, view);
            }
            Err(reason) => resolved.unresolved.push((id, reason)),
        }
    }
    let post_seconds = blast.elapsed.as_secs_f64();
    let last_decided_s = last_decided
        .map(|at| (at - blast.started_wall).num_microseconds().unwrap_or(0) as f64 / 1e6);
    resolved.summary = ResolveSummary {
        ids: ids.len(),
        unresolved: resolved.unresolved.len(),
        seconds: started.elapsed().as_secs_f64(),
        last_decided_s,
        last_final_seen_s: last_seen.duration_since(blast.started).as_secs_f64(),
        post_seconds,
        final_over_post: last_decided_s.map(|s| s / post_seconds.max(1e-6)),
    };
    resolved
}

/// Polls one id until it is final or `give_up` passes; transport errors are retried.
async fn poll_final(api: &Api, id: Uuid, give_up: Instant) -> Result<RequestView, String> {
    let mut last_error = String::from("never polled");
    let mut last_view = None;
    while Instant::now() < give_up {
        let wait = give_up
            .saturating_duration_since(Instant::now())
            .as_secs()
            .clamp(1, 30);
        match api.request_status(id, wait).await {
            Ok(view) if view.status != "queued" => return Ok(view),
            Ok(view) => last_view = Some(view),
            Err(e) => {
                last_error = e.to_string();
                // A refused connection returns at once; back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    last_view.ok_or(last_error)
}
