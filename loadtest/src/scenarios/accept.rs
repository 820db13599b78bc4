//! Accept rate against the bare-axum ceiling (closed loop, workers paused and running), and
//! open-loop latency at half the measured rate.

use std::sync::Arc;

use serde::Serialize;

use super::drops::redis_memory;
use super::{Context, DropSpec, ScenarioReport, finish, prepare};
use crate::LoadError;
use crate::ceiling::{Ceiling, CeilingProcess};
use crate::cpu::CpuSnapshot;
use crate::groups::GroupSizes;
use crate::monitor::cpu_seconds;
use crate::traffic::{BlastConfig, Live, Load, Mix, blast, plan};

/// The accept measurement's numbers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AcceptArgs {
    /// Requests per closed-loop measurement (paused, running, ceiling).
    pub requests: usize,
    /// Client tasks in closed loop (the target names C = 64).
    pub concurrency: usize,
    /// Seconds of open-loop traffic at half the running rate.
    pub open_seconds: f64,
    /// Client tasks carrying the open loop (enough that they are never the bottleneck).
    pub open_concurrency: usize,
}

impl Default for AcceptArgs {
    fn default() -> Self {
        Self {
            requests: 40_000,
            concurrency: 64,
            open_seconds: 10.0,
            open_concurrency: 256,
        }
    }
}

impl AcceptArgs {
    /// Request counts multiplied by `factor`.
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            requests: ((self.requests as f64 * factor).round() as usize).max(100),
            open_seconds: (self.open_seconds * factor.sqrt()).max(2.0),
            ..self
        }
    }
}

/// One campaign that never sells out, one distinct user per request: every request takes the full
/// accept path.
pub(super) fn closed(name: &str, requests: usize, concurrency: usize) -> DropSpec {
    DropSpec {
        name: name.into(),
        campaigns: 1,
        stock: 100_000_000,
        mix: Mix {
            requests,
            users: requests,
            racing_share: 0.0,
        },
        load: Load::Closed { concurrency },
    }
}

/// Redis memory per request of the paused measurement, queued and then decided (until the status
/// records' TTL), from `used_memory` before, between and after.
fn redis_bytes_per_request(
    report: &mut ScenarioReport,
    before: Option<f64>,
    queued: Option<f64>,
    decided: Option<f64>,
    args: &AcceptArgs,
) {
    let requests = args.requests.max(1) as f64;
    if let (Some(before), Some(queued)) = (before, queued) {
        report.figure(
            "redis_bytes_per_queued_request",
            (queued - before) / requests,
        );
    }
    if let (Some(before), Some(decided)) = (before, decided) {
        report.figure(
            "redis_bytes_per_decided_request",
            (decided - before) / requests,
        );
        report.notes.push(
            "redis_bytes_per_queued_request / _decided_request: Redis used_memory growth over \
             the paused measurement, per request, once all were queued and once all were \
             decided and persisted (status records live RUSHLINE_STATUS_TTL_SECS after that); \
             a shared Redis's other keys count too."
                .into(),
        );
    }
}

