"""Schemathesis hooks for scripts/schemathesis (issue 11 §7): what lets positive_data_acceptance
("a schema-valid request is not refused with 400") run on rushline's API.

The OpenAPI document states every rule of one field a pattern can state cheaply. What is left is
rules no JSON Schema of one field can carry, each stated in the document's prose:

- `POST /v1/campaigns`: `closes_at` after `opens_at`; an instant, not its text, lies from
  1970-01-01T00:00:00Z through 9999-12-31T23:59:59.999Z (`1970-01-01T00:30:00+01:00` is 1969 in
  UTC) and is no leap second; the name is visible characters with no space at either end after
  NFC normalization (a Unicode property rule; spelled out as a pattern it made generation about a
  hundred times slower).
- `POST /v1/campaigns/{id}/requests` and `POST /v1/campaigns/{id}/queue`: the same rule for
  `user_id` (no space but U+0020, either); on requests, an `Idempotency-Key` reused with another
  user is a `422`.
- `POST /v1/campaigns/{id}/stock`: the total may not pass 100,000,000, which depends on the
  campaign's stock at the time (a `400`).

Two mechanisms, each as narrow as its rule allows:

- `map_case` rewrites *positive* cases of the first two operations so they satisfy those rules
  (nothing else about them changes; negative cases are left alone, so negative_data_rejection
  sees exactly what was generated). Every rewritten case is still valid against the schema.
- Where a case cannot be made to satisfy a rule (the stock cap and an idempotency key reused
  across cases depend on what earlier requests did), schemathesis.toml lets that one operation's
  positive_data_acceptance accept that one status, and the checks below fail the run unless the
  refusal is exactly that rule's.

Only the Python standard library and schemathesis's own API: the hash-pinned install is unchanged.
"""

from __future__ import annotations

import calendar
import re
import unicodedata

import schemathesis

CREATE_CAMPAIGN = "POST /v1/campaigns"
ISSUE_REQUEST = "POST /v1/campaigns/{id}/requests"
JOIN_QUEUE = "POST /v1/campaigns/{id}/queue"
ADD_STOCK = "POST /v1/campaigns/{id}/stock"

# crates/domain: CampaignName::MAX_CHARS, UserId::MAX_CHARS, timefmt::{EARLIEST,LATEST}_MILLIS.
NAME_MAX_CHARS = 200
USER_ID_MAX_CHARS = 128
EARLIEST_MILLIS = 0
LATEST_MILLIS = 253_402_300_799_999

# What a visible character replaces an invisible one with: keeps the length the case was drawn
# with, and cannot compose with a preceding character under NFC.
REPLACEMENT = "x"

# crates/domain/src/text.rs: the categories `is_visible` refuses. Python's Unicode tables may be
# older than the API's: a character assigned since reads as unassigned here and is replaced too,
# which only narrows what is sent.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"})
# crates/domain/src/text.rs `is_default_ignorable`: default-ignorable code points of other
# categories.
DEFAULT_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def is_visible(c: str) -> bool:
    """`text::is_visible` of crates/domain."""
    if unicodedata.category(c) in INVISIBLE_CATEGORIES:
        return False
    code = ord(c)
    return not any(low <= code <= high for low, high in DEFAULT_IGNORABLE)


def visible_text(value: str, max_chars: int, *, other_spaces: bool) -> str:
    """`value` made into what `CampaignName::parse` (`other_spaces`) or `UserId::parse` accepts:
    NFC, invisible characters (and, for user ids, spaces other than U+0020) replaced, at most
    `max_chars` characters, no space at either end. Already acceptable text comes back unchanged.
    """

    def replaced(c: str) -> str:
        if not is_visible(c) or (not other_spaces and c != " " and unicodedata.category(c) == "Zs"):
            return REPLACEMENT
        return c

    text = "".join(map(replaced, unicodedata.normalize("NFC", value)))[:max_chars]
    # Rust's char::is_whitespace at either end; str.isspace is a superset of it.
    if text[:1].isspace():
        text = REPLACEMENT + text[1:]
    if text[-1:].isspace():
        text = text[:-1] + REPLACEMENT
    # A replacement may compose with a combining mark after it; composing only shortens.
    return unicodedata.normalize("NFC", text)


