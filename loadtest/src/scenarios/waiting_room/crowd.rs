//! The crowd: one [`Member`] per user with everything the server told it, and the ways the storm
//! drives it — a join blast, the probes (posts that must be refused), a closed-loop poll window,
//! and the drain, where every user polls as `poll_after_secs` says and posts its request once
//! admitted.
//!
//! Instants are µs since the crowd's start on the monotonic clock, as in [`crate::traffic`].
//! Each member sits behind its own lock, held only to read or apply an answer (never across an
//! `await`), so tasks never contend except on the same user.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use super::client::{self, Posted, QueueAnswer, QueueState, QueueView};
use crate::api::Api;
use crate::traffic::{Answer, Percentiles, histogram};

/// One answer to a join or poll, with the client's instants around it.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// When the call was sent, µs.
    pub sent_us: u64,
    /// When its answer was read, µs.
    pub answered_us: u64,
    /// The server's clock in the answer.
    pub server_time: Option<DateTime<Utc>>,
    /// The state it gave.
    pub state: QueueState,
}

/// A request post and what came back.
#[derive(Debug, Clone)]
pub struct PostRecord {
    /// When it was sent, µs.
    pub sent_us: u64,
    /// When its answer was read, µs.
    pub answered_us: u64,
    /// The answer.
    pub posted: Posted,
}

/// How a probe breaks the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// The user's own ticket, before admission: `403 not-your-turn` with `Retry-After`.
    OwnTicketEarly,
    /// No ticket: `401`.
    NoTicket,
    /// The user's ticket with its claims altered (header and signature kept): `401`.
    ForgedTicket,
    /// Another user's ticket: `403`.
    OtherUsersTicket,
}

impl ProbeKind {
    const ALL: [ProbeKind; 4] = [
        ProbeKind::OwnTicketEarly,
        ProbeKind::NoTicket,
        ProbeKind::ForgedTicket,
        ProbeKind::OtherUsersTicket,
    ];
}

/// A post that must be refused, sent while the user was waiting.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Which rule it breaks.
    pub kind: ProbeKind,
    /// The poll answer just before it (bounds the server's clock at the probe).
    pub before: Seen,
    /// The post.
    pub post: PostRecord,
}

/// Everything one user was told.
#[derive(Debug, Clone, Default)]
pub struct Member {
    /// Join calls sent (a failed join is retried in the drain).
    pub join_attempts: u32,
    /// The first join that was answered `201`/`200`.
    pub join: Option<Seen>,
    /// Its HTTP status.
    pub join_status: Option<u16>,
    /// The newest ticket.
    pub ticket: Option<String>,
    /// The position, once one was given.
    pub position: Option<u64>,
    /// A later answer that gave another position: (first, other).
    pub position_conflict: Option<(u64, u64)>,
    /// When the position was admitted, as the server reports it.
    pub admitted_at: Option<DateTime<Utc>>,
    /// A later answer gave another `admitted_at`.
    pub admitted_at_conflict: bool,
    /// When the client first read `state: admitted`, µs.
    pub admitted_seen_us: Option<u64>,
    /// An answer named another user.
    pub wrong_user: bool,
    /// An answer said `expired`.
    pub expired_seen: bool,
    /// The latest answer.
    pub last: Option<Seen>,
    /// The latest `poll_after_secs`.
    pub poll_after_secs: Option<f64>,
    /// Polls answered `200`.
    pub polls: u32,
    /// The request post(s) after admission (retries of one press share an `Idempotency-Key`).
    pub posts: Vec<PostRecord>,
    /// The probe, when this user was chosen for one.
    pub probe: Option<Probe>,
}

impl Member {
    /// The user got a final answer to its request post (accepted, decided, or refused for good).
    pub fn done(&self) -> bool {
        self.posts.last().is_some_and(|p| !retryable(&p.posted))
    }

