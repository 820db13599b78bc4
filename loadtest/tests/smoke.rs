//! The smoke scenario's library code against an in-process API and three in-process workers,
//! each test with its own database and Redis namespace (rushline_testkit). Asserts that every
//! guarantee held — never a speed.

use std::time::Duration;

use rushline_loadtest::api::Api;
use rushline_loadtest::scenarios::{self, Context, DropArgs};
use rushline_queue::Queue;
use rushline_testkit::app::spawn_app;
use sqlx::postgres::PgPoolOptions;

const ADMIN_TOKEN: &str = "loadtest-admin-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_holds_every_guarantee() {
    let app = spawn_app(ADMIN_TOKEN, 3)
        .await
        .expect("start the API and three workers");
    let env = &app.env;

    let ctx = Context {
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
        tag: "smoke".into(),
        progress: false,
        max_duration: Duration::from_secs(60),
        resolve_concurrency: 128,
        settle: Duration::from_secs(30),
        sample_every: Duration::from_millis(250),
        status_ttl: None,
    };
    // Debug-build sizes: enough to sell out both campaigns and exercise repeats and races.
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
    assert!(verdict.rows >= verdict.request_ids);

    ctx.pool.close().await;
    app.stop().await.expect("stop the API and the workers");
}
