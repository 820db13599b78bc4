//! `rushline-loadtest`: runs scenarios against a rushline stack on this machine, verifies every
//! guarantee, writes the report, and exits non-zero when any guarantee was violated or the API's
//! resident memory passed its budget (`--max-api-rss-mib`, default 64).
//!
//! `main` only wires: parse flags, connect, run the chosen scenarios, write the report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use rushline_domain::DecideMode;
use rushline_loadtest::api::Api;
use rushline_loadtest::monitor::cpu_seconds;
use rushline_loadtest::report;
use rushline_loadtest::scenarios::{
    self, AcceptArgs, Context, DropArgs, ScalingArgs, ScenarioReport, TwoDropsArgs,
    WaitingRoomStormArgs,
};
use rushline_loadtest::workers::WorkerPool;
use rushline_queue::{Queue, QueueConfig};
use sqlx::postgres::PgPoolOptions;

/// Spike traffic against a local rushline, with every guarantee verified.
#[derive(Debug, Parser)]
#[command(name = "rushline-loadtest", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Args)]
struct Global {
    /// The API's base URL (loopback only).
    #[arg(
        long,
        env = "RUSHLINE_LOADTEST_API",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    api_url: String,
    /// Admin bearer token (to create campaigns).
    #[arg(
        long,
        env = "RUSHLINE_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// PostgreSQL the API persists to (read directly to verify).
    #[arg(
        long,
        env = "RUSHLINE_DATABASE_URL",
        default_value = "postgres://rushline:rushline@127.0.0.1:5432/rushline",
        global = true
    )]
    database_url: String,
    /// Redis the API uses (queue depth and memory; optional).
    #[arg(
        long,
        env = "RUSHLINE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    /// `1`: the one Redis URL is a Redis Cluster node (a comma-separated list is a cluster anyway).
    #[arg(
        long,
        env = "RUSHLINE_REDIS_CLUSTER",
        default_value = "0",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
        global = true
    )]
    redis_cluster: bool,
    /// The deployment's Redis key namespace, if any.
    #[arg(long, env = "RUSHLINE_KEY_NAMESPACE", global = true)]
    key_namespace: Option<String>,
    /// The API's process id (resident memory, idle CPU).
    #[arg(long, global = true)]
    api_pid: Option<u32>,
    /// Worker processes this run starts and manages (0: workers run elsewhere; the paused
    /// measurement and S3 are then skipped).
    #[arg(long, default_value_t = 0, global = true)]
    workers: usize,
    /// The worker binary to start.
    #[arg(long, default_value = "target/release/rushline-worker", global = true)]
    worker_bin: PathBuf,
    /// Where the report (report.json, <scenario>.svg, summary.txt, worker logs) is written.
    #[arg(long, default_value = "loadtest/report", global = true)]
    report_dir: PathBuf,
    /// Upper bound on any one blast, seconds.
    #[arg(long, default_value_t = 600, global = true)]
    max_seconds: u64,
    /// Status polls in flight while resolving.
    #[arg(long, default_value_t = 512, global = true)]
    resolve_concurrency: usize,
    /// Seconds to wait for PostgreSQL to hold every answered request before verifying.
    #[arg(long, default_value_t = 120, global = true)]
    settle_seconds: u64,
    /// The stack's status TTL; when ≤ 120 s, S2 waits it out and measures Redis memory again.
    #[arg(long, env = "RUSHLINE_STATUS_TTL_SECS", global = true)]
    status_ttl_secs: Option<u64>,
    /// The API's resident-memory budget, MiB: a scenario during which the API's sampled peak
    /// RSS (`--api-pid`) passes it fails its verdict.
    #[arg(
        long,
        env = "RUSHLINE_LOADTEST_MAX_API_RSS_MIB",
        default_value_t = 64.0,
        global = true
    )]
    max_api_rss_mib: f64,
    /// Who decides the requests of every campaign the run creates: `queued` (workers decide, the
    /// API answers 202) or `instant` (the accept step decides, the API answers 200 with the
    /// final status; workers only persist). Recorded in each scenario's params.
    #[arg(
        long,
        env = "RUSHLINE_LOADTEST_DECIDE",
        default_value = "queued",
        value_parser = parse_decide,
        global = true
    )]
    decide: DecideMode,
    /// Hide progress bars.
    #[arg(long, global = true)]
    quiet: bool,
}

