//! Samples the system while a scenario runs: decisions (the API's campaign `issued`, and
//! `accepted − queue depth`), queue depth and undecided-but-unpersisted log entries in Redis,
//! persisted rows in PostgreSQL, and the API's resident memory.
//!
//! Sampling is cheap by construction: one `GET` per campaign, one `LLEN`/`XLEN` per campaign,
//! one row count per sample from `pg_stat_user_tables` (a counter, not a scan) plus the
//! trigger-kept `campaigns.issued`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rushline_domain::CampaignId;
use rushline_queue::Queue;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::Api;
use crate::traffic::Live;

/// One sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds since the monitor started.
    pub t: f64,
    /// Sum of the API's `issued` over the campaigns.
    pub issued_api: i64,
    /// Sum of `campaigns.issued` in PostgreSQL (persisted issued rows).
    pub issued_pg: i64,
    /// Rows inserted into `requests` since the monitor started (from table statistics, which
    /// PostgreSQL flushes about once a second).
    pub rows_pg: i64,
    /// Requests waiting in the campaigns' queues.
    pub queue_depth: Option<u64>,
    /// Decided batches not yet persisted (decision log entries).
    pub log_depth: Option<u64>,
    /// `202`s the clients had received.
    pub accepted: u64,
    /// Answers the clients had received.
    pub answered: u64,
    /// API resident set, KiB.
    pub api_rss_kib: Option<u64>,
}

/// A running monitor; [`Monitor::stop`] returns its samples.
pub struct Monitor {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
}

/// What the monitor watches.
#[derive(Clone)]
pub struct Watch {
    /// The API.
    pub api: Api,
    /// The record.
    pub pool: PgPool,
    /// Redis, when the run can reach it (queue depth).
    pub queue: Option<Queue>,
    /// The API process, for its resident memory.
    pub api_pid: Option<u32>,
    /// Time between samples.
    pub every: Duration,
}

impl Monitor {
    /// Starts sampling `campaigns` with the client counters in `live`.
    pub fn start(watch: Watch, campaigns: Arc<Vec<String>>, live: Arc<Live>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let base_rows = inserted_rows(&watch.pool).await.unwrap_or(0);
            let ids: Vec<CampaignId> = campaigns
                .iter()
                .filter_map(|c| CampaignId::parse(c).ok())
                .collect();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(watch.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let mut sample = Sample {
                    t: started.elapsed().as_secs_f64(),
                    accepted: live.accepted.load(Ordering::Relaxed),
                    answered: live.answered.load(Ordering::Relaxed),
                    api_rss_kib: watch.api_pid.and_then(rss_kib),
                    ..Sample::default()
                };
                for campaign in campaigns.iter() {
                    if let Ok(view) = watch.api.campaign(campaign).await {
                        sample.issued_api += view.issued;
                    }
                }
                sample.issued_pg = issued_rows(&watch.pool, &campaigns).await.unwrap_or(0);
                sample.rows_pg = inserted_rows(&watch.pool).await.unwrap_or(0) - base_rows;
                if let Some(queue) = &watch.queue {
                    let (mut depth, mut log) = (Some(0u64), Some(0u64));
                    for id in &ids {
                        depth = match (depth, queue.queue_len(id).await) {
                            (Some(d), Ok(n)) => Some(d + n),
                            _ => None,
                        };
                        log = match (log, queue.log_len(id).await) {
                            (Some(d), Ok(n)) => Some(d + n),
                            _ => None,
                        };
                    }
                    sample.queue_depth = depth;
                    sample.log_depth = log;
                }
                samples.push(sample);
            }
            samples
        });
        Self { stop, task }
    }

    /// Stops sampling and returns the samples.
    pub async fn stop(self) -> Vec<Sample> {
        // The receiver lives in the task until it returns; a send error means it already ended.
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Sum of the trigger-kept `campaigns.issued` (exact persisted issued rows).
pub async fn issued_rows(pool: &PgPool, campaigns: &[String]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(sum(issued), 0)::bigint FROM campaigns WHERE id = ANY($1)")
        .bind(campaigns)
        .fetch_one(pool)
        .await
}

/// Rows ever inserted into `requests` (table statistics; cheap, lags up to about a second).
pub async fn inserted_rows(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(n_tup_ins), 0)::bigint FROM pg_stat_user_tables WHERE relname = 'requests'",
    )
    .fetch_one(pool)
    .await
}

/// Resident set of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// One section of Redis's `INFO`, when Redis is reachable: one reply per node of a Redis Cluster
/// URL list (masters and replicas: all their work is the request's cost), else one.
pub async fn redis_info(redis_url: Option<&str>, section: &str) -> Option<Vec<String>> {
    let mut replies = Vec::new();
    for url in redis_url?
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        replies.push(
            redis::cmd("INFO")
                .arg(section)
                .query_async(&mut conn)
                .await
                .ok()?,
        );
    }
    Some(replies)
}

/// CPU time (user + system) `pid` has used, in seconds: Linux counts it in 100 Hz clock ticks.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_ticks(pid).map(|ticks| ticks as f64 / 100.0)
}

/// CPU time (user + system) `pid` has used, in clock ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Highest decision and persistence rates seen over any window of `window` samples.
pub fn peak_rates(samples: &[Sample], window: usize) -> (f64, f64) {
    let window = window.max(1);
    let mut best = (0.0f64, 0.0f64);
    for pair in samples.windows(window + 1) {
        let (a, b) = (&pair[0], &pair[window]);
        let dt = (b.t - a.t).max(1e-6);
        best.0 = best.0.max((b.issued_api - a.issued_api) as f64 / dt);
        best.1 = best.1.max((b.rows_pg - a.rows_pg) as f64 / dt);
    }
    best
}
