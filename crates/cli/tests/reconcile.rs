//! `rushline reconcile`, the real binary, against a Redis that came back *older* than the record
//! (issue 10, §5): a snapshot of the campaign's keys taken before some decisions (DUMP) is put
//! back after those decisions were persisted (RESTORE), as a host crash under `everysec` or a
//! failover to a lagging replica would leave it.

use std::process::Output;

use rushline_domain::{CampaignId, Decision, RequestId, UserId};
use rushline_queue::{AcceptItem, Queue};
use rushline_testkit::TestEnv;
use serde_json::Value;

async fn reconcile(env: &TestEnv, args: &[&str]) -> Output {
    env.tokio_command(env!("CARGO_BIN_EXE_rushline"))
        .arg("reconcile")
        .args(args)
        .arg("--json")
        .output()
        .await
        .expect("run rushline reconcile")
}

fn reports(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn fields(differences: &Value) -> Vec<String> {
    differences
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect()
}

/// Accepts `users`, decides them and persists them as a worker would.
async fn decide_and_persist(env: &TestEnv, queue: &Queue, campaign: &CampaignId, users: &[&str]) {
    let items: Vec<AcceptItem> = users
        .iter()
        .map(|u| AcceptItem {
            request_id: RequestId::new_for(campaign),
            user_id: UserId::parse(*u).unwrap(),
            idempotency_key: None,
            admitted: false,
        })
        .collect();
    queue.accept(campaign, &items).await.unwrap();
    queue.decide(campaign, 256).await.unwrap().expect("warm");
    let entries = queue
        .read_log(campaign, "worker", 100)
        .await
        .unwrap()
        .entries;
    let decisions: Vec<Decision> = entries.iter().flat_map(|e| e.decisions.clone()).collect();
    let persisted = env.store.persist(campaign, &decisions).await.unwrap();
    assert!(persisted.refused.is_empty());
    queue.ack(campaign, &entries).await.unwrap();
}

#[tokio::test]
async fn reconcile_finds_a_redis_behind_the_record_and_repairs_it() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env.warm_open_campaign(&queue, 10).await.unwrap();
    let keys = queue.keys().campaign(&campaign);
    let mut redis = env.redis().await.unwrap();

    // In line: nothing to report, exit 0.
    let clean = reconcile(&env, &["--campaign", campaign.as_str()]).await;
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(reports(&clean)[0]["differences"], serde_json::json!([]));

    // The older copy: the campaign's state and log before three decisions.
    let mut snapshot = Vec::new();
    for key in [&keys.meta, &keys.log] {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        snapshot.push((key.clone(), dump));
    }
    decide_and_persist(&env, &queue, &campaign, &["ann", "bob", "cat"]).await;
    let high = env
        .store
        .recorded_high_seq(&campaign)
        .await
        .unwrap()
        .expect("issued rows");
    let _: () = redis::cmd("DEL")
        .arg(&keys.holders)
        .query_async(&mut redis)
        .await
        .unwrap();
    for (key, dump) in &snapshot {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(dump.as_slice())
            .arg("REPLACE")
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    // Detected and reported, field by field; exit 1.
    let behind = reconcile(&env, &["--campaign", campaign.as_str()]).await;
    assert!(!behind.status.success());
    let report = &reports(&behind)[0];
    let found = fields(&report["differences"]);
    for field in ["behind", "issued", "remaining", "holders_missing"] {
        assert!(found.iter().any(|f| f == field), "{field} not in {report}");
    }
    assert!(report["repaired"].is_null());

    // Repaired: rebuilt from the record, nothing left to report.
    let repaired = reconcile(&env, &["--campaign", campaign.as_str(), "--repair"]).await;
    assert!(
        repaired.status.success(),
        "{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    let report = &reports(&repaired)[0];
    assert_eq!(report["repaired"], true);
    assert_eq!(report["remaining_differences"], serde_json::json!([]));
    let state = queue.redis_campaign(&campaign).await.unwrap();
    assert_eq!((state.issued, state.remaining), (Some(3), Some(7)));
    assert!(
        state.seq.unwrap() > high,
        "sequence continues past every recorded one"
    );
    let holders = queue.redis_holders(&campaign).await.unwrap();
    assert_eq!(holders.len(), 3);

    // And it decides on correctly: ann holds a coupon; dan gets a fresh number.
    decide_and_persist(&env, &queue, &campaign, &["ann", "dan"]).await;
    let audit = rushline_testkit::audit(&env.store, &campaign)
        .await
        .unwrap();
    audit.assert_guarantees();
    assert_eq!(audit.issued_rows, 4);
    let again = reconcile(&env, &["--campaign", campaign.as_str()]).await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    env.cleanup().await.unwrap();
}