    fn apply(&mut self, user: &str, view: &QueueView, status: u16, sent_us: u64, answered_us: u64) {
        let seen = Seen {
            sent_us,
            answered_us,
            server_time: Some(view.server_time),
            state: view.state,
        };
        if self.join.is_none() && (status == 201 || status == 200) && self.polls == 0 {
            self.join = Some(seen);
            self.join_status = Some(status);
        }
        self.wrong_user |= view.user_id != user;
        self.ticket = Some(view.ticket.clone());
        if let Some(position) = view.position {
            match self.position {
                None => self.position = Some(position),
                Some(first) if first != position && self.position_conflict.is_none() => {
                    self.position_conflict = Some((first, position));
                }
                Some(_) => {}
            }
        }
        if view.state == QueueState::Admitted {
            self.admitted_seen_us.get_or_insert(answered_us);
            if let Some(at) = view.admitted_at {
                match self.admitted_at {
                    None => self.admitted_at = Some(at),
                    Some(first) => self.admitted_at_conflict |= first != at,
                }
            }
        }
        self.expired_seen |= view.state == QueueState::Expired;
        self.poll_after_secs = Some(view.poll_after_secs);
        self.last = Some(seen);
    }
}

/// A post worth sending again with the same `Idempotency-Key`: overloaded or lost on the way.
fn retryable(posted: &Posted) -> bool {
    matches!(posted.answer, Answer::Failed(_) | Answer::Refused(503))
}

/// Counts and latency of one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseFigures {
    /// Calls sent.
    pub sent: u64,
    /// Calls answered `200`/`201`.
    pub ok: u64,
    /// Other statuses, by code.
    pub refused: BTreeMap<u16, u64>,
    /// Transport failures and unreadable bodies.
    pub failed: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// From the phase's start to its last answer.
    pub seconds: f64,
    /// `ok / seconds`.
    pub ok_per_sec: f64,
    /// Latency of the `ok` answers.
    pub latency: Percentiles,
}

/// A task's share of a phase, merged at the end.
struct Tally {
    sent: u64,
    ok: u64,
    refused: BTreeMap<u16, u64>,
    failed: u64,
    first_failure: Option<String>,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            sent: 0,
            ok: 0,
            refused: BTreeMap::new(),
            failed: 0,
            first_failure: None,
            latency: histogram(),
        }
    }

    fn count(&mut self, answer: &QueueAnswer, latency_us: u64) {
        self.sent += 1;
        match answer {
            QueueAnswer::View { .. } => {
                self.ok += 1;
                self.latency.saturating_record(latency_us.max(1));
            }
            QueueAnswer::Refused(code) => *self.refused.entry(*code).or_default() += 1,
            QueueAnswer::Failed(e) => {
                self.failed += 1;
                self.first_failure.get_or_insert_with(|| e.clone());
            }
        }
    }

    fn merge(tallies: Vec<Tally>, seconds: f64) -> PhaseFigures {
        let mut latency = histogram();
        let mut figures = PhaseFigures {
            seconds,
            ..PhaseFigures::default()
        };
        for tally in tallies {
            figures.sent += tally.sent;
            figures.ok += tally.ok;
            figures.failed += tally.failed;
            if figures.first_failure.is_none() {
                figures.first_failure = tally.first_failure;
            }
            for (code, n) in tally.refused {
                *figures.refused.entry(code).or_default() += n;
            }
            // Same bounds on both sides, so adding cannot fail.
            let _ = latency.add(&tally.latency);
        }
        figures.ok_per_sec = figures.ok as f64 / seconds.max(1e-6);
        figures.latency = Percentiles::of(&latency);
        figures
    }
}

/// The drain's figures beside its polls.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainFigures {
    /// The polls and re-joins.
    pub polls: PhaseFigures,
    /// Request posts sent after admission (retries included).
    pub posts: u64,
    /// Users done (a final answer to their request post) when the drain ended.
    pub done: usize,
    /// Users not done by the deadline.
    pub left: usize,
    /// Median `poll_after_secs` the server gave during the drain.
    pub poll_after_p50_secs: f64,
}

/// Every user of the storm, in join order of the plan.
pub struct Crowd {
    /// The campaign.
    pub campaign: String,
    /// User ids; the index is the user's place in the plan.
    pub users: Vec<String>,
    members: Vec<Mutex<Member>>,
    /// The crowd's clock origin.
    pub started: Instant,
    /// The same instant on the wall clock.
    pub started_wall: DateTime<Utc>,
    /// Keeps idempotency keys apart between runs.
    tag: String,
}

