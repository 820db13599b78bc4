//! The ceiling in a process of its own: the built `rushline-loadtest ceiling-server` answers like
//! the in-process one, and goes away with its handle.

use std::path::Path;

use rushline_loadtest::ceiling::{CeilingProcess, accept_body};

#[tokio::test]
async fn the_ceiling_process_answers_202_with_a_body_of_the_asked_size_and_stops_when_dropped() {
    let exe = Path::new(env!("CARGO_BIN_EXE_rushline-loadtest"));
    let process = CeilingProcess::spawn_from(exe, 104)
        .await
        .expect("ceiling process");
    let pid = process.pid().expect("running");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/v1/campaigns/c/requests", process.base()))
        .body(r#"{"user_id":"u"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    assert!(response.headers().contains_key("location"));
    assert_eq!(response.text().await.expect("body"), accept_body(104));

    let proc_dir = format!("/proc/{pid}");
    drop(process);
    // kill_on_drop sends SIGKILL; the process is gone (or a zombie about to be reaped) shortly.
    let gone = async {
        loop {
            match std::fs::read_to_string(format!("{proc_dir}/stat")) {
                Err(_) => return,
                Ok(stat) if stat.split_whitespace().nth(2) == Some("Z") => return,
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), gone)
        .await
        .expect("the ceiling process ends when its handle is dropped");
}
