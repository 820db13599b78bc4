//! The smoke, two-drops and waiting-room-storm scenarios' library code against an in-process API and in-process
//! workers, each test with its own database and Redis namespace (rushline_testkit). Asserts that
//! every guarantee held and the figures are reported — never a speed.

use std::time::Duration;

use rushline_domain::DecideMode;
use rushline_loadtest::api::Api;
use rushline_loadtest::scenarios::{self, Context, DropArgs, TwoDropsArgs, WaitingRoomStormArgs};
use rushline_queue::Queue;
use rushline_testkit::app::{TestApp, spawn_app};
use sqlx::postgres::PgPoolOptions;

const ADMIN_TOKEN: &str = "loadtest-admin-token";

/// A scenario context on `app`'s API, database and Redis namespace.
async fn context(app: &TestApp, tag: &str) -> Context {
    let env = &app.env;
    Context {
        api: Api::new(&app.url, Some(ADMIN_TOKEN.into()), 64).expect("client"),
        pool: PgPoolOptions::new()
            .max_connections(2)
            .connect(&env.database_url)
            .await
            .expect("database"),
        queue: Some(Queue::new(env.queue_config()).expect("queue")),
        redis_url: Some(env.redis_url.clone()),
        key_namespace: Some(env.namespace.clone()),
        api_pid: None,
        workers: None,
        running_workers: 0,
        tag: tag.into(),
        progress: false,
        max_duration: Duration::from_secs(60),
        resolve_concurrency: 128,
        settle: Duration::from_secs(30),
        sample_every: Duration::from_millis(250),
        status_ttl: None,
    }
}

/// Runs the smoke scenario (debug-build sizes: enough to sell out both campaigns and exercise
/// repeats and races) with campaigns created in `mode`, on the API with `workers` workers; checks
/// what holds in both modes and returns the report for the mode's own checks.
async fn smoke_in(
    mode: DecideMode,
    workers: usize,
) -> (TestApp, Context, scenarios::ScenarioReport) {
    let app = spawn_app(ADMIN_TOKEN, workers)
        .await
        .expect("start the API and its workers");
    let mut ctx = context(&app, "smoke").await;
    ctx.api = ctx.api.deciding(mode);
    let args = DropArgs {
        requests: 2_400,
        users: 2_000,
        stock: 400,
        campaigns: 2,
        concurrency: 32,
        racing_share: 0.3,
    };
    let report = scenarios::smoke(&ctx, &args).await.expect("smoke scenario");

    let blast = report.blast.as_ref().expect("blast summary");
    assert_eq!(blast.sent, 2_400, "every planned request was sent");
    assert_eq!(
        blast.failed, 0,
        "no transport failures: {:?}",
        blast.first_failure
    );
    let verdict = report.verdict.as_ref().expect("verdict");
    assert!(
        verdict.ok(),
        "guarantees violated: {:#?}",
        verdict.violations
    );
    assert_eq!(verdict.issued, 800, "both campaigns sold out");
    (app, ctx, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_holds_every_guarantee() {
    let (app, ctx, report) = smoke_in(DecideMode::Queued, 3).await;
    let verdict = report.verdict.as_ref().expect("verdict");
    assert!(verdict.rows >= verdict.request_ids);

    ctx.pool.close().await;
    app.stop().await.expect("stop the API and the workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_in_instant_mode_answers_at_once_and_holds_every_guarantee() {
    let (app, ctx, report) = smoke_in(DecideMode::Instant, 2).await;
    let blast = report.blast.as_ref().expect("blast summary");
    assert_eq!(blast.accepted_202, 0, "instant campaigns answer 200");
    assert!(blast.decided_200 >= 2_400, "{blast:?}");

    ctx.pool.close().await;
    app.stop().await.expect("stop the API and the workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drops_reports_each_campaigns_time_to_final() {
    let app = spawn_app(ADMIN_TOKEN, 2)
        .await
        .expect("start the API and two workers");
    let ctx = context(&app, "twodrops").await;
    // Debug-build sizes: a spike of 2,000 on A beside 40 requests/s for 3 s on B.
    let args = TwoDropsArgs {
        spike_requests: 2_000,
        spike_users: 1_900,
        spike_stock: 300,
        spike_concurrency: 32,
        steady_rate: 40.0,
        steady_seconds: 3.0,
        steady_stock: 100,
    };
    let report = scenarios::two_drops(&ctx, &args)
        .await
        .expect("two-drops scenario");

    let verdict = report.verdict.as_ref().expect("verdict");
    assert!(
        verdict.ok(),
        "guarantees violated: {:#?}",
        verdict.violations
    );
    assert_eq!(verdict.campaigns, 2, "both campaigns verified");
    assert_eq!(verdict.issued, 400, "both campaigns sold out");
    for figure in [
        "a_final_p50_ms",
        "a_final_p99_ms",
        "b_final_p50_ms",
        "b_final_p99_ms",
    ] {
        let value = report.figures.get(figure).copied();
        assert!(
            value.is_some_and(|ms| ms > 0.0),
            "{figure} reported: {:?}",
            report.figures
        );
    }
    assert!(report.figures["b_final_p50_ms"] <= report.figures["b_final_p99_ms"]);

    ctx.pool.close().await;
    app.stop().await.expect("stop the API and the workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_room_storm_admits_everyone_fairly_and_reports_its_rates() {
    let app = spawn_app(ADMIN_TOKEN, 2)
        .await
        .expect("start the API and two workers");
    let ctx = context(&app, "wrstorm").await;
    // Debug-build sizes: 1,500 users (300 pre-queued) admitted at 200/s (7.5 s), so that many
    // are still waiting when the drain starts; every 10th of those probes.
    let args = WaitingRoomStormArgs {
        joins: 1_500,
        prequeue_joins: 300,
        admit_per_second: 200,
        concurrency: 16,
        accept_requests: 300,
        poll_seconds: 1.0,
        drain_concurrency: 64,
        probe_every: 10,
        max_poll_after_secs: 1.0,
    };
    let report = scenarios::waiting_room_storm(&ctx, &args)
        .await
        .expect("waiting-room storm");

    let verdict = report.verdict.as_ref().expect("verdict");
    assert!(
        verdict.ok(),
        "guarantees violated: {:#?}",
        verdict.violations
    );
    let figures = &report.figures;
    assert_eq!(figures["drain_users_done"], 1_500.0, "{figures:?}");
    assert_eq!(figures["prequeued_users"], 300.0, "{figures:?}");
    assert!(figures["probes"] >= 20.0, "{figures:?}");
    assert_eq!(
        verdict.issued,
        1_500 + 300,
        "every admitted user's request issued, and every request of the accept reference"
    );
    for figure in [
        "accept_rate",
        "join_rate",
        "poll_rate",
        "join_over_accept",
        "poll_over_accept",
        "cpu_us_per_req_join_client",
        "cpu_us_per_req_poll_client",
    ] {
        assert!(
            figures.get(figure).is_some_and(|v| *v > 0.0),
            "{figure} reported: {figures:?}"
        );
    }
    assert!(figures.contains_key("prequeue_spearman_rho"), "{figures:?}");

    ctx.pool.close().await;
    app.stop().await.expect("stop the API and the workers");
}