# RFC 3339 as chrono reads it (`T`, `t` or a space between date and time).
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


def instant_millis(value: str) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 `value`, truncated as `NewCampaign::validate`
    truncates; `None` for what this reading does not cover."""
    m = RFC3339.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, offset = m.group(7) or "", m.group(8)
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return seconds * 1000 + int((fraction + "000")[:3])


def accepted_instant(value: str) -> str:
    """`value` made into an instant `timefmt::accepted_instant` accepts: a leap second becomes the
    second before it, and an offset that moves the instant out of range becomes `Z` (the year
    the schema's pattern admits is then the UTC year)."""
    m = RFC3339.match(value)
    if m is None:
        return value
    if m.group(6) == "60":
        value = value[: m.start(6)] + "59" + value[m.end(6) :]
    millis = instant_millis(value)
    if millis is not None and not EARLIEST_MILLIS <= millis <= LATEST_MILLIS:
        value = value[: m.start(8)] + "Z"
    return value


def valid_campaign(body: dict) -> dict:
    """A `NewCampaign` body that satisfies the rules spanning fields or characters."""
    if isinstance(body.get("name"), str):
        body["name"] = visible_text(body["name"], NAME_MAX_CHARS, other_spaces=True)
    for field in ("opens_at", "closes_at"):
        if isinstance(body.get(field), str):
            body[field] = accepted_instant(body[field])
    opens, closes = body.get("opens_at"), body.get("closes_at")
    if isinstance(opens, str) and isinstance(closes, str):
        opens_ms, closes_ms = instant_millis(opens), instant_millis(closes)
        if opens_ms is not None and closes_ms is not None and closes_ms <= opens_ms:
            if closes_ms < opens_ms:
                body["opens_at"], body["closes_at"] = closes, opens
            else:
                # The same instant: an empty window. Without `closes_at` it never closes.
                del body["closes_at"]
    return body


def _is_positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def map_case(ctx, case):
    """Positive cases of the operations above satisfy the rules the schema cannot carry."""
    if not _is_positive(case) or not isinstance(case.body, dict):
        return case
    label = case.operation.label
    if label == CREATE_CAMPAIGN:
        case.body = valid_campaign(dict(case.body))
    elif label in (ISSUE_REQUEST, JOIN_QUEUE) and isinstance(case.body.get("user_id"), str):
        body = dict(case.body)
        body["user_id"] = visible_text(body["user_id"], USER_ID_MAX_CHARS, other_spaces=False)
        case.body = body
    return case


def _problem_detail(response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return ""
    detail = problem.get("detail") if isinstance(problem, dict) else None
    return detail if isinstance(detail, str) else ""


@schemathesis.check
def stock_refused_only_past_the_cap(ctx, response, case):
    """A positive `POST /v1/campaigns/{id}/stock` refused with `400` was refused for the total
    cap (schemathesis.toml accepts that `400`), not for anything in the request itself."""
    if case.operation.label != ADD_STOCK or not _is_positive(case):
        return None
    if response.status_code != 400:
        return None
    detail = _problem_detail(response)
    if "would exceed 100000000" not in detail:
        raise AssertionError(
            f"Valid data should have been accepted: 400 not for the 100,000,000 cap: {detail!r}"
        )
    return None


@schemathesis.check
def unprocessable_only_for_a_reused_key(ctx, response, case):
    """A positive `POST /v1/campaigns/{id}/requests` answered `422` carried an `Idempotency-Key`
    (schemathesis.toml accepts that `422`: the key was used with another user before)."""
    if case.operation.label != ISSUE_REQUEST or not _is_positive(case):
        return None
    if response.status_code != 422:
        return None
    if not (case.headers or {}).get("Idempotency-Key"):
        raise AssertionError("Valid data should have been accepted: 422 without Idempotency-Key")
    detail = _problem_detail(response)
    if "Idempotency-Key" not in detail:
        raise AssertionError(
            f"Valid data should have been accepted: 422 not for a reused key: {detail!r}"
        )
    return None
