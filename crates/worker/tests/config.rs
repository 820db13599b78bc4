//! The built `rushline-worker` binary refuses unusable configuration at start-up, naming the
//! variable, and documents every variable in `--help`. Nothing here needs Redis or PostgreSQL:
//! both cases end before the worker connects to anything.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs the built binary; a binary still running after 30 s took its configuration (and is
/// serving), which is a failure here: it is killed and the test fails.
fn worker(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_rushline-worker"))
        .env_clear()
        .envs(vars.iter().copied())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the built rushline-worker starts");
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(Duration::from_secs(30)) {
        Ok(output) => output.expect("rushline-worker's output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("rushline-worker {args:?} with {vars:?} was still running after 30 s");
        }
    }
}

#[test]
fn an_out_of_range_value_stops_start_up_naming_the_variable() {
    for (name, value) in [
        ("RUSHLINE_DECIDE_BATCH", "10000"),
        ("RUSHLINE_DECIDE_IN_FLIGHT", "17"),
        ("RUSHLINE_SWEEP_MS", "0"),
        ("RUSHLINE_MAX_LOG_ENTRIES", "0"),
        ("RUSHLINE_WORKER_METRICS_ADDR", "nowhere"),
    ] {
        let out = worker(&[], &[(name, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} started");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let out = worker(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "RUSHLINE_REDIS_URL",
        "RUSHLINE_DATABASE_URL",
        "RUSHLINE_KEY_NAMESPACE",
        "RUSHLINE_MAX_LOG_ENTRIES",
        "RUSHLINE_STATUS_TTL_SECS",
        "RUSHLINE_LOG_FORMAT",
        "RUSHLINE_DECIDE_BATCH",
        "RUSHLINE_DECIDE_IN_FLIGHT",
        "RUSHLINE_PERSIST_ENTRIES",
        "RUSHLINE_CLAIM_IDLE_MS",
        "RUSHLINE_SWEEP_MS",
        "RUSHLINE_BACKEND_TIMEOUT_MS",
        "RUSHLINE_SHUTDOWN_GRACE_MS",
        "RUSHLINE_DB_MAX_CONNECTIONS",
        "RUSHLINE_WORKER_METRICS_ADDR",
    ] {
        assert!(help.contains(name), "{name} missing from --help:\n{help}");
    }
    for default in [
        "[default: 256]",
        "[default: 5000]",
        "[default: 127.0.0.1:9091]",
        "[default: 8192]",
    ] {
        assert!(
            help.contains(default),
            "{default} missing from --help:\n{help}"
        );
    }
}
