//! The blast: a plan of jobs sent over a pool of C tasks, every request's timing kept.
//!
//! A [`Job`] is one user's presses on one campaign. Its first press may be a group of racing
//! retries (copies sent at the same moment with one `Idempotency-Key`); later presses are sent
//! only after the previous answer came back, the way a person presses again. Tasks take jobs
//! from a shared counter, so the pool never holds more than C requests in flight — except for
//! racing copies, which are the point.
//!
//! Times are microseconds since the blast's start on the monotonic clock. In open loop job `i`
//! is *intended* at `i / rate`; latency counts from that instant, so when the server stalls the
//! backlog it causes shows up in the figures instead of silently slowing the sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use reqwest::StatusCode;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::LoadError;
use crate::api::{Api, IssueAnswer};

/// One user's presses on one campaign.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index into the scenario's campaign list.
    pub campaign: u16,
    /// The user id sent.
    pub user: String,
    /// How many presses, each sent after the previous answer (≥ 1).
    pub presses: u8,
    /// Copies of the first press sent at once with one `Idempotency-Key` (1 = a plain press).
    pub racing: u8,
}

impl Job {
    /// Requests this job sends.
    pub fn requests(&self) -> usize {
        usize::from(self.racing.max(1)) + usize::from(self.presses.max(1)) - 1
    }
}

/// How a plan's requests are split into users.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mix {
    /// Requests in total.
    pub requests: usize,
    /// Distinct users (≤ requests); the rest are repeat presses and racing retries.
    pub users: usize,
    /// Share of the extra requests (requests − users) sent as racing retries; the rest are
    /// repeat presses after the first answer.
    pub racing_share: f64,
}

/// Builds a shuffled plan over `campaigns` campaigns: users are spread round-robin, so every
/// campaign gets the same mix. `tag` keeps user ids apart between runs.
pub fn plan(mix: Mix, campaigns: usize, tag: &str, seed: u64) -> Result<Vec<Job>, LoadError> {
    if mix.users == 0 || campaigns == 0 || campaigns > usize::from(u16::MAX) {
        return Err(LoadError::InvalidPlan(
            "need at least one user and 1..=65535 campaigns".into(),
        ));
    }
    if mix.requests < mix.users || mix.requests - mix.users > mix.users {
        return Err(LoadError::InvalidPlan(format!(
            "{} requests from {} users: need users <= requests <= 2 x users",
            mix.requests, mix.users
        )));
    }
    let extra = mix.requests - mix.users;
    let racing = (extra as f64 * mix.racing_share.clamp(0.0, 1.0)).round() as usize;
    let repeats = extra - racing;
    let mut jobs: Vec<Job> = (0..mix.users)
        .map(|i| Job {
            campaign: (i % campaigns) as u16,
            user: format!("u-{tag}-{i}"),
            presses: if i >= racing && i < racing + repeats {
                2
            } else {
                1
            },
            racing: if i < racing { 2 } else { 1 },
        })
        .collect();
    jobs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    Ok(jobs)
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// C tasks send as fast as answers come back.
    Closed {
        /// Tasks (and so connections).
        concurrency: usize,
    },
    /// Jobs start at a fixed rate; C tasks carry them.
    Open {
        /// Tasks (and so connections).
        concurrency: usize,
        /// Jobs started per second.
        rate: f64,
    },
}

impl Load {
    /// Tasks in the pool.
    pub fn concurrency(&self) -> usize {
        match *self {
            Load::Closed { concurrency } | Load::Open { concurrency, .. } => concurrency.max(1),
        }
    }
}

/// How one request ended on the client's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `202`: queued.
    Accepted(Uuid),
    /// `200`: decided at once (status as answered).
    Decided(Uuid, String),
    /// Any other HTTP status.
    Refused(u16),
    /// Transport error or unreadable body.
    Failed(String),
}

