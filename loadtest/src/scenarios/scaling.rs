//! Worker scaling (S3): a queue pre-filled with workers absent, then drained by 1, 2, 4 workers.
//!
//! Stock equals the request count and every user is distinct, so every decision is an issue and
//! the API's campaign `issued` counts decisions exactly, while PostgreSQL's trigger-kept
//! `campaigns.issued` counts persisted rows exactly.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::{Context, DropSpec, ScenarioReport, finish, prepare};
use crate::LoadError;
use crate::cpu::CpuSnapshot;
use crate::monitor::issued_rows;
use crate::traffic::{Load, Mix};

/// Worker scaling's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingArgs {
    /// Requests pre-filled for each worker count.
    pub requests: usize,
    /// Worker counts to time.
    pub workers: Vec<usize>,
    /// Client tasks for the pre-fill.
    pub concurrency: usize,
}

impl Default for ScalingArgs {
    fn default() -> Self {
        Self {
            requests: 200_000,
            workers: vec![1, 2, 4],
            concurrency: 256,
        }
    }
}

/// For each worker count: pre-fill, start the workers, time decisions and persistence, verify.
pub async fn worker_scaling(
    ctx: &mut Context,
    args: &ScalingArgs,
) -> Result<ScenarioReport, LoadError> {
    let mut report = ScenarioReport {
        name: "worker-scaling".into(),
        description: "worker scaling: decisions/s and rows/s over a pre-filled queue".into(),
        params: serde_json::to_value(args).unwrap_or_default(),
        ..ScenarioReport::default()
    };
    if !ctx.set_workers(0).await? {
        report.notes.push(
            "workers are not managed by this run (--workers 0): worker-scaling skipped".into(),
        );
        return Ok(report);
    }
    for &n in &args.workers {
        ctx.set_workers(0).await?;
        let name = format!("s3w{n}");
        let spec = DropSpec {
            name: name.clone(),
            campaigns: 1,
            stock: args.requests as i64,
            mix: Mix {
                requests: args.requests,
                users: args.requests,
                racing_share: 0.0,
            },
            load: Load::Closed {
                concurrency: args.concurrency,
            },
        };
        let blasted = prepare(ctx, &spec).await?.blast(ctx).await?;
        let campaign = vec![ctx.campaign_id(&name, 0)];
        let accepted = blasted
            .blast()
            .records
            .iter()
            .filter(|r| r.answer.request_id().is_some())
            .count() as i64;
        let cpu = CpuSnapshot::take(ctx).await;
        let started = Instant::now();
        ctx.set_workers(n).await?;
        let deadline = started + ctx.settle + Duration::from_secs(300);
        let (mut decided_s, mut persisted_s) = (None, None);
        while (decided_s.is_none() || persisted_s.is_none()) && Instant::now() < deadline {
            if decided_s.is_none() && ctx.api.campaign(&campaign[0]).await?.issued >= accepted {
                decided_s = Some(started.elapsed().as_secs_f64());
            }
            if persisted_s.is_none() && issued_rows(&ctx.pool, &campaign).await? >= accepted {
                persisted_s = Some(started.elapsed().as_secs_f64());
            }
            // A bounded poll: the drain has no event the client could await.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // CPU per request from the workers' start to the last persisted row (plus the poll's
        // last 50 ms at most); the workers started after the first snapshot, so all theirs counts.
        report.cpu_figures(
            CpuSnapshot::take(ctx).await - cpu,
            accepted.max(0) as usize,
            &name,
        );
        let mut part = ScenarioReport::default();
        finish(ctx, blasted, &mut part).await?;
        match (decided_s, persisted_s) {
            (Some(d), Some(p)) => {
                report.figure(&format!("decisions_per_s_w{n}"), accepted as f64 / d);
                report.figure(&format!("rows_per_s_w{n}"), accepted as f64 / p);
            }
            _ => report.notes.push(format!(
                "{n} workers: the queue of {accepted} did not drain within the deadline"
            )),
        }
        report.figure(
            &format!("peak_rows_per_s_w{n}"),
            part.figures.get("peak_rows_per_s").copied().unwrap_or(0.0),
        );
        report.figure(
            &format!("prefill_rate_w{n}"),
            part.figures.get("accept_rate").copied().unwrap_or(0.0),
        );
        let offset = report.samples.last().map_or(0.0, |s| s.t);
        report.samples.extend(part.samples.into_iter().map(|mut s| {
            s.t += offset;
            s
        }));
        if let Some(verdict) = part.verdict.take() {
            report.absorb(verdict);
        }
    }
    report.notes.push(
        "decisions/s and rows/s include worker process start-up (a few ms) and are timed from \
         the moment the workers were started to the last decision / the last persisted row"
            .into(),
    );
    ctx.set_workers(ctx.running_workers).await?;
    Ok(report)
}
