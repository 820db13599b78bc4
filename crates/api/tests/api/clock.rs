//! One clock: every window decision follows Redis's clock, whatever the API host's says.
//!
//! The API's clock is skewed by `Config::clock_offset` (no real clock is changed). Accept decides
//! with Redis `TIME` inside `accept.lua`; create, close, add-stock and every `status` shown must
//! agree with it, and `rushline_clock_skew_seconds` must show the skew.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, assert_problem, spawn_app_with};

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("admin json")
}

async fn close(app: &TestApp, campaign: &str) -> Value {
    admin(
        app,
        Method::POST,
        &format!("/v1/campaigns/{campaign}/close"),
        None,
    )
    .await
}

async fn stats(app: &TestApp, campaign: &str) -> Value {
    admin(
        app,
        Method::GET,
        &format!("/v1/campaigns/{campaign}/stats"),
        None,
    )
    .await
}

async fn listed_status(app: &TestApp, campaign: &str) -> Value {
    let page = admin(app, Method::GET, "/v1/campaigns?limit=100", None).await;
    page["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .find(|c| c["id"] == campaign)
        .map(|c| c["status"].clone())
        .expect("campaign listed")
}

/// Scrapes until `rushline_clock_skew_seconds` is within a second of `expected`. The recorder
/// is process-wide and other tests' APIs (unskewed) set the same gauge; each scrape sets it from
/// this API's reading just before rendering, so a few scrapes see this API's value.
async fn assert_skew_reported(app: &TestApp, expected: f64) {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let text = app.metrics_text().await;
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix("rushline_clock_skew_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        match value {
            Some(v) if (v - expected).abs() < 1.0 => return,
            other => seen.push(other),
        }
    }
    panic!("rushline_clock_skew_seconds never near {expected}: {seen:?}");
}

#[tokio::test]
async fn on_a_host_whose_clock_runs_ahead_close_is_in_force_for_the_next_accept() {
    let app = spawn_app_with(|config| config.clock_offset = TimeDelta::hours(1)).await;
    let campaign = "ahead";
    let opened = Utc::now() - TimeDelta::minutes(1);
    let created = app
        .create_campaign(&json!({"id": campaign, "name": "n", "stock": 10,
            "opens_at": opened.to_rfc3339()}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(app.campaign(campaign).await["status"], "open");
    assert_eq!(
        app.issue(campaign, "before-close").await.status(),
        StatusCode::ACCEPTED
    );

    let closed = close(&app, campaign).await;
    assert_eq!(closed["status"], "closed");
    // By the host's clock this close would take effect an hour from now: accept would go on
    // answering 202 after the operator was told 200.
    let after = app.issue(campaign, "after-close").await;
    let problem = assert_problem(after, StatusCode::CONFLICT).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("closed"),
        "{problem}"
    );
    assert_eq!(app.campaign(campaign).await["status"], "closed");
    assert_eq!(stats(&app, campaign).await["status"], "closed");
    assert_eq!(listed_status(&app, campaign).await, "closed");
    // Stock for a closed campaign is refused, as add_stock.lua would.
    let refused = app
        .client
        .post(app.url(&format!("/v1/campaigns/{campaign}/stock")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"add": 5}))
        .send()
        .await
        .expect("POST stock");
    assert_problem(refused, StatusCode::CONFLICT).await;

    // A campaign that opens "now" opens at Redis's now: the very next request is accepted (by
    // the host's clock it would open an hour from now, and accept would say `scheduled`).
    let now_open = app.open_campaign(10).await;
    assert_eq!(app.campaign(&now_open).await["status"], "open");
    assert_eq!(
        app.issue(&now_open, "first").await.status(),
        StatusCode::ACCEPTED
    );

    assert_skew_reported(&app, 3600.0).await;
    app.stop().await;
}

#[tokio::test]
async fn on_a_host_whose_clock_runs_behind_views_show_what_accept_decides() {
    let app = spawn_app_with(|config| config.clock_offset = TimeDelta::hours(-1)).await;
    // Opened ten minutes ago (this machine's clock is Redis's): by the host's clock it has not
    // opened yet.
    let opened = Utc::now() - TimeDelta::minutes(10);
    let created = app
        .create_campaign(&json!({"id": "behind", "name": "n", "stock": 5,
            "opens_at": opened.to_rfc3339()}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("campaign json");
    assert_eq!(created["status"], "open");
    assert_eq!(
        app.issue("behind", "u-1").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(app.campaign("behind").await["status"], "open");
    assert_eq!(stats(&app, "behind").await["status"], "open");
    assert_eq!(listed_status(&app, "behind").await, "open");
    let grown = admin(
        &app,
        Method::POST,
        "/v1/campaigns/behind/stock",
        Some(json!({"add": 5})),
    )
    .await;
    assert_eq!(grown["stock"], 10);
    assert_eq!(grown["status"], "open");

    assert_eq!(close(&app, "behind").await["status"], "closed");
    assert_problem(app.issue("behind", "u-2").await, StatusCode::CONFLICT).await;
    assert_eq!(app.campaign("behind").await["status"], "closed");

    assert_skew_reported(&app, -3600.0).await;
    app.stop().await;
}

#[tokio::test]
async fn a_campaign_closing_soon_by_redis_is_shown_closed_once_accept_refuses() {
    let app = spawn_app_with(|config| config.clock_offset = TimeDelta::hours(-1)).await;
    let closes = Utc::now() + TimeDelta::milliseconds(300);
    let created = app
        .create_campaign(&json!({"id": "soon", "name": "n", "stock": 5,
            "closes_at": closes.to_rfc3339()}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    // Until accept refuses, keep pressing; from then on every view agrees.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut user = 0;
    loop {
        user += 1;
        let answer = app.issue("soon", &format!("u-{user}")).await.status();
        if answer == StatusCode::CONFLICT {
            break;
        }
        assert_eq!(answer, StatusCode::ACCEPTED);
        assert!(
            tokio::time::Instant::now() < deadline,
            "accept never closed"
        );
    }
    assert_eq!(app.campaign("soon").await["status"], "closed");
    assert_eq!(stats(&app, "soon").await["status"], "closed");
    app.stop().await;
}
