//! A test's set-up and cleanup must not depend on what else a Redis holds (issue 10, section 7):
//! beside ~2 million unrelated keys in the machine's Redis, a test failed in cleanup with
//! `redis: timed out`.
//!
//! The unrelated keys go into a private `redis-server` (never the machine's): DEBUG POPULATE.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use rushline_domain::{IdempotencyKey, RequestId, UserId};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue};
use rushline_testkit::servers::{Fsync, RedisServer};
use rushline_testkit::{TestEnv, admin_database_url};

/// Keys other programs left in the Redis a test shares.
const UNRELATED_KEYS: u64 = 2_000_000;

/// What a test's set-up, a little work and cleanup may take beside them, stall included.
const BOUND: Duration = Duration::from_secs(60);

/// The machine's Redis, where tests used to keep their namespaces.
const MACHINE_REDIS: &str = "redis://127.0.0.1:6379";

/// A connection for the test's own commands, which may take longer than the client's default
/// half-second response timeout (filling a server, a stalled one): 30 s.
async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

async fn dbsize(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    redis::cmd("DBSIZE").query_async(redis).await.unwrap()
}

#[tokio::test]
async fn test_environments_share_a_redis_of_their_process_not_the_machines() {
    let first = TestEnv::new().await.unwrap();
    let second = TestEnv::new().await.unwrap();
    match std::env::var("RUSHLINE_TEST_REDIS_URL") {
        // Asked for by name: that one, for every test.
        Ok(url) => assert_eq!(first.redis_url, url),
        Err(_) => {
            assert_ne!(first.redis_url, MACHINE_REDIS);
            assert_eq!(first.redis_url, second.redis_url, "one server per process");
            // Nothing but test namespaces in it: its size is this process's doing alone.
            let mut redis = connect(&first.redis_url).await;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut redis)
                .await
                .unwrap();
            assert!(keys.iter().all(|k| k.starts_with("rushline:t")), "{keys:?}");
        }
    }
    assert_ne!(first.namespace, second.namespace);
    first.cleanup().await.unwrap();
    second.cleanup().await.unwrap();
}

#[tokio::test]
async fn set_up_and_cleanup_work_beside_two_million_keys_and_a_stalled_redis() {
    let shared = RedisServer::start(Fsync::EverySec).await.unwrap();
    let mut redis = connect(&shared.url()).await;
    // Keys unrelated-<step>:<n>, in steps that keep Redis answering others in between.
    const STEP: u64 = 100_000;
    for step in 0..UNRELATED_KEYS / STEP {
        redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(STEP)
            .arg(format!("unrelated-{step}"))
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
    }
    assert_eq!(dbsize(&mut redis).await, UNRELATED_KEYS);

    let started = Instant::now();
    let env = TestEnv::on(&admin_database_url(), &shared.url())
        .await
        .unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env.warm_open_campaign(&queue, 100).await.unwrap();
    // Requests, status records and idempotency keys: every kind of key a test leaves.
    let items: Vec<AcceptItem> = (0..200)
        .map(|i| AcceptItem {
            request_id: RequestId::new_for(&campaign),
            user_id: UserId::parse(format!("user-{i}")).unwrap(),
            idempotency_key: Some(IdempotencyKey::parse(format!("key-{i}")).unwrap()),
            admitted: false,
        })
        .collect();
    let outcomes = queue.accept(&campaign, &items).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == AcceptOutcome::Queued));
    assert!(dbsize(&mut redis).await > UNRELATED_KEYS + 200);

    // Redis stalls for 3 s as cleanup starts (a busy machine, a fork, a slow disk): longer than
    // a call's 2 s timeout. Cleanup must neither fail the test nor give up on the keys.
    let pid = shared.pid().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let resume = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await; // the stall's length, not a wait
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
    });
    env.cleanup().await.unwrap();
    assert!(resume.await.unwrap().unwrap().success());
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "set-up and cleanup took {elapsed:?}");

    // Every key of the test's namespace is gone, and nothing else.
    assert_eq!(dbsize(&mut redis).await, UNRELATED_KEYS);
    assert!(redis.exists::<_, bool>("unrelated-0:0").await.unwrap());
}
