//! The built `rushline-api` binary refuses unusable configuration at start-up, naming the
//! variable, and documents every variable in `--help`. Nothing here needs Redis or PostgreSQL:
//! both cases end before the API connects to anything.

use std::process::Output;
use std::time::Duration;

/// Runs the built binary; one still running after 30 s took its configuration (and is serving),
/// which is a failure here.
fn api(args: &[&str], vars: &[(&str, &str)]) -> Output {
    rushline_testkit::binary::run_to_exit(
        env!("CARGO_BIN_EXE_rushline-api"),
        args,
        vars,
        Duration::from_secs(30),
    )
}

#[test]
fn an_out_of_range_value_stops_start_up_naming_the_variable() {
    for (name, value) in [
        ("RUSHLINE_ACCEPT_BATCH", "10000"),
        ("RUSHLINE_HTTP_MAX_CONNECTIONS", "0"),
        ("RUSHLINE_MAX_LOG_ENTRIES", "0"),
        ("RUSHLINE_DB_MAX_CONNECTIONS", "many"),
    ] {
        let out = api(&[], &[(name, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} started");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
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
        let out = api(&[], &[(name, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let out = api(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "RUSHLINE_REDIS_URL",
        "RUSHLINE_DATABASE_URL",
        "RUSHLINE_KEY_NAMESPACE",
        "RUSHLINE_MAX_LOG_ENTRIES",
        "RUSHLINE_STATUS_TTL_SECS",
        "RUSHLINE_LOG_FORMAT",
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
    ] {
        assert!(help.contains(name), "{name} missing from --help:\n{help}");
    }
    for default in [
        "[default: redis://127.0.0.1:6379]",
        "[default: postgres://rushline:rushline@127.0.0.1:5432/rushline]",
        "[default: 127.0.0.1:8080]",
        "[default: 256]",
        "[default: 30000]",
    ] {
        assert!(
            help.contains(default),
            "{default} missing from --help:\n{help}"
        );
    }
}
