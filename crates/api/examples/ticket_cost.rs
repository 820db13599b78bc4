//! What checking a waiting-room ticket costs, per call, on one core: the figures that chose how
//! rushline's own polls check tickets (issue 12, *Speed*).
//!
//! - `sign`: [`Tickets::sign`], an Ed25519 signature over a realistic ticket.
//! - `verify`: [`Tickets::verify_uncached`], the full check (parse, `kid`, strict Ed25519
//!   verification, claims).
//! - `cached verify`: [`Tickets::verify`] of a ticket this replica verified before: SHA-256 of
//!   the token and a sharded map lookup.
//! - `MAC check`: the alternative the issue names. The ticket carries, beside its signature, an
//!   HMAC-SHA256 only rushline can check (keyed by a secret derived from the signing key, in a
//!   protected-header member `rlm` over the payload segment); rushline's check parses the
//!   header, recomputes the MAC, compares in constant time and parses the claims. Written here,
//!   not in the API, to be measured.
//! - `storm`: polls when the tickets polled outnumber the cache: `STORM` distinct tickets
//!   polled round-robin (three rounds) against the API's default cache (100,000) and against one
//!   large enough for all of them.
//!
//! ```sh
//! cargo run --release -p rushline-api --example ticket_cost [-- STORM]
//! ```

use std::hint::black_box;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use rushline_api::tickets::{self, TicketClaims, TicketKey, TicketKeys, Tickets};
use rushline_domain::{CampaignId, UserId};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn main() {
    let storm: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let key = TicketKey::generate();
    let tickets = with_cache(&key, tickets::DEFAULT_CACHE_ENTRIES);
    let claims = ticket_claims(0);
    let token = tickets.sign(&claims).expect("sign");
    println!("ticket: {} bytes", token.len());

    let sign = per_call(20_000, || tickets.sign(black_box(&claims)).map(|t| t.len()));
    let verify = per_call(20_000, || {
        tickets.verify_uncached(black_box(&token)).map(|c| c.iat)
    });
    tickets.verify(&token).expect("first verification");
    let cached = per_call(1_000_000, || {
        tickets.verify(black_box(&token)).map(|c| c.iat)
    });
    let mac = MacTickets::new(&key);
    let mac_token = mac.sign(&key, &claims);
    assert_eq!(mac.check(&mac_token).expect("the MAC checks"), claims);
    let mac_check = per_call(1_000_000, || {
        mac.check(black_box(&mac_token)).map(|c| c.iat)
    });

    println!("{:<36} {:>9}", "operation", "µs/call");
    for (name, micros) in [
        ("sign", sign),
        ("verify (Ed25519, no cache)", verify),
        ("cached verify (hit)", cached),
        ("MAC check (HMAC-SHA256 + claims)", mac_check),
    ] {
        println!("{name:<36} {micros:>9.3}");
    }

    println!("\nstorm: {storm} distinct tickets polled round-robin, 3 rounds");
    let tokens: Vec<String> = (0..storm)
        .map(|i| tickets.sign(&ticket_claims(i as u64)).expect("sign"))
        .collect();
    for capacity in [tickets::DEFAULT_CACHE_ENTRIES, storm + storm / 4] {
        let before = resident_bytes();
        let polled = with_cache(&key, capacity);
        for token in &tokens {
            polled.verify(token).expect("warm-up");
        }
        let per_entry = resident_bytes().saturating_sub(before) / polled.cached().max(1);
        let micros = per_round_robin(&tokens, |t| polled.verify(t).map(|c| c.iat));
        println!(
            "cache of {capacity:>7} entries: {micros:>8.3} µs/poll ({} remembered, ~{per_entry} \
             bytes each)",
            polled.cached()
        );
        drop(polled);
    }
    let mac_tokens: Vec<String> = tokens.iter().map(|t| mac.sign_cheaply(t)).collect();
    let micros = per_round_robin(&mac_tokens, |t| mac.check(t).map(|c| c.iat));
    println!("MAC check, nothing remembered:  {micros:>8.3} µs/poll");
}

