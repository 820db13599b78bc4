//! Hostile clients over real sockets: made-up methods and paths, slow and idle connections,
//! too many connections, dribbled bodies, out-of-range and invisible input, and protocol
//! garbage. Every answer must be a 4xx problem+json (or, for garbage hyper refuses before the
//! router, a bare 4xx or a closed connection) — never a 5xx, a panic or a hang.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rushline_testkit::TestEnv;
use rushline_testkit::servers::{Fsync, RedisServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::helpers::{
    ADMIN_TOKEN, TestApp, assert_problem, spawn_app, spawn_app_in, spawn_app_with,
};

/// Longest any single exchange in this file may take before the test fails as a hang.
const NO_HANG: Duration = Duration::from_secs(10);

fn socket_addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Writes `request` on a fresh connection and reads until the server closes it.
async fn exchange(app: &TestApp, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(socket_addr(app)).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_until_closed(&mut stream).await
}

/// Everything the server sends until it closes the connection (a reset counts as closed).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = timeout(NO_HANG, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server held the connection open");
    received
}

/// The status code of a raw HTTP/1.1 response.
fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// Asserts a raw response is `status` with a problem+json body.
fn assert_raw_problem(response: &[u8], status: u16) {
    let text = String::from_utf8_lossy(response);
    assert_eq!(status_of(response), status, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{text}"
    );
}

