//! Coupon codes: `RL-XXXX-XXXX`, eight Crockford base-32 characters (40 bits).
//!
//! Codes are minted inside Redis (`crates/queue/lua/decide.lua`) as a keyed 40-bit permutation
//! of the campaign's coupon sequence number: distinct sequence numbers give distinct codes, so
//! codes are unique per campaign by construction, and without the campaign's secret key they are
//! as unguessable as 40 random bits. PostgreSQL's unique index on (campaign, code) is the backstop.

use std::fmt;

use serde::{Deserialize, Serialize};

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

    /// The code's text.
    pub fn as_str(&self) -> &str {
        &self.0
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

    proptest! {
        #[test]
        fn every_40_bit_value_renders_a_valid_distinct_code(a in 0u64..1 << 40, b in 0u64..1 << 40) {
            let (ca, cb) = (CouponCode::from_bits(a), CouponCode::from_bits(b));
            prop_assert!(CouponCode::parse(ca.as_str()).is_ok());
            prop_assert_eq!(a == b, ca == cb);
        }
    }
}
