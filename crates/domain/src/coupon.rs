//! Coupon codes: `RL-XXXX-XXXX`, eight Crockford base-32 characters (40 bits).
//!
//! A code is a keyed 40-bit permutation of the campaign's coupon sequence number
//! ([`CouponCode::mint`]): distinct sequence numbers give distinct codes, so codes are unique per
//! campaign by construction, and without the campaign's secret key they are as unguessable as 40
//! random bits. PostgreSQL's unique index on (campaign, code) is the backstop.
//!
//! Redis assigns the sequence numbers (`crates/queue/lua/decide.lua`, atomically, so each is
//! handed out once); the code is minted from it outside Redis by whoever reads the decision,
//! because the four SHA-1s were most of Redis's time per decision and Redis is the one serial
//! resource. Older releases minted inside the script; [`CouponCode::mint`] is the same
//! definition bit for bit, so codes already issued and codes minted now never disagree.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::ValidationError;

/// Crockford's base-32 alphabet: no I, L, O or U, so codes survive being read aloud or retyped.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// An issued coupon's code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CouponCode(String);

impl CouponCode {
    /// Accepts exactly `RL-` + 4 + `-` + 4 characters of [`ALPHABET`].
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        let b = value.as_bytes();
        let ok = b.len() == 12
            && b.starts_with(b"RL-")
            && b[7] == b'-'
            && b[3..7]
                .iter()
                .chain(&b[8..12])
                .all(|c| ALPHABET.contains(c));
        if ok {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "coupon_code",
                "must look like RL-XXXX-XXXX",
            ))
        }
    }

    /// Renders the low 40 bits of `value` as a code (most significant character first).
    pub fn from_bits(value: u64) -> Self {
        let mut out = String::with_capacity(12);
        out.push_str("RL-");
        for i in 0..8 {
            if i == 4 {
                out.push('-');
            }
            let shift = 35 - 5 * i;
            out.push(char::from(ALPHABET[((value >> shift) & 31) as usize]));
        }
        Self(out)
    }

    /// The code of coupon number `seq` of the campaign whose secret is `key`.
    ///
    /// A 4-round Feistel network over 40 bits: `left` and `right` start as bits 20..40 and 0..20
    /// of `seq` (higher bits are dropped: numbers repeat their codes every 2^40), then each round
    /// `r` in 1..=4 computes `f` = the first 5 hex digits of `sha1(key ":" r ":" right)`, with
    /// `right` in decimal, and sets `left, right = right, left ^ f`. The code renders
    /// `left << 20 | right`. This is exactly what `decide.lua`'s `coupon_code` computed with
    /// `redis.sha1hex`; the tests pin it to vectors produced by that script in Redis.
    pub fn mint(key: &str, seq: u64) -> Self {
        const HALF: u64 = (1 << 20) - 1;
        let (mut left, mut right) = ((seq >> 20) & HALF, seq & HALF);
        for round in [b'1', b'2', b'3', b'4'] {
            let mut digits = [0u8; 7];
            let mut hash = Sha1::new();
            hash.update(key.as_bytes());
            hash.update([b':', round, b':']);
            hash.update(decimal(right, &mut digits));
            let d = hash.finalize();
            // The first 5 hex digits are the top 20 bits of the digest.
            let f = (u64::from(d[0]) << 12) | (u64::from(d[1]) << 4) | (u64::from(d[2]) >> 4);
            (left, right) = (right, left ^ f);
        }
        Self::from_bits((left << 20) | right)
    }

    /// The code's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `n` (below 2^20) in decimal, as Lua's `..` renders it, without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 7]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

