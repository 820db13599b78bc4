//! The compact text records rushline stores in Redis, and reading script replies.
//!
//! Fields are tab-separated: user ids cannot contain control characters, campaign ids, codes and
//! numbers cannot contain tabs, so no escaping is needed.
//!
//! - status record (`…:r:<id>`): `status \t campaign \t user \t code \t decided_ms`
//!   with `status` one of `q i s d` and the last two empty until they apply;
//! - decision log line: `request_id \t user \t status \t code \t decided_ms \t coupon_seq`,
//!   lines joined by `\n`, one stream entry per decided batch.

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

fn code_field(raw: &str, field: &str) -> Result<Option<CouponCode>, QueueError> {
    if field.is_empty() {
        Ok(None)
    } else {
        CouponCode::parse(field)
            .map(Some)
            .map_err(|_| bad("coupon code", raw))
    }
}

/// Decodes a status record into the view `GET /v1/requests/{id}` returns.
pub fn parse_status(request_id: RequestId, raw: &str) -> Result<RequestView, QueueError> {
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
    Ok(RequestView {
        request_id,
        campaign_id: CampaignId::parse(campaign).map_err(|_| bad("status record campaign", raw))?,
        user_id: UserId::parse(user).map_err(|_| bad("status record user", raw))?,
        status: status_from_code(status)?,
        coupon_code: code_field(raw, code)?,
        decided_at,
    })
}

/// Decodes one decision log line.
pub fn parse_decision(line: &str) -> Result<Decision, QueueError> {
    let f: Vec<&str> = line.split('\t').collect();
    let [rid, user, status, code, ms, seq] = f.as_slice() else {
        return Err(bad("log line", line));
    };
    let status = status_from_code(status)?;
    if !status.is_final() {
        return Err(bad("log line status", line));
    }
    let ms: i64 = ms.parse().map_err(|_| bad("log line time", line))?;
    Ok(Decision {
        request_id: RequestId::parse(rid).map_err(|_| bad("log line id", line))?,
        user_id: UserId::parse(*user).map_err(|_| bad("log line user", line))?,
        status,
        coupon_code: code_field(line, code)?,
        coupon_seq: if seq.is_empty() {
            None
        } else {
            Some(seq.parse().map_err(|_| bad("log line seq", line))?)
        },
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

    #[test]
    fn status_records_decode() {
        let campaign = CampaignId::parse("c1").unwrap();
        let id = RequestId::new_for(&campaign);
        let queued = parse_status(id, "q\tc1\tu 1\t\t").unwrap();
        assert_eq!(queued.status, RequestStatus::Queued);
        assert_eq!(queued.decided_at, None);
        let issued = parse_status(id, "i\tc1\tu 1\tRL-7K3M-Q9XD\t1796119201234").unwrap();
        assert_eq!(issued.coupon_code.unwrap().as_str(), "RL-7K3M-Q9XD");
        assert!(parse_status(id, "x\tc1\tu\t\t").is_err());
        assert!(parse_status(id, "i\tc1").is_err());
    }

    #[test]
    fn log_lines_decode() {
        let campaign = CampaignId::parse("c1").unwrap();
        let id = RequestId::new_for(&campaign);
        let d = parse_decision(&format!("{id}\tu\ti\tRL-0000-0001\t5\t7")).unwrap();
        assert_eq!(d.coupon_seq, Some(7));
        let d = parse_decision(&format!("{id}\tu\ts\t\t5\t")).unwrap();
        assert_eq!(
            (d.status, d.coupon_code, d.coupon_seq),
            (RequestStatus::SoldOut, None, None)
        );
        assert!(parse_decision(&format!("{id}\tu\tq\t\t5\t")).is_err());
    }
}
