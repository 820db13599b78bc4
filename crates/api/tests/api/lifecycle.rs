//! The real `rushline-api` binary: start-up migrations and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rushline_api::{Application, Config};
use rushline_testkit::TestEnv;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::ADMIN_TOKEN;

/// Starts the real `rushline-api` on a free port and returns it with its base URL (read from
/// its start-up log line).
pub async fn spawn_api_process(env: &TestEnv) -> (Child, String) {
    spawn_api_process_with(env, &[]).await
}

/// Like [`spawn_api_process`], with extra `RUSHLINE_*` settings.
pub async fn spawn_api_process_with(env: &TestEnv, settings: &[(&str, &str)]) -> (Child, String) {
    let mut api = env
        .command(env!("CARGO_BIN_EXE_rushline-api"))
        .envs(settings.iter().copied())
        .env("RUSHLINE_HTTP_ADDR", "127.0.0.1:0")
        .env("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUSHLINE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start rushline-api");
    let stdout = api.stdout.take().expect("piped stdout");
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut addr_tx = Some(addr_tx);
        // Keeps reading to the end so the API never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["fields"]["message"] == "rushline-api listening"
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(
                    event["fields"]["addr"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx)
        .await
        .expect("API started")
        .expect("address logged");
    (api, format!("http://{addr}"))
}

#[tokio::test]
async fn replicas_starting_together_migrate_an_empty_database_once() {
    let env = TestEnv::unmigrated().await.unwrap();
    let builds = (0..4).map(|_| {
        let config = Config::from_lookup(env.settings(&[
            ("RUSHLINE_HTTP_ADDR", "127.0.0.1:0"),
            ("RUSHLINE_DB_MAX_CONNECTIONS", "2"),
        ]))
        .unwrap();
        Application::build(config, CancellationToken::new())
    });
    for app in futures::future::join_all(builds).await {
        app.expect("every replica starts");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(applied, rushline_store::MIGRATOR.iter().count() as i64);
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_parked_callers_and_exits_zero() {
    let env = TestEnv::unmigrated().await.unwrap();
    let (mut api, base) = spawn_api_process(&env).await;
    let client = reqwest::Client::new();

    let created = client
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "drop", "name": "n", "stock": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "migrated at start-up and serving"
    );
    let queued: Value = client
        .post(format!("{base}/v1/campaigns/drop/requests"))
        .json(&json!({"user_id": "u"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = queued["request_id"].as_str().unwrap().to_owned();

    // Park a caller (no worker runs, so it would wait the full 30 s).
    let parked = {
        let url = format!("{base}/v1/requests/{id}?wait=30");
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client.get(url).send().await.unwrap();
            (
                response.status(),
                response.json::<Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.lines().any(|l| l.starts_with("rushline_waiters 1")) {
            break;
        }
        assert!(Instant::now() < deadline, "caller never parked: {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let term = Command::new("kill")
        .arg("-TERM")
        .arg(api.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let (status, body, waited) = parked.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "queued");
    assert!(
        waited < Duration::from_secs(20),
        "answered at shutdown, not at the 30 s timeout ({waited:?})"
    );
    let exit = tokio::task::spawn_blocking(move || api.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer accepting"
    );
    env.cleanup().await.unwrap();
}

/// `n` in-process workers on `env`; cancel the token to stop them.
fn start_workers(env: &TestEnv, n: usize) -> (CancellationToken, Vec<tokio::task::JoinHandle<()>>) {
    let stop = CancellationToken::new();
    let workers = (0..n)
        .map(|_| {
            let config =
                rushline_worker::Config::from_lookup(env.settings(&[("RUSHLINE_SWEEP_MS", "200")]))
                    .expect("worker config");
            let queue = rushline_queue::Queue::new(config.queue_config()).expect("queue");
            let worker = rushline_worker::Worker::new(config, queue, env.store.clone());
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect();
    (stop, workers)
}

/// Sends `users` requests to `base`, 32 at a time, reporting each answered request id on
/// `answered` (a killed API answers the rest with connection errors, which are dropped).
fn blast(
    base: String,
    campaign: &'static str,
    users: std::ops::Range<u32>,
    answered: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        futures::stream::iter(users)
            .for_each_concurrent(32, |n| {
                let (client, base, answered) = (client.clone(), base.clone(), answered.clone());
                async move {
                    let Ok(response) = client
                        .post(format!("{base}/v1/campaigns/{campaign}/requests"))
                        .json(&json!({"user_id": format!("user-{n}")}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let status = response.status();
                    if let Ok(body) = response.json::<Value>().await
                        && matches!(status, StatusCode::ACCEPTED | StatusCode::OK)
                        && let Some(id) = body["request_id"].as_str()
                    {
                        let _ = answered.send(id.to_owned());
                    }
                }
            })
            .await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apis_killed_or_stopped_under_load_lose_no_answered_request() {
    let env = TestEnv::new().await.unwrap();
    let (stop_workers, workers) = start_workers(&env, 2);
    let client = reqwest::Client::new();
    let (mut first, base) = spawn_api_process(&env).await;
    let created = client
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "spike", "name": "n", "stock": 400}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // SIGKILL the first API once 150 requests were answered, with more in flight.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let load = blast(base, "spike", 0..600, tx);
    let mut ids = Vec::new();
    while ids.len() < 150 {
        ids.push(rx.recv().await.expect("answers before the kill"));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    load.await.unwrap();
    while let Ok(id) = rx.try_recv() {
        ids.push(id);
    }

    // A second API takes over; SIGTERM it under load: it drains, answers, exits 0 within 15 s.
    let (second, base) = spawn_api_process(&env).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let load = blast(base, "spike", 600..1_200, tx);
    let before = ids.len();
    while ids.len() < before + 150 {
        ids.push(rx.recv().await.expect("answers before the stop"));
    }
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let stopping = Instant::now();
    let mut second = second;
    let exit = tokio::task::spawn_blocking(move || second.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "drained in time"
    );
    load.await.unwrap();
    while let Ok(id) = rx.try_recv() {
        ids.push(id);
    }

    // A third API serves `?wait=` for every request the others answered: all final, once each.
    let (mut third, base) = spawn_api_process(&env).await;
    for id in &ids {
        let body: Value = client
            .get(format!("{base}/v1/requests/{id}?wait=30"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            ["issued", "sold_out", "duplicate"].contains(&body["status"].as_str().unwrap_or("")),
            "{id}: {body}"
        );
        let recorded = async || {
            env.store
                .request(rushline_domain::RequestId::parse(id).unwrap())
                .await
                .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while recorded().await.is_none() {
            assert!(Instant::now() < deadline, "{id} never recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let campaign = rushline_domain::CampaignId::parse("spike").unwrap();
    let audit = rushline_testkit::audit(&env.store, &campaign)
        .await
        .unwrap();
    audit.assert_guarantees();
    third.kill().unwrap();
    third.wait().unwrap();
    stop_workers.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
    env.cleanup().await.unwrap();
}
