//! `accept.lua` in instant mode (`"decide": "instant"`): the accept step decides each request by
//! decide.lua's rule, in arrival order, writes its final status record and log line, and queues
//! nothing. Against the real Redis and PostgreSQL.

use rushline_domain::{
    CampaignId, DecideMode, IdempotencyKey, RequestId, RequestStatus, RequestView, UserId,
};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue};
use rushline_testkit::TestEnv;

fn item(campaign: &CampaignId, user: &str) -> AcceptItem {
    AcceptItem {
        request_id: RequestId::new_for(campaign),
        user_id: UserId::parse(user).unwrap(),
        idempotency_key: None,
        admitted: false,
    }
}

/// 40 requests from 25 users (every 3rd request repeats the user before it): more users than
/// the stock of 10, so issued, duplicate and sold_out all occur, and duplicates both before and
/// after the stock runs out.
fn users() -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    let mut next = 0;
    for n in 0..40 {
        if n % 3 == 2 {
            users.push(users[n - 1].clone());
        } else {
            users.push(format!("user-{next}"));
            next += 1;
        }
    }
    users
}

/// What each request became: (status, coupon code).
type Outcome = (RequestStatus, Option<String>);

fn decided(outcome: &AcceptOutcome) -> Outcome {
    match outcome {
        AcceptOutcome::Decided {
            status,
            coupon_code,
            ..
        } => (*status, coupon_code.as_ref().map(|c| c.as_str().to_owned())),
        other => panic!("expected a decision at once, got {other:?}"),
    }
}

async fn status(queue: &Queue, id: RequestId) -> RequestView {
    queue
        .request_status(id)
        .await
        .unwrap()
        .expect("status record")
}

