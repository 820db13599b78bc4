//! Issue 10, §5: a warm-up racing a persist held in memory. Redis loses its data (and its decision
//! log) while a worker holds a batch it read before the loss; a warm-up rebuilds the campaign
//! from the record; new requests are decided; then the held batch reaches PostgreSQL. The
//! rebuild must not miss it: the record refuses it (its epoch is older) and its requests are
//! decided again by the rebuilt state. Real Redis and PostgreSQL; the worker's own persist step.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rushline_domain::{CampaignId, RequestId, RequestStatus, UserId};
use rushline_queue::{AcceptItem, AcceptOutcome, LogRead, Queue};
use rushline_testkit::lagging::LaggingReplica;
use rushline_testkit::{TestEnv, audit};
use rushline_worker::{Config, Context, dead_letter};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn context(env: &TestEnv, queue: &Queue) -> Context {
    let config = Config::from_lookup(env.settings(&[("RUSHLINE_WORKER_METRICS_ADDR", "off")]))
        .expect("test settings");
    Context {
        config: Arc::new(config),
        queue: queue.clone(),
        store: env.store.clone(),
        consumer: format!("test-{}", Uuid::new_v4().simple()),
        hard_stop: CancellationToken::new(),
    }
}

/// Queues one request per user, in order, through the API's accept script.
async fn enqueue(queue: &Queue, campaign: &CampaignId, users: &[&str]) -> Vec<RequestId> {
    let items: Vec<AcceptItem> = users
        .iter()
        .map(|u| AcceptItem {
            request_id: RequestId::new_for(campaign),
            user_id: UserId::parse(*u).unwrap(),
            idempotency_key: None,
            admitted: false,
        })
        .collect();
    let outcomes = queue.accept(campaign, &items).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == AcceptOutcome::Queued));
    items.iter().map(|i| i.request_id).collect()
}

/// What Redis reports for each request: status and coupon code.
async fn reported(
    queue: &Queue,
    ids: &[RequestId],
) -> HashMap<RequestId, (RequestStatus, Option<String>)> {
    let mut out = HashMap::new();
    for id in ids {
        let view = queue
            .request_status(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("Redis holds no status for {id}"));
        out.insert(
            *id,
            (view.status, view.coupon_code.map(|c| c.as_str().to_owned())),
        );
    }
    out
}

/// What the record holds for each request: every row (there must be exactly one).
async fn recorded(
    env: &TestEnv,
    ids: &[RequestId],
) -> HashMap<RequestId, Vec<(RequestStatus, Option<String>)>> {
    let uuids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT request_id, status, coupon_code FROM requests WHERE request_id = ANY($1)",
    )
    .bind(&uuids)
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    let mut out: HashMap<RequestId, Vec<_>> = HashMap::new();
    for (id, status, code) in rows {
        out.entry(RequestId::from(id))
            .or_default()
            .push((status.parse().unwrap(), code));
    }
    out
}

/// The ids of the campaign's queued requests, head first.
async fn queued_ids(queue: &Queue, campaign: &CampaignId) -> Vec<RequestId> {
    let mut redis = queue.connection().await.unwrap();
    let queued: Vec<String> = redis::cmd("LRANGE")
        .arg(&queue.keys().campaign(campaign).queue)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    queued
        .iter()
        .map(|item| RequestId::parse(item.split('\t').next().unwrap_or_default()).unwrap())
        .collect()
}

/// Persists one read of the log exactly as the persist loop's turn does.
async fn persist(ctx: &Context, campaign: &CampaignId, read: &LogRead) {
    dead_letter::settle(ctx, campaign, read)
        .await
        .unwrap_or_else(|failure| panic!("persist failed: {failure:?}"));
}

