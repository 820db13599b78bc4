//! `rate_limit.lua` (GCRA) against the real Redis: a burst of the quota, then a refusal that
//! spends nothing and says when to come back; refunds; claimed idempotency keys spend nothing;
//! subjects repeated in one group; every key expires.

use std::time::Duration;

use redis::AsyncCommands;
use rushline_domain::{CampaignId, IdempotencyKey, RequestId, UserId};
use rushline_queue::rate_limit::{Rate, UserRequest, Verdict};
use rushline_queue::{AcceptItem, Queue};
use rushline_testkit::TestEnv;

fn per_minute(quota: u32) -> Rate {
    Rate::new(quota, Duration::from_secs(60)).unwrap()
}

fn request(user: &UserId) -> UserRequest<'_> {
    UserRequest {
        user_id: user,
        idempotency_key: None,
    }
}

#[tokio::test]
async fn a_burst_of_the_quota_then_a_refusal_that_spends_nothing() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let rate = per_minute(3);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match queue.limit_address("192.0.2.1", rate).await.unwrap() {
            Verdict::Allowed {
                remaining: r,
                reset,
            } => {
                assert!(reset <= Duration::from_secs(60), "{reset:?}");
                remaining.push(r);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(remaining, [2, 1, 0]);
    for _ in 0..3 {
        match queue.limit_address("192.0.2.1", rate).await.unwrap() {
            // One request comes back every 20 s; refusals do not push it further away.
            Verdict::Denied { retry_after, .. } => {
                assert!(
                    retry_after > Duration::from_secs(19) && retry_after <= Duration::from_secs(20),
                    "{retry_after:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // Another address has its own quota.
    assert!(matches!(
        queue.limit_address("192.0.2.2", rate).await.unwrap(),
        Verdict::Allowed { remaining: 2, .. }
    ));
    // A refund gives one request back.
    queue.refund_address("192.0.2.1", rate).await.unwrap();
    assert!(matches!(
        queue.limit_address("192.0.2.1", rate).await.unwrap(),
        Verdict::Allowed { remaining: 0, .. }
    ));
    // The key expires once the whole quota would be back: nothing outlives a minute.
    let mut conn = env.redis().await.unwrap();
    let key = queue.keys().address_rate_limit("192.0.2.1");
    let ttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn one_group_is_screened_in_order_and_claimed_keys_spend_nothing() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env.warm_open_campaign(&queue, 100).await.unwrap();
    let rate = per_minute(2);
    let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
    // Ann three times in one group: the third is refused; Bob is not affected.
    let verdicts = queue
        .limit_users(
            &campaign,
            rate,
            &[request(&ann), request(&bob), request(&ann), request(&ann)],
        )
        .await
        .unwrap();
    assert!(matches!(verdicts[0], Verdict::Allowed { remaining: 1, .. }));
    assert!(matches!(verdicts[1], Verdict::Allowed { remaining: 1, .. }));
    assert!(matches!(verdicts[2], Verdict::Allowed { remaining: 0, .. }));
    assert!(matches!(verdicts[3], Verdict::Denied { .. }));

    // Bob's claimed key: every request carrying it is a replay, limit or not.
    let key = IdempotencyKey::parse("bob-1").unwrap();
    let item = AcceptItem {
        request_id: RequestId::new_for(&campaign),
        user_id: bob.clone(),
        idempotency_key: Some(key.clone()),
        admitted: false,
    };
    queue.accept(&campaign, &[item]).await.unwrap();
    assert!(queue.idempotency_claimed(&campaign, &key).await.unwrap());
    let replay = UserRequest {
        user_id: &bob,
        idempotency_key: Some(&key),
    };
    let verdicts = queue
        .limit_users(&campaign, rate, &[replay, replay, replay])
        .await
        .unwrap();
    assert_eq!(verdicts, [Verdict::Replay; 3]);
    // …and spent nothing: Bob still has one request this minute.
    let verdicts = queue
        .limit_users(&campaign, rate, &[request(&bob), request(&bob)])
        .await
        .unwrap();
    assert!(matches!(verdicts[0], Verdict::Allowed { remaining: 0, .. }));
    assert!(matches!(verdicts[1], Verdict::Denied { .. }));

    // Refunds per user: Ann gets one back.
    queue.refund_users(&campaign, rate, &[&ann]).await.unwrap();
    let verdicts = queue
        .limit_users(&campaign, rate, &[request(&ann)])
        .await
        .unwrap();
    assert!(matches!(verdicts[0], Verdict::Allowed { .. }));
    let other = CampaignId::parse("other-campaign").unwrap();
    assert!(!queue.idempotency_claimed(&other, &key).await.unwrap());
    env.cleanup().await.unwrap();
}