impl Crowd {
    /// `users` on `campaign`, nobody joined yet.
    pub fn new(campaign: String, users: Vec<String>, tag: String) -> Self {
        let members = users
            .iter()
            .map(|_| Mutex::new(Member::default()))
            .collect();
        Self {
            campaign,
            users,
            members,
            started: Instant::now(),
            started_wall: Utc::now(),
            tag,
        }
    }

    /// User `i`'s record. A poisoned lock only means another task panicked mid-update; the
    /// record is still the best evidence there is.
    pub fn member(&self, i: usize) -> MutexGuard<'_, Member> {
        self.members[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of every member's record.
    pub fn snapshot(&self) -> Vec<Member> {
        (0..self.members.len())
            .map(|i| self.member(i).clone())
            .collect()
    }

    /// µs since the crowd's start.
    pub fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// Joins (or, holding a ticket, polls) user `i` once and records the answer.
    async fn step(&self, api: &Api, i: usize, tally: &mut Tally) {
        let ticket = self.member(i).ticket.clone();
        let sent = Instant::now();
        let answer = match &ticket {
            Some(ticket) => client::poll(api, &self.campaign, ticket).await,
            None => {
                self.member(i).join_attempts += 1;
                client::join(api, &self.campaign, &self.users[i]).await
            }
        };
        let answered = Instant::now();
        tally.count(&answer, answered.duration_since(sent).as_micros() as u64);
        if let QueueAnswer::View { status, view } = &answer {
            let mut member = self.member(i);
            member.apply(
                &self.users[i],
                view,
                *status,
                self.micros(sent),
                self.micros(answered),
            );
            if ticket.is_some() {
                member.polls += 1;
            }
        }
    }
}

/// Joins users `range` in closed loop over `concurrency` tasks.
pub async fn join_blast(
    api: &Api,
    crowd: &Arc<Crowd>,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> PhaseFigures {
    let next = Arc::new(AtomicUsize::new(range.start));
    let started = Instant::now();
    let tasks = (0..concurrency.max(1)).map(|_| {
        let (api, crowd, next, end) = (api.clone(), crowd.clone(), next.clone(), range.end);
        tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                crowd.step(&api, i, &mut tally).await;
            }
            tally
        })
    });
    let tallies = collect(join_all(tasks).await);
    Tally::merge(tallies, started.elapsed().as_secs_f64())
}

/// Polls every user round-robin from the back of the line (the last to join first), closed loop
/// over `concurrency` tasks, for `window`: the status poll's capacity in the steady state (no
/// request is posted meanwhile, so the CPU spent is the polls'). Back to front because a user's
/// first poll after a change of state (pre-queued users after the opening, waiting ones the
/// counter has reached) asks Redis once and gets a new ticket; the users still waiting at the
/// back hold tickets that tell everything, as most of a crowd does most of the time.
pub async fn poll_window(
    api: &Api,
    crowd: &Arc<Crowd>,
    concurrency: usize,
    window: Duration,
) -> PhaseFigures {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + window;
    let tasks = (0..concurrency.max(1)).map(|_| {
        let (api, crowd, next) = (api.clone(), crowd.clone(), next.clone());
        tokio::spawn(async move {
            let mut tally = Tally::new();
            while Instant::now() < until {
                let n = crowd.users.len().max(1);
                let i = n - 1 - next.fetch_add(1, Ordering::Relaxed) % n;
                crowd.step(&api, i, &mut tally).await;
            }
            tally
        })
    });
    let tallies = collect(join_all(tasks).await);
    Tally::merge(tallies, started.elapsed().as_secs_f64())
}

