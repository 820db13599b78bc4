//! Real `rushline-worker` processes, killed with SIGKILL mid-drain or stopped with SIGTERM, for
//! campaigns of both decide modes (queued: workers decide and persist; instant: the accept step
//! decided, workers only persist).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rushline_domain::{CampaignId, DecideMode, RequestId, RequestStatus, UserId};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue};
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

/// Starts two survivor workers, waits until `drained` holds (they take over whatever the dead
/// left pending and persist the rest), then stops them.
async fn drain_with_two_survivors(env: &TestEnv, what: &str, drained: impl AsyncFnMut() -> bool) {
    let mut survivors = [spawn_worker(env), spawn_worker(env)];
    eventually(Duration::from_secs(60), what, drained).await;
    for survivor in &mut survivors {
        survivor.kill().unwrap();
        survivor.wait().unwrap();
    }
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
    drain_with_two_survivors(
        &env,
        "queue drained and every decision persisted",
        async || {
            queue.queue_len(&campaign).await.unwrap() == 0
                && queue.log_len(&campaign).await.unwrap() == 0
        },
    )
    .await;

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

/// What the accept step answered for an instant request: (status, coupon code).
type Answer = (RequestStatus, Option<String>);

/// `users` accepted for an instant campaign in groups of `group` (decided at once, as the API's
/// group commit sends them); returns each request's id and answer.
async fn accept_instant(
    queue: &Queue,
    campaign: &CampaignId,
    users: impl Iterator<Item = String>,
    group: usize,
) -> Vec<(RequestId, Answer)> {
    let items: Vec<AcceptItem> = users
        .map(|user| AcceptItem {
            request_id: RequestId::new_for(campaign),
            user_id: UserId::parse(user).unwrap(),
            idempotency_key: None,
            admitted: false,
        })
        .collect();
    let mut answers = Vec::with_capacity(items.len());
    for chunk in items.chunks(group) {
        let outcomes = queue.accept(campaign, chunk).await.unwrap();
        for (item, outcome) in chunk.iter().zip(outcomes) {
            let AcceptOutcome::Decided {
                status,
                coupon_code,
                ..
            } = outcome
            else {
                panic!("instant request not decided at once: {outcome:?}");
            };
            answers.push((item.request_id, (status, coupon_code.map(String::from))));
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_nothing_of_an_instant_spike() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env
        .warm_open_campaign_deciding(&queue, 4_000, DecideMode::Instant)
        .await
        .unwrap();
    let total = 12_000;
    // Users as in the queued test: every 10th presses twice.
    let user = |n: usize| format!("user-{}", if n % 10 == 1 { n - 1 } else { n });

    // Four rounds: a quarter of the spike is accepted (decided at once, in small groups, so the
    // log holds many entries), a worker starts persisting, and it is SIGKILLed mid-drain.
    let mut answers: Vec<(RequestId, Answer)> = Vec::new();
    for round in 0..4 {
        let users = (round * 3_000..(round + 1) * 3_000).map(user);
        answers.extend(accept_instant(&queue, &campaign, users, 4).await);
        let unpersisted = queue.log_len(&campaign).await.unwrap();
        let mut victim = spawn_worker(&env);
        eventually(
            Duration::from_secs(60),
            "the worker to make progress",
            async || queue.log_len(&campaign).await.unwrap() < unpersisted,
        )
        .await;
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        assert!(
            queue.log_len(&campaign).await.unwrap() > 0,
            "killed before the log drained"
        );
    }
    assert_eq!(answers.len(), total);
    assert_eq!(
        queue.queue_len(&campaign).await.unwrap(),
        0,
        "nothing queued"
    );

    // Two survivors take over whatever the dead left pending and persist the rest.
    drain_with_two_survivors(&env, "every decision persisted", async || {
        queue.log_len(&campaign).await.unwrap() == 0
    })
    .await;

    // Guarantee 4: every answer is recorded exactly as given, once; Redis agrees.
    assert_eq!(
        rushline_testkit::recorded_rows(&env.store, &campaign)
            .await
            .unwrap(),
        total as i64
    );
    let mut by_status: HashMap<RequestStatus, usize> = HashMap::new();
    for (id, answer) in &answers {
        let recorded = env.store.request(*id).await.unwrap().expect("recorded");
        let reported = queue
            .request_status(*id)
            .await
            .unwrap()
            .expect("status record");
        let recorded = (recorded.status, recorded.coupon_code.map(String::from));
        let reported = (reported.status, reported.coupon_code.map(String::from));
        assert_eq!(&recorded, answer, "{id}");
        assert_eq!(&reported, answer, "{id}");
        *by_status.entry(answer.0).or_default() += 1;
    }
    // Guarantees 1–3, and exactly `stock` issued since demand exceeded it.
    let audit = rushline_testkit::audit(&env.store, &campaign)
        .await
        .unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.issued_rows, 4_000);
    assert_eq!(by_status[&RequestStatus::Issued], 4_000);
    let state = queue.campaign_state(&campaign).await.unwrap().unwrap();
    assert_eq!(state.issued as i64, audit.issued_rows, "guarantee 6");
    env.cleanup().await.unwrap();
}
