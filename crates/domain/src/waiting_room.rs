//! The waiting room (CONTRACT.md, campaign option `waiting_room`, section *Waiting room*): the
//! option an operator gives at creation, as validated and echoed, and the figures a campaign
//! view shows of its queue.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::number;

/// `"waiting_room"` in `POST /v1/campaigns`, as sent: [`WaitingRoomOptions::validate`] resolves
/// the defaults and checks the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomOptions {
    /// Positions admitted per second, at most one second of burst: 1 ..= 1,000,000.
    #[serde(deserialize_with = "number::whole")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub admit_per_second: u64,
    /// How long an admitted ticket stays valid, in seconds: 10 ..= 86,400; absent = 600.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::whole_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 86_400))]
    pub pass_secs: Option<u64>,
    /// How long before `opens_at` users may join (they are shuffled at opening), in seconds:
    /// 0 ..= 86,400; absent = 0.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::whole_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86_400))]
    pub prequeue_secs: Option<u64>,
    /// Leading zero bits of SHA-256 a join must show (proof of work, `2^bits` hashes on
    /// average; `Rushline-Proof` header): 0 ..= 24; absent = 0, none asked.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::whole_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 24))]
    pub proof_of_work_bits: Option<u64>,
}

impl WaitingRoomOptions {
    /// Resolves the defaults and checks each limit.
    pub fn validate(self) -> Result<WaitingRoom, ValidationError> {
        WaitingRoom::new(
            self.admit_per_second,
            self.pass_secs
                .unwrap_or(u64::from(WaitingRoom::DEFAULT_PASS_SECS)),
            self.prequeue_secs.unwrap_or(0),
        )?
        .with_proof_of_work_bits(self.proof_of_work_bits.unwrap_or(0))
    }
}

/// A campaign's waiting room, every default resolved: as stored, warmed into Redis and echoed in
/// the campaign view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingRoom {
    /// Positions admitted per second now (an operator may change it while the campaign runs).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub admit_per_second: u32,
    /// Seconds an admitted ticket stays valid.
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 86_400))]
    pub pass_secs: u32,
    /// Seconds before `opens_at` the queue takes (pre-queued) joins.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86_400))]
    pub prequeue_secs: u32,
    /// Leading zero bits of SHA-256 a join must show (0: no proof of work asked).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 24))]
    pub proof_of_work_bits: u8,
}

impl WaitingRoom {
    /// Highest `admit_per_second`.
    pub const MAX_ADMIT_PER_SECOND: u64 = 1_000_000;
    /// Shortest pass.
    pub const MIN_PASS_SECS: u64 = 10;
    /// Longest pass, and longest pre-queue.
    pub const MAX_SECS: u64 = 86_400;
    /// `pass_secs` when absent.
    pub const DEFAULT_PASS_SECS: u32 = 600;
    /// Highest `proof_of_work_bits` (2^24 hashes: well over ten seconds on a phone).
    pub const MAX_PROOF_OF_WORK_BITS: u64 = 24;

    /// Checks each limit; no proof of work asked (see [`Self::with_proof_of_work_bits`]).
    pub fn new(
        admit_per_second: u64,
        pass_secs: u64,
        prequeue_secs: u64,
    ) -> Result<Self, ValidationError> {
        let admit_per_second = admit_rate(admit_per_second)?;
        if !(Self::MIN_PASS_SECS..=Self::MAX_SECS).contains(&pass_secs) {
            return Err(ValidationError::new(
                "waiting_room.pass_secs",
                "must be an integer from 10 to 86400",
            ));
        }
        if prequeue_secs > Self::MAX_SECS {
            return Err(ValidationError::new(
                "waiting_room.prequeue_secs",
                "must be an integer from 0 to 86400",
            ));
        }
        // Both fit: checked against MAX_SECS above.
        Ok(Self {
            admit_per_second,
            pass_secs: pass_secs as u32,
            prequeue_secs: prequeue_secs as u32,
            proof_of_work_bits: 0,
        })
    }

    /// The same room asking `bits` of proof of work on join: 0 ..= 24.
    pub fn with_proof_of_work_bits(self, bits: u64) -> Result<Self, ValidationError> {
        if bits > Self::MAX_PROOF_OF_WORK_BITS {
            return Err(ValidationError::new(
                "waiting_room.proof_of_work_bits",
                "must be an integer from 0 to 24",
            ));
        }
        // Fits: at most 24.
        Ok(Self {
            proof_of_work_bits: bits as u8,
            ..self
        })
    }
}

/// Checks an `admit_per_second` (at creation or an operator's change): 1 ..= 1,000,000.
pub fn admit_rate(value: u64) -> Result<u32, ValidationError> {
    if (1..=WaitingRoom::MAX_ADMIT_PER_SECOND).contains(&value) {
        // Fits: MAX_ADMIT_PER_SECOND < u32::MAX.
        Ok(value as u32)
    } else {
        Err(ValidationError::new(
            "waiting_room.admit_per_second",
            "must be an integer from 1 to 1000000",
        ))
    }
}

