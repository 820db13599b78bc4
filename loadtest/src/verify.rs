//! The verdict: the six guarantees of `CONTRACT.md`, checked request by request.
//!
//! PostgreSQL is read directly (it is the record); the API gives the final statuses the clients
//! were told and the campaign counters. Guarantee 5 uses only the client's own instants: when
//! A's answer (with a request id) arrived before B was sent and A ended `sold_out`, B must not
//! be `issued`. Every violation names the offending request ids.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::LoadError;
use crate::api::Api;
use crate::resolve::Resolved;
use crate::traffic::{Answer, Blast};

/// Most ids listed per violation (the count is always exact).
const MAX_IDS: usize = 50;

/// One broken promise.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Guarantee number (1–6); 0 for the idempotency-key promise.
    pub guarantee: u8,
    /// What is wrong.
    pub detail: String,
    /// Offending requests (at most 50 listed).
    pub request_ids: Vec<Uuid>,
}

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

#[derive(Debug, sqlx::FromRow)]
struct Row {
    request_id: Uuid,
    campaign_id: String,
    user_id: String,
    status: String,
    coupon_code: Option<String>,
}

fn violation(guarantee: u8, detail: String, ids: impl IntoIterator<Item = Uuid>) -> Violation {
    Violation {
        guarantee,
        detail,
        request_ids: ids.into_iter().take(MAX_IDS).collect(),
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
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT request_id, campaign_id, user_id, status, coupon_code
         FROM requests WHERE campaign_id = ANY($1)",
    )
    .bind(&campaigns)
    .fetch_all(pool)
    .await?;
    verdict.rows = rows.len();
    verdict.issued = rows.iter().filter(|r| r.status == "issued").count();
    let by_id: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.request_id, r)).collect();
    let unanswered: Vec<Uuid> = rows
        .iter()
        .filter(|r| !ids.contains(&r.request_id))
        .map(|r| r.request_id)
        .collect();
    verdict.recorded_without_answer = unanswered.len();
    verdict.recorded_without_answer_ids = unanswered.into_iter().take(MAX_IDS).collect();
    let mut violations = Vec::new();
    check_stock(pool, &rows, &campaigns, &mut violations).await?;
    check_one_per_user(&rows, &mut violations);
    check_unique_codes(&rows, &mut violations);
    check_every_request_final(blast, resolved, &by_id, &mut violations);
    check_idempotency(blast, &mut violations);
    check_fifo(blast, resolved, &mut violations);
    check_counts(api, pool, &campaigns, &mut violations).await?;
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

/// Guarantee 1: issued rows ≤ stock, counted in PostgreSQL.
async fn check_stock(
    pool: &PgPool,
    rows: &[Row],
    campaigns: &[String],
    violations: &mut Vec<Violation>,
) -> Result<(), LoadError> {
    let stocks: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, stock FROM campaigns WHERE id = ANY($1)")
            .bind(campaigns)
            .fetch_all(pool)
            .await?;
    for (campaign, stock) in stocks {
        let issued: Vec<Uuid> = rows
            .iter()
            .filter(|r| r.campaign_id == campaign && r.status == "issued")
            .map(|r| r.request_id)
            .collect();
        if issued.len() as i64 > stock {
            violations.push(violation(
                1,
                format!("{campaign}: {} issued rows for stock {stock}", issued.len()),
                issued,
            ));
        }
    }
    Ok(())
}

/// Guarantee 2: at most one issued row per (campaign, user).
fn check_one_per_user(rows: &[Row], violations: &mut Vec<Violation>) {
    let mut holders: HashMap<(&str, &str), Vec<Uuid>> = HashMap::new();
    for row in rows.iter().filter(|r| r.status == "issued") {
        holders
            .entry((&row.campaign_id, &row.user_id))
            .or_default()
            .push(row.request_id);
    }
    for ((campaign, user), ids) in holders.into_iter().filter(|(_, ids)| ids.len() > 1) {
        violations.push(violation(
            2,
            format!("{campaign}: user {user} holds {} coupons", ids.len()),
            ids,
        ));
    }
}

/// Guarantee 3: codes unique within a campaign.
fn check_unique_codes(rows: &[Row], violations: &mut Vec<Violation>) {
    let mut codes: HashMap<(&str, &str), Vec<Uuid>> = HashMap::new();
    for row in rows {
        if let Some(code) = &row.coupon_code {
            codes
                .entry((&row.campaign_id, code))
                .or_default()
                .push(row.request_id);
        }
    }
    for ((campaign, code), ids) in codes.into_iter().filter(|(_, ids)| ids.len() > 1) {
        violations.push(violation(
            3,
            format!("{campaign}: code {code} on {} rows", ids.len()),
            ids,
        ));
    }
}

