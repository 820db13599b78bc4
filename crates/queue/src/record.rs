//! The compact text records rushline stores in Redis, and reading script replies.
//!
//! Fields are tab-separated: user ids cannot contain control characters, campaign ids, codes and
//! numbers cannot contain tabs, so no escaping is needed.
//!
//! - status record (`…:r:<id>`): `status \t campaign \t user \t coupon \t decided_ms`
//!   with `status` one of `q i s d` and the last two empty until they apply;
//! - decision log line: `request_id \t user \t status \t code \t decided_ms \t coupon_seq`,
//!   lines joined by `\n`, one stream entry per decided batch.
//!
//! An issued request's coupon is recorded by its sequence number: `decide.lua` writes the number
//! (decimal) in a status record's `coupon` field and leaves a log line's `code` empty beside its
//! `coupon_seq`; readers mint the code from it with the campaign's key ([`CouponCode::mint`],
//! see [`crate::codes`]). No script writes a code itself, so a record or line that holds one is
//! malformed.

use redis::Value;
use rushline_domain::{
    CampaignId, CouponCode, Decision, RequestId, RequestStatus, RequestView, UserId, timefmt,
};

use crate::QueueError;

/// The one-letter status codes the scripts write.
pub(crate) fn status_from_code(code: &str) -> Result<RequestStatus, QueueError> {
    match code {
        "q" => Ok(RequestStatus::Queued),
        "i" => Ok(RequestStatus::Issued),
        "s" => Ok(RequestStatus::SoldOut),
        "d" => Ok(RequestStatus::Duplicate),
        other => Err(QueueError::protocol(format!("status code {other:?}"))),
    }
}

/// The one-letter code of a status, as the scripts expect it.
pub(crate) fn status_code(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Queued => "q",
        RequestStatus::Issued => "i",
        RequestStatus::SoldOut => "s",
        RequestStatus::Duplicate => "d",
    }
}

fn bad(what: &str, raw: &str) -> QueueError {
    QueueError::protocol(format!("{what}: {raw:?}"))
}

/// A status record's coupon field: empty, or the decimal sequence number of an issued coupon.
fn coupon_seq_field(raw: &str, field: &str) -> Result<Option<u64>, QueueError> {
    if field.is_empty() {
        Ok(None)
    } else if field.bytes().all(|b| b.is_ascii_digit()) {
        field.parse().map(Some).map_err(|_| bad("coupon seq", raw))
    } else {
        Err(bad("coupon seq", raw))
    }
}

/// A decoded status record: the view `GET /v1/requests/{id}` returns, short of its coupon code.
/// An issued record holds the coupon's sequence number (`coupon_seq`) and the code is
/// `CouponCode::mint(campaign key, coupon_seq)` (see [`Queue::request_status`](crate::Queue::request_status)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    /// The view; its `coupon_code` is always `None` (the code is minted from `coupon_seq`).
    pub view: RequestView,
    /// The sequence number to mint the code from, when the record holds one.
    pub coupon_seq: Option<u64>,
}

/// Decodes a status record.
pub fn parse_status(request_id: RequestId, raw: &str) -> Result<StatusRecord, QueueError> {
    let mut fields = raw.split('\t');
    let (Some(status), Some(campaign), Some(user), Some(code), Some(ms)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(bad("status record", raw));
    };
    let decided_at = if ms.is_empty() {
        None
    } else {
        let ms: i64 = ms.parse().map_err(|_| bad("status record time", raw))?;
        Some(timefmt::from_millis(ms).ok_or_else(|| bad("status record time", raw))?)
    };
    let status = status_from_code(status)?;
    let coupon_seq = match coupon_seq_field(raw, code)? {
        Some(_) if status != RequestStatus::Issued => {
            return Err(bad("coupon seq on a record not issued", raw));
        }
        seq => seq,
    };
    Ok(StatusRecord {
        view: RequestView {
            request_id,
            campaign_id: CampaignId::parse(campaign)
                .map_err(|_| bad("status record campaign", raw))?,
            user_id: UserId::from_record(user).map_err(|_| bad("status record user", raw))?,
            status,
            coupon_code: None,
            decided_at,
        },
        coupon_seq,
    })
}

