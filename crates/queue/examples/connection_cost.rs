//! What one Redis call costs the client through rushline's connection layer: a [`Queue`], i.e.
//! redis-rs's `ConnectionManager` behind `src/connection.rs` (connected on first use, a timeout
//! per call, calls in flight counted for `/metrics`), against a bare `ConnectionManager`, to show
//! what that wrapping adds. (Until issue 11 §5 the queue used a hand-made pool of 16 connections
//! over deadpool-redis; the figures that replaced it are in loadtest/RESULTS.md, "Connection pool
//! vs ConnectionManager".)
//!
//! Starts a private `redis-server` (testkit's, with a PostgreSQL database for the campaign
//! record) and drives it in closed loop from `TASKS` concurrent tasks through (a) a [`Queue`]
//! with the API's default bound of 2 s per call (`queue`) and (b) one bare
//! `redis::aio::ConnectionManager` with the same bound (`manager`), with two workloads of one
//! round trip each:
//!
//! - `ping`: `PING`, which isolates the connection layer (`Queue::ping` against the manager's);
//! - `accept`: `accept.lua` for one request to a warm campaign, the API's hot path at low load
//!   (`Queue::accept` against the same script, keys and arguments sent through the manager).
//!
//! They alternate, round by round, `ROUNDS` times, so whatever else loads the machine falls
//! on both alike. Prints calls/s and this process's CPU time (`getrusage`, user + sys) per call;
//! Redis's own CPU is the same work either way and is not counted.
//!
//! ```sh
//! scripts/setup   # PostgreSQL for the campaign record
//! cargo run --release -p rushline-queue --example connection_cost [-- ROUNDS SECONDS TASKS...]
//! ```

use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rushline_domain::{CampaignId, RequestId, UserId};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue, QueueConfig};
use rushline_testkit::TestEnv;

/// The same script the queue loads (`scripts::ACCEPT`), for the manager's side.
static ACCEPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("../lua/accept.lua")));

/// Bound on one call, as the API's `RUSHLINE_BACKEND_TIMEOUT_MS` default.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Via {
    Queue,
    Manager,
}

#[derive(Clone, Copy)]
enum Workload {
    Ping,
    Accept,
}

/// This process's CPU time so far, user + system, all threads.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` only writes the struct it is given; `RUSAGE_SELF` is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: initialised by the successful call above (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Everything a round needs, shared by its tasks.
#[derive(Clone)]
struct Target {
    queue: Queue,
    manager: ConnectionManager,
    campaign: CampaignId,
}

impl Target {
    /// One call; `Ok(false)` when it answered something else than expected.
    async fn call(&self, via: Via, workload: Workload, n: usize) -> anyhow::Result<bool> {
        match (via, workload) {
            (Via::Queue, Workload::Ping) => {
                self.queue.ping().await?;
                Ok(true)
            }
            (Via::Manager, Workload::Ping) => {
                let pong: String = redis::cmd("PING")
                    .query_async(&mut self.manager.clone())
                    .await?;
                Ok(pong == "PONG")
            }
            (Via::Queue, Workload::Accept) => {
                let outcomes = self.queue.accept(&self.campaign, &[self.item(n)?]).await?;
                Ok(outcomes == [AcceptOutcome::Queued])
            }
            (Via::Manager, Workload::Accept) => {
                let reply: Value = self
                    .accept_invocation(n)?
                    .invoke_async(&mut self.manager.clone())
                    .await?;
                Ok(queued(&reply))
            }
        }
    }

    fn item(&self, n: usize) -> anyhow::Result<AcceptItem> {
        Ok(AcceptItem {
            request_id: RequestId::new_for(&self.campaign),
            user_id: UserId::parse(format!("u-{n}"))?,
            idempotency_key: None,
            admitted: false,
        })
    }

