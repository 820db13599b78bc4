//! `X-Request-Id`: kept when usable, generated otherwise, echoed on every response.

use reqwest::{Response, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_app;

fn echoed(response: &Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an X-Request-Id on the response")
        .to_owned()
}

#[tokio::test]
async fn a_usable_request_id_is_echoed_and_others_are_replaced() {
    let app = spawn_app().await;
    let get = |id: Option<&str>| {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };

    for kept in [
        "lb-7f3a",
        "a",
        "with spaces ~ and symbols !#",
        &"x".repeat(128),
    ] {
        let response = get(Some(kept)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(echoed(&response), kept);
    }

    // None, too long, or not printable ASCII: a fresh UUID each time.
    let mut generated = Vec::new();
    for replaced in [None, Some("x".repeat(129)), Some("tab\tinside".to_owned())] {
        let response = get(replaced.as_deref()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = echoed(&response);
        assert!(
            Uuid::parse_str(&id).is_ok(),
            "{id:?} is not a generated UUID"
        );
        generated.push(id);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 3, "every request gets its own id");

    // Two ids at once are ambiguous: replaced too.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "one")
        .header("X-Request-Id", "two")
        .send()
        .await
        .unwrap();
    assert!(Uuid::parse_str(&echoed(&response)).is_ok());
    app.stop().await;
}

#[tokio::test]
async fn problem_responses_carry_the_request_id_too() {
    let app = spawn_app().await;
    let unknown_route = app
        .client
        .get(app.url("/no/such/route"))
        .header("X-Request-Id", "trace-404")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_route.status(), StatusCode::NOT_FOUND);
    assert_eq!(echoed(&unknown_route), "trace-404");

    let bad_body = app
        .client
        .post(app.url("/v1/campaigns"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("X-Request-Id", "trace-400")
        .json(&json!({"name": "", "stock": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_body.status(), StatusCode::BAD_REQUEST);
    assert_eq!(echoed(&bad_body), "trace-400");

    let unauthorized = app
        .client
        .get(app.url("/v1/campaigns"))
        .header("X-Request-Id", "trace-401")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(echoed(&unauthorized), "trace-401");
    app.stop().await;
}
