//! What the join's proof of work costs (issue 12, `waiting_room.proof_of_work_bits`): the API's
//! check per join, and a bot's solve on one core with native SHA-256 — the figures the README
//! compares with the page's solve in a browser (`the_page_solves_a_proof_of_work_and_joins_the_line`
//! in crates/api/tests/browser.rs prints that one).
//!
//! - `check`: [`proof::shown`] of a solved header, what every join of such a campaign costs the
//!   API (one SHA-256 of ~60 bytes plus parsing).
//! - `solve`: the search a bot runs natively (the puzzle's text, a counter nonce, SHA-256 until
//!   enough zero bits), averaged over many identities; hashes per second and milliseconds per
//!   identity at 12, 16 and 20 bits.
//!
//! ```sh
//! cargo run --release -p rushline-api --example pow_cost [-- IDENTITIES]
//! ```

use std::hint::black_box;
use std::time::Instant;

use rushline_api::waiting_room::proof;
use sha2::{Digest, Sha256};

fn main() {
    let identities: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let minute = 29_000_000;
    let (header, _) = solve("drop-2026", "user-000123", 16, minute);
    let calls = 200_000;
    let started = Instant::now();
    for _ in 0..calls {
        black_box(proof::shown(black_box(&header), "drop-2026", "user-000123").ok());
    }
    let check = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    println!("check (one join, 16 bits): {check:.2} µs");

    for bits in [12u8, 16, 20] {
        let started = Instant::now();
        let hashes: u64 = (0..identities)
            .map(|n| solve("drop-2026", &format!("bot-{n}"), bits, minute).1)
            .sum();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "solve {bits} bits: {:.1} M hashes/s on one core, {:.2} ms per identity \
             ({identities} identities, {:.0} hashes each on average)",
            hashes as f64 / secs / 1e6,
            secs * 1000.0 / identities as f64,
            hashes as f64 / identities as f64
        );
    }
}

/// A bot's search: the header found and the hashes it took.
fn solve(campaign: &str, user: &str, bits: u8, minute: i64) -> (String, u64) {
    let text = proof::challenge(campaign, user, minute);
    let prefix = Sha256::new().chain_update(&text);
    let mut nonce = String::new();
    for n in 0u64.. {
        use std::fmt::Write;
        nonce.clear();
        let _ = write!(nonce, "{n:x}");
        let digest = prefix.clone().chain_update(&nonce).finalize();
        if zero_bits(&digest) >= u32::from(bits) {
            return (format!("{minute}.{nonce}"), n + 1);
        }
    }
    unreachable!("a u64 of nonces")
}

fn zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte != 0 {
            return bits + byte.leading_zeros();
        }
        bits += 8;
    }
    bits
}