impl Answer {
    /// The request id, when the API gave one.
    pub fn request_id(&self) -> Option<Uuid> {
        match self {
            Answer::Accepted(id) | Answer::Decided(id, _) => Some(*id),
            _ => None,
        }
    }
}

/// One request as the client saw it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Index of the job in the plan.
    pub job: u32,
    /// Which press of the job (0-based).
    pub press: u8,
    /// Which racing copy (0-based).
    pub copy: u8,
    /// Index into the campaign list.
    pub campaign: u16,
    /// When it should have been sent (open loop) or was sent (closed loop), µs.
    pub intended_us: u64,
    /// When the send started, µs.
    pub sent_us: u64,
    /// When the whole answer was read, µs.
    pub answered_us: u64,
    /// The outcome.
    pub answer: Answer,
}

impl Record {
    /// Latency counted from the intended send time, µs.
    pub fn latency_us(&self) -> u64 {
        self.answered_us.saturating_sub(self.intended_us)
    }
}

/// Everything a blast produced.
#[derive(Debug)]
pub struct Blast {
    /// Campaign ids, indexed by `Job::campaign`.
    pub campaigns: Arc<Vec<String>>,
    /// The plan that was sent (jobs past the time bound were not started).
    pub jobs: Arc<Vec<Job>>,
    /// Every request sent.
    pub records: Vec<Record>,
    /// Wall-clock time of the start (to compare with the server's `decided_at`).
    pub started_wall: DateTime<Utc>,
    /// Monotonic start.
    pub started: Instant,
    /// From start to the last answer.
    pub elapsed: Duration,
    /// Largest `202` body seen (the ceiling server mimics it).
    pub accept_body_len: usize,
    /// The load shape.
    pub load: Load,
}

/// Counters shared with the monitor while a blast runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests answered so far.
    pub answered: AtomicU64,
    /// `202`s so far.
    pub accepted: AtomicU64,
}

/// Where a blast goes and how it is bounded.
pub struct BlastConfig<'a> {
    /// The API (or the ceiling server) to send to.
    pub api: &'a Api,
    /// Campaign ids, indexed by `Job::campaign`.
    pub campaigns: Arc<Vec<String>>,
    /// The plan.
    pub jobs: Arc<Vec<Job>>,
    /// Closed or open loop.
    pub load: Load,
    /// No job starts after this long.
    pub max_duration: Duration,
    /// Counters the monitor reads.
    pub live: Arc<Live>,
    /// Show a progress bar (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Tag for idempotency keys (kept apart between runs).
    pub tag: String,
}

