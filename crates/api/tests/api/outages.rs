//! Backing services that crash, hang or stop mid-traffic, on the test's own private servers
//! (`rushline_testkit::servers`), with the API and workers running in this process.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rushline_testkit::TestEnv;
use rushline_testkit::servers::{Fsync, PostgresServer, RedisServer};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, spawn_app_in, spawn_app_with};

/// The API (no workers yet) on a private Redis of this test's own, which it may crash or hang.
async fn on_private_redis(
    fsync: Fsync,
    customize: impl FnOnce(&mut rushline_api::Config),
) -> (RedisServer, TestApp) {
    let redis = RedisServer::start(fsync).await.expect("redis");
    let env = TestEnv::on(&rushline_testkit::admin_database_url(), &redis.url())
        .await
        .expect("env");
    (redis, spawn_app_in(env, customize).await)
}

/// The API (no workers yet) on a private PostgreSQL of this test's own, which it may crash or
/// hang.
async fn on_private_postgres(
    customize: impl FnOnce(&mut rushline_api::Config),
) -> (PostgresServer, TestApp) {
    let postgres = PostgresServer::start().await.expect("postgres");
    let env = TestEnv::on(&postgres.admin_url(), &rushline_testkit::redis_url())
        .await
        .expect("env");
    (postgres, spawn_app_in(env, customize).await)
}

/// Posts one request per user, all at once, and returns their ids (each answered `202`, or
/// `200` when decided at once because stock is gone).
async fn accepted(app: &TestApp, campaign: &str, users: std::ops::Range<u32>) -> Vec<String> {
    let posts = users.map(|n| async move {
        let response = app.issue(campaign, &format!("user-{n}")).await;
        let status = response.status();
        let body: Value = response.json().await.expect("accept json");
        assert!(
            matches!(status, StatusCode::ACCEPTED | StatusCode::OK),
            "user-{n}: {status} {body}"
        );
        body["request_id"].as_str().expect("request id").to_owned()
    });
    futures::future::join_all(posts).await
}

/// Every id reaches a final status through `?wait=`, the record holds each once, and the
/// guarantees hold in PostgreSQL and agree with the API.
async fn assert_all_final_and_recorded(app: &TestApp, campaign: &str, ids: &[String]) {
    for id in ids {
        let body = app.final_status(id).await;
        assert_ne!(body["status"], "queued", "{id}");
    }
    app.drained(campaign).await;
    let id = rushline_domain::CampaignId::parse(campaign).expect("campaign id");
    assert_eq!(
        rushline_testkit::recorded_rows(&app.store, &id)
            .await
            .expect("rows"),
        ids.len() as i64,
        "every accepted request recorded once"
    );
    let audit = rushline_testkit::audit(&app.store, &id)
        .await
        .expect("audit");
    audit.assert_guarantees();
    assert_eq!(app.campaign(campaign).await["issued"], audit.issued_rows);
}

