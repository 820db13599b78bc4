//! Identifiers, each with a private field and a `parse` that enforces the contract's limits.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ValidationError, text};

/// Defines the string-backed id boilerplate: `as_str`, `Display`, `TryFrom<String>` and
/// `From<Id> for String`, so serde can use `try_from`/`into` and every path goes through `parse`.
macro_rules! string_id {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

/// A campaign's id: 1–64 of `a-z 0-9 - _`.
///
/// The alphabet keeps ids safe inside Redis key names and URLs without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignId(String);

impl CampaignId {
    /// Longest id accepted.
    pub const MAX_LEN: usize = 64;

    /// Accepts 1–64 characters of `a-z 0-9 - _`.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        let ok_len = (1..=Self::MAX_LEN).contains(&value.len());
        let ok_chars = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok_len && ok_chars {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "id",
                "must be 1-64 characters of a-z, 0-9, '-' and '_'",
            ))
        }
    }

    /// The Redis Cluster hash tag of every key of this campaign.
    pub fn slot_tag(&self) -> SlotTag {
        SlotTag::of(self)
    }
}
string_id!(CampaignId);

/// The end user a request is for: 1–128 visible characters, in Unicode NFC.
///
/// [`UserId::parse`] (every id a client sends) normalizes to NFC, so two ids that are
/// canonically equivalent — they render identically — are one user, and the normalized form is
/// what is stored and echoed back. It refuses what a person cannot see (see the `text` module):
/// control, format, separator, private-use and unassigned characters; spaces other than U+0020;
/// and a space at either end. Control characters in particular could break a log line or the
/// tab-separated records rushline keeps in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Longest id accepted, in characters (after normalization).
    pub const MAX_CHARS: usize = 128;

    /// Normalizes a client's id to NFC and accepts it when it is 1–128 visible characters with
    /// no space at either end.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = text::nfc(value.into());
        let chars = value.chars().count();
        let visible = value
            .chars()
            .all(|c| text::is_visible(c) && !text::is_other_space(c));
        let trimmed = !value.starts_with(' ') && !value.ends_with(' ');
        if (1..=Self::MAX_CHARS).contains(&chars) && visible && trimmed {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "user_id",
                "must be 1-128 visible characters (no control, format, separator, private-use or \
                 unassigned characters, no space at either end)",
            ))
        }
    }

    /// An id as rushline stored it (Redis or PostgreSQL), taken verbatim: not renormalized, and
    /// checked only against what the stores rely on (1–128 characters, no control character), so
    /// a record written under an earlier, looser rule still reads back as the same user.
    pub fn from_record(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        let chars = value.chars().count();
        if (1..=Self::MAX_CHARS).contains(&chars) && !value.chars().any(char::is_control) {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "user_id",
                "must be 1-128 characters, none a control character",
            ))
        }
    }

    /// serde helper for an id read back from the API: [`UserId::from_record`]'s rule, so a
    /// client still reads a request recorded under an earlier, looser rule.
    pub fn deserialize_record<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_record(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
string_id!(UserId);

/// A client's `Idempotency-Key` header: 1–128 printable ASCII characters (space to `~`).
///
/// ASCII only, so there is nothing invisible to refuse and nothing to normalize: what a person
/// sees is the key. (HTTP strips spaces at either end of a header value before it gets here.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 128;

    /// Accepts 1–128 bytes, each printable ASCII.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if (1..=Self::MAX_LEN).contains(&value.len())
            && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "Idempotency-Key",
                "must be 1-128 printable ASCII characters",
            ))
        }
    }
}
string_id!(IdempotencyKey);

/// Which Redis Cluster slot group a campaign's keys live in: 16 bits derived from its id.
///
/// Every key of a campaign — and every request status key of its requests — carries
/// `{tag}` as its hash tag, so each Lua script touches one slot. The tag is also embedded in the
/// first 16 bits of every [`RequestId`], so `GET /v1/requests/{id}` finds the status key with the
/// id alone. Different campaigns may share a tag; keys still name the campaign after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotTag(u16);

