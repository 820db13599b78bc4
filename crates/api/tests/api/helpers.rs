//! `spawn_app()` and typed request helpers.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use rushline_api::{Application, Config};
use rushline_queue::Queue;
use rushline_store::Store;
use rushline_testkit::TestEnv;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub env: TestEnv,
    pub queue: Queue,
    pub store: Store,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    worker_shutdown: CancellationToken,
    workers: Vec<JoinHandle<()>>,
}

/// The API with an admin token and no workers.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The API with `customize` applied to its configuration.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let env = TestEnv::new().await.expect("test environment");
    spawn_app_in(env, customize).await
}

/// The API in `env` (a test's private servers, say) with `customize` applied.
pub async fn spawn_app_in(env: TestEnv, customize: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(&env);
    customize(&mut config);
    let shutdown = CancellationToken::new();
    let app = Application::build(config, shutdown.clone())
        .await
        .expect("build app");
    let address = format!("http://{}", app.local_addr().expect("local addr"));
    let queue = app.state().queue.clone();
    let store = app.state().store.clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        env,
        queue,
        store,
        shutdown,
        server,
        worker_shutdown: CancellationToken::new(),
        workers: Vec::new(),
    }
}

fn test_config(env: &TestEnv) -> Config {
    Config::from_lookup(env.settings(&[
        ("RUSHLINE_HTTP_ADDR", "127.0.0.1:0"),
        ("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("RUSHLINE_DB_MAX_CONNECTIONS", "4"),
    ]))
    .expect("config")
}

/// A second API process's worth of state on the same database and Redis namespace: another
/// replica behind the same (imaginary) balancer.
pub struct Replica {
    pub address: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server
            .await
            .expect("replica task")
            .expect("replica result");
    }
}

/// The API plus `workers` in-process workers.
pub async fn spawn_app_with_workers(workers: usize) -> TestApp {
    let mut app = spawn_app().await;
    for _ in 0..workers {
        app.start_worker();
    }
    app
}

impl TestApp {
    /// Starts one more worker on its own Redis connections.
    pub fn start_worker(&mut self) {
        self.start_worker_with(&[]);
    }

    /// Starts one more worker with extra `RUSHLINE_*` settings.
    pub fn start_worker_with(&mut self, settings: &[(&str, &str)]) {
        let settings = [&[("RUSHLINE_SWEEP_MS", "200")], settings].concat();
        let config = rushline_worker::Config::from_lookup(self.env.settings(&settings))
            .expect("worker config");
        let queue = Queue::new(config.queue_config()).expect("worker queue");
        let worker = rushline_worker::Worker::new(config, queue, self.env.store.clone());
        self.workers
            .push(tokio::spawn(worker.run(self.worker_shutdown.clone())));
    }

    /// Stops the workers (they finish what they took) and waits for them.
    pub async fn stop_workers(&mut self) {
        self.worker_shutdown.cancel();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker task");
        }
        self.worker_shutdown = CancellationToken::new();
    }

    /// Starts another API replica on this app's database and Redis namespace.
    pub async fn replica(&self) -> Replica {
        let shutdown = CancellationToken::new();
        let app = Application::build(test_config(&self.env), shutdown.clone())
            .await
            .expect("build replica");
        let address = format!("http://{}", app.local_addr().expect("local addr"));
        Replica {
            address,
            client: reqwest::Client::new(),
            shutdown,
            server: tokio::spawn(app.run_until_stopped()),
        }
    }

    /// Graceful shutdown of everything, then the test's database and keys are dropped.
    pub async fn stop(mut self) {
        self.stop_workers().await;
        self.shutdown.cancel();
        self.server
            .await
            .expect("server task")
            .expect("server result");
        self.env.cleanup().await.expect("cleanup");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn create_campaign(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/v1/campaigns"))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("POST /v1/campaigns")
    }

    /// Creates an open campaign with `stock` and returns its id.
    pub async fn open_campaign(&self, stock: u64) -> String {
        let response = self
            .create_campaign(&json!({"name": "Test drop", "stock": stock}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("campaign json");
        body["id"].as_str().expect("campaign id").to_owned()
    }

    pub async fn issue(&self, campaign: &str, user: &str) -> Response {
        self.issue_with_key(campaign, user, None).await
    }

    pub async fn issue_with_key(&self, campaign: &str, user: &str, key: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/campaigns/{campaign}/requests")))
            .json(&json!({"user_id": user}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST requests")
    }

    pub async fn request_status(&self, id: &str, wait: Option<u64>) -> Response {
        let mut url = self.url(&format!("/v1/requests/{id}"));
        if let Some(wait) = wait {
            url.push_str(&format!("?wait={wait}"));
        }
        self.client.get(url).send().await.expect("GET request")
    }

    /// Long-polls until the request is final (each poll waits up to 30 s; 4 polls at most).
    pub async fn final_status(&self, id: &str) -> Value {
        for _ in 0..4 {
            let response = self.request_status(id, Some(30)).await;
            assert_eq!(response.status(), StatusCode::OK, "GET /v1/requests/{id}");
            let body: Value = response.json().await.expect("status json");
            if body["status"] != "queued" {
                return body;
            }
        }
        panic!("request {id} not final after 120 s");
    }

    pub async fn campaign(&self, id: &str) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/v1/campaigns/{id}")))
            .send()
            .await
            .expect("GET campaign");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("campaign json")
    }

    /// Waits until every decision of `campaign` is in PostgreSQL: its queue and log are empty.
    pub async fn drained(&self, campaign: &str) {
        let id = rushline_domain::CampaignId::parse(campaign).expect("campaign id");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let queued = self.queue.queue_len(&id).await.expect("queue length");
            let unpersisted = self.queue.log_len(&id).await.expect("log length");
            if queued == 0 && unpersisted == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{campaign}: {queued} queued, {unpersisted} unpersisted after 60 s"
            );
            // Not synchronisation by sleep: a bounded poll of a condition with no event to await.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts an RFC 9457 problem response with `status`, returning its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}
