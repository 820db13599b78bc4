//! The storm's verdict on guarantee 7 and the *Waiting room* section, from what every user was
//! told: positions dense `1..N` and one per user; admission in position order and within
//! `admit_per_second × (T + 1)` over every window (from the users' `admitted_at` and from the
//! sampled counter); no request accepted without an admitted ticket, every early or forged post
//! refused; pre-queue order uncorrelated with join order (Spearman's ρ).
//!
//! Every check is a pure function of the records, so each one is tested here with records that
//! break it. Violations are numbered 7 (the guarantee) and name users in their detail (request
//! ids where there are some).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::client::{QueueFigures, QueueState};
use super::crowd::{Member, ProbeKind};
use crate::traffic::Answer;
use crate::verify::Violation;

/// The guarantee these checks belong to.
pub const FAIR_ADMISSION: u8 = 7;

/// Users named in a violation's detail, at most.
const NAMED: usize = 10;

/// Slack for the server's timestamps, which carry milliseconds.
const CLOCK_SLACK_SECS: f64 = 0.002;

/// One reading of the campaign's queue figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CounterSample {
    /// When the GET was sent, µs since the crowd's start.
    pub sent_us: u64,
    /// When it was answered, µs.
    pub answered_us: u64,
    /// The figures (absent: the campaign showed none).
    pub queue: Option<QueueFigures>,
}

fn violation(detail: String, ids: impl IntoIterator<Item = Uuid>) -> Violation {
    Violation::new(FAIR_ADMISSION, detail, ids)
}

