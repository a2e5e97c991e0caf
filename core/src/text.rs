//! Small text helpers for the hot path.

/// `text.trim()`, answered at once for text that starts and ends with a visible ASCII
/// character (nearly every value ttedge sees): `str::trim` decodes a character at each end
/// to test it for Unicode whitespace. Such text has no whitespace to trim at either end, so
/// the answer is the same.
pub(crate) fn trim(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        [only] if only.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// `text.split_once(byte)` for an ASCII `byte`. On short text such as a header, a plain
/// byte loop beats the `char` pattern machinery that `str::split_once` goes through.
pub(crate) fn split_once(text: &str, byte: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == byte)?;
    Some((&text[..at], &text[at + 1..]))
}

/// `text.split(byte)` for an ASCII `byte`, the same way.
pub(crate) fn split(text: &str, byte: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    core::iter::from_fn(move || {
        let current = rest?;
        let (piece, after) = match split_once(current, byte) {
            Some((piece, after)) => (piece, Some(after)),
            None => (current, None),
        };
        rest = after;
        Some(piece)
    })
}

/// The text before the first `byte`, or all of it: `text.split(byte).next()`.
pub(crate) fn before(text: &str, byte: u8) -> &str {
    split_once(text, byte).map_or(text, |(head, _)| head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn splits_like_str() {
        for text in ["", ";", "a", "a;b", ";a;;b;", "é;ü;", "a=b; c=d"] {
            assert_eq!(
                split(text, b';').collect::<Vec<_>>(),
                text.split(';').collect::<Vec<_>>()
            );
            assert_eq!(split_once(text, b';'), text.split_once(';'));
            assert_eq!(Some(before(text, b';')), text.split(';').next());
        }
    }

    #[test]
    fn same_as_str_trim() {
        for text in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "ab",
            " a b ",
            "\u{a0}a\u{a0}",
            "é",
            "aé",
            "éa",
            "a\u{3000}",
            "\u{2028}",
            "\ta\n",
            "~!",
        ] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
    }
}
