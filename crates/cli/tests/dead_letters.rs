//! `rushline dead-letters list|replay`, the real binary, against dead letters set aside in a
//! real Redis the way a worker does (`Queue::dead_letter`) and a real PostgreSQL record.

use std::process::Output;

use rushline_domain::{CampaignId, RequestId};
use rushline_queue::{DeadLetterReason, Queue};
use rushline_testkit::TestEnv;
use serde_json::Value;

async fn rushline(env: &TestEnv, args: &[&str]) -> Output {
    env.tokio_command(env!("CARGO_BIN_EXE_rushline"))
        .arg("dead-letters")
        .args(args)
        .output()
        .await
        .expect("run rushline dead-letters")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

/// Appends `lines` to `campaign`'s log, takes it as a worker would and dead-letters it.
async fn dead_letter(
    queue: &Queue,
    redis: &mut rushline_queue::RedisConnection,
    campaign: &CampaignId,
    lines: &str,
    reason: DeadLetterReason,
) -> String {
    let log = queue.keys().campaign(campaign).log;
    let entry: String = redis::cmd("XADD")
        .arg(&log)
        .arg("*")
        .arg("d")
        .arg(lines)
        .query_async(redis)
        .await
        .unwrap();
    assert!(
        queue
            .dead_letter(campaign, &entry, reason, "test error", "worker-test")
            .await
            .unwrap()
    );
    entry
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_into_their_log_once_the_campaign_exists() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let mut redis = env.redis().await.unwrap();
    let live = env.warm_open_campaign(&queue, 10).await.unwrap();
    let ghost = CampaignId::parse("ghost-campaign").unwrap();
    dead_letter(
        &queue,
        &mut redis,
        &live,
        "garbage",
        DeadLetterReason::Unparsable,
    )
    .await;
    let line = format!(
        "{}\tuser-1\ts\t\t1764511200000\t",
        RequestId::new_for(&ghost)
    );
    dead_letter(
        &queue,
        &mut redis,
        &ghost,
        &line,
        DeadLetterReason::UnknownCampaign,
    )
    .await;

    let text = stdout(&rushline(&env, &["list"]).await);
    assert!(
        text.contains("ghost-campaign") && text.contains("unknown_campaign"),
        "{text}"
    );
    assert!(
        text.contains("unparsable") && text.contains("2 dead letters"),
        "{text}"
    );
    let listed: Vec<Value> = stdout(&rushline(&env, &["list", "--json"]).await)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    let ghost_letter = listed
        .iter()
        .find(|l| l["campaign"] == "ghost-campaign")
        .unwrap();
    assert_eq!(ghost_letter["decisions"], 1);
    assert_eq!(ghost_letter["raw"]["d"], line.as_str());
    assert_eq!(ghost_letter["worker"], "worker-test");
    let id = ghost_letter["id"].as_str().unwrap();
    // Stream ids are per campaign: the other dead letter, set aside in the same millisecond,
    // can carry the same id, so name the campaign.
    let replay = ["replay", id, "--campaign", "ghost-campaign"];

    // Not in the record yet: refused, and the dead letter stays.
    let refused = rushline(&env, &replay).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no such campaign in PostgreSQL"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(queue.dead_letters(&ghost).await.unwrap().len(), 1);
    assert!(!rushline(&env, &["replay", "1-1"]).await.status.success());

    // Fixed: the campaign is created; the replay rebuilds its Redis state and re-queues the entry.
    env.create_open_campaign(&ghost, 10).await.unwrap();
    let text = stdout(&rushline(&env, &replay).await);
    assert!(text.contains("1 dead letters replayed"), "{text}");
    assert!(queue.dead_letters(&ghost).await.unwrap().is_empty());
    let read = queue.read_log(&ghost, "test", 10).await.unwrap();
    assert_eq!(read.entries.len(), 1);
    assert_eq!(read.entries[0].decisions.len(), 1);
    // The other one is still listed, and only it.
    let rest: Vec<Value> = stdout(&rushline(&env, &["list", "--json"]).await)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["campaign"], live.as_str());

    env.cleanup().await.unwrap();
}
