//! The built `rushline-api` binary refuses unusable configuration at start-up, naming the
//! variable, and documents every variable in `--help`. Nothing here needs Redis or PostgreSQL:
//! both cases end before the API connects to anything. The shared variables (Redis, PostgreSQL,
//! namespace, log bound, status TTL, log format) are checked by testkit's `ServerBinary`.

use rushline_testkit::binary::ServerBinary;

fn api() -> ServerBinary {
    ServerBinary::new(env!("CARGO_BIN_EXE_rushline-api"))
}

#[test]
fn an_out_of_range_value_stops_start_up_naming_the_variable() {
    api().assert_refuses(&[
        ("RUSHLINE_ACCEPT_BATCH", "10000"),
        ("RUSHLINE_HTTP_MAX_CONNECTIONS", "0"),
        ("RUSHLINE_DB_MAX_CONNECTIONS", "many"),
    ]);
}

#[test]
fn an_unusable_rate_limit_or_proxy_list_stops_start_up_with_exit_2_naming_the_variable() {
    for (name, value) in [
        ("RUSHLINE_RATE_LIMIT_USER", "10/hour"),
        ("RUSHLINE_RATE_LIMIT_USER", "0/s"),
        ("RUSHLINE_RATE_LIMIT_IP", "lots"),
        ("RUSHLINE_RATE_LIMIT_IP", "-5/min"),
        ("RUSHLINE_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("RUSHLINE_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"),
    ] {
        let out = api().run(&[], &[(name, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[test]
fn unusable_ticket_keys_stop_start_up_with_exit_2_naming_the_variable_not_the_secret() {
    // A real key, then a typo: the error must not print the good key.
    let secret = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    for (name, value) in [
        (
            "RUSHLINE_TICKET_KEYS",
            format!("{secret},nWGxne_9WmC6hEr0kuwsxERJ"),
        ),
        ("RUSHLINE_TICKET_KEYS", format!("{secret},{secret}")),
        (
            "RUSHLINE_TICKET_KEYS",
            "-----BEGIN PRIVATE KEY-----".to_owned(),
        ),
        ("RUSHLINE_TICKET_CACHE_ENTRIES", "many".to_owned()),
    ] {
        let out = api().run(&[], &[(name, value.as_str())]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
        assert!(!stderr.contains(secret), "the key leaked: {stderr}");
    }
}

#[test]
fn help_lists_every_variable_with_its_default() {
    api().assert_help_lists(
        &[
            "RUSHLINE_HTTP_ADDR",
            "RUSHLINE_ADMIN_TOKEN",
            "RUSHLINE_ACCEPT_BATCH",
            "RUSHLINE_ACCEPT_IN_FLIGHT",
            "RUSHLINE_MAX_QUEUE",
            "RUSHLINE_DB_MAX_CONNECTIONS",
            "RUSHLINE_BACKEND_TIMEOUT_MS",
            "RUSHLINE_HTTP_HEADER_TIMEOUT_MS",
            "RUSHLINE_HTTP_IDLE_TIMEOUT_MS",
            "RUSHLINE_HTTP_BODY_TIMEOUT_MS",
            "RUSHLINE_HTTP_MAX_CONNECTIONS",
            "RUSHLINE_RATE_LIMIT_USER",
            "RUSHLINE_RATE_LIMIT_IP",
            "RUSHLINE_TRUSTED_PROXIES",
            "RUSHLINE_TICKET_KEYS",
            "RUSHLINE_TICKET_CACHE_ENTRIES",
        ],
        &[
            "[default: 127.0.0.1:8080]",
            "[default: 256]",
            "[default: 30000]",
            "[default: 100000]",
        ],
    );
}