/// Measures and verifies: closed loop with workers paused (when this run manages them) and
/// running, the ceiling with the same client settings, then open loop at half the running rate.
pub async fn accept(ctx: &mut Context, args: &AcceptArgs) -> Result<ScenarioReport, LoadError> {
    let mut report = ScenarioReport {
        name: "accept".into(),
        description:
            "accept rate vs the bare-axum ceiling (closed loop), p99 at half rate (open loop)"
                .into(),
        params: serde_json::to_value(args).unwrap_or_default(),
        ..ScenarioReport::default()
    };
    let mut body_len = 0;
    if ctx.set_workers(0).await? {
        let prepared = prepare(ctx, &closed("accp", args.requests, args.concurrency)).await?;
        let redis_before = redis_memory(ctx).await;
        let groups = GroupSizes::take(&ctx.api).await;
        let cpu = CpuSnapshot::take(ctx).await;
        let paused = prepared.blast(ctx).await?;
        report.cpu_figures(CpuSnapshot::take(ctx).await - cpu, args.requests, "paused");
        report.group_figures(groups, GroupSizes::take(&ctx.api).await, "paused");
        // Every request is queued now and none decided: what Redis holds per queued request.
        let redis_queued = redis_memory(ctx).await;
        ctx.set_workers(ctx.running_workers).await?;
        let mut part = ScenarioReport::default();
        let run = finish(ctx, paused, &mut part).await?;
        // Every request is decided and persisted now, its status record kept until its TTL.
        let redis_decided = redis_memory(ctx).await;
        redis_bytes_per_request(&mut report, redis_before, redis_queued, redis_decided, args);
        body_len = run.blast.accept_body_len;
        report.figure("accept_rate_paused", part.figures["accept_rate"]);
        report.figure("p99_ms_paused", part.figures["p99_ms"]);
        report.verdict = part.verdict;
    } else {
        report
            .notes
            .push("workers are not managed by this run: the paused measurement was skipped".into());
    }
    let mut part = ScenarioReport::default();
    let prepared = prepare(ctx, &closed("accr", args.requests, args.concurrency)).await?;
    let groups = GroupSizes::take(&ctx.api).await;
    let cpu = CpuSnapshot::take(ctx).await;
    let blasted = prepared.blast(ctx).await?;
    report.cpu_figures(CpuSnapshot::take(ctx).await - cpu, args.requests, "running");
    report.group_figures(groups, GroupSizes::take(&ctx.api).await, "running");
    let run = finish(ctx, blasted, &mut part).await?;
    body_len = body_len.max(run.blast.accept_body_len);
    let running_rate = part.figures["accept_rate"];
    report.figure("accept_rate_running", running_rate);
    report.figure("p99_ms_running", part.figures["p99_ms"]);
    if let Some(rss) = part.figures.get("api_rss_max_mib") {
        report.figure("api_rss_max_mib", *rss);
    }
    // The table and chart show the closed loop with workers running; the open loop is in the
    // figures.
    report.blast = part.blast;
    report.resolve = part.resolve;
    report.traffic = part.traffic;
    report.samples = part.samples;
    if let Some(verdict) = part.verdict.take() {
        report.absorb(verdict);
    }

    let ceiling = Ceiling::start(body_len.max(1)).await?;
    let cpu = CpuSnapshot::take(ctx).await;
    let ceiling_rate = blast_ceiling(ctx, args, &ceiling.base(), "ceil").await?;
    drop(ceiling);
    // The client's line here is the load generator with the ceiling server inside it.
    report.cpu_figures(CpuSnapshot::take(ctx).await - cpu, args.requests, "ceiling");
    report.figure("ceiling_rate", ceiling_rate);
    report.figure("ceiling_body_bytes", body_len as f64);
    report.figure("ratio_running", running_rate / ceiling_rate.max(1e-9));
    if let Some(&paused) = report.figures.get("accept_rate_paused") {
        report.figure("ratio_paused", paused / ceiling_rate.max(1e-9));
    }
    report.notes.push(
        "the ceiling server runs inside the load generator's process (sharing its runtime); \
         rushline runs in its own processes beside Redis, PostgreSQL and the workers"
            .into(),
    );

    // The same server in a process of its own, as rushline's API is: for comparison only.
    match CeilingProcess::spawn(body_len.max(1)).await {
        Ok(process) => {
            let server_cpu = process.pid().and_then(cpu_seconds);
            let cpu = CpuSnapshot::take(ctx).await;
            let rate = blast_ceiling(ctx, args, process.base(), "ceip").await?;
            report.cpu_figures(
                CpuSnapshot::take(ctx).await - cpu,
                args.requests,
                "ceiling_process",
            );
            let n = args.requests.max(1) as f64;
            if let (Some(before), Some(after)) = (server_cpu, process.pid().and_then(cpu_seconds)) {
                report.figure(
                    "cpu_us_per_req_ceiling_process_server",
                    (after - before) * 1e6 / n,
                );
            }
            drop(process);
            report.figure("ceiling_process_rate", rate);
            report.figure("ratio_running_vs_process", running_rate / rate.max(1e-9));
            if let Some(&paused) = report.figures.get("accept_rate_paused") {
                report.figure("ratio_paused_vs_process", paused / rate.max(1e-9));
            }
        }
        Err(e) => report
            .notes
            .push(format!("the ceiling in its own process did not start: {e}")),
    }

    // Open loop at half the running rate: latency from the intended send time.
    let rate = (running_rate / 2.0).max(1.0);
    let requests = ((rate * args.open_seconds) as usize).max(10);
    let spec = DropSpec {
        load: Load::Open {
            concurrency: args.open_concurrency,
            rate,
        },
        ..closed("open", requests, args.open_concurrency)
    };
    let mut part = ScenarioReport::default();
    let blasted = prepare(ctx, &spec).await?.blast(ctx).await?;
    finish(ctx, blasted, &mut part).await?;
    report.figure("open_rate", rate);
    report.figure("open_p99_ms", part.figures["p99_ms"]);
    if let Some(blast) = &part.blast {
        report.figure("open_p50_ms", blast.latency.p50_ms);
    }
    report.absorb_part(&mut part);
    Ok(report)
}

/// One closed-loop blast at a ceiling server (`base`), with the accept measurement's client
/// settings; its accept rate.
async fn blast_ceiling(
    ctx: &Context,
    args: &AcceptArgs,
    base: &str,
    name: &str,
) -> Result<f64, LoadError> {
    let target = ctx.api.with_base(base)?;
    let tag = format!("{}{name}", ctx.tag);
    let blasted = blast(BlastConfig {
        api: &target,
        campaigns: Arc::new(vec!["ceiling".into()]),
        jobs: Arc::new(plan(
            closed(name, args.requests, args.concurrency).mix,
            1,
            &tag,
            1,
        )?),
        load: Load::Closed {
            concurrency: args.concurrency,
        },
        max_duration: ctx.max_duration,
        live: Arc::new(Live::default()),
        progress: ctx.progress,
        tag,
    })
    .await?;
    Ok(blasted.summary().accept_rate)
}
