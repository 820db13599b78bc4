//! The highest recorded coupon sequence number of a campaign comes from an index, not a scan of
//! `requests` (migration 20261130000001).

use rushline_domain::CampaignId;
use rushline_testkit::TestEnv;

#[tokio::test]
async fn the_highest_coupon_seq_is_read_from_the_index() {
    let env = TestEnv::new().await.unwrap();
    let pool = env.store.pool();
    let (busy, quiet) = (
        CampaignId::parse("busy").unwrap(),
        CampaignId::parse("quiet").unwrap(),
    );
    env.create_open_campaign(&busy, 100_000).await.unwrap();
    env.create_open_campaign(&quiet, 100_000).await.unwrap();
    // Enough rows that a scan would cost the planner far more than the index.
    sqlx::query(
        "INSERT INTO requests (request_id, campaign_id, user_id, status, coupon_code, coupon_seq, decided_at)
         SELECT gen_random_uuid(), 'busy', 'user-' || g, 'issued', 'RL-' || g, g, now()
         FROM generate_series(1, 30000) g",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE requests").execute(pool).await.unwrap();

    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT max(coupon_seq) FROM requests
         WHERE campaign_id = 'quiet' AND coupon_seq IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("requests_campaign_coupon_seq"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");

    assert_eq!(
        env.store.recorded_high_seq(&busy).await.unwrap(),
        Some(30000)
    );
    assert_eq!(env.store.recorded_high_seq(&quiet).await.unwrap(), None);
    env.cleanup().await.unwrap();
}
