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

/// A one in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `word` whose value is below `n` (at most 0x80): the classic
/// "has a byte less than n" trick. The lowest flag is exact; a borrow may flag bytes above
/// it, never below, so the first match is always right.
pub(crate) fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & (ONES * 0x80)
}

/// The high bit of each byte of `word` equal to `byte`, in the same sense.
pub(crate) fn bytes_equal(word: u64, byte: u8) -> u64 {
    bytes_below(word ^ (ONES * u64::from(byte)), 1)
}

/// The position of the first byte that `flags` flags (see [`bytes_below`]), eight bytes
/// at a time; `is_match` tests the bytes of text shorter than a word one by one.
pub(crate) fn find(
    bytes: &[u8],
    flags: impl Fn(u64) -> u64,
    is_match: impl Fn(u8) -> bool,
) -> Option<usize> {
    let word_at = |at: usize| {
        let word = bytes.get(at..at + 8)?;
        Some(u64::from_le_bytes(word.try_into().unwrap_or_default()))
    };
    let mut at = 0;
    while let Some(word) = word_at(at) {
        let found = flags(word);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    if at == bytes.len() {
        return None;
    }
    // The last few bytes: the last word again, overlapping bytes already found clean. Clean
    // bytes raise no flag and no borrow, so they change nothing in the test.
    match bytes
        .len()
        .checked_sub(8)
        .and_then(|last| Some((last, word_at(last)?)))
    {
        Some((last, word)) => {
            let found = flags(word);
            (found != 0).then(|| last + found.trailing_zeros() as usize / 8)
        }
        None => (at..bytes.len()).find(|&at| is_match(bytes[at])),
    }
}

/// `text.split_once(byte)` for an ASCII `byte`, without the `char` pattern machinery, which
/// costs more than the search itself on short text such as a header.
pub(crate) fn split_once(text: &str, byte: u8) -> Option<(&str, &str)> {
    let at = find(
        text.as_bytes(),
        |word| bytes_equal(word, byte),
        |b| b == byte,
    )?;
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
    fn finds_the_first_match_at_any_length() {
        for len in 0..=24 {
            for first in 0..=len {
                // `;` at `first` (none when it is `len`), and at every later even position.
                let bytes: Vec<u8> = (0..len)
                    .map(|at| {
                        if at == first || (at > first && at % 2 == 0) {
                            b';'
                        } else {
                            0xa0
                        }
                    })
                    .collect();
                let found = find(&bytes, |word| bytes_equal(word, b';'), |b| b == b';');
                assert_eq!(found, (first < len).then_some(first), "{len} {first}");
            }
        }
    }

    #[test]
    fn splits_like_str() {
        let long = "_ttp=2Z3bYkq0cL1mN4pQ7rS9tUvWxYz; other=1;ünï;;last";
        for text in [
            "",
            ";",
            "a",
            "a;b",
            ";a;;b;",
            "é;ü;",
            "a=b; c=d",
            long,
            &long[5..],
        ] {
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