impl SlotTag {
    /// FNV-1a over the campaign id, folded to 16 bits: stable across releases and machines
    /// (it is baked into request ids, so it must never change).
    pub fn of(campaign: &CampaignId) -> Self {
        let mut hash: u32 = 0x811c_9dc5;
        for b in campaign.as_str().bytes() {
            hash ^= u32::from(b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        Self(((hash >> 16) ^ (hash & 0xffff)) as u16)
    }

    /// The tag's raw bits.
    pub fn bits(self) -> u16 {
        self.0
    }
}

impl fmt::Display for SlotTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

/// A request's id: a random (version 4) UUID whose first 16 bits are its campaign's [`SlotTag`].
///
/// 106 bits stay random, so ids are unguessable: a request id is what lets its holder read the
/// coupon code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(Uuid);

impl RequestId {
    /// A fresh id for a request to `campaign`.
    pub fn new_for(campaign: &CampaignId) -> Self {
        let mut bytes = *Uuid::new_v4().as_bytes();
        let tag = campaign.slot_tag().bits().to_be_bytes();
        bytes[0] = tag[0];
        bytes[1] = tag[1];
        Self(Uuid::from_bytes(bytes))
    }

    /// Parses any UUID text form (hyphenated is canonical).
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Uuid::try_parse(value)
            .map(Self)
            .map_err(|_| ValidationError::new("request_id", "must be a UUID"))
    }

    /// The slot tag of the campaign this id was minted for.
    pub fn slot_tag(&self) -> SlotTag {
        let b = self.0.as_bytes();
        SlotTag(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The UUID itself.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for RequestId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn campaign_id_limits() {
        assert!(CampaignId::parse("concert-2026").is_ok());
        assert!(CampaignId::parse("a").is_ok());
        assert!(CampaignId::parse("a".repeat(64)).is_ok());
        assert!(CampaignId::parse("a".repeat(65)).is_err());
        assert!(CampaignId::parse("").is_err());
        assert!(CampaignId::parse("Concert").is_err());
        assert!(CampaignId::parse("a b").is_err());
        assert!(CampaignId::parse("{x}").is_err());
        assert!(CampaignId::parse("é").is_err());
    }

    #[test]
    fn user_id_limits() {
        assert!(UserId::parse("u-123").is_ok());
        assert!(
            UserId::parse("ü".repeat(128)).is_ok(),
            "limit counts characters, not bytes"
        );
        assert!(UserId::parse("x".repeat(129)).is_err());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\tb").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("a\u{7f}").is_err());
    }

    #[test]
    fn user_ids_are_visible_text() {
        for bad in [
            "a\u{200B}b",
            "\u{202E}evil",
            "\u{FEFF}u",
            "line\u{2028}sep",
            "para\u{2029}sep",
            "soft\u{AD}hyphen",
            "filler\u{3164}",
            "\u{115F}",
            "private\u{E000}",
            "nbsp\u{A0}inside",
            "ideographic\u{3000}space",
            " leading",
            "trailing ",
            " ",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "u-123",
            "alice@example.com",
            "first last",
            "홍길동",
            "user 😀",
            "ü",
        ] {
            assert!(UserId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn user_ids_are_normalized_to_nfc() {
        let decomposed = UserId::parse("jose\u{301}").unwrap();
        let composed = UserId::parse("jos\u{e9}").unwrap();
        assert_eq!(decomposed, composed);
        assert_eq!(decomposed.as_str(), "jos\u{e9}");
        // Hangul typed as jamo is the same user as the precomposed syllables.
        assert_eq!(
            UserId::parse("\u{1112}\u{1169}\u{11BC}").unwrap().as_str(),
            "\u{D64D}"
        );
    }

    #[test]
    fn stored_user_ids_read_back_verbatim() {
        let stored = UserId::from_record("jose\u{301} \u{200B}").unwrap();
        assert_eq!(stored.as_str(), "jose\u{301} \u{200B}");
        assert!(UserId::from_record("tab\there").is_err());
        assert!(UserId::from_record("").is_err());
    }

    #[test]
    fn idempotency_key_limits() {
        assert!(IdempotencyKey::parse("retry-1 {x}").is_ok());
        assert!(IdempotencyKey::parse("k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse("k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }

    #[test]
    fn request_id_rejects_non_uuids() {
        assert!(RequestId::parse("not-a-uuid").is_err());
        assert!(RequestId::parse("").is_err());
        assert!(RequestId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
    }

    proptest! {
        #[test]
        fn request_id_carries_its_campaign_tag(id in "[a-z0-9_-]{1,64}") {
            let campaign = CampaignId::parse(id).unwrap();
            let request = RequestId::new_for(&campaign);
            prop_assert_eq!(request.slot_tag(), campaign.slot_tag());
            let reparsed = RequestId::parse(&request.to_string()).unwrap();
            prop_assert_eq!(reparsed, request);
            prop_assert_eq!(reparsed.as_uuid().get_version_num(), 4);
        }

        #[test]
        fn user_ids_of_letters_digits_and_inner_spaces_parse(
            // Default-ignorable letters (Hangul fillers such as U+FFA0) are letters that show
            // nothing: refused by design, so not generated here.
            s in "[[\\p{L}\\p{N}\\p{P}]--\\p{Default_Ignorable_Code_Point}][[\\p{L}\\p{N}\\p{P} ]--\\p{Default_Ignorable_Code_Point}]{0,60}[[\\p{L}\\p{N}\\p{P}]--\\p{Default_Ignorable_Code_Point}]"
        ) {
            let id = UserId::parse(s.clone());
            prop_assert!(id.is_ok(), "{:?}", s);
        }

        /// Whatever a client sends, parse never panics, and what it accepts is NFC, within the
        /// limits, visible, parses to itself again, and reads back from a record unchanged.
        #[test]
        fn user_id_parse_is_total_and_idempotent(s in "\\PC{0,140}|.{0,140}|[\\u{0}-\\u{3000}]{0,20}") {
            if let Ok(id) = UserId::parse(s) {
                let text = id.as_str();
                prop_assert!((1..=UserId::MAX_CHARS).contains(&text.chars().count()));
                prop_assert!(text.chars().all(|c| text::is_visible(c) && !text::is_other_space(c)));
                prop_assert_eq!(&UserId::parse(text).unwrap(), &id);
                prop_assert_eq!(&UserId::from_record(text).unwrap(), &id);
            }
        }

        #[test]
        fn user_ids_with_an_invisible_character_are_refused(
            head in "[a-z]{0,10}",
            tail in "[a-z]{0,10}",
            hidden in prop::sample::select(vec![
                '\u{0}', '\t', '\u{7f}', '\u{AD}', '\u{200B}', '\u{200E}', '\u{202E}',
                '\u{2028}', '\u{2029}', '\u{2060}', '\u{FEFF}', '\u{E000}', '\u{3164}',
                '\u{A0}', '\u{3000}', '\u{FE0F}', '\u{E0001}',
            ]),
        ) {
            let id = format!("{head}{hidden}{tail}");
            prop_assert!(UserId::parse(&id).is_err(), "{:?}", id);
        }

        #[test]
        fn idempotency_key_parse_accepts_exactly_printable_ascii(s in "\\PC{0,130}|[ -~]{0,130}") {
            let ok = (1..=128).contains(&s.len()) && s.bytes().all(|b| (0x20..0x7f).contains(&b));
            prop_assert_eq!(IdempotencyKey::parse(s).is_ok(), ok);
        }

        #[test]
        fn request_id_parse_never_panics_and_round_trips(s in "\\PC{0,40}|[0-9a-fA-F-]{32,40}") {
            if let Ok(id) = RequestId::parse(&s) {
                prop_assert_eq!(RequestId::parse(&id.to_string()).unwrap(), id);
            }
        }

        #[test]
        fn campaign_id_parse_never_panics(s in "\\PC*") {
            let _ = CampaignId::parse(s);
        }
    }
}
