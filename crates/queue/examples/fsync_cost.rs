//! What `appendfsync always` costs rushline's accept path, against `everysec`.
//!
//! Starts one private `redis-server` per setting (AOF on, as shipped) and sends `accept.lua`
//! calls to a warm campaign in closed loop from `CLIENTS` tasks, each call a group of `GROUP`
//! requests (the API's group commit: a lone request is a group of 1, a busy API sends larger
//! groups). Settings alternate round by round so machine load falls on both alike. Prints
//! requests/s and Redis CPU µs per request (`INFO cpu`, user + sys) for each round.
//!
//! ```sh
//! scripts/setup   # PostgreSQL for the campaign record
//! cargo run -p rushline-queue --example fsync_cost [-- ROUNDS SECONDS]
//! ```

use std::time::{Duration, Instant};

use rushline_domain::{RequestId, UserId};
use rushline_queue::{AcceptItem, Queue};
use rushline_testkit::TestEnv;
use rushline_testkit::servers::{Fsync, RedisServer};

const CLIENTS: usize = 16;

/// Redis CPU seconds (user + sys) so far.
async fn redis_cpu(url: &str) -> anyhow::Result<f64> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    Ok(info
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            matches!(k, "used_cpu_user" | "used_cpu_sys")
                .then(|| v.parse::<f64>().ok())
                .flatten()
        })
        .sum())
}

/// One round: closed loop for `seconds`; returns (requests/s, Redis CPU µs per request).
async fn round(
    env: &TestEnv,
    queue: &Queue,
    group: usize,
    seconds: f64,
) -> anyhow::Result<(f64, f64)> {
    let campaign = env.warm_open_campaign(queue, 100_000_000).await?;
    let cpu_before = redis_cpu(&env.redis_url).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let tasks = (0..CLIENTS).map(|client| {
        let (queue, campaign) = (queue.clone(), campaign.clone());
        tokio::spawn(async move {
            let mut sent = 0usize;
            while Instant::now() < until {
                let items = (0..group)
                    .map(|i| {
                        Ok(AcceptItem {
                            request_id: RequestId::new_for(&campaign),
                            user_id: UserId::parse(format!("u{client}-{sent}-{i}"))?,
                            idempotency_key: None,
                            admitted: false,
                        })
                    })
                    .collect::<anyhow::Result<Vec<AcceptItem>>>()?;
                queue.accept(&campaign, &items).await?;
                sent += group;
            }
            anyhow::Ok(sent)
        })
    });
    let mut requests = 0;
    for task in futures::future::join_all(tasks).await {
        requests += task??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = redis_cpu(&env.redis_url).await? - cpu_before;
    Ok((
        requests as f64 / elapsed,
        cpu * 1e6 / requests.max(1) as f64,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let seconds: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2.0);
    let mut servers = Vec::new();
    for fsync in [Fsync::Always, Fsync::EverySec] {
        let redis = RedisServer::start(fsync).await?;
        let env = TestEnv::on(&rushline_testkit::admin_database_url(), &redis.url()).await?;
        let queue = Queue::new(env.queue_config())?;
        servers.push((fsync, redis, env, queue));
    }
    println!("appendfsync  group  round  requests/s  redis CPU µs/request");
    for group in [1, 16, 64] {
        for r in 0..rounds {
            for (fsync, _redis, env, queue) in &servers {
                let (rate, cpu_us) = round(env, queue, group, seconds).await?;
                let name = match fsync {
                    Fsync::Always => "always",
                    Fsync::EverySec => "everysec",
                };
                println!("{name:<12} {group:>5}  {r:>5}  {rate:>10.0}  {cpu_us:>8.1}");
            }
        }
    }
    for (_, _redis, env, _) in servers {
        env.cleanup().await?;
    }
    Ok(())
}
