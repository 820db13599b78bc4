//! Sending a plan: C tasks take jobs from a shared counter and keep every request's instants.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Job, Load};
use crate::LoadError;
use crate::api::{Api, IssueAnswer};

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
