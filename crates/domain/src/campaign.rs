//! Campaigns: what an operator creates, and the state anyone can read back.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::number::WholeNumber;
use crate::shard::ShardCount;
use crate::waiting_room::{QueueFigures, WaitingRoom, WaitingRoomOptions};
use crate::{CampaignId, ValidationError, text, timefmt};

/// A campaign's display name: 1–200 visible characters, in Unicode NFC.
///
/// Spaces of any kind are allowed inside (a name is prose), not at either end; control, format,
/// line/paragraph separator, private-use and unassigned characters are refused, like in a
/// [`crate::UserId`]. PostgreSQL's `text` cannot hold U+0000 in particular: refused here as bad
/// input rather than left to fail the INSERT, which would read as a backend outage (503).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignName(String);

impl CampaignName {
    /// Longest name accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Normalizes an operator's name to NFC and accepts 1–200 visible characters with no
    /// whitespace at either end.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = text::nfc(value.into());
        if !(1..=Self::MAX_CHARS).contains(&value.chars().count()) {
            Err(ValidationError::new("name", "must be 1-200 characters"))
        } else if value.contains('\0') {
            Err(ValidationError::new(
                "name",
                "must not contain the NUL character (U+0000)",
            ))
        } else if !value.chars().all(text::is_visible) {
            Err(ValidationError::new(
                "name",
                "must be visible characters (no control, format, line or paragraph separator, \
                 private-use or unassigned characters)",
            ))
        } else if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
            Err(ValidationError::new(
                "name",
                "must not start or end with a space",
            ))
        } else {
            Ok(Self(value))
        }
    }

    /// A name as rushline stored it, taken verbatim: checked only against what the stores rely
    /// on (1–200 characters, no NUL), so a name created under an earlier, looser rule still
    /// reads back.
    pub fn from_record(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if (1..=Self::MAX_CHARS).contains(&value.chars().count()) && !value.contains('\0') {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "name",
                "must be 1-200 characters, none of them NUL",
            ))
        }
    }

    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// serde helper for a name read back from the API: [`CampaignName::from_record`]'s rule, so a
    /// client still reads a campaign named under an earlier, looser rule.
    pub fn deserialize_record<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_record(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for CampaignName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl TryFrom<String> for CampaignName {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<CampaignName> for String {
    fn from(name: CampaignName) -> String {
        name.0
    }
}

/// How many coupons a campaign can issue: 1 ..= 100,000,000.
///
/// From JSON it takes any whole number, `5.0` as well as `5` (see [`crate::number`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "WholeNumber", into = "u64")]
pub struct Stock(u32);

impl Stock {
    /// Largest stock accepted.
    pub const MAX: u64 = 100_000_000;

    /// Accepts 1 ..= 100,000,000.
    pub fn new(value: u64) -> Result<Self, ValidationError> {
        if (1..=Self::MAX).contains(&value) {
            // Fits: MAX < u32::MAX.
            Ok(Self(value as u32))
        } else {
            Err(ValidationError::new(
                "stock",
                "must be an integer from 1 to 100000000",
            ))
        }
    }

    /// The stock as a number.
    pub fn get(self) -> u64 {
        u64::from(self.0)
    }
}

impl TryFrom<u64> for Stock {
    type Error = ValidationError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<WholeNumber> for Stock {
    type Error = ValidationError;
    fn try_from(value: WholeNumber) -> Result<Self, Self::Error> {
        Self::new(value.0)
    }
}

impl From<Stock> for u64 {
    fn from(stock: Stock) -> u64 {
        stock.get()
    }
}

/// Who decides a campaign's requests, fixed at creation.
///
/// `queued` (the default): the accept step queues each request and a worker decides it; the API
/// answers `202`. `instant`: the accept step itself decides each request, with the same rule and
/// in the same arrival order, and the API answers `200` with the final status (and the coupon
/// code when issued) at once; a worker only persists. Every guarantee holds in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DecideMode {
    /// A worker decides; the API answers `202`.
    #[default]
    Queued,
    /// The accept step decides; the API answers `200` with the final status.
    Instant,
}

impl DecideMode {
    /// The contract's name for it (also its form in PostgreSQL and in Redis's campaign hash).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Instant => "instant",
        }
    }

    /// Reads the contract's name; anything else is refused.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        match value {
            "queued" => Ok(Self::Queued),
            "instant" => Ok(Self::Instant),
            _ => Err(ValidationError::new(
                "decide",
                "must be \"queued\" or \"instant\"",
            )),
        }
    }
}