/// A 4xx answer: problem+json when the router answered it.
async fn assert_client_error(response: reqwest::Response, what: &str) {
    let status = response.status();
    assert!(status.is_client_error(), "{what}: {status}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json", "{what}");
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_metrics() {
    let app = spawn_app().await;
    for n in 0..150 {
        let method = Method::from_bytes(format!("HOSTILE{n}").as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(&format!("/v1/requests/{n}")))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
        let response = app
            .client
            .get(app.url(&format!("/made-up/path-{n}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let text = app.metrics_text().await;
    assert!(!text.contains("HOSTILE"), "a made-up method became a label");
    assert!(!text.contains("made-up"), "a raw path became a label");
    let other_series = text
        .lines()
        .filter(|l| l.starts_with("rushline_http_request_duration_seconds_count"))
        .filter(|l| l.contains("method=\"other\""))
        .count();
    assert!(
        (1..=4).contains(&other_series),
        "made-up methods share one label per route and status: {other_series} series"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("method=\"GET\"")),
        "unmatched paths share one route label"
    );
    app.stop().await;
}

#[tokio::test]
async fn half_sent_request_heads_are_disconnected_while_others_are_served() {
    let app =
        spawn_app_with(|c| c.connections.header_read_timeout = Duration::from_millis(400)).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for n in 0..40 {
        let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
        if n % 2 == 0 {
            // Half a head, never finished; the other half send nothing at all.
            stream
                .write_all(b"POST /v1/campaigns/x/requests HTTP/1.1\r\nHost: a\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // Everyone else is still answered meanwhile.
    for _ in 0..5 {
        let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
    for stream in &mut slow {
        let rest = read_until_closed(stream).await;
        assert!(
            rest.is_empty() || status_of(&rest) == 408,
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed before the bound"
    );
    // A new connection: the shared client's pooled one sat idle past the header timeout too, and
    // the server closing it can race a request sent on it (reqwest then reports an incomplete
    // message, not a refusal).
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let ok = fresh.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed() {
    let app = spawn_app_with(|c| c.connections.keep_alive_idle = Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The response, then the close once the connection has idled past the bound.
    let received = read_until_closed(&mut stream).await;
    assert_eq!(status_of(&received), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_connection_cap_refuses_extra_connections_and_recovers() {
    let app = spawn_app_with(|c| c.connections.max_connections = 3).await;
    // Three connections hold every permit: each has sent half a head.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    // The accept loop takes connections in order, so the fourth finds the cap reached.
    let mut extra = TcpStream::connect(socket_addr(&app)).await.unwrap();
    let refused = read_until_closed(&mut extra).await;
    assert_raw_problem(&refused, 503);
    assert!(
        String::from_utf8_lossy(&refused)
            .to_ascii_lowercase()
            .contains("retry-after: 1")
    );
    // The held connections are still served.
    let first = &mut held[0];
    first
        .write_all(b"Host: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&read_until_closed(first).await), 200);
    drop(held);
    // Closing them frees their permits: new connections are answered again.
    let deadline = Instant::now() + NO_HANG;
    loop {
        let response = exchange(
            &app,
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        if status_of(&response) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the cap never recovered");
        // Not synchronisation by sleep: a bounded poll while the server notices the closes.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = app.metrics_text().await;
    assert!(text.contains("rushline_http_connections_refused_total"));
    app.stop().await;
}

#[tokio::test]
async fn a_body_dribbled_too_slowly_gets_a_408_and_a_close() {
    let app =
        spawn_app_with(|c| c.connections.body_read_timeout = Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/campaigns/any/requests HTTP/1.1\r\nHost: a\r\n\
              Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"user_",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let response = read_until_closed(&mut stream).await;
    assert_raw_problem(&response, 408);
    assert!(started.elapsed() >= Duration::from_millis(250));
    app.stop().await;
}

#[tokio::test]
async fn out_of_range_campaign_input_is_a_400_not_a_503() {
    let app = spawn_app().await;
    for body in [
        r#"{"name": "x", "stock": 1, "opens_at": "-5000-01-01T00:00:00Z"}"#,
        r#"{"name": "x", "stock": 1, "opens_at": "0001-01-01T00:00:00Z"}"#,
        r#"{"name": "x", "stock": 1, "closes_at": "+10000-01-01T00:00:00Z"}"#,
        r#"{"name": "x", "stock": 1, "closes_at": "+262142-12-31T23:59:59Z"}"#,
        r#"{"name": "x", "stock": 1, "opens_at": "2016-12-31T23:59:60Z"}"#,
        r#"{"name": "x", "stock": 1e400}"#,
        r#"{"name": "x", "stock": 18446744073709551616}"#,
        r#"{"name": "x", "stock": 0}"#,
        r#"{"name": "x", "stock": -1}"#,
        r#"{"name": "tab\there", "stock": 1}"#,
        r#"{"name": "\u202edrop", "stock": 1}"#,
        r#"{"name": "x", "stock": 1, "stock": 2}"#,
        r#"{"id": "UPPER", "name": "x", "stock": 1}"#,
    ] {
        let response = app
            .client
            .post(app.url("/v1/campaigns"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_client_error(response, body).await;
    }
    for body in [
        json!({"name": "x".repeat(201), "stock": 1}),
        json!({"id": "x".repeat(65), "name": "x", "stock": 1}),
    ] {
        assert_client_error(app.create_campaign(&body).await, "too long").await;
    }
    // The edges of the range are accepted.
    let edge = app
        .create_campaign(&json!({"name": "x", "stock": 1,
            "opens_at": "1970-01-01T00:00:00Z", "closes_at": "9999-12-31T23:59:59.999Z"}))
        .await;
    assert_eq!(edge.status(), StatusCode::CREATED);
    let campaign = app.open_campaign(1).await;
    for add in [
        json!({"add": 0}),
        json!({"add": 100_000_001}),
        json!({"add": 1e30}),
        json!({"add": -5}),
    ] {
        let response = app
            .client
            .post(app.url(&format!("/v1/campaigns/{campaign}/stock")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&add)
            .send()
            .await
            .unwrap();
        assert_client_error(response, &add.to_string()).await;
    }
    for query in [
        "limit=0",
        "limit=101",
        "limit=99999999999999999999",
        "after=%FF",
        "limit=-1",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/v1/campaigns?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_client_error(response, query).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn user_ids_must_be_visible_and_are_normalized() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10).await;
    for user in [
        "\u{202E}resu",
        "a\u{200B}b",
        "line\u{2028}sep",
        "\u{FEFF}bom",
        "nbsp\u{A0}id",
        "\u{3164}",
        " padded ",
        "",
        &"x".repeat(129),
    ] {
        let response = app.issue(&campaign, user).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("user_id"),
            "{problem}"
        );
    }
    // "josé" decomposed and composed is one user: the same Idempotency-Key with either form is
    // a replay of the same request (a different user would be a 422).
    let first = app
        .issue_with_key(&campaign, "jose\u{301}", Some("nfc-key"))
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = app
        .issue_with_key(&campaign, "jos\u{e9}", Some("nfc-key"))
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["request_id"], again["request_id"]);
    // What is stored, and echoed, is the normalized form.
    let id = first["request_id"].as_str().unwrap();
    let view: Value = app.request_status(id, None).await.json().await.unwrap();
    assert_eq!(view["user_id"], "jos\u{e9}");
    app.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = app
            .client
            .post(app.url("/v1/campaigns"))
            .header("Authorization", format!("{scheme} {ADMIN_TOKEN}"))
            .json(&json!({"name": "n", "stock": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{scheme}");
    }
    let response = app
        .client
        .post(app.url("/v1/campaigns"))
        .header("Authorization", format!("Basic {ADMIN_TOKEN}"))
        .json(&json!({"name": "n", "stock": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_headers_query_and_bodies_are_4xx_problems() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10).await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url(&format!("/v1/campaigns/{campaign}/requests")))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (body, content_type) in [
        (b"{\"user_id\": \"\xff\xfe\"}".to_vec(), "application/json"),
        (
            b"{\"user_id\": \"a\", \"user_id\": \"b\"}".to_vec(),
            "application/json",
        ),
        (
            format!("{{\"user_id\": {deep}}}").into_bytes(),
            "application/json",
        ),
        (deep.clone().into_bytes(), "application/json"),
        (b"{\"user_id\": 1e999999}".to_vec(), "application/json"),
        (b"{\"user_id\": \"\\ud800\"}".to_vec(), "application/json"),
        (b"".to_vec(), "application/json"),
        (b"{\"user_id\": \"u\"}".to_vec(), "text/plain"),
        (
            b"{\"user_id\": \"u\"}".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (vec![b' '; 70 * 1024], "application/json"),
    ] {
        let what = format!(
            "{content_type}: {}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert_client_error(post(body, content_type).await.unwrap(), &what).await;
    }
    // JSON content types with parameters or in other cases are JSON.
    for content_type in [
        "application/json; charset=utf-8",
        "application/problem+json",
    ] {
        let response = post(b"{\"user_id\": \"ct-user\"}".to_vec(), content_type)
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{content_type}: {}",
            response.status()
        );
    }

    // Idempotency-Key: repeated, not ASCII, too long.
    let twice = app
        .client
        .post(app.url(&format!("/v1/campaigns/{campaign}/requests")))
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&json!({"user_id": "u-twice"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(twice, StatusCode::BAD_REQUEST).await;
    assert!(problem["detail"].as_str().unwrap().contains("at most once"));
    for key in [
        reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        reqwest::header::HeaderValue::from_str(&"k".repeat(129)).unwrap(),
    ] {
        let response = app
            .client
            .post(app.url(&format!("/v1/campaigns/{campaign}/requests")))
            .header("idempotency-key", key)
            .json(&json!({"user_id": "u-key"}))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }

    // ?wait= extremes, and ids that are not ids.
    let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    for query in [
        "wait=-1",
        "wait=1.5",
        "wait=%FF",
        "wait=",
        "wait=1&wait=2",
        "wait=%00",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/v1/requests/{unknown}?{query}")))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    let started = Instant::now();
    let huge = app
        .client
        .get(app.url(&format!(
            "/v1/requests/{unknown}?wait=999999999999999999999999"
        )))
        .send()
        .await
        .unwrap();
    assert_problem(huge, StatusCode::NOT_FOUND).await;
    assert!(started.elapsed() < NO_HANG);
    for path in [
        "/v1/requests/%FF%FE".to_owned(),
        "/v1/requests/%00".to_owned(),
        "/v1/requests/not-a-uuid".to_owned(),
        format!("/v1/requests/{}", "a".repeat(8000)),
        "/v1/campaigns/%FF/requests".to_owned(),
        "/v1/campaigns/%C0%AF".to_owned(),
        format!("/v1/campaigns/{}", "a".repeat(8000)),
    ] {
        let response = app
            .client
            .request(
                if path.ends_with("/requests") {
                    Method::POST
                } else {
                    Method::GET
                },
                app.url(&path),
            )
            .json(&json!({"user_id": "u"}))
            .send()
            .await
            .unwrap();
        assert_client_error(response, &path[..path.len().min(40)]).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn protocol_garbage_is_refused_or_closed_never_a_5xx() {
    // Garbage hyper cannot frame (a head that never ends, a body that never comes) is closed at
    // the bounds; short here.
    let app = spawn_app_with(|c| {
        c.connections.header_read_timeout = Duration::from_secs(1);
        c.connections.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let many_headers: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70 * 1024));
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "v".repeat(70 * 1024)
    );
    let requests: Vec<Vec<u8>> = vec![
        format!("GET /healthz HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n").into_bytes(),
        long_uri.into_bytes(),
        big_header.into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(),
        b"GET /he\xffalthz HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Bad: \x01\x02\r\n\r\n".to_vec(),
        b"POST /v1/campaigns/x/requests HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
        b"POST /v1/campaigns/x/requests HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n".to_vec(),
        b"POST /v1/campaigns/x/requests HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST /v1/campaigns/x/requests HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nfffffffffffffffffff\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        vec![0u8; 1024],
    ];
    for request in requests {
        let response = exchange(&app, &request).await;
        if !response.is_empty() {
            let status = status_of(&response);
            assert!(
                (400..500).contains(&status),
                "{status} for {:?}",
                String::from_utf8_lossy(&request[..request.len().min(60)])
            );
        }
    }
    // The server is unharmed.
    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    app.stop().await;
}

/// The API on a private Redis this test may hang or kill.
async fn on_private_redis() -> (RedisServer, TestApp) {
    let redis = RedisServer::start(Fsync::EverySec).await.expect("redis");
    let env = TestEnv::on(&rushline_testkit::admin_database_url(), &redis.url())
        .await
        .expect("env");
    let app = spawn_app_in(env, |c| c.backend_timeout = Duration::from_millis(1000)).await;
    (redis, app)
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_after_the_accept_script_may_have_run_carries_the_request_id_and_location() {
    let (redis, app) = on_private_redis().await;
    let campaign = app.open_campaign(10).await;
    let pid = redis.pid().expect("redis pid");
    // SIGSTOP: the script call reaches Redis's socket and times out without an answer.
    signal(pid, "-STOP");
    let response = app.issue(&campaign, "user-in-doubt").await;
    signal(pid, "-CONT");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("Location on a 503 that may have queued");
    assert!(response.headers().contains_key("retry-after"));
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    let request_id = problem["request_id"].as_str().expect("request_id member");
    assert_eq!(location, format!("/v1/requests/{request_id}"));
    // One GET tells the client the outcome: Redis ran the script once it was resumed, or not.
    let deadline = Instant::now() + NO_HANG;
    let status = loop {
        let status = app
            .client
            .get(app.url(&location))
            .send()
            .await
            .unwrap()
            .status();
        if status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            break status;
        }
    };
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "GET Location: {status}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_before_anything_reached_redis_carries_no_request_id() {
    let (mut redis, app) = on_private_redis().await;
    let campaign = app.open_campaign(10).await;
    redis.kill();
    // The first call may still go out on a connection that broke mid-call (in doubt); once the
    // pool has to connect again, Redis refuses the connection and nothing can have been queued.
    let mut certain = false;
    for n in 0..20 {
        let response = app.issue(&campaign, &format!("user-{n}")).await;
        let location = response.headers().get("location").cloned();
        let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        match (problem.get("request_id"), location) {
            (None, None) => {
                certain = true;
                break;
            }
            (Some(id), Some(location)) => {
                assert_eq!(
                    location.to_str().unwrap(),
                    format!("/v1/requests/{}", id.as_str().unwrap())
                );
            }
            other => panic!("request_id and Location come together: {other:?}"),
        }
    }
    assert!(
        certain,
        "a refused connection is certain not to have queued anything"
    );
    redis.restart().await.expect("redis restart");
    app.stop().await;
}
