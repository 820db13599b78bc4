//! Operator endpoints: campaign list, close now, add stock, stats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use rushline_domain::CampaignId;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{ADMIN_TOKEN, TestApp, assert_problem, spawn_app, spawn_app_with};

/// Sends an admin request with `token` (none: no Authorization header).
async fn admin_as(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("admin request")
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Response {
    admin_as(app, method, path, body, Some(ADMIN_TOKEN)).await
}

async fn ok_json(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json body")
}

async fn stats(app: &TestApp, campaign: &str) -> Value {
    ok_json(
        admin(
            app,
            Method::GET,
            &format!("/v1/campaigns/{campaign}/stats"),
            None,
        )
        .await,
    )
    .await
}

async fn add_stock(app: &TestApp, campaign: &str, add: Value) -> Response {
    admin(
        app,
        Method::POST,
        &format!("/v1/campaigns/{campaign}/stock"),
        Some(json!({ "add": add })),
    )
    .await
}

async fn close(app: &TestApp, campaign: &str) -> Response {
    admin(
        app,
        Method::POST,
        &format!("/v1/campaigns/{campaign}/close"),
        None,
    )
    .await
}

/// Every admin endpoint, with a body where it takes one.
fn endpoints(campaign: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/campaigns".into(), None),
        (
            Method::POST,
            format!("/v1/campaigns/{campaign}/close"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/campaigns/{campaign}/stock"),
            Some(json!({"add": 1})),
        ),
        (Method::GET, format!("/v1/campaigns/{campaign}/stats"), None),
        (
            Method::POST,
            format!("/v1/campaigns/{campaign}/admission"),
            Some(json!({"paused": true})),
        ),
    ]
}

#[tokio::test]
async fn admin_endpoints_need_the_token_and_are_disabled_without_one() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5).await;
    for (method, path, body) in endpoints(&campaign) {
        let missing = admin_as(&app, method.clone(), &path, body.clone(), None).await;
        assert!(missing.headers().contains_key("www-authenticate"), "{path}");
        assert_problem(missing, StatusCode::UNAUTHORIZED).await;
        let wrong = admin_as(&app, method.clone(), &path, body.clone(), Some("guess")).await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
        // A prefix of the right token is as wrong as any other guess.
        let prefix = admin_as(&app, method, &path, body, Some(&ADMIN_TOKEN[..4])).await;
        assert_problem(prefix, StatusCode::UNAUTHORIZED).await;
    }
    // Nothing changed.
    assert_eq!(app.campaign(&campaign).await["stock"], 5);
    assert_eq!(app.campaign(&campaign).await["status"], "open");
    app.stop().await;

    let disabled = spawn_app_with(|config| config.admin_token = None).await;
    for (method, path, body) in endpoints("any") {
        let response = admin(&disabled, method, &path, body).await;
        assert_problem(response, StatusCode::FORBIDDEN).await;
    }
    disabled.stop().await;
}