impl std::fmt::Display for DecideMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for DecideMode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `POST /v1/campaigns` body, as sent. Field types validate themselves; `validate` checks the
/// rules that span fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCampaign {
    /// Chosen by the operator, or generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<CampaignId>,
    /// Display name.
    pub name: CampaignName,
    /// Coupons to issue.
    pub stock: Stock,
    /// When requests start being accepted; absent = now. RFC 3339, from
    /// 1970-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "timefmt::serialize_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Timestamp>))]
    pub opens_at: Option<DateTime<Utc>>,
    /// When requests stop being accepted; absent = never. RFC 3339, after `opens_at`, within the
    /// same range.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "timefmt::serialize_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Timestamp>))]
    pub closes_at: Option<DateTime<Utc>>,
    /// Who decides its requests; absent = `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decide: Option<DecideMode>,
    /// A waiting room in front of the campaign; absent = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoomOptions>,
    /// Stock shards, 1 ..= 64; absent (or `null`) = 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardCount>,
}

impl NewCampaign {
    /// Resolves defaults against `now` and checks the window. Timestamps are truncated to
    /// milliseconds, the precision rushline stores and compares them at.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        generated_id: impl FnOnce() -> CampaignId,
    ) -> Result<CampaignSpec, ValidationError> {
        let ms = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t);
        let in_range = |field, t: Option<DateTime<Utc>>| {
            t.map(|t| timefmt::accepted_instant(field, t)).transpose()
        };
        let closes_at = in_range("closes_at", self.closes_at)?.map(ms);
        let opens_at = match (in_range("opens_at", self.opens_at)?.map(ms), closes_at) {
            (Some(opens), Some(closes)) if closes <= opens => {
                return Err(ValidationError::new("closes_at", "must be after opens_at"));
            }
            (Some(opens), _) => opens,
            // Open now — unless it already closed, in which case the window is empty.
            (None, Some(closes)) => ms(now).min(closes),
            (None, None) => ms(now),
        };
        let waiting_room = self
            .waiting_room
            .map(WaitingRoomOptions::validate)
            .transpose()?;
        Ok(CampaignSpec {
            id: self.id.unwrap_or_else(generated_id),
            name: self.name,
            stock: self.stock,
            opens_at,
            closes_at,
            decide: self.decide.unwrap_or_default(),
            waiting_room,
            shards: self.shards.unwrap_or_default(),
        })
    }
}

/// A campaign as stored: every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSpec {
    /// Its id.
    pub id: CampaignId,
    /// Display name.
    pub name: CampaignName,
    /// Coupons to issue.
    pub stock: Stock,
    /// First instant requests are accepted.
    pub opens_at: DateTime<Utc>,
    /// First instant requests are refused again; `None` = never.
    pub closes_at: Option<DateTime<Utc>>,
    /// Who decides its requests.
    pub decide: DecideMode,
    /// Its waiting room, if it has one (`admit_per_second` as an operator last set it).
    pub waiting_room: Option<WaitingRoom>,
    /// Stock shards (fixed at creation).
    pub shards: ShardCount,
}

/// A waiting room as Redis is built with it: the option, whether admission is paused, and the
/// pre-queue's secret seed.
#[derive(Clone, PartialEq, Eq)]
pub struct WaitingRoomState {
    /// The option, `admit_per_second` as an operator last set it.
    pub room: WaitingRoom,
    /// Whether an operator paused admission.
    pub paused: bool,
    /// The 32 random bytes the pre-queue shuffle is keyed with (secret until the opening).
    pub prequeue_seed: Vec<u8>,
}

/// The seed stays out of logs and panics.
impl std::fmt::Debug for WaitingRoomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingRoomState")
            .field("room", &self.room)
            .field("paused", &self.paused)
            .field("prequeue_seed", &crate::secret::Redacted)
            .finish()
    }
}

