//! A real `rushline-worker` serves `GET /metrics` on the port it was given (0: a free one, read
//! back from its log), counts what it decided and persisted, and stops serving on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use rushline_domain::{CampaignId, RequestId, UserId};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue};
use rushline_testkit::TestEnv;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A campaign with `stock` coupons and `users` distinct users' requests queued through the
/// API's accept script, plus one second press by the first user.
async fn queued_campaign(env: &TestEnv, queue: &Queue, stock: u64, users: usize) -> CampaignId {
    let id = env.warm_open_campaign(queue, stock).await.unwrap();
    let items: Vec<AcceptItem> = (0..users)
        .chain([0])
        .map(|user| AcceptItem {
            request_id: RequestId::new_for(&id),
            user_id: UserId::parse(format!("user-{user}")).unwrap(),
            idempotency_key: None,
            admitted: false,
        })
        .collect();
    let outcomes = queue.accept(&id, &items).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == AcceptOutcome::Queued));
    id
}

/// Starts the worker with metrics on a free port and returns it with the address it logged.
async fn spawn_worker(env: &TestEnv) -> (Child, String) {
    let mut worker = Command::from(env.command(env!("CARGO_BIN_EXE_rushline-worker")))
        .env("RUSHLINE_WORKER_METRICS_ADDR", "127.0.0.1:0")
        .env("RUSHLINE_SWEEP_MS", "200")
        .env("RUSHLINE_DECIDE_BATCH", "4")
        .env("RUSHLINE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start rushline-worker");
    let stdout = worker.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("worker log") {
            if !line.contains("worker metrics listening") {
                continue;
            }
            let log: serde_json::Value = serde_json::from_str(&line).expect("json log line");
            return log["fields"]["addr"].as_str().map(str::to_owned);
        }
        None
    })
    .await
    .expect("the worker to log its metrics address")
    .expect("a metrics address in the log");
    // Keep draining the log so the worker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (worker, addr)
}

/// The value of the sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .find(|line| {
            line.starts_with(metric)
                && line[metric.len()..].starts_with(['{', ' '])
                && labels.iter().all(|label| line.contains(label))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn a_worker_serves_its_decisions_and_persistence_on_metrics() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let (mut worker, addr) = spawn_worker(&env).await;
    // 10 users for 6 coupons, and one user twice: 6 issued, 4 sold out, 1 duplicate.
    queued_campaign(&env, &queue, 6, 10).await;

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    // Across processes there is no event to await: scrape until every decision is persisted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let response = client.get(&url).send().await.expect("scrape");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain")),
            "Prometheus text format"
        );
        let text = response.text().await.expect("metrics body");
        if sample(&text, "rushline_persisted_rows_total", &[]) == Some(11.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every decision persisted in time:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (outcome, count) in [("issued", 6.0), ("sold_out", 4.0), ("duplicate", 1.0)] {
        let label = format!("outcome=\"{outcome}\"");
        assert_eq!(
            sample(&text, "rushline_decisions_total", &[&label]),
            Some(count),
            "{outcome}:\n{text}"
        );
    }
    // Batches of at most 4 (RUSHLINE_DECIDE_BATCH): 11 requests take at least three calls.
    let decide_calls = sample(&text, "rushline_decide_batch_size_count", &[]).expect(&text);
    assert!(decide_calls >= 3.0, "{text}");
    assert_eq!(
        sample(&text, "rushline_decide_batch_size_sum", &[]),
        Some(11.0)
    );
    assert_eq!(
        sample(&text, "rushline_persist_batch_size_sum", &[]),
        Some(11.0)
    );
    assert!(
        text.contains("# TYPE rushline_decide_batch_size histogram"),
        "{text}"
    );

    // SIGTERM: the worker exits 0 and its metrics port closes with it.
    let pid = worker.id().expect("worker pid").to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker to exit after SIGTERM")
        .expect("worker status");
    assert!(status.success(), "{status}");
    assert!(
        client.get(&url).send().await.is_err(),
        "metrics still served after the worker stopped"
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn metrics_can_be_switched_off_and_a_bad_address_is_refused() {
    let config = rushline_worker::Config::from_lookup(|name| {
        (name == "RUSHLINE_WORKER_METRICS_ADDR").then(|| "off".to_owned())
    })
    .unwrap();
    assert_eq!(config.metrics_addr, None);
    let default = rushline_worker::Config::from_lookup(|_| None).unwrap();
    assert_eq!(
        default.metrics_addr.map(|a| a.to_string()).as_deref(),
        Some(rushline_worker::config::DEFAULT_METRICS_ADDR)
    );
    let bad = rushline_worker::Config::from_lookup(|name| {
        (name == "RUSHLINE_WORKER_METRICS_ADDR").then(|| "nine-oh-nine-one".to_owned())
    });
    assert!(bad.is_err());
}