    /// `accept.lua` for one request, keys and arguments exactly as `Queue::accept` sends them.
    fn accept_invocation(&self, n: usize) -> anyhow::Result<redis::ScriptInvocation<'static>> {
        let item = self.item(n)?;
        let keys = self.queue.keys().campaign(&self.campaign);
        let config = self.queue.config();
        let mut invocation = ACCEPT.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.queue)
            .key(&keys.holders)
            .key(&keys.log)
            .key(&keys.dirty)
            .arg(&keys.status_prefix)
            .arg(&keys.idempotency_prefix)
            .arg(config.idempotency_ttl.as_secs())
            .arg(config.max_queue)
            .arg(self.queue.keys().work_channel())
            .arg(self.campaign.as_str())
            .arg(config.max_log_entries)
            .arg(item.request_id.to_string())
            .arg(item.user_id.as_str())
            .arg("");
        Ok(invocation)
    }
}

/// Whether an accept reply for one request says `{"Q"}` (queued).
fn queued(reply: &Value) -> bool {
    let Value::Array(outcomes) = reply else {
        return false;
    };
    match outcomes.as_slice() {
        [Value::Array(outcome)] => match outcome.as_slice() {
            [Value::BulkString(kind)] => kind == b"Q",
            [Value::SimpleString(kind)] => kind == "Q",
            _ => false,
        },
        _ => false,
    }
}

/// One round: `tasks` tasks in closed loop for `seconds`; returns (calls/s, client CPU µs per
/// call).
async fn round(
    target: &Target,
    via: Via,
    workload: Workload,
    tasks: usize,
    seconds: f64,
) -> anyhow::Result<(f64, f64)> {
    let cpu_before = cpu_time();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let handles = (0..tasks).map(|task| {
        let target = target.clone();
        tokio::spawn(async move {
            let mut calls = 0usize;
            while Instant::now() < until {
                let n = task * 10_000_000 + calls;
                anyhow::ensure!(target.call(via, workload, n).await?, "unexpected reply");
                calls += 1;
            }
            anyhow::Ok(calls)
        })
    });
    let mut calls = 0;
    for handle in futures::future::join_all(handles).await {
        calls += handle??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu_before).as_secs_f64();
    Ok((calls as f64 / elapsed, cpu * 1e6 / calls.max(1) as f64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let seconds: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3.0);
    let tasks: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let tasks = if tasks.is_empty() { vec![1, 64] } else { tasks };

    let env = TestEnv::new().await?;
    let queue = Queue::new(QueueConfig {
        timeout: TIMEOUT,
        max_queue: 100_000_000,
        ..env.queue_config()
    })?;
    let manager = ConnectionManager::new_with_config(
        redis::Client::open(env.redis_url.as_str())?,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT)),
    )
    .await?;
    println!(
        "a Queue (queue) and a bare ConnectionManager (manager); {rounds} rounds of {seconds} s"
    );
    println!("workload  tasks  round  via      calls/s  client CPU µs/call");
    for workload in [Workload::Ping, Workload::Accept] {
        for &n in &tasks {
            for r in 0..rounds {
                for via in [Via::Queue, Via::Manager] {
                    // A fresh campaign per round: every round queues into an empty queue.
                    let campaign = env.warm_open_campaign(&queue, 100_000_000).await?;
                    let target = Target {
                        queue: queue.clone(),
                        manager: manager.clone(),
                        campaign,
                    };
                    // Warm both paths (connections, script cache) outside the measurement.
                    for i in 0..10 {
                        target.call(via, workload, usize::MAX - i).await?;
                    }
                    let (rate, cpu_us) = round(&target, via, workload, n, seconds).await?;
                    let (workload, via) = (
                        match workload {
                            Workload::Ping => "ping",
                            Workload::Accept => "accept",
                        },
                        match via {
                            Via::Queue => "queue",
                            Via::Manager => "manager",
                        },
                    );
                    println!("{workload:<8}  {n:>5}  {r:>5}  {via:<7}  {rate:>7.0}  {cpu_us:>8.1}");
                }
            }
        }
    }
    env.cleanup().await?;
    Ok(())
}
