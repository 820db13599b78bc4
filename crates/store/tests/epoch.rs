//! The campaign's rebuild epoch against a real PostgreSQL: a rebuild moves it by compare-and-set,
//! and a persist of decisions stamped with an older epoch commits nothing and names the
//! decisions the record does not hold (issue 10, §5).

use rushline_domain::{CampaignId, CouponCode, Decision, RequestId, RequestStatus, UserId};
use rushline_store::StoreError;
use rushline_testkit::{TestEnv, recorded_rows};

fn issued(campaign: &CampaignId, user: &str, seq: i64) -> Decision {
    Decision {
        request_id: RequestId::new_for(campaign),
        user_id: UserId::parse(user).unwrap(),
        status: RequestStatus::Issued,
        coupon_code: Some(CouponCode::mint("test-code-key", seq as u64)),
        coupon_seq: Some(seq),
        decided_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_rebuild_moves_the_epoch_once_from_the_value_it_read() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let campaign = CampaignId::parse("epochs")?;
    env.create_open_campaign(&campaign, 10).await?;
    assert_eq!(env.store.epoch(&campaign).await?, Some(0));
    assert_eq!(
        env.store.campaign_snapshot(&campaign).await?.unwrap().epoch,
        0
    );

    assert_eq!(env.store.begin_rebuild(&campaign, 0).await?, Some(1));
    // A second rebuild that read the same epoch (a stalled owner whose lease was taken over)
    // cannot move it again.
    assert_eq!(env.store.begin_rebuild(&campaign, 0).await?, None);
    assert_eq!(env.store.epoch(&campaign).await?, Some(1));
    assert_eq!(
        env.store
            .begin_rebuild(&CampaignId::parse("nowhere")?, 0)
            .await?,
        None
    );
    env.cleanup().await
}

#[tokio::test]
async fn decisions_of_an_older_epoch_commit_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let campaign = CampaignId::parse("superseded")?;
    env.create_open_campaign(&campaign, 10).await?;
    assert_eq!(env.store.begin_rebuild(&campaign, 0).await?, Some(1));

    // Committed at epoch 1, before the next rebuild.
    let before = vec![issued(&campaign, "u-0", 0)];
    assert_eq!(
        env.store
            .persist_at(&campaign, Some(1), &before)
            .await?
            .inserted,
        1
    );
    assert_eq!(env.store.begin_rebuild(&campaign, 1).await?, Some(2));

    // The same entry again (its acknowledgement was lost) with one more decision of epoch 1:
    // refused whole; only the decision the record does not hold is named.
    let late = issued(&campaign, "u-1", 1);
    let batch = vec![before[0].clone(), late.clone()];
    match env.store.persist_at(&campaign, Some(1), &batch).await {
        Err(StoreError::Superseded {
            entry_epoch,
            record_epoch,
            unrecorded,
        }) => {
            assert_eq!((entry_epoch, record_epoch), (1, 2));
            assert_eq!(unrecorded, vec![late.clone()]);
        }
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert_eq!(recorded_rows(&env.store, &campaign).await?, 1);

    // The current epoch, and unstamped decisions (written before epochs existed), commit.
    assert_eq!(
        env.store
            .persist_at(&campaign, Some(2), &[late])
            .await?
            .inserted,
        1
    );
    let unstamped = issued(&campaign, "u-2", 2);
    assert_eq!(
        env.store.persist(&campaign, &[unstamped]).await?.inserted,
        1
    );
    assert_eq!(recorded_rows(&env.store, &campaign).await?, 3);
    env.cleanup().await
}

/// A Redis state behind the record hands out a sequence number the record holds for another
/// request: the code clashes. At the batch's own epoch (no rebuild yet) the record must not turn
/// that into `sold_out` (a refusal while it has room): it commits nothing of the batch, moves
/// the epoch past it, and names what it does not hold, to be decided again after a rebuild.
#[tokio::test]
async fn a_code_the_record_holds_for_another_request_supersedes_the_batch() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let campaign = CampaignId::parse("behind")?;
    env.create_open_campaign(&campaign, 10).await?;
    let held = issued(&campaign, "u-0", 0);
    env.store
        .persist_at(&campaign, Some(0), std::slice::from_ref(&held))
        .await?;

    // The state lost `held`'s decision and hands out its number again, to another user, in a
    // batch with a decision that would fit.
    let clash = issued(&campaign, "u-1", 0);
    let fits = issued(&campaign, "u-2", 1);
    let batch = vec![fits.clone(), clash.clone()];
    match env.store.persist_at(&campaign, Some(0), &batch).await {
        Err(StoreError::Superseded {
            entry_epoch,
            record_epoch,
            unrecorded,
        }) => {
            assert_eq!((entry_epoch, record_epoch), (0, 1));
            assert_eq!(unrecorded, batch);
        }
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert_eq!(recorded_rows(&env.store, &campaign).await?, 1);
    assert_eq!(env.store.epoch(&campaign).await?, Some(1));

    // Another worker's entry of the same stale state: superseded too, the epoch moves no further.
    let other = issued(&campaign, "u-3", 1);
    match env
        .store
        .persist_at(&campaign, Some(0), std::slice::from_ref(&other))
        .await
    {
        Err(StoreError::Superseded { record_epoch, .. }) => assert_eq!(record_epoch, 1),
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert_eq!(env.store.epoch(&campaign).await?, Some(1));

    // Unstamped decisions (before epochs existed) cannot be handed back: a clash is still
    // recorded `sold_out`, as before.
    let unstamped = issued(&campaign, "u-4", 0);
    let persisted = env.store.persist(&campaign, &[unstamped]).await?;
    assert_eq!(persisted.refused.len(), 1);
    assert_eq!(persisted.refused[0].recorded, RequestStatus::SoldOut);
    env.cleanup().await
}
