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
use crate::traffic::{Blast, Percentiles, histogram};

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
    /// Per request id: the server's `decided_at` minus the client's first send instant (the
    /// wait a client saw between pressing and a final answer existing).
    pub time_to_final: Percentiles,
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
    let time_to_final = time_to_final(blast, &resolved);
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
        time_to_final,
    };
    resolved
}

/// Percentiles of each final request's `decided_at` minus its first send (wall clock: the
/// blast's start plus the send's monotonic offset; client and server share this machine's clock).
fn time_to_final(blast: &Blast, resolved: &Resolved) -> Percentiles {
    let mut first_sent: HashMap<Uuid, u64> = HashMap::new();
    for record in &blast.records {
        if let Some(id) = record.answer.request_id() {
            let sent = first_sent.entry(id).or_insert(record.sent_us);
            *sent = (*sent).min(record.sent_us);
        }
    }
    let mut waits = histogram();
    for (id, sent_us) in first_sent {
        let Some(decided_at) = resolved.views.get(&id).and_then(|v| v.decided_at) else {
            continue;
        };
        let waited = (decided_at - blast.started_wall)
            .num_microseconds()
            .unwrap_or(0)
            - sent_us as i64;
        // `decided_at` has millisecond precision: a request decided within that of its send
        // counts as 1 µs rather than a negative wait.
        waits.saturating_record(waited.max(1) as u64);
    }
    Percentiles::of(&waits)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::traffic::{Answer, Job, Load, Record};

    #[test]
    fn time_to_final_runs_from_the_first_send_to_the_decision() {
        let (quick, slow, pending) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let record = |id, sent_us| Record {
            job: 0,
            press: 0,
            copy: 0,
            campaign: 0,
            intended_us: sent_us,
            sent_us,
            answered_us: sent_us + 100,
            answer: Answer::Accepted(id),
        };
        let blast = Blast {
            campaigns: Arc::new(vec!["c".into()]),
            jobs: Arc::new(vec![Job {
                campaign: 0,
                user: "u".into(),
                presses: 1,
                racing: 1,
            }]),
            // `slow` was sent twice (a racing copy 3 ms later): its wait counts from the first.
            records: vec![
                record(quick, 10_000),
                record(slow, 20_000),
                record(slow, 23_000),
                record(pending, 0),
            ],
            started_wall: Utc::now(),
            started: Instant::now(),
            elapsed: Duration::from_millis(30),
            accept_body_len: 0,
            load: Load::Closed { concurrency: 1 },
        };
        let mut resolved = Resolved::default();
        for (id, decided_after_ms) in [(quick, Some(12)), (slow, Some(60)), (pending, None)] {
            resolved.views.insert(
                id,
                RequestView {
                    request_id: id,
                    campaign_id: "c".into(),
                    user_id: "u".into(),
                    status: if decided_after_ms.is_some() {
                        "issued"
                    } else {
                        "queued"
                    }
                    .into(),
                    coupon_code: None,
                    decided_at: decided_after_ms
                        .map(|ms| blast.started_wall + chrono::Duration::milliseconds(ms)),
                },
            );
        }
        let waits = time_to_final(&blast, &resolved);
        assert_eq!(waits.count, 2, "only decided requests count");
        // The histogram keeps 3 significant digits.
        let near = |ms: f64, expected: f64| (ms - expected).abs() < expected / 500.0;
        assert!(
            near(waits.p50_ms, 2.0),
            "quick: sent at 10 ms, decided at 12 ms: {waits:?}"
        );
        assert!(
            near(waits.max_ms, 40.0),
            "slow: first sent at 20 ms, decided at 60 ms: {waits:?}"
        );
    }
}
