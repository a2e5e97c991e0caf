//! How figures are written on the page: exact integers, percentages and one-decimal numbers
//! without the float formatting machinery (the Worker's wasm has a size budget), UTC times,
//! query values and HTML escaping.

use std::fmt::{self, Display};

/// Shown for a figure that has no value (a rate without calls, a mean without events).
pub const NONE: &str = "–";

/// An optional count, milliseconds or code as an exact integer, or "–" when there is none.
/// (A figure that always has a value is written with `to_string`.)
pub fn int<T: Display>(value: Option<T>) -> String {
    value.map_or(NONE.into(), |n| n.to_string())
}

/// A 0–1 ratio as a percentage with one decimal, without the sign: 0.9734 → "97.3".
pub fn pct(value: impl Into<Option<f64>>) -> String {
    value.into().map_or(NONE.into(), |f| tenths(f * 1000.0))
}

/// A number with one decimal: 63.44 → "63.4".
pub fn dec1(value: impl Into<Option<f64>>) -> String {
    value.into().map_or(NONE.into(), |f| tenths(f * 10.0))
}

/// Formats `scaled` / 10 with one decimal, rounding half away from zero.
fn tenths(scaled: f64) -> String {
    if !scaled.is_finite() {
        return NONE.into();
    }
    let t = scaled.round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!("{sign}{}.{}", t / 10, t % 10)
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM` in UTC, or "–" (none, or beyond year 9999).
pub fn utc(ms: impl Into<Option<u64>>) -> String {
    let time = ms
        .into()
        .and_then(|ms| i64::try_from(ms / 1_000).ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    let Some(time) = time else {
        return NONE.into();
    };
    format!(
        "{}-{:02}-{:02} {:02}:{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute()
    )
}

/// `s` percent-encoded for a query value (`application/x-www-form-urlencoded`, as
/// `runtime::query` reads it back).
pub fn query_value(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `s` escaped for HTML text and quoted attribute values; displays without allocating.
pub fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// Text that displays HTML-escaped: see [`escape`].
pub struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(pct(0.97349), "97.3");
        assert_eq!(pct(1.0), "100.0");
        assert_eq!(pct(0.0004), "0.0");
        assert_eq!(pct(None), NONE);
        assert_eq!(pct(f64::NAN), NONE);
        assert_eq!(dec1(-2.25), "-2.3");
        assert_eq!(dec1(Some(63.44)), "63.4");
        assert_eq!(int(Some(12u64)), "12");
        assert_eq!(int(Some(-3i64)), "-3");
        assert_eq!(int(None::<u64>), NONE);
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(1_764_000_000_000), "2025-11-24 16:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_764_000_059_999), "2025-11-24 16:00");
        assert_eq!(utc(None), NONE);
        assert_eq!(utc(u64::MAX), NONE);
    }

    #[test]
    fn escaping_and_query_values() {
        assert_eq!(escape("a<b>&\"'").to_string(), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(escape("plain").to_string(), "plain");
        assert_eq!(query_value("t.shop-1.com"), "t.shop-1.com");
        assert_eq!(query_value("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