/// Everything Redis needs to (re)build a campaign's state, as read from the record.
#[derive(Clone, PartialEq, Eq)]
pub struct CampaignSnapshot {
    /// Display name.
    pub name: String,
    /// Coupons it started with.
    pub stock: u64,
    /// Window start.
    pub opens_at: DateTime<Utc>,
    /// Window end, if any.
    pub closes_at: Option<DateTime<Utc>>,
    /// Issued rows in the record.
    pub issued: u64,
    /// The coupon sequence number to continue from: past every number the record holds, plus a
    /// gap of `stock` covering numbers a lost Redis may have handed out without recording them.
    pub next_seq: i64,
    /// The campaign's secret for minting codes.
    pub code_key: String,
    /// The record's rebuild epoch when read: a rebuild claims the next one
    /// ([`CampaignRecord::begin_rebuild`](crate::CampaignRecord::begin_rebuild)) only if no other
    /// rebuild claimed one since.
    pub epoch: i64,
    /// Who decides its requests (copied into Redis, where `accept.lua` reads it).
    pub decide: DecideMode,
    /// Its waiting room, if any (copied into Redis's campaign hash).
    pub waiting_room: Option<WaitingRoomState>,
    /// Stock shards (copied into Redis's campaign hash, where the view reads it back).
    pub shards: ShardCount,
}

/// The code key stays out of logs and panics (see [`crate::secret`]).
impl std::fmt::Debug for CampaignSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignSnapshot")
            .field("name", &self.name)
            .field("stock", &self.stock)
            .field("opens_at", &self.opens_at)
            .field("closes_at", &self.closes_at)
            .field("issued", &self.issued)
            .field("next_seq", &self.next_seq)
            .field("code_key", &crate::secret::Redacted)
            .field("epoch", &self.epoch)
            .field("decide", &self.decide)
            .field("waiting_room", &self.waiting_room)
            .field("shards", &self.shards)
            .finish()
    }
}

/// Where a campaign stands, as `GET /v1/campaigns/{id}` reports it: the window decides first,
/// then the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// `opens_at` is still ahead.
    Scheduled,
    /// Accepting requests, stock left.
    Open,
    /// Accepting requests, but every coupon is taken (requests are answered `sold_out`).
    SoldOut,
    /// Past `closes_at`: requests are refused with 409.
    Closed,
}

impl CampaignStatus {
    /// The contract's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Open => "open",
            Self::SoldOut => "sold_out",
            Self::Closed => "closed",
        }
    }

    /// The status at `now`: the window decides first, then the stock.
    pub fn at(
        now: DateTime<Utc>,
        opens_at: DateTime<Utc>,
        closes_at: Option<DateTime<Utc>>,
        remaining: u64,
    ) -> Self {
        if closes_at.is_some_and(|closes| now >= closes) {
            Self::Closed
        } else if now < opens_at {
            Self::Scheduled
        } else if remaining == 0 {
            Self::SoldOut
        } else {
            Self::Open
        }
    }
}