/// Reads and persists everything the campaign's log holds.
async fn persist_log(ctx: &Context, campaign: &CampaignId) {
    loop {
        let read = ctx
            .queue
            .read_log(campaign, &ctx.consumer, 64)
            .await
            .unwrap();
        if read.is_empty() {
            return;
        }
        persist(ctx, campaign, &read).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_held_across_a_redis_loss_and_a_rebuild_is_decided_again_not_committed() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let ctx = context(&env, &queue);
    let stock = 4;
    let campaign = env.warm_open_campaign(&queue, stock).await.unwrap();

    // A batch is decided (3 coupons) and a worker reads it: it now holds it in memory.
    let held_ids = enqueue(&queue, &campaign, &["u-a0", "u-a1", "u-a2"]).await;
    let decided = queue.decide(&campaign, 16).await.unwrap().unwrap();
    assert_eq!(decided.issued, 3);
    let held = queue.read_log(&campaign, "held-worker", 16).await.unwrap();
    assert_eq!(held.entries.len(), 1);
    assert!(held.entries[0].epoch.is_some(), "decide stamps its epoch");

    // Redis loses its data, log included; a warm-up rebuilds the campaign from the record, which
    // holds nothing of the held batch yet.
    env.flush_redis().await.unwrap();
    assert_eq!(
        queue.warm(&campaign, &env.store).await.unwrap(),
        rushline_queue::Warmed::Ready
    );

    // New requests, one from a user of the held batch, are decided by the rebuilt state and
    // reported to their clients.
    let new_ids = enqueue(&queue, &campaign, &["u-a0", "u-b0", "u-b1", "u-b2", "u-b3"]).await;
    queue.decide(&campaign, 16).await.unwrap().unwrap();
    let reported_new = reported(&queue, &new_ids).await;
    let issued_new = reported_new
        .values()
        .filter(|(s, _)| *s == RequestStatus::Issued)
        .count();
    assert_eq!(
        issued_new as u64, stock,
        "the rebuilt state issues its stock"
    );

    // Now the held batch reaches PostgreSQL; then everything the log holds is persisted.
    persist(&ctx, &campaign, &held).await;
    // A duplicated hand-back (a takeover of the same stale entry) must change nothing.
    let queued_after_hand_back = queue.queue_len(&campaign).await.unwrap();
    persist(&ctx, &campaign, &held).await;
    assert_eq!(
        queue.queue_len(&campaign).await.unwrap(),
        queued_after_hand_back,
        "a second hand-back of the same entry queues nothing again"
    );
    persist_log(&ctx, &campaign).await;
    // Whatever was handed back is decided by the rebuilt state and persisted.
    while queue.queue_len(&campaign).await.unwrap() > 0 {
        queue.decide(&campaign, 16).await.unwrap().unwrap();
        persist_log(&ctx, &campaign).await;
    }

    // Guarantees 1-3 in the record.
    let figures = audit(&env.store, &campaign).await.unwrap();
    figures.assert_guarantees();
    assert!(figures.issued_rows <= stock as i64);

    // A final status never changes: what the new requests were told is what the record holds.
    let record_new = recorded(&env, &new_ids).await;
    for id in &new_ids {
        assert_eq!(
            record_new.get(id).map(Vec::as_slice),
            Some(std::slice::from_ref(&reported_new[id])),
            "request {id}: reported {:?} before the held batch was persisted",
            reported_new[id]
        );
    }

    // Every request of the held batch has exactly one final status, the same in the record and
    // in Redis (what `GET /v1/requests/{id}` reads first).
    let record_held = recorded(&env, &held_ids).await;
    let reported_held = reported(&queue, &held_ids).await;
    for id in &held_ids {
        let rows = record_held.get(id).cloned().unwrap_or_default();
        assert_eq!(rows.len(), 1, "request {id}: rows {rows:?}");
        assert_eq!(rows[0], reported_held[id], "request {id}");
        assert_ne!(
            rows[0].0,
            RequestStatus::Issued,
            "stock went to the rebuilt state"
        );
    }

    // Redis's rebuilt counters and holders match the record (what `rushline reconcile` checks).
    let redis = queue.redis_campaign(&campaign).await.unwrap();
    assert_eq!(redis.log_entries, 0);
    assert_eq!(redis.epoch, env.store.epoch(&campaign).await.unwrap());
    assert_eq!(redis.issued, Some(figures.issued_rows));
    assert_eq!(redis.remaining, Some(figures.stock - figures.issued_rows));
    let holders: HashSet<String> = queue
        .redis_holders(&campaign)
        .await
        .unwrap()
        .into_keys()
        .collect();
    let issued_users: HashSet<String> = sqlx::query_scalar(
        "SELECT user_id FROM requests WHERE campaign_id = $1 AND status = 'issued'",
    )
    .bind(campaign.as_str())
    .fetch_all(env.store.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(holders, issued_users);
    env.cleanup().await.unwrap();
}

/// Log entries written before epochs existed (by a Redis state warmed before this change) carry
/// none, and are persisted as before, whatever the record's epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_without_an_epoch_still_persist() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let ctx = context(&env, &queue);
    let campaign = env.warm_open_campaign(&queue, 2).await.unwrap();
    // A state built by the previous version: no epoch in its meta hash.
    let mut redis = env.redis().await.unwrap();
    let meta = queue.keys().campaign(&campaign).meta;
    let _: i64 = redis::cmd("HDEL")
        .arg(&meta)
        .arg("epoch")
        .query_async(&mut redis)
        .await
        .unwrap();
    // The record's epoch has moved on meanwhile (no rebuild of this state, just the column).
    let epoch = env.store.epoch(&campaign).await.unwrap().unwrap();
    assert_eq!(
        env.store.begin_rebuild(&campaign, epoch).await.unwrap(),
        Some(epoch + 1)
    );

    let ids = enqueue(&queue, &campaign, &["u-0", "u-1", "u-2"]).await;
    queue.decide(&campaign, 16).await.unwrap().unwrap();
    let read = queue.read_log(&campaign, &ctx.consumer, 16).await.unwrap();
    assert_eq!(read.entries.len(), 1);
    assert_eq!(read.entries[0].epoch, None, "no epoch stamped");
    persist(&ctx, &campaign, &read).await;

    let rows = recorded(&env, &ids).await;
    assert_eq!(rows.len(), 3, "all three persisted: {rows:?}");
    assert_eq!(queue.log_len(&campaign).await.unwrap(), 0);
    audit(&env.store, &campaign)
        .await
        .unwrap()
        .assert_guarantees();
    env.cleanup().await.unwrap();
}

/// Redis came back *older* (a failover to a lagging replica, a restored snapshot) rather than
/// empty: its state, still `ready`, predates the record's last rebuild. Its held batch is
/// superseded, and the requests' status records are still the superseded decisions' own. The
/// hand-back takes that state out of service, rebuilds it from the record, and queues the
/// requests again — it must not mistake those records for an earlier hand-back and drop them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_batch_of_a_redis_that_came_back_older_is_decided_again() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let ctx = context(&env, &queue);
    let stock = 4;
    let campaign = env.warm_open_campaign(&queue, stock).await.unwrap();
    let ids = enqueue(&queue, &campaign, &["u-0", "u-1", "u-2"]).await;
    queue.decide(&campaign, 16).await.unwrap().unwrap();
    let held = queue.read_log(&campaign, "held-worker", 16).await.unwrap();
    // Meanwhile the campaign was rebuilt elsewhere (a Redis this one has now replaced), moving
    // the record's epoch past the state this Redis still holds.
    let epoch = held.entries[0].epoch.unwrap();
    assert_eq!(
        env.store.begin_rebuild(&campaign, epoch).await.unwrap(),
        Some(epoch + 1)
    );

    persist(&ctx, &campaign, &held).await;
    assert_eq!(queue.queue_len(&campaign).await.unwrap(), 3, "handed back");
    while queue.queue_len(&campaign).await.unwrap() > 0 {
        queue.decide(&campaign, 16).await.unwrap().unwrap();
        persist_log(&ctx, &campaign).await;
    }

    let figures = audit(&env.store, &campaign).await.unwrap();
    figures.assert_guarantees();
    assert_eq!(figures.issued_rows, 3);
    let rows = recorded(&env, &ids).await;
    let now = reported(&queue, &ids).await;
    for id in &ids {
        let rows = rows.get(id).cloned().unwrap_or_default();
        assert_eq!(rows.len(), 1, "request {id}: rows {rows:?}");
        assert_eq!(rows[0], now[id], "request {id}");
    }
    let redis = queue.redis_campaign(&campaign).await.unwrap();
    assert!(redis.ready);
    assert_eq!(redis.epoch, env.store.epoch(&campaign).await.unwrap());
    assert_eq!(redis.issued, Some(3));
    assert_eq!(redis.remaining, Some(stock as i64 - 3));
    assert_eq!(redis.log_entries, 0);
    assert_eq!(queue.redis_holders(&campaign).await.unwrap().len(), 3);
    env.cleanup().await.unwrap();
}

