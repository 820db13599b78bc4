//! The scenarios of issue 4, each a function from a [`Context`] to a [`ScenarioReport`].
//!
//! Most are a *drop* ([`run_drop`]): create campaigns, blast a plan, resolve every id, verify
//! every guarantee. [`accept`] measures the accept rate against the bare-axum ceiling and the
//! open-loop latency at half of it; [`scaling`] times decisions over a pre-filled queue with
//! 1, 2, 4 workers; [`waiting_room`] storms a campaign's waiting room (issue 12). Counts come from
//! the caller, so every scenario can be scaled down.

pub mod accept;
pub mod drops;
pub mod scaling;
pub mod two_drops;
pub mod waiting_room;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rushline_queue::Queue;
use serde::Serialize;
use sqlx::PgPool;

use crate::LoadError;
use crate::api::Api;
use crate::cpu::CpuSnapshot;
use crate::monitor::{Monitor, Sample, Watch, peak_rates};
use crate::resolve::{ResolveSummary, resolve};
use crate::traffic::{
    Blast, BlastConfig, BlastSummary, Job, Live, Load, Mix, TrafficPoint, blast, plan,
};
use crate::verify::{Verdict, verify};
use crate::workers::WorkerPool;

pub use accept::{AcceptArgs, accept};
pub use drops::{DropArgs, many_campaigns, presale, smoke, sold_out_storm};
pub use scaling::{ScalingArgs, worker_scaling};
pub use two_drops::{TwoDropsArgs, two_drops};
pub use waiting_room::{WaitingRoomStormArgs, waiting_room_storm};

/// Everything a scenario needs to reach the stack.
pub struct Context {
    /// The API under test.
    pub api: Api,
    /// The record, read directly.
    pub pool: PgPool,
    /// Redis (queue depth, memory), when reachable.
    pub queue: Option<Queue>,
    /// Redis URL for `INFO memory` and key counts, when reachable.
    pub redis_url: Option<String>,
    /// The deployment's key namespace (keys start with `rushline:<namespace>:`).
    pub key_namespace: Option<String>,
    /// The API's process id (resident memory, idle CPU).
    pub api_pid: Option<u32>,
    /// Worker processes this run manages; `None` when workers run outside its control.
    pub workers: Option<WorkerPool>,
    /// Workers to run when not paused (managed pools only).
    pub running_workers: usize,
    /// Keeps campaign ids, users and idempotency keys of this run apart from others.
    pub tag: String,
    /// Show progress bars.
    pub progress: bool,
    /// Upper bound on any one blast.
    pub max_duration: Duration,
    /// Status polls in flight while resolving.
    pub resolve_concurrency: usize,
    /// How long to wait for the record to hold every answered request.
    pub settle: Duration,
    /// Time between monitor samples (stretched for many campaigns, so watching stays cheap).
    pub sample_every: Duration,
    /// The stack's `RUSHLINE_STATUS_TTL_SECS`, when known and short enough (≤ 120 s) to wait
    /// for: the sold-out storm then checks Redis memory again once refused requests' records expired.
    pub status_ttl: Option<Duration>,
}

impl Context {
    /// Campaign id `lt-<tag>-<scenario>-<i>`.
    pub fn campaign_id(&self, scenario: &str, i: usize) -> String {
        format!("lt-{}-{scenario}-{i}", self.tag)
    }

    /// Sets the managed worker count; a no-op (returning false) when workers are external.
    pub async fn set_workers(&mut self, n: usize) -> Result<bool, LoadError> {
        match &mut self.workers {
            Some(pool) => pool.set(n).await.map(|()| true),
            None => Ok(false),
        }
    }

    fn watch(&self, campaigns: usize) -> Watch {
        // One API GET and two Redis reads per campaign per sample: past 25 campaigns, sample
        // less often rather than load the stack being measured.
        let stretch = (campaigns / 25).max(1) as u32;
        Watch {
            api: self.api.clone(),
            pool: self.pool.clone(),
            queue: self.queue.clone(),
            api_pid: self.api_pid,
            every: self.sample_every * stretch,
        }
    }
}

