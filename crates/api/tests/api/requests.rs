use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with_workers};

#[tokio::test]
async fn a_request_is_queued_then_issued_and_wait_answers_on_decision() {
    let mut app = spawn_app().await;
    let campaign = app.open_campaign(10).await;
    let response = app.issue(&campaign, "u-123").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/requests/{id}"));
    assert_eq!(
        body,
        json!({"request_id": id, "status": "queued", "campaign_id": campaign})
    );

    // No worker yet: still queued, no code, no decision time.
    let queued: Value = app.request_status(&id, None).await.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["user_id"], "u-123");
    assert!(queued["coupon_code"].is_null() && queued["decided_at"].is_null());

    // A caller parked on ?wait=30 is answered when the worker decides, not when 30 s pass.
    let waiter = {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/v1/requests/{id}?wait=30")),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            (body, started.elapsed())
        })
    };
    app.start_worker();
    let (issued, waited) = waiter.await.unwrap();
    assert_eq!(issued["status"], "issued", "{issued}");
    assert!(
        waited < Duration::from_secs(20),
        "woken by the decision, not the timeout ({waited:?})"
    );
    let code = issued["coupon_code"].as_str().unwrap();
    assert!(rushline_domain::CouponCode::parse(code).is_ok(), "{code}");
    assert!(issued["decided_at"].as_str().unwrap().ends_with('Z'));

    // Once persisted, PostgreSQL agrees (and serves it when Redis has forgotten it).
    app.drained(&campaign).await;
    let from_record = app
        .store
        .request(rushline_domain::RequestId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_record.coupon_code.unwrap().as_str(), code);
    app.stop().await;
}

#[tokio::test]
async fn refusals_by_campaign_state() {
    let app = spawn_app().await;
    assert_problem(
        app.issue("no-such-campaign", "u").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(app.issue("Not-Valid", "u").await, StatusCode::NOT_FOUND).await;
    app.create_campaign(
        &json!({"id": "soon", "name": "n", "stock": 1, "opens_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_problem(app.issue("soon", "u").await, StatusCode::CONFLICT).await;
    app.create_campaign(
        &json!({"id": "over", "name": "n", "stock": 1, "closes_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_problem(app.issue("over", "u").await, StatusCode::CONFLICT).await;
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_4xx_problems() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10).await;
    let url = app.url(&format!("/v1/campaigns/{campaign}/requests"));
    for body in [
        json!({"user_id": ""}),
        json!({"user_id": "x".repeat(129)}),
        json!({"user_id": "tab\there"}),
        json!({"user_id": 42}),
        json!({"user": "u"}),
        json!({}),
        json!("u-1"),
    ] {
        let response = app.client.post(&url).json(&body).send().await.unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    let post_raw = |content_type: &'static str, body: String| {
        app.client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        post_raw("application/json", "{".into()).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        post_raw("application/json", String::new()).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        post_raw("text/plain", "{\"user_id\":\"u\"}".into())
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    let huge = format!("{{\"user_id\": \"{}\"}}", "u".repeat(2 << 20));
    assert_problem(
        post_raw("application/json", huge).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let no_body = app.client.post(&url).send().await.unwrap();
    assert_problem(no_body, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // 128 characters (multi-byte) is the limit, not 128 bytes.
    let response = app
        .client
        .post(&url)
        .json(&json!({"user_id": "ü".repeat(128)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_and_never_enqueue_twice() {
    let mut app = spawn_app().await;
    let campaign = app.open_campaign(10).await;
    // Racing retries with one key: one request id, one queued request.
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url) = (
                app.client.clone(),
                app.url(&format!("/v1/campaigns/{campaign}/requests")),
            );
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("Idempotency-Key", "retry-1")
                    .json(&json!({"user_id": "u-1"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                response.json::<Value>().await.unwrap()["request_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for racer in racers {
        ids.push(racer.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry got the same id");
    let campaign_id = rushline_domain::CampaignId::parse(campaign.clone()).unwrap();
    assert_eq!(app.queue.queue_len(&campaign_id).await.unwrap(), 1);

    // The same key with another user is a 422.
    let other = app.issue_with_key(&campaign, "u-2", Some("retry-1")).await;
    assert_problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Keys are per campaign.
    let elsewhere = app.open_campaign(1).await;
    let fresh: Value = app
        .issue_with_key(&elsewhere, "u-2", Some("retry-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(fresh["request_id"], ids[0].as_str());
    // Bad keys are 400.
    let long = "k".repeat(129);
    assert_problem(
        app.issue_with_key(&campaign, "u-1", Some(&long)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Once decided, a retry answers the final status at once.
    app.start_worker();
    let decided = app.final_status(&ids[0]).await;
    assert_eq!(decided["status"], "issued");
    let replay = app.issue_with_key(&campaign, "u-1", Some("retry-1")).await;
    assert_eq!(replay.status(), StatusCode::OK);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay, decided);
    app.stop().await;
}

#[tokio::test]
async fn sold_out_is_answered_at_once_and_still_resolves_and_persists() {
    let app = spawn_app_with_workers(1).await;
    let campaign = app.open_campaign(1).await;
    let first: Value = app.issue(&campaign, "winner").await.json().await.unwrap();
    let first_id = first["request_id"].as_str().unwrap();
    assert_eq!(app.final_status(first_id).await["status"], "issued");

    let late = app.issue(&campaign, "late").await;
    assert_eq!(late.status(), StatusCode::OK);
    let late: Value = late.json().await.unwrap();
    assert_eq!(late["status"], "sold_out");
    assert!(late["decided_at"].is_string());
    let again = app.issue(&campaign, "winner").await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["status"], "duplicate",
        "duplicate takes precedence over sold_out"
    );

    for request in [&late, &again] {
        let id = request["request_id"].as_str().unwrap();
        let read: Value = app.request_status(id, None).await.json().await.unwrap();
        assert_eq!(&read, request);
    }
    app.drained(&campaign).await;
    let audit = rushline_testkit::audit(
        &app.store,
        &rushline_domain::CampaignId::parse(campaign.clone()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(audit.by_status, (1, 1, 1));
    assert_eq!(app.campaign(&campaign).await["status"], "sold_out");
    app.stop().await;
}

#[tokio::test]
async fn status_reads_validate_ids_and_wait() {
    let app = spawn_app().await;
    assert_problem(
        app.request_status("not-a-uuid", None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    assert_problem(
        app.request_status(unknown, None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.request_status(unknown, Some(1)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for wait in ["-1", "1.5", "abc", "", "1e3"] {
        let response = app
            .client
            .get(app.url(&format!("/v1/requests/{unknown}?wait={wait}")))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    // A queued request with a short wait answers queued when the wait runs out.
    let campaign = app.open_campaign(1).await;
    let body: Value = app.issue(&campaign, "u").await.json().await.unwrap();
    let response = app
        .request_status(body["request_id"].as_str().unwrap(), Some(1))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "queued");
    app.stop().await;
}
