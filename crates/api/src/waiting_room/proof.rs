//! Proof of work on join, for bot-heavy drops (a campaign's `waiting_room.proof_of_work_bits`).
//!
//! The joiner finds a `nonce` such that
//! `SHA-256("rushline-pow:v1:" campaign ":" user ":" minute ":" nonce)` starts with `bits` zero
//! bits, where `minute` is the server's clock in whole minutes since the Unix epoch (the join
//! refusal tells it, so a phone with a wrong clock still solves the right puzzle). The answer
//! travels as `Rushline-Proof: <minute>.<nonce>` and is checked with one hash: O(1), about a
//! microsecond, no state. A proof is good for the minute it names and the two before, so it
//! cannot be stockpiled ahead of a drop, and it is bound to one user of one campaign.
//!
//! What it costs: `2^bits` hashes on average. At 16 bits (65,536 hashes) a phone's browser,
//! hashing through WebCrypto, spends about one to three seconds; a bot on one CPU core with native
//! SHA-256 (tens of millions of hashes per second) spends a few milliseconds per identity — the
//! point is not to stop a bot but to make each extra identity cost CPU, which adds up across the
//! hundreds of thousands of identities a bot farm needs, while a person pays it once.

use sha2::{Digest, Sha256};

/// Most difficulty a campaign may ask (2^24 hashes, well over ten seconds on a phone).
pub const MAX_BITS: u8 = 24;
/// How many minutes back a proof stays good (besides the current one).
const GRACE_MINUTES: i64 = 2;
/// Longest nonce accepted.
const MAX_NONCE: usize = 32;

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// No `Rushline-Proof` header.
    #[error("this waiting room asks for a proof of work (Rushline-Proof header)")]
    Missing,
    /// Not `<minute>.<nonce>` with a nonce of 1 to 32 letters and digits.
    #[error("Rushline-Proof must be <minute>.<nonce> (nonce: 1-32 ASCII letters or digits)")]
    Malformed,
    /// The minute is not the server's current one or one of the two before.
    #[error("the proof's minute is stale or in the future; solve it for the current minute")]
    Stale,
    /// The hash does not start with enough zero bits.
    #[error("the proof does not have enough leading zero bits")]
    Insufficient,
}

/// The puzzle's text for one user of one campaign at one minute (the page hashes the same text).
pub fn challenge(campaign: &str, user: &str, minute: i64) -> String {
    format!("rushline-pow:v1:{campaign}:{user}:{minute}:")
}

/// The work a `Rushline-Proof` header (`<minute>.<nonce>`) shows for `user` on `campaign` at the
/// server's `now_minute`: the number of leading zero bits of its hash (0 without a header). The
/// join script compares it with the campaign's difficulty, so the API needs no campaign settings
/// before the one Redis call a join makes.
pub fn work(
    header: Option<&str>,
    campaign: &str,
    user: &str,
    now_minute: i64,
) -> Result<u8, ProofError> {
    let Some(header) = header else {
        return Ok(0);
    };
    let (minute, nonce) = header.split_once('.').ok_or(ProofError::Malformed)?;
    let minute: i64 = minute.parse().map_err(|_| ProofError::Malformed)?;
    if nonce.is_empty()
        || nonce.len() > MAX_NONCE
        || !nonce.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ProofError::Malformed);
    }
    if minute > now_minute || minute < now_minute - GRACE_MINUTES {
        return Err(ProofError::Stale);
    }
    let digest = Sha256::new()
        .chain_update(challenge(campaign, user, minute))
        .chain_update(nonce)
        .finalize();
    // At most 256; capped where no campaign's difficulty reaches.
    Ok(leading_zero_bits(&digest).min(u32::from(u8::MAX)) as u8)
}

/// Checks `header` for `bits` of work by `user` on `campaign` at the server's `now_minute`.
pub fn verify(
    header: Option<&str>,
    campaign: &str,
    user: &str,
    bits: u8,
    now_minute: i64,
) -> Result<(), ProofError> {
    if bits == 0 {
        return Ok(());
    }
    if header.is_none() {
        return Err(ProofError::Missing);
    }
    if work(header, campaign, user, now_minute)? >= bits.min(MAX_BITS) {
        Ok(())
    } else {
        Err(ProofError::Insufficient)
    }
}

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search the page does, in Rust.
    fn solve(campaign: &str, user: &str, bits: u8, minute: i64) -> String {
        (0u64..)
            .map(|n| format!("{n:x}"))
            .find(|nonce| {
                verify(
                    Some(&format!("{minute}.{nonce}")),
                    campaign,
                    user,
                    bits,
                    minute,
                )
                .is_ok()
            })
            .map(|nonce| format!("{minute}.{nonce}"))
            .unwrap()
    }

    #[test]
    fn a_solved_proof_verifies_for_its_user_campaign_and_minutes() {
        let minute = 29_000_000;
        let proof = solve("drop", "alice", 10, minute);
        assert_eq!(verify(Some(&proof), "drop", "alice", 10, minute), Ok(()));
        assert_eq!(
            verify(Some(&proof), "drop", "alice", 10, minute + 2),
            Ok(())
        );
        assert_eq!(
            verify(Some(&proof), "drop", "alice", 10, minute + 3),
            Err(ProofError::Stale)
        );
        assert_eq!(
            verify(Some(&proof), "drop", "alice", 10, minute - 1),
            Err(ProofError::Stale)
        );
        // Bound to the user and the campaign (a 10-bit proof holds for another subject with
        // probability 2^-10; these two are checked not to).
        assert_ne!(verify(Some(&proof), "drop", "bob", 10, minute), Ok(()));
        assert_ne!(verify(Some(&proof), "other", "alice", 10, minute), Ok(()));
    }

    #[test]
    fn zero_bits_asks_nothing_and_bad_headers_are_refused() {
        assert_eq!(verify(None, "c", "u", 0, 1), Ok(()));
        assert_eq!(verify(None, "c", "u", 8, 1), Err(ProofError::Missing));
        for bad in [
            "",
            "1",
            "x.1",
            "1.",
            "1.a-b",
            "1.é",
            &format!("1.{}", "a".repeat(33)),
        ] {
            assert_eq!(
                verify(Some(bad), "c", "u", 8, 1),
                Err(ProofError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn work_grows_with_the_bits() {
        // 2^bits hashes on average: the mean nonce found over several subjects grows by about
        // 16x from 8 to 12 bits. Bounds are loose; the expected ratio is 16.
        let mean = |bits: u8| {
            let total: u64 = (0..24)
                .map(|n| {
                    let proof = solve("c", &format!("u{n}"), bits, 7);
                    let nonce = proof.split_once('.').unwrap().1;
                    u64::from_str_radix(nonce, 16).unwrap() + 1
                })
                .sum();
            total as f64 / 24.0
        };
        let ratio = mean(12) / mean(8);
        assert!((4.0..64.0).contains(&ratio), "ratio {ratio}");
        assert_eq!(leading_zero_bits(&[0, 0x10, 0xff]), 11);
    }
}
