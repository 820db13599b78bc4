//! Warm-up failures and leases, against the real Redis and PostgreSQL.

use std::time::Duration;

use rushline_domain::{CampaignId, CampaignRecord, CampaignSnapshot, RequestId, UserId};
use rushline_queue::{Queue, WarmError, Warmed};
use rushline_store::{Store, StoreError};
use rushline_testkit::TestEnv;

/// The real record, except that reading holders fails: PostgreSQL going away mid warm-up.
struct FailsMidWay<'a>(&'a Store);

impl CampaignRecord for FailsMidWay<'_> {
    type Error = StoreError;

    async fn snapshot(
        &self,
        campaign: &CampaignId,
    ) -> Result<Option<CampaignSnapshot>, StoreError> {
        self.0.campaign_snapshot(campaign).await
    }

    async fn begin_rebuild(
        &self,
        campaign: &CampaignId,
        seen: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.0.begin_rebuild(campaign, seen).await
    }

    async fn holders_after(
        &self,
        _campaign: &CampaignId,
        _after: Option<&UserId>,
    ) -> Result<Vec<(UserId, RequestId)>, StoreError> {
        Err(StoreError::Timeout(Duration::from_millis(1)))
    }
}

/// Issue 10, §5: a failed warm-up used to keep its 30 s lease, so every caller waited and got
/// `503` until it expired. Now it releases the lease and the next warm-up runs at once.
#[tokio::test]
async fn a_failed_warm_up_releases_its_lease() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = CampaignId::parse("lease").unwrap();
    env.create_open_campaign(&campaign, 10).await.unwrap();

    let failed = queue.warm(&campaign, &FailsMidWay(&env.store)).await;
    assert!(matches!(failed, Err(WarmError::Source(_))), "{failed:?}");
    assert!(
        queue.campaign_state(&campaign).await.unwrap().is_none(),
        "not ready"
    );

    // Well under the lease (30 s) and under the wait for another's warm-up (10 s).
    let warmed = tokio::time::timeout(Duration::from_secs(5), queue.warm(&campaign, &env.store))
        .await
        .expect("the next warm-up must not wait for the failed one's lease");
    assert_eq!(warmed.unwrap(), Warmed::Ready);
    env.cleanup().await.unwrap();
}

/// The real record, except that another rebuild moves the epoch just before this warm-up's own
/// move (once): the warm-up read an epoch that is no longer current.
struct RebuiltMeanwhile<'a> {
    store: &'a Store,
    raced: std::sync::atomic::AtomicBool,
}

impl CampaignRecord for RebuiltMeanwhile<'_> {
    type Error = StoreError;

    async fn snapshot(
        &self,
        campaign: &CampaignId,
    ) -> Result<Option<CampaignSnapshot>, StoreError> {
        self.store.campaign_snapshot(campaign).await
    }

    async fn begin_rebuild(
        &self,
        campaign: &CampaignId,
        seen: i64,
    ) -> Result<Option<i64>, StoreError> {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = self.store.begin_rebuild(campaign, seen).await?;
            assert_eq!(other, Some(seen + 1));
        }
        self.store.begin_rebuild(campaign, seen).await
    }

    async fn holders_after(
        &self,
        campaign: &CampaignId,
        after: Option<&UserId>,
    ) -> Result<Vec<(UserId, RequestId)>, StoreError> {
        self.store.holders_after(campaign, after).await
    }
}

/// Issue 10, §5: a warm-up moves the record's epoch by compare-and-set from the value it read
/// before claiming; when another rebuild moved it meanwhile it starts over, and what it publishes
/// (and what decisions are stamped with) is the record's current epoch — never an older one,
/// which would have every decision of the new state refused.
#[tokio::test]
async fn a_warm_up_publishes_the_records_current_epoch_even_when_another_moved_it() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = CampaignId::parse("raced").unwrap();
    env.create_open_campaign(&campaign, 10).await.unwrap();
    let record = RebuiltMeanwhile {
        store: &env.store,
        raced: false.into(),
    };

    let warmed = tokio::time::timeout(Duration::from_secs(5), queue.warm(&campaign, &record))
        .await
        .expect("a moved epoch is retried at once, not after the lease");
    assert_eq!(warmed.unwrap(), Warmed::Ready);
    let record_epoch = env.store.epoch(&campaign).await.unwrap().unwrap();
    assert_eq!(record_epoch, 2, "the other rebuild's move, then this one's");

    let mut redis = env.redis().await.unwrap();
    let published: Option<i64> = redis::cmd("HGET")
        .arg(queue.keys().campaign(&campaign).meta)
        .arg("epoch")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(published, Some(record_epoch));

    // Decisions of the new state carry it, and the record accepts them.
    let item = rushline_queue::AcceptItem {
        request_id: RequestId::new_for(&campaign),
        user_id: UserId::parse("u-1").unwrap(),
        idempotency_key: None,
        admitted: false,
    };
    queue.accept(&campaign, &[item]).await.unwrap();
    queue.decide(&campaign, 8).await.unwrap().unwrap();
    let read = queue.read_log(&campaign, "reader", 8).await.unwrap();
    assert_eq!(read.entries.len(), 1);
    assert_eq!(read.entries[0].epoch, Some(record_epoch));
    let persisted = env
        .store
        .persist_at(&campaign, read.entries[0].epoch, &read.entries[0].decisions)
        .await
        .unwrap();
    assert_eq!(persisted.inserted, 1);
    env.cleanup().await.unwrap();
}