/// Guarantee 4: every id the clients received is final, recorded once, and the record agrees
/// with what the API said (status, user, code: a final status never changes).
fn check_every_request_final(
    blast: &Blast,
    resolved: &Resolved,
    by_id: &HashMap<Uuid, &Row>,
    violations: &mut Vec<Violation>,
) {
    let unresolved: Vec<Uuid> = resolved.unresolved.iter().map(|(id, _)| *id).collect();
    if !unresolved.is_empty() {
        violations.push(violation(
            4,
            format!(
                "{} requests never became final (first: {})",
                unresolved.len(),
                resolved.unresolved[0].1
            ),
            unresolved,
        ));
    }
    let mut missing = Vec::new();
    let mut disagree = Vec::new();
    let mut changed = Vec::new();
    let mut seen = HashSet::new();
    for record in &blast.records {
        let Some(id) = record.answer.request_id() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let Some(row) = by_id.get(&id) else {
            missing.push(id);
            continue;
        };
        let job = &blast.jobs[record.job as usize];
        let campaign = &blast.campaigns[usize::from(record.campaign)];
        if row.user_id != job.user || &row.campaign_id != campaign {
            disagree.push(id);
        }
        if let Some(view) = resolved.views.get(&id)
            && view.status != "queued"
            && (view.status != row.status || view.coupon_code != row.coupon_code)
        {
            changed.push(id);
        }
        if let Answer::Decided(_, status) = &record.answer
            && status != &row.status
        {
            changed.push(id);
        }
    }
    if !missing.is_empty() {
        violations.push(violation(
            4,
            format!(
                "{} answered requests have no row in PostgreSQL",
                missing.len()
            ),
            missing,
        ));
    }
    if !disagree.is_empty() {
        violations.push(violation(
            4,
            format!("{} rows name another user or campaign", disagree.len()),
            disagree,
        ));
    }
    if !changed.is_empty() {
        violations.push(violation(
            4,
            format!(
                "{} requests: the record disagrees with the final status the API gave",
                changed.len()
            ),
            changed,
        ));
    }
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
        violations.push(violation(
            0,
            "racing retries with one Idempotency-Key got different request ids".into(),
            split,
        ));
    }
}

/// Guarantee 5: no request sent after a `sold_out` request's answer arrived may be issued.
fn check_fifo(blast: &Blast, resolved: &Resolved, violations: &mut Vec<Violation>) {
    let status = |id: Uuid| resolved.views.get(&id).map(|v| v.status.as_str());
    // Per campaign: the earliest answer instant of a request that ended sold_out.
    let mut first_refusal: HashMap<u16, (u64, Uuid)> = HashMap::new();
    for record in &blast.records {
        let Some(id) = record.answer.request_id() else {
            continue;
        };
        if status(id) == Some("sold_out") {
            let entry = first_refusal
                .entry(record.campaign)
                .or_insert((record.answered_us, id));
            if record.answered_us < entry.0 {
                *entry = (record.answered_us, id);
            }
        }
    }
    let mut late: HashMap<u16, Vec<Uuid>> = HashMap::new();
    for record in &blast.records {
        let (Some(id), Some(&(refused_at, _))) = (
            record.answer.request_id(),
            first_refusal.get(&record.campaign),
        ) else {
            continue;
        };
        if record.sent_us > refused_at && status(id) == Some("issued") {
            late.entry(record.campaign).or_default().push(id);
        }
    }
    for (campaign, mut ids) in late {
        let (_, refused) = first_refusal[&campaign];
        ids.insert(0, refused);
        violations.push(violation(
            5,
            format!(
                "{}: {} requests issued although sent after {refused} was answered and refused sold_out",
                blast.campaigns[usize::from(campaign)],
                ids.len() - 1
            ),
            ids,
        ));
    }
}

/// Guarantee 6: once drained, PostgreSQL's issued rows equal the API's `issued`, and
/// `remaining = stock − issued`.
async fn check_counts(
    api: &Api,
    pool: &PgPool,
    campaigns: &[String],
    violations: &mut Vec<Violation>,
) -> Result<(), LoadError> {
    let counted: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT c.id, c.stock, c.issued,
                (SELECT count(*) FROM requests r WHERE r.campaign_id = c.id AND r.status = 'issued')
         FROM campaigns c WHERE c.id = ANY($1)",
    )
    .bind(campaigns)
    .fetch_all(pool)
    .await?;
    for (campaign, stock, counter, rows) in counted {
        let view = api.campaign(&campaign).await?;
        if view.issued != rows || counter != rows || view.remaining != stock - rows {
            violations.push(violation(
                6,
                format!(
                    "{campaign}: PostgreSQL has {rows} issued rows (counter {counter}, stock \
                     {stock}); the API says issued {} remaining {}",
                    view.issued, view.remaining
                ),
                [],
            ));
        }
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