/// Every `every`-th user polls once and, if still waiting, sends one post that must be refused
/// (the kinds in turn), over `concurrency` tasks; the probes sent.
pub async fn probes(api: &Api, crowd: &Arc<Crowd>, every: usize, concurrency: usize) -> u64 {
    if every == 0 {
        return 0;
    }
    let chosen: Arc<Vec<usize>> = Arc::new((0..crowd.users.len()).step_by(every).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let tasks = (0..concurrency.max(1)).map(|_| {
        let (api, crowd, chosen, next) = (api.clone(), crowd.clone(), chosen.clone(), next.clone());
        tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut sent = 0u64;
            while let Some(&i) = chosen.get(next.fetch_add(1, Ordering::Relaxed)) {
                crowd.step(&api, i, &mut tally).await;
                let waiting = crowd
                    .member(i)
                    .last
                    .is_some_and(|s| s.state == QueueState::Waiting);
                if waiting && crowd.probe(&api, i, every).await {
                    sent += 1;
                }
            }
            sent
        })
    });
    collect(join_all(tasks).await).into_iter().sum()
}

/// What the drain needs besides the crowd.
#[derive(Debug, Clone, Copy)]
pub struct DrainPlan {
    /// Tasks (mostly waiting for a user's next poll).
    pub concurrency: usize,
    /// No call starts after this.
    pub deadline: Instant,
    /// The longest pause between one user's polls, whatever `poll_after_secs` says.
    pub max_poll_after: Duration,
}

/// Users due for their next poll: (due µs, user), earliest first.
type Schedule = Mutex<BinaryHeap<Reverse<(u64, usize)>>>;

/// Every user not done polls when the server said to (`poll_after_secs`, capped) and posts its
/// request once admitted. Ends when every user is done or at the deadline.
pub async fn drain(api: &Api, crowd: &Arc<Crowd>, plan: DrainPlan) -> DrainFigures {
    let now_us = crowd.micros(Instant::now());
    let schedule: Arc<Schedule> = Arc::new(Mutex::new(
        (0..crowd.users.len())
            .filter(|&i| !crowd.member(i).done())
            .map(|i| Reverse((now_us, i)))
            .collect(),
    ));
    let left = Arc::new(AtomicUsize::new(lock(&schedule).len()));
    let started = Instant::now();
    let tasks = (0..plan.concurrency.max(1)).map(|_| {
        let (api, crowd) = (api.clone(), crowd.clone());
        let (schedule, left) = (schedule.clone(), left.clone());
        tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut posts = 0u64;
            let mut poll_after = histogram();
            while left.load(Ordering::Relaxed) > 0 && Instant::now() < plan.deadline {
                // Take only a user who is due: a task that held a later one would make an
                // earlier one wait behind it.
                let now_us = crowd.micros(Instant::now());
                let (due, wait_us) = {
                    let mut schedule = lock(&schedule);
                    match schedule.peek().copied() {
                        Some(Reverse((due_us, _))) if due_us <= now_us => (schedule.pop(), 0),
                        Some(Reverse((due_us, _))) => (None, due_us - now_us),
                        // Everyone left is being polled by another task right now; they are back
                        // in the schedule within one round trip.
                        None => (None, 5_000),
                    }
                };
                let Some(Reverse((_, i))) = due else {
                    tokio::time::sleep(Duration::from_micros(wait_us.min(20_000))).await;
                    continue;
                };
                crowd.step(&api, i, &mut tally).await;
                let (state, after) = {
                    let member = crowd.member(i);
                    (member.last.map(|s| s.state), member.poll_after_secs)
                };
                if let Some(after) = after {
                    poll_after.saturating_record((after * 1000.0).max(1.0) as u64);
                }
                if matches!(state, Some(QueueState::Admitted | QueueState::Expired)) {
                    posts += crowd.post_admitted(&api, i).await;
                    left.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                let pause = after
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(3_600.0)))
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(50), plan.max_poll_after);
                let next = crowd.micros(Instant::now() + pause);
                lock(&schedule).push(Reverse((next, i)));
            }
            (tally, posts, poll_after)
        })
    });
    let mut tallies = Vec::new();
    let mut figures = DrainFigures::default();
    let mut poll_after = histogram();
    for (tally, posts, after) in collect(join_all(tasks).await) {
        tallies.push(tally);
        figures.posts += posts;
        let _ = poll_after.add(&after);
    }
    figures.polls = Tally::merge(tallies, started.elapsed().as_secs_f64());
    figures.poll_after_p50_secs = poll_after.value_at_quantile(0.5) as f64 / 1000.0;
    figures.done = (0..crowd.users.len())
        .filter(|&i| crowd.member(i).done())
        .count();
    figures.left = crowd.users.len() - figures.done;
    figures
}

