//! Two drops at once: while one campaign's queue or log is deep, another campaign's requests are
//! decided and persisted anyway. Asserted on state — the quiet campaign is done while the busy
//! one still has most of its backlog — never on time.

use std::time::Duration;

use rushline_domain::{CampaignId, RequestId};
use rushline_queue::Queue;
use rushline_testkit::{TestEnv, eventually, queue_requests};
use rushline_worker::{Config, Worker};
use tokio_util::sync::CancellationToken;

/// `requests` requests for `campaign` (distinct users), queued through the API's accept script.
async fn enqueue(queue: &Queue, campaign: &CampaignId, requests: usize) -> Vec<RequestId> {
    let users = (0..requests).map(|n| format!("user-{n}"));
    queue_requests(queue, campaign, users).await.unwrap()
}

/// An in-process worker on the test's env with `extra` settings, and the token that stops it.
fn start_worker(
    env: &TestEnv,
    extra: &[(&str, &str)],
) -> (tokio::task::JoinHandle<()>, CancellationToken) {
    let config = Config::from_lookup(env.settings(extra)).unwrap();
    let queue = Queue::new(config.queue_config()).unwrap();
    let worker = Worker::new(config, queue, env.store.clone());
    let token = CancellationToken::new();
    (tokio::spawn(worker.run(token.clone())), token)
}

async fn all_final(queue: &Queue, ids: &[RequestId]) -> bool {
    for id in ids {
        match queue.request_status(*id).await.unwrap() {
            Some(view) if view.status.is_final() => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_campaign_is_decided_while_a_busy_ones_queue_is_deep() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let busy = env.warm_open_campaign(&queue, 100_000).await.unwrap();
    let quiet = env.warm_open_campaign(&queue, 100).await.unwrap();
    let deep = 20_000;
    enqueue(&queue, &busy, deep).await;

    let (worker, stop) = start_worker(
        &env,
        &[
            ("RUSHLINE_DECIDE_BATCH", "32"),
            ("RUSHLINE_DECIDE_IN_FLIGHT", "1"),
            ("RUSHLINE_SWEEP_MS", "200"),
            ("RUSHLINE_WORKER_METRICS_ADDR", "off"),
        ],
    );
    eventually(
        Duration::from_secs(30),
        "the worker to start on the deep queue",
        async || queue.queue_len(&busy).await.unwrap() < deep as u64,
    )
    .await;
    let late = enqueue(&queue, &quiet, 5).await;
    eventually(
        Duration::from_secs(30),
        "the quiet campaign's requests to be decided",
        async || all_final(&queue, &late).await,
    )
    .await;
    let left = queue.queue_len(&busy).await.unwrap();
    assert!(
        left > deep as u64 / 2,
        "the quiet campaign waited for the busy one: only {left} of {deep} still queued"
    );

    stop.cancel();
    worker.await.unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_campaigns_log_is_persisted_and_taken_over_while_a_busy_ones_is_long() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let busy = env.warm_open_campaign(&queue, 100_000).await.unwrap();
    let fresh = env.warm_open_campaign(&queue, 100).await.unwrap();
    let stale = env.warm_open_campaign(&queue, 100).await.unwrap();

    // The busy campaign's requests are all decided already: a long log, one entry per batch.
    let deep = 20_000;
    enqueue(&queue, &busy, deep).await;
    while queue.decide(&busy, 16).await.unwrap().unwrap().left > 0 {}
    let long = queue.log_len(&busy).await.unwrap();
    assert_eq!(long, deep as u64 / 16);

    // A dead worker read the stale campaign's decisions and never persisted them.
    enqueue(&queue, &stale, 5).await;
    queue.decide(&stale, 16).await.unwrap().unwrap();
    let taken = queue.read_log(&stale, "worker-dead", 16).await.unwrap();
    assert_eq!(taken.len(), 1);

    let (worker, stop) = start_worker(
        &env,
        &[
            ("RUSHLINE_PERSIST_ENTRIES", "1"),
            ("RUSHLINE_CLAIM_IDLE_MS", "200"),
            ("RUSHLINE_SWEEP_MS", "100"),
            ("RUSHLINE_WORKER_METRICS_ADDR", "off"),
        ],
    );
    eventually(
        Duration::from_secs(30),
        "the worker to start on the long log",
        async || queue.log_len(&busy).await.unwrap() < long,
    )
    .await;
    // Decided by the worker, announced once the persist loop is already busy.
    enqueue(&queue, &fresh, 5).await;
    for campaign in [&fresh, &stale] {
        eventually(
            Duration::from_secs(30),
            "the quiet campaigns to be persisted",
            async || {
                rushline_testkit::recorded_rows(&env.store, campaign)
                    .await
                    .unwrap()
                    == 5
            },
        )
        .await;
    }
    let left = queue.log_len(&busy).await.unwrap();
    assert!(
        left > long / 2,
        "the quiet campaigns waited for the busy log: only {left} of {long} entries left"
    );

    stop.cancel();
    worker.await.unwrap();
    env.cleanup().await.unwrap();
}
