use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn creating_a_campaign_returns_it_and_get_reads_it_back() {
    let app = spawn_app().await;
    let response = app
        .create_campaign(
            &json!({"id": "concert-2026", "name": "Concert presale", "stock": 1000,
            "opens_at": "2020-01-01T10:00:00Z", "closes_at": "2099-12-01T12:00:00+01:00"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/v1/campaigns/concert-2026");
    let created: Value = response.json().await.unwrap();
    let expected = json!({"id": "concert-2026", "name": "Concert presale", "stock": 1000, "remaining": 1000,
        "issued": 0, "status": "open", "opens_at": "2020-01-01T10:00:00.000Z", "closes_at": "2099-12-01T11:00:00.000Z",
        "decide": "queued", "shards": 1});
    assert_eq!(created, expected);
    assert_eq!(app.campaign("concert-2026").await, expected);
    app.stop().await;
}

#[tokio::test]
async fn ids_are_generated_when_absent_and_conflicts_are_409() {
    let app = spawn_app().await;
    let id = app.open_campaign(5).await;
    assert!(rushline_domain::CampaignId::parse(id.clone()).is_ok());
    let again = app
        .create_campaign(&json!({"id": id, "name": "x", "stock": 1}))
        .await;
    assert_problem(again, StatusCode::CONFLICT).await;
    app.stop().await;
}

#[tokio::test]
async fn statuses_follow_the_window() {
    let app = spawn_app().await;
    let scheduled = app
        .create_campaign(
            &json!({"id": "later", "name": "n", "stock": 1, "opens_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(scheduled.status(), StatusCode::CREATED);
    assert_eq!(app.campaign("later").await["status"], "scheduled");
    let closed = app
        .create_campaign(&json!({"id": "past", "name": "n", "stock": 1,
            "opens_at": "2020-01-01T00:00:00Z", "closes_at": "2020-01-02T00:00:00Z"}))
        .await;
    assert_eq!(closed.status(), StatusCode::CREATED);
    assert_eq!(app.campaign("past").await["status"], "closed");
    app.stop().await;
}

#[tokio::test]
async fn invalid_campaigns_are_400() {
    let app = spawn_app().await;
    let cases = [
        json!({"id": "", "name": "n", "stock": 1}),
        json!({"id": "Upper", "name": "n", "stock": 1}),
        json!({"id": "x".repeat(65), "name": "n", "stock": 1}),
        json!({"id": 7, "name": "n", "stock": 1}),
        json!({"stock": 1}),
        json!({"name": "", "stock": 1}),
        json!({"name": "n".repeat(201), "stock": 1}),
        json!({"name": "n"}),
        json!({"name": "n", "stock": 0}),
        json!({"name": "n", "stock": 100_000_001}),
        json!({"name": "n", "stock": 1.5}),
        json!({"name": "n", "stock": "10"}),
        json!({"name": "n", "stock": -3}),
        json!({"name": "n", "stock": 1, "opens_at": "tomorrow"}),
        json!({"name": "n", "stock": 1, "opens_at": "2026-12-01T12:00:00Z", "closes_at": "2026-12-01T12:00:00Z"}),
        json!({"name": "n", "stock": 1, "opens_at": "2026-12-01T12:00:00Z", "closes_at": "2026-12-01T11:00:00Z"}),
        json!([1, 2]),
        json!(null),
    ];
    for case in cases {
        let response = app.create_campaign(&case).await;
        let body = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{case}");
    }
    let not_json = app
        .client
        .post(app.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, StatusCode::BAD_REQUEST).await;
    let wrong_type = app
        .client
        .post(app.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = app
        .client
        .post(app.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"name\": \"{}\", \"stock\": 1}}",
            "x".repeat(2 << 20)
        ))
        .send()
        .await
        .unwrap();
    assert_problem(huge, StatusCode::PAYLOAD_TOO_LARGE).await;
    app.stop().await;
}

#[tokio::test]
async fn shards_default_to_one_and_are_echoed_on_create_get_and_list() {
    let app = spawn_app().await;
    for (id, shards, expected) in [
        ("plain", None, 1),
        ("nulled", Some(Value::Null), 1),
        ("three", Some(json!(3)), 3),
        ("whole", Some(json!(4.0)), 4),
        ("widest", Some(json!(64)), 64),
        ("single", Some(json!(1)), 1),
    ] {
        let mut body = json!({"id": id, "name": "Sharded", "stock": 10});
        if let Some(shards) = shards {
            body["shards"] = shards;
        }
        let response = app.create_campaign(&body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{body}");
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["shards"], expected, "{body}");
        // GET reads Redis's state (warmed from the record) and must agree.
        assert_eq!(app.campaign(id).await["shards"], expected, "{body}");
    }
    // A cold read: Redis forgets every campaign and GET warms it again from PostgreSQL.
    assert!(app.env.flush_redis().await.unwrap() > 0);
    assert_eq!(app.campaign("three").await["shards"], 3);
    let listed: Value = app
        .client
        .get(app.url("/v1/campaigns?limit=10"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let three = listed["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "three")
        .unwrap();
    assert_eq!(three["shards"], 3);
    // Requests are still decided (on one slot) for a campaign created with several shards.
    let accepted = app.issue("three", "u-1").await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test]
async fn invalid_shards_are_400_naming_the_field() {
    let app = spawn_app().await;
    for bad in [
        json!(0),
        json!(65),
        json!(-1),
        json!(1.5),
        json!("3"),
        json!(true),
        json!([2]),
        json!({"n": 2}),
        json!(1e30),
    ] {
        let body = json!({"name": "n", "stock": 1, "shards": bad});
        let response = app.create_campaign(&body).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("shards"), "{body}: {detail}");
    }
    let listed: Value = app
        .client
        .get(app.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["campaigns"], json!([]), "nothing was created");
    app.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_token() {
    let app = spawn_app().await;
    let body = json!({"name": "n", "stock": 1});
    let missing = app
        .client
        .post(app.url("/v1/campaigns"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_problem(missing, StatusCode::UNAUTHORIZED).await;
    let wrong = app
        .client
        .post(app.url("/v1/campaigns"))
        .bearer_auth("guess")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
    let basic = app
        .client
        .post(app.url("/v1/campaigns"))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED).await;
    app.stop().await;

    let disabled = spawn_app_with(|config| config.admin_token = None).await;
    let response = disabled
        .client
        .post(disabled.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::FORBIDDEN).await;
    disabled.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_campaign_ids_are_404() {
    let app = spawn_app().await;
    for id in ["nope", "UPPER", "%F0%9F%98%80"] {
        let response = app
            .client
            .get(app.url(&format!("/v1/campaigns/{id}")))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
    app.stop().await;
}