fn parse_decide(value: &str) -> Result<DecideMode, String> {
    DecideMode::parse(value).map_err(|e| e.to_string())
}

/// Records the run's decide mode in a scenario's params (and in its notes when instant, where
/// the figures mean something else: decisions are made at accept, workers only persist).
fn stamp_decide(report: &mut ScenarioReport, decide: DecideMode) {
    match &mut report.params {
        serde_json::Value::Object(params) => {
            params.insert("decide".into(), decide.as_str().into());
        }
        serde_json::Value::Null => {
            report.params = serde_json::json!({"decide": decide.as_str()});
        }
        _ => {}
    }
    if decide == DecideMode::Instant {
        report.notes.push(
            "campaigns created with \"decide\": \"instant\": the accept step decides, the API \
             answers 200 with the final status, workers only persist"
                .into(),
        );
    }
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// A few thousand requests; guarantees only.
    Smoke(DropFlags),
    /// Accept rate vs the bare-axum ceiling (C=64, workers paused and running), p99 at half rate.
    Accept(AcceptFlags),
    /// Concert presale (alias s1): stock 10,000; 200,000 requests from 180,000 users; C=256.
    #[command(alias = "s1")]
    Presale(DropFlags),
    /// Sold-out storm (alias s2): stock 1,000; 500,000 requests.
    #[command(alias = "s2")]
    SoldOutStorm(DropFlags),
    /// Worker scaling (alias s3): 1, 2, 4 workers over a pre-filled queue of 200,000.
    #[command(alias = "s3")]
    WorkerScaling(ScalingFlags),
    /// Many campaigns (alias s4): 100 campaigns × 2,000 requests.
    #[command(alias = "s4")]
    ManyCampaigns(DropFlags),
    /// Two drops at once: a spike on campaign A while campaign B gets a steady stream; B's and
    /// A's time to final.
    TwoDrops(TwoDropsFlags),
    /// Waiting-room storm (issue 12): 200,000 joins (20,000 pre-queued), status polls from all
    /// while admission runs, ticketed posts; against an accept blast of the same run.
    WaitingRoomStorm(StormFlags),
    /// Serves the ceiling in this process until standard input closes (the accept scenario
    /// starts it as a child to measure a ceiling in a process of its own).
    #[command(hide = true)]
    CeilingServer {
        /// Response body size in bytes.
        #[arg(long)]
        body_len: usize,
    },
    /// accept, presale, sold-out-storm, worker-scaling, many-campaigns, two-drops,
    /// waiting-room-storm in turn, every count multiplied by --scale.
    All {
        /// Multiplies every request count (and stock) of every scenario.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
}

/// Overrides of a drop's defaults.
#[derive(Debug, Args)]
struct DropFlags {
    /// Requests in total.
    #[arg(long)]
    requests: Option<usize>,
    /// Distinct users.
    #[arg(long)]
    users: Option<usize>,
    /// Stock per campaign.
    #[arg(long)]
    stock: Option<i64>,
    /// Campaigns opened at once.
    #[arg(long)]
    campaigns: Option<usize>,
    /// Client tasks (connections).
    #[arg(long, short = 'c')]
    concurrency: Option<usize>,
    /// Share of the extra requests sent as racing retries (0..1).
    #[arg(long)]
    racing_share: Option<f64>,
    /// Multiplies requests, users and stock of the defaults (before the overrides above).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

impl DropFlags {
    fn apply(&self, defaults: DropArgs) -> DropArgs {
        let base = defaults.scaled(self.scale);
        DropArgs {
            requests: self.requests.unwrap_or(base.requests),
            users: self.users.unwrap_or(base.users),
            stock: self.stock.unwrap_or(base.stock),
            campaigns: self.campaigns.unwrap_or(base.campaigns),
            concurrency: self.concurrency.unwrap_or(base.concurrency),
            racing_share: self.racing_share.unwrap_or(base.racing_share),
        }
    }
}

/// Overrides of the two-drops defaults.
#[derive(Debug, Args)]
struct TwoDropsFlags {
    /// Requests on campaign A (the spike, closed loop).
    #[arg(long, default_value_t = TwoDropsArgs::default().spike_requests)]
    requests: usize,
    /// Client tasks on A.
    #[arg(long, short = 'c', default_value_t = TwoDropsArgs::default().spike_concurrency)]
    concurrency: usize,
    /// Requests per second on campaign B (the steady stream, open loop).
    #[arg(long, default_value_t = TwoDropsArgs::default().steady_rate)]
    steady_rate: f64,
    /// Seconds B's stream lasts.
    #[arg(long, default_value_t = TwoDropsArgs::default().steady_seconds)]
    steady_seconds: f64,
    /// Multiplies A's requests, users and stock (B's duration by its square root) after the
    /// flags above.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

impl TwoDropsFlags {
    fn args(&self) -> TwoDropsArgs {
        let defaults = TwoDropsArgs::default();
        // Keep A's mix (users per request) and stock share when --requests changes its size.
        let resize = self.requests as f64 / defaults.spike_requests as f64;
        TwoDropsArgs {
            spike_requests: self.requests,
            spike_users: (defaults.spike_users as f64 * resize).round() as usize,
            spike_stock: (defaults.spike_stock as f64 * resize).round().max(1.0) as i64,
            spike_concurrency: self.concurrency,
            steady_rate: self.steady_rate,
            steady_seconds: self.steady_seconds,
            ..defaults
        }
        .scaled(self.scale)
    }
}

/// Overrides of the waiting-room storm's defaults.
#[derive(Debug, Args)]
struct StormFlags {
    /// Distinct users joining (pre-queued ones included).
    #[arg(long, default_value_t = WaitingRoomStormArgs::default().joins)]
    users: usize,
    /// Of those, how many join during the pre-queue, before the opening.
    #[arg(long, default_value_t = WaitingRoomStormArgs::default().prequeue_joins)]
    prequeued: usize,
    /// The campaign's admit_per_second.
    #[arg(long, default_value_t = WaitingRoomStormArgs::default().admit_per_second)]
    admit_per_second: u32,
    /// Client tasks for the accept reference, the joins and the poll window.
    #[arg(long, short = 'c', default_value_t = WaitingRoomStormArgs::default().concurrency)]
    concurrency: usize,
    /// Requests in the accept reference blast.
    #[arg(long, default_value_t = WaitingRoomStormArgs::default().accept_requests)]
    accept_requests: usize,
    /// Seconds of the closed-loop poll window.
    #[arg(long, default_value_t = WaitingRoomStormArgs::default().poll_seconds)]
    poll_seconds: f64,
    /// Every N-th user sends one post that must be refused (0: none).
    #[arg(long, default_value_t = WaitingRoomStormArgs::default().probe_every)]
    probe_every: usize,
    /// Multiplies users, pre-queued users and accept requests (the poll window by its square
    /// root) after the flags above.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

impl StormFlags {
    fn args(&self) -> WaitingRoomStormArgs {
        WaitingRoomStormArgs {
            joins: self.users,
            prequeue_joins: self.prequeued,
            admit_per_second: self.admit_per_second,
            concurrency: self.concurrency,
            accept_requests: self.accept_requests,
            poll_seconds: self.poll_seconds,
            probe_every: self.probe_every,
            ..WaitingRoomStormArgs::default()
        }
        .scaled(self.scale)
    }
}

#[derive(Debug, Args)]
struct AcceptFlags {
    /// Requests per closed-loop measurement.
    #[arg(long, default_value_t = AcceptArgs::default().requests)]
    requests: usize,
    /// Client tasks in closed loop.
    #[arg(long, short = 'c', default_value_t = AcceptArgs::default().concurrency)]
    concurrency: usize,
    /// Seconds of open loop at half the running rate.
    #[arg(long, default_value_t = AcceptArgs::default().open_seconds)]
    open_seconds: f64,
    /// Multiplies requests (and the open-loop time by its square root) after the flags above.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

#[derive(Debug, Args)]
struct ScalingFlags {
    /// Requests pre-filled per worker count.
    #[arg(long, default_value_t = ScalingArgs::default().requests)]
    requests: usize,
    /// Worker counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    worker_counts: Vec<usize>,
    /// Client tasks for the pre-fill.
    #[arg(long, short = 'c', default_value_t = ScalingArgs::default().concurrency)]
    concurrency: usize,
    /// Multiplies the pre-filled requests.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::CeilingServer { body_len } = cli.scenario {
        return Ok(rushline_loadtest::ceiling::serve_until_stdin_closes(body_len.max(1)).await?);
    }
    let g = &cli.global;
    let api = Api::new(&g.api_url, g.admin_token.clone(), 1024)?.deciding(g.decide);
    anyhow::ensure!(
        api.ready()
            .await
            .with_context(|| format!("reaching {}", g.api_url))?,
        "{} is not ready (GET /readyz)",
        g.api_url
    );
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&g.database_url)
        .await
        .with_context(|| format!("connecting to {}", g.database_url))?;
    let queue = Queue::new(QueueConfig {
        namespace: g.key_namespace.clone(),
        cluster: g.redis_cluster,
        ..QueueConfig::new(g.redis_url.clone())
    })
    .ok();
    std::fs::create_dir_all(&g.report_dir)
        .with_context(|| format!("creating {}", g.report_dir.display()))?;
    let mut workers = None;
    if g.workers > 0 {
        let mut pool = WorkerPool::new(g.worker_bin.clone(), Some(g.report_dir.clone()));
        pool.set(g.workers).await?;
        workers = Some(pool);
    }
    let mut ctx = Context {
        api,
        pool,
        queue,
        redis_url: Some(g.redis_url.clone()),
        key_namespace: g.key_namespace.clone(),
        api_pid: g.api_pid,
        workers,
        running_workers: g.workers,
        tag: format!("{:06x}", rand::random::<u32>() & 0xff_ffff),
        progress: !g.quiet,
        max_duration: Duration::from_secs(g.max_seconds),
        resolve_concurrency: g.resolve_concurrency,
        settle: Duration::from_secs(g.settle_seconds),
        sample_every: Duration::from_millis(250),
        status_ttl: g
            .status_ttl_secs
            .filter(|s| *s <= 120)
            .map(Duration::from_secs),
    };
    let mut reports: Vec<ScenarioReport> = Vec::new();
    let load_before = scenarios::load_average();
    match &cli.scenario {
        Scenario::Smoke(f) => {
            reports.push(scenarios::smoke(&ctx, &f.apply(DropArgs::smoke())).await?)
        }
        Scenario::Accept(f) => {
            let args = AcceptArgs {
                requests: f.requests,
                concurrency: f.concurrency,
                open_seconds: f.open_seconds,
                ..AcceptArgs::default()
            }
            .scaled(f.scale);
            reports.push(scenarios::accept(&mut ctx, &args).await?);
        }
        Scenario::Presale(f) => {
            reports.push(scenarios::presale(&ctx, &f.apply(DropArgs::presale())).await?)
        }
        Scenario::SoldOutStorm(f) => reports
            .push(scenarios::sold_out_storm(&ctx, &f.apply(DropArgs::sold_out_storm())).await?),
        Scenario::WorkerScaling(f) => {
            let args = ScalingArgs {
                requests: ((f.requests as f64 * f.scale) as usize).max(100),
                workers: f.worker_counts.clone(),
                concurrency: f.concurrency,
            };
            reports.push(scenarios::worker_scaling(&mut ctx, &args).await?);
        }
        Scenario::ManyCampaigns(f) => reports
            .push(scenarios::many_campaigns(&ctx, &f.apply(DropArgs::many_campaigns())).await?),
        Scenario::TwoDrops(f) => reports.push(scenarios::two_drops(&ctx, &f.args()).await?),
        Scenario::WaitingRoomStorm(f) => {
            reports.push(scenarios::waiting_room_storm(&ctx, &f.args()).await?)
        }
        // Served before anything was set up.
        Scenario::CeilingServer { .. } => {}
        Scenario::All { scale } => {
            let scale = *scale;
            let steps: [&str; 7] = [
                "accept",
                "presale",
                "sold-out-storm",
                "worker-scaling",
                "many-campaigns",
                "two-drops",
                "waiting-room-storm",
            ];
            for step in steps {
                eprintln!("== {step} (scale {scale})");
                let load_before = scenarios::load_average();
                let mut report = match step {
                    "accept" => {
                        scenarios::accept(&mut ctx, &AcceptArgs::default().scaled(scale)).await?
                    }
                    "presale" => {
                        scenarios::presale(&ctx, &DropArgs::presale().scaled(scale)).await?
                    }
                    "sold-out-storm" => {
                        let args = DropArgs::sold_out_storm().scaled(scale);
                        scenarios::sold_out_storm(&ctx, &args).await?
                    }
                    "worker-scaling" => {
                        let defaults = ScalingArgs::default();
                        let args = ScalingArgs {
                            requests: ((defaults.requests as f64 * scale) as usize).max(100),
                            ..defaults
                        };
                        scenarios::worker_scaling(&mut ctx, &args).await?
                    }
                    "many-campaigns" => {
                        let args = DropArgs::many_campaigns().scaled(scale);
                        scenarios::many_campaigns(&ctx, &args).await?
                    }
                    "two-drops" => {
                        let args = TwoDropsArgs::default().scaled(scale);
                        scenarios::two_drops(&ctx, &args).await?
                    }
                    _ => {
                        let args = WaitingRoomStormArgs::default().scaled(scale);
                        scenarios::waiting_room_storm(&ctx, &args).await?
                    }
                };
                for (name, value) in [
                    ("loadavg_before", load_before),
                    ("loadavg_after", scenarios::load_average()),
                ] {
                    if let Some(value) = value {
                        report.figures.insert(name.into(), value);
                    }
                }
                report.check_api_memory(g.max_api_rss_mib);
                eprint!("{}", report::summary(std::slice::from_ref(&report)));
                reports.push(report);
            }
        }
    }
    if !matches!(cli.scenario, Scenario::All { .. })
        && let Some(report) = reports.last_mut()
    {
        stamp_load(report, load_before);
        report.check_api_memory(g.max_api_rss_mib);
    }
    if let (Some(pid), Some(last)) = (ctx.api_pid, reports.last_mut()) {
        idle_cpu(pid, &ctx, last).await;
    }
    if let Some(pool) = ctx.workers.as_mut() {
        pool.set(0).await?;
    }
    for report in &mut reports {
        stamp_decide(report, g.decide);
    }
    let written = report::write(&g.report_dir, &reports)?;
    print!("{}", report::summary(&reports));
    for path in written {
        println!("wrote {}", path.display());
    }
    let failed = reports.iter().filter(|r| !r.ok()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} scenario(s) violated a guarantee or the API's memory budget"
    );
    Ok(())
}

/// Records the machine's load average before and after a scenario among its figures.
fn stamp_load(report: &mut ScenarioReport, before: Option<f64>) {
    for (name, value) in [
        ("loadavg_before", before),
        ("loadavg_after", scenarios::load_average()),
    ] {
        if let Some(value) = value {
            report.figures.insert(name.into(), value);
        }
    }
}

/// CPU share of the API (and managed workers) over 5 idle seconds, as a figure of `report`.
async fn idle_cpu(api_pid: u32, ctx: &Context, report: &mut ScenarioReport) {
    let mut pids = vec![("api", api_pid)];
    if let Some(pool) = &ctx.workers {
        pids.extend(pool.pids().into_iter().map(|p| ("workers", p)));
    }
    let before: Vec<Option<f64>> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    let mut api = 0.0;
    let mut workers = 0.0;
    for ((role, pid), before) in pids.iter().zip(before) {
        if let (Some(a), Some(b)) = (before, cpu_seconds(*pid)) {
            let share = (b - a) / window.as_secs_f64() * 100.0;
            if *role == "api" {
                api += share;
            } else {
                workers += share;
            }
        }
    }
    report.figures.insert("idle_cpu_pct_api".into(), api);
    report
        .figures
        .insert("idle_cpu_pct_workers".into(), workers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(args: &[&str]) -> Scenario {
        let mut argv = vec!["rushline-loadtest"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").scenario
    }

    #[test]
    fn scenarios_answer_to_their_names_and_to_issue_4s_numbers() {
        for (name, old) in [
            ("presale", "s1"),
            ("sold-out-storm", "s2"),
            ("worker-scaling", "s3"),
            ("many-campaigns", "s4"),
        ] {
            let (new, aliased) = (scenario(&[name]), scenario(&[old]));
            assert_eq!(
                std::mem::discriminant(&new),
                std::mem::discriminant(&aliased),
                "{old} runs {name}"
            );
        }
        assert!(matches!(
            scenario(&["s3", "--scale", "0.5"]),
            Scenario::WorkerScaling(ScalingFlags { scale, .. }) if scale == 0.5
        ));
        assert!(matches!(scenario(&["presale"]), Scenario::Presale(_)));
    }
}
