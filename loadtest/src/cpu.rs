//! CPU time per request, by process: where a 2-core machine's time goes during one blast.
//!
//! A rate on a shared machine is noisy; CPU time per request is much steadier, and it explains a
//! rate: with everything on the same cores, the accept rate can be no higher than
//! cores ÷ (client + API + Redis CPU per request). The same snapshot around the ceiling's blast
//! gives the client plus a bare axum server, so the two can be compared term by term.

use std::ops::Sub;

use crate::monitor::{cpu_seconds, redis_info};
use crate::scenarios::Context;

/// Cumulative CPU seconds (user + system) of each part, where readable.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSnapshot {
    /// This process: the load generator's clients (and, during the ceiling blast, the ceiling).
    pub client: Option<f64>,
    /// `rushline-api`.
    pub api: Option<f64>,
    /// The workers this run manages (their sum).
    pub workers: Option<f64>,
    /// `redis-server` (`INFO cpu`).
    pub redis: Option<f64>,
    /// The whole machine, every process (`/proc/stat`): PostgreSQL and anything else running.
    pub machine: Option<f64>,
}

/// `/proc/stat` counts in 100 Hz clock ticks.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuSnapshot {
    /// Reads every part now.
    pub async fn take(ctx: &Context) -> Self {
        let workers = ctx
            .workers
            .as_ref()
            .map(|pool| pool.pids().into_iter().filter_map(cpu_seconds).sum::<f64>());
        Self {
            client: cpu_seconds(std::process::id()),
            api: ctx.api_pid.and_then(cpu_seconds),
            workers,
            redis: redis_cpu_seconds(ctx).await,
            machine: machine_busy_seconds(),
        }
    }

    /// Each part's CPU microseconds per request over `requests` requests, as named figures
    /// (`cpu_us_per_req_<label>_<part>`); parts that could not be read are left out.
    pub fn per_request(&self, requests: usize, label: &str) -> Vec<(String, f64)> {
        let n = requests.max(1) as f64;
        [
            ("client", self.client),
            ("api", self.api),
            ("workers", self.workers),
            ("redis", self.redis),
            ("machine", self.machine),
        ]
        .into_iter()
        .filter_map(|(part, seconds)| {
            seconds.map(|s| (format!("cpu_us_per_req_{label}_{part}"), s * 1e6 / n))
        })
        .collect()
    }
}

impl Sub for CpuSnapshot {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?).filter(|d| *d >= 0.0);
        Self {
            client: delta(self.client, earlier.client),
            api: delta(self.api, earlier.api),
            workers: delta(self.workers, earlier.workers),
            redis: delta(self.redis, earlier.redis),
            machine: delta(self.machine, earlier.machine),
        }
    }
}

/// `used_cpu_user + used_cpu_sys` of the Redis server (on a cluster: of all its nodes listed), in
/// seconds.
async fn redis_cpu_seconds(ctx: &Context) -> Option<f64> {
    redis_info(ctx.redis_url.as_deref(), "cpu")
        .await?
        .iter()
        .map(|info| parse_redis_cpu(info))
        .sum()
}

fn parse_redis_cpu(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("used_cpu_user:")? + field("used_cpu_sys:")?)
}

/// Busy CPU seconds of the whole machine since boot (`/proc/stat`: all but idle and iowait).
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_busy(&stat)
}

fn parse_machine_busy(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_and_machine_counters() {
        let info =
            "# CPU\r\nused_cpu_sys:1.50\r\nused_cpu_user:2.25\r\nused_cpu_sys_children:9\r\n";
        assert_eq!(parse_redis_cpu(info), Some(3.75));
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_machine_busy(stat), Some(1.6));
        assert_eq!(parse_machine_busy("intr 1 2 3\n"), None);
    }

    #[test]
    fn per_request_figures_skip_unreadable_parts() {
        let delta = CpuSnapshot {
            client: Some(0.5),
            api: Some(1.0),
            redis: None,
            ..CpuSnapshot::default()
        };
        let figures = delta.per_request(100_000, "paused");
        assert_eq!(
            figures,
            vec![
                ("cpu_us_per_req_paused_client".to_owned(), 5.0),
                ("cpu_us_per_req_paused_api".to_owned(), 10.0),
            ]
        );
    }
}