/// The failover case (issue 14): Redis comes back *older* but not empty — a replica promoted
/// before it had the master's last writes — with decisions the record already holds missing from
/// it. The state then hands out sequence numbers again; the record refuses those codes (taken by
/// other requests). Those requests must not be recorded `sold_out` while the record has room (that
/// stranded stock once in the cluster failover test): the batch is handed back, the campaign
/// rebuilt from the record, and the requests decided again, so the whole stock is issued and the
/// users the lost writes served are `duplicate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_came_back_behind_the_record_reissues_no_code_and_strands_no_stock() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let ctx = context(&env, &queue);
    let stock = 4;
    let campaign = env.warm_open_campaign(&queue, stock).await.unwrap();
    // What the replica has: the warm state before any decision.
    let replica = LaggingReplica::copy(&queue, &campaign).await.unwrap();

    // Decided and persisted on the master alone.
    let lost = enqueue(&queue, &campaign, &["u-0", "u-1"]).await;
    queue.decide(&campaign, 16).await.unwrap().unwrap();
    persist_log(&ctx, &campaign).await;
    let lost_rows = recorded(&env, &lost).await;
    assert!(lost_rows.values().all(|r| r[0].0 == RequestStatus::Issued));

    // The master is gone; the replica takes over without those writes.
    replica.take_over(&lost).await.unwrap();

    // New demand, and the users of the lost writes asking again. The stale state decides the
    // first two with the sequence numbers it handed out before, in two batches that two workers
    // take.
    let ids = enqueue(&queue, &campaign, &["u-2", "u-3", "u-0", "u-1"]).await;
    // Accepted behind them.
    let later = enqueue(&queue, &campaign, &["u-4"]).await;
    // One request a batch: each hands out a sequence number the record holds for u-0 / u-1.
    let first = queue.decide(&campaign, 1).await.unwrap().unwrap();
    let second = queue.decide(&campaign, 1).await.unwrap().unwrap();
    assert_eq!((first.issued, second.issued), (1, 1));
    let other = context(&env, &queue);
    let first_batch = queue.read_log(&campaign, &other.consumer, 1).await.unwrap();
    let second_batch = queue.read_log(&campaign, &ctx.consumer, 1).await.unwrap();
    assert_eq!((first_batch.len(), second_batch.len()), (1, 1));

    // The second batch reaches the record first: refused (its code is taken), and every batch
    // of the stale state goes back to the head of the queue in the order it was decided, ahead
    // of what was accepted since — not only the batch this worker held.
    persist(&ctx, &campaign, &second_batch).await;
    let expected: Vec<RequestId> = ids.iter().chain(&later).copied().collect();
    assert_eq!(
        queued_ids(&queue, &campaign).await,
        expected,
        "handed back in decision order, ahead of later requests"
    );
    // The other worker's hand-back of the first batch finds it handed back already.
    persist(&other, &campaign, &first_batch).await;
    assert_eq!(queue.queue_len(&campaign).await.unwrap(), 5);
    while queue.queue_len(&campaign).await.unwrap() > 0 {
        queue.decide(&campaign, 16).await.unwrap().unwrap();
        persist_log(&ctx, &campaign).await;
    }

    let figures = audit(&env.store, &campaign).await.unwrap();
    figures.assert_guarantees();
    assert_eq!(
        figures.issued_rows, stock as i64,
        "stock stranded: {figures:?}"
    );
    assert_eq!(
        reported(&queue, &later).await[&later[0]].0,
        RequestStatus::SoldOut
    );
    let rows = recorded(&env, &ids).await;
    let now = reported(&queue, &ids).await;
    let expected = [
        RequestStatus::Issued,
        RequestStatus::Issued,
        RequestStatus::Duplicate,
        RequestStatus::Duplicate,
    ];
    for (id, status) in ids.iter().zip(expected) {
        let rows = rows.get(id).cloned().unwrap_or_default();
        assert_eq!(rows.len(), 1, "request {id}: rows {rows:?}");
        assert_eq!(rows[0].0, status, "request {id}");
        assert_eq!(rows[0], now[id], "request {id}: Redis and the record agree");
    }
    // The lost writes' decisions stand, unchanged.
    assert_eq!(recorded(&env, &lost).await, lost_rows);
    let state = queue.redis_campaign(&campaign).await.unwrap();
    assert_eq!(state.epoch, env.store.epoch(&campaign).await.unwrap());
    assert_eq!(state.issued, Some(stock as i64));
    assert_eq!(state.remaining, Some(0));
    assert_eq!(state.log_entries, 0);
    env.cleanup().await.unwrap();
}