/// Sends the plan; returns when every started job is answered.
pub async fn blast(config: BlastConfig<'_>) -> Result<Blast, LoadError> {
    let total: usize = config.jobs.iter().map(Job::requests).sum();
    let bar = if config.progress {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} {bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let next = Arc::new(AtomicUsize::new(0));
    let body_len = Arc::new(AtomicUsize::new(0));
    let started_wall = Utc::now();
    let started = Instant::now();
    let deadline = started + config.max_duration;
    let tasks: Vec<_> = (0..config.load.concurrency())
        .map(|_| {
            let task = Task {
                api: config.api.clone(),
                campaigns: config.campaigns.clone(),
                jobs: config.jobs.clone(),
                load: config.load,
                next: next.clone(),
                body_len: body_len.clone(),
                live: config.live.clone(),
                bar: bar.clone(),
                tag: config.tag.clone(),
                started,
                deadline,
            };
            tokio::spawn(task.run())
        })
        .collect();
    let mut records = Vec::with_capacity(total);
    for task in join_all(tasks).await {
        match task {
            Ok(mut part) => records.append(&mut part),
            Err(e) => {
                return Err(LoadError::Unexpected {
                    what: "traffic task".into(),
                    detail: e.to_string(),
                });
            }
        }
    }
    bar.finish_and_clear();
    let elapsed = Duration::from_micros(records.iter().map(|r| r.answered_us).max().unwrap_or(0));
    Ok(Blast {
        campaigns: config.campaigns,
        jobs: config.jobs,
        records,
        started_wall,
        started,
        elapsed,
        accept_body_len: body_len.load(Ordering::Relaxed),
        load: config.load,
    })
}

/// One of the C tasks.
struct Task {
    api: Api,
    campaigns: Arc<Vec<String>>,
    jobs: Arc<Vec<Job>>,
    load: Load,
    next: Arc<AtomicUsize>,
    body_len: Arc<AtomicUsize>,
    live: Arc<Live>,
    bar: ProgressBar,
    tag: String,
    started: Instant,
    deadline: Instant,
}

impl Task {
    async fn run(self) -> Vec<Record> {
        let mut records = Vec::new();
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = self.jobs.get(index) else {
                break;
            };
            let intended = match self.load {
                Load::Closed { .. } => Instant::now(),
                Load::Open { rate, .. } => {
                    let at = self.started + Duration::from_secs_f64(index as f64 / rate.max(1e-3));
                    tokio::time::sleep_until(at).await;
                    at
                }
            };
            if intended > self.deadline {
                break;
            }
            let url = self.api.url(&format!(
                "/v1/campaigns/{}/requests",
                self.campaigns[usize::from(job.campaign)]
            ));
            let body = format!(r#"{{"user_id":"{}"}}"#, job.user);
            for press in 0..job.presses.max(1) {
                let intended = if press == 0 { intended } else { Instant::now() };
                let copies = if press == 0 { job.racing.max(1) } else { 1 };
                let key = (copies > 1).then(|| format!("{}-{index}", self.tag));
                let this = &self;
                let sends = (0..copies).map(|copy| {
                    let (url, body, key) = (url.clone(), body.clone(), key.clone());
                    async move {
                        let sent = Instant::now();
                        let answer = this.send(url, body, key).await;
                        Record {
                            job: index as u32,
                            press,
                            copy,
                            campaign: job.campaign,
                            intended_us: this.micros(intended),
                            sent_us: this.micros(sent),
                            answered_us: this.micros(Instant::now()),
                            answer,
                        }
                    }
                });
                for record in join_all(sends).await {
                    self.live.answered.fetch_add(1, Ordering::Relaxed);
                    if matches!(record.answer, Answer::Accepted(_)) {
                        self.live.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    self.bar.inc(1);
                    records.push(record);
                }
            }
        }
        records
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    async fn send(&self, url: String, body: String, key: Option<String>) -> Answer {
        let mut request = self
            .api
            .client()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Answer::Failed(e.to_string()),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Answer::Failed(e.to_string()),
        };
        if status != StatusCode::ACCEPTED && status != StatusCode::OK {
            return Answer::Refused(status.as_u16());
        }
        match serde_json::from_slice::<IssueAnswer>(&bytes) {
            Ok(answer) if status == StatusCode::ACCEPTED => {
                self.body_len.fetch_max(bytes.len(), Ordering::Relaxed);
                Answer::Accepted(answer.request_id)
            }
            Ok(answer) => Answer::Decided(answer.request_id, answer.status),
            Err(e) => Answer::Failed(format!("{status} with unreadable body: {e}")),
        }
    }
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// 99.9th.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of a histogram in µs.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        }
    }
}

/// A new histogram of µs latencies (1 µs .. 1 h, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    // A true invariant: these bounds (low ≥ 1, high ≥ 2 × low, ≤ 5 digits) are always valid.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The blast in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlastSummary {
    /// The load shape.
    pub load: Option<Load>,
    /// Requests sent.
    pub sent: usize,
    /// `202`s.
    pub accepted_202: usize,
    /// `200`s (decided at once).
    pub decided_200: usize,
    /// Other HTTP statuses, by code.
    pub refused: Vec<(u16, usize)>,
    /// Transport failures.
    pub failed: usize,
    /// First failure message, if any.
    pub first_failure: Option<String>,
    /// Seconds from start to last answer.
    pub seconds: f64,
    /// Answered requests (any status) per second.
    pub answers_per_sec: f64,
    /// `202` + `200` per second: the accept rate.
    pub accept_rate: f64,
    /// Latency of `202`/`200` answers from intended send time.
    pub latency: Percentiles,
}

