//! Inputs schemathesis (`scripts/schemathesis`) found mishandled, kept as regressions.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

/// A NUL character in a campaign name is the client's mistake (400), not a PostgreSQL outage
/// (503): PostgreSQL's text cannot store U+0000.
#[tokio::test]
async fn a_nul_in_a_campaign_name_is_a_400_not_a_503() {
    let app = spawn_app().await;
    let response = app
        .create_campaign(&json!({"name": "drop\u{0}1", "stock": 1}))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: serde_json::Value = response.json().await.expect("problem body");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("name")),
        "{problem}"
    );
    app.stop().await;
}