/// A worker that starts on a campaign whose Redis state came back older than the record (a
/// failover to a lagging replica, found before anything reports it) compares the state with the
/// record before its first decision: the state is taken out of service and rebuilt, so it decides
/// nothing — no hand-back is ever needed — and the queue is decided in order by the rebuilt state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_rebuilds_a_state_behind_the_record_before_deciding_from_it() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let ctx = context(&env, &queue);
    let stock = 3;
    let campaign = env.warm_open_campaign(&queue, stock).await.unwrap();
    let replica = LaggingReplica::copy(&queue, &campaign).await.unwrap();
    let lost = enqueue(&queue, &campaign, &["u-0", "u-1"]).await;
    queue.decide(&campaign, 16).await.unwrap().unwrap();
    persist_log(&ctx, &campaign).await;
    replica.take_over(&lost).await.unwrap();
    let epoch = env.store.epoch(&campaign).await.unwrap().unwrap();

    // Queued on the stale state, which believes it has all its stock.
    let ids = enqueue(&queue, &campaign, &["u-2", "u-3", "u-0"]).await;
    let config = Config::from_lookup(env.settings(&[("RUSHLINE_WORKER_METRICS_ADDR", "off")]))
        .expect("test settings");
    let worker = rushline_worker::Worker::new(config, queue.clone(), env.store.clone());
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    rushline_testkit::eventually(
        std::time::Duration::from_secs(30),
        "every request decided and persisted",
        async || {
            let state = queue.redis_campaign(&campaign).await.unwrap();
            let rows = recorded(&env, &ids).await;
            state.log_entries == 0 && rows.len() == ids.len()
        },
    )
    .await;
    stop.cancel();
    running.await.unwrap();

    let rows = recorded(&env, &ids).await;
    let statuses: Vec<RequestStatus> = ids.iter().map(|id| rows[id][0].0).collect();
    assert_eq!(
        statuses,
        [
            RequestStatus::Issued,
            RequestStatus::SoldOut,
            RequestStatus::Duplicate
        ],
        "decided in order by the rebuilt state (one unit of stock was left)"
    );
    let figures = audit(&env.store, &campaign).await.unwrap();
    figures.assert_guarantees();
    assert_eq!(figures.issued_rows, stock as i64);
    // One rebuild: the stale state decided nothing. (Had it decided, the record would have
    // refused its reused coupon numbers and moved the epoch for that too.)
    assert_eq!(
        env.store.epoch(&campaign).await.unwrap(),
        Some(epoch + 1),
        "the state was rebuilt once, before deciding"
    );
    env.cleanup().await.unwrap();
}

