//! `deploy/`: the Grafana dashboard parses and queries only metrics the code exports; Prometheus
//! scrapes both programs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rushline_api::telemetry as api;
use rushline_worker::telemetry as worker;
use serde_json::Value;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// Every series name a query may use: counters and gauges as named, histograms through their
/// `_bucket`, `_sum` and `_count` series.
fn exported() -> BTreeSet<String> {
    let plain = [
        api::REQUESTS,
        api::ACCEPTED,
        api::REFUSED,
        api::QUEUE_DEPTH,
        api::PERSISTENCE_LAG,
        api::BACKEND_ERRORS,
        api::WAITERS,
        api::WAITING_ROOM_JOINED,
        api::WAITING_ROOM_EXPIRED,
        api::WAITING_ROOM_POLLS,
        api::WAITING_ROOM_ADMITTED,
        api::WAITING_ROOM_WAITING,
        api::WAITING_ROOM_OUTFLOW,
        worker::DECISIONS,
        worker::PERSISTED_ROWS,
        worker::ROLLBACKS,
        worker::BACKEND_ERRORS,
        worker::DECIDE_PAUSED,
        worker::DEAD_LETTERS,
        worker::DEAD_LETTER_ENTRIES,
    ];
    let histograms = [
        api::HTTP_DURATION,
        worker::DECIDE_BATCH,
        worker::PERSIST_BATCH,
    ];
    plain
        .iter()
        .map(|name| (*name).to_owned())
        .chain(
            histograms.iter().flat_map(|name| {
                ["_bucket", "_sum", "_count"].map(|suffix| format!("{name}{suffix}"))
            }),
        )
        .collect()
}

/// Every `expr` anywhere in `value` (panels nest in rows).
fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            map.values().for_each(|v| exprs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The `rushline_…` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("rushline_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let path = deploy("grafana/rushline-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].is_u64());
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "every panel has a unique id");

    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    let exported = exported();
    let mut used = BTreeSet::new();
    for expr in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "query uses no rushline metric: {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{expr} queries {name}, which rushline does not export"
            );
            used.insert(name);
        }
    }
    // What the issue asks the dashboard to show.
    for needed in [
        api::ACCEPTED,
        api::REFUSED,
        "rushline_http_request_duration_seconds_bucket",
        api::QUEUE_DEPTH,
        api::PERSISTENCE_LAG,
        worker::DECISIONS,
        api::BACKEND_ERRORS,
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn prometheus_scrapes_the_api_and_the_workers() {
    let config = std::fs::read_to_string(deploy("prometheus.yml")).expect("read prometheus.yml");
    for needle in [
        "job_name: rushline-api",
        "job_name: rushline-worker",
        "names: [\"api\"]",
        "names: [\"worker\"]",
        "port: 8080",
        "port: 9091",
    ] {
        assert!(config.contains(needle), "prometheus.yml lacks {needle}");
    }
    let compose = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml"),
    )
    .expect("read docker-compose.yml");
    for needle in [
        "RUSHLINE_WORKER_METRICS_ADDR: 0.0.0.0:9091",
        "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle}"
        );
    }
}

#[test]
fn the_alert_rules_are_loaded_and_query_only_exported_metrics() {
    let config = std::fs::read_to_string(deploy("prometheus.yml")).expect("read prometheus.yml");
    assert!(config.contains("rule_files:") && config.contains("- alerts.yml"));
    let compose = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml"),
    )
    .expect("read docker-compose.yml");
    assert!(compose.contains("./deploy/alerts.yml:/etc/prometheus/alerts.yml"));
    let rules = std::fs::read_to_string(deploy("alerts.yml")).expect("read alerts.yml");
    let exported = exported();
    let exprs: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .collect();
    assert!(!exprs.is_empty());
    for expr in exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "alert queries {name}, which nothing exports"
            );
        }
    }
}
