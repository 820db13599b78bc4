//! The guarantee audit: CONTRACT.md's guarantees checked against the record (PostgreSQL) and
//! against what the clients were told, written once.
//!
//! Three callers: the test suites ([`crate::audit`], per campaign, after a drain), the chaos
//! test (a spike under crashes, request by request) and the load test's verdict
//! (`loadtest/src/verify.rs`). The load test is a release binary, so this module needs only
//! sqlx, uuid and serde: it builds without testkit's `env` feature, which holds everything
//! test-only (throw-away databases, private servers).
//!
//! - [`Record::read`] takes the rows and campaigns of a run from PostgreSQL;
//!   [`Record::violations`] checks what the record alone can show: guarantees 1–3 and the
//!   record's half of 6 (the trigger-kept `campaigns.issued` equals the issued rows).
//! - [`every_answer_recorded`] (guarantee 4) and [`first_come_first_served`] (5) need what
//!   each client saw: [`Answered`].
//! - [`counts_agree`] (the API's half of 6) needs the API's campaign figures.
//!
//! Every violation names the offending request ids (at most [`MAX_IDS`]; the counts in its
//! detail are exact).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Most request ids listed in one [`Violation`].
pub const MAX_IDS: usize = 50;

/// One broken promise.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Guarantee number (1–6); 0 for the idempotency-key promise.
    pub guarantee: u8,
    /// What is wrong.
    pub detail: String,
    /// Offending requests (at most [`MAX_IDS`] listed).
    pub request_ids: Vec<Uuid>,
}

impl Violation {
    /// A violation of `guarantee`, listing the first [`MAX_IDS`] of `ids`.
    pub fn new(guarantee: u8, detail: String, ids: impl IntoIterator<Item = Uuid>) -> Self {
        Self {
            guarantee,
            detail,
            request_ids: ids.into_iter().take(MAX_IDS).collect(),
        }
    }
}

/// One row of `requests`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    /// The request.
    pub request_id: Uuid,
    /// Its campaign.
    pub campaign_id: String,
    /// Its user.
    pub user_id: String,
    /// Its final status, as recorded (`issued`, `sold_out`, `duplicate`, …).
    pub status: String,
    /// Its coupon code, when issued.
    pub coupon_code: Option<String>,
}

impl Row {
    fn issued(&self) -> bool {
        self.status == "issued"
    }
}

/// One row of `campaigns`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    /// The campaign.
    pub id: String,
    /// Its stock.
    pub stock: i64,
    /// The trigger-kept count of its issued rows (`campaigns.issued`).
    pub issued: i64,
}

/// What PostgreSQL holds for some campaigns.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The campaigns that exist (one asked for but absent is simply not here).
    pub campaigns: Vec<CampaignRow>,
    /// Every request row of those campaigns.
    pub rows: Vec<Row>,
}

impl Record {
    /// Reads `campaigns` and all of their request rows.
    pub async fn read(pool: &PgPool, campaigns: &[String]) -> Result<Self, sqlx::Error> {
        let campaign_rows = sqlx::query_as(
            "SELECT id, stock, issued FROM campaigns WHERE id = ANY($1) ORDER BY id",
        )
        .bind(campaigns)
        .fetch_all(pool)
        .await?;
        let rows = sqlx::query_as(
            "SELECT request_id, campaign_id, user_id, status, coupon_code
             FROM requests WHERE campaign_id = ANY($1)",
        )
        .bind(campaigns)
        .fetch_all(pool)
        .await?;
        Ok(Self {
            campaigns: campaign_rows,
            rows,
        })
    }

