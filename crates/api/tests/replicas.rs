//! API replicas behind a load balancer, without Docker (issue 14): three `rushline-api`
//! processes on loopback ports behind Debian's `haproxy`, running deploy/haproxy/haproxy.cfg —
//! the file docker-compose.yml's `lb` mounts — with only its Docker DNS line swapped for the three
//! loopback servers; two `rushline-worker` processes; a spike through the balancer while every
//! API replica is restarted in turn (SIGTERM, exit 0, start again, ready, next). Then every
//! guarantee is audited by testkit's one audit ([`guarantees`]).
//!
//! Clients behave as the contract asks: each request carries an `Idempotency-Key` and is sent
//! again with it after a connection error or a `502`/`503`/`504`, then its outcome is read with
//! `GET ?wait=`. The test states what a rolling restart may cost them: at most
//! [`MAX_FAILED_ATTEMPT_SHARE`] of the spike's requests may see such an error on any attempt
//! (README, *Scaling replicas*), and none may lose its `202`.
//!
//! The spike's last tenth is held back until the rolling restart is over, so the restart always
//! falls inside the spike, however fast or slow the machine.
//!
//! Needs `haproxy` (scripts/setup installs it) and the `rushline-worker` binary beside the API's
//! (`cargo test --workspace` builds it; `cargo build -p rushline-worker` when running this alone).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use rushline_domain::CampaignId;
use rushline_testkit::guarantees::{self, Record, Reported, Violation};
use rushline_testkit::{TestEnv, eventually};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::watch;

const ADMIN_TOKEN: &str = "replicas-admin-token";
const CAMPAIGN: &str = "replicas";
const REPLICAS: usize = 3;
const WORKERS: usize = 2;
/// The spike: distinct users, one request each, at most [`CLIENTS`] at a time.
const USERS: u32 = 3_000;
const CLIENTS: usize = 64;
/// Fewer coupons than users: the campaign sells out during the spike.
const STOCK: u64 = 1_000;
/// The first 90 % of the spike is paced over this long; the rest waits for the restart's end.
const PACED_OVER: Duration = Duration::from_secs(12);
/// Share of the spike's requests that may see a connection error or a 502/503/504 on some
/// attempt while replicas restart (retried by the client with the same key).
const MAX_FAILED_ATTEMPT_SHARE: f64 = 0.01;
/// How long a replica may take to drain and exit after SIGTERM.
const DRAIN_BOUND: Duration = Duration::from_secs(15);
/// How long a client keeps retrying one request before the test gives up on it.
const CLIENT_PATIENCE: Duration = Duration::from_secs(90);
/// The line of the shipped configuration that finds replicas through Docker's DNS.
const DISCOVERY_MARK: &str = "# replicas:";

/// `haproxy` from PATH or Debian's /usr/sbin, or a failure naming scripts/setup.
fn haproxy_binary() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("haproxy is not installed: run scripts/setup (it installs Debian's haproxy)")
        })
}

fn api_binary() -> &'static str {
    env!("CARGO_BIN_EXE_rushline-api")
}

/// The worker binary beside the API's (see the module doc).
fn worker_binary() -> PathBuf {
    let path = PathBuf::from(api_binary()).with_file_name("rushline-worker");
    assert!(
        path.is_file(),
        "{} is missing: cargo build -p rushline-worker",
        path.display()
    );
    path
}

/// A free loopback port (the kernel's pick; a replica restarts on the same one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// deploy/haproxy/haproxy.cfg, the file docker-compose.yml mounts.
fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy/haproxy.cfg")
}

