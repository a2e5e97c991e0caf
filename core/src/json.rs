//! A small JSON writer for the hot path: the `data[]` element of every event.
//!
//! serde_json escapes strings one byte at a time through its `Formatter`; this writer checks
//! eight bytes at a time and copies clean runs whole, which matters because an element is
//! mostly long clean strings (user agent, URLs, hashes). The output is byte-for-byte what
//! serde_json writes for the same values: the same escapes (`\"`, `\\`, `\b`, `\f`, `\n`,
//! `\r`, `\t`, other controls as `\u00xx`; nothing else), `null` for non-finite floats,
//! and the same number formatting crates (`itoa`, `zmij`). Tests hold it to serde_json.

use alloc::string::String;

use crate::hashing::Sha256Hex;

use crate::text;

/// A member's key as written, `"name":`, made by [`key!`] at compile time so that writing it
/// is one copy of a constant instead of three. A type of its own, so a bare name can't be
/// passed where the quoted form is needed.
#[derive(Clone, Copy)]
pub(crate) struct Key(&'static str);

/// The [`Key`] of member `name` (a plain ASCII literal).
macro_rules! key {
    ($name:literal) => {
        $crate::json::Key::written(concat!("\"", $name, "\":"))
    };
}
pub(crate) use key;

impl Key {
    /// Only for [`key!`]: `written` is the key as it appears in the JSON.
    pub(crate) const fn written(written: &'static str) -> Self {
        Key(written)
    }
}

/// Writes the members of one JSON object, with a comma before all but the first.
pub(crate) struct Object<'w> {
    out: &'w mut String,
    has_members: bool,
}

impl<'w> Object<'w> {
    /// Opens an object in `out`.
    #[inline]
    pub(crate) fn open(out: &'w mut String) -> Self {
        out.push('{');
        Object {
            out,
            has_members: false,
        }
    }

    /// Writes `key` (made by [`key!`]) and returns the buffer for the value.
    #[inline]
    pub(crate) fn key(&mut self, key: Key) -> &mut String {
        if core::mem::replace(&mut self.has_members, true) {
            self.out.push(',');
        }
        self.out.push_str(key.0);
        self.out
    }

    /// A string member.
    #[inline]
    pub(crate) fn str(&mut self, key: Key, value: &str) {
        write_str(self.key(key), value);
    }

    /// A string member, left out when `None` (`skip_serializing_if = "Option::is_none"`).
    #[inline]
    pub(crate) fn opt_str(&mut self, key: Key, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    /// A SHA-256 member, left out when `None`. Hex digits need no escapes, so the digest is
    /// copied without the scan (three per event, 192 bytes).
    #[inline]
    pub(crate) fn opt_digest(&mut self, key: Key, value: Option<&Sha256Hex>) {
        if let Some(digest) = value {
            let out = self.key(key);
            out.push('"');
            out.push_str(digest);
            out.push('"');
        }
    }

    /// A float member, left out when `None`.
    #[inline]
    pub(crate) fn opt_f64(&mut self, key: Key, value: Option<f64>) {
        if let Some(value) = value {
            write_f64(self.key(key), value);
        }
    }

    /// Closes the object.
    #[inline]
    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

/// An integer, as serde_json writes it.
pub(crate) fn write_int(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// A float, as serde_json writes it: shortest round-trip digits, `null` when not finite.
pub(crate) fn write_f64(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

/// A boolean.
pub(crate) fn write_bool(out: &mut String, value: bool) {
    out.push_str(if value { "true" } else { "false" });
}

/// A quoted, escaped string.
pub(crate) fn write_str(out: &mut String, value: &str) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut clean_from = 0;
    while let Some(offset) = find_escape(&bytes[clean_from..]) {
        let at = clean_from + offset;
        // Every byte that needs an escape is ASCII, so `at` is a character boundary.
        out.push_str(&value[clean_from..at]);
        write_escape(out, bytes[at]);
        clean_from = at + 1;
    }
    out.push_str(&value[clean_from..]);
    out.push('"');
}

/// Whether JSON needs `byte` escaped: a control character, `"` or `\`.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The position of the first byte that needs an escape, eight bytes at a time.
pub(crate) fn find_escape(bytes: &[u8]) -> Option<usize> {
    let flags = |word| {
        text::bytes_below(word, 0x20)
            | text::bytes_equal(word, b'"')
            | text::bytes_equal(word, b'\\')
    };
    text::find(bytes, flags, needs_escape)
}

fn write_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        _ => {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &str) -> String {
        let mut out = String::new();
        write_str(&mut out, value);
        out
    }

    #[test]
    fn strings_match_serde_json() {
        let mut every_ascii = String::new();
        for byte in 0u8..0x80 {
            every_ascii.push(char::from(byte));
        }
        for value in [
            "",
            "plain",
            "exactly8",
            "a \"quoted\" \\ path/with/slashes",
            "control\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f} end",
            "ünïcödé 😀 \u{2028} and a long clean run after it, longer than eight bytes",
            "\"",
            "\\\\\\\\\\\\\\\\\\",
            every_ascii.as_str(),
        ] {
            assert_eq!(written(value), serde_json::to_string(value).unwrap());
        }
    }

    #[test]
    fn every_byte_at_every_position_of_a_word() {
        // Clean fillers next to the edges the bit trick tests (0x1f|0x20, 0x21|0x22|0x23,
        // 0x5b|0x5c|0x5d, 0x7f|0x80, 0xff), and a later special that must not win.
        let fillers = [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff];
        for byte in 0..=u8::MAX {
            for at in 0..20 {
                for (round, filler) in fillers.iter().enumerate() {
                    let mut bytes = [*filler; 24];
                    bytes[at] = byte;
                    let later = at + 1 + round % 3;
                    bytes[later] = [b'"', b'\\', 0x1f][round % 3];
                    let expected = if needs_escape(byte) { at } else { later };
                    assert_eq!(find_escape(&bytes), Some(expected), "{byte:#x} at {at}");
                    assert_eq!(
                        find_escape(&bytes[..at + 1]),
                        needs_escape(byte).then_some(at)
                    );
                }
            }
        }
    }

    #[test]
    fn numbers_match_serde_json() {
        for value in [
            0.0,
            -0.0,
            1.0,
            16.48,
            0.1 + 0.2,
            1e21,
            1e-7,
            5e-324,
            f64::MAX,
            -123.456,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut out = String::new();
            write_f64(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
        for value in [0i64, -1, i64::MIN, i64::MAX, 1_705_320_000] {
            let mut out = String::new();
            write_int(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
    }
}
