//! Rate limits (CONTRACT.md, *Rate limits*; issue 12): per (campaign, user) and per client
//! address, configured by the contract's variables, held in Redis so replicas share them.
//!
//! Every limit here is per minute, so no quota refills while a test runs: the outcomes do not
//! depend on how fast the machine is.

use reqwest::{Response, StatusCode};
use rushline_api::{Application, Config};
use rushline_testkit::TestEnv;
use rushline_testkit::servers::{Fsync, RedisServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{ADMIN_TOKEN, TestApp, assert_problem, spawn_app_in};

/// The API configured by `limits` (the contract's variables), as a client would deploy it.
async fn spawn_limited(limits: &[(&str, &str)]) -> TestApp {
    let env = TestEnv::new().await.expect("test environment");
    let config = limited_config(&env, limits);
    spawn_app_in(env, move |c| *c = config).await
}

fn limited_config(env: &TestEnv, limits: &[(&str, &str)]) -> Config {
    let mut settings = vec![
        ("RUSHLINE_HTTP_ADDR", "127.0.0.1:0"),
        ("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("RUSHLINE_DB_MAX_CONNECTIONS", "4"),
    ];
    settings.extend_from_slice(limits);
    Config::from_lookup(env.settings(&settings)).expect("config")
}

/// POST a request for `user`, optionally with an `X-Forwarded-For`.
async fn issue_via(app: &TestApp, campaign: &str, user: &str, xff: Option<&str>) -> Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/campaigns/{campaign}/requests")))
        .json(&json!({"user_id": user}));
    if let Some(xff) = xff {
        request = request.header("X-Forwarded-For", xff);
    }
    request.send().await.expect("POST requests")
}

/// Asserts a `429` from the `policy` limit allowing `quota` per minute: problem+json, and the
/// three headers in the draft's syntax, agreeing with each other.
async fn assert_limited(response: Response, policy: &str, quota: u32) -> Value {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .expect("ASCII header")
            .to_owned()
    };
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header("retry-after").parse().expect("whole seconds");
    // One request comes back every 60 / quota seconds.
    assert!(
        (1..=u64::from(60 / quota)).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        header("ratelimit-policy"),
        format!("\"{policy}\";q={quota};w=60")
    );
    assert_eq!(
        header("ratelimit"),
        format!("\"{policy}\";r=0;t={retry_after}")
    );
    let body = assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        body["type"].as_str().unwrap().ends_with("rate-limited"),
        "{body}"
    );
    body
}

