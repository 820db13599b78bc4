//! The record is the last line of defence, and Redis can be rebuilt from it.

use reqwest::StatusCode;
use rushline_domain::CampaignId;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with_workers};

#[tokio::test]
async fn a_decision_the_record_refuses_is_rolled_back_in_redis() {
    let mut app = spawn_app().await;
    let campaign = app.open_campaign(3).await;
    // Plant a coupon Redis does not know about: "mallory" already holds one in the record.
    let planted = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO requests (request_id, campaign_id, user_id, status, coupon_code, decided_at)
         VALUES ($1, $2, 'mallory', 'issued', 'RL-0000-0000', now())",
    )
    .bind(planted)
    .bind(&campaign)
    .execute(app.store.pool())
    .await
    .unwrap();

    let body: Value = app.issue(&campaign, "mallory").await.json().await.unwrap();
    let id = body["request_id"].as_str().unwrap().to_owned();
    app.start_worker();
    app.drained(&campaign).await;

    // The record refused the second coupon: the request ends as the record says.
    let reported = app.final_status(&id).await;
    assert_eq!(reported["status"], "duplicate", "{reported}");
    assert!(reported["coupon_code"].is_null());
    let recorded = app
        .store
        .request(rushline_domain::RequestId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.status, rushline_domain::RequestStatus::Duplicate);
    let audit = rushline_testkit::audit(&app.store, &CampaignId::parse(campaign.clone()).unwrap())
        .await
        .unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.issued_rows, 1);
    // Redis now agrees with the record, and knows mallory holds a coupon.
    let view = app.campaign(&campaign).await;
    assert_eq!(
        (view["issued"].as_i64(), view["remaining"].as_i64()),
        (Some(1), Some(2))
    );
    let again: Value = app.issue(&campaign, "mallory").await.json().await.unwrap();
    assert_eq!(
        app.final_status(again["request_id"].as_str().unwrap())
            .await["status"],
        "duplicate"
    );
    app.stop().await;
}

#[tokio::test]
async fn redis_losing_its_data_is_rebuilt_from_the_record() {
    let app = spawn_app_with_workers(2).await;
    let campaign = app.open_campaign(3).await;
    for user in ["ann", "bob"] {
        let body: Value = app.issue(&campaign, user).await.json().await.unwrap();
        assert_eq!(
            app.final_status(body["request_id"].as_str().unwrap()).await["status"],
            "issued"
        );
    }
    app.drained(&campaign).await;

    // Redis comes back empty.
    assert!(app.env.flush_redis().await.unwrap() > 0);

    // Remaining stock is the record's stock minus issued rows; holders are remembered.
    let view = app.campaign(&campaign).await;
    assert_eq!(
        (view["issued"].as_i64(), view["remaining"].as_i64()),
        (Some(2), Some(1))
    );
    let ann: Value = app.issue(&campaign, "ann").await.json().await.unwrap();
    assert_eq!(
        app.final_status(ann["request_id"].as_str().unwrap()).await["status"],
        "duplicate"
    );
    let cat: Value = app.issue(&campaign, "cat").await.json().await.unwrap();
    assert_eq!(
        app.final_status(cat["request_id"].as_str().unwrap()).await["status"],
        "issued"
    );
    let dan = app.issue(&campaign, "dan").await;
    assert_eq!(dan.status(), StatusCode::OK);
    app.drained(&campaign).await;
    let audit = rushline_testkit::audit(&app.store, &CampaignId::parse(campaign.clone()).unwrap())
        .await
        .unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.by_status, (3, 1, 1));
    app.stop().await;
}

#[tokio::test]
async fn the_status_of_an_old_request_comes_from_the_record() {
    let app = spawn_app_with_workers(1).await;
    let campaign = app.open_campaign(1).await;
    let body: Value = app.issue(&campaign, "u").await.json().await.unwrap();
    let id = body["request_id"].as_str().unwrap().to_owned();
    let decided = app.final_status(&id).await;
    app.drained(&campaign).await;
    app.env.flush_redis().await.unwrap();
    let read: Value = app.request_status(&id, None).await.json().await.unwrap();
    assert_eq!(read, decided);
    app.stop().await;
}