/// `haproxy -c` on `config` with the settings docker-compose.yml gives it: fails the test with
/// HAProxy's own message when it refuses the file.
async fn assert_haproxy_accepts(config: &Path) {
    let checked = tokio::process::Command::new(haproxy_binary())
        .env("RUSHLINE_LB_BIND", ":8080")
        .arg("-c")
        .arg("-f")
        .arg(config)
        .output()
        .await
        .expect("haproxy -c");
    assert!(
        checked.status.success(),
        "haproxy refuses {}: {}{}",
        config.display(),
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// deploy/haproxy/haproxy.cfg with its Docker DNS discovery replaced by `ports` on loopback.
fn balancer_config(ports: &[u16]) -> String {
    let shipped = shipped_config();
    let text = std::fs::read_to_string(&shipped).expect("deploy/haproxy/haproxy.cfg");
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("    server api{} 127.0.0.1:{port} check\n", i + 1))
        .collect();
    let mut swapped = 0;
    let config = text
        .lines()
        .map(|line| {
            if line.contains(DISCOVERY_MARK) {
                swapped += 1;
                servers.clone()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_eq!(swapped, 1, "one `{DISCOVERY_MARK}` line in {shipped:?}");
    config
}

/// A running HAProxy on the test's generated configuration.
struct Balancer {
    process: Child,
    url: String,
    socket: PathBuf,
    dir: PathBuf,
}

impl Balancer {
    async fn start(ports: &[u16]) -> Self {
        let dir = std::env::temp_dir().join(format!("rushline-replicas-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, balancer_config(ports)).expect("write haproxy.cfg");
        let port = free_port();
        let socket = dir.join("admin.sock");
        assert_haproxy_accepts(&config).await;
        let process = tokio::process::Command::new(haproxy_binary())
            .env("RUSHLINE_LB_BIND", format!("127.0.0.1:{port}"))
            .env("RUSHLINE_LB_STATS_SOCKET", &socket)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start haproxy");
        Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
            socket,
            dir,
        }
    }

    /// One `show stat` row's fields for `server` of the `api` proxy (`BACKEND` for the total).
    async fn stat(&self, server: &str) -> Option<Vec<String>> {
        let mut stream = tokio::net::UnixStream::connect(&self.socket).await.ok()?;
        stream.write_all(b"show stat\n").await.ok()?;
        let mut csv = String::new();
        stream.read_to_string(&mut csv).await.ok()?;
        csv.lines()
            .map(|line| line.split(',').map(str::to_owned).collect::<Vec<_>>())
            .find(|fields| fields.len() > 17 && fields[0] == "api" && fields[1] == server)
    }

    /// Whether HAProxy routes to `server` (its health checks passed).
    ///
    /// # Panics
    ///
    /// When HAProxy has exited (its own message is on the test's stderr).
    async fn routes_to(&mut self, server: &str) -> bool {
        if let Ok(Some(exit)) = self.process.try_wait() {
            panic!("haproxy exited with {exit}");
        }
        self.stat(server).await.is_some_and(|f| f[17] == "UP")
    }

    /// (retries, redispatches) HAProxy made, from its backend counters.
    async fn retries(&self) -> (u64, u64) {
        let fields = self.stat("BACKEND").await.expect("backend stats");
        let number = |i: usize| fields[i].parse().unwrap_or(0);
        (number(15), number(16))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One API replica: its port stays the same across restarts, as a container's address would.
struct Replica {
    name: String,
    port: u16,
    process: Child,
}

fn start_api(env: &TestEnv, port: u16) -> Child {
    env.tokio_command(api_binary())
        .env("RUSHLINE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUSHLINE_DB_MAX_CONNECTIONS", "4")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("start rushline-api")
}

fn start_worker(env: &TestEnv) -> Child {
    env.tokio_command(worker_binary())
        .env("RUSHLINE_DB_MAX_CONNECTIONS", "2")
        // Two workers on one host: no fixed metrics port to fight over.
        .env("RUSHLINE_WORKER_METRICS_ADDR", "off")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("start rushline-worker")
}

/// Waits until the replica itself answers `/readyz` 200 and HAProxy routes to it again.
async fn wait_routed(client: &reqwest::Client, balancer: &mut Balancer, replica: &Replica) {
    let readyz = format!("http://127.0.0.1:{}/readyz", replica.port);
    eventually(Duration::from_secs(60), "replica ready", async || {
        client
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "HAProxy routes to the replica",
        async || balancer.routes_to(&replica.name).await,
    )
    .await;
}

/// What the clients saw go wrong, attempt by attempt (each was retried).
#[derive(Default)]
struct Failures {
    /// Requests that saw at least one failed attempt.
    requests: AtomicU64,
    /// POST attempts: connection errors, then 502/503/504.
    post_transport: AtomicU64,
    post_5xx: AtomicU64,
    /// GET attempts: connection errors and 502/503/504.
    get: AtomicU64,
}

/// One request as its client saw it.
struct Answered {
    user: String,
    request_id: uuid::Uuid,
    sent: Instant,
    answered: Instant,
    /// The final status a `200` gave at once.
    told: Option<String>,
    /// The final status `GET` reported.
    reported: Reported,
}

fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// A client's pause before sending again (backoff, not synchronisation).
async fn back_off() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One user's request: POST until answered (same key on every attempt), then GET until final.
async fn press(client: &reqwest::Client, lb: &str, user: String, failures: &Failures) -> Answered {
    let key = uuid::Uuid::new_v4().to_string();
    let sent = Instant::now();
    let deadline = sent + CLIENT_PATIENCE;
    let mut failed = false;
    let (request_id, answered, told) = loop {
        assert!(Instant::now() < deadline, "{user}: never answered");
        let attempt = client
            .post(format!("{lb}/v1/campaigns/{CAMPAIGN}/requests"))
            .header("Idempotency-Key", &key)
            .json(&json!({"user_id": user}))
            .send()
            .await;
        match attempt {
            Err(_) => failures.post_transport.fetch_add(1, Ordering::Relaxed),
            Ok(r) if retryable(r.status()) => failures.post_5xx.fetch_add(1, Ordering::Relaxed),
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.expect("answer body");
                assert!(
                    matches!(status, StatusCode::ACCEPTED | StatusCode::OK),
                    "{user}: {status} {body}"
                );
                let id = body["request_id"].as_str().expect("request_id");
                let told = (status == StatusCode::OK)
                    .then(|| body["status"].as_str().unwrap_or_default().to_owned());
                break (id.parse().expect("uuid"), Instant::now(), told);
            }
        };
        failed = true;
        back_off().await;
    };
    let reported = loop {
        assert!(
            Instant::now() < deadline,
            "{user}: {request_id} never final"
        );
        let attempt = client
            .get(format!("{lb}/v1/requests/{request_id}?wait=10"))
            .send()
            .await;
        match attempt {
            Ok(r) if r.status() == StatusCode::OK => {
                let body: Value = r.json().await.expect("status body");
                if body["status"] != "queued" {
                    break Reported {
                        status: body["status"].as_str().unwrap_or_default().to_owned(),
                        coupon_code: body["coupon_code"].as_str().map(str::to_owned),
                    };
                }
                // Still queued: the replica waited, or answered early because it is stopping.
            }
            Ok(r) => {
                assert!(retryable(r.status()), "{user}: GET answered {}", r.status());
                failures.get.fetch_add(1, Ordering::Relaxed);
                failed = true;
                back_off().await;
            }
            Err(_) => {
                failures.get.fetch_add(1, Ordering::Relaxed);
                failed = true;
                back_off().await;
            }
        }
    };
    if failed {
        failures.requests.fetch_add(1, Ordering::Relaxed);
    }
    Answered {
        user,
        request_id,
        sent,
        answered,
        told,
        reported,
    }
}

/// The spike: [`USERS`] users, the first 90 % paced over [`PACED_OVER`], the rest sent once
/// `restarted` turns true.
fn spike(
    client: reqwest::Client,
    lb: String,
    failures: Arc<Failures>,
    restarted: watch::Receiver<bool>,
    answers: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<Answered>> {
    let paced = USERS * 9 / 10;
    let gap = PACED_OVER / paced;
    let start = tokio::time::Instant::now();
    tokio::spawn(async move {
        futures::stream::iter(0..USERS)
            .map(|n| {
                let (client, lb, failures, answers) = (
                    client.clone(),
                    lb.clone(),
                    failures.clone(),
                    answers.clone(),
                );
                let mut restarted = restarted.clone();
                async move {
                    if n < paced {
                        tokio::time::sleep_until(start + gap * n).await;
                    } else {
                        restarted
                            .wait_for(|done| *done)
                            .await
                            .expect("restart loop");
                    }
                    let answered = press(&client, &lb, format!("user-{n}"), &failures).await;
                    answers.fetch_add(1, Ordering::Relaxed);
                    answered
                }
            })
            .buffer_unordered(CLIENTS)
            .collect()
            .await
    })
}

/// Every guarantee, by testkit's one audit, once the queue and the decision log are drained.
async fn audit(env: &TestEnv, answered: &[Answered], lb: &str) -> Vec<Violation> {
    let campaign = CampaignId::parse(CAMPAIGN).expect("campaign id");
    let queue = rushline_queue::Queue::new(env.queue_config()).expect("queue");
    eventually(
        Duration::from_secs(60),
        "every decision persisted",
        async || {
            queue.queue_len(&campaign).await.ok() == Some(0)
                && queue.log_len(&campaign).await.ok() == Some(0)
        },
    )
    .await;
    let record = Record::read(env.store.pool(), &[CAMPAIGN.to_owned()])
        .await
        .expect("read the record");
    let start = answered.iter().map(|a| a.sent).min().expect("answers");
    let seen: Vec<guarantees::Answered> = answered
        .iter()
        .map(|a| guarantees::Answered {
            request_id: a.request_id,
            campaign_id: CAMPAIGN.to_owned(),
            user_id: a.user.clone(),
            sent: a.sent - start,
            answered: a.answered - start,
            told: a.told.clone(),
            reported: Some(a.reported.clone()),
        })
        .collect();
    let mut violations = record.violations();
    violations.extend(guarantees::every_answer_recorded(&record, &seen));
    violations.extend(guarantees::first_come_first_served(&seen));
    let view: Value = reqwest::get(format!("{lb}/v1/campaigns/{CAMPAIGN}"))
        .await
        .expect("GET campaign")
        .json()
        .await
        .expect("campaign json");
    let figure = |name: &str| view[name].as_i64().unwrap_or(-1);
    violations.extend(guarantees::counts_agree(
        &record,
        CAMPAIGN,
        figure("issued"),
        figure("remaining"),
    ));
    // Each user pressed once with one key, however often it was sent: one row per user.
    let mut users = HashSet::new();
    for row in &record.rows {
        if !users.insert(&row.user_id) {
            violations.push(Violation::new(
                4,
                format!("user {} has a second row", row.user_id),
                [row.request_id],
            ));
        }
    }
    let issued = record.issued(CAMPAIGN);
    if issued != STOCK as i64 {
        violations.push(Violation::new(
            5,
            format!("{issued} issued of {STOCK} although {USERS} users asked"),
            [],
        ));
    }
    violations
}

/// The file as compose runs it, Docker DNS discovery included (the spike below replaces that line).
#[tokio::test]
async fn the_shipped_balancer_configuration_is_valid() {
    assert_haproxy_accepts(&shipped_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_behind_haproxy_loses_no_accepted_request() {
    let env = TestEnv::new().await.expect("test database and namespace");
    let client = reqwest::Client::new();
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let port = free_port();
            Replica {
                name: format!("api{}", i + 1),
                port,
                process: start_api(&env, port),
            }
        })
        .collect();
    let mut balancer = Balancer::start(&replicas.iter().map(|r| r.port).collect::<Vec<_>>()).await;
    for replica in &replicas {
        wait_routed(&client, &mut balancer, replica).await;
    }
    let mut workers: Vec<Child> = (0..WORKERS).map(|_| start_worker(&env)).collect();
    let lb = balancer.url.clone();
    let created = client
        .post(format!("{lb}/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": CAMPAIGN, "name": "replicas", "stock": STOCK}))
        .send()
        .await
        .expect("create the campaign through the balancer");
    assert_eq!(created.status(), StatusCode::CREATED);

    let failures = Arc::new(Failures::default());
    let answers = Arc::new(AtomicU64::new(0));
    let (restarted_tx, restarted) = watch::channel(false);
    let load = spike(
        client.clone(),
        lb.clone(),
        failures.clone(),
        restarted,
        answers.clone(),
    );

    // The rolling restart, once the spike is under way.
    eventually(Duration::from_secs(60), "the spike under way", async || {
        answers.load(Ordering::Relaxed) >= 100
    })
    .await;
    let mut drains = Vec::new();
    for replica in &mut replicas {
        assert!(
            !load.is_finished(),
            "the spike ended before the restart (a client failed: see its panic)"
        );
        let pid = replica.process.id().expect("running replica");
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let stopping = Instant::now();
        let exit = tokio::time::timeout(DRAIN_BOUND, replica.process.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} still running {DRAIN_BOUND:?} after SIGTERM",
                    replica.name
                )
            })
            .expect("wait for the replica");
        assert!(exit.success(), "{} exited with {exit:?}", replica.name);
        drains.push(stopping.elapsed());
        replica.process = start_api(&env, replica.port);
        wait_routed(&client, &mut balancer, replica).await;
    }
    restarted_tx.send_replace(true);
    let answered = load.await.expect("the spike");
    assert_eq!(answered.len(), USERS as usize, "every client got an answer");

    let (retries, redispatches) = balancer.retries().await;
    let failed_requests = failures.requests.load(Ordering::Relaxed);
    println!(
        "replicas: {USERS} requests through HAProxy, {REPLICAS} replicas restarted (drains {drains:?}); \
         {failed_requests} requests saw a failed attempt (POST: {} connection errors, {} 502/503/504; \
         GET: {}); HAProxy retried {retries} times, {redispatches} on another replica",
        failures.post_transport.load(Ordering::Relaxed),
        failures.post_5xx.load(Ordering::Relaxed),
        failures.get.load(Ordering::Relaxed),
    );
    let violations = audit(&env, &answered, &lb).await;
    assert!(violations.is_empty(), "violations: {violations:#?}");
    let bound = (f64::from(USERS) * MAX_FAILED_ATTEMPT_SHARE) as u64;
    assert!(
        failed_requests <= bound,
        "{failed_requests} requests saw a connection error or 502/503/504; the bound is {bound}"
    );

    for worker in &mut workers {
        let _ = worker.start_kill();
    }
    for replica in &mut replicas {
        let _ = replica.process.start_kill();
    }
    drop(balancer);
    env.cleanup().await.expect("cleanup");
}
