//! OpenAPI schemas of the newtypes (feature `openapi`): each states the rule its `parse` enforces,
//! next to the limits it is built from, so the document the API serves cannot promise more or less
//! than the code accepts. The structs and enums derive theirs where they are defined.
//!
//! Patterns are written in the common subset of ECMA 262, Rust and Python regular expressions
//! (what JSON Schema validators and schemathesis read): anchors, character classes and bounded
//! repetition only. "Visible characters" (names, user ids) is a Unicode property rule that subset
//! cannot name; it is stated in the descriptions. (Spelled out as character classes it is exact
//! but makes schemathesis generate about a hundred times slower, past CI's time bound.)

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{
    CampaignId, CampaignName, CouponCode, IdempotencyKey, RequestId, ShardCount, Stock, UserId,
    coupon,
};

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

impl PartialSchema for CampaignId {
    fn schema() -> RefOr<Schema> {
        string("A campaign id: 1-64 of `a-z 0-9 - _`.")
            .min_length(Some(1))
            .max_length(Some(CampaignId::MAX_LEN))
            .pattern(Some(format!("^[a-z0-9_-]{{1,{}}}$", CampaignId::MAX_LEN)))
            .into()
    }
}
impl ToSchema for CampaignId {}

impl PartialSchema for CampaignName {
    fn schema() -> RefOr<Schema> {
        string(
            "A campaign's display name: 1-200 visible characters, normalized to NFC; no control, \
             format, line or paragraph separator, private-use or unassigned characters (U+0000 \
             in particular, which PostgreSQL's text cannot hold), no space at either end.",
        )
        .min_length(Some(1))
        .max_length(Some(CampaignName::MAX_CHARS))
        .into()
    }
}
impl ToSchema for CampaignName {}

impl PartialSchema for Stock {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .description(Some(
                "Coupons a campaign can issue: a whole number from 1 to 100,000,000.",
            ))
            .minimum(Some(1))
            .maximum(Some(Stock::MAX as f64))
            .into()
    }
}
impl ToSchema for Stock {}

impl PartialSchema for ShardCount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .description(Some(
                "Stock shards: a whole number from 1 to 64 (1 when absent). Each user always maps \
                 to the same shard; today every campaign is decided on one slot whatever the \
                 count.",
            ))
            .minimum(Some(1))
            .maximum(Some(ShardCount::MAX as f64))
            .into()
    }
}
impl ToSchema for ShardCount {}

impl PartialSchema for UserId {
    fn schema() -> RefOr<Schema> {
        string(
            "The end user a request is for: 1-128 visible characters, normalized to NFC \
             (canonically equivalent ids are one user; the normalized form is stored and echoed): \
             no control, format, separator, private-use or unassigned characters, no space other \
             than U+0020 and none at either end.",
        )
        .min_length(Some(1))
        .max_length(Some(UserId::MAX_CHARS))
        .into()
    }
}
impl ToSchema for UserId {}

impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        // A space may sit inside a key but not at either end: HTTP strips it there.
        string("1-128 printable ASCII characters (space to `~`), no space at either end.")
            .min_length(Some(1))
            .max_length(Some(IdempotencyKey::MAX_LEN))
            .pattern(Some(format!(
                "^[!-~]([ -~]{{0,{}}}[!-~])?$",
                IdempotencyKey::MAX_LEN - 2
            )))
            .into()
    }
}
impl ToSchema for IdempotencyKey {}

impl PartialSchema for RequestId {
    fn schema() -> RefOr<Schema> {
        string("A request's id: a UUID.")
            .format(Some(SchemaFormat::Custom("uuid".into())))
            .into()
    }
}
impl ToSchema for RequestId {}

impl PartialSchema for CouponCode {
    fn schema() -> RefOr<Schema> {
        let class = alphabet_class();
        string("A coupon code: `RL-` and two groups of four characters.")
            .pattern(Some(format!("^RL-{class}{{4}}-{class}{{4}}$")))
            .into()
    }
}
impl ToSchema for CouponCode {}

/// The coupon alphabet as a regular-expression character class.
fn alphabet_class() -> String {
    let letters: String = coupon::ALPHABET.iter().map(|&b| b as char).collect();
    format!("[{letters}]")
}

/// An instant in a JSON shape: RFC 3339, from 1970-01-01T00:00:00Z through
/// 9999-12-31T23:59:59.999Z; rushline renders UTC with milliseconds. A schema only: the fields are
/// `chrono::DateTime<Utc>`.
pub struct Timestamp;

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        string(
            "RFC 3339, from 1970-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z; rendered in \
             UTC with milliseconds.",
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        // The year range; the format says the rest.
        .pattern(Some("^(19[7-9][0-9]|[2-9][0-9]{3})-"))
        .into()
    }
}
impl ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use regex::Regex;

    fn pattern_of<T: PartialSchema>() -> Regex {
        let RefOr::T(Schema::Object(object)) = T::schema() else {
            panic!("an object schema");
        };
        Regex::new(&object.pattern.expect("a pattern")).expect("the pattern compiles")
    }

    proptest! {
        /// An idempotency key matches its pattern exactly when `parse` accepts it and HTTP would
        /// carry it as is (no space at either end).
        #[test]
        fn a_key_matches_its_pattern_exactly_when_parse_accepts_it(s in "[ -~\\t\u{e9}]{0,130}") {
            let pattern = pattern_of::<IdempotencyKey>();
            let carried = s.trim_matches(' ') == s;
            prop_assert_eq!(pattern.is_match(&s), IdempotencyKey::parse(s.clone()).is_ok() && carried);
        }

        #[test]
        fn a_campaign_id_matches_its_pattern_exactly_when_parse_accepts_it(s in "[a-z0-9_A-Z. -]{0,66}") {
            prop_assert_eq!(pattern_of::<CampaignId>().is_match(&s), CampaignId::parse(s.clone()).is_ok());
        }
    }
}