/// Decodes one decision log line of the campaign whose code key is `code_key`: an issued line
/// with an empty code and a sequence number gets its code minted from them.
pub fn parse_decision(line: &str, code_key: &str) -> Result<Decision, QueueError> {
    let f: Vec<&str> = line.split('\t').collect();
    let [rid, user, status, code, ms, seq] = f.as_slice() else {
        return Err(bad("log line", line));
    };
    let status = status_from_code(status)?;
    if !status.is_final() {
        return Err(bad("log line status", line));
    }
    let ms: i64 = ms.parse().map_err(|_| bad("log line time", line))?;
    let coupon_seq: Option<i64> = if seq.is_empty() {
        None
    } else {
        Some(seq.parse().map_err(|_| bad("log line seq", line))?)
    };
    if !code.is_empty() {
        return Err(bad("log line code", line));
    }
    let coupon_code = match coupon_seq {
        Some(seq) if status == RequestStatus::Issued => {
            let seq = u64::try_from(seq).map_err(|_| bad("log line seq", line))?;
            Some(CouponCode::mint(code_key, seq))
        }
        _ if status == RequestStatus::Issued => {
            return Err(bad("issued log line without a coupon", line));
        }
        _ => None,
    };
    Ok(Decision {
        request_id: RequestId::parse(rid).map_err(|_| bad("log line id", line))?,
        user_id: UserId::from_record(*user).map_err(|_| bad("log line user", line))?,
        status,
        coupon_code,
        coupon_seq,
        decided_at: timefmt::from_millis(ms).ok_or_else(|| bad("log line time", line))?,
    })
}

/// Reads a script reply element as text.
pub(crate) fn text(value: &Value) -> Result<&str, QueueError> {
    match value {
        Value::BulkString(bytes) => {
            std::str::from_utf8(bytes).map_err(|_| QueueError::protocol("non-UTF-8 reply"))
        }
        Value::SimpleString(s) => Ok(s),
        other => Err(QueueError::protocol(format!(
            "expected text, got {other:?}"
        ))),
    }
}

/// Reads a script reply element as an integer.
pub(crate) fn int(value: &Value) -> Result<i64, QueueError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse()
            .map_err(|_| QueueError::protocol(format!("expected integer, got {other:?}"))),
    }
}

/// Reads a script reply element as an array.
pub(crate) fn array(value: &Value) -> Result<&[Value], QueueError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(QueueError::protocol(format!(
            "expected array, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-code-key";

    #[test]
    fn status_records_decode() {
        let campaign = CampaignId::parse("c1").unwrap();
        let id = RequestId::new_for(&campaign);
        let queued = parse_status(id, "q\tc1\tu 1\t\t").unwrap();
        assert_eq!(queued.view.status, RequestStatus::Queued);
        assert_eq!((queued.view.decided_at, queued.coupon_seq), (None, None));
        assert!(parse_status(id, "x\tc1\tu\t\t").is_err());
        assert!(parse_status(id, "i\tc1").is_err());
    }

    #[test]
    fn issued_records_hold_a_sequence_number() {
        let campaign = CampaignId::parse("c1").unwrap();
        let id = RequestId::new_for(&campaign);
        let issued = parse_status(id, "i\tc1\tu 1\t1048576\t1796119201234").unwrap();
        assert_eq!(
            (issued.view.coupon_code, issued.coupon_seq),
            (None, Some(1 << 20))
        );
        assert!(issued.view.decided_at.is_some());
        // A campaign or user made of digits is never mistaken for the coupon field.
        let digits = parse_status(id, "i\t123\t456\t7\t5").unwrap();
        assert_eq!(
            (digits.view.campaign_id.as_str(), digits.coupon_seq),
            ("123", Some(7))
        );
        for bad in [
            "s\tc1\tu\t7\t5",
            "i\tc1\tu\t-7\t5",
            "i\tc1\tu\tRL-7K3M\t5",
            // No script writes a code into a record.
            "i\tc1\tu\tRL-7K3M-Q9XD\t5",
            "i\tc1\tu\t99999999999999999999999\t5",
        ] {
            assert!(parse_status(id, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_lines_decode() {
        let campaign = CampaignId::parse("c1").unwrap();
        let id = RequestId::new_for(&campaign);
        let d = parse_decision(&format!("{id}\tu\ts\t\t5\t"), KEY).unwrap();
        assert_eq!(
            (d.status, d.coupon_code, d.coupon_seq),
            (RequestStatus::SoldOut, None, None)
        );
        assert!(parse_decision(&format!("{id}\tu\tq\t\t5\t"), KEY).is_err());
        assert!(parse_decision(&format!("{id}\tu\ti\t\t5\t"), KEY).is_err());
    }

    #[test]
    fn issued_log_lines_mint_their_code() {
        let campaign = CampaignId::parse("c1").unwrap();
        let id = RequestId::new_for(&campaign);
        let d = parse_decision(&format!("{id}\tu\ti\t\t5\t7"), KEY).unwrap();
        assert_eq!(d.coupon_seq, Some(7));
        assert_eq!(d.coupon_code, Some(CouponCode::mint(KEY, 7)));
        // No script writes a code into a log line.
        assert!(parse_decision(&format!("{id}\tu\ti\tRL-0000-0001\t5\t7"), KEY).is_err());
        assert!(parse_decision(&format!("{id}\tu\ti\t\t5\t-1"), KEY).is_err());
    }
}
