//! The real `rushline` binary against a real API (in-process, port 0) on real Redis and
//! PostgreSQL, each test with its own database and key namespace.

use std::process::{Output, Stdio};
use std::time::Duration;

use rushline_testkit::TestEnv;
use rushline_testkit::app::{TestApp, spawn_app};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ADMIN_TOKEN: &str = "cli-test-token";

/// A running API (no workers) and the environment it uses.
struct Api {
    url: String,
    app: TestApp,
}

async fn spawn_api() -> Api {
    let app = spawn_app(ADMIN_TOKEN, 0).await.expect("start the API");
    Api {
        url: app.url.clone(),
        app,
    }
}

impl Api {
    /// `rushline` pointed at this API with the admin token, and nothing else from the
    /// environment that could steer it.
    fn rushline(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rushline"));
        command
            .args(args)
            .env_remove("RUSHLINE_DATABASE_URL")
            .env("RUSHLINE_API_URL", &self.url)
            .env("RUSHLINE_ADMIN_TOKEN", ADMIN_TOKEN)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.rushline(args).output().await.expect("run rushline")
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "rushline {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs with `--json` and parses the answer.
    async fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_str(self.ok(&with_json).await.trim()).expect("json output")
    }

    async fn stop(self) {
        self.app.stop().await.expect("stop the API");
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn help_teaches_the_commands() {
    let output = Command::new(env!("CARGO_BIN_EXE_rushline"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "A drop, start to finish",
        "RUSHLINE_API_URL",
        "RUSHLINE_ADMIN_TOKEN",
        "campaign",
        "stats",
        "migrate",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_rushline"))
        .args(["campaign", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["create", "show", "list", "close", "add-stock"] {
        assert!(help.contains(command), "{command}: {help}");
    }
    // Misuse is a usage error (exit 2) that says what is missing.
    let output = Command::new(env!("CARGO_BIN_EXE_rushline"))
        .args(["campaign", "create", "--name", "x"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--stock"), "{}", stderr(&output));
}

#[tokio::test]
async fn a_campaign_from_creation_to_close() {
    let api = spawn_api().await;
    let created = api
        .ok(&[
            "campaign",
            "create",
            "--id",
            "concert-2026",
            "--name",
            "Concert presale",
            "--stock",
            "10",
        ])
        .await;
    assert!(
        created.contains("concert-2026  Concert presale"),
        "{created}"
    );
    assert!(created.contains("status     open"), "{created}");
    let shown = api.json(&["campaign", "show", "concert-2026"]).await;
    assert_eq!(shown["stock"], 10);
    assert_eq!(shown["status"], "open");

    let grown = api
        .json(&["campaign", "add-stock", "concert-2026", "5"])
        .await;
    assert_eq!(
        (grown["stock"].as_u64(), grown["remaining"].as_u64()),
        (Some(15), Some(15))
    );

    for id in ["b-drop", "a-drop"] {
        api.ok(&[
            "campaign", "create", "--id", id, "--name", "Other", "--stock", "1",
        ])
        .await;
    }
    let listed = api.ok(&["campaign", "list"]).await;
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("ID"), "{listed}");
    let ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["a-drop", "b-drop", "concert-2026"]);
    // One per page, every page.
    let paged = api.ok(&["campaign", "list", "--limit", "1", "--all"]).await;
    assert_eq!(paged.lines().count(), 4, "{paged}");
    let first = api.json(&["campaign", "list", "--limit", "1"]).await;
    assert_eq!(first["next"], "a-drop");

    let closed = api.json(&["campaign", "close", "concert-2026"]).await;
    assert_eq!(closed["status"], "closed");
    // The API's explanation reaches the operator, with a failing exit code.
    let refused = api
        .run(&["campaign", "add-stock", "concert-2026", "5"])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("closed"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("409"), "{}", stderr(&refused));
    api.stop().await;
}

#[tokio::test]
async fn a_campaign_created_instant_shows_its_decide_mode() {
    let api = spawn_api().await;
    let created = api
        .ok(&[
            "campaign", "create", "--id", "flash", "--name", "Flash", "--stock", "3", "--decide",
            "instant",
        ])
        .await;
    assert!(created.contains("decide     instant"), "{created}");
    let shown = api.json(&["campaign", "show", "flash"]).await;
    assert_eq!(shown["decide"], "instant");
    api.ok(&[
        "campaign", "create", "--id", "slow", "--name", "Slow", "--stock", "3",
    ])
    .await;
    let listed = api.ok(&["campaign", "list"]).await;
    let mode = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split_whitespace().nth(5))
            .map(str::to_owned)
    };
    assert!(
        listed.lines().next().unwrap().contains("DECIDE"),
        "{listed}"
    );
    assert_eq!(mode("flash").as_deref(), Some("instant"), "{listed}");
    assert_eq!(mode("slow").as_deref(), Some("queued"), "{listed}");
    // Anything else is a usage error before any request is sent.
    let bad = api
        .run(&[
            "campaign", "create", "--name", "Bad", "--stock", "3", "--decide", "later",
        ])
        .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("instant"), "{}", stderr(&bad));
    api.stop().await;
}

#[tokio::test]
async fn errors_say_what_to_do() {
    let api = spawn_api().await;
    let unknown = api.run(&["campaign", "show", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no such campaign"),
        "{}",
        stderr(&unknown)
    );

    let no_token = api
        .rushline(&["campaign", "list"])
        .env_remove("RUSHLINE_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(no_token.status.code(), Some(1));
    assert!(
        stderr(&no_token).contains("RUSHLINE_ADMIN_TOKEN"),
        "{}",
        stderr(&no_token)
    );

    let wrong_token = api.run(&["campaign", "list", "--token", "guess"]).await;
    assert!(
        stderr(&wrong_token).contains("401"),
        "{}",
        stderr(&wrong_token)
    );

    let bad_input = api
        .run(&["campaign", "create", "--name", "x", "--stock", "0"])
        .await;
    assert!(
        stderr(&bad_input).contains("stock"),
        "{}",
        stderr(&bad_input)
    );

    let unreachable = api
        .run(&["campaign", "show", "x", "--api", "http://127.0.0.1:1"])
        .await;
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable).contains("http://127.0.0.1:1"),
        "{}",
        stderr(&unreachable)
    );
    api.stop().await;
}

#[tokio::test]
async fn stats_show_the_pipeline_and_watch_until_ctrl_c() {
    let api = spawn_api().await;
    api.ok(&[
        "campaign", "create", "--id", "drop", "--name", "Drop", "--stock", "5",
    ])
    .await;
    let http = reqwest::Client::new();
    for user in ["u-1", "u-2", "u-3"] {
        let response = http
            .post(format!("{}/v1/campaigns/drop/requests", api.url))
            .json(&serde_json::json!({"user_id": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    }
    // No worker runs: all three wait in the queue.
    let text = api.ok(&["stats", "drop"]).await;
    assert!(text.contains("queued     3"), "{text}");
    assert!(text.contains("persisted  issued 0"), "{text}");
    let json = api.json(&["stats", "drop"]).await;
    assert_eq!(json["queued"], 3);

    // Bounded watch: one JSON line per refresh; rates from the second on.
    let watched = api
        .ok(&["stats", "drop", "--watch", "--count", "2", "--json"])
        .await;
    let lines: Vec<Value> = watched
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{watched}");
    assert!(lines[0].get("rates_per_second").is_none());
    assert_eq!(lines[1]["rates_per_second"]["issued"], 0.0);

    // Unbounded watch ends cleanly on Ctrl-C.
    let mut watch = api
        .rushline(&["stats", "drop", "--watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .expect("first refresh within 10 s")
        .unwrap()
        .unwrap();
    assert!(first.starts_with("drop  open"), "{first}");
    let pid = watch.id().unwrap().to_string();
    let interrupted = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("exits within 10 s of Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");
    api.stop().await;
}

#[tokio::test]
async fn migrate_prepares_an_empty_database() {
    let env = TestEnv::unmigrated().await.unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rushline"))
        .arg("migrate")
        .env("RUSHLINE_DATABASE_URL", &env.database_url)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('campaigns', 'requests')",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(tables, 2);
    // Again: nothing to do, still fine.
    let again = Command::new(env!("CARGO_BIN_EXE_rushline"))
        .args(["migrate", "--database-url", &env.database_url])
        .output()
        .await
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_waiting_room_is_created_shown_paused_and_rerated() {
    let api = spawn_api().await;
    let created = api
        .ok(&[
            "campaign",
            "create",
            "--id",
            "line",
            "--name",
            "Line",
            "--stock",
            "3",
            "--admit-per-second",
            "5",
            "--prequeue-secs",
            "60",
            "--proof-of-work-bits",
            "12",
        ])
        .await;
    assert!(
        created.contains("waiting    5/s   pass 600 s   pre-queue 60 s   proof of work 12 bits"),
        "{created}"
    );
    let shown = api.ok(&["campaign", "show", "line"]).await;
    assert!(
        shown.contains("queue      joined 0   admitted through 0"),
        "{shown}"
    );
    assert!(shown.contains("proof of work 12 bits"), "{shown}");
    let paused = api.ok(&["campaign", "admission", "line", "--pause"]).await;
    assert!(paused.contains("PAUSED"), "{paused}");
    let resumed = api
        .json(&["campaign", "admission", "line", "--rate", "7", "--resume"])
        .await;
    assert_eq!(resumed["waiting_room"]["admit_per_second"], 7, "{resumed}");
    assert!(resumed["queue"].get("paused").is_none(), "{resumed}");

    // Usage errors before any request: nothing to change, or both pause and resume.
    for args in [
        &["campaign", "admission", "line"][..],
        &["campaign", "admission", "line", "--pause", "--resume"][..],
        &[
            "campaign",
            "create",
            "--name",
            "x",
            "--stock",
            "1",
            "--pass-secs",
            "60",
        ][..],
    ] {
        assert_eq!(api.run(args).await.status.code(), Some(2), "{args:?}");
    }
    // The API's refusals: no waiting room, a rate out of range.
    api.ok(&[
        "campaign", "create", "--id", "plain", "--name", "Plain", "--stock", "1",
    ])
    .await;
    let refused = api
        .run(&["campaign", "admission", "plain", "--pause"])
        .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("waiting room"),
        "{}",
        stderr(&refused)
    );
    let refused = api
        .run(&["campaign", "admission", "line", "--rate", "0"])
        .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("admit_per_second"),
        "{}",
        stderr(&refused)
    );
    api.stop().await;
}

#[test]
fn ticket_key_new_prints_a_fresh_key_the_api_reads() {
    let new_key = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rushline"))
            .args(["ticket-key", "new"])
            .output()
            .expect("run rushline");
        assert!(output.status.success());
        let key = String::from_utf8(output.stdout).expect("utf-8");
        let kid = String::from_utf8(output.stderr).expect("utf-8");
        (key.trim().to_owned(), kid.trim().to_owned())
    };
    let (first, first_kid) = new_key();
    let (second, _) = new_key();
    assert_ne!(first, second, "each key is fresh");
    let list = format!("{first},{second}");
    let config = rushline_api::Config::from_lookup(|name| {
        (name == "RUSHLINE_TICKET_KEYS").then(|| list.clone())
    })
    .expect("the API reads what the CLI prints");
    let keys = config.ticket_keys.expect("keys");
    assert_eq!(first_kid, format!("kid {}", keys.current().kid()));
}

#[tokio::test]
async fn a_campaign_created_with_shards_shows_them() {
    let api = spawn_api().await;
    let created = api
        .ok(&[
            "campaign", "create", "--id", "wide", "--name", "Wide", "--stock", "9", "--shards", "3",
        ])
        .await;
    assert!(created.contains("shards     3"), "{created}");
    assert_eq!(api.json(&["campaign", "show", "wide"]).await["shards"], 3);
    api.ok(&[
        "campaign", "create", "--id", "one", "--name", "One", "--stock", "1",
    ])
    .await;
    assert_eq!(api.json(&["campaign", "show", "one"]).await["shards"], 1);
    let listed = api.ok(&["campaign", "list"]).await;
    let shards = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split_whitespace().nth(6))
            .map(str::to_owned)
    };
    assert!(
        listed.lines().next().unwrap().contains("SHARDS"),
        "{listed}"
    );
    assert_eq!(shards("wide").as_deref(), Some("3"), "{listed}");
    assert_eq!(shards("one").as_deref(), Some("1"), "{listed}");
    // The API's rule, reported as its 400.
    let refused = api
        .run(&[
            "campaign", "create", "--name", "Bad", "--stock", "3", "--shards", "65",
        ])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("shards"), "{}", stderr(&refused));
    api.stop().await;
}
