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
