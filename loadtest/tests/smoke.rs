//! The smoke scenario's library code against an in-process API and three in-process workers,
//! each test with its own database and Redis namespace (rushline_testkit). Asserts that every
//! guarantee held — never a speed.

use std::time::Duration;

use rushline_api::{Application, Config};
use rushline_loadtest::api::Api;
use rushline_loadtest::scenarios::{self, Context, DropArgs};
use rushline_queue::Queue;
use rushline_testkit::TestEnv;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

const ADMIN_TOKEN: &str = "loadtest-admin-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_holds_every_guarantee() {
    let env = TestEnv::new().await.expect("test environment");
    let config = Config::from_lookup(env.settings(&[
        ("RUSHLINE_HTTP_ADDR", "127.0.0.1:0"),
        ("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("RUSHLINE_DB_MAX_CONNECTIONS", "4"),
    ]))
    .expect("config");
    let shutdown = CancellationToken::new();
    let app = Application::build(config, shutdown.clone())
        .await
        .expect("build app");
    let address = format!("http://{}", app.local_addr().expect("local addr"));
    let server = tokio::spawn(app.run_until_stopped());

    let worker_shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..3 {
        let config =
            rushline_worker::Config::from_lookup(env.settings(&[("RUSHLINE_SWEEP_MS", "200")]))
                .expect("worker config");
        let queue = Queue::new(env.queue_config()).expect("worker queue");
        let worker = rushline_worker::Worker::new(config, queue, env.store.clone());
        workers.push(tokio::spawn(worker.run(worker_shutdown.clone())));
    }

    let ctx = Context {
        api: Api::new(&address, Some(ADMIN_TOKEN.into()), 64).expect("client"),
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
    worker_shutdown.cancel();
    for worker in workers {
        worker.await.expect("worker task");
    }
    shutdown.cancel();
    server.await.expect("server task").expect("server result");
    env.cleanup().await.expect("cleanup");
}