/// This process's resident memory (Linux `/proc/self/statm`, 4 KiB pages); 0 elsewhere.
fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn with_cache(key: &TicketKey, capacity: usize) -> Tickets {
    Tickets::new(
        TicketKeys::new(vec![key.clone()]).expect("one key"),
        capacity,
    )
}

/// Mean µs per call of `op` over `calls` calls, after a warm-up of a tenth as many.
fn per_call<T, E: std::fmt::Debug>(calls: u32, mut op: impl FnMut() -> Result<T, E>) -> f64 {
    for _ in 0..calls / 10 {
        black_box(op().expect("operation"));
    }
    let started = Instant::now();
    for _ in 0..calls {
        black_box(op().expect("operation"));
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
}

/// Mean µs per poll when every token of `tokens` is polled in turn, three rounds.
fn per_round_robin<T, E: std::fmt::Debug>(
    tokens: &[String],
    mut poll: impl FnMut(&str) -> Result<T, E>,
) -> f64 {
    let started = Instant::now();
    for _ in 0..3 {
        for token in tokens {
            black_box(poll(black_box(token)).expect("poll"));
        }
    }
    started.elapsed().as_secs_f64() * 1e6 / (3 * tokens.len()) as f64
}

/// A ticket the size of a real one: a 40-character user id, a campaign id, a position.
fn ticket_claims(i: u64) -> TicketClaims {
    TicketClaims::waiting(
        UserId::parse(format!("user-{i:0>35}")).expect("user id"),
        CampaignId::parse("concert-2026-presale").expect("campaign id"),
        Some(i + 1),
        Utc::now(),
    )
}

/// The MAC alternative: the same compact JWS, with an extra protected-header member `rlm`,
/// HMAC-SHA256 (truncated to 128 bits) of the payload segment under a key derived from the
/// signing key.
struct MacTickets {
    mac: HmacSha256,
}

#[derive(Deserialize)]
struct MacHeader {
    rlm: String,
}

impl MacTickets {
    fn new(key: &TicketKey) -> Self {
        let derived = HmacSha256::new_from_slice(&seed(key))
            .expect("any key length")
            .chain_update(b"rushline ticket mac")
            .finalize()
            .into_bytes();
        Self {
            mac: HmacSha256::new_from_slice(&derived).expect("any key length"),
        }
    }

    fn tag(&self, payload_segment: &str) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(payload_segment.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }

    fn header(&self, kid: &str, payload_segment: &str) -> String {
        let header = serde_json::json!({
            "alg": "EdDSA", "kid": kid, "typ": "JWT",
            "rlm": URL_SAFE_NO_PAD.encode(self.tag(payload_segment)),
        });
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header"))
    }

    fn sign(&self, key: &TicketKey, claims: &TicketClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims"));
        let input = format!("{}.{payload}", self.header(key.kid(), &payload));
        let signature = SigningKey::from_bytes(&seed(key)).sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// A MAC'd token made from a signed one without signing again (the signature segment is
    /// kept; the MAC check does not read it): lets the storm give each poll a distinct token.
    fn sign_cheaply(&self, signed: &str) -> String {
        let mut segments = signed.split('.');
        let (_, payload, signature) = (
            segments.next().expect("header"),
            segments.next().expect("payload"),
            segments.next().expect("signature"),
        );
        format!("{}.{payload}.{signature}", self.header("kid", payload))
    }

    /// Rushline's own check: header, MAC over the payload segment (constant time), claims.
    fn check(&self, token: &str) -> Result<TicketClaims, &'static str> {
        if token.len() > tickets::MAX_TICKET_BYTES {
            return Err("too large");
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(_), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err("malformed");
        };
        let header: MacHeader =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|_| "base64")?)
                .map_err(|_| "header")?;
        let tag = URL_SAFE_NO_PAD.decode(header.rlm).map_err(|_| "base64")?;
        let mut mac = self.mac.clone();
        mac.update(payload.as_bytes());
        mac.verify_truncated_left(&tag).map_err(|_| "bad MAC")?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| "base64")?)
            .map_err(|_| "claims")
    }
}

fn seed(key: &TicketKey) -> [u8; 32] {
    URL_SAFE_NO_PAD
        .decode(key.to_secret_string())
        .expect("a key's own format")
        .try_into()
        .expect("32 bytes")
}