/// One scenario's outcome: what the JSON report holds per scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioReport {
    /// Scenario name (`smoke`, `accept`, `presale` …).
    pub name: String,
    /// What it models.
    pub description: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// Headline figures (what the summary table prints).
    pub figures: BTreeMap<String, f64>,
    /// The main blast.
    pub blast: Option<BlastSummary>,
    /// Resolution of every request id.
    pub resolve: Option<ResolveSummary>,
    /// The guarantees, checked; `None` when the scenario checks none.
    pub verdict: Option<Verdict>,
    /// Things a reader should know (skipped parts, caveats).
    pub notes: Vec<String>,
    /// Accept rate and latency per time bucket.
    pub traffic: Vec<TrafficPoint>,
    /// Monitor samples.
    pub samples: Vec<Sample>,
    /// The API's peak resident memory against its budget; `None` when not measured (no
    /// `--api-pid`).
    pub memory: Option<MemoryVerdict>,
}

/// The API's resident memory during a scenario, against the budget the issue sets (64 MiB):
/// passing it fails the scenario like a broken guarantee.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryVerdict {
    /// Highest `VmRSS` of the API sampled during the scenario, MiB.
    pub peak_mib: f64,
    /// The budget, MiB (`--max-api-rss-mib`).
    pub limit_mib: f64,
    /// `peak_mib <= limit_mib`.
    pub ok: bool,
}

impl ScenarioReport {
    /// True when no guarantee was violated and the API stayed within its memory budget.
    pub fn ok(&self) -> bool {
        self.verdict.as_ref().is_none_or(Verdict::ok) && self.memory.as_ref().is_none_or(|m| m.ok)
    }