#[tokio::test]
async fn a_burst_over_the_user_limit_gets_429_with_the_rate_limit_headers() {
    let app = spawn_limited(&[("RUSHLINE_RATE_LIMIT_USER", "3/min")]).await;
    let campaign = app.open_campaign(100).await;
    for _ in 0..3 {
        assert_eq!(
            app.issue(&campaign, "u-1").await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_limited(app.issue(&campaign, "u-1").await, "user", 3).await;
    let stats = app
        .queue
        .queue_len(&rushline_domain::CampaignId::parse(&campaign).unwrap())
        .await
        .unwrap();
    assert_eq!(stats, 3, "the refused request was not queued");

    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rushline_rate_limited_total{limit=\"user\"}")),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_user_limit_is_per_campaign_and_user_and_independent_of_the_address_limit() {
    let app = spawn_limited(&[
        ("RUSHLINE_RATE_LIMIT_USER", "2/min"),
        ("RUSHLINE_RATE_LIMIT_IP", "5/min"),
    ])
    .await;
    let (a, b) = (app.open_campaign(100).await, app.open_campaign(100).await);
    for _ in 0..2 {
        assert_eq!(app.issue(&a, "u-1").await.status(), StatusCode::ACCEPTED);
    }
    assert_limited(app.issue(&a, "u-1").await, "user", 2).await;
    // Another user, and the same user in another campaign, have their own quota…
    assert_eq!(app.issue(&a, "u-2").await.status(), StatusCode::ACCEPTED);
    assert_eq!(app.issue(&b, "u-1").await.status(), StatusCode::ACCEPTED);
    // …while every request from this address counted against its own limit: 5 so far.
    assert_limited(app.issue(&a, "u-3").await, "ip", 5).await;
    app.stop().await;
}

#[tokio::test]
async fn idempotent_replays_are_never_limited_and_never_counted() {
    let app = spawn_limited(&[
        ("RUSHLINE_RATE_LIMIT_USER", "2/min"),
        ("RUSHLINE_RATE_LIMIT_IP", "2/min"),
    ])
    .await;
    let campaign = app.open_campaign(100).await;
    let first = app.issue_with_key(&campaign, "u-1", Some("k-1")).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    for _ in 0..5 {
        let replay = app.issue_with_key(&campaign, "u-1", Some("k-1")).await;
        assert!(replay.status().is_success(), "{}", replay.status());
        let replay: Value = replay.json().await.unwrap();
        assert_eq!(replay["request_id"], first["request_id"]);
    }
    // The replays spent nothing: a second request still fits both limits (2 per minute)…
    assert_eq!(
        app.issue_with_key(&campaign, "u-1", Some("k-2"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    // …and with both limits now spent, a replay still gets through, a new request does not.
    let replay = app.issue_with_key(&campaign, "u-1", Some("k-1")).await;
    assert!(replay.status().is_success(), "{}", replay.status());
    assert_limited(
        app.issue_with_key(&campaign, "u-1", Some("k-3")).await,
        "ip",
        2,
    )
    .await;
    assert_eq!(
        app.queue
            .queue_len(&rushline_domain::CampaignId::parse(&campaign).unwrap())
            .await
            .unwrap(),
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_limited(&[("RUSHLINE_RATE_LIMIT_IP", "2/min")]).await;
    let campaign = app.open_campaign(100).await;
    // Each request claims another client; the peer (this test, 127.0.0.1) is the client.
    for (user, xff) in [("u-1", "198.51.100.1"), ("u-2", "198.51.100.2")] {
        assert_eq!(
            issue_via(&app, &campaign, user, Some(xff)).await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_limited(
        issue_via(&app, &campaign, "u-3", Some("198.51.100.3")).await,
        "ip",
        2,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_from_a_trusted_proxy_gives_the_rightmost_untrusted_address() {
    let app = spawn_limited(&[
        ("RUSHLINE_RATE_LIMIT_IP", "2/min"),
        ("RUSHLINE_TRUSTED_PROXIES", "127.0.0.0/8, 10.0.0.0/8"),
    ])
    .await;
    let campaign = app.open_campaign(100).await;
    // The client 203.0.113.9 behind two proxies; what it wrote itself (the leftmost) varies.
    for (user, xff) in [
        ("u-1", "6.6.6.6, 203.0.113.9, 10.1.1.1"),
        ("u-2", "7.7.7.7, 203.0.113.9, 10.1.1.1"),
    ] {
        assert_eq!(
            issue_via(&app, &campaign, user, Some(xff)).await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_limited(
        issue_via(
            &app,
            &campaign,
            "u-3",
            Some("8.8.8.8, 203.0.113.9, 10.1.1.1"),
        )
        .await,
        "ip",
        2,
    )
    .await;
    // Another client behind the same proxies has its own quota.
    assert_eq!(
        issue_via(&app, &campaign, "u-4", Some("203.0.113.10, 10.1.1.1"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    // A malformed list from the proxy: the peer (127.0.0.1) is the client; never a 5xx.
    assert_eq!(
        issue_via(&app, &campaign, "u-5", Some("203.0.113.11, not-an-address"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    app.stop().await;
}

#[tokio::test]
async fn two_api_replicas_on_one_redis_share_the_limits() {
    let limits = [
        ("RUSHLINE_RATE_LIMIT_USER", "2/min"),
        ("RUSHLINE_RATE_LIMIT_IP", "4/min"),
    ];
    let first = spawn_limited(&limits).await;
    let campaign = first.open_campaign(100).await;
    // The second replica: same Redis, database and key namespace.
    let shutdown = CancellationToken::new();
    let second = Application::build(limited_config(&first.env, &limits), shutdown.clone())
        .await
        .expect("second replica");
    let second_url = format!("http://{}", second.local_addr().unwrap());
    let server = tokio::spawn(second.run_until_stopped());
    let via_second = |user: &'static str| {
        first
            .client
            .post(format!("{second_url}/v1/campaigns/{campaign}/requests"))
            .json(&json!({"user_id": user}))
            .send()
    };

    for _ in 0..2 {
        assert_eq!(
            first.issue(&campaign, "u-1").await.status(),
            StatusCode::ACCEPTED
        );
    }
    // The second replica sees what the first spent: u-1's quota, and the address's requests
    // (its 429 counted too: 3 of 4)…
    assert_limited(via_second("u-1").await.unwrap(), "user", 2).await;
    assert_eq!(
        via_second("u-2").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    // …and the first sees the second's.
    assert_limited(first.issue(&campaign, "u-3").await, "ip", 4).await;

    shutdown.cancel();
    server.await.unwrap().unwrap();
    first.stop().await;
}

#[tokio::test]
async fn a_limit_that_cannot_be_read_fails_open_and_the_accept_answers_for_redis() {
    let mut redis = RedisServer::start(Fsync::EverySec).await.expect("redis");
    let env = TestEnv::on(&rushline_testkit::admin_database_url(), &redis.url())
        .await
        .expect("env");
    let limits = [
        ("RUSHLINE_RATE_LIMIT_USER", "1/min"),
        ("RUSHLINE_RATE_LIMIT_IP", "1/min"),
    ];
    let config = limited_config(&env, &limits);
    let app = spawn_app_in(env, move |c| *c = config).await;
    let campaign = app.open_campaign(100).await;
    assert_eq!(
        app.issue(&campaign, "u-1").await.status(),
        StatusCode::ACCEPTED
    );

    // Redis gone: neither limit can be read. Failing closed would answer 429 ("you sent too
    // much") to everyone; open, the request reaches the accept, which answers 503 for Redis.
    redis.kill();
    let response = app.issue(&campaign, "u-1").await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;

    redis.restart().await.expect("redis back");
    app.stop().await;
}

#[tokio::test]
async fn a_request_that_finds_its_campaign_cold_is_counted_once() {
    let app = spawn_limited(&[("RUSHLINE_RATE_LIMIT_USER", "1/min")]).await;
    let campaign = app.open_campaign(100).await;
    // Redis lost the campaign's state: the first accept finds it unknown, the API warms it from
    // PostgreSQL and asks again. The user's single request per minute is spent once, not twice.
    app.env.flush_redis().await.expect("flush");
    assert_eq!(
        app.issue(&campaign, "u-1").await.status(),
        StatusCode::ACCEPTED
    );
    assert_limited(app.issue(&campaign, "u-1").await, "user", 1).await;
    app.stop().await;
}