    /// The rows of `campaign`.
    pub fn rows_of<'a>(&'a self, campaign: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| r.campaign_id == campaign)
    }

    /// Issued rows of `campaign`, counted.
    pub fn issued(&self, campaign: &str) -> i64 {
        self.rows_of(campaign).filter(|r| r.issued()).count() as i64
    }

    /// Everything the record alone shows to be wrong: guarantees 1, 2, 3 and the counter.
    pub fn violations(&self) -> Vec<Violation> {
        let mut violations = self.over_stock();
        violations.extend(self.users_with_two_coupons());
        violations.extend(self.repeated_codes());
        violations.extend(self.issued_without_code());
        violations.extend(self.counters_off());
        violations
    }

    /// Guarantee 1: issued rows ≤ stock, per campaign, counted in PostgreSQL.
    pub fn over_stock(&self) -> Vec<Violation> {
        self.campaigns
            .iter()
            .filter_map(|campaign| {
                let issued: Vec<Uuid> = self
                    .rows_of(&campaign.id)
                    .filter(|r| r.issued())
                    .map(|r| r.request_id)
                    .collect();
                (issued.len() as i64 > campaign.stock).then(|| {
                    Violation::new(
                        1,
                        format!(
                            "{}: {} issued rows for stock {}",
                            campaign.id,
                            issued.len(),
                            campaign.stock
                        ),
                        issued,
                    )
                })
            })
            .collect()
    }

    /// Guarantee 2: one violation per (campaign, user) holding more than one issued coupon.
    pub fn users_with_two_coupons(&self) -> Vec<Violation> {
        shared(&self.rows, |row| {
            row.issued()
                .then_some((row.campaign_id.as_str(), row.user_id.as_str()))
        })
        .map(|((campaign, user), ids)| {
            Violation::new(
                2,
                format!("{campaign}: user {user} holds {} coupons", ids.len()),
                ids,
            )
        })
        .collect()
    }

    /// Guarantee 3: one violation per code that stands on more than one row of a campaign.
    pub fn repeated_codes(&self) -> Vec<Violation> {
        shared(&self.rows, |row| {
            Some((row.campaign_id.as_str(), row.coupon_code.as_deref()?))
        })
        .map(|((campaign, code), ids)| {
            Violation::new(
                3,
                format!("{campaign}: code {code} on {} rows", ids.len()),
                ids,
            )
        })
        .collect()
    }

    /// Guarantee 3's premise: every issued row holds a code.
    pub fn issued_without_code(&self) -> Vec<Violation> {
        let bare: Vec<Uuid> = self
            .rows
            .iter()
            .filter(|r| r.issued() && r.coupon_code.is_none())
            .map(|r| r.request_id)
            .collect();
        if bare.is_empty() {
            return Vec::new();
        }
        vec![Violation::new(
            3,
            format!("{} issued rows hold no coupon code", bare.len()),
            bare,
        )]
    }

    /// Guarantee 6, the record's half: the trigger-kept `campaigns.issued` equals the issued
    /// rows.
    pub fn counters_off(&self) -> Vec<Violation> {
        self.campaigns
            .iter()
            .filter_map(|campaign| {
                let rows = self.issued(&campaign.id);
                (campaign.issued != rows).then(|| {
                    Violation::new(
                        6,
                        format!(
                            "{}: campaigns.issued is {} but {rows} rows are issued",
                            campaign.id, campaign.issued
                        ),
                        [],
                    )
                })
            })
            .collect()
    }
}

/// The request ids of `rows` grouped by `key` (rows without one are left out), only the groups
/// of more than one request.
fn shared<'a, K: Eq + Hash>(
    rows: &'a [Row],
    key: impl Fn(&'a Row) -> Option<K>,
) -> impl Iterator<Item = (K, Vec<Uuid>)> {
    let mut groups: HashMap<K, Vec<Uuid>> = HashMap::new();
    for row in rows {
        if let Some(key) = key(row) {
            groups.entry(key).or_default().push(row.request_id);
        }
    }
    groups.into_iter().filter(|(_, ids)| ids.len() > 1)
}

/// A final status and code as the API reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// `issued`, `sold_out`, `duplicate`, …
    pub status: String,
    /// The coupon code, when issued.
    pub coupon_code: Option<String>,
}

/// One request as its client saw it: an answer that carried a request id.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The id the answer carried.
    pub request_id: Uuid,
    /// The campaign the client pressed on.
    pub campaign_id: String,
    /// The user the client pressed as.
    pub user_id: String,
    /// When the client sent the request, from any fixed instant (the run's start).
    pub sent: Duration,
    /// When the answer arrived, from the same instant.
    pub answered: Duration,
    /// The final status a `200` answer gave at once; `None` for a `202`.
    pub told: Option<String>,
    /// The final status the API reported when asked afterwards; `None` if it never was final
    /// (the caller reports that: only it knows how long it asked).
    pub reported: Option<Reported>,
}

