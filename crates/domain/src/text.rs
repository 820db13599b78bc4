//! What "printable" means for text a client sends: characters a person can see.
//!
//! A user id or a campaign name must not hide anything. Refused everywhere:
//!
//! - control characters (`Cc`: NUL, tab, newline, DEL, C1 controls) — they break log lines and
//!   the tab-separated records kept in Redis, and PostgreSQL's `text` cannot hold NUL;
//! - format characters (`Cf`: U+200B zero width space, U+202E right-to-left override, U+FEFF
//!   byte order mark, U+00AD soft hyphen …) — invisible, or reordering what is shown;
//! - line and paragraph separators (`Zl` U+2028, `Zp` U+2029);
//! - private-use (`Co`) and unassigned (`Cn`) code points — nothing a person can read, and
//!   unassigned ones may be given a meaning (and a normalization) later;
//! - the other default-ignorable code points (Hangul fillers U+115F, U+1160, U+3164, U+FFA0,
//!   variation selectors, the combining grapheme joiner, tags …): rendered as nothing.
//!
//! Text is normalized to NFC (canonical composition) before these checks and before use, so two
//! strings that render identically because they are canonically equivalent (`é` as U+00E9, or
//! as `e` + U+0301) are one value. NFKC is not applied: it would also fold distinct-looking
//! characters (`²` → `2`, full-width letters), changing ids their owners chose.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// `value` in NFC, borrowing when it already is (the common case: ASCII ids).
pub(crate) fn nfc(value: String) -> String {
    if unicode_normalization::is_nfc_quick(value.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        value
    } else {
        value.nfc().collect()
    }
}

/// Whether `c` is something a person can see (or an ordinary space, which callers restrict
/// further): see the module docs for what is refused.
pub(crate) fn is_visible(c: char) -> bool {
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    ) && !is_default_ignorable(c)
}

/// Whether `c` is a space other than U+0020 (no-break, ideographic, em, thin …): each looks
/// like an ordinary space, so an id holding one would look like another id.
pub(crate) fn is_other_space(c: char) -> bool {
    c != ' ' && c.general_category() == GeneralCategory::SpaceSeparator
}

/// Default-ignorable code points (Unicode `DerivedCoreProperties.txt`, Default_Ignorable_Code_Point)
/// that are not format characters, which [`is_visible`] refuses by category already.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_not_visible() {
        for c in [
            '\0',
            '\t',
            '\n',
            '\u{7f}',
            '\u{85}',
            '\u{AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{E000}',
            '\u{F0000}',
            '\u{115F}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FE0F}',
            '\u{034F}',
            '\u{E0041}',
            '\u{0378}',
        ] {
            assert!(!is_visible(c), "U+{:04X}", c as u32);
        }
        for c in [
            'a', 'Z', '0', '-', '@', ' ', 'é', '한', '字', '😀', '\u{0301}', '\u{00A0}',
        ] {
            assert!(is_visible(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn nfc_composes() {
        assert_eq!(nfc("e\u{301}".to_owned()), "\u{e9}");
        assert_eq!(nfc("\u{e9}".to_owned()), "\u{e9}");
        assert_eq!(nfc("u-123".to_owned()), "u-123");
        // Hangul jamo compose into the syllable.
        assert_eq!(nfc("\u{1100}\u{1161}".to_owned()), "\u{AC00}");
    }
}