    /// Checks the API's peak resident memory (the highest of every sample taken and of the
    /// `api_rss_max_mib` figure) against `limit_mib`, recording the outcome in `memory` and the
    /// figures; a note says when there was nothing to check.
    pub fn check_api_memory(&mut self, limit_mib: f64) {
        let sampled = self
            .samples
            .iter()
            .filter_map(|s| s.api_rss_kib)
            .max()
            .map(|kib| kib as f64 / 1024.0);
        let peak = match (sampled, self.figures.get("api_rss_max_mib").copied()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let Some(peak_mib) = peak else {
            self.notes
                .push("API memory not measured (no --api-pid): its budget was not checked".into());
            return;
        };
        self.figure("api_rss_max_mib", peak_mib);
        self.figure("api_rss_limit_mib", limit_mib);
        self.memory = Some(MemoryVerdict {
            peak_mib,
            limit_mib,
            ok: peak_mib <= limit_mib,
        });
    }

    fn figure(&mut self, name: &str, value: f64) {
        self.figures.insert(name.into(), value);
    }

    /// The CPU each part used over `requests` requests, as `cpu_us_per_req_<label>_<part>`.
    fn cpu_figures(&mut self, used: CpuSnapshot, requests: usize, label: &str) {
        for (name, value) in used.per_request(requests, label) {
            self.figure(&name, value);
        }
    }

    /// The accept groups the API formed between two reads of its group-size histogram, as
    /// `accept_groups_<label>`, `accept_group_mean_<label>`, `accept_group_median_<label>`
    /// (nothing when either read failed).
    fn group_figures(
        &mut self,
        before: Option<crate::groups::GroupSizes>,
        after: Option<crate::groups::GroupSizes>,
        label: &str,
    ) {
        if let (Some(before), Some(after)) = (before, after) {
            for (name, value) in (after - before).figures(label) {
                self.figure(&name, value);
            }
        }
    }

    /// Takes in a part measured beside this report's main blast: the API's peak RSS (the higher
    /// of the two) and the part's verdict.
    fn absorb_part(&mut self, part: &mut ScenarioReport) {
        if let Some(rss) = part.figures.get("api_rss_max_mib").copied() {
            let mine = self.figures.get("api_rss_max_mib").copied().unwrap_or(0.0);
            self.figure("api_rss_max_mib", rss.max(mine));
        }
        if let Some(verdict) = part.verdict.take() {
            self.absorb(verdict);
        }
    }

    /// Merges another verdict into this report's.
    fn absorb(&mut self, verdict: Verdict) {
        match &mut self.verdict {
            None => self.verdict = Some(verdict),
            Some(mine) => {
                mine.campaigns += verdict.campaigns;
                mine.request_ids += verdict.request_ids;
                mine.rows += verdict.rows;
                mine.issued += verdict.issued;
                mine.settle_seconds += verdict.settle_seconds;
                mine.recorded_without_answer += verdict.recorded_without_answer;
                mine.recorded_without_answer_ids
                    .extend(verdict.recorded_without_answer_ids);
                mine.violations.extend(verdict.violations);
            }
        }
    }
}

/// A drop's shape.
#[derive(Debug, Clone, Serialize)]
pub struct DropSpec {
    /// Scenario name.
    pub name: String,
    /// Campaigns opened at once.
    pub campaigns: usize,
    /// Stock of each campaign.
    pub stock: i64,
    /// Users and requests.
    pub mix: Mix,
    /// Closed or open loop.
    pub load: Load,
}

/// A drop's raw material, for scenarios that look further than the report.
pub struct DropRun {
    /// The blast.
    pub blast: Blast,
    /// Samples taken from the start of the blast to the end of verification.
    pub samples: Vec<Sample>,
}

/// A drop whose campaigns exist and whose monitor runs, not yet blasted.
pub struct Prepared {
    campaigns: Arc<Vec<String>>,
    jobs: Arc<Vec<Job>>,
    live: Arc<Live>,
    monitor: Monitor,
    load: Load,
    tag: String,
}

/// A drop that was blasted, not yet resolved.
pub struct Blasted {
    blast: Blast,
    monitor: Monitor,
}

impl Blasted {
    /// The blast so far.
    pub fn blast(&self) -> &Blast {
        &self.blast
    }
}

/// Creates the campaigns, builds the plan and starts the monitor.
pub async fn prepare(ctx: &Context, spec: &DropSpec) -> Result<Prepared, LoadError> {
    let campaigns: Vec<String> = (0..spec.campaigns)
        .map(|i| ctx.campaign_id(&spec.name, i))
        .collect();
    for id in &campaigns {
        ctx.api.create_campaign(id, spec.stock).await?;
    }
    let campaigns = Arc::new(campaigns);
    let tag = format!("{}{}", ctx.tag, spec.name);
    let jobs = Arc::new(plan(spec.mix, spec.campaigns, &tag, 0x5eed)?);
    let live = Arc::new(Live::default());
    let monitor = Monitor::start(ctx.watch(campaigns.len()), campaigns.clone(), live.clone());
    Ok(Prepared {
        campaigns,
        jobs,
        live,
        monitor,
        load: spec.load,
        tag,
    })
}

impl Prepared {
    /// Sends the plan.
    pub async fn blast(self, ctx: &Context) -> Result<Blasted, LoadError> {
        let blast = blast(BlastConfig {
            api: &ctx.api,
            campaigns: self.campaigns,
            jobs: self.jobs,
            load: self.load,
            max_duration: ctx.max_duration,
            live: self.live,
            progress: ctx.progress,
            tag: self.tag,
        })
        .await?;
        Ok(Blasted {
            blast,
            monitor: self.monitor,
        })
    }
}

/// Resolves every id, verifies every guarantee and fills `report` (blast, resolve, verdict,
/// traffic, samples, headline figures).
pub async fn finish(
    ctx: &Context,
    blasted: Blasted,
    report: &mut ScenarioReport,
) -> Result<DropRun, LoadError> {
    let Blasted { blast, monitor } = blasted;
    let resolved = resolve(
        &ctx.api,
        &blast,
        ctx.resolve_concurrency,
        ctx.settle + Duration::from_secs(60),
    )
    .await;
    let verdict = verify(&ctx.api, &ctx.pool, &blast, &resolved, ctx.settle).await?;
    let samples = monitor.stop().await;
    let summary = blast.summary();
    report.figure("accept_rate", summary.accept_rate);
    report.figure("p99_ms", summary.latency.p99_ms);
    if let Some(ratio) = resolved.summary.final_over_post {
        report.figure("final_over_post", ratio);
    }
    if resolved.summary.time_to_final.count > 0 {
        report.figure("final_p50_ms", resolved.summary.time_to_final.p50_ms);
        report.figure("final_p99_ms", resolved.summary.time_to_final.p99_ms);
    }
    if let Some(rss) = samples.iter().filter_map(|s| s.api_rss_kib).max() {
        report.figure("api_rss_max_mib", rss as f64 / 1024.0);
    }
    let (decisions, rows) = peak_rates(&samples, 4);
    report.figure("peak_issued_per_s", decisions);
    report.figure("peak_rows_per_s", rows);
    let bucket = if blast.elapsed > Duration::from_secs(20) {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(250)
    };
    report.traffic = blast.timeline(bucket);
    report.blast = Some(summary);
    report.resolve = Some(resolved.summary);
    report.absorb(verdict);
    report.samples.clone_from(&samples);
    Ok(DropRun { blast, samples })
}

/// [`prepare`], blast and [`finish`] in one go.
pub async fn run_drop(
    ctx: &Context,
    spec: &DropSpec,
    report: &mut ScenarioReport,
) -> Result<DropRun, LoadError> {
    let blasted = prepare(ctx, spec).await?.blast(ctx).await?;
    finish(ctx, blasted, report).await
}

/// The machine's 1-minute load average (`/proc/loadavg`): the stack shares 2 cores with
/// whatever else runs, and the figures are only as good as that was quiet.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_rss(mib: &[u64]) -> ScenarioReport {
        ScenarioReport {
            name: "s1".into(),
            samples: mib
                .iter()
                .map(|m| Sample {
                    api_rss_kib: Some(m * 1024),
                    ..Sample::default()
                })
                .collect(),
            ..ScenarioReport::default()
        }
    }

    #[test]
    fn an_api_over_its_memory_budget_fails_the_verdict() {
        let mut report = with_rss(&[40, 71, 55]);
        report.check_api_memory(64.0);
        let memory = report.memory.as_ref().expect("memory checked");
        assert_eq!(memory.peak_mib, 71.0);
        assert!(!memory.ok);
        assert!(!report.ok());
        assert_eq!(report.figures["api_rss_limit_mib"], 64.0);
        let table = crate::report::summary(std::slice::from_ref(&report));
        assert!(table.contains("FAIL(rss)"), "{table}");
        assert!(
            table.contains("71.0 MiB is over its 64 MiB budget"),
            "{table}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["memory"]["limit_mib"], 64.0);
        assert_eq!(json["memory"]["ok"], false);
    }

    #[test]
    fn an_api_within_its_budget_passes_and_an_unmeasured_one_is_noted() {
        let mut within = with_rss(&[40, 63]);
        within.check_api_memory(64.0);
        assert!(within.ok());
        // A figure taken elsewhere (the accept scenario's parts) counts too.
        let mut figure_only = with_rss(&[]);
        figure_only.figures.insert("api_rss_max_mib".into(), 65.0);
        figure_only.check_api_memory(64.0);
        assert!(!figure_only.ok());

        let mut unmeasured = with_rss(&[]);
        unmeasured.check_api_memory(64.0);
        assert!(unmeasured.memory.is_none());
        assert!(unmeasured.ok());
        assert!(unmeasured.notes.iter().any(|n| n.contains("not measured")));
    }
}
