//! The real `rushline-api` binary: start-up migrations and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rushline_api::{Application, Config};
use rushline_testkit::TestEnv;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::ADMIN_TOKEN;

#[tokio::test]
async fn replicas_starting_together_migrate_an_empty_database_once() {
    let env = TestEnv::unmigrated().await.unwrap();
    let builds = (0..4).map(|_| {
        let mut config = Config::from_lookup(|_| None).unwrap();
        config.http_addr = "127.0.0.1:0".into();
        config.database_url = env.database_url.clone();
        config.redis_url = env.redis_url.clone();
        config.key_namespace = Some(env.namespace.clone());
        config.db_max_connections = 2;
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
    let mut api = Command::new(env!("CARGO_BIN_EXE_rushline-api"))
        .env("RUSHLINE_HTTP_ADDR", "127.0.0.1:0")
        .env("RUSHLINE_DATABASE_URL", &env.database_url)
        .env("RUSHLINE_REDIS_URL", &env.redis_url)
        .env("RUSHLINE_KEY_NAMESPACE", &env.namespace)
        .env("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUSHLINE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start rushline-api");
    // The address comes from the start-up log line (port 0 was asked for).
    let stdout = api.stdout.take().unwrap();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut addr_tx = Some(addr_tx);
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
        .unwrap();
    let base = format!("http://{addr}");
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