fn named<'a>(users: impl IntoIterator<Item = &'a String>) -> String {
    users
        .into_iter()
        .take(NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Positions: every user has one, none changed between answers, none shared, and together they
/// are exactly `1..=N` with N the campaign's final `joined`.
pub fn positions(members: &[Member], users: &[String], joined: Option<u64>) -> Vec<Violation> {
    let mut out = Vec::new();
    let missing: Vec<&String> = users
        .iter()
        .zip(members)
        .filter(|(_, m)| m.position.is_none())
        .map(|(u, _)| u)
        .collect();
    if !missing.is_empty() {
        out.push(violation(
            format!(
                "{} users were never given a position (e.g. {})",
                missing.len(),
                named(missing)
            ),
            [],
        ));
    }
    let changed: Vec<String> = users
        .iter()
        .zip(members)
        .filter_map(|(u, m)| {
            m.position_conflict
                .map(|(a, b)| format!("{u}: {a} then {b}"))
        })
        .collect();
    if !changed.is_empty() {
        out.push(violation(
            format!(
                "{} users were told two positions (e.g. {})",
                changed.len(),
                named(&changed)
            ),
            [],
        ));
    }
    let mut holders: HashMap<u64, Vec<&String>> = HashMap::new();
    for (user, member) in users.iter().zip(members) {
        if let Some(p) = member.position {
            holders.entry(p).or_default().push(user);
        }
    }
    let shared: Vec<String> = holders
        .iter()
        .filter(|(_, u)| u.len() > 1)
        .map(|(p, u)| format!("{p}: {}", named(u.iter().copied())))
        .collect();
    if !shared.is_empty() {
        out.push(violation(
            format!(
                "{} positions were given to more than one user (e.g. {})",
                shared.len(),
                shared
                    .iter()
                    .take(NAMED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            [],
        ));
    }
    let n = holders.len() as u64;
    let outside: Vec<u64> = holders
        .keys()
        .copied()
        .filter(|p| *p == 0 || *p > n)
        .collect();
    if !outside.is_empty() {
        let mut outside = outside;
        outside.sort_unstable();
        out.push(violation(
            format!(
                "positions are not dense 1..{n}: {} outside it (e.g. {:?})",
                outside.len(),
                &outside[..outside.len().min(NAMED)]
            ),
            [],
        ));
    }
    if let Some(joined) = joined
        && joined != n
    {
        out.push(violation(
            format!("the campaign says {joined} joined; the users hold {n} distinct positions"),
            [],
        ));
    }
    out
}

/// Pre-queue: the users whose join was answered `prequeued` hold positions `1..=P` and everyone
/// else comes after them. Returns the violations and Spearman's ρ between the pre-queued users'
/// join order (when their join answer arrived) and their positions.
pub fn prequeue(members: &[Member], users: &[String]) -> (Vec<Violation>, Option<f64>) {
    let mut out = Vec::new();
    let pre: Vec<(u64, u64, &String)> = users
        .iter()
        .zip(members)
        .filter_map(|(u, m)| {
            let join = m.join?;
            (join.state == QueueState::Prequeued).then_some((join.answered_us, m.position?, u))
        })
        .collect();
    let p = pre.len() as u64;
    let behind: Vec<&String> = pre
        .iter()
        .filter(|(_, pos, _)| *pos > p)
        .map(|(_, _, u)| *u)
        .collect();
    let ahead: Vec<&String> = users
        .iter()
        .zip(members)
        .filter(|(_, m)| {
            m.join.is_some_and(|j| j.state != QueueState::Prequeued)
                && m.position.is_some_and(|pos| pos <= p)
        })
        .map(|(u, _)| u)
        .collect();
    if !behind.is_empty() || !ahead.is_empty() {
        out.push(violation(
            format!(
                "pre-queued users must hold 1..{p}: {} of them are behind it (e.g. {}), {} later \
                 joiners are inside it (e.g. {})",
                behind.len(),
                named(behind),
                ahead.len(),
                named(ahead)
            ),
            [],
        ));
    }
    let join_order: Vec<f64> = pre.iter().map(|(at, _, _)| *at as f64).collect();
    let positions: Vec<f64> = pre.iter().map(|(_, pos, _)| *pos as f64).collect();
    (out, spearman(&join_order, &positions))
}

/// The |ρ| above which pre-queue order counts as correlated with join order: the 0.05,
/// or four standard errors of ρ under independence (1/√(n−1)) when n is too small for 0.05 to
/// mean anything (below about 6,400 users).
pub fn rho_limit(n: usize) -> f64 {
    0.05f64.max(4.0 / ((n.max(2) - 1) as f64).sqrt())
}

/// Flags |ρ| over [`rho_limit`].
pub fn uncorrelated(rho: Option<f64>, n: usize) -> Vec<Violation> {
    match rho {
        Some(rho) if rho.abs() > rho_limit(n) => vec![violation(
            format!(
                "pre-queue order follows join order: Spearman's rho = {rho:.4} over {n} users \
                 (limit {:.4})",
                rho_limit(n)
            ),
            [],
        )],
        _ => Vec::new(),
    }
}

/// Spearman's rank correlation of two equally long samples (ties get their mean rank); `None`
/// under three values or when one side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mean) * (b - mean);
        sxx += (a - mean) * (a - mean);
        syy += (b - mean) * (b - mean);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Admission order and rate from the users' own `admitted_at`: non-decreasing in position, not
/// before `opens_at`, one value per position, and for any two admitted positions i ≤ j,
/// `j − i + 1 ≤ rate × (admitted_at(j) − admitted_at(i) + 1)`: the counter went from below i to
/// j within that time. Checked for every pair in one pass (the largest left side minus
/// `rate × time` is a running minimum).
pub fn admission(
    members: &[Member],
    users: &[String],
    opens_at: DateTime<Utc>,
    rate: f64,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let changed: Vec<&String> = users
        .iter()
        .zip(members)
        .filter(|(_, m)| m.admitted_at_conflict)
        .map(|(u, _)| u)
        .collect();
    if !changed.is_empty() {
        out.push(violation(
            format!(
                "{} users were told two admission times (e.g. {})",
                changed.len(),
                named(changed)
            ),
            [],
        ));
    }
    let mut admitted: Vec<(u64, DateTime<Utc>, &String)> = users
        .iter()
        .zip(members)
        .filter_map(|(u, m)| Some((m.position?, m.admitted_at?, u)))
        .collect();
    admitted.sort_by_key(|(p, _, _)| *p);
    let early: Vec<&String> = admitted
        .iter()
        .filter(|(_, at, _)| secs(*at, opens_at) < -CLOCK_SLACK_SECS)
        .map(|(_, _, u)| *u)
        .collect();
    if !early.is_empty() {
        out.push(violation(
            format!(
                "{} users admitted before opens_at (e.g. {})",
                early.len(),
                named(early)
            ),
            [],
        ));
    }
    let out_of_order: Vec<String> = admitted
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| {
            format!(
                "position {} at {} after position {} at {}",
                w[1].0, w[1].1, w[0].0, w[0].1
            )
        })
        .collect();
    if !out_of_order.is_empty() {
        out.push(violation(
            format!(
                "admission out of position order {} times (e.g. {})",
                out_of_order.len(),
                out_of_order
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            [],
        ));
    }
    // (j − i + 1) − rate × (t_j − t_i) ≤ rate, i.e. (j − rate·t_j) − (i − 1 − rate·t_i) ≤ rate.
    let mut worst: Option<(f64, u64, u64)> = None;
    let mut lowest: Option<(f64, u64)> = None;
    for (p, at, _) in &admitted {
        let t = secs(*at, opens_at);
        let left = (*p as f64 - 1.0) - rate * t;
        if lowest.is_none_or(|(l, _)| left < l) {
            lowest = Some((left, *p));
        }
        if let Some((l, from)) = lowest {
            let excess = (*p as f64 - rate * t) - l;
            if worst.is_none_or(|(w, _, _)| excess > w) {
                worst = Some((excess, from, *p));
            }
        }
    }
    if let Some((excess, from, to)) = worst
        && excess > rate * (1.0 + CLOCK_SLACK_SECS) + 1e-6
    {
        out.push(violation(
            format!(
                "admission faster than admit_per_second × (T + 1): positions {from}..{to} were \
                 admitted {excess:.0} − {rate} over the bound (from the users' admitted_at)"
            ),
            [],
        ));
    }
    out
}

fn secs(at: DateTime<Utc>, since: DateTime<Utc>) -> f64 {
    (at - since).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// The sampled counter: never decreases, never above `joined`, and between any two samples grows
/// by at most `rate × (T + 1)`, T taken generously (the first sample's send to the second's
/// answer) so that the client's own delays count in the server's favour.
pub fn counter(samples: &[CounterSample], rate: f64) -> Vec<Violation> {
    let mut out = Vec::new();
    let read: Vec<(u64, u64, QueueFigures)> = samples
        .iter()
        .filter_map(|s| Some((s.sent_us, s.answered_us, s.queue?)))
        .collect();
    let decreases = read
        .windows(2)
        .filter(|w| w[1].2.admitted_through < w[0].2.admitted_through)
        .count();
    if decreases > 0 {
        out.push(violation(
            format!("admitted_through decreased between {decreases} pairs of consecutive samples"),
            [],
        ));
    }
    let over = read
        .iter()
        .filter(|(_, _, q)| q.admitted_through > q.joined)
        .count();
    if over > 0 {
        out.push(violation(
            format!("admitted_through was above joined in {over} samples"),
            [],
        ));
    }
    let mut lowest: Option<(f64, usize)> = None;
    let mut worst: Option<(f64, usize, usize)> = None;
    for (k, (sent, answered, q)) in read.iter().enumerate() {
        let value = q.admitted_through as f64;
        // Right end: the later sample, its answer instant; left end: the earlier one's send.
        if let Some((l, from)) = lowest {
            let excess = (value - rate * (*answered as f64 / 1e6)) - l;
            if worst.is_none_or(|(w, _, _)| excess > w) {
                worst = Some((excess, from, k));
            }
        }
        let left = value - rate * (*sent as f64 / 1e6);
        if lowest.is_none_or(|(l, _)| left < l) {
            lowest = Some((left, k));
        }
    }
    if let Some((excess, from, to)) = worst
        && excess > rate + 1e-6
    {
        out.push(violation(
            format!(
                "admitted_through grew faster than admit_per_second × (T + 1) between samples \
                 {from} ({}) and {to} ({}): {excess:.0} over rate × T against a burst of {rate}",
                read[from].2.admitted_through, read[to].2.admitted_through
            ),
            [],
        ));
    }
    out
}

/// Request posts: every post after admission was accepted (`202`/`200`) and sent only after the
/// client read `admitted`; every probe was refused as the contract says — `401` without or with
/// a forged ticket, `403` with another user's, `403 …not-your-turn` with `Retry-After` with the
/// user's own ticket before its admission. An early probe that was accepted is a violation unless
/// the server's clock proves the user was admitted by then (its `admitted_at` no later than the
/// latest server time the probe can have been handled at); one refused although admitted by
/// then is one too. Every user that was admitted posted.
pub fn posts(members: &[Member], users: &[String]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut unadmitted_posts = Vec::new();
    let mut refused_admitted: Vec<String> = Vec::new();
    let mut never_done: Vec<&String> = Vec::new();
    for (user, m) in users.iter().zip(members) {
        for post in &m.posts {
            if m.admitted_seen_us.is_none_or(|seen| seen > post.sent_us) {
                unadmitted_posts.extend(post.posted.answer.request_id());
            }
        }
        match m.posts.last().map(|p| &p.posted) {
            Some(posted) if posted.answer.request_id().is_some() => {}
            Some(posted) => refused_admitted.push(format!(
                "{user}: {:?} {}",
                posted.answer,
                posted.problem_type.as_deref().unwrap_or("")
            )),
            None => never_done.push(user),
        }
    }
    if !unadmitted_posts.is_empty() {
        out.push(violation(
            "requests posted before the client read state admitted".into(),
            unadmitted_posts,
        ));
    }
    if !refused_admitted.is_empty() {
        out.push(violation(
            format!(
                "{} admitted users' request posts were not accepted (e.g. {})",
                refused_admitted.len(),
                refused_admitted
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            [],
        ));
    }
    if !never_done.is_empty() {
        out.push(violation(
            format!(
                "{} users were never admitted (or never posted) before the deadline (e.g. {})",
                never_done.len(),
                named(never_done)
            ),
            [],
        ));
    }
    out.extend(probes(members, users));
    out
}

fn probes(members: &[Member], users: &[String]) -> Vec<Violation> {
    let mut accepted = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    for (user, m) in users.iter().zip(members) {
        let Some(probe) = &m.probe else { continue };
        let posted = &probe.post.posted;
        // The server's clock while the probe was handled lies within these bounds: the poll
        // before it was stamped between its own send and answer.
        let bounds = probe.before.server_time.map(|st| {
            let at = |us: i64| st + chrono::Duration::microseconds(us);
            (
                at(probe.post.sent_us as i64 - probe.before.answered_us as i64),
                at(probe.post.answered_us as i64 - probe.before.sent_us as i64),
            )
        });
        let slack = chrono::Duration::milliseconds(2);
        let admitted_by_then = match (bounds, m.admitted_at) {
            (Some((earliest, _)), Some(at)) => at + slack <= earliest,
            _ => false,
        };
        let maybe_admitted = match (bounds, m.admitted_at) {
            (Some((_, latest)), Some(at)) => at <= latest + slack,
            (None, Some(_)) => true,
            _ => false,
        };
        let ok = match (probe.kind, &posted.answer) {
            (ProbeKind::OwnTicketEarly, Answer::Accepted(_) | Answer::Decided(..)) => {
                maybe_admitted
            }
            (ProbeKind::OwnTicketEarly, Answer::Refused(403)) => {
                admitted_by_then
                    || (posted.retry_after
                        && posted
                            .problem_type
                            .as_deref()
                            .is_some_and(|t| t.ends_with("not-your-turn")))
            }
            (ProbeKind::NoTicket | ProbeKind::ForgedTicket, Answer::Refused(401)) => true,
            (ProbeKind::OtherUsersTicket, Answer::Refused(403)) => true,
            _ => false,
        };
        if ok {
            continue;
        }
        if let Some(id) = posted.answer.request_id() {
            accepted.push(id);
        }
        wrong.push(format!(
            "{user} ({:?}): {:?} {}",
            probe.kind,
            posted.answer,
            posted.problem_type.as_deref().unwrap_or("")
        ));
    }
    let mut out = Vec::new();
    if !wrong.is_empty() {
        out.push(violation(
            format!(
                "{} probes were not refused as the contract says (e.g. {})",
                wrong.len(),
                wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
            accepted,
        ));
    }
    out
}

/// Every answer named the user it was asked for, and no pass expired (the run is far shorter
/// than `pass_secs`).
pub fn answers(members: &[Member], users: &[String]) -> Vec<Violation> {
    let mut out = Vec::new();
    let wrong: Vec<&String> = users
        .iter()
        .zip(members)
        .filter(|(_, m)| m.wrong_user)
        .map(|(u, _)| u)
        .collect();
    if !wrong.is_empty() {
        out.push(violation(
            format!(
                "{} users were given another user's view (e.g. {})",
                wrong.len(),
                named(wrong)
            ),
            [],
        ));
    }
    let expired: Vec<&String> = users
        .iter()
        .zip(members)
        .filter(|(_, m)| m.expired_seen)
        .map(|(u, _)| u)
        .collect();
    if !expired.is_empty() {
        out.push(violation(
            format!(
                "{} users were told their pass expired within the run (e.g. {})",
                expired.len(),
                named(expired)
            ),
            [],
        ));
    }
    let not_created: Vec<&String> = users
        .iter()
        .zip(members)
        .filter(|(_, m)| m.join_attempts == 1 && m.join_status.is_some_and(|s| s != 201))
        .map(|(u, _)| u)
        .collect();
    if !not_created.is_empty() {
        out.push(violation(
            format!(
                "{} users' first and only join was not answered 201 (e.g. {})",
                not_created.len(),
                named(not_created)
            ),
            [],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::client::Posted;
    use super::super::crowd::{PostRecord, Probe, Seen};
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::milliseconds(ms)
    }

    fn users(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    fn placed(position: u64, admitted_ms: Option<i64>) -> Member {
        Member {
            position: Some(position),
            admitted_at: admitted_ms.map(at),
            ..Member::default()
        }
    }

    fn seen(state: QueueState, answered_us: u64) -> Seen {
        Seen {
            sent_us: answered_us.saturating_sub(100),
            answered_us,
            server_time: Some(at(answered_us as i64 / 1000)),
            state,
        }
    }

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_reversed() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let rho = spearman(&x, &[10.0, 20.0, 30.0, 40.0, 50.0]).expect("rho");
        assert!((rho - 1.0).abs() < 1e-12);
        let rho = spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).expect("rho");
        assert!((rho + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&x, &[1.0; 5]), None);
        // Ties share their mean rank.
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn a_correlated_prequeue_is_flagged_and_a_shuffled_one_is_not() {
        let n = 2_000;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                join: Some(seen(QueueState::Prequeued, i as u64 * 10)),
                position: Some(i as u64 + 1),
                ..Member::default()
            })
            .collect();
        let (violations, rho) = prequeue(&members, &users(n));
        assert!(violations.is_empty(), "{violations:?}");
        assert!(rho.expect("rho") > 0.99);
        assert_eq!(uncorrelated(rho, n).len(), 1);

        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut shuffled: Vec<u64> = (1..=n as u64).collect();
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(12));
        let members: Vec<Member> = shuffled
            .iter()
            .enumerate()
            .map(|(i, p)| Member {
                join: Some(seen(QueueState::Prequeued, i as u64 * 10)),
                position: Some(*p),
                ..Member::default()
            })
            .collect();
        let (_, rho) = prequeue(&members, &users(n));
        assert!(uncorrelated(rho, n).is_empty(), "rho {rho:?}");
    }

    #[test]
    fn a_later_joiner_inside_the_prequeued_block_is_flagged() {
        let members = vec![
            Member {
                join: Some(seen(QueueState::Prequeued, 1)),
                position: Some(2),
                ..Member::default()
            },
            Member {
                join: Some(seen(QueueState::Waiting, 2)),
                position: Some(1),
                ..Member::default()
            },
        ];
        let (violations, _) = prequeue(&members, &users(2));
        assert_eq!(violations.len(), 1);
    }

    #[test]
    fn positions_must_be_dense_unique_and_match_joined() {
        let dense: Vec<Member> = [3, 1, 2].iter().map(|p| placed(*p, None)).collect();
        assert!(positions(&dense, &users(3), Some(3)).is_empty());
        assert_eq!(positions(&dense, &users(3), Some(4)).len(), 1);

        let gap: Vec<Member> = [1, 2, 4].iter().map(|p| placed(*p, None)).collect();
        let v = positions(&gap, &users(3), None);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("not dense"));

        let shared: Vec<Member> = [1, 2, 2].iter().map(|p| placed(*p, None)).collect();
        let v = positions(&shared, &users(3), None);
        assert!(
            v.iter().any(|v| v.detail.contains("more than one user")),
            "{v:?}"
        );

        let mut missing = dense.clone();
        missing[1].position = None;
        missing[0].position_conflict = Some((3, 4));
        let v = positions(&missing, &users(3), None);
        assert!(v.iter().any(|v| v.detail.contains("never given")), "{v:?}");
        assert!(
            v.iter().any(|v| v.detail.contains("two positions")),
            "{v:?}"
        );
    }

    #[test]
    fn admission_must_follow_position_order_and_the_rate() {
        let rate = 10.0;
        // 10 at the opening (the one second of burst), then 10 a second.
        let steady: Vec<Member> = (1..=40)
            .map(|p| placed(p, Some(((p as i64 - 1) / 10) * 1000)))
            .collect();
        assert!(admission(&steady, &users(40), at(0), rate).is_empty());

        let burst: Vec<Member> = (1..=25).map(|p| placed(p, Some(500))).collect();
        let v = admission(&burst, &users(25), at(0), rate);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("faster"));

        let mut swapped = steady.clone();
        swapped[5].admitted_at = Some(at(3_000));
        let v = admission(&swapped, &users(40), at(0), rate);
        assert!(
            v.iter().any(|v| v.detail.contains("out of position order")),
            "{v:?}"
        );

        let v = admission(&steady, &users(40), at(100), rate);
        assert!(
            v.iter().any(|v| v.detail.contains("before opens_at")),
            "{v:?}"
        );
    }

    fn sample(ms: u64, joined: u64, through: u64) -> CounterSample {
        CounterSample {
            sent_us: ms * 1000,
            answered_us: ms * 1000 + 500,
            queue: Some(QueueFigures {
                joined,
                admitted_through: through,
                paused: false,
            }),
        }
    }

    #[test]
    fn the_sampled_counter_never_decreases_and_keeps_its_rate() {
        let rate = 100.0;
        let good: Vec<CounterSample> = (0..30)
            .map(|k| sample(k * 100, 10_000, 100 + k * 10))
            .collect();
        assert!(counter(&good, rate).is_empty());

        let mut down = good.clone();
        down[5] = sample(500, 10_000, 10);
        assert!(
            counter(&down, rate)
                .iter()
                .any(|v| v.detail.contains("decreased"))
        );

        let fast: Vec<CounterSample> = (0..30).map(|k| sample(k * 100, 100_000, k * 100)).collect();
        assert!(
            counter(&fast, rate)
                .iter()
                .any(|v| v.detail.contains("faster"))
        );

        let over = vec![sample(0, 5, 6)];
        assert!(
            counter(&over, rate)
                .iter()
                .any(|v| v.detail.contains("above joined"))
        );
    }

    fn posted(answer: Answer, problem: Option<&str>, retry_after: bool) -> Posted {
        Posted {
            answer,
            problem_type: problem.map(str::to_owned),
            retry_after,
        }
    }

    fn probed(kind: ProbeKind, answer: Posted, admitted_ms: i64) -> Member {
        Member {
            position: Some(1),
            admitted_at: Some(at(admitted_ms)),
            admitted_seen_us: Some(admitted_ms as u64 * 1000 + 1000),
            posts: vec![PostRecord {
                sent_us: admitted_ms as u64 * 1000 + 2000,
                answered_us: admitted_ms as u64 * 1000 + 3000,
                posted: posted(Answer::Accepted(Uuid::new_v4()), None, false),
            }],
            probe: Some(Probe {
                kind,
                before: seen(QueueState::Waiting, 1_000_000),
                post: PostRecord {
                    sent_us: 1_000_100,
                    answered_us: 1_000_900,
                    posted: answer,
                },
            }),
            ..Member::default()
        }
    }

    #[test]
    fn probes_must_be_refused_as_the_contract_says() {
        let early = posted(
            Answer::Refused(403),
            Some("urn:rushline:problem:not-your-turn"),
            true,
        );
        let fine = vec![
            probed(ProbeKind::OwnTicketEarly, early.clone(), 60_000),
            probed(
                ProbeKind::NoTicket,
                posted(Answer::Refused(401), None, false),
                60_000,
            ),
            probed(
                ProbeKind::ForgedTicket,
                posted(Answer::Refused(401), None, false),
                60_000,
            ),
            probed(
                ProbeKind::OtherUsersTicket,
                posted(Answer::Refused(403), None, false),
                60_000,
            ),
        ];
        assert!(
            posts(&fine, &users(4)).is_empty(),
            "{:?}",
            posts(&fine, &users(4))
        );

        let id = Uuid::new_v4();
        let accepted_early = vec![probed(
            ProbeKind::OwnTicketEarly,
            posted(Answer::Accepted(id), None, false),
            60_000,
        )];
        let v = posts(&accepted_early, &users(1));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].request_ids, vec![id]);

        // Admitted (server clock) while the probe was on its way: an accept is right.
        let raced = vec![probed(
            ProbeKind::OwnTicketEarly,
            posted(Answer::Accepted(id), None, false),
            1_000,
        )];
        assert!(posts(&raced, &users(1)).is_empty());

        let no_retry_after = vec![probed(
            ProbeKind::OwnTicketEarly,
            posted(
                Answer::Refused(403),
                Some("urn:rushline:problem:not-your-turn"),
                false,
            ),
            60_000,
        )];
        assert_eq!(posts(&no_retry_after, &users(1)).len(), 1);
        let forged_accepted = vec![probed(
            ProbeKind::ForgedTicket,
            posted(Answer::Accepted(id), None, false),
            60_000,
        )];
        assert_eq!(posts(&forged_accepted, &users(1)).len(), 1);
    }

    #[test]
    fn admitted_users_must_post_after_reading_admitted_and_be_accepted() {
        let mut early = probed(
            ProbeKind::NoTicket,
            posted(Answer::Refused(401), None, false),
            60_000,
        );
        early.admitted_seen_us = Some(u64::MAX);
        let v = posts(&[early], &users(1));
        assert!(
            v.iter()
                .any(|v| v.detail.contains("before the client read")),
            "{v:?}"
        );

        let never = Member {
            position: Some(1),
            ..Member::default()
        };
        let v = posts(&[never], &users(1));
        assert!(
            v.iter().any(|v| v.detail.contains("never admitted")),
            "{v:?}"
        );
    }
}
