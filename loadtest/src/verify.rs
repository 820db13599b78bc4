//! The verdict: the six guarantees of `CONTRACT.md`, checked request by request.
//!
//! The checks themselves are testkit's one guarantee audit ([`guarantees`]), the one the test
//! suites and the chaos test use; this module feeds it. PostgreSQL is read directly (it is the
//! record); the API gives the final statuses the clients were told and the campaign counters.
//! Guarantee 5 uses only the client's own instants: when A's answer (with a request id) arrived
//! before B was sent and A ended `sold_out`, B must not be `issued`. What only a load test can
//! see stays here: ids that never resolved, racing copies of one `Idempotency-Key` given two ids,
//! and rows recorded for requests whose client got no id. Every violation names the offending
//! request ids.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rushline_testkit::guarantees::{self, Answered, MAX_IDS, Record, Reported};
use serde::Serialize;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::LoadError;
use crate::api::Api;
use crate::resolve::Resolved;
use crate::traffic::{Answer, Blast};

pub use rushline_testkit::guarantees::Violation;

/// What was checked and what failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Campaigns checked.
    pub campaigns: usize,
    /// Request ids the clients received.
    pub request_ids: usize,
    /// Rows PostgreSQL holds for these campaigns.
    pub rows: usize,
    /// Issued rows.
    pub issued: usize,
    /// Seconds waited for the record to settle.
    pub settle_seconds: f64,
    /// Rows recorded for requests whose client got no request id (an error status such as
    /// `503`, or a transport failure): accepted and decided although the client was told
    /// otherwise. Not one of the six guarantees, but a client retrying without an
    /// `Idempotency-Key` would send the same press twice.
    pub recorded_without_answer: usize,
    /// Up to 50 of those request ids.
    pub recorded_without_answer_ids: Vec<Uuid>,
    /// Everything that failed; empty means every guarantee held.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// True when no guarantee was violated.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Waits (up to `settle`) until PostgreSQL holds a row for every id the clients received, then
/// checks all six guarantees for the blast's campaigns.
pub async fn verify(
    api: &Api,
    pool: &PgPool,
    blast: &Blast,
    resolved: &Resolved,
    settle: Duration,
) -> Result<Verdict, LoadError> {
    let campaigns: Vec<String> = blast.campaigns.as_ref().clone();
    let ids: HashSet<Uuid> = blast
        .records
        .iter()
        .filter_map(|r| r.answer.request_id())
        .collect();
    let started = Instant::now();
    wait_for_rows(pool, &campaigns, ids.len() as i64, started + settle).await?;
    let mut verdict = Verdict {
        campaigns: campaigns.len(),
        request_ids: ids.len(),
        settle_seconds: started.elapsed().as_secs_f64(),
        ..Verdict::default()
    };
    let record = Record::read(pool, &campaigns).await?;
    verdict.rows = record.rows.len();
    verdict.issued = record.rows.iter().filter(|r| r.status == "issued").count();
    let unanswered: Vec<Uuid> = record
        .rows
        .iter()
        .filter(|r| !ids.contains(&r.request_id))
        .map(|r| r.request_id)
        .collect();
    verdict.recorded_without_answer = unanswered.len();
    verdict.recorded_without_answer_ids = unanswered.into_iter().take(MAX_IDS).collect();
    let mut violations = record.violations();
    check_every_request_final(blast, resolved, &record, &mut violations);
    check_idempotency(blast, &mut violations);
    check_fifo(blast, resolved, &mut violations);
    check_counts(api, &record, &campaigns, &mut violations).await?;
    verdict.violations = violations;
    Ok(verdict)
}