#[tokio::test]
async fn unknown_campaigns_are_404() {
    let app = spawn_app().await;
    for campaign in ["nope", "Not-An-Id!"] {
        for (method, path, body) in endpoints(campaign).into_iter().skip(1) {
            let response = admin(&app, method, &path, body).await;
            assert_problem(response, StatusCode::NOT_FOUND).await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_admin_input_is_400() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5).await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "after=Bad!",
        "after=",
    ] {
        let response = admin(&app, Method::GET, &format!("/v1/campaigns?{query}"), None).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    for add in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("10"),
        json!(null),
        json!(100_000_001),
    ] {
        let response = add_stock(&app, &campaign, add.clone()).await;
        let body = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("add"),
            "{add}: {body}"
        );
    }
    let path = format!("/v1/campaigns/{campaign}/stock");
    for body in [json!({}), json!({"add": 1, "more": 2}), json!("1")] {
        let response = admin(&app, Method::POST, &path, Some(body)).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    let not_json = app
        .client
        .post(app.url(&path))
        .bearer_auth(ADMIN_TOKEN)
        .body("add=1")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Past the 100,000,000 cap in total, though each part is within it.
    let big = app.open_campaign(99_999_999).await;
    let body = assert_problem(
        add_stock(&app, &big, json!(2)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("100000000"),
        "{body}"
    );
    assert_eq!(app.campaign(&big).await["stock"], 99_999_999);
    assert_eq!(app.campaign(&campaign).await["stock"], 5);
    app.stop().await;
}

#[tokio::test]
async fn campaigns_are_listed_in_pages_ordered_by_id() {
    let app = spawn_app().await;
    let empty = ok_json(admin(&app, Method::GET, "/v1/campaigns", None).await).await;
    assert_eq!(empty, json!({"campaigns": [], "next": null}));
    for id in ["e-5", "a-1", "c-3", "b-2", "d-4"] {
        let created = app
            .create_campaign(&json!({"id": id, "name": format!("Drop {id}"), "stock": 10}))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/campaigns?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = ok_json(admin(&app, Method::GET, &path, None).await).await;
        pages += 1;
        let campaigns = page["campaigns"].as_array().unwrap();
        assert!(campaigns.len() <= 2);
        for campaign in campaigns {
            seen.push(campaign["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/campaigns?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a-1", "b-2", "c-3", "d-4", "e-5"]);
    assert_eq!(pages, 3);
    // Each entry is the campaign as GET shows it.
    let all = ok_json(admin(&app, Method::GET, "/v1/campaigns", None).await).await;
    assert_eq!(all["campaigns"][2], app.campaign("c-3").await);
    assert_eq!(all["next"], Value::Null);
    let tail = ok_json(admin(&app, Method::GET, "/v1/campaigns?after=c-3", None).await).await;
    assert_eq!(tail["campaigns"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn closing_refuses_new_requests_and_is_idempotent() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5).await;
    assert_eq!(
        app.issue(&campaign, "early").await.status(),
        StatusCode::ACCEPTED
    );
    let closed = ok_json(close(&app, &campaign).await).await;
    assert_eq!(closed["status"], "closed");
    assert!(closed["closes_at"].is_string(), "{closed}");
    assert_problem(app.issue(&campaign, "late").await, StatusCode::CONFLICT).await;
    // Again: the first close stands.
    let again = ok_json(close(&app, &campaign).await).await;
    assert_eq!(again["closes_at"], closed["closes_at"]);
    assert_eq!(app.campaign(&campaign).await, again);
    // The record holds it: a Redis rebuilt from it still refuses.
    app.env.flush_redis().await.unwrap();
    assert_problem(app.issue(&campaign, "later").await, StatusCode::CONFLICT).await;
    assert_eq!(
        app.campaign(&campaign).await["closes_at"],
        closed["closes_at"]
    );

    // A scheduled campaign closed before it opens gets an empty window.
    let scheduled = app
        .create_campaign(&json!({"id": "later", "name": "n", "stock": 1,
            "opens_at": "2099-01-01T00:00:00Z", "closes_at": "2099-01-02T00:00:00Z"}))
        .await;
    assert_eq!(scheduled.status(), StatusCode::CREATED);
    let closed = ok_json(close(&app, "later").await).await;
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["opens_at"], closed["closes_at"]);
    app.stop().await;
}

#[tokio::test]
async fn stock_grows_while_open_and_never_once_sold_out_or_closed() {
    let mut app = spawn_app().await;
    let campaign = app.open_campaign(2).await;
    let grown = ok_json(add_stock(&app, &campaign, json!(3)).await).await;
    assert_eq!(
        (grown["stock"].as_u64(), grown["remaining"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(app.campaign(&campaign).await, grown);
    let recorded = app
        .store
        .campaign(&CampaignId::parse(campaign.clone()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.spec.stock.get(), 5);

    // Scheduled campaigns may grow too.
    let scheduled = app
        .create_campaign(
            &json!({"id": "soon", "name": "n", "stock": 1, "opens_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(scheduled.status(), StatusCode::CREATED);
    assert_eq!(
        ok_json(add_stock(&app, "soon", json!(9)).await).await["stock"],
        10
    );

    // Sold out: 409, and the record is unchanged.
    let small = app.open_campaign(1).await;
    app.start_worker();
    for user in ["u-1", "u-2"] {
        let body: Value = app.issue(&small, user).await.json().await.unwrap();
        app.final_status(body["request_id"].as_str().unwrap()).await;
    }
    assert_eq!(app.campaign(&small).await["status"], "sold_out");
    let body = assert_problem(
        add_stock(&app, &small, json!(5)).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("sold out"),
        "{body}"
    );
    let small_id = CampaignId::parse(small.clone()).unwrap();
    let recorded = app.store.campaign(&small_id).await.unwrap().unwrap();
    assert_eq!(recorded.spec.stock.get(), 1);

    // Closed: 409.
    ok_json(close(&app, &campaign).await).await;
    assert_problem(
        add_stock(&app, &campaign, json!(1)).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(app.campaign(&campaign).await["stock"], 5);
    app.stop().await;
}

#[tokio::test]
async fn stock_recorded_but_not_yet_in_redis_is_carried_over() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(4).await;
    let id = CampaignId::parse(campaign.clone()).unwrap();
    // A crash between the two steps: PostgreSQL took the addition, Redis never heard of it.
    sqlx::query("UPDATE campaigns SET stock = stock + 6 WHERE id = $1")
        .bind(&campaign)
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(app.campaign(&campaign).await["stock"], 4);
    // Reading stats repairs it...
    let read = stats(&app, &campaign).await;
    assert_eq!(
        (read["stock"].as_u64(), read["remaining"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(app.campaign(&campaign).await["stock"], 10);
    // ...and so does the next addition (it raises Redis to the record, not by its own amount)...
    sqlx::query("UPDATE campaigns SET stock = stock + 5 WHERE id = $1")
        .bind(&campaign)
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(
        ok_json(add_stock(&app, &campaign, json!(1)).await).await["stock"],
        16
    );
    // ...and so does a rebuild of Redis from the record.
    sqlx::query("UPDATE campaigns SET stock = stock + 4 WHERE id = $1")
        .bind(&campaign)
        .execute(app.store.pool())
        .await
        .unwrap();
    app.env.flush_redis().await.unwrap();
    let view = app.campaign(&campaign).await;
    assert_eq!(
        (view["stock"].as_u64(), view["remaining"].as_u64()),
        (Some(20), Some(20))
    );
    let audit = rushline_testkit::audit(&app.store, &id).await.unwrap();
    assert_eq!(audit.stock, 20);
    app.stop().await;
}

#[tokio::test]
async fn stats_follow_a_request_from_queue_to_record() {
    let mut app = spawn_app().await;
    let campaign = app.open_campaign(2).await;
    let before = stats(&app, &campaign).await;
    assert_eq!(before["queued"], 0);
    assert_eq!(before["decided"]["total"], 0);
    assert_eq!(before["decided"]["refusals_from"], "redis");
    assert_eq!(
        before["persistence_lag"],
        json!({"log_entries": 0, "oldest_unpersisted_ms": null})
    );
    let mut ids = Vec::new();
    for user in ["u-1", "u-2", "u-3", "u-1"] {
        let body: Value = app.issue(&campaign, user).await.json().await.unwrap();
        ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    let queued = stats(&app, &campaign).await;
    assert_eq!(queued["queued"], 4);
    assert_eq!(queued["decided"]["total"], 0);
    app.start_worker();
    for id in &ids {
        app.final_status(id).await;
    }
    app.drained(&campaign).await;
    let done = stats(&app, &campaign).await;
    assert_eq!(done["queued"], 0);
    assert_eq!(done["status"], "sold_out");
    let counts = json!({"issued": 2, "sold_out": 1, "duplicate": 1, "total": 4});
    assert_eq!(done["persisted"], counts);
    for field in ["issued", "sold_out", "duplicate", "total"] {
        assert_eq!(done["decided"][field], counts[field], "{done}");
    }
    assert_eq!(done["persistence_lag"]["log_entries"], 0);
    // After a rebuild Redis no longer knows the refusals; they come from the record.
    app.env.flush_redis().await.unwrap();
    let rebuilt = stats(&app, &campaign).await;
    assert_eq!(rebuilt["decided"]["refusals_from"], "postgres");
    assert_eq!(rebuilt["decided"]["total"], 4);
    app.stop().await;
}

/// One answered issue request, with the client's clock around it.
struct Sent {
    request_id: String,
    sent_at: Instant,
    answered_at: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_added_during_a_spike_is_issued_exactly_once() {
    let mut app = spawn_app().await;
    for _ in 0..3 {
        app.start_worker();
    }
    let app = Arc::new(app);
    let campaign = app.open_campaign(150).await;
    let id = CampaignId::parse(campaign.clone()).unwrap();
    let clients = Arc::new(tokio::sync::Semaphore::new(16));
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut requests = JoinSet::new();
    for n in 0..400 {
        let (app, clients, campaign, answered) = (
            app.clone(),
            clients.clone(),
            campaign.clone(),
            answered_tx.clone(),
        );
        requests.spawn(async move {
            let _client = clients.acquire().await.unwrap();
            let sent_at = Instant::now();
            let response = app.issue(&campaign, &format!("fan-{n}")).await;
            let answered_at = Instant::now();
            let status = response.status();
            assert!(
                status == StatusCode::ACCEPTED || status == StatusCode::OK,
                "{status}"
            );
            let body: Value = response.json().await.unwrap();
            let _ = answered.send(());
            Sent {
                request_id: body["request_id"].as_str().unwrap().to_owned(),
                sent_at,
                answered_at,
            }
        });
    }
    drop(answered_tx);
    // Add while requests are in flight and workers are deciding.
    for _ in 0..20 {
        answered_rx.recv().await.expect("answers");
    }
    let grown = add_stock(&app, &campaign, json!(100)).await;
    // Normally the addition lands long before 150 coupons are gone; on a starved machine the
    // campaign may sell out first, and then the addition must be refused and leave no trace.
    let stock = match grown.status() {
        StatusCode::OK => 250,
        _ => {
            let body = assert_problem(grown, StatusCode::CONFLICT).await;
            assert!(
                body["detail"].as_str().unwrap().contains("sold out"),
                "{body}"
            );
            150
        }
    };
    let sent: Vec<Sent> = requests.join_all().await;
    let mut finals = Vec::new();
    for s in &sent {
        let status = app.final_status(&s.request_id).await["status"].clone();
        finals.push((s, status));
    }
    app.drained(&campaign).await;
    let audit = rushline_testkit::audit(&app.store, &id).await.unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.stock, stock);
    // 400 users for the stock: every coupon went, none twice, and the API agrees.
    assert_eq!(audit.issued_rows, stock, "{audit:?}");
    let issued = finals.iter().filter(|(_, s)| *s == "issued").count() as i64;
    assert_eq!(issued, stock);
    let view = app.campaign(&campaign).await;
    assert_eq!(
        (view["stock"].as_i64(), view["issued"].as_i64()),
        (Some(stock), Some(stock))
    );
    let read = stats(&app, &campaign).await;
    assert_eq!(read["persisted"]["total"], 400);
    assert_eq!(read["decided"]["total"], 400);
    assert_eq!(read["persisted"]["issued"], audit.issued_rows);
    // Guarantee 5 holds across the addition: nobody sent after a sold_out answer came back
    // was issued.
    let first_refusal = finals
        .iter()
        .filter(|(_, status)| *status == "sold_out")
        .map(|(s, _)| s.answered_at)
        .min()
        .expect("demand exceeds stock");
    assert!(
        finals
            .iter()
            .all(|(s, status)| !(s.sent_at > first_refusal && *status == "issued")),
        "a request sent after a refusal came back was issued"
    );
    Arc::into_inner(app).expect("no other handles").stop().await;
}

async fn admission(app: &TestApp, campaign: &str, body: Value) -> Response {
    admin(
        app,
        Method::POST,
        &format!("/v1/campaigns/{campaign}/admission"),
        Some(body),
    )
    .await
}

/// A waiting room is created with its defaults echoed; an operator pauses it (the counter
/// stops, the view says so), then resumes it at a higher rate (the line is admitted); the
/// record holds the change, so a rebuild of Redis keeps it.
#[tokio::test]
async fn a_waiting_room_is_paused_resumed_and_rerated() {
    let app = spawn_app().await;
    let created = app
        .create_campaign(&json!({"name": "line", "stock": 5,
            "waiting_room": {"admit_per_second": 1, "prequeue_secs": 30}}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["waiting_room"],
        json!({"admit_per_second": 1, "pass_secs": 600, "prequeue_secs": 30})
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let campaign = CampaignId::parse(id.clone()).unwrap();

    let paused = ok_json(admission(&app, &id, json!({"paused": true})).await).await;
    assert_eq!(paused["queue"]["paused"], true, "{paused}");
    let held = paused["queue"]["admitted_through"].as_u64().unwrap();
    for i in 0..20 {
        let user = rushline_domain::UserId::parse(format!("u-{i}")).unwrap();
        app.queue.join_queue(&campaign, &user).await.unwrap();
    }
    let view = app.campaign(&id).await;
    assert_eq!(view["queue"]["joined"], 20, "{view}");
    assert_eq!(view["queue"]["admitted_through"], held, "paused: {view}");

    let resumed = ok_json(
        admission(
            &app,
            &id,
            json!({"admit_per_second": 1000, "paused": false}),
        )
        .await,
    )
    .await;
    assert_eq!(
        resumed["waiting_room"]["admit_per_second"], 1000,
        "{resumed}"
    );
    assert!(resumed["queue"].get("paused").is_none(), "{resumed}");
    rushline_testkit::eventually(Duration::from_secs(5), "the line admitted", async || {
        app.campaign(&id).await["queue"]["admitted_through"] == 20
    })
    .await;
    // A view's read of the counter is exported.
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "rushline_waiting_room_admitted_through{{campaign=\"{id}\"}} 20"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "rushline_waiting_room_waiting{{campaign=\"{id}\"}} 0"
        )),
        "{metrics}"
    );

    // Open: the pre-queue seed is revealed to the operator for an audit.
    let seed = stats(&app, &id).await["prequeue_seed"].clone();
    assert!(
        seed.as_str()
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())),
        "{seed}"
    );

    // PostgreSQL recorded it: Redis rebuilt from the record keeps the rate.
    let paused_again = ok_json(admission(&app, &id, json!({"paused": true})).await).await;
    assert_eq!(paused_again["queue"]["paused"], true);
    app.env.flush_redis().await.unwrap();
    let rebuilt = app.campaign(&id).await;
    assert_eq!(
        rebuilt["waiting_room"]["admit_per_second"], 1000,
        "{rebuilt}"
    );
    assert_eq!(rebuilt["queue"]["paused"], true, "{rebuilt}");
    app.stop().await;
}

#[tokio::test]
async fn admission_needs_a_waiting_room_and_a_valid_change() {
    let app = spawn_app().await;
    let plain = app.open_campaign(5).await;
    let body = assert_problem(
        admission(&app, &plain, json!({"paused": true})).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("waiting room"),
        "{body}"
    );
    assert_problem(
        admission(&app, "no-such", json!({"paused": true})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let created: Value = app
        .create_campaign(&json!({"name": "line", "stock": 5,
            "waiting_room": {"admit_per_second": 10}}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    for bad in [
        json!({}),
        json!({"admit_per_second": 0}),
        json!({"admit_per_second": 1_000_001}),
        json!({"admit_per_second": 2.5}),
        json!({"paused": "yes"}),
        json!({"paused": true, "rate": 5}),
    ] {
        assert_problem(admission(&app, id, bad).await, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(
        app.campaign(id).await["waiting_room"]["admit_per_second"],
        10
    );
    // Not open yet: the seed stays secret (it would predict the pre-queue order).
    let scheduled: Value = app
        .create_campaign(&json!({"name": "later", "stock": 5,
            "opens_at": "2099-01-01T00:00:00Z",
            "waiting_room": {"admit_per_second": 10, "prequeue_secs": 60}}))
        .await
        .json()
        .await
        .unwrap();
    let stats = stats(&app, scheduled["id"].as_str().unwrap()).await;
    assert!(stats.get("prequeue_seed").is_none(), "{stats}");
    for bad in [
        json!({"admit_per_second": 0}),
        json!({"admit_per_second": 5, "pass_secs": 9}),
        json!({"admit_per_second": 5, "prequeue_secs": 86_401}),
        json!({"admit_per_second": 5, "extra": 1}),
        json!({"pass_secs": 60}),
        json!(5),
    ] {
        let response = app
            .create_campaign(&json!({"name": "x", "stock": 1, "waiting_room": bad}))
            .await;
        let body = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("waiting_room")
                || body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("admit_per_second"),
            "{bad}: {body}"
        );
    }
    app.stop().await;
}
