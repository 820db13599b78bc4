//! The built `rushline-worker` binary refuses unusable configuration at start-up, naming the
//! variable, and documents every variable in `--help`. Nothing here needs Redis or PostgreSQL:
//! both cases end before the worker connects to anything.

use std::process::Output;
use std::time::Duration;

/// Runs the built binary; one still running after 30 s took its configuration (and is serving),
/// which is a failure here.
fn worker(args: &[&str], vars: &[(&str, &str)]) -> Output {
    rushline_testkit::binary::run_to_exit(
        env!("CARGO_BIN_EXE_rushline-worker"),
        args,
        vars,
        Duration::from_secs(30),
    )
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
