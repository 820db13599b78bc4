//! `accept.lua` with the largest group the API sends (RUSHLINE_ACCEPT_BATCH goes up to 4,096):
//! every request pushed once in item order, every status record written, a replay of a request
//! from earlier in the same group answered from its record, and a sold-out group decided at once
//! with every record. Against the real Redis and PostgreSQL.

use redis::AsyncCommands;
use rushline_domain::{CampaignId, IdempotencyKey, RequestId, RequestStatus, UserId};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue};
use rushline_testkit::TestEnv;

/// RUSHLINE_ACCEPT_BATCH's largest group.
const GROUP: usize = 4_096;

fn items(campaign: &CampaignId, prefix: &str, n: usize) -> Vec<AcceptItem> {
    (0..n)
        .map(|i| AcceptItem {
            request_id: RequestId::new_for(campaign),
            user_id: UserId::parse(format!("{prefix}-{i}")).unwrap(),
            idempotency_key: None,
            admitted: false,
        })
        .collect()
}

#[tokio::test]
async fn one_huge_group_is_queued_in_order_with_every_record() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env.warm_open_campaign(&queue, 10_000).await.unwrap();
    let mut group = items(&campaign, "user", GROUP);
    // The last request retries the first one's key: a replay of a request of the same group.
    let key = IdempotencyKey::parse("same-group-key").unwrap();
    group[0].idempotency_key = Some(key.clone());
    let retry = AcceptItem {
        request_id: RequestId::new_for(&campaign),
        user_id: group[0].user_id.clone(),
        idempotency_key: Some(key),
        admitted: false,
    };
    group.push(retry);

    let outcomes = queue.accept(&campaign, &group).await.unwrap();
    assert_eq!(outcomes.len(), GROUP + 1);
    assert!(
        outcomes[..GROUP]
            .iter()
            .all(|o| *o == AcceptOutcome::Queued)
    );
    match &outcomes[GROUP] {
        AcceptOutcome::Replay {
            request_id,
            view: Some(view),
        } => {
            assert_eq!(*request_id, group[0].request_id);
            assert_eq!(view.status, RequestStatus::Queued);
        }
        other => panic!("expected a replay of the first request, got {other:?}"),
    }

    let mut redis = env.redis().await.unwrap();
    let queued: Vec<String> = redis
        .lrange(queue.keys().campaign(&campaign).queue, 0, -1)
        .await
        .unwrap();
    let expected: Vec<String> = group[..GROUP]
        .iter()
        .map(|i| format!("{}\t{}", i.request_id, i.user_id.as_str()))
        .collect();
    assert_eq!(queued, expected, "one push per request, in item order");
    for item in &group[..GROUP] {
        let view = queue
            .request_status(item.request_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no status record for {}", item.request_id));
        assert_eq!(view.status, RequestStatus::Queued);
        assert_eq!(view.user_id, item.user_id);
    }
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn one_huge_group_decided_at_once_when_sold_out_writes_every_record() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env.warm_open_campaign(&queue, 1).await.unwrap();
    let first = items(&campaign, "early", 1);
    queue.accept(&campaign, &first).await.unwrap();
    let decided = queue.decide(&campaign, 16).await.unwrap().unwrap();
    assert_eq!(decided.issued, 1);

    let group = items(&campaign, "late", GROUP);
    let outcomes = queue.accept(&campaign, &group).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(
        o,
        AcceptOutcome::Decided {
            status: RequestStatus::SoldOut,
            ..
        }
    )));
    for item in &group {
        let view = queue
            .request_status(item.request_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(view.status, RequestStatus::SoldOut);
    }
    env.cleanup().await.unwrap();
}
