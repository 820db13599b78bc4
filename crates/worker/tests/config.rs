//! The built `rushline-worker` binary refuses unusable configuration at start-up, naming the
//! variable, and documents every variable in `--help`. Nothing here needs Redis or PostgreSQL:
//! both cases end before the worker connects to anything. The shared variables (Redis,
//! PostgreSQL, namespace, log bound, status TTL, log format) are checked by testkit's
//! `ServerBinary`.

use rushline_testkit::binary::ServerBinary;

fn worker() -> ServerBinary {
    ServerBinary::new(env!("CARGO_BIN_EXE_rushline-worker"))
}

#[test]
fn an_out_of_range_value_stops_start_up_naming_the_variable() {
    worker().assert_refuses(&[
        ("RUSHLINE_DECIDE_BATCH", "10000"),
        ("RUSHLINE_DECIDE_IN_FLIGHT", "17"),
        ("RUSHLINE_SWEEP_MS", "0"),
        ("RUSHLINE_WORKER_METRICS_ADDR", "nowhere"),
    ]);
}

#[test]
fn help_lists_every_variable_with_its_default() {
    worker().assert_help_lists(
        &[
            "RUSHLINE_DECIDE_BATCH",
            "RUSHLINE_DECIDE_IN_FLIGHT",
            "RUSHLINE_PERSIST_ENTRIES",
            "RUSHLINE_CLAIM_IDLE_MS",
            "RUSHLINE_SWEEP_MS",
            "RUSHLINE_BACKEND_TIMEOUT_MS",
            "RUSHLINE_SHUTDOWN_GRACE_MS",
            "RUSHLINE_DB_MAX_CONNECTIONS",
            "RUSHLINE_WORKER_METRICS_ADDR",
        ],
        &[
            "[default: 256]",
            "[default: 5000]",
            "[default: 127.0.0.1:9091]",
            "[default: 8192]",
        ],
    );
}