/// Guarantee 4 (and "a final status never changes"): every answered request has a row naming
/// the same user and campaign, and the row agrees with every final status the API gave for it.
///
/// Several answers may carry one id (racing copies with one `Idempotency-Key`); each id counts
/// once, checked against its first answer.
pub fn every_answer_recorded(record: &Record, answered: &[Answered]) -> Vec<Violation> {
    let by_id: HashMap<Uuid, &Row> = record.rows.iter().map(|r| (r.request_id, r)).collect();
    let (mut missing, mut disagree, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for answer in answered {
        let id = answer.request_id;
        if !seen.insert(id) {
            continue;
        }
        let Some(row) = by_id.get(&id) else {
            missing.push(id);
            continue;
        };
        if row.user_id != answer.user_id || row.campaign_id != answer.campaign_id {
            disagree.push(id);
        }
        if let Some(reported) = &answer.reported
            && (reported.status != row.status || reported.coupon_code != row.coupon_code)
        {
            changed.push(id);
        }
        if let Some(told) = &answer.told
            && told != &row.status
        {
            changed.push(id);
        }
    }
    let mut violations = Vec::new();
    if !missing.is_empty() {
        violations.push(Violation::new(
            4,
            format!(
                "{} answered requests have no row in PostgreSQL",
                missing.len()
            ),
            missing,
        ));
    }
    if !disagree.is_empty() {
        violations.push(Violation::new(
            4,
            format!("{} rows name another user or campaign", disagree.len()),
            disagree,
        ));
    }
    if !changed.is_empty() {
        violations.push(Violation::new(
            4,
            format!(
                "{} requests: the record disagrees with the final status the API gave",
                changed.len()
            ),
            changed,
        ));
    }
    violations
}

/// The final status the API reported for `answer`, if any.
fn reported(answer: &Answered) -> Option<&str> {
    answer.reported.as_ref().map(|r| r.status.as_str())
}

/// Guarantee 5, from the clients' own instants: per campaign, take the earliest answer of a
/// request reported `sold_out`; no request *sent* after that instant may be reported `issued`.
///
/// One violation per campaign, listing the refused request first, then the late ones.
pub fn first_come_first_served(answered: &[Answered]) -> Vec<Violation> {
    let mut first_refusal: HashMap<&str, (Duration, Uuid)> = HashMap::new();
    for answer in answered.iter().filter(|a| reported(a) == Some("sold_out")) {
        let entry = first_refusal
            .entry(&answer.campaign_id)
            .or_insert((answer.answered, answer.request_id));
        if answer.answered < entry.0 {
            *entry = (answer.answered, answer.request_id);
        }
    }
    let mut late: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for answer in answered {
        if let Some(&(refused_at, _)) = first_refusal.get(answer.campaign_id.as_str())
            && answer.sent > refused_at
            && reported(answer) == Some("issued")
        {
            late.entry(&answer.campaign_id)
                .or_default()
                .push(answer.request_id);
        }
    }
    late.into_iter()
        .map(|(campaign, mut ids)| {
            let (_, refused) = first_refusal[campaign];
            ids.insert(0, refused);
            Violation::new(
                5,
                format!(
                    "{campaign}: {} requests issued although sent after {refused} was answered \
                     and refused sold_out",
                    ids.len() - 1
                ),
                ids,
            )
        })
        .collect()
}

/// Guarantee 6, the API's half: once drained, the API's `issued` for `campaign` equals the
/// record's issued rows and its `remaining` is stock − issued.
pub fn counts_agree(
    record: &Record,
    campaign: &str,
    api_issued: i64,
    api_remaining: i64,
) -> Option<Violation> {
    let Some(recorded) = record.campaigns.iter().find(|c| c.id == campaign) else {
        return Some(Violation::new(
            6,
            format!("{campaign}: not in PostgreSQL"),
            [],
        ));
    };
    let rows = record.issued(campaign);
    (api_issued != rows || api_remaining != recorded.stock - rows).then(|| {
        Violation::new(
            6,
            format!(
                "{campaign}: PostgreSQL has {rows} issued rows (stock {}); the API says issued \
                 {api_issued} remaining {api_remaining}",
                recorded.stock
            ),
            [],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(campaign: &str, user: &str, status: &str, code: Option<&str>) -> Row {
        Row {
            request_id: Uuid::new_v4(),
            campaign_id: campaign.into(),
            user_id: user.into(),
            status: status.into(),
            coupon_code: code.map(Into::into),
        }
    }

    #[test]
    fn the_record_alone_shows_guarantees_one_to_three_and_the_counter() {
        let record = Record {
            campaigns: vec![CampaignRow {
                id: "c".into(),
                stock: 2,
                issued: 2,
            }],
            rows: vec![
                row("c", "u1", "issued", Some("A")),
                row("c", "u1", "issued", Some("A")),
                row("c", "u2", "issued", None),
                row("c", "u3", "sold_out", None),
            ],
        };
        let guarantees: Vec<u8> = {
            let mut g: Vec<u8> = record.violations().iter().map(|v| v.guarantee).collect();
            g.sort();
            g
        };
        // Three issued for stock 2; u1 twice; code A twice; u2's coupon has no code; the
        // counter says 2 where 3 rows are issued.
        assert_eq!(guarantees, vec![1, 2, 3, 3, 6]);
    }

    #[test]
    fn a_record_that_keeps_every_promise_has_no_violation() {
        let record = Record {
            campaigns: vec![CampaignRow {
                id: "c".into(),
                stock: 1,
                issued: 1,
            }],
            rows: vec![
                row("c", "u1", "issued", Some("A")),
                row("c", "u2", "sold_out", None),
            ],
        };
        assert!(record.violations().is_empty());
        assert!(counts_agree(&record, "c", 1, 0).is_none());
        assert!(counts_agree(&record, "c", 1, 1).is_some());
    }
}
