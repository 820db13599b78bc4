//! `GET /metrics` after traffic: outcomes, latency, queue depth, backend errors.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with};

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The sample line of `metric` whose labels include every one of `labels`.
fn sample<'a>(text: &'a str, metric: &str, labels: &[&str]) -> Option<&'a str> {
    text.lines().find(|line| {
        line.starts_with(metric)
            && line[metric.len()..].starts_with(['{', ' '])
            && labels.iter().all(|label| line.contains(label))
    })
}

fn value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn metrics_cover_outcomes_latency_and_queue_depth() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(1).await;
    for user in ["u-1", "u-2", "u-3"] {
        assert_eq!(
            app.issue(&campaign, user).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let closed = app
        .create_campaign(&json!({"id": "gone", "name": "n", "stock": 1,
            "opens_at": "2020-01-01T00:00:00Z", "closes_at": "2020-01-02T00:00:00Z"}))
        .await;
    assert_eq!(closed.status(), StatusCode::CREATED);
    assert_eq!(
        app.issue("gone", "u-1").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.issue("no-such", "u-1").await.status(),
        StatusCode::NOT_FOUND
    );

    let text = scrape(&app).await;
    let accepted = sample(&text, "rushline_requests_accepted_total", &[]).expect(&text);
    assert!(value(accepted) >= 3.0, "{accepted}");
    for reason in ["closed", "unknown_campaign"] {
        let label = format!("reason=\"{reason}\"");
        assert!(
            sample(&text, "rushline_requests_refused_total", &[&label]).is_some(),
            "{reason}: {text}"
        );
    }
    // Latency by route template, as a histogram (buckets aggregate across replicas).
    let route = "route=\"/v1/campaigns/{id}/requests\"";
    assert!(
        sample(
            &text,
            "rushline_http_request_duration_seconds_bucket",
            &[route, "method=\"POST\"", "status=\"202\"", "le=\"+Inf\""]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "rushline_http_request_duration_seconds_count",
            &[route]
        )
        .is_some()
    );
    // Raw paths never become labels.
    assert!(
        !text.contains(&format!("route=\"/v1/campaigns/{campaign}")),
        "{text}"
    );
    // Queue depth of this campaign: three requests and no worker.
    let depth = sample(
        &text,
        "rushline_queue_depth",
        &[&format!("campaign=\"{campaign}\"")],
    )
    .expect(&text);
    assert_eq!(value(depth), 3.0, "{depth}");
    assert!(text.contains("# TYPE rushline_http_request_duration_seconds histogram"));
    // Pool usage: the scrape itself used Redis and the app holds PostgreSQL connections.
    for backend in ["redis", "postgres"] {
        let total: f64 = ["in_use", "idle"]
            .iter()
            .map(|state| {
                let labels = [
                    format!("backend=\"{backend}\""),
                    format!("state=\"{state}\""),
                ];
                let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                value(sample(&text, "rushline_pool_connections", &labels).expect(&text))
            })
            .sum();
        assert!(total >= 1.0, "{backend} pool: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn stats_refresh_the_persistence_lag_gauge() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5).await;
    let stats = app
        .client
        .get(app.url(&format!("/v1/campaigns/{campaign}/stats")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    let text = scrape(&app).await;
    let label = format!("campaign=\"{campaign}\"");
    assert!(
        sample(&text, "rushline_persistence_lag_seconds", &[&label]).is_some(),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn backend_failures_are_counted_by_backend() {
    let app = spawn_app_with(|config| {
        config.shared.redis_url = "redis://127.0.0.1:1".into();
        config.backend_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let response = app.issue("any-campaign", "u-1").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = scrape(&app).await;
    let redis = sample(
        &text,
        "rushline_backend_errors_total",
        &["backend=\"redis\""],
    )
    .expect(&text);
    assert!(value(redis) >= 1.0, "{redis}");
    app.stop().await;
}
