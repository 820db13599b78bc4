//! Guarantees under concurrency: many clients, three workers, real Redis and PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use rushline_domain::CampaignId;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::helpers::{TestApp, spawn_app_with_workers};

/// One answered POST, with the client's own clock around it.
#[derive(Debug, Clone)]
struct Sent {
    campaign: String,
    user: String,
    request_id: String,
    sent_at: Instant,
    answered_at: Instant,
}

async fn post(app: &Arc<TestApp>, campaign: &str, user: &str, key: Option<&str>) -> Sent {
    let sent_at = Instant::now();
    let response = app.issue_with_key(campaign, user, key).await;
    let answered_at = Instant::now();
    let status = response.status();
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "POST answered {status}"
    );
    let body: Value = response.json().await.unwrap();
    Sent {
        campaign: campaign.to_owned(),
        user: user.to_owned(),
        request_id: body["request_id"].as_str().unwrap().to_owned(),
        sent_at,
        answered_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spike_across_campaigns_keeps_every_guarantee() {
    let app = Arc::new(spawn_app_with_workers(3).await);
    let big = app.open_campaign(300).await;
    let small = app.open_campaign(7).await;
    let clients = Arc::new(Semaphore::new(64));
    let mut tasks = JoinSet::new();
    // 2,400 users on the big campaign (600 press twice, the second after their first answer),
    // 200 users on the small one, and 50 clients retrying with one idempotency key three times
    // at once.
    for n in 0..2_600 {
        let (app, clients) = (app.clone(), clients.clone());
        let campaign = if n < 2_400 {
            big.clone()
        } else {
            small.clone()
        };
        tasks.spawn(async move {
            let user = format!("user-{n}");
            let presses = if n < 600 { 2 } else { 1 };
            let mut sent = Vec::new();
            for _ in 0..presses {
                let _client = clients.acquire().await.unwrap();
                sent.push(post(&app, &campaign, &user, None).await);
            }
            sent
        });
    }
    for n in 0..50 {
        let (app, clients, campaign) = (app.clone(), clients.clone(), big.clone());
        tasks.spawn(async move {
            let user = format!("retrier-{n}");
            let key = format!("key-{n}");
            let mut racing = JoinSet::new();
            for _ in 0..3 {
                let (app, clients, campaign, user, key) = (
                    app.clone(),
                    clients.clone(),
                    campaign.clone(),
                    user.clone(),
                    key.clone(),
                );
                racing.spawn(async move {
                    let _client = clients.acquire().await.unwrap();
                    post(&app, &campaign, &user, Some(&key)).await
                });
            }
            let sent: Vec<Sent> = racing.join_all().await;
            let ids: HashSet<&str> = sent.iter().map(|s| s.request_id.as_str()).collect();
            assert_eq!(ids.len(), 1, "racing retries of one key got one request id");
            vec![sent[0].clone()]
        });
    }
    let sent: Vec<Sent> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(sent.len(), 2_400 + 600 + 200 + 50);

    // Guarantee 4: every accepted request reaches a final status.
    let mut finals: HashMap<String, Value> = HashMap::new();
    let mut resolving = JoinSet::new();
    for chunk in sent.chunks(100) {
        let (app, ids) = (
            app.clone(),
            chunk
                .iter()
                .map(|s| s.request_id.clone())
                .collect::<Vec<_>>(),
        );
        resolving.spawn(async move {
            let mut out = Vec::new();
            for id in ids {
                out.push((id.clone(), app.final_status(&id).await));
            }
            out
        });
    }
    for (id, body) in resolving.join_all().await.into_iter().flatten() {
        finals.insert(id, body);
    }
    assert_eq!(finals.len(), sent.len(), "request ids are unique");

    for campaign in [&big, &small] {
        app.drained(campaign).await;
        let id = CampaignId::parse(campaign.clone()).unwrap();
        let audit = rushline_testkit::audit(&app.store, &id).await.unwrap();
        // Guarantees 1–3 in the record; demand exceeds stock, so exactly `stock` are issued.
        audit.assert_guarantees();
        assert_eq!(audit.issued_rows, audit.stock, "{campaign}: {audit:?}");
        let mine: Vec<&Sent> = sent.iter().filter(|s| &s.campaign == campaign).collect();
        assert_eq!(
            rushline_testkit::recorded_rows(&app.store, &id)
                .await
                .unwrap(),
            mine.len() as i64,
            "every request recorded once"
        );

        // The API and the record agree, request by request (guarantee 6 too).
        let mut per_user_issued: HashMap<&str, usize> = HashMap::new();
        for s in &mine {
            let reported = &finals[&s.request_id];
            let recorded = app
                .store
                .request(rushline_domain::RequestId::parse(&s.request_id).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(reported["status"], recorded.status.as_str());
            assert_eq!(reported["user_id"], s.user.as_str());
            if recorded.status == rushline_domain::RequestStatus::Issued {
                *per_user_issued.entry(&s.user).or_default() += 1;
            }
        }
        assert!(per_user_issued.values().all(|&n| n == 1));
        let view = app.campaign(campaign).await;
        assert_eq!(view["issued"], audit.issued_rows);
        assert_eq!(view["remaining"], audit.stock - audit.issued_rows);
        assert_eq!(view["status"], "sold_out");

        // Guarantee 5: nobody sent after a sold_out answer came back was issued.
        let first_refusal = mine
            .iter()
            .filter(|s| finals[&s.request_id]["status"] == "sold_out")
            .map(|s| s.answered_at)
            .min()
            .expect("demand exceeds stock, so someone was refused");
        let overtaking: Vec<&&Sent> = mine
            .iter()
            .filter(|s| s.sent_at > first_refusal && finals[&s.request_id]["status"] == "issued")
            .collect();
        assert!(
            overtaking.is_empty(),
            "issued after an earlier request was refused: {overtaking:?}"
        );
    }
    Arc::into_inner(app).expect("no other handles").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_are_served_first_come_first_served() {
    // Queue them one after another with no worker running, so the queue's order decides.
    let mut app = crate::helpers::spawn_app().await;
    let campaign = app.open_campaign(5).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let response = app.issue(&campaign, &format!("fan-{n}")).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        app.start_worker();
    }
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(
            app.final_status(id).await["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let expected: Vec<&str> = std::iter::repeat_n("issued", 5)
        .chain(std::iter::repeat_n("sold_out", 15))
        .collect();
    assert_eq!(statuses, expected);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deep_queue_decided_by_pipelined_calls_keeps_queue_order() {
    // 600 requests queued one after another with no worker running; then three workers with
    // small batches and four decide calls in flight each, so a dozen calls race for the queue.
    // Every call pops the head atomically: exactly the first `stock` in queue order are issued,
    // with distinct codes, and the record agrees.
    const QUEUED: usize = 600;
    const STOCK: u64 = 250;
    let mut app = crate::helpers::spawn_app().await;
    let campaign = app.open_campaign(STOCK).await;
    let mut ids = Vec::with_capacity(QUEUED);
    for n in 0..QUEUED {
        let response = app.issue(&campaign, &format!("deep-{n}")).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        app.start_worker_with(&[
            ("RUSHLINE_DECIDE_BATCH", "8"),
            ("RUSHLINE_DECIDE_IN_FLIGHT", "4"),
        ]);
    }
    let mut codes = HashSet::new();
    for (position, id) in ids.iter().enumerate() {
        let status = app.final_status(id).await;
        let expected = if position < STOCK as usize {
            "issued"
        } else {
            "sold_out"
        };
        assert_eq!(
            status["status"], expected,
            "request {position} in queue order"
        );
        if expected == "issued" {
            assert!(codes.insert(status["coupon_code"].as_str().unwrap().to_owned()));
        }
    }
    app.drained(&campaign).await;
    let id = CampaignId::parse(campaign.clone()).unwrap();
    let audit = rushline_testkit::audit(&app.store, &id).await.unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.issued_rows, STOCK as i64);
    assert_eq!(
        rushline_testkit::recorded_rows(&app.store, &id)
            .await
            .unwrap(),
        QUEUED as i64
    );
    app.stop().await;
}