#[tokio::test]
async fn instant_accept_decides_exactly_as_a_worker_would() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let users = users();

    // The reference: a queued campaign, every request accepted, then decided by decide.lua.
    let queued = env.warm_open_campaign(&queue, 10).await.unwrap();
    let queued_items: Vec<AcceptItem> = users.iter().map(|u| item(&queued, u)).collect();
    let outcomes = queue.accept(&queued, &queued_items).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == AcceptOutcome::Queued));
    let batch = queue.decide(&queued, 64).await.unwrap().unwrap();
    assert_eq!(batch.decided, 40);
    let mut expected: Vec<Outcome> = Vec::new();
    for i in &queued_items {
        let view = status(&queue, i.request_id).await;
        expected.push((view.status, view.coupon_code.map(String::from)));
    }

    // The same arrivals on an instant campaign (same stock, same code key, so the same coupon
    // sequence and codes), in groups of uneven sizes as group commit forms them.
    let instant = env
        .warm_open_campaign_deciding(&queue, 10, DecideMode::Instant)
        .await
        .unwrap();
    let instant_items: Vec<AcceptItem> = users.iter().map(|u| item(&instant, u)).collect();
    let mut got: Vec<Outcome> = Vec::new();
    let mut start = 0;
    for size in [1, 7, 3, 16, 2, 11] {
        let group = &instant_items[start..start + size];
        let outcomes = queue.accept(&instant, group).await.unwrap();
        got.extend(outcomes.iter().map(decided));
        start += size;
    }
    assert_eq!(start, 40);
    assert_eq!(got, expected, "instant decisions differ from decide.lua's");
    let issued = got
        .iter()
        .filter(|(s, _)| *s == RequestStatus::Issued)
        .count();
    assert_eq!(issued, 10);
    assert!(got.iter().any(|(s, _)| *s == RequestStatus::Duplicate));
    assert!(got.iter().any(|(s, _)| *s == RequestStatus::SoldOut));

    // Each answer is what the status record says, code included; nothing was queued; the
    // counters moved; every decision is in the log, one entry per group.
    for (i, answer) in instant_items.iter().zip(&got) {
        let view = status(&queue, i.request_id).await;
        assert_eq!(
            (view.status, view.coupon_code.map(String::from)),
            answer.clone()
        );
        assert!(view.decided_at.is_some());
    }
    assert_eq!(queue.queue_len(&instant).await.unwrap(), 0);
    let state = queue.campaign_state(&instant).await.unwrap().unwrap();
    assert_eq!((state.issued, state.remaining), (10, 0));
    assert_eq!(state.decide, DecideMode::Instant);
    assert_eq!(queue.log_len(&instant).await.unwrap(), 6);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn an_idempotent_retry_of_an_instant_request_replays_its_decision() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env
        .warm_open_campaign_deciding(&queue, 5, DecideMode::Instant)
        .await
        .unwrap();
    let key = IdempotencyKey::parse("retry-me").unwrap();
    let mut first = item(&campaign, "alice");
    first.idempotency_key = Some(key.clone());
    let mut retry = item(&campaign, "alice");
    retry.idempotency_key = Some(key);
    // The retry in the same group, and again in a group of its own.
    let outcomes = queue
        .accept(&campaign, &[first.clone(), retry.clone()])
        .await
        .unwrap();
    let (status, code) = decided(&outcomes[0]);
    assert_eq!(status, RequestStatus::Issued);
    let again = queue.accept(&campaign, &[retry]).await.unwrap();
    for replay in [&outcomes[1], &again[0]] {
        match replay {
            AcceptOutcome::Replay {
                request_id,
                view: Some(view),
            } => {
                assert_eq!(*request_id, first.request_id);
                assert_eq!(view.status, RequestStatus::Issued);
                assert_eq!(
                    view.coupon_code.as_ref().map(|c| c.as_str()),
                    code.as_deref()
                );
            }
            other => panic!("expected a replay of the first request, got {other:?}"),
        }
    }
    let state = queue.campaign_state(&campaign).await.unwrap().unwrap();
    assert_eq!(state.issued, 1, "a replay is never decided twice");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn an_instant_campaign_queues_behind_requests_already_waiting() {
    // A request waiting in an instant campaign's queue (handed back after Redis lost its data)
    // must be decided before anyone who arrives after it: first come, first served.
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env
        .warm_open_campaign_deciding(&queue, 1, DecideMode::Instant)
        .await
        .unwrap();
    let waiting = item(&campaign, "early");
    let mut redis = env.redis().await.unwrap();
    let keys = queue.keys().campaign(&campaign);
    redis::pipe()
        .cmd("SET")
        .arg(queue.keys().status(&waiting.request_id))
        .arg(format!("q\t{campaign}\tearly\t\t"))
        .cmd("RPUSH")
        .arg(&keys.queue)
        .arg(format!("{}\tearly", waiting.request_id))
        .query_async::<()>(&mut redis)
        .await
        .unwrap();

    let late = item(&campaign, "late");
    let outcomes = queue
        .accept(&campaign, std::slice::from_ref(&late))
        .await
        .unwrap();
    assert_eq!(outcomes, vec![AcceptOutcome::Queued]);
    let batch = queue.decide(&campaign, 16).await.unwrap().unwrap();
    assert_eq!((batch.decided, batch.issued), (2, 1));
    assert_eq!(
        status(&queue, waiting.request_id).await.status,
        RequestStatus::Issued
    );
    assert_eq!(
        status(&queue, late.request_id).await.status,
        RequestStatus::SoldOut
    );

    // With the queue empty again, the campaign decides at once.
    let after = queue
        .accept(&campaign, &[item(&campaign, "later")])
        .await
        .unwrap();
    assert_eq!(decided(&after[0]).0, RequestStatus::SoldOut);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn instant_decisions_respect_the_log_bound() {
    let env = TestEnv::new().await.unwrap();
    let config = rushline_queue::QueueConfig {
        max_log_entries: 2,
        ..env.queue_config()
    };
    let queue = Queue::new(config).unwrap();
    let campaign = env
        .warm_open_campaign_deciding(&queue, 100, DecideMode::Instant)
        .await
        .unwrap();
    for user in ["a", "b"] {
        let outcome = queue
            .accept(&campaign, &[item(&campaign, user)])
            .await
            .unwrap();
        assert_eq!(decided(&outcome[0]).0, RequestStatus::Issued);
    }
    // Two unpersisted entries: the next request is shed, and nothing of it is written.
    let shed = item(&campaign, "c");
    let outcome = queue
        .accept(&campaign, std::slice::from_ref(&shed))
        .await
        .unwrap();
    assert_eq!(outcome, vec![AcceptOutcome::Overloaded]);
    assert!(
        queue
            .request_status(shed.request_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(queue.queue_len(&campaign).await.unwrap(), 0);
    let state = queue.campaign_state(&campaign).await.unwrap().unwrap();
    assert_eq!((state.issued, state.remaining), (2, 98));
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_state_rebuilt_from_the_record_keeps_the_decide_mode() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env
        .warm_open_campaign_deciding(&queue, 3, DecideMode::Instant)
        .await
        .unwrap();
    let first = queue
        .accept(&campaign, &[item(&campaign, "a")])
        .await
        .unwrap();
    assert_eq!(decided(&first[0]).0, RequestStatus::Issued);

    // Redis loses everything; the warm-up copies the mode back from PostgreSQL.
    env.flush_redis().await.unwrap();
    let lost = queue
        .accept(&campaign, &[item(&campaign, "b")])
        .await
        .unwrap();
    assert_eq!(lost, vec![AcceptOutcome::Unknown]);
    queue.warm(&campaign, &env.store).await.unwrap();
    let state = queue.campaign_state(&campaign).await.unwrap().unwrap();
    assert_eq!(state.decide, DecideMode::Instant);
    let again = queue
        .accept(&campaign, &[item(&campaign, "b")])
        .await
        .unwrap();
    assert_eq!(decided(&again[0]).0, RequestStatus::Issued);
    assert_eq!(queue.queue_len(&campaign).await.unwrap(), 0);
    env.cleanup().await.unwrap();
}
