//! `rushline recover`, the real binary, against real PostgreSQL and a Redis namespace emptied
//! the way a Redis that lost its data is.

use std::process::Output;

use rushline_domain::CampaignId;
use rushline_queue::Queue;
use rushline_testkit::TestEnv;
use serde_json::Value;
use uuid::Uuid;

async fn create_campaign(env: &TestEnv, id: &str, stock: u64) -> CampaignId {
    let id = CampaignId::parse(id).unwrap();
    env.create_open_campaign(&id, stock).await.unwrap();
    id
}

/// Records `users` as holding coupons of `campaign`, as persisted decisions would.
async fn record_issued(env: &TestEnv, campaign: &CampaignId, users: &[&str]) {
    for (n, user) in users.iter().enumerate() {
        sqlx::query(
            "INSERT INTO requests (request_id, campaign_id, user_id, status, coupon_code, decided_at)
             VALUES ($1, $2, $3, 'issued', $4, now())",
        )
        .bind(Uuid::new_v4())
        .bind(campaign.as_str())
        .bind(user)
        .bind(format!("RL-0000-000{n}"))
        .execute(env.store.pool())
        .await
        .unwrap();
    }
}

async fn recover(env: &TestEnv, args: &[&str]) -> Output {
    env.tokio_command(env!("CARGO_BIN_EXE_rushline"))
        .arg("recover")
        .args(args)
        .output()
        .await
        .expect("run rushline recover")
}

/// `--json`: one object per campaign, by campaign id.
async fn recover_json(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let output = recover(env, &with_json).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[tokio::test]
async fn recover_rebuilds_what_redis_lost_and_leaves_the_rest() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let sold = create_campaign(&env, "concert", 5).await;
    record_issued(&env, &sold, &["ann", "bob"]).await;
    let fresh = create_campaign(&env, "festival", 3).await;
    queue.warm(&fresh, &env.store).await.unwrap();
    queue.warm(&sold, &env.store).await.unwrap();
    // Redis loses everything of this deployment; then "festival" is touched again (by an API
    // serving a read, say) before the operator runs recover.
    assert!(env.flush_redis().await.unwrap() > 0);
    queue.warm(&fresh, &env.store).await.unwrap();
    assert!(queue.campaign_state(&sold).await.unwrap().is_none());

    let report = recover_json(&env, &[]).await;
    assert_eq!(report.len(), 2, "{report:?}");
    let concert = &report[0];
    assert_eq!(concert["campaign"], "concert");
    assert_eq!(concert["redis"], "rebuilt");
    assert_eq!(concert["stock"], 5);
    assert_eq!(concert["issued"], 2);
    assert_eq!(concert["remaining"], 3);
    assert_eq!(concert["holders"], 2);
    assert_eq!(concert["queued"], 0);
    assert_eq!(concert["log_entries"], 0);
    let festival = &report[1];
    assert_eq!(festival["campaign"], "festival");
    assert_eq!(festival["redis"], "already_warm");
    assert_eq!(festival["remaining"], 3);
    assert_eq!(festival["holders"], 0);

    // Redis holds it now, exactly as the record says, and workers will sweep it again.
    let state = queue.campaign_state(&sold).await.unwrap().expect("warm");
    assert_eq!((state.stock, state.issued, state.remaining), (5, 2, 3));
    assert!(queue.campaigns().await.unwrap().contains(&sold));

    // Repeating changes nothing.
    let again = recover_json(&env, &[]).await;
    assert!(
        again.iter().all(|c| c["redis"] == "already_warm"),
        "{again:?}"
    );

    // One campaign, for people.
    env.flush_redis().await.unwrap();
    let output = recover(&env, &["--campaign", "concert"]).await;
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("CAMPAIGN") && text.contains("HOLDERS"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("concert"))
        .unwrap_or_else(|| panic!("{text}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        ["concert", "rebuilt", "5", "2", "3", "2", "0", "0"]
    );
    assert!(
        text.contains("1 campaigns: 0 already warm, 1 rebuilt"),
        "{text}"
    );
    assert!(
        queue.campaign_state(&fresh).await.unwrap().is_none(),
        "only --campaign is touched"
    );

    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn recover_says_when_a_campaign_does_not_exist() {
    let env = TestEnv::new().await.unwrap();
    let output = recover(&env, &["--campaign", "no-such"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no-such: no such campaign in PostgreSQL"),
        "{stderr}"
    );
    let output = recover(&env, &["--campaign", "Not An Id"]).await;
    assert_eq!(output.status.code(), Some(1));
    env.cleanup().await.unwrap();
}