impl Blast {
    /// Counts and latency percentiles.
    pub fn summary(&self) -> BlastSummary {
        let mut refused = std::collections::BTreeMap::<u16, usize>::new();
        let mut summary = BlastSummary {
            load: Some(self.load),
            sent: self.records.len(),
            seconds: self.elapsed.as_secs_f64(),
            ..BlastSummary::default()
        };
        let mut latency = histogram();
        for record in &self.records {
            match &record.answer {
                Answer::Accepted(_) => summary.accepted_202 += 1,
                Answer::Decided(..) => summary.decided_200 += 1,
                Answer::Refused(code) => *refused.entry(*code).or_default() += 1,
                Answer::Failed(message) => {
                    summary.failed += 1;
                    summary.first_failure.get_or_insert_with(|| message.clone());
                }
            }
            if record.answer.request_id().is_some() {
                // Saturates at the histogram's bound rather than dropping a sample.
                latency.saturating_record(record.latency_us().max(1));
            }
        }
        summary.refused = refused.into_iter().collect();
        let seconds = summary.seconds.max(1e-6);
        summary.answers_per_sec = summary.sent as f64 / seconds;
        summary.accept_rate = (summary.accepted_202 + summary.decided_200) as f64 / seconds;
        summary.latency = Percentiles::of(&latency);
        summary
    }

    /// Accept rate and latency per time bucket, from the answer instants.
    pub fn timeline(&self, bucket: Duration) -> Vec<TrafficPoint> {
        let width = bucket.as_micros().max(1) as u64;
        let buckets = (self.elapsed.as_micros() as u64 / width + 1) as usize;
        let mut points: Vec<(u64, Histogram<u64>)> =
            (0..buckets).map(|_| (0, histogram())).collect();
        for record in &self.records {
            if record.answer.request_id().is_none() {
                continue;
            }
            if let Some((count, latency)) = points.get_mut((record.answered_us / width) as usize) {
                *count += 1;
                latency.saturating_record(record.latency_us().max(1));
            }
        }
        let seconds = bucket.as_secs_f64();
        points
            .into_iter()
            .enumerate()
            .map(|(i, (count, latency))| TrafficPoint {
                t: (i + 1) as f64 * seconds,
                accept_rate: count as f64 / seconds,
                p50_ms: latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: latency.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect()
    }
}

/// One bucket of [`Blast::timeline`].
#[derive(Debug, Clone, Serialize)]
pub struct TrafficPoint {
    /// End of the bucket, seconds since the blast started.
    pub t: f64,
    /// Accepted (`202`/`200`) per second.
    pub accept_rate: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_has_the_requested_counts() {
        let mix = Mix {
            requests: 1_100,
            users: 1_000,
            racing_share: 0.2,
        };
        let jobs = plan(mix, 3, "t", 7).expect("plan");
        assert_eq!(jobs.len(), 1_000);
        assert_eq!(jobs.iter().map(Job::requests).sum::<usize>(), 1_100);
        assert_eq!(jobs.iter().filter(|j| j.racing == 2).count(), 20);
        assert_eq!(jobs.iter().filter(|j| j.presses == 2).count(), 80);
        let users: std::collections::HashSet<_> = jobs.iter().map(|j| &j.user).collect();
        assert_eq!(users.len(), 1_000);
    }

    #[test]
    fn impossible_mixes_are_refused() {
        let mix = |requests, users| Mix {
            requests,
            users,
            racing_share: 0.0,
        };
        assert!(plan(mix(10, 20), 1, "t", 1).is_err());
        assert!(plan(mix(50, 20), 1, "t", 1).is_err());
        assert!(plan(mix(10, 10), 0, "t", 1).is_err());
    }
}
