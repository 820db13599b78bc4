//! Instant mode (`"decide": "instant"`, issue 13 §4): the accept step decides and the API answers
//! `200` with the final status (and the coupon code when issued) at once; workers only persist.
//! Every guarantee is checked as for the queued mode, in Redis and in PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rushline_domain::{CampaignId, RequestId};
use rushline_testkit::guarantees::{self, Answered, Record, Reported};
use rushline_testkit::lagging::LaggingReplica;
use rushline_testkit::{audit, eventually};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::helpers::{ADMIN_TOKEN, TestApp, assert_problem, spawn_app, spawn_app_with_workers};

/// Creates an open instant campaign with `stock` and returns its id.
async fn instant_campaign(app: &TestApp, stock: u64) -> String {
    let response = app
        .create_campaign(&json!({"name": "Instant drop", "stock": stock, "decide": "instant"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["decide"], "instant");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn campaigns_echo_their_decide_mode_and_refuse_any_other() {
    let app = spawn_app().await;
    let plain = app.open_campaign(3).await;
    assert_eq!(app.campaign(&plain).await["decide"], "queued");
    let queued = app
        .create_campaign(&json!({"id": "q-mode", "name": "Q", "stock": 3, "decide": "queued"}))
        .await;
    assert_eq!(queued.status(), StatusCode::CREATED);
    assert_eq!(queued.json::<Value>().await.unwrap()["decide"], "queued");
    let instant = instant_campaign(&app, 3).await;
    assert_eq!(app.campaign(&instant).await["decide"], "instant");

    // The admin list shows it too.
    let list: Value = app
        .client
        .get(app.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let modes: HashMap<String, String> = list["campaigns"]
        .as_array()
        .expect("campaigns array")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["decide"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(modes[&plain], "queued");
    assert_eq!(modes["q-mode"], "queued");
    assert_eq!(modes[&instant], "instant");

    for bad in [
        json!("Instant"),
        json!("later"),
        json!(""),
        json!(1),
        json!({}),
    ] {
        let response = app
            .create_campaign(&json!({"name": "Bad", "stock": 3, "decide": bad}))
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_instant_request_is_answered_200_with_its_final_status_and_code() {
    let app = spawn_app().await; // no workers: the answer cannot come from one
    let campaign = instant_campaign(&app, 1).await;
    let response = app.issue(&campaign, "alice").await;
    assert_eq!(response.status(), StatusCode::OK);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "issued");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["campaign_id"], campaign.as_str());
    assert!(body["decided_at"].is_string());
    let code = body["coupon_code"]
        .as_str()
        .expect("coupon code")
        .to_owned();
    assert_eq!(
        location,
        format!("/v1/requests/{}", body["request_id"].as_str().unwrap())
    );
    // GET says the same, before any worker persisted it.
    let read: Value = app
        .request_status(body["request_id"].as_str().unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, body);

    // Duplicate takes precedence over sold_out: alice holds the only coupon.
    let again: Value = app.issue(&campaign, "alice").await.json().await.unwrap();
    assert_eq!(again["status"], "duplicate");
    assert!(again["coupon_code"].is_null());
    let bob: Value = app.issue(&campaign, "bob").await.json().await.unwrap();
    assert_eq!(bob["status"], "sold_out");
    let view = app.campaign(&campaign).await;
    assert_eq!(
        (view["issued"].as_u64(), view["remaining"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(view["status"], "sold_out");
    assert_ne!(code, "");
    app.stop().await;
}

#[tokio::test]
async fn an_idempotent_retry_of_an_instant_request_returns_the_same_request_and_status() {
    let mut app = spawn_app().await;
    let campaign = instant_campaign(&app, 5).await;
    let first = app.issue_with_key(&campaign, "carol", Some("k-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "issued");
    let retry = app.issue_with_key(&campaign, "carol", Some("k-1")).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    // Still the same once persisted (the replay then reads PostgreSQL or the expiring record).
    app.start_worker();
    app.drained(&campaign).await;
    let retry: Value = app
        .issue_with_key(&campaign, "carol", Some("k-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retry, first);
    let other = app.issue_with_key(&campaign, "dave", Some("k-1")).await;
    assert_problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(app.campaign(&campaign).await["issued"], 1);
    app.stop().await;
}

/// One POST as its client saw it.
struct Sent {
    user: String,
    request_id: String,
    body: Value,
    sent: std::time::Duration,
    answered: std::time::Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instant_spike_answers_every_request_at_once_and_keeps_every_guarantee() {
    let app = Arc::new(spawn_app_with_workers(2).await);
    let campaign = instant_campaign(&app, 500).await;
    let start = Instant::now();
    let clients = Arc::new(Semaphore::new(64));
    let mut tasks = JoinSet::new();
    // 3,000 requests from 1,500 users: every user presses twice, the second press sent
    // after the first is answered (so it can only be duplicate or sold_out).
    for n in 0..1_500 {
        let (app, clients, campaign) = (app.clone(), clients.clone(), campaign.clone());
        tasks.spawn(async move {
            let user = format!("user-{n}");
            let mut sent = Vec::new();
            for _ in 0..2 {
                let _client = clients.acquire().await.unwrap();
                let at = start.elapsed();
                let response = app.issue(&campaign, &user).await;
                let answered = start.elapsed();
                assert_eq!(response.status(), StatusCode::OK, "instant answers are 200");
                let body: Value = response.json().await.unwrap();
                sent.push(Sent {
                    user: user.clone(),
                    request_id: body["request_id"].as_str().unwrap().to_owned(),
                    body,
                    sent: at,
                    answered,
                });
            }
            sent
        });
    }
    let mut answers = Vec::new();
    while let Some(sent) = tasks.join_next().await {
        answers.extend(sent.unwrap());
    }
    assert_eq!(answers.len(), 3_000);

    // Every answer is final; issued ones carry a code; a user's second press never issues.
    let mut by_user: HashMap<&str, Vec<&Sent>> = HashMap::new();
    for a in &answers {
        let status = a.body["status"].as_str().unwrap();
        assert!(
            ["issued", "sold_out", "duplicate"].contains(&status),
            "{}",
            a.body
        );
        assert_eq!(
            status == "issued",
            a.body["coupon_code"].is_string(),
            "{}",
            a.body
        );
        by_user.entry(&a.user).or_default().push(a);
    }
    for presses in by_user.values() {
        let (first, second) = if presses[0].sent < presses[1].sent {
            (presses[0], presses[1])
        } else {
            (presses[1], presses[0])
        };
        let expected = if first.body["status"] == "issued" {
            "duplicate"
        } else {
            "sold_out"
        };
        assert_eq!(
            second.body["status"], expected,
            "{} then {}",
            first.body, second.body
        );
    }
    let issued: Vec<&Sent> = answers
        .iter()
        .filter(|a| a.body["status"] == "issued")
        .collect();
    assert_eq!(
        issued.len(),
        500,
        "demand exceeded stock: all of it is issued"
    );
    let codes: HashSet<&str> = issued
        .iter()
        .map(|a| a.body["coupon_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 500, "codes are unique");

    // GET returns exactly what the POST answered.
    for a in answers.iter().step_by(7).chain(issued.iter().copied()) {
        let read: Value = app
            .request_status(&a.request_id, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(read, a.body);
    }

    // After the drain, PostgreSQL records every answer as given, and the audit holds.
    app.drained(&campaign).await;
    let record = Record::read(app.store.pool(), std::slice::from_ref(&campaign))
        .await
        .unwrap();
    let answered: Vec<Answered> = answers
        .iter()
        .map(|a| Answered {
            request_id: a.request_id.parse().unwrap(),
            campaign_id: campaign.clone(),
            user_id: a.user.clone(),
            sent: a.sent,
            answered: a.answered,
            told: Some(a.body["status"].as_str().unwrap().to_owned()),
            reported: Some(Reported {
                status: a.body["status"].as_str().unwrap().to_owned(),
                coupon_code: a.body["coupon_code"].as_str().map(str::to_owned),
            }),
        })
        .collect();
    let mut violations = record.violations();
    violations.extend(guarantees::every_answer_recorded(&record, &answered));
    violations.extend(guarantees::first_come_first_served(&answered));
    let view = app.campaign(&campaign).await;
    violations.extend(guarantees::counts_agree(
        &record,
        &campaign,
        view["issued"].as_i64().unwrap(),
        view["remaining"].as_i64().unwrap(),
    ));
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(record.rows.len(), 3_000);
    let id = CampaignId::parse(&campaign).unwrap();
    let audit = rushline_testkit::audit(&app.store, &id).await.unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.issued_rows, 500);
    // Redis agrees with the record: its counters, and nothing was ever queued.
    let state = app.queue.campaign_state(&id).await.unwrap().unwrap();
    assert_eq!((state.issued, state.remaining), (500, 0));
    assert_eq!(app.queue.queue_len(&id).await.unwrap(), 0);
    Arc::into_inner(app)
        .expect("every client task ended")
        .stop()
        .await;
}

/// A failover to a replica that lacks the master's last writes, for an instant campaign (the API
/// decides). An API process compares the campaign's state with the record when it first uses it
/// (and after Redis failed it), so the state is rebuilt before that process decides from it: a
/// new user's `200` carries a code no earlier holder has, the users the lost writes served are
/// `duplicate`, and what each answer said is what the record holds.
#[tokio::test]
async fn an_api_rebuilds_an_instant_campaigns_state_behind_the_record_before_deciding() {
    let mut app = spawn_app().await;
    app.start_worker();
    let campaign = instant_campaign(&app, 3).await;
    let id = CampaignId::parse(&campaign).unwrap();
    let replica = LaggingReplica::copy(&app.queue, &id).await.unwrap();

    // Decided and persisted on the master alone.
    let mut lost = Vec::new();
    let mut lost_codes = HashSet::new();
    for user in ["alice", "bob"] {
        let body: Value = app.issue(&campaign, user).await.json().await.unwrap();
        assert_eq!(body["status"], "issued");
        lost.push(RequestId::parse(body["request_id"].as_str().unwrap()).unwrap());
        lost_codes.insert(body["coupon_code"].as_str().unwrap().to_owned());
    }
    app.drained(&campaign).await;
    replica.take_over(&lost).await.unwrap();
    let epoch = app.store.epoch(&id).await.unwrap();

    // An API process that has not used the campaign since (one that restarted; any process
    // after Redis failed a call of it). Its first use compares the state with the record.
    let other = app.replica().await;
    let view = other
        .client
        .get(format!("{}/v1/campaigns/{campaign}", other.address))
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), StatusCode::OK);
    eventually(
        Duration::from_secs(10),
        "the state behind the record taken out of service or rebuilt",
        async || {
            let state = app.queue.redis_campaign(&id).await.unwrap();
            !state.ready || state.epoch > epoch
        },
    )
    .await;

    let issue = |user: &'static str| {
        let (client, url) = (other.client.clone(), other.address.clone());
        let campaign = campaign.clone();
        async move {
            let response = client
                .post(format!("{url}/v1/campaigns/{campaign}/requests"))
                .json(&json!({"user_id": user}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{user}");
            response.json::<Value>().await.unwrap()
        }
    };
    let carol = issue("carol").await;
    assert_eq!(carol["status"], "issued");
    let code = carol["coupon_code"].as_str().unwrap();
    assert!(!lost_codes.contains(code), "a code the record holds, again");
    assert_eq!(issue("alice").await["status"], "duplicate");
    assert_eq!(issue("dave").await["status"], "sold_out");

    app.drained(&campaign).await;
    let recorded = app
        .final_status(carol["request_id"].as_str().unwrap())
        .await;
    assert_eq!(recorded, carol, "an instant answer never changes");
    let figures = audit(&app.store, &id).await.unwrap();
    figures.assert_guarantees();
    assert_eq!(figures.issued_rows, 3);
    other.stop().await;
    app.stop().await;
}
