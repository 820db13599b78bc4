//! The waiting-room storm (issue 12, *Speed*): 200,000 distinct users join one campaign's waiting
//! room in closed loop — the first 20,000 during its pre-queue, the rest right after the opening —
//! then all of them poll their status while admission runs at `admit_per_second`, and each posts
//! its request with its ticket once admitted. The same run measures a plain accept blast with the
//! same client settings, so joins/s and polls/s are reported against the accept rate of the same
//! run (the targets: join ≥ 1.0×, poll ≥ 3×), with the CPU each process spent per join,
//! per poll and per accept.
//!
//! # Phases
//!
//! 1. *Accept reference*: a closed-loop accept blast on a plain campaign (C as below), resolved
//!    and verified like the `accept` scenario's, so the stack is idle again before the storm.
//! 2. *Pre-queue joins*: the storm campaign opens a few seconds after its creation
//!    (`prequeue_secs` 3,600); the first users join before `opens_at` and are answered
//!    `prequeued`.
//! 3. *Joins*: after the opening, the other users join in closed loop (C tasks): joins/s, CPU
//!    per join. Admission already runs, nothing else does.
//! 4. *Probes*: every `probe_every`-th user polls and, if still waiting, sends a post that must be
//!    refused (its own ticket too early, none, a forged one, another user's).
//! 5. *Poll window*: every user polls round-robin in closed loop for a fixed window, nobody posts:
//!    polls/s and CPU per poll (the poll's capacity).
//! 6. *Drain*: every user polls when `poll_after_secs` says (capped) and posts its request with
//!    the newest ticket once admitted.
//!
//! Throughout, the campaign's `queue` figures are sampled every 100 ms. Afterwards every request
//! id is resolved and the six guarantees are verified as in every drop, and [`checks`] verifies
//! guarantee 7 from what each user was told.

pub mod checks;
pub mod client;
pub mod crowd;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rushline_domain::WaitingRoomOptions;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::checks::CounterSample;
use self::crowd::{Crowd, DrainPlan, PhaseFigures};
use super::{Context, ScenarioReport, accept, finish, prepare};
use crate::LoadError;
use crate::cpu::CpuSnapshot;
use crate::monitor::Monitor;
use crate::resolve::resolve;
use crate::traffic::{Blast, Job, Live, Load, Record};
use crate::verify::verify;

/// The storm's numbers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WaitingRoomStormArgs {
    /// Distinct users joining (pre-queued ones included).
    pub joins: usize,
    /// Of those, how many join during the pre-queue.
    pub prequeue_joins: usize,
    /// The campaign's `admit_per_second`.
    pub admit_per_second: u32,
    /// Client tasks for the accept reference, the joins and the poll window (the `accept`
    /// scenario's C, so the rates compare like for like).
    pub concurrency: usize,
    /// Requests in the accept reference blast.
    pub accept_requests: usize,
    /// Seconds of the closed-loop poll window.
    pub poll_seconds: f64,
    /// Client tasks in the drain (mostly waiting for a user's next poll).
    pub drain_concurrency: usize,
    /// Every `probe_every`-th user sends one post that must be refused (0: none).
    pub probe_every: usize,
    /// The longest pause between one user's polls in the drain, whatever `poll_after_secs` says.
    pub max_poll_after_secs: f64,
}

impl Default for WaitingRoomStormArgs {
    /// 200,000 users (20,000 pre-queued), admission at 2,000/s (about 100 s), C = 64 like
    /// `accept`, a 40,000-request accept reference, a 10 s poll window.
    fn default() -> Self {
        Self {
            joins: 200_000,
            prequeue_joins: 20_000,
            admit_per_second: 2_000,
            concurrency: 64,
            accept_requests: 40_000,
            poll_seconds: 10.0,
            drain_concurrency: 256,
            probe_every: 50,
            max_poll_after_secs: 5.0,
        }
    }
}

impl WaitingRoomStormArgs {
    /// User and request counts multiplied by `factor` (the poll window by its square root); the
    /// admission rate stays, so a smaller storm is admitted sooner.
    pub fn scaled(self, factor: f64) -> Self {
        let scale = |n: usize, min: usize| ((n as f64 * factor).round() as usize).max(min);
        Self {
            joins: scale(self.joins, 100),
            prequeue_joins: scale(self.prequeue_joins, 10),
            accept_requests: scale(self.accept_requests, 100),
            poll_seconds: (self.poll_seconds * factor.sqrt()).max(2.0),
            ..self
        }
    }
}