impl Crowd {
    /// Posts user `i`'s request with its ticket, retrying an overloaded or lost post (same
    /// `Idempotency-Key`) up to three times; the posts sent.
    async fn post_admitted(&self, api: &Api, i: usize) -> u64 {
        let key = format!("{}-wr-{i}", self.tag);
        let mut sent = 0;
        for attempt in 0..4u32 {
            let Some(ticket) = self.member(i).ticket.clone() else {
                break;
            };
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            let sent_at = Instant::now();
            let posted = client::post_request(
                api,
                &self.campaign,
                &self.users[i],
                Some(&ticket),
                Some(&key),
            )
            .await;
            sent += 1;
            let record = PostRecord {
                sent_us: self.micros(sent_at),
                answered_us: self.micros(Instant::now()),
                posted,
            };
            let again = retryable(&record.posted);
            self.member(i).posts.push(record);
            if !again {
                break;
            }
        }
        sent
    }

    /// Sends user `i` (waiting) one post that must be refused, of the kind its index picks;
    /// false when there was nothing to send it with (no ticket yet).
    async fn probe(&self, api: &Api, i: usize, every: usize) -> bool {
        let kind = ProbeKind::ALL[(i / every.max(1)) % ProbeKind::ALL.len()];
        let (before, ticket) = {
            let member = self.member(i);
            match (member.last, member.ticket.clone()) {
                (Some(last), Some(ticket)) => (last, ticket),
                _ => return false,
            }
        };
        let ticket = match kind {
            ProbeKind::OwnTicketEarly => Some(ticket),
            ProbeKind::NoTicket => None,
            ProbeKind::ForgedTicket => Some(forge(&ticket)),
            ProbeKind::OtherUsersTicket => {
                let other = (i + 1) % self.users.len().max(1);
                let theirs = self.member(other).ticket.clone();
                match theirs {
                    Some(t) if other != i => Some(t),
                    _ => return false,
                }
            }
        };
        let sent = Instant::now();
        let posted =
            client::post_request(api, &self.campaign, &self.users[i], ticket.as_deref(), None)
                .await;
        let post = PostRecord {
            sent_us: self.micros(sent),
            answered_us: self.micros(Instant::now()),
            posted,
        };
        self.member(i).probe = Some(Probe { kind, before, post });
        true
    }
}

/// `ticket` with one character in the middle of its payload (the claims) changed, header and
/// signature kept: claims rushline never issued. (Altering only the signature would not do:
/// rushline authenticates its own tickets by the `rlm` MAC of the payload in the header, not by
/// the signature other services check.)
pub fn forge(ticket: &str) -> String {
    let mut segments = ticket.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) =
        (segments.next(), segments.next(), segments.next())
    else {
        return format!("{ticket}x");
    };
    let middle = payload.len() / 2;
    let payload: String = payload
        .char_indices()
        .map(|(at, c)| match (at == middle, c) {
            (true, 'A') => 'B',
            (true, _) => 'A',
            (false, c) => c,
        })
        .collect();
    format!("{header}.{payload}.{signature}")
}

fn lock(schedule: &Schedule) -> MutexGuard<'_, BinaryHeap<Reverse<(u64, usize)>>> {
    schedule
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tasks' results; a task that panicked contributes nothing (its calls are then missing
/// from the figures, and the users it held show up as not done).
fn collect<T>(results: Vec<Result<T, tokio::task::JoinError>>) -> Vec<T> {
    results.into_iter().filter_map(Result::ok).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_ticket_differs_only_in_its_claims() {
        let ticket = "aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJlQUFB";
        let forged = forge(ticket);
        assert_ne!(forged, ticket);
        assert_eq!(forged.len(), ticket.len());
        assert!(forged.starts_with("aGVhZGVy."));
        assert!(forged.ends_with(".c2lnbmF0dXJlQUFB"));
    }
}