/// Polls the row count of `campaigns` until it reaches `expected` or `until` passes (then the
/// checks run anyway and guarantee 4 names what is missing).
async fn wait_for_rows(
    pool: &PgPool,
    campaigns: &[String],
    expected: i64,
    until: Instant,
) -> Result<(), LoadError> {
    loop {
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM requests WHERE campaign_id = ANY($1)")
                .bind(campaigns)
                .fetch_one(pool)
                .await?;
        if rows >= expected || Instant::now() >= until {
            return Ok(());
        }
        // A bounded poll of a condition no event announces (persistence has no notification).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every answer that carried a request id, as the audit takes it: the client's instants, what a
/// `200` said at once, and the final status resolution found (none while still `queued`).
fn answers(blast: &Blast, resolved: &Resolved) -> Vec<Answered> {
    blast
        .records
        .iter()
        .filter_map(|record| {
            let id = record.answer.request_id()?;
            let reported = resolved
                .views
                .get(&id)
                .filter(|view| view.status != "queued")
                .map(|view| Reported {
                    status: view.status.clone(),
                    coupon_code: view.coupon_code.clone(),
                });
            let told = match &record.answer {
                Answer::Decided(_, status) => Some(status.clone()),
                _ => None,
            };
            Some(Answered {
                request_id: id,
                campaign_id: blast.campaigns[usize::from(record.campaign)].clone(),
                user_id: blast.jobs[record.job as usize].user.clone(),
                sent: Duration::from_micros(record.sent_us),
                answered: Duration::from_micros(record.answered_us),
                told,
                reported,
            })
        })
        .collect()
}

/// Guarantee 4: every id the clients received is final ([`Resolved::unresolved`] names those
/// that never were), recorded once, and the record agrees with what the API said (status,
/// user, code: a final status never changes).
fn check_every_request_final(
    blast: &Blast,
    resolved: &Resolved,
    record: &Record,
    violations: &mut Vec<Violation>,
) {
    let unresolved: Vec<Uuid> = resolved.unresolved.iter().map(|(id, _)| *id).collect();
    if !unresolved.is_empty() {
        violations.push(Violation::new(
            4,
            format!(
                "{} requests never became final (first: {})",
                unresolved.len(),
                resolved.unresolved[0].1
            ),
            unresolved,
        ));
    }
    violations.extend(guarantees::every_answer_recorded(
        record,
        &answers(blast, resolved),
    ));
}

/// The `Idempotency-Key` promise: racing copies of one press get one request id.
fn check_idempotency(blast: &Blast, violations: &mut Vec<Violation>) {
    let mut groups: HashMap<u32, HashSet<Uuid>> = HashMap::new();
    for record in &blast.records {
        if blast.jobs[record.job as usize].racing > 1
            && record.press == 0
            && let Some(id) = record.answer.request_id()
        {
            groups.entry(record.job).or_default().insert(id);
        }
    }
    let split: Vec<Uuid> = groups
        .into_values()
        .filter(|ids| ids.len() > 1)
        .flatten()
        .collect();
    if !split.is_empty() {
        violations.push(Violation::new(
            0,
            "racing retries with one Idempotency-Key got different request ids".into(),
            split,
        ));
    }
}

/// Guarantee 5: no request sent after a `sold_out` request's answer arrived may be issued.
fn check_fifo(blast: &Blast, resolved: &Resolved, violations: &mut Vec<Violation>) {
    violations.extend(guarantees::first_come_first_served(&answers(
        blast, resolved,
    )));
}

/// Guarantee 6: once drained, PostgreSQL's issued rows equal `campaigns.issued` (checked with
/// the record) and the API's `issued`, and `remaining = stock − issued`.
async fn check_counts(
    api: &Api,
    record: &Record,
    campaigns: &[String],
    violations: &mut Vec<Violation>,
) -> Result<(), LoadError> {
    for campaign in campaigns {
        let view = api.campaign(campaign).await?;
        violations.extend(guarantees::counts_agree(
            record,
            campaign,
            view.issued,
            view.remaining,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::RequestView;
    use crate::traffic::{Job, Load, Record};

    fn record(job: u32, sent_us: u64, answered_us: u64, id: Uuid) -> Record {
        Record {
            job,
            press: 0,
            copy: 0,
            campaign: 0,
            intended_us: sent_us,
            sent_us,
            answered_us,
            answer: Answer::Accepted(id),
        }
    }

    fn blast(records: Vec<Record>, racing: u8) -> Blast {
        let jobs = (0..records.len())
            .map(|i| Job {
                campaign: 0,
                user: format!("u{i}"),
                presses: 1,
                racing,
            })
            .collect();
        Blast {
            campaigns: Arc::new(vec!["c".into()]),
            jobs: Arc::new(jobs),
            records,
            started_wall: chrono::Utc::now(),
            started: Instant::now(),
            elapsed: Duration::from_secs(1),
            accept_body_len: 0,
            load: Load::Closed { concurrency: 1 },
        }
    }

    fn resolved(statuses: &[(Uuid, &str)]) -> Resolved {
        let mut resolved = Resolved::default();
        for (id, status) in statuses {
            resolved.views.insert(
                *id,
                RequestView {
                    request_id: *id,
                    campaign_id: "c".into(),
                    user_id: "u".into(),
                    status: (*status).into(),
                    coupon_code: None,
                    decided_at: None,
                },
            );
        }
        resolved
    }

    #[test]
    fn an_issue_sent_after_a_refusal_was_answered_is_named() {
        let (refused, late, overlapping) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let blast = blast(
            vec![
                record(0, 0, 100, refused),
                record(1, 150, 200, late),
                record(2, 50, 300, overlapping),
            ],
            1,
        );
        let resolved = resolved(&[
            (refused, "sold_out"),
            (late, "issued"),
            (overlapping, "issued"),
        ]);
        let mut violations = Vec::new();
        check_fifo(&blast, &resolved, &mut violations);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].guarantee, 5);
        assert_eq!(violations[0].request_ids, vec![refused, late]);
    }

    #[test]
    fn first_come_first_served_passes_when_refusals_come_last() {
        let (issued, refused) = (Uuid::new_v4(), Uuid::new_v4());
        let blast = blast(
            vec![record(0, 0, 100, issued), record(1, 150, 200, refused)],
            1,
        );
        let resolved = resolved(&[(issued, "issued"), (refused, "sold_out")]);
        let mut violations = Vec::new();
        check_fifo(&blast, &resolved, &mut violations);
        assert!(violations.is_empty());
    }

    #[test]
    fn racing_copies_with_two_ids_are_named() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut second = record(0, 0, 100, b);
        second.copy = 1;
        let blast = blast(vec![record(0, 0, 100, a), second], 2);
        let mut violations = Vec::new();
        check_idempotency(&blast, &mut violations);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].request_ids.len(), 2);
    }
}
