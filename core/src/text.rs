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

#[cfg(test)]
mod tests {
    use super::*;

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