/// Asks `/readyz` until it answers `want`, for at most `limit`.
async fn readiness_becomes(app: &TestApp, want: StatusCode, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let status = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("GET /readyz")
            .status();
        if status == want {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}");
        // Readiness is a probe with no event to await; each poll is one bounded request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_sheds_with_503_then_everything_resumes() {
    // The shipped `appendfsync always`: every acknowledged write survives the SIGKILL, so every
    // 202 must come back.
    let (mut redis, mut app) = on_private_redis(Fsync::Always, |config| {
        config.backend_timeout = Duration::from_millis(500);
    })
    .await;
    let campaign = app.open_campaign(60).await;
    let mut ids = accepted(&app, &campaign, 0..40).await;
    app.start_worker();

    redis.kill();
    let started = Instant::now();
    let refused = app.issue(&campaign, "user-during-outage").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a dead Redis must not hang the API"
    );
    assert!(refused.headers().contains_key("retry-after"), "Retry-After");
    assert_problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    readiness_becomes(
        &app,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(10),
    )
    .await;

    redis.restart().await.expect("redis restart");
    readiness_becomes(&app, StatusCode::OK, Duration::from_secs(30)).await;
    ids.extend(accepted(&app, &campaign, 40..100).await);
    assert_all_final_and_recorded(&app, &campaign, &ids).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_instead_of_hanging_the_api() {
    let (redis, app) = on_private_redis(Fsync::EverySec, |config| {
        config.backend_timeout = Duration::from_millis(300);
    })
    .await;
    let campaign = app.open_campaign(10).await;
    let pid = redis.pid().expect("redis pid").to_string();
    // SIGSTOP: the process holds its connections open and never answers.
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill -STOP");
    assert!(stop.success());
    let started = Instant::now();
    let (post, ready) = tokio::join!(
        app.issue(&campaign, "user-1"),
        app.client.get(app.url("/readyz")).send()
    );
    let elapsed = started.elapsed();
    let resumed = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill -CONT");
    assert!(resumed.success());
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );
    assert_problem(post, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        ready.expect("GET /readyz").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Once Redis answers again, so does the API.
    readiness_becomes(&app, StatusCode::OK, Duration::from_secs(30)).await;
    let ids = accepted(&app, &campaign, 2..5).await;
    assert_eq!(ids.len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_buffered_in_redis_and_caught_up() {
    let (postgres, mut app) = on_private_postgres(|config| {
        config.backend_timeout = Duration::from_millis(500);
    })
    .await;
    let campaign = app.open_campaign(50).await;
    app.start_worker();

    postgres.crash().expect("stop postgres");
    // Redis is the buffer: requests are accepted and decided while the record is away…
    let ids = accepted(&app, &campaign, 0..80).await;
    let mut issued = 0;
    for id in &ids {
        let body = app.final_status(id).await;
        if body["status"] == "issued" {
            issued += 1;
        }
    }
    assert_eq!(issued, 50, "decided in Redis while PostgreSQL is down");
    // …readiness says the service is degraded…
    readiness_becomes(
        &app,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(10),
    )
    .await;
    let id = rushline_domain::CampaignId::parse(campaign.as_str()).expect("campaign id");
    assert!(
        app.queue.log_len(&id).await.expect("log length") > 0,
        "decisions wait in the log"
    );

    // …and the workers catch up once it is back.
    postgres.resume().expect("start postgres");
    readiness_becomes(&app, StatusCode::OK, Duration::from_secs(30)).await;
    assert_all_final_and_recorded(&app, &campaign, &ids).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_bounds_the_buffer_sheds_with_503_and_loses_nothing() {
    // Tiny bounds: 2 log entries of at most 5 decisions, and 10 queued requests.
    let (postgres, mut app) = on_private_postgres(|config| {
        config.backend_timeout = Duration::from_millis(500);
        config.max_queue = 10;
        config.shared.max_log_entries = 2;
    })
    .await;
    let campaign = app.open_campaign(1_000).await;
    app.start_worker_with(&[
        ("RUSHLINE_MAX_LOG_ENTRIES", "2"),
        ("RUSHLINE_DECIDE_BATCH", "5"),
    ]);
    let id = rushline_domain::CampaignId::parse(campaign.as_str()).expect("campaign id");
    postgres.crash().expect("stop postgres");

    let (mut ids, mut shed) = (Vec::new(), 0);
    for n in 0..60 {
        let response = app.issue(&campaign, &format!("user-{n}")).await;
        match response.status() {
            StatusCode::ACCEPTED => {
                let body: Value = response.json().await.expect("accept json");
                ids.push(body["request_id"].as_str().expect("id").to_owned());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                shed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // At most 2 × 5 decided and 10 queued: the rest was shed, never dropped.
    assert!(ids.len() <= 20, "{} accepted", ids.len());
    assert_eq!(ids.len() + shed, 60);
    assert!(app.queue.log_len(&id).await.expect("log length") <= 2);

    postgres.resume().expect("start postgres");
    assert_all_final_and_recorded(&app, &campaign, &ids).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_postgres_times_out_while_the_hot_path_keeps_accepting() {
    let (postgres, app) = on_private_postgres(|config| {
        config.backend_timeout = Duration::from_millis(300);
    })
    .await;
    let campaign = app.open_campaign(10).await;
    // Open a pool connection or two first, so the hang is met on established connections.
    readiness_becomes(&app, StatusCode::OK, Duration::from_secs(10)).await;

    let new_campaign = serde_json::json!({"name": "during the hang", "stock": 1});
    postgres.freeze().expect("SIGSTOP postgres");
    let started = Instant::now();
    let answers = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            app.client.get(app.url("/readyz")).send(),
            app.create_campaign(&new_campaign),
            app.issue(&campaign, "user-1"),
        )
    })
    .await;
    let elapsed = started.elapsed();
    postgres.thaw().expect("SIGCONT postgres");
    let (ready, created, accepted) = answers.expect("the API hung on a hung PostgreSQL");
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );
    assert_eq!(
        ready.expect("GET /readyz").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_problem(created, StatusCode::SERVICE_UNAVAILABLE).await;
    // The hot path needs Redis only: a warm campaign keeps accepting.
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    readiness_becomes(&app, StatusCode::OK, Duration::from_secs(30)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_postgres_call_that_never_answers_times_out() {
    let app = spawn_app_with(|_| {}).await;
    let campaign = app.open_campaign(10).await;
    let id = rushline_domain::CampaignId::parse(campaign.as_str()).expect("campaign id");
    let store =
        rushline_store::Store::connect(&app.env.database_url, 2, Duration::from_millis(300))
            .await
            .expect("store");
    // Another session holds the campaign's row: the close below waits on the lock, as it would
    // on a PostgreSQL that stopped answering mid-statement.
    let mut blocker = app.store.pool().begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE")
        .bind(campaign.as_str())
        .execute(&mut *blocker)
        .await
        .expect("lock the row");
    let started = Instant::now();
    let closed = tokio::time::timeout(
        Duration::from_secs(20),
        store.close_campaign(&id, chrono::Utc::now()),
    )
    .await
    .expect("the store call hung");
    assert!(
        matches!(closed, Err(rushline_store::StoreError::Timeout(_))),
        "{closed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    blocker.rollback().await.expect("rollback");
    // Nothing was half-done: the timed-out close rolled back, the campaign is still open.
    assert_eq!(app.campaign(&campaign).await["status"], "open");
    app.stop().await;
}
