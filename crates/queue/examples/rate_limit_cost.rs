//! What the rate limits cost Redis per request, against the accept alone.
//!
//! Starts a private `redis-server` (the shipped configuration) and sends, in closed loop from
//! `CLIENTS` tasks, accept groups of `GROUP` requests to a warm campaign (each request a fresh
//! user, so every limit check allows and spends, the common case):
//!
//! - `accept`: `accept.lua` alone (limits off);
//! - `accept+user`: the per-user screen (`rate_limit.lua`, one call per group) then `accept.lua`,
//!   as the API's acceptor does with `RUSHLINE_RATE_LIMIT_USER` set;
//! - `accept+user+ip`: the same plus one per-address call per request
//!   (`RUSHLINE_RATE_LIMIT_IP`), each from its own address.
//!
//! Prints Redis's script time per request (`INFO commandstats`, `cmdstat_evalsha` usec: the
//! scripts' own work, commands inside them included) and Redis CPU per request (`INFO cpu`,
//! user + sys: also the network and protocol work of the extra round trips).
//!
//! ```sh
//! scripts/setup   # PostgreSQL for the campaign record
//! cargo run -p rushline-queue --example rate_limit_cost [-- REQUESTS]
//! ```

use std::time::Duration;

use rushline_domain::{RequestId, UserId};
use rushline_queue::rate_limit::{Rate, UserRequest};
use rushline_queue::{AcceptItem, Queue};
use rushline_testkit::TestEnv;
use rushline_testkit::servers::RedisServer;

const CLIENTS: usize = 8;
const ROUNDS: usize = 3;
const MODES: [Mode; 3] = [Mode::Accept, Mode::User, Mode::UserIp];

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    User,
    UserIp,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::User => "accept+user",
            Self::UserIp => "accept+user+ip",
        }
    }
}

/// `(evalsha µs total, Redis CPU s)` so far.
async fn redis_costs(conn: &mut rushline_queue::RedisConnection) -> anyhow::Result<(f64, f64)> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let evalsha = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
        .and_then(|l| {
            l.split(',')
                .find_map(|f| f.strip_prefix("usec="))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let cpu: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let cpu = cpu
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            matches!(k, "used_cpu_user" | "used_cpu_sys")
                .then(|| v.parse::<f64>().ok())
                .flatten()
        })
        .sum();
    Ok((evalsha, cpu))
}

/// One run of `requests` requests in groups of `group`; returns (script µs, CPU µs) per request.
async fn run(
    env: &TestEnv,
    queue: &Queue,
    mode: Mode,
    group: usize,
    requests: usize,
) -> anyhow::Result<(f64, f64)> {
    let campaign = env.warm_open_campaign(queue, 100_000_000).await?;
    let rate = Rate::new(10, Duration::from_secs(1)).ok_or_else(|| anyhow::anyhow!("rate"))?;
    let mut conn = env.redis().await?;
    let (script_before, cpu_before) = redis_costs(&mut conn).await?;
    let per_client = requests / CLIENTS / group;
    let tasks = (0..CLIENTS).map(|client| {
        let (queue, campaign) = (queue.clone(), campaign.clone());
        tokio::spawn(async move {
            for call in 0..per_client {
                let items = (0..group)
                    .map(|i| {
                        Ok(AcceptItem {
                            request_id: RequestId::new_for(&campaign),
                            user_id: UserId::parse(format!("u{client}-{call}-{i}"))?,
                            idempotency_key: None,
                            admitted: false,
                        })
                    })
                    .collect::<anyhow::Result<Vec<AcceptItem>>>()?;
                if mode == Mode::UserIp {
                    for i in 0..group {
                        let address = format!("10.{client}.{}.{}", call % 256, i % 256);
                        queue.limit_address(&address, rate).await?;
                    }
                }
                if mode != Mode::Accept {
                    let screened: Vec<UserRequest<'_>> = items
                        .iter()
                        .map(|item| UserRequest {
                            user_id: &item.user_id,
                            idempotency_key: None,
                        })
                        .collect();
                    queue.limit_users(&campaign, rate, &screened).await?;
                }
                queue.accept(&campaign, &items).await?;
            }
            anyhow::Ok(per_client * group)
        })
    });
    let mut sent = 0;
    for task in futures::future::join_all(tasks).await {
        sent += task??;
    }
    let (script_after, cpu_after) = redis_costs(&mut conn).await?;
    let sent = sent.max(1) as f64;
    Ok((
        (script_after - script_before) / sent,
        (cpu_after - cpu_before) * 1e6 / sent,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let redis = RedisServer::shipped().await?;
    let env = TestEnv::on(&rushline_testkit::admin_database_url(), &redis.url()).await?;
    let queue = Queue::new(env.queue_config())?;
    println!("mode             group  script µs/request  redis CPU µs/request");
    for group in [1, 16, 64] {
        // Modes alternate round by round so machine load falls on all alike; the least of
        // ROUNDS is printed (load only ever adds time).
        let mut best = [(f64::MAX, f64::MAX); 3];
        for _ in 0..ROUNDS {
            for (i, mode) in MODES.into_iter().enumerate() {
                let (script, cpu) = run(&env, &queue, mode, group, requests).await?;
                best[i] = (best[i].0.min(script), best[i].1.min(cpu));
            }
        }
        for (mode, (script, cpu)) in MODES.into_iter().zip(best) {
            println!(
                "{:<16} {group:>5}  {script:>17.2}  {cpu:>20.2}",
                mode.name()
            );
        }
    }
    env.cleanup().await?;
    drop(redis);
    Ok(())
}