impl std::fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// `GET /v1/campaigns/{id}` body: a campaign as anyone reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignView {
    /// Its id.
    pub id: CampaignId,
    /// Display name.
    #[serde(deserialize_with = "CampaignName::deserialize_record")]
    pub name: CampaignName,
    /// Coupons it started with.
    pub stock: u64,
    /// Coupons not yet issued (lags by the queue, never more).
    pub remaining: u64,
    /// Coupons issued so far.
    pub issued: u64,
    /// Where it stands now.
    pub status: CampaignStatus,
    /// First instant requests are accepted.
    #[serde(serialize_with = "timefmt::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Timestamp))]
    pub opens_at: DateTime<Utc>,
    /// First instant requests are refused again; `null` = never.
    #[serde(serialize_with = "timefmt::serialize_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Timestamp>))]
    pub closes_at: Option<DateTime<Utc>>,
    /// Who decides its requests, as given at creation (`queued` unless created `instant`).
    // Default when reading: a server from before the mode existed sends none, and queued is all
    // it knew.
    #[serde(default)]
    pub decide: DecideMode,
    /// Stock shards, as given at creation (1 unless created with more). Decisions run on one
    /// slot whatever the count, until the sharded engine exists (README, *Stock shards*).
    // Default when reading: a server from before shards existed sends none, and had one.
    #[serde(default)]
    pub shards: ShardCount,
    /// The waiting room, defaults resolved and `admit_per_second` as now set; absent = none
    /// (like every option, echoed only when the campaign has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoom>,
    /// How far its queue has moved (campaigns with a waiting room, when Redis holds the queue);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueFigures>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn new_campaign(json: &str) -> Result<NewCampaign, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn fixed_id() -> CampaignId {
        CampaignId::parse("generated").unwrap()
    }

    #[test]
    fn stock_limits() {
        assert!(Stock::new(0).is_err());
        assert!(Stock::new(1).is_ok());
        assert!(Stock::new(100_000_000).is_ok());
        assert!(Stock::new(100_000_001).is_err());
        assert!(new_campaign(r#"{"name":"n","stock":1.5}"#).is_err());
        assert!(new_campaign(r#"{"name":"n","stock":-1}"#).is_err());
        assert!(new_campaign(r#"{"name":"n","stock":"10"}"#).is_err());
    }

    #[test]
    fn name_limits() {
        assert!(CampaignName::parse("").is_err());
        assert!(CampaignName::parse("é".repeat(200)).is_ok());
        assert!(CampaignName::parse("x".repeat(201)).is_err());
        assert!(CampaignName::parse("nul \0 inside").is_err());
        for bad in [
            "tab\there",
            "rlo\u{202E}",
            "zw\u{200B}sp",
            " lead",
            "trail\u{3000}",
        ] {
            assert!(CampaignName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["Concert presale", "콘서트 선예매", "Drop\u{A0}2026 🎟"] {
            assert!(CampaignName::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            CampaignName::parse("Cafe\u{301}").unwrap().as_str(),
            "Caf\u{e9}"
        );
        assert_eq!(
            CampaignName::from_record("old\tname").unwrap().as_str(),
            "old\tname"
        );
    }

    #[test]
    fn timestamps_outside_the_accepted_range_are_refused() {
        for (body, field) in [
            (
                r#"{"name":"x","stock":1,"opens_at":"-5000-01-01T00:00:00Z"}"#,
                "opens_at",
            ),
            (
                r#"{"name":"x","stock":1,"opens_at":"1969-12-31T23:59:59.999Z"}"#,
                "opens_at",
            ),
            (
                r#"{"name":"x","stock":1,"closes_at":"+10000-01-01T00:00:00Z"}"#,
                "closes_at",
            ),
            (
                r#"{"name":"x","stock":1,"closes_at":"+262142-01-01T00:00:00Z"}"#,
                "closes_at",
            ),
        ] {
            match new_campaign(body) {
                // chrono may refuse the most extreme forms itself; that is a 400 too.
                Err(_) => {}
                Ok(c) => assert_eq!(c.validate(t(0), fixed_id).unwrap_err().field, field),
            }
        }
        let edge = r#"{"name":"x","stock":1,"opens_at":"1970-01-01T00:00:00Z","closes_at":"9999-12-31T23:59:59.999Z"}"#;
        assert!(new_campaign(edge).unwrap().validate(t(0), fixed_id).is_ok());
    }

    #[test]
    fn empty_id_is_refused_and_absent_id_is_generated() {
        assert!(new_campaign(r#"{"id":"","name":"n","stock":1}"#).is_err());
        let spec = new_campaign(r#"{"name":"n","stock":1}"#)
            .unwrap()
            .validate(t(0), fixed_id)
            .unwrap();
        assert_eq!(spec.id.as_str(), "generated");
        assert_eq!(spec.opens_at, t(0));
        assert_eq!(spec.closes_at, None);
    }

    #[test]
    fn window_must_not_be_inverted() {
        let body = r#"{"name":"n","stock":1,"opens_at":"2026-12-01T12:00:00Z","closes_at":"2026-12-01T12:00:00Z"}"#;
        let err = new_campaign(body)
            .unwrap()
            .validate(t(0), fixed_id)
            .unwrap_err();
        assert_eq!(err.field, "closes_at");
        let body = r#"{"name":"n","stock":1,"opens_at":"2026-12-01T12:00:00+02:00","closes_at":"2026-12-01T11:00:00Z"}"#;
        let spec = new_campaign(body)
            .unwrap()
            .validate(t(0), fixed_id)
            .unwrap();
        assert_eq!(timefmt::rfc3339(&spec.opens_at), "2026-12-01T10:00:00.000Z");
    }

    #[test]
    fn a_campaign_may_be_created_already_closed() {
        let body = r#"{"name":"n","stock":1,"closes_at":"2020-01-01T00:00:00Z"}"#;
        let spec = new_campaign(body)
            .unwrap()
            .validate(t(0), fixed_id)
            .unwrap();
        assert_eq!(Some(spec.opens_at), spec.closes_at);
        assert_eq!(
            CampaignStatus::at(t(0), spec.opens_at, spec.closes_at, 1),
            CampaignStatus::Closed
        );
    }

    #[test]
    fn status_follows_window_then_stock() {
        let (opens, closes) = (t(10), Some(t(20)));
        assert_eq!(
            CampaignStatus::at(t(0), opens, closes, 5),
            CampaignStatus::Scheduled
        );
        assert_eq!(
            CampaignStatus::at(t(10), opens, closes, 5),
            CampaignStatus::Open
        );
        assert_eq!(
            CampaignStatus::at(t(15), opens, closes, 0),
            CampaignStatus::SoldOut
        );
        assert_eq!(
            CampaignStatus::at(t(20), opens, closes, 0),
            CampaignStatus::Closed
        );
        assert_eq!(
            CampaignStatus::at(t(99), opens, None, 3),
            CampaignStatus::Open
        );
    }

    #[test]
    fn view_renders_the_contract_shape() {
        let view = CampaignView {
            id: CampaignId::parse("concert-2026").unwrap(),
            name: CampaignName::parse("Concert presale").unwrap(),
            stock: 1000,
            remaining: 12,
            issued: 988,
            status: CampaignStatus::SoldOut,
            opens_at: t(0),
            closes_at: None,
            decide: DecideMode::Instant,
            shards: ShardCount::new(3).unwrap(),
            waiting_room: None,
            queue: None,
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "concert-2026", "name": "Concert presale", "stock": 1000,
                "remaining": 12, "issued": 988, "status": "sold_out",
                "opens_at": "2027-01-15T08:00:00.000Z", "closes_at": null, "decide": "instant",
                "shards": 3})
        );
    }

    #[test]
    fn decide_defaults_to_queued_and_takes_only_the_two_modes() {
        let decide =
            |json: &str| new_campaign(json).map(|c| c.validate(t(0), fixed_id).unwrap().decide);
        assert_eq!(
            decide(r#"{"name":"n","stock":1}"#).unwrap(),
            DecideMode::Queued
        );
        assert_eq!(
            decide(r#"{"name":"n","stock":1,"decide":null}"#).unwrap(),
            DecideMode::Queued
        );
        assert_eq!(
            decide(r#"{"name":"n","stock":1,"decide":"queued"}"#).unwrap(),
            DecideMode::Queued
        );
        assert_eq!(
            decide(r#"{"name":"n","stock":1,"decide":"instant"}"#).unwrap(),
            DecideMode::Instant
        );
        for bad in [r#""Instant""#, r#""now""#, r#""""#, "1", "true", "{}"] {
            let body = format!(r#"{{"name":"n","stock":1,"decide":{bad}}}"#);
            assert!(new_campaign(&body).is_err(), "{body}");
        }
        for mode in [DecideMode::Queued, DecideMode::Instant] {
            assert_eq!(DecideMode::parse(mode.as_str()).unwrap(), mode);
        }
        assert!(DecideMode::parse("INSTANT").is_err());
    }

    #[test]
    fn a_waiting_room_is_validated_and_carried_to_the_spec() {
        let spec = new_campaign(
            r#"{"name":"n","stock":1,"waiting_room":{"admit_per_second":50,"prequeue_secs":30}}"#,
        )
        .unwrap()
        .validate(t(0), fixed_id)
        .unwrap();
        assert_eq!(
            spec.waiting_room,
            Some(WaitingRoom::new(50, 600, 30).unwrap())
        );
        let none = new_campaign(r#"{"name":"n","stock":1,"waiting_room":null}"#).unwrap();
        assert_eq!(none.validate(t(0), fixed_id).unwrap().waiting_room, None);
        let err = new_campaign(r#"{"name":"n","stock":1,"waiting_room":{"admit_per_second":0}}"#)
            .unwrap()
            .validate(t(0), fixed_id)
            .unwrap_err();
        assert_eq!(err.field, "waiting_room.admit_per_second");
        assert!(
            new_campaign(r#"{"name":"n","stock":1,"waiting_room":{"admit_per_second":5,"x":1}}"#)
                .is_err()
        );
    }

    #[test]
    fn shards_default_to_one_and_take_1_to_64() {
        let shards =
            |json: &str| new_campaign(json).map(|c| c.validate(t(0), fixed_id).unwrap().shards);
        assert_eq!(
            shards(r#"{"name":"n","stock":1}"#).unwrap(),
            ShardCount::ONE
        );
        assert_eq!(
            shards(r#"{"name":"n","stock":1,"shards":null}"#).unwrap(),
            ShardCount::ONE
        );
        assert_eq!(
            shards(r#"{"name":"n","stock":1,"shards":3}"#)
                .unwrap()
                .get(),
            3
        );
        assert_eq!(
            shards(r#"{"name":"n","stock":1,"shards":64.0}"#)
                .unwrap()
                .get(),
            64
        );
        for bad in ["0", "65", "-1", "1.5", r#""3""#, "true", "[2]"] {
            let body = format!(r#"{{"name":"n","stock":1,"shards":{bad}}}"#);
            let err = new_campaign(&body).unwrap_err().to_string();
            assert!(
                err.contains("shards") || err.contains("integer"),
                "{body}: {err}"
            );
        }
    }

    proptest! {
        /// Any instant parses to a 400 or to a spec inside the accepted range, never a panic.
        #[test]
        fn any_window_validates_or_is_refused(
            opens in proptest::option::of(any::<i64>()),
            closes in proptest::option::of(any::<i64>()),
        ) {
            let at = |ms: i64| timefmt::from_millis(ms / 4);
            let body = NewCampaign {
                id: None,
                name: CampaignName::parse("n").unwrap(),
                stock: Stock::new(1).unwrap(),
                opens_at: opens.and_then(at),
                closes_at: closes.and_then(at),
                decide: None,
                waiting_room: None,
                shards: None,
            };
            if let Ok(spec) = body.validate(t(0), fixed_id) {
                for instant in [Some(spec.opens_at), spec.closes_at].into_iter().flatten() {
                    prop_assert!(timefmt::accepted_instant("t", instant).is_ok());
                    prop_assert!(timefmt::rfc3339(&instant).len() == 24);
                }
            }
        }

        #[test]
        fn any_json_body_for_a_campaign_parses_or_is_refused(s in "\\PC{0,80}") {
            let _ = serde_json::from_str::<NewCampaign>(&s)
                .map(|c| c.validate(t(0), fixed_id));
        }

        #[test]
        fn any_timestamp_text_parses_or_is_refused(
            year in "[+-]?[0-9]{1,6}",
            rest in "-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        ) {
            let body = format!(r#"{{"name":"n","stock":1,"opens_at":"{year}{rest}"}}"#);
            if let Ok(Ok(spec)) = new_campaign(&body).map(|c| c.validate(t(0), fixed_id)) {
                prop_assert!(timefmt::accepted_instant("t", spec.opens_at).is_ok());
            }
        }

        #[test]
        fn any_stock_in_range_round_trips(n in 1u64..=100_000_000) {
            let stock = Stock::new(n).unwrap();
            prop_assert_eq!(serde_json::to_string(&stock).unwrap(), n.to_string());
        }

        #[test]
        fn any_stock_out_of_range_is_refused(n in prop_oneof![Just(0u64), 100_000_001u64..]) {
            prop_assert!(Stock::new(n).is_err());
        }
    }
}
