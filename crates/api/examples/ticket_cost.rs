//! What checking a waiting-room ticket costs, per call, on one core: the figures that chose how
//! rushline's own polls check tickets (issue 12, *Speed*).
//!
//! - `sign`: [`Tickets::sign`], an Ed25519 signature (and the `rlm` MAC) over a realistic ticket.
//! - `signature check`: [`Tickets::verify_signature`], what another service does: parse, `kid`,
//!   strict Ed25519 verification, claims.
//! - `MAC check`: [`Tickets::verify_mac`], rushline's own check without the cache: parse, `kid`,
//!   HMAC-SHA256 of the payload compared in constant time with the header's `rlm`, claims.
//! - `cached check`: [`Tickets::verify_for`] of a ticket this replica checked before for the
//!   campaign: SHA-256 of campaign and token, a sharded map lookup, the claims rebuilt.
//! - `storm`: [`Tickets::verify_for`] when `STORM` distinct tickets are polled round-robin (three
//!   rounds) against caches of 0 entries (MAC only), the API's default (100,000: fewer than the
//!   tickets, so first-in-first-out eviction misses every time and each poll is a MAC check plus
//!   the cache's upkeep) and one that holds them all; with the cache's resident memory per entry.
//!
//! ```sh
//! cargo run --release -p rushline-api --example ticket_cost [-- STORM]
//! ```

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use rushline_api::tickets::{self, TicketClaims, TicketKey, TicketKeys, Tickets};
use rushline_domain::{CampaignId, UserId};

fn main() -> anyhow::Result<()> {
    let storm: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let key = TicketKey::generate();
    let tickets = with_cache(&key, tickets::DEFAULT_CACHE_ENTRIES)?;
    let claims = ticket_claims(0)?;
    let token = tickets.sign(&claims)?;
    println!("ticket: {} bytes", token.len());

    let sign = per_call(20_000, || tickets.sign(black_box(&claims)).map(|t| t.len()))?;
    let signature = per_call(20_000, || {
        tickets.verify_signature(black_box(&token)).map(|c| c.iat)
    })?;
    let mac = per_call(500_000, || {
        tickets.verify_mac(black_box(&token)).map(|c| c.iat)
    })?;
    let campaign = claims.cid.clone();
    tickets.verify_for(&token, &campaign)?;
    let cached = per_call(1_000_000, || {
        tickets
            .verify_for(black_box(&token), &campaign)
            .map(|c| c.iat)
    })?;

    println!("{:<44} {:>9}", "operation", "µs/call");
    for (name, micros) in [
        ("sign (Ed25519 + rlm)", sign),
        ("signature check (Ed25519, another service)", signature),
        ("MAC check (rlm, rushline, no cache)", mac),
        ("cached check (hit)", cached),
    ] {
        println!("{name:<44} {micros:>9.3}");
    }

    println!("\nstorm: {storm} distinct tickets polled round-robin, 3 rounds");
    let tokens: Vec<String> = (0..storm)
        .map(|i| Ok(tickets.sign(&ticket_claims(i as u64)?)?))
        .collect::<anyhow::Result<_>>()?;
    for capacity in [0, tickets::DEFAULT_CACHE_ENTRIES, storm + storm / 4] {
        let before = resident_bytes();
        let polled = with_cache(&key, capacity)?;
        for token in &tokens {
            polled.verify_for(token, &campaign)?;
        }
        let grown = resident_bytes().saturating_sub(before);
        let micros = per_round_robin(&tokens, |t| polled.verify_for(t, &campaign).map(|c| c.iat))?;
        let memory = match polled.cached() {
            0 => "nothing remembered".to_owned(),
            n => format!("{n:>6} remembered, ~{} bytes each", grown / n),
        };
        println!("cache of {capacity:>7} entries: {micros:>7.3} µs/poll ({memory})");
        drop(polled);
    }
    Ok(())
}

/// This process's resident memory (Linux `/proc/self/statm`, 4 KiB pages); 0 elsewhere.
fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn with_cache(key: &TicketKey, capacity: usize) -> anyhow::Result<Tickets> {
    Ok(Tickets::new(TicketKeys::new(vec![key.clone()])?, capacity))
}

/// Mean µs per call of `op` over `calls` calls, after a warm-up of a tenth as many.
fn per_call<T, E>(calls: u32, mut op: impl FnMut() -> Result<T, E>) -> Result<f64, E> {
    for _ in 0..calls / 10 {
        black_box(op()?);
    }
    let started = Instant::now();
    for _ in 0..calls {
        black_box(op()?);
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(calls))
}

/// Mean µs per poll when every token of `tokens` is polled in turn, three rounds.
fn per_round_robin<T, E>(
    tokens: &[String],
    mut poll: impl FnMut(&str) -> Result<T, E>,
) -> Result<f64, E> {
    let started = Instant::now();
    for _ in 0..3 {
        for token in tokens {
            black_box(poll(black_box(token))?);
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / (3 * tokens.len()) as f64)
}

/// A ticket the size of a real one: a 40-character user id, a campaign id, a position.
fn ticket_claims(i: u64) -> anyhow::Result<TicketClaims> {
    Ok(TicketClaims::waiting(
        UserId::parse(format!("user-{i:0>35}"))?,
        CampaignId::parse("concert-2026-presale")?,
        Some(i + 1),
        Utc::now(),
    ))
}
