//! The Redis durability rushline ships: `appendfsync always` wherever it starts or configures
//! Redis (README.md, "Redis durability"). With `everysec`, a SIGKILL of redis-server can lose
//! requests already answered `202`.

fn repository_file(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

#[test]
fn setup_and_compose_ship_appendfsync_always() {
    let setup = repository_file("scripts/setup");
    assert!(
        setup.contains("--appendonly yes --appendfsync always"),
        "scripts/setup must start redis-server with appendfsync always"
    );
    assert!(
        setup.contains("CONFIG SET appendfsync always"),
        "scripts/setup must reconfigure a package-started Redis to appendfsync always"
    );
    let compose = repository_file("docker-compose.yml");
    assert!(
        compose.contains(r#""--appendfsync", "always""#),
        "docker-compose.yml must run Redis with appendfsync always"
    );
    for (name, text) in [("scripts/setup", &setup), ("docker-compose.yml", &compose)] {
        assert!(
            !text.contains("appendfsync everysec") && !text.contains(r#""everysec""#),
            "{name} still ships everysec"
        );
    }
}
