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

/// Issue 10, §5: `ready` set but the registry entry lost (an `SADD` lost on another Cluster node,
/// a failover). A worker started afterwards hears no notification (the publishes happened while
/// none listened), so only a sweep can find the campaign: its queue must still be decided and the
/// log entries left pending on a dead worker claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_campaign_missing_from_the_registry_is_still_swept() {
    let mut app = spawn_app().await;
    let campaign = app.open_campaign(100).await;
    let id = CampaignId::parse(campaign.clone()).unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let body: Value = app
            .issue(&campaign, &format!("early-{n}"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    // A worker decides them and reads the log, then dies: its entries stay pending on it.
    let decided = app.queue.decide(&id, 256).await.unwrap().expect("warm");
    assert_eq!(decided.decided, 5);
    let taken = app.queue.read_log(&id, "dead-worker", 100).await.unwrap();
    assert_eq!(taken.len(), 1);
    // More requests queue while no worker listens.
    for n in 0..5 {
        let body: Value = app
            .issue(&campaign, &format!("late-{n}"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    // The fault: the registry loses the campaign, which stays ready.
    let mut redis = app.env.redis().await.unwrap();
    let registry = app.queue.keys().registry();
    let removed: i64 = redis::cmd("SREM")
        .arg(&registry)
        .arg(&campaign)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(app.queue.campaigns().await.unwrap().is_empty());

    app.start_worker_with(&[
        ("RUSHLINE_CLAIM_IDLE_MS", "200"),
        ("RUSHLINE_SWEEP_MS", "100"),
    ]);
    // Bounded well below `final_status`'s own limit: without the repair nothing ever happens.
    tokio::time::timeout(std::time::Duration::from_secs(30), app.drained(&campaign))
        .await
        .expect("queue decided and stale log entries persisted");
    for request in &ids {
        assert_eq!(
            app.final_status(request).await["status"],
            "issued",
            "{request}"
        );
    }
    assert_eq!(
        rushline_testkit::recorded_rows(&app.store, &id)
            .await
            .unwrap(),
        10
    );
    assert_eq!(app.queue.campaigns().await.unwrap(), vec![id.clone()]);
    rushline_testkit::audit(&app.store, &id)
        .await
        .unwrap()
        .assert_guarantees();
    app.stop().await;
}
