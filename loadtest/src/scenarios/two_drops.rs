//! Two drops at once (issue 10 §5): a spike on campaign A while campaign B gets a modest steady
//! stream. Does B wait for A? The figure is B's time to final (server `decided_at` minus the
//! client's send instant) at p50/p99, beside A's; a worker that stays on A's backlog until it is
//! empty shows as B's p99 growing to the length of A's spike.

use serde::Serialize;

use super::{Context, DropSpec, ScenarioReport, finish, prepare};
use crate::LoadError;
use crate::traffic::{Load, Mix};

/// The spike on A and the stream on B.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TwoDropsArgs {
    /// Requests on A (closed loop).
    pub spike_requests: usize,
    /// Distinct users on A (the rest are repeat presses and racing retries).
    pub spike_users: usize,
    /// A's stock.
    pub spike_stock: i64,
    /// Client tasks on A.
    pub spike_concurrency: usize,
    /// Requests per second on B (open loop, one distinct user each).
    pub steady_rate: f64,
    /// Seconds B's stream lasts.
    pub steady_seconds: f64,
    /// B's stock.
    pub steady_stock: i64,
}

impl Default for TwoDropsArgs {
    /// A: 100,000 requests from 95,000 users, stock 5,000, C = 256. B: 100 requests/s for 20 s,
    /// stock 1,000 (both issue and sell out).
    fn default() -> Self {
        Self {
            spike_requests: 100_000,
            spike_users: 95_000,
            spike_stock: 5_000,
            spike_concurrency: 256,
            steady_rate: 100.0,
            steady_seconds: 20.0,
            steady_stock: 1_000,
        }
    }
}

impl TwoDropsArgs {
    /// A's counts and stock multiplied by `factor`, B's duration by its square root (B's rate
    /// stays: it is the "modest" in modest steady stream).
    pub fn scaled(self, factor: f64) -> Self {
        let scale = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        Self {
            spike_requests: scale(self.spike_requests),
            spike_users: scale(self.spike_users),
            spike_stock: (self.spike_stock as f64 * factor).round().max(1.0) as i64,
            steady_seconds: (self.steady_seconds * factor.sqrt()).max(1.0),
            steady_stock: (self.steady_stock as f64 * factor.sqrt()).round().max(1.0) as i64,
            ..self
        }
    }

    fn steady_requests(&self) -> usize {
        ((self.steady_rate * self.steady_seconds).round() as usize).max(1)
    }
}

/// Blasts A (closed loop) and B (open loop) at the same moment, resolves and verifies both, and
/// reports each one's time to final. The report's blast, traffic and samples are A's; the
/// verdict covers both campaigns.
pub async fn two_drops(ctx: &Context, args: &TwoDropsArgs) -> Result<ScenarioReport, LoadError> {
    let mut report = ScenarioReport {
        name: "two-drops".into(),
        description: "a spike on campaign A and a modest steady stream on campaign B at once; \
                      B's time to final must not wait for A's backlog"
            .into(),
        params: serde_json::to_value(args).unwrap_or_default(),
        ..ScenarioReport::default()
    };
    let spike = DropSpec {
        name: "two-drops-a".into(),
        campaigns: 1,
        stock: args.spike_stock,
        mix: Mix {
            requests: args.spike_requests,
            users: args.spike_users.min(args.spike_requests),
            racing_share: 0.1,
        },
        load: Load::Closed {
            concurrency: args.spike_concurrency,
        },
    };
    let steady_requests = args.steady_requests();
    let steady = DropSpec {
        name: "two-drops-b".into(),
        campaigns: 1,
        stock: args.steady_stock,
        mix: Mix {
            requests: steady_requests,
            users: steady_requests,
            racing_share: 0.0,
        },
        // Enough carriers that B's pace holds while each of its requests waits on a busy API.
        load: Load::Open {
            concurrency: 32,
            rate: args.steady_rate,
        },
    };
    let (a, b) = tokio::try_join!(prepare(ctx, &spike), prepare(ctx, &steady))?;
    let (a, b) = tokio::try_join!(a.blast(ctx), b.blast(ctx))?;
    let mut b_report = ScenarioReport::default();
    let (_, b_run) = tokio::try_join!(finish(ctx, a, &mut report), finish(ctx, b, &mut b_report))?;
    for (side, figures) in [
        ("a", report.figures.clone()),
        ("b", b_report.figures.clone()),
    ] {
        for name in ["final_p50_ms", "final_p99_ms", "accept_rate", "p99_ms"] {
            if let Some(value) = figures.get(name) {
                report.figure(&format!("{side}_{name}"), *value);
            }
        }
    }
    // Both monitors sampled the same API: its peak is the higher of the two.
    report.absorb_part(&mut b_report);
    report.figure("b_seconds", b_run.blast.elapsed.as_secs_f64());
    report.notes.push(format!(
        "A: {} requests closed loop (C={}) on one campaign; B: {steady_requests} requests open \
         loop at {}/s on another, started with A. Time to final = the server's decided_at minus \
         the client's send instant, per request id. The report's blast, traffic and samples are \
         A's; the verdict covers both.",
        args.spike_requests, args.spike_concurrency, args.steady_rate
    ));
    Ok(report)
}