impl fmt::Display for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CouponCode {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<CouponCode> for String {
    fn from(code: CouponCode) -> String {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contract_example_parses() {
        assert!(CouponCode::parse("RL-7K3M-Q9XD").is_ok());
        assert!(
            CouponCode::parse("RL-7K3M-Q9XU").is_err(),
            "U is not Crockford"
        );
        assert!(CouponCode::parse("RL-7K3MQ9XD").is_err());
        assert!(CouponCode::parse("rl-7k3m-q9xd").is_err());
    }

    #[test]
    fn extremes_render() {
        assert_eq!(CouponCode::from_bits(0).as_str(), "RL-0000-0000");
        assert_eq!(
            CouponCode::from_bits((1 << 40) - 1).as_str(),
            "RL-ZZZZ-ZZZZ"
        );
    }

    /// Shaped like the keys the API generates: 64 hex digits (one SHA-1 block).
    const HEX_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff";

    /// (key, seq, code) as `decide.lua` minted them before minting left Redis: produced by
    /// `redis-cli EVAL` of its `coupon_code` function, verbatim, in a real Redis (7.x). The
    /// sequence numbers cover both halves' limits and 2^40, which wraps around to 0's code.
    const LUA_VECTORS: &[(&str, u64, &str)] = &[
        ("test-code-key", 0, "RL-JDT5-Y2ER"),
        ("test-code-key", 1, "RL-9KD5-XX2F"),
        ("test-code-key", 2, "RL-3NH3-6DZ6"),
        ("test-code-key", 7, "RL-F40N-4NPJ"),
        ("test-code-key", (1 << 20) - 1, "RL-Q0E3-Q57Z"),
        ("test-code-key", 1 << 20, "RL-RAGK-03W1"),
        ("test-code-key", (1 << 20) + 1, "RL-33GY-1Z5Y"),
        ("test-code-key", 123_456_789, "RL-SA2R-5Y84"),
        ("test-code-key", 99_999_999, "RL-9WD8-JVAQ"),
        ("test-code-key", (1 << 40) - 2, "RL-76CB-NY44"),
        ("test-code-key", (1 << 40) - 1, "RL-2Q81-4KHD"),
        ("test-code-key", 1 << 40, "RL-JDT5-Y2ER"),
        (HEX_KEY, 0, "RL-ZSXM-Z6XW"),
        (HEX_KEY, 1, "RL-8H2C-XE17"),
        (HEX_KEY, 2, "RL-7JX8-XHXN"),
        (HEX_KEY, 7, "RL-F801-VHF3"),
        (HEX_KEY, (1 << 20) - 1, "RL-1549-WYAZ"),
        (HEX_KEY, 1 << 20, "RL-1Z8B-9J6Z"),
        (HEX_KEY, (1 << 20) + 1, "RL-Q022-HE9Z"),
        (HEX_KEY, 123_456_789, "RL-27VP-YQTE"),
        (HEX_KEY, 99_999_999, "RL-KF1X-FEYN"),
        (HEX_KEY, (1 << 40) - 2, "RL-87CS-KPCY"),
        (HEX_KEY, (1 << 40) - 1, "RL-KBJ3-XWP3"),
        (HEX_KEY, 1 << 40, "RL-ZSXM-Z6XW"),
        ("k", 0, "RL-AREF-XX8F"),
        ("k", 1, "RL-14GJ-QYNV"),
        ("k", 2, "RL-AN6J-1M5P"),
        ("k", 7, "RL-W872-AMS8"),
        ("k", (1 << 20) - 1, "RL-KFHN-CYRB"),
        ("k", 1 << 20, "RL-DY5M-90YJ"),
        ("k", (1 << 20) + 1, "RL-0ZJQ-11NT"),
        ("k", 123_456_789, "RL-YW7R-A6CY"),
        ("k", 99_999_999, "RL-SN2D-6AM7"),
        ("k", (1 << 40) - 2, "RL-NEKS-3YA0"),
        ("k", (1 << 40) - 1, "RL-CDF5-A05G"),
        ("k", 1 << 40, "RL-AREF-XX8F"),
        ("", 0, "RL-02VX-FX5J"),
        ("", 1, "RL-KNEF-S6B0"),
        ("", 2, "RL-4BCV-2RY5"),
        ("", 7, "RL-R8ZS-VHY4"),
        ("", (1 << 20) - 1, "RL-G557-B59G"),
        ("", 1 << 20, "RL-DYRZ-8W19"),
        ("", (1 << 20) + 1, "RL-XJTN-PMM8"),
        ("", 123_456_789, "RL-QFRR-XYG7"),
        ("", 99_999_999, "RL-ZQEW-A7ZD"),
        ("", (1 << 40) - 2, "RL-AVT2-2KGN"),
        ("", (1 << 40) - 1, "RL-MH24-PA95"),
        ("", 1 << 40, "RL-02VX-FX5J"),
    ];

    #[test]
    fn minting_matches_the_codes_redis_minted() {
        for &(key, seq, code) in LUA_VECTORS {
            assert_eq!(
                CouponCode::mint(key, seq).as_str(),
                code,
                "key {key:?}, seq {seq}"
            );
        }
    }

    #[test]
    fn consecutive_sequence_numbers_mint_distinct_codes() {
        let mut seen = std::collections::HashSet::new();
        for seq in 0..100_000 {
            assert!(
                seen.insert(CouponCode::mint("test-code-key", seq)),
                "seq {seq}"
            );
        }
    }

    #[test]
    fn decimal_renders_like_lua() {
        let mut buf = [0; 7];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(10, &mut buf), b"10");
        assert_eq!(decimal((1 << 20) - 1, &mut buf), b"1048575");
    }

    proptest! {
        #[test]
        fn every_40_bit_value_renders_a_valid_distinct_code(a in 0u64..1 << 40, b in 0u64..1 << 40) {
            let (ca, cb) = (CouponCode::from_bits(a), CouponCode::from_bits(b));
            prop_assert!(CouponCode::parse(ca.as_str()).is_ok());
            prop_assert_eq!(a == b, ca == cb);
        }

        #[test]
        fn minting_is_a_permutation_of_40_bit_numbers(a in 0u64..1 << 40, b in 0u64..1 << 40) {
            prop_assert_eq!(a == b, CouponCode::mint(HEX_KEY, a) == CouponCode::mint(HEX_KEY, b));
        }
    }
}
