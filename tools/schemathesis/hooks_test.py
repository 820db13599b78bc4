"""Self-test of hooks.py, run by scripts/schemathesis with the venv's Python before the fuzzing
run (a second or so): a positive case the hooks rewrite must come out as something the API
accepts, and text the API accepts already must come out unchanged.

    target/schemathesis/venv/bin/python -m unittest discover -s tools/schemathesis -p hooks_test.py
"""

from __future__ import annotations

import random
import sys
import unicodedata
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hooks  # noqa: E402


def name_accepted(value: str) -> bool:
    """`CampaignName::parse` of crates/domain, on the Unicode tables Python has."""
    text = unicodedata.normalize("NFC", value)
    return (
        1 <= len(text) <= hooks.NAME_MAX_CHARS
        and all(map(hooks.is_visible, text))
        and not text[0].isspace()
        and not text[-1].isspace()
    )


def user_id_accepted(value: str) -> bool:
    """`UserId::parse` of crates/domain, on the Unicode tables Python has."""
    text = unicodedata.normalize("NFC", value)
    return (
        1 <= len(text) <= hooks.USER_ID_MAX_CHARS
        and all(hooks.is_visible(c) and (c == " " or unicodedata.category(c) != "Zs") for c in text)
        and not text.startswith(" ")
        and not text.endswith(" ")
    )


def random_text(rng: random.Random, max_chars: int) -> str:
    """Any code point but a surrogate, biased to the awkward ones."""
    awkward = "\u0000\t\n \u00a0\u00ad\u0301\u0344\u115f\u200b\u2028\u202e\u3000\u3164\ufeff\ue000"
    chars = []
    for _ in range(rng.randint(1, max_chars)):
        if rng.random() < 0.5:
            chars.append(rng.choice(awkward))
        else:
            code = rng.randint(0, 0x10FFFF)
            chars.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "a")
    return "".join(chars)


def as_name(text: str) -> str:
    return hooks.visible_text(text, hooks.NAME_MAX_CHARS, other_spaces=True)


def as_user_id(text: str) -> str:
    return hooks.visible_text(text, hooks.USER_ID_MAX_CHARS, other_spaces=False)


class VisibleText(unittest.TestCase):
    def test_any_text_becomes_an_accepted_name_and_user_id(self):
        rng = random.Random(11)
        for _ in range(1000):
            name = random_text(rng, hooks.NAME_MAX_CHARS)
            self.assertTrue(name_accepted(as_name(name)), repr(name))
            user = random_text(rng, hooks.USER_ID_MAX_CHARS)
            self.assertTrue(user_id_accepted(as_user_id(user)), repr(user))

    def test_accepted_text_is_unchanged(self):
        for text in ["Concert presale", "u-123", "한국어 이름", "é", "a\u00a0b", "😀", "x" * 200]:
            self.assertEqual(as_name(text), text)
        for text in ["u-123", "user one", "é", "😀", "x" * 128]:
            self.assertEqual(as_user_id(text), text)

    def test_examples(self):
        self.assertEqual(hooks.visible_text(" a\u200bb\u0000 ", 200, other_spaces=True), "xaxbxx")
        self.assertEqual(hooks.visible_text("\u00a0u\u3000", 128, other_spaces=False), "xux")
        # NFC of U+0344 is two characters: 200 of them would be 400.
        self.assertEqual(len(hooks.visible_text("\u0344" * 200, 200, other_spaces=True)), 200)


class Window(unittest.TestCase):
    def test_instants_outside_the_range_or_leap_seconds_are_moved_in(self):
        cases = {
            "1970-01-01T00:30:00+01:00": "1970-01-01T00:30:00Z",
            "9999-12-31T23:30:00-01:00": "9999-12-31T23:30:00Z",
            "2016-12-31T23:59:60Z": "2016-12-31T23:59:59Z",
            "2020-01-01T00:00:00.5+05:00": "2020-01-01T00:00:00.5+05:00",
            "1970-01-01T00:00:00Z": "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z": "9999-12-31T23:59:59.999999Z",
        }
        for given, expected in cases.items():
            self.assertEqual(hooks.accepted_instant(given), expected)
            millis = hooks.instant_millis(expected)
            self.assertTrue(hooks.EARLIEST_MILLIS <= millis <= hooks.LATEST_MILLIS, expected)

    def test_closes_at_ends_up_after_opens_at(self):
        day1, day2 = "2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"
        swapped = hooks.valid_campaign({"name": "a", "opens_at": day2, "closes_at": day1})
        self.assertEqual((swapped["opens_at"], swapped["closes_at"]), (day1, day2))
        # The same instant once truncated to milliseconds (and across offsets): an empty window.
        for opens in ["2020-01-01T00:00:00.0009Z", "2020-01-01T01:00:00+01:00"]:
            body = hooks.valid_campaign({"name": "a", "opens_at": opens, "closes_at": day1})
            self.assertEqual(body, {"name": "a", "opens_at": opens})
        kept = {"name": "a", "opens_at": day1, "closes_at": "2020-01-01T00:00:00.001Z"}
        self.assertEqual(hooks.valid_campaign(dict(kept)), kept)

if __name__ == "__main__":
    unittest.main()
