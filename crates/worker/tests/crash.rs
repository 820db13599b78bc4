//! Real `rushline-worker` processes, killed with SIGKILL mid-drain or stopped with SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rushline_domain::{CampaignId, RequestId};
use rushline_queue::Queue;
use rushline_testkit::{TestEnv, eventually, queue_requests};

/// A campaign with `stock`, and `requests` requests queued for it through the same script the
/// API's hot path uses. Every 10th user presses twice.
async fn queued_campaign(
    env: &TestEnv,
    queue: &Queue,
    stock: u64,
    requests: usize,
) -> (CampaignId, Vec<RequestId>) {
    let id = env.warm_open_campaign(queue, stock).await.unwrap();
    let users = (0..requests).map(|n| {
        let user = if n % 10 == 1 { n - 1 } else { n };
        format!("user-{user}")
    });
    let ids = queue_requests(queue, &id, users).await.unwrap();
    (id, ids)
}

fn spawn_worker(env: &TestEnv) -> Child {
    env.command(env!("CARGO_BIN_EXE_rushline-worker"))
        .env("RUSHLINE_CLAIM_IDLE_MS", "1500")
        .env("RUSHLINE_SWEEP_MS", "200")
        .env("RUSHLINE_DECIDE_BATCH", "64")
        .env("RUSHLINE_PERSIST_ENTRIES", "4")
        // Several workers on one host: no fixed metrics port to fight over.
        .env("RUSHLINE_WORKER_METRICS_ADDR", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start rushline-worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_nothing_and_decide_nothing_twice() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let total = 12_000;
    let (campaign, ids) = queued_campaign(&env, &queue, 4_000, total).await;

    // Four times: start a worker, let it get going, SIGKILL it while work remains.
    let mut kills = 0;
    for round in 1..=4u64 {
        let mut victim = spawn_worker(&env);
        let target = total as u64 - round * 2_000;
        eventually(
            Duration::from_secs(60),
            "the worker to make progress",
            async || queue.queue_len(&campaign).await.unwrap() <= target,
        )
        .await;
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        assert!(
            queue.queue_len(&campaign).await.unwrap() > 0,
            "killed before the queue drained"
        );
        kills += 1;
    }
    assert_eq!(kills, 4);

    // Two survivors finish the queue and take over whatever the dead left pending.
    let mut survivors = [spawn_worker(&env), spawn_worker(&env)];
    eventually(
        Duration::from_secs(60),
        "queue drained and every decision persisted",
        async || {
            queue.queue_len(&campaign).await.unwrap() == 0
                && queue.log_len(&campaign).await.unwrap() == 0
        },
    )
    .await;
    for survivor in &mut survivors {
        survivor.kill().unwrap();
        survivor.wait().unwrap();
    }

    // Guarantee 4: every request is final, recorded once, and Redis and the record agree.
    assert_eq!(
        rushline_testkit::recorded_rows(&env.store, &campaign)
            .await
            .unwrap(),
        total as i64
    );
    for id in &ids {
        let reported = queue
            .request_status(*id)
            .await
            .unwrap()
            .expect("status record");
        let recorded = env.store.request(*id).await.unwrap().expect("recorded");
        assert!(reported.status.is_final());
        assert_eq!(
            (reported.status, reported.coupon_code),
            (recorded.status, recorded.coupon_code)
        );
    }
    // Guarantees 1–3, and exactly `stock` issued since demand exceeded it.
    let audit = rushline_testkit::audit(&env.store, &campaign)
        .await
        .unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.issued_rows, 4_000);
    let state = queue.campaign_state(&campaign).await.unwrap().unwrap();
    assert_eq!(state.issued as i64, audit.issued_rows, "guarantee 6");
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_the_worker_took_and_exits_zero() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let total = 6_000;
    let (campaign, _) = queued_campaign(&env, &queue, 1_000, total).await;
    let mut worker = spawn_worker(&env);
    eventually(
        Duration::from_secs(60),
        "the worker to make progress",
        async || queue.queue_len(&campaign).await.unwrap() < total as u64,
    )
    .await;
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(worker.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let mut exited = None;
    eventually(
        Duration::from_secs(15),
        "the worker to exit after SIGTERM",
        async || {
            exited = worker.try_wait().unwrap();
            exited.is_some()
        },
    )
    .await;
    assert!(exited.unwrap().success(), "exit status {exited:?}");
    // Nothing it took is left pending; whatever it decided is in the record.
    assert_eq!(queue.pending_len(&campaign).await.unwrap(), 0);
    let decided = total as u64 - queue.queue_len(&campaign).await.unwrap();
    assert_eq!(
        rushline_testkit::recorded_rows(&env.store, &campaign)
            .await
            .unwrap() as u64,
        decided
    );
    env.cleanup().await.unwrap();
}
