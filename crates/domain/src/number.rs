//! Whole numbers as JSON Schema counts them: `188` and `188.0` are the same integer.
//!
//! serde's `u64` refuses `188.0`, yet the OpenAPI document says `"type": "integer"`, and in JSON
//! Schema an integer is any number with a zero fractional part. A client (or a JSON library that
//! writes every number as a float) sending `188.0` sends a valid integer and must get what `188`
//! gets. Fractions, negatives, strings and `null` are still refused.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};

/// A non-negative whole JSON number. Range checks are the caller's (a [`crate::Stock`]'s, an
/// added stock's): values past `u64::MAX`, such as `1e30`, saturate to `u64::MAX` so that the
/// caller's range check, not a parse error, explains the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WholeNumber(pub u64);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(WholeVisitor).map(Self)
    }
}

/// serde helper for a `u64` field that takes any whole JSON number:
/// `#[serde(deserialize_with = "number::whole")]`.
pub fn whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    WholeNumber::deserialize(deserializer).map(|n| n.0)
}

/// [`whole`] for an optional field (`null` or absent = `None`): pair it with `#[serde(default)]`.
pub fn whole_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<WholeNumber>::deserialize(deserializer).map(|n| n.map(|n| n.0))
}

struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.is_finite() && v.fract() == 0.0 && v >= 0.0 {
            // `as` saturates: 1e30 becomes u64::MAX, out of every range rushline accepts.
            Ok(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<u64, serde_json::Error> {
        serde_json::from_str::<WholeNumber>(json).map(|n| n.0)
    }

    #[test]
    fn integers_in_any_notation_are_whole_numbers() {
        assert_eq!(parse("188").unwrap(), 188);
        assert_eq!(parse("188.0").unwrap(), 188);
        assert_eq!(parse("1e8").unwrap(), 100_000_000);
        assert_eq!(parse("1.0E2").unwrap(), 100);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("-0.0").unwrap(), 0);
        assert_eq!(parse("1e30").unwrap(), u64::MAX);
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in ["1.5", "-1", "-1.0", "\"10\"", "null", "true", "[1]", "{}"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Exact while `n` and its `.0` digit fit 2^53 (serde_json's exact fast path); rushline's
        /// ranges end at 100,000,000, far below.
        #[test]
        fn a_whole_float_reads_as_its_integer(n in 0u64..100_000_000_000_000) {
            let json = format!("{n}.0");
            proptest::prop_assert_eq!(parse(&json).unwrap(), n);
        }
    }
}
