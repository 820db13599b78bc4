use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let campaign = app.open_campaign(1).await;
    app.issue(&campaign, "u-1").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("rushline_requests_total"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(
        app.client.get(app.url("/nope")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.client
            .put(app.url("/v1/campaigns"))
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert_problem(
        app.client
            .delete(app.url("/v1/requests/x"))
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn readiness_reports_a_dead_redis_as_503_quickly() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.shared.redis_url = "redis://127.0.0.1:1".into();
        config.backend_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    // The hot path fails the same way: 503, never a hang or a 500.
    let response = app.issue("any-campaign", "u-1").await;
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    app.stop().await;
}