/// `"queue"` in a campaign view (campaigns with a waiting room): how far the line has moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueFigures {
    /// Positions handed out so far (0 before the opening: pre-queued users have none yet).
    pub joined: u64,
    /// Every position up to this one is admitted.
    pub admitted_through: u64,
    /// Present, `true`, while an operator has paused admission.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// `POST /v1/campaigns/{id}/admission` body: an operator's change to a running waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Read by utoipa (`additionalProperties: false`); the deserializer below denies them too.
#[serde(deny_unknown_fields)]
pub struct AdmissionChange {
    /// New positions-per-second rate, 1 ..= 1,000,000; absent = unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub admit_per_second: Option<u64>,
    /// `true` pauses admission (the serving counter stops), `false` resumes it; absent = unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

// Only a JSON object: serde's derived `Deserialize` also takes a sequence for a struct, and with
// every field optional `[]` or `[null, null]` would have passed as a change of nothing.
impl<'de> Deserialize<'de> for AdmissionChange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The fields, as the derive reads them once the value is known to be an object.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default, deserialize_with = "number::whole_opt")]
            admit_per_second: Option<u64>,
            #[serde(default)]
            paused: Option<bool>,
        }

        struct ObjectOnly;

        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = Fields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
                Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        let fields = deserializer.deserialize_map(ObjectOnly)?;
        Ok(Self {
            admit_per_second: fields.admit_per_second,
            paused: fields.paused,
        })
    }
}

impl AdmissionChange {
    /// The rate checked (`None`: unchanged). A body that changes nothing (`{}`, or only
    /// `null`s, which the schema allows) is a valid no-op: the answer is the campaign as it
    /// stands, as a read would show it.
    pub fn validate(self) -> Result<(Option<u32>, Option<bool>), ValidationError> {
        Ok((
            self.admit_per_second.map(admit_rate).transpose()?,
            self.paused,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(json: &str) -> Result<WaitingRoom, String> {
        serde_json::from_str::<WaitingRoomOptions>(json)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_resolved() {
        assert_eq!(
            options(r#"{"admit_per_second": 500}"#).unwrap(),
            WaitingRoom {
                admit_per_second: 500,
                pass_secs: 600,
                prequeue_secs: 0,
                proof_of_work_bits: 0
            }
        );
        assert_eq!(
            options(
                r#"{"admit_per_second": 1.0, "pass_secs": 10, "prequeue_secs": 86400,
                    "proof_of_work_bits": 24}"#
            )
            .unwrap(),
            WaitingRoom {
                admit_per_second: 1,
                pass_secs: 10,
                prequeue_secs: 86_400,
                proof_of_work_bits: 24
            }
        );
    }

    #[test]
    fn limits_are_checked_with_the_field_named() {
        for (json, field) in [
            (r#"{"admit_per_second": 0}"#, "admit_per_second"),
            (r#"{"admit_per_second": 1000001}"#, "admit_per_second"),
            (r#"{"admit_per_second": 5, "pass_secs": 9}"#, "pass_secs"),
            (
                r#"{"admit_per_second": 5, "pass_secs": 86401}"#,
                "pass_secs",
            ),
            (
                r#"{"admit_per_second": 5, "prequeue_secs": 86401}"#,
                "prequeue_secs",
            ),
            (
                r#"{"admit_per_second": 5, "proof_of_work_bits": 25}"#,
                "proof_of_work_bits",
            ),
        ] {
            let err = options(json).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
        assert!(options(r#"{"admit_per_second": 1000000}"#).is_ok());
        assert!(options(r#"{"admit_per_second": 5, "pass_secs": null}"#).is_ok());
        for bad in [
            "{}",
            r#"{"admit_per_second": 5, "extra": 1}"#,
            r#"{"admit_per_second": 1.5}"#,
            r#"{"admit_per_second": -1}"#,
            r#"{"admit_per_second": "5"}"#,
            r#"{"admit_per_second": 5, "proof_of_work_bits": -1}"#,
            r#"{"admit_per_second": 5, "proof_of_work_bits": 8.5}"#,
        ] {
            assert!(options(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_admission_change_is_checked_and_may_change_nothing() {
        let change = |json: &str| {
            serde_json::from_str::<AdmissionChange>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map_err(|e| e.to_string()))
        };
        assert_eq!(change(r#"{"paused": true}"#).unwrap(), (None, Some(true)));
        assert_eq!(
            change(r#"{"admit_per_second": 20, "paused": false}"#).unwrap(),
            (Some(20), Some(false))
        );
        assert_eq!(change("{}").unwrap(), (None, None));
        assert_eq!(
            change(r#"{"admit_per_second": null, "paused": null}"#).unwrap(),
            (None, None)
        );
        assert!(change(r#"{"admit_per_second": 0}"#).is_err());
        assert!(change(r#"{"paused": "yes"}"#).is_err());
        assert!(change(r#"{"rate": 5}"#).is_err());
        assert!(change("[]").is_err());
        assert!(change("[null, null]").is_err());
        assert!(change("[5, true]").is_err());
    }

    #[test]
    fn figures_show_paused_only_when_paused() {
        let figures = QueueFigures {
            joined: 3,
            admitted_through: 1,
            paused: false,
        };
        assert_eq!(
            serde_json::to_value(figures).unwrap(),
            serde_json::json!({"joined": 3, "admitted_through": 1})
        );
    }
}
