//! The waiting room through the HTTP API (CONTRACT.md, *Waiting room*; guarantee 7), against
//! real Redis and PostgreSQL: joining, tickets, the pre-queue, admission at the configured rate,
//! and the check every request of a waiting-room campaign must pass.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with_workers};

/// Creates a campaign with a waiting room (`room` is the `waiting_room` object) and returns its id.
async fn waiting_room_campaign(app: &TestApp, stock: u64, room: Value, extra: Value) -> String {
    let mut body = json!({"name": "Presale", "stock": stock, "waiting_room": room});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = app.create_campaign(&body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert!(created["waiting_room"].is_object(), "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn join(app: &TestApp, campaign: &str, user: &str) -> Response {
    app.client
        .post(app.url(&format!("/v1/campaigns/{campaign}/queue")))
        .json(&json!({"user_id": user}))
        .send()
        .await
        .expect("POST queue")
}

/// Joins and returns the status and standing.
async fn joined(app: &TestApp, campaign: &str, user: &str) -> (StatusCode, Value) {
    let response = join(app, campaign, user).await;
    let status = response.status();
    assert!(
        status == StatusCode::CREATED || status == StatusCode::OK,
        "join {user}: {status}"
    );
    (status, response.json().await.unwrap())
}

async fn me(app: &TestApp, campaign: &str, ticket: Option<&str>) -> Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/campaigns/{campaign}/queue/me")));
    if let Some(ticket) = ticket {
        request = request.header("Rushline-Ticket", ticket);
    }
    request.send().await.expect("GET queue/me")
}

async fn issue_with_ticket(app: &TestApp, campaign: &str, user: &str, ticket: &str) -> Response {
    app.client
        .post(app.url(&format!("/v1/campaigns/{campaign}/requests")))
        .header("Rushline-Ticket", ticket)
        .json(&json!({"user_id": user}))
        .send()
        .await
        .expect("POST requests")
}

/// Polls the ticket's standing until `done` says so (bounded), returning the last standing.
/// Each poll waits the `poll_after_secs` the server asked for, capped at 200 ms: the condition is
/// the server's counter reaching the ticket, which has no event to await from outside.
async fn poll_until(
    app: &TestApp,
    campaign: &str,
    mut standing: Value,
    bound: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + bound;
    while !done(&standing) {
        assert!(
            Instant::now() < deadline,
            "not reached in {bound:?}: {standing}"
        );
        let wait = standing["poll_after_secs"].as_f64().unwrap_or(0.1).min(0.2);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        let response = me(app, campaign, standing["ticket"].as_str()).await;
        assert_eq!(response.status(), StatusCode::OK);
        standing = response.json().await.unwrap();
    }
    standing
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_user_joins_waits_is_admitted_and_gets_a_coupon() {
    let app = spawn_app_with_workers(1).await;
    let campaign = waiting_room_campaign(&app, 10, json!({"admit_per_second": 5}), json!({})).await;
    let view = app.campaign(&campaign).await;
    assert_eq!(view["waiting_room"]["admit_per_second"], 5);
    assert_eq!(view["waiting_room"]["pass_secs"], 600);
    assert_eq!(view["waiting_room"]["prequeue_secs"], 0);

    let mut standings = Vec::new();
    for n in 1..=12 {
        let (status, standing) = joined(&app, &campaign, &format!("u{n}")).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(standing["campaign_id"], campaign.as_str());
        assert_eq!(standing["user_id"], format!("u{n}"));
        assert_eq!(standing["position"], n, "{standing}");
        assert!(standing["ticket"].as_str().unwrap().split('.').count() == 3);
        standings.push(standing);
    }
    // Joining again: 200, the same position.
    let (status, again) = joined(&app, &campaign, "u12").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["position"], 12);

    // No ticket: 401. The last user is not admitted yet: 403 not-your-turn with figures.
    assert_problem(app.issue(&campaign, "u12").await, StatusCode::UNAUTHORIZED).await;
    let last = &standings[11];
    let response =
        issue_with_ticket(&app, &campaign, "u12", last["ticket"].as_str().unwrap()).await;
    assert!(response.headers().contains_key("retry-after"));
    let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("not-your-turn"),
        "{problem}"
    );
    assert_eq!(problem["position"], 12);
    assert!(problem["admitted_through"].as_u64().unwrap() < 12);
    assert!(
        problem["ahead"].is_u64() && problem["eta_secs"].is_number(),
        "{problem}"
    );

    // Another user's ticket: 403.
    let first_ticket = standings[0]["ticket"].as_str().unwrap();
    let problem = assert_problem(
        issue_with_ticket(&app, &campaign, "u12", first_ticket).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(!problem["type"].as_str().unwrap().ends_with("not-your-turn"));

    // Wait for admission, then the request goes through and gets its coupon.
    let admitted = poll_until(
        &app,
        &campaign,
        last.clone(),
        Duration::from_secs(20),
        |s| s["state"] == "admitted",
    )
    .await;
    assert!(admitted["admitted_through"].as_u64().unwrap() >= 12);
    assert_eq!(admitted["ahead"], 0);
    // The pass ends `pass_secs` after admission, on the whole second before (the ticket's
    // `exp` is whole seconds, rounded down).
    let pass = time(&admitted["pass_expires_at"]) - time(&admitted["admitted_at"]);
    assert!(pass <= chrono::TimeDelta::seconds(600), "{pass}");
    assert!(pass > chrono::TimeDelta::seconds(599), "{pass}");
    let response =
        issue_with_ticket(&app, &campaign, "u12", admitted["ticket"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let decided = app.final_status(body["request_id"].as_str().unwrap()).await;
    assert_eq!(decided["status"], "issued");

    // The campaign view shows the queue.
    let view = app.campaign(&campaign).await;
    assert_eq!(view["queue"]["joined"], 12);
    assert!(view["queue"]["admitted_through"].as_u64().unwrap() >= 12);
    app.stop().await;
}

#[tokio::test]
async fn tickets_are_refused_unless_genuine_and_for_this_campaign() {
    let app = spawn_app().await;
    let room = json!({"admit_per_second": 1000});
    let a = waiting_room_campaign(&app, 5, room.clone(), json!({})).await;
    let b = waiting_room_campaign(&app, 5, room, json!({})).await;
    let (_, standing) = joined(&app, &a, "alice").await;
    let ticket = standing["ticket"].as_str().unwrap().to_owned();

    // Missing, garbage, tampered, another campaign's: 401 on both the standing and the request.
    let mut parts: Vec<String> = ticket.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let tampered = parts.join(".");
    let unsigned = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", // {"alg":"none","typ":"JWT"}
        ticket.split('.').nth(1).unwrap()
    );
    for bad in [
        None,
        Some("garbage"),
        Some(tampered.as_str()),
        Some(unsigned.as_str()),
    ] {
        let response = me(&app, &a, bad).await;
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    assert_problem(me(&app, &b, Some(&ticket)).await, StatusCode::UNAUTHORIZED).await;
    for bad in ["garbage", tampered.as_str(), unsigned.as_str()] {
        let response = issue_with_ticket(&app, &a, "alice", bad).await;
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let response = issue_with_ticket(&app, &b, "alice", &ticket).await;
    assert_problem(response, StatusCode::UNAUTHORIZED).await;

    // The genuine ticket reads back its standing.
    let response = me(&app, &a, Some(&ticket)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["position"], 1);
    assert_eq!(again["user_id"], "alice");

    // A campaign without a waiting room: joining is a 404, and so is an unknown campaign.
    let plain = app.open_campaign(3).await;
    assert_problem(join(&app, &plain, "alice").await, StatusCode::NOT_FOUND).await;
    assert_problem(
        join(&app, "no-such-campaign", "alice").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // A bad body is a 400.
    let response = app
        .client
        .post(app.url(&format!("/v1/campaigns/{a}/queue")))
        .json(&json!({"user_id": ""}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST).await;
    app.stop().await;
}

#[tokio::test]
async fn the_prequeue_is_drawn_at_the_opening_ahead_of_later_joiners() {
    let app = spawn_app().await;
    let opens_at = Utc::now() + chrono::TimeDelta::seconds(3);
    let opens = opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let campaign = waiting_room_campaign(
        &app,
        100,
        json!({"admit_per_second": 1000, "prequeue_secs": 600}),
        json!({"opens_at": opens}),
    )
    .await;
    // A campaign whose waiting room is not open yet refuses joins with 409.
    let later = (Utc::now() + chrono::TimeDelta::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let closed_room = waiting_room_campaign(
        &app,
        1,
        json!({"admit_per_second": 10, "prequeue_secs": 60}),
        json!({"opens_at": later}),
    )
    .await;
    assert_problem(
        join(&app, &closed_room, "early").await,
        StatusCode::CONFLICT,
    )
    .await;

    let mut prequeued = Vec::new();
    for n in 0..20 {
        let (status, standing) = joined(&app, &campaign, &format!("pre{n}")).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(standing["state"], "prequeued", "{standing}");
        assert!(standing["position"].is_null() && standing["ahead"].is_null());
        assert!(time(&standing["opens_at"]) == time(&json!(opens)));
        prequeued.push(standing);
    }
    // Requests before the opening: the campaign is scheduled (409), ticket or not.
    let response = issue_with_ticket(
        &app,
        &campaign,
        "pre0",
        prequeued[0]["ticket"].as_str().unwrap(),
    )
    .await;
    assert!(response.status().is_client_error());

    // After the opening every pre-queued user has a position in 1..=20; later joiners follow.
    let mut positions = HashSet::new();
    for standing in prequeued {
        let standing = poll_until(&app, &campaign, standing, Duration::from_secs(15), |s| {
            s["state"] != "prequeued"
        })
        .await;
        let position = standing["position"].as_u64().unwrap();
        assert!((1..=20).contains(&position), "{standing}");
        assert!(positions.insert(position));
    }
    let (_, late) = joined(&app, &campaign, "late").await;
    assert_eq!(late["position"], 21);
    app.stop().await;
}

/// Guarantee 7 end to end: many users over two API replicas; each polls until admitted, then
/// asks once. Positions are dense and unique, admission follows position order at no more than
/// the configured rate, and only admitted users' requests are accepted.
#[tokio::test]
async fn admission_is_fair_unique_and_paced_across_replicas() {
    const USERS: u64 = 150;
    const RATE: u64 = 50;
    let app = spawn_app_with_workers(2).await;
    let replica = app.replica().await;
    let campaign =
        waiting_room_campaign(&app, 100, json!({"admit_per_second": RATE}), json!({})).await;

    // Every user joins twice, concurrently, half through each replica.
    let mut joins = JoinSet::new();
    for n in 0..USERS {
        for attempt in 0..2 {
            let (client, base) = if (n + attempt) % 2 == 0 {
                (app.client.clone(), app.address.clone())
            } else {
                (replica.client.clone(), replica.address.clone())
            };
            let campaign = campaign.clone();
            joins.spawn(async move {
                let response = client
                    .post(format!("{base}/v1/campaigns/{campaign}/queue"))
                    .json(&json!({"user_id": format!("u{n}")}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                (n, status, response.json::<Value>().await.unwrap())
            });
        }
    }
    let mut position_of: HashMap<u64, u64> = HashMap::new();
    let mut firsts = 0;
    while let Some(joined) = joins.join_next().await {
        let (n, status, standing) = joined.unwrap();
        if status == StatusCode::CREATED {
            firsts += 1;
        } else {
            assert_eq!(status, StatusCode::OK);
        }
        let position = standing["position"].as_u64().unwrap();
        if let Some(earlier) = position_of.insert(n, position) {
            assert_eq!(earlier, position, "u{n} got two positions");
        }
    }
    assert_eq!(firsts, USERS, "one first join per user");
    let mut positions: Vec<u64> = position_of.values().copied().collect();
    positions.sort_unstable();
    assert_eq!(
        positions,
        (1..=USERS).collect::<Vec<_>>(),
        "dense and unique"
    );

    // Each user polls until admitted, then asks; record when each was admitted.
    let mut users = JoinSet::new();
    for n in 0..USERS {
        let (client, base) = if n % 2 == 0 {
            (app.client.clone(), app.address.clone())
        } else {
            (replica.client.clone(), replica.address.clone())
        };
        let campaign = campaign.clone();
        users.spawn(async move {
            let user = format!("u{n}");
            let mut standing: Value = client
                .post(format!("{base}/v1/campaigns/{campaign}/queue"))
                .json(&json!({"user_id": user}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ticket = standing["ticket"].as_str().unwrap().to_owned();
                let response = client
                    .post(format!("{base}/v1/campaigns/{campaign}/requests"))
                    .header("Rushline-Ticket", &ticket)
                    .json(&json!({"user_id": user}))
                    .send()
                    .await
                    .unwrap();
                match response.status() {
                    StatusCode::ACCEPTED | StatusCode::OK => {
                        let accepted: Value = response.json().await.unwrap();
                        let standing: Value = client
                            .get(format!("{base}/v1/campaigns/{campaign}/queue/me"))
                            .header("Rushline-Ticket", &ticket)
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        return (n, standing, accepted);
                    }
                    StatusCode::FORBIDDEN => {
                        let problem: Value = response.json().await.unwrap();
                        assert!(
                            problem["type"].as_str().unwrap().ends_with("not-your-turn"),
                            "{problem}"
                        );
                    }
                    other => panic!("u{n}: {other} {}", response.text().await.unwrap()),
                }
                assert!(Instant::now() < deadline, "u{n} never admitted");
                tokio::time::sleep(Duration::from_millis(100)).await;
                standing = client
                    .get(format!("{base}/v1/campaigns/{campaign}/queue/me"))
                    .header("Rushline-Ticket", &ticket)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            }
        });
    }
    let mut admissions = Vec::new();
    let mut requests = Vec::new();
    while let Some(user) = users.join_next().await {
        let (n, standing, accepted) = user.unwrap();
        assert_eq!(standing["state"], "admitted", "{standing}");
        admissions.push((
            standing["position"].as_u64().unwrap(),
            time(&standing["admitted_at"]),
        ));
        requests.push((n, accepted["request_id"].as_str().unwrap().to_owned()));
    }
    // Admission in position order, and paced: over any window of T seconds at most RATE × (T + 1).
    // `admitted_at` is the time of the admission step that reached the position, and steps less
    // than 60 ms apart (at the default pass) are recorded as one, with the first one's time: a
    // window measured between two recorded times may be up to that much shorter than the real one.
    admissions.sort_unstable();
    for pair in admissions.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "admitted out of order: {pair:?}");
    }
    for (i, (_, start)) in admissions.iter().enumerate() {
        for (j, (_, end)) in admissions.iter().enumerate().skip(i) {
            let secs = (*end - *start).num_milliseconds() as f64 / 1000.0 + 0.06;
            let admitted = (j - i + 1) as f64;
            assert!(
                admitted <= RATE as f64 * (secs + 1.0),
                "{admitted} admitted within {secs} s"
            );
        }
    }
    // Every request reaches a final status; stock 100 of 150 users: exactly 100 issued.
    let mut issued = 0;
    for (_, request) in &requests {
        if app.final_status(request).await["status"] == "issued" {
            issued += 1;
        }
    }
    assert_eq!(issued, 100);
    replica.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn requests_of_a_waiting_room_campaign_need_a_ticket_even_with_an_idempotency_key() {
    let app = spawn_app().await;
    let campaign =
        waiting_room_campaign(&app, 5, json!({"admit_per_second": 1000}), json!({})).await;
    let response = app.issue_with_key(&campaign, "bob", Some("k-1")).await;
    let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
    assert!(problem["detail"].as_str().unwrap().contains("waiting room"));
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:rushline:problem:")
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expired_pass_is_refused_and_joining_again_goes_to_the_back() {
    let app = spawn_app().await;
    // The contract's shortest pass: 10 s.
    let campaign = waiting_room_campaign(
        &app,
        5,
        json!({"admit_per_second": 1000, "pass_secs": 10}),
        json!({}),
    )
    .await;
    let (_, first) = joined(&app, &campaign, "carol").await;
    assert_eq!(first["position"], 1);
    let admitted = poll_until(&app, &campaign, first, Duration::from_secs(10), |s| {
        s["state"] == "admitted"
    })
    .await;
    joined(&app, &campaign, "dave").await;
    let expired = poll_until(
        &app,
        &campaign,
        admitted.clone(),
        Duration::from_secs(20),
        |s| s["state"] == "expired",
    )
    .await;
    assert!(time(&expired["server_time"]) >= time(&admitted["pass_expires_at"]));
    let response = issue_with_ticket(
        &app,
        &campaign,
        "carol",
        expired["ticket"].as_str().unwrap(),
    )
    .await;
    let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("ticket-expired"),
        "{problem}"
    );

    // Joining again: a new position, behind dave's.
    let (status, again) = joined(&app, &campaign, "carol").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["position"], 3, "{again}");
    app.stop().await;
}

/// Leading zero bits of SHA-256(`challenge` + `nonce`): the puzzle, computed here apart from the
/// API's own code.
fn pow_bits(challenge: &str, nonce: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(challenge)
        .chain_update(nonce)
        .finalize();
    let mut bits = 0;
    for byte in digest.iter() {
        if *byte != 0 {
            return bits + byte.leading_zeros();
        }
        bits += 8;
    }
    bits
}

/// A `Rushline-Proof` for `challenge` (which names `minute`) with at least `bits` zero bits and
/// whose nonce does NOT also hold for `other` (so a test of a wrong subject cannot pass by luck).
fn solve(challenge: &str, minute: i64, bits: u32, other: Option<&str>) -> String {
    let nonce = (0u64..)
        .map(|n| format!("{n:x}"))
        .find(|nonce| {
            pow_bits(challenge, nonce) >= bits
                && other.is_none_or(|other| pow_bits(other, nonce) < bits)
        })
        .unwrap();
    format!("{minute}.{nonce}")
}

async fn join_with_proof(app: &TestApp, campaign: &str, user: &str, proof: &str) -> Response {
    app.client
        .post(app.url(&format!("/v1/campaigns/{campaign}/queue")))
        .header("Rushline-Proof", proof)
        .json(&json!({"user_id": user}))
        .send()
        .await
        .expect("POST queue")
}

/// Joins without a proof and returns the `proof-of-work-required` puzzle: (challenge, minute).
async fn puzzle(app: &TestApp, campaign: &str, user: &str, bits: u64) -> (String, i64) {
    let problem = assert_problem(join(app, campaign, user).await, StatusCode::FORBIDDEN).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("proof-of-work-required"),
        "{problem}"
    );
    assert_eq!(problem["proof_of_work_bits"], bits, "{problem}");
    let minute = problem["minute"].as_i64().unwrap();
    let now_minute = Utc::now().timestamp() / 60;
    assert!((now_minute - minute).abs() <= 1, "{problem}");
    let challenge = problem["challenge"].as_str().unwrap().to_owned();
    assert_eq!(
        challenge,
        format!("rushline-pow:v1:{campaign}:{user}:{minute}:")
    );
    (challenge, minute)
}

#[tokio::test]
async fn a_proof_of_work_campaign_admits_only_joins_that_show_the_work() {
    let app = spawn_app().await;
    let bits = 10;
    let campaign = waiting_room_campaign(
        &app,
        5,
        json!({"admit_per_second": 1, "proof_of_work_bits": bits}),
        json!({}),
    )
    .await;
    let view = app.campaign(&campaign).await;
    assert_eq!(view["waiting_room"]["proof_of_work_bits"], bits);

    // No proof: 403 with the puzzle. Solved: 201, a position.
    let (challenge, minute) = puzzle(&app, &campaign, "alice", bits).await;
    let bob_challenge = format!("rushline-pow:v1:{campaign}:bob:{minute}:");
    let proof = solve(&challenge, minute, bits as u32, Some(&bob_challenge));
    let response = join_with_proof(&app, &campaign, "alice", &proof).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let standing: Value = response.json().await.unwrap();
    assert_eq!(standing["position"], 1, "{standing}");

    // Every join needs a proof, a repeated one too; the same proof stays good (200, same place).
    let (_, _) = puzzle(&app, &campaign, "alice", bits).await;
    let response = join_with_proof(&app, &campaign, "alice", &proof).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["position"], 1, "{again}");

    // Alice's proof is not Bob's (chosen above not to hold for him by luck).
    let refused = |response: Response| async move {
        let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("proof-of-work-required"),
            "{problem}"
        );
        assert!(problem["challenge"].is_string() && problem["minute"].is_i64());
    };
    refused(join_with_proof(&app, &campaign, "bob", &proof).await).await;

    // Too few bits: a nonce whose hash starts with a one bit.
    let weak = (0u64..)
        .map(|n| format!("{n:x}"))
        .find(|nonce| pow_bits(&bob_challenge, nonce) == 0)
        .unwrap();
    refused(join_with_proof(&app, &campaign, "bob", &format!("{minute}.{weak}")).await).await;

    // Stale (three minutes back) or ahead of the server's clock: refused though solved.
    for stale in [minute - 3, minute + 2] {
        let text = format!("rushline-pow:v1:{campaign}:bob:{stale}:");
        let proof = solve(&text, stale, bits as u32, None);
        refused(join_with_proof(&app, &campaign, "bob", &proof).await).await;
    }
    // The minute before the current one is still good (and stays so if the minute turns).
    let previous = minute - 1;
    let text = format!("rushline-pow:v1:{campaign}:bob:{previous}:");
    let proof = solve(&text, previous, bits as u32, None);
    let response = join_with_proof(&app, &campaign, "bob", &proof).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // Malformed: 400, whatever the campaign asks.
    for bad in [
        "abc",
        "12",
        "12.",
        "12.a-b",
        "x.1",
        "-1.a",
        &format!("1.{}", "a".repeat(33)),
    ] {
        let response = join_with_proof(&app, &campaign, "carol", bad).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Rushline-Proof"),
            "{bad}: {problem}"
        );
    }
    // Polls never need a proof: the ticket is the proof.
    let response = me(&app, &campaign, standing["ticket"].as_str()).await;
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn proof_of_work_is_off_by_default_and_bounded() {
    let app = spawn_app().await;
    let campaign = waiting_room_campaign(&app, 5, json!({"admit_per_second": 1}), json!({})).await;
    let view = app.campaign(&campaign).await;
    assert_eq!(view["waiting_room"]["proof_of_work_bits"], 0);
    let (status, _) = joined(&app, &campaign, "dora").await;
    assert_eq!(status, StatusCode::CREATED);

    for bad in [json!(25), json!(-1), json!(8.5), json!("8")] {
        let response = app
            .create_campaign(&json!({"name": "n", "stock": 1,
                "waiting_room": {"admit_per_second": 1, "proof_of_work_bits": bad}}))
            .await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("proof_of_work_bits"),
            "{bad}: {problem}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_line_closes_with_the_campaign_and_when_it_sells_out() {
    let app = spawn_app_with_workers(1).await;
    let room = json!({"admit_per_second": 1000});
    // Closed by the operator: joining is a 409.
    let closed = waiting_room_campaign(&app, 5, room.clone(), json!({})).await;
    joined(&app, &closed, "early").await;
    let response = app
        .client
        .post(app.url(&format!("/v1/campaigns/{closed}/close")))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_problem(join(&app, &closed, "late").await, StatusCode::CONFLICT).await;

    // Sold out: the one coupon goes to the first admitted user; then joining is a 409.
    let sold = waiting_room_campaign(&app, 1, room, json!({})).await;
    let (_, standing) = joined(&app, &sold, "buyer").await;
    let admitted = poll_until(&app, &sold, standing, Duration::from_secs(10), |s| {
        s["state"] == "admitted"
    })
    .await;
    let response =
        issue_with_ticket(&app, &sold, "buyer", admitted["ticket"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        app.final_status(body["request_id"].as_str().unwrap()).await["status"],
        "issued"
    );
    assert_problem(join(&app, &sold, "too-late").await, StatusCode::CONFLICT).await;
    app.stop().await;
}