/// Samples the campaign's queue figures every `every` until stopped.
struct CounterSampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<CounterSample>>,
}

impl CounterSampler {
    fn start(ctx: &Context, crowd: &Arc<Crowd>, every: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let (api, crowd) = (ctx.api.clone(), crowd.clone());
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let sent = Instant::now();
                if let Ok((_, queue)) = client::campaign_queue(&api, &crowd.campaign).await {
                    samples.push(CounterSample {
                        sent_us: crowd.micros(sent),
                        answered_us: crowd.micros(Instant::now()),
                        queue,
                    });
                }
            }
            samples
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<CounterSample> {
        // The receiver lives in the task until it returns; a send error means it already ended.
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Runs the storm (see the module doc) and reports its figures and verdict.
pub async fn waiting_room_storm(
    ctx: &Context,
    args: &WaitingRoomStormArgs,
) -> Result<ScenarioReport, LoadError> {
    let mut report = ScenarioReport {
        name: "waiting-room-storm".into(),
        description: "joins, status polls and ticketed posts of a waiting-room crowd against \
                      the accept rate of the same run; guarantee 7 checked user by user"
            .into(),
        params: serde_json::to_value(args).unwrap_or_default(),
        ..ScenarioReport::default()
    };
    if args.prequeue_joins >= args.joins {
        return Err(LoadError::InvalidPlan(format!(
            "{} pre-queued joins of {} users: some must join after the opening",
            args.prequeue_joins, args.joins
        )));
    }
    let accept_rate = accept_reference(ctx, args, &mut report).await?;

    // The pre-queue lasts as long as its joins should take at half the accept rate, plus margin.
    let lead =
        (args.prequeue_joins as f64 / (accept_rate / 2.0).max(100.0) + 3.0).clamp(3.0, 120.0);
    let opens_at = Utc::now() + chrono::Duration::milliseconds((lead * 1000.0) as i64);
    let campaign = ctx.campaign_id("wrstorm", 0);
    let room = WaitingRoomOptions {
        admit_per_second: u64::from(args.admit_per_second),
        pass_secs: Some(600),
        prequeue_secs: Some(3_600),
        proof_of_work_bits: None,
    };
    client::create_campaign(&ctx.api, &campaign, args.joins as u64, opens_at, room).await?;
    let users = (0..args.joins)
        .map(|i| format!("u-{}wr-{i}", ctx.tag))
        .collect();
    let crowd = Arc::new(Crowd::new(
        campaign.clone(),
        users,
        format!("{}wr", ctx.tag),
    ));
    let monitor = Monitor::start(
        ctx.watch(1),
        Arc::new(vec![campaign.clone()]),
        Arc::new(Live::default()),
    );
    let sampler = CounterSampler::start(ctx, &crowd, Duration::from_millis(100));

    let pre = crowd::join_blast(&ctx.api, &crowd, 0..args.prequeue_joins, args.concurrency).await;
    let opened = wait_until_open(ctx, &campaign, opens_at + chrono::Duration::seconds(30)).await?;

    let cpu = CpuSnapshot::take(ctx).await;
    let joins = crowd::join_blast(
        &ctx.api,
        &crowd,
        args.prequeue_joins..args.joins,
        args.concurrency,
    )
    .await;
    report.cpu_figures(
        CpuSnapshot::take(ctx).await - cpu,
        joins.ok as usize,
        "join",
    );

    let probes = crowd::probes(&ctx.api, &crowd, args.probe_every, args.concurrency).await;

    let cpu = CpuSnapshot::take(ctx).await;
    let polls = crowd::poll_window(
        &ctx.api,
        &crowd,
        args.concurrency,
        Duration::from_secs_f64(args.poll_seconds),
    )
    .await;
    report.cpu_figures(
        CpuSnapshot::take(ctx).await - cpu,
        polls.ok as usize,
        "poll",
    );

    // Admission of the last position is due joins / rate after the opening; allow as long again.
    let admission = Duration::from_secs_f64(args.joins as f64 / f64::from(args.admit_per_second));
    let deadline = opened + (admission * 2 + Duration::from_secs(30)).min(ctx.max_duration);
    let drain = crowd::drain(
        &ctx.api,
        &crowd,
        DrainPlan {
            concurrency: args.drain_concurrency,
            deadline: deadline.max(Instant::now() + Duration::from_secs(30)),
            max_poll_after: Duration::from_secs_f64(args.max_poll_after_secs),
        },
    )
    .await;
    let counter = sampler.stop().await;

    let members = crowd.snapshot();
    let blast = posts_blast(&crowd, &members, args.drain_concurrency);
    let resolved = resolve(
        &ctx.api,
        &blast,
        ctx.resolve_concurrency,
        ctx.settle + Duration::from_secs(60),
    )
    .await;
    let mut verdict = verify(&ctx.api, &ctx.pool, &blast, &resolved, ctx.settle).await?;
    let samples = monitor.stop().await;
    let (_, last) = client::campaign_queue(&ctx.api, &campaign).await?;

    let rate = f64::from(args.admit_per_second);
    let users = &crowd.users;
    let mut violations = checks::positions(&members, users, last.map(|q| q.joined));
    let (pre_violations, rho) = checks::prequeue(&members, users);
    violations.extend(pre_violations);
    let prequeued = members
        .iter()
        .filter(|m| {
            m.join
                .is_some_and(|j| j.state == client::QueueState::Prequeued)
        })
        .count();
    violations.extend(checks::uncorrelated(rho, prequeued));
    violations.extend(checks::admission(&members, users, opens_at, rate));
    violations.extend(checks::counter(&counter, rate));
    violations.extend(checks::posts(&members, users));
    violations.extend(checks::answers(&members, users));
    if verdict.recorded_without_answer > 0 {
        violations.push(crate::verify::Violation::new(
            checks::FAIR_ADMISSION,
            format!(
                "{} requests were recorded although no post was given their id (a refused \
                 post accepted after all?)",
                verdict.recorded_without_answer
            ),
            verdict.recorded_without_answer_ids.clone(),
        ));
    }
    verdict.violations.extend(violations);

    phase_figures(&mut report, "prequeue_join", &pre);
    phase_figures(&mut report, "join", &joins);
    phase_figures(&mut report, "poll", &polls);
    phase_figures(&mut report, "drain_poll", &drain.polls);
    report.figure("accept_rate", accept_rate);
    report.figure("join_over_accept", joins.ok_per_sec / accept_rate.max(1e-9));
    report.figure("poll_over_accept", polls.ok_per_sec / accept_rate.max(1e-9));
    report.figure("users", args.joins as f64);
    report.figure("prequeued_users", prequeued as f64);
    if let Some(rho) = rho {
        report.figure("prequeue_spearman_rho", rho);
        report.figure("prequeue_rho_limit", checks::rho_limit(prequeued));
    }
    report.figure("drain_posts", drain.posts as f64);
    report.figure("probes", probes as f64);
    report.figure("drain_users_done", drain.done as f64);
    report.figure("drain_poll_after_p50_secs", drain.poll_after_p50_secs);
    if let Some(outflow) = outflow(&counter) {
        report.figure("admitted_per_sec_measured", outflow);
    }
    if let Some(rss) = samples.iter().filter_map(|s| s.api_rss_kib).max() {
        let mine = report
            .figures
            .get("api_rss_max_mib")
            .copied()
            .unwrap_or(0.0);
        report.figure("api_rss_max_mib", (rss as f64 / 1024.0).max(mine));
    }
    report.notes.push(format!(
        "C={} for the accept reference, the joins and the poll window; the poll window is closed \
         loop (capacity), the drain follows poll_after_secs (capped at {} s). Requests posted: \
         accept rate and latency in the table are the admitted users' posts",
        args.concurrency, args.max_poll_after_secs
    ));
    report.traffic = blast.timeline(Duration::from_secs(1));
    report.blast = Some(blast.summary());
    report.resolve = Some(resolved.summary);
    report.samples = samples;
    report.absorb(verdict);
    Ok(report)
}

/// The accept reference (phase 1): its rate, with its CPU per request and verdict in `report`.
async fn accept_reference(
    ctx: &Context,
    args: &WaitingRoomStormArgs,
    report: &mut ScenarioReport,
) -> Result<f64, LoadError> {
    let spec = accept::closed("wracc", args.accept_requests, args.concurrency);
    let prepared = prepare(ctx, &spec).await?;
    let cpu = CpuSnapshot::take(ctx).await;
    let blasted = prepared.blast(ctx).await?;
    report.cpu_figures(
        CpuSnapshot::take(ctx).await - cpu,
        args.accept_requests,
        "accept",
    );
    let mut part = ScenarioReport::default();
    finish(ctx, blasted, &mut part).await?;
    let rate = part.figures.get("accept_rate").copied().unwrap_or(0.0);
    if let Some(p99) = part.figures.get("p99_ms") {
        report.figure("accept_p99_ms", *p99);
    }
    report.absorb_part(&mut part);
    Ok(rate)
}

/// Polls the campaign until it says `open` (its `opens_at` passed on the server's clock).
async fn wait_until_open(
    ctx: &Context,
    campaign: &str,
    give_up: chrono::DateTime<Utc>,
) -> Result<Instant, LoadError> {
    loop {
        let (status, _) = client::campaign_queue(&ctx.api, campaign).await?;
        if status == "open" {
            return Ok(Instant::now());
        }
        if Utc::now() > give_up {
            return Err(LoadError::Timeout(format!(
                "campaign {campaign} still {status} 30 s after its opens_at"
            )));
        }
        // The opening is a moment on the server's clock that no call announces.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request posts (and probes) as a blast, one job per user, for resolution and the six
/// guarantees.
fn posts_blast(crowd: &Crowd, members: &[crowd::Member], concurrency: usize) -> Blast {
    let jobs = crowd
        .users
        .iter()
        .map(|user| Job {
            campaign: 0,
            user: user.clone(),
            presses: 1,
            racing: 1,
        })
        .collect();
    let mut records = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let probe = member.probe.iter().map(|p| &p.post);
        for (press, post) in member.posts.iter().chain(probe).enumerate() {
            records.push(Record {
                job: i as u32,
                press: press.min(usize::from(u8::MAX)) as u8,
                copy: 0,
                campaign: 0,
                intended_us: post.sent_us,
                sent_us: post.sent_us,
                answered_us: post.answered_us,
                answer: post.posted.answer.clone(),
            });
        }
    }
    records.sort_by_key(|r| r.sent_us);
    // From the crowd's start, like every blast's: the posts spread over the whole storm.
    let elapsed = Duration::from_micros(records.iter().map(|r| r.answered_us).max().unwrap_or(0));
    Blast {
        campaigns: Arc::new(vec![crowd.campaign.clone()]),
        jobs: Arc::new(jobs),
        records,
        started_wall: crowd.started_wall,
        started: crowd.started,
        elapsed,
        accept_body_len: 0,
        load: Load::Closed { concurrency },
    }
}

/// `<name>_rate`, `<name>_p50_ms`, `<name>_p99_ms`, `<name>_count` and, when any, the failures.
fn phase_figures(report: &mut ScenarioReport, name: &str, phase: &PhaseFigures) {
    report.figure(&format!("{name}_rate"), phase.ok_per_sec);
    report.figure(&format!("{name}_count"), phase.ok as f64);
    report.figure(&format!("{name}_p50_ms"), phase.latency.p50_ms);
    report.figure(&format!("{name}_p99_ms"), phase.latency.p99_ms);
    let refused: u64 = phase.refused.values().sum();
    if refused + phase.failed > 0 {
        report.figure(&format!("{name}_not_ok"), (refused + phase.failed) as f64);
        report.notes.push(format!(
            "{name}: {refused} answers other than 200/201 ({:?}), {} failures (first: {})",
            phase.refused,
            phase.failed,
            phase.first_failure.as_deref().unwrap_or("-")
        ));
    }
}

/// admitted_through's average growth per second between its first non-zero sample and the
/// sample where it reached its final value.
fn outflow(samples: &[CounterSample]) -> Option<f64> {
    let read: Vec<(u64, u64)> = samples
        .iter()
        .filter_map(|s| Some((s.answered_us, s.queue?.admitted_through)))
        .collect();
    let first = read.iter().find(|(_, a)| *a > 0)?;
    let top = read.last()?.1;
    let last = read.iter().find(|(_, a)| *a == top)?;
    let seconds = (last.0.saturating_sub(first.0)) as f64 / 1e6;
    (seconds > 0.0).then(|| (last.1 - first.1) as f64 / seconds)
}
