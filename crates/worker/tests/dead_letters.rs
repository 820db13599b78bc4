//! Log entries no worker can persist — one that does not parse, one for a campaign the record
//! does not hold — are dead-lettered, the rest keeps being persisted, the metrics move, and a
//! replay after the fault is fixed persists them. Real Redis and PostgreSQL, in-process worker.

use std::time::Duration;

use rushline_domain::{CampaignId, RequestId};
use rushline_queue::RedisConnection;
use rushline_queue::{DeadLetterReason, Queue};
use rushline_testkit::{TestEnv, eventually, queue_requests, recorded_rows};
use rushline_worker::{Config, Worker, telemetry};
use tokio_util::sync::CancellationToken;

async fn xadd(redis: &mut RedisConnection, stream: &str, lines: &str) -> String {
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("d")
        .arg(lines)
        .query_async(redis)
        .await
        .unwrap()
}

/// The value of `series` (name with labels, exactly as rendered) in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_no_worker_can_persist_are_dead_lettered_and_replayed_once_fixed() {
    let metrics = telemetry::install().expect("the only recorder of this test binary");
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let mut redis = env.redis().await.unwrap();
    let good = env.warm_open_campaign(&queue, 100).await.unwrap();
    queue_requests(&queue, &good, (0..10).map(|n| format!("user-{n}")))
        .await
        .unwrap();

    // A line a future (or broken) version wrote, in a live campaign's log.
    let garbage = "not\ta decision line";
    let unparsable = xadd(&mut redis, &queue.keys().campaign(&good).log, garbage).await;
    // A well-formed decision of a campaign PostgreSQL does not hold (say the record was restored
    // from a backup older than Redis), with the status record decide.lua would have written.
    let ghost = CampaignId::parse("ghost-campaign").unwrap();
    let ghost_request = RequestId::new_for(&ghost);
    let ms = chrono::Utc::now().timestamp_millis();
    let ghost_line = format!("{ghost_request}\tuser-1\ts\t\t{ms}\t");
    let ghost_keys = queue.keys().campaign(&ghost);
    xadd(&mut redis, &ghost_keys.log, &ghost_line).await;
    let ghost_status = queue.keys().status(&ghost_request);
    redis::cmd("SET")
        .arg(&ghost_status)
        .arg(format!("s\t{ghost}\tuser-1\t\t{ms}"))
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    redis::cmd("SADD")
        .arg(queue.keys().registry())
        .arg(ghost.as_str())
        .query_async::<()>(&mut redis)
        .await
        .unwrap();

    let config = Config::from_lookup(env.settings(&[
        ("RUSHLINE_SWEEP_MS", "100"),
        ("RUSHLINE_PERSIST_ENTRIES", "4"),
        ("RUSHLINE_WORKER_METRICS_ADDR", "off"),
    ]))
    .unwrap();
    let worker = Worker::new(
        config.clone(),
        Queue::new(config.queue_config()).unwrap(),
        env.store.clone(),
    );
    let consumer = worker.consumer().to_owned();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    eventually(
        Duration::from_secs(30),
        "both entries dead-lettered",
        async || queue.dead_letter_count().await.unwrap() == 2,
    )
    .await;
    // Everything else is persisted, now and afterwards: nothing blocks the loop.
    queue_requests(&queue, &good, (10..15).map(|n| format!("user-{n}")))
        .await
        .unwrap();
    // Rows commit before the worker trims their log entry: await both.
    eventually(
        Duration::from_secs(30),
        "the good campaign persisted and its log trimmed",
        async || {
            recorded_rows(&env.store, &good).await.unwrap() == 15
                && queue.log_len(&good).await.unwrap() == 0
        },
    )
    .await;
    assert_eq!(queue.log_len(&good).await.unwrap(), 0);
    assert_eq!(queue.log_len(&ghost).await.unwrap(), 0);
    assert_eq!(queue.pending_len(&ghost).await.unwrap(), 0);

    let [letter] = queue.dead_letters(&good).await.unwrap().try_into().unwrap();
    assert_eq!(letter.entry, unparsable);
    assert_eq!(letter.reason, DeadLetterReason::Unparsable.as_str());
    assert_eq!(letter.worker, consumer);
    assert_eq!(letter.raw, vec![("d".to_owned(), garbage.to_owned())]);
    assert!(letter.at_ms >= ms && !letter.error.is_empty());
    let [ghost_letter] = queue
        .dead_letters(&ghost)
        .await
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        ghost_letter.reason,
        DeadLetterReason::UnknownCampaign.as_str()
    );
    assert!(
        ghost_letter.error.contains("ghost-campaign"),
        "{}",
        ghost_letter.error
    );
    // The request is not lost from sight: its decision stays readable, without a TTL.
    let ttl: i64 = redis::cmd("TTL")
        .arg(&ghost_status)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        ttl, -1,
        "a dead-lettered decision's status record must not expire"
    );

    let body = metrics.render();
    for (reason, expected) in [
        ("unparsable", 1.0),
        ("unknown_campaign", 1.0),
        ("rejected_by_record", 0.0),
    ] {
        let series = format!("rushline_dead_letters_total{{reason=\"{reason}\"}}");
        assert_eq!(
            sample(&body, &series),
            Some(expected),
            "{series} in\n{body}"
        );
    }
    eventually(
        Duration::from_secs(30),
        "the dead-letter gauge",
        async || sample(&metrics.render(), "rushline_dead_letter_entries") == Some(2.0),
    )
    .await;

    // The fault is fixed (the campaign is back in the record and warm); replay persists it.
    env.create_open_campaign(&ghost, 10).await.unwrap();
    queue.warm(&ghost, &env.store).await.unwrap();
    assert!(
        queue
            .replay_dead_letter(&ghost, &ghost_letter.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        queue
            .replay_dead_letter(&ghost, &ghost_letter.id)
            .await
            .unwrap(),
        None
    );
    eventually(
        Duration::from_secs(30),
        "the replayed entry persisted",
        async || recorded_rows(&env.store, &ghost).await.unwrap() == 1,
    )
    .await;
    let view = env.store.request(ghost_request).await.unwrap().unwrap();
    assert_eq!(view.status.as_str(), "sold_out");
    // Replaying what is still broken sets it aside again, once.
    queue
        .replay_dead_letter(&good, &letter.id)
        .await
        .unwrap()
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the broken entry dead-lettered again",
        async || {
            let letters = queue.dead_letters(&good).await.unwrap();
            letters.len() == 1 && letters[0].id != letter.id
        },
    )
    .await;
    assert_eq!(queue.dead_letter_count().await.unwrap(), 1);

    stop.cancel();
    running.await.unwrap();
    env.cleanup().await.unwrap();
}
