//! The connection layer (`src/connection.rs`) against a private `redis-server` this test may
//! kill, restart or freeze: a `Queue` starts with Redis down and connects on first use, a Redis
//! restart costs at most the call that finds the connection dropped, and a hung Redis times
//! calls out instead of hanging them, then answers again once it resumes.

use std::time::{Duration, Instant};

use rushline_queue::{Queue, QueueConfig, QueueError};
use rushline_testkit::servers::{Fsync, RedisServer};

const TIMEOUT: Duration = Duration::from_millis(300);

fn queue_on(redis: &RedisServer) -> Queue {
    Queue::new(QueueConfig {
        namespace: Some(format!("t{}", uuid::Uuid::new_v4().simple())),
        timeout: TIMEOUT,
        ..QueueConfig::new(redis.url())
    })
    .expect("queue")
}

fn signal(redis: &RedisServer, signal: &str) {
    let pid = redis.pid().expect("redis pid").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

#[tokio::test]
async fn a_queue_starts_with_redis_down_and_connects_on_first_use() {
    let mut redis = RedisServer::start(Fsync::EverySec).await.expect("redis");
    redis.kill();
    let queue = queue_on(&redis);
    assert_eq!(queue.pool_usage(), (0, 0), "nothing connected yet");

    let started = Instant::now();
    let down = queue.ping().await;
    assert!(
        matches!(&down, Err(QueueError::Redis(e)) if e.is_connection_refusal()),
        "{down:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(queue.pool_usage(), (0, 0), "a failed connect keeps nothing");

    // The next call connects afresh: no error of the failed attempt is kept for it.
    redis.restart().await.expect("restart");
    queue
        .ping()
        .await
        .expect("the first call after Redis is back");
    assert_eq!(queue.pool_usage(), (0, 1), "one connection, idle");
}

#[tokio::test]
async fn after_a_redis_restart_at_most_one_call_fails() {
    let mut redis = RedisServer::start(Fsync::EverySec).await.expect("redis");
    let queue = queue_on(&redis);
    queue.ping().await.expect("ping");

    redis.kill();
    assert!(queue.ping().await.is_err(), "Redis is down");
    redis.restart().await.expect("restart");
    // The call that finds the old connection dropped may fail; the manager reconnects by itself,
    // so the call after it is answered.
    let first = queue.ping().await;
    let second = queue.ping().await;
    assert!(second.is_ok(), "first {first:?}, second {second:?}");
    assert_eq!(queue.pool_usage(), (0, 1));
}

#[tokio::test]
async fn a_hung_redis_times_calls_out_and_answers_again_once_resumed() {
    let redis = RedisServer::start(Fsync::EverySec).await.expect("redis");
    let queue = queue_on(&redis);
    queue.ping().await.expect("ping");

    signal(&redis, "-STOP");
    let in_flight = tokio::spawn({
        let queue = queue.clone();
        async move { queue.ping().await }
    });
    // While a call waits on the frozen Redis, the connection counts as in use.
    let deadline = Instant::now() + Duration::from_secs(5);
    while queue.pool_usage() != (1, 0) && !in_flight.is_finished() {
        assert!(Instant::now() < deadline, "{:?}", queue.pool_usage());
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let timed_out = in_flight.await.expect("join");
    assert!(
        matches!(&timed_out, Err(e) if is_timeout(e)),
        "{timed_out:?}"
    );
    let hung = queue.ping().await;
    assert!(matches!(&hung, Err(e) if is_timeout(e)), "{hung:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded calls");
    signal(&redis, "-CONT");

    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = queue.ping().await {
        assert!(
            Instant::now() < deadline,
            "Redis resumed but calls still fail: {e}"
        );
    }
}

/// The call's own bound, or one of redis-rs's (connect, reply), whichever came first.
fn is_timeout(e: &QueueError) -> bool {
    match e {
        QueueError::Timeout => true,
        QueueError::Redis(e) => e.is_timeout(),
        _ => false,
    }
}
