//! Pub/sub wake-ups (`src/notify.rs`): a subscriber hears the `decided` notices of campaigns
//! wherever their keys live. On a Redis Cluster (`RUSHLINE_TEST_REDIS_URL` listing its nodes, as
//! CI's second pass does) the subscriber listens on one node while the campaigns' slots are
//! spread over the masters, so this checks that the cluster bus carries every `PUBLISH` to it.

use std::collections::HashSet;
use std::time::Duration;

use rushline_queue::Queue;
use rushline_testkit::{TestEnv, queue_requests};

/// Campaigns decided: with 3 masters, their slots land on more than one of them.
const CAMPAIGNS: usize = 6;

#[tokio::test]
async fn a_subscriber_hears_the_decisions_of_every_campaign() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    // Subscribed (SUBSCRIBE confirmed) before anything is published.
    let mut notices = queue
        .subscriber()
        .subscribe(&queue.keys().decided_channel())
        .await
        .unwrap();
    let mut unheard = HashSet::new();
    for n in 0..CAMPAIGNS {
        let campaign = env.warm_open_campaign(&queue, 5).await.unwrap();
        let ids = queue_requests(&queue, &campaign, [format!("user-{n}")])
            .await
            .unwrap();
        queue.decide(&campaign, 16).await.unwrap().expect("warm");
        unheard.extend(ids.iter().map(ToString::to_string));
    }
    let hear_all = async {
        while !unheard.is_empty() {
            let notice = notices.next().await.expect("the subscription stays up");
            for id in notice.split(' ') {
                unheard.remove(id);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), hear_all)
        .await
        .expect("every decision heard within 10 s");
    env.cleanup().await.unwrap();
}