/// A stale state's log can hold many batches (its bound is reached while PostgreSQL is away):
/// they are handed back in several script calls, and the queue still ends in decision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_superseded_batches_are_handed_back_in_decision_order() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let ctx = context(&env, &queue);
    let campaign = env.warm_open_campaign(&queue, 100).await.unwrap();
    let replica = LaggingReplica::copy(&queue, &campaign).await.unwrap();
    let lost = enqueue(&queue, &campaign, &["lost"]).await;
    queue.decide(&campaign, 16).await.unwrap().unwrap();
    persist_log(&ctx, &campaign).await;
    replica.take_over(&lost).await.unwrap();

    // 70 batches of one on the stale state; the first reuses the lost decision's number.
    let users: Vec<String> = (0..70).map(|n| format!("u-{n:02}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let ids = enqueue(&queue, &campaign, &names).await;
    for _ in &ids {
        queue.decide(&campaign, 1).await.unwrap().unwrap();
    }
    let read = queue.read_log(&campaign, &ctx.consumer, 1).await.unwrap();
    persist(&ctx, &campaign, &read).await;

    assert_eq!(
        queued_ids(&queue, &campaign).await,
        ids,
        "handed back whole, in decision order"
    );
    assert_eq!(
        queue.redis_campaign(&campaign).await.unwrap().log_entries,
        0
    );
    env.cleanup().await.unwrap();
}
