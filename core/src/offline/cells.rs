//! Reading the cells of an offline row: values, content ids and timestamps.
//!
//! A local time (`YYYY-MM-DD HH:MM:SS`) is turned into an instant by a rule the caller
//! gives ([`LocalTime`]): `ttedge send` reads it in an IANA zone, the Worker at a fixed UTC
//! offset ([`FixedOffset`]). Everything else is read here, once for both.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::RowError;

/// Epoch numbers below this are seconds, above it milliseconds: 10^11 seconds is the year
/// 5138, 10^11 milliseconds is March 1973.
pub const MILLISECONDS_FROM: u64 = 100_000_000_000;

/// A wall-clock date and time without a zone, already checked to exist on the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilDateTime {
    /// The year, such as 2025.
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 59.
    pub second: u8,
}

impl CivilDateTime {
    fn to_time(self) -> Option<PrimitiveDateTime> {
        let month = Month::try_from(self.month).ok()?;
        let date = Date::from_calendar_date(self.year, month, self.day).ok()?;
        let time = Time::from_hms(self.hour, self.minute, self.second).ok()?;
        Some(PrimitiveDateTime::new(date, time))
    }

    /// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, two digits each but the year's four,
    /// on a date and time that exist.
    fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b' ' | b'T')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<u32> {
            let digits = &b[from..to];
            digits
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let small = |from| number(from, from + 2).and_then(|n| u8::try_from(n).ok());
        let civil = CivilDateTime {
            year: i32::try_from(number(0, 4)?).ok()?,
            month: small(5)?,
            day: small(8)?,
            hour: small(11)?,
            minute: small(14)?,
            second: small(17)?,
        };
        civil.to_time().map(|_| civil)
    }
}

/// How a local date and time becomes an instant.
pub trait LocalTime {
    /// The instant, in epoch milliseconds, of `local`; `None` when the rule cannot place it.
    fn to_utc_ms(&self, local: CivilDateTime) -> Option<i64>;
}

/// A fixed offset from UTC, such as `+07:00`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedOffset {
    seconds: i32,
}

impl FixedOffset {
    /// UTC itself.
    pub const UTC: FixedOffset = FixedOffset { seconds: 0 };

    /// `+HH:MM` or `-HH:MM` (up to ±18:00), or `Z`. A leading space is read as `+`: that
    /// is what an unencoded `+` in a query string becomes.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "Z" {
            return Some(FixedOffset::UTC);
        }
        let b = text.as_bytes();
        let sign = match b.first()? {
            b'+' | b' ' => 1,
            b'-' => -1,
            _ => return None,
        };
        if b.len() != 6 || b[3] != b':' || !b[1..3].iter().chain(&b[4..6]).all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| i32::from(b[i] - b'0') * 10 + i32::from(b[i + 1] - b'0');
        let (hours, minutes) = (two(1), two(4));
        if minutes > 59 || hours * 60 + minutes > 18 * 60 {
            return None;
        }
        Some(FixedOffset {
            seconds: sign * (hours * 3_600 + minutes * 60),
        })
    }

    /// The offset in seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.seconds
    }
}

impl LocalTime for FixedOffset {
    fn to_utc_ms(&self, local: CivilDateTime) -> Option<i64> {
        let utc = local.to_time()?.assume_utc().unix_timestamp();
        Some((utc - i64::from(self.seconds)) * 1_000)
    }
}

/// A timestamp cell as epoch milliseconds: epoch seconds or milliseconds, RFC 3339, or
/// `YYYY-MM-DD HH:MM:SS` (or with `T`) as a local time placed by `local`.
pub fn timestamp_ms(cell: &str, local: &dyn LocalTime) -> Result<i64, RowError> {
    let text = cell.trim();
    let bad = || RowError::BadTimestamp(text.to_string());
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let number: u64 = text.parse().map_err(|_| bad())?;
        let ms = if number < MILLISECONDS_FROM {
            number * 1_000
        } else {
            number
        };
        return i64::try_from(ms).map_err(|_| bad());
    }
    if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(instant.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad());
    }
    CivilDateTime::parse(text)
        .and_then(|civil| local.to_utc_ms(civil))
        .ok_or_else(bad)
}

/// A value cell: a non-negative decimal number with `.` as the decimal point; blank is none.
pub fn value(cell: &str) -> Result<Option<f64>, RowError> {
    let text = cell.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
        _ => Err(RowError::BadValue(String::from(text))),
    }
}

/// Content ids in one cell: separated by `|`, `,` or `;`, each trimmed.
pub fn content_ids(cell: &str) -> Vec<&str> {
    cell.split(['|', ',', ';'])
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UTC: FixedOffset = FixedOffset::UTC;

    #[test]
    fn timestamps() {
        // date -u -d '2025-11-25 10:02:00' +%s → 1764064920
        let ms = 1_764_064_920_000;
        assert_eq!(timestamp_ms("1764064920", &UTC), Ok(ms));
        assert_eq!(timestamp_ms("1764064920000", &UTC), Ok(ms));
        assert_eq!(timestamp_ms("2025-11-25T10:02:00Z", &UTC), Ok(ms));
        assert_eq!(timestamp_ms("2025-11-25T11:02:00+01:00", &UTC), Ok(ms));
        assert_eq!(timestamp_ms("2025-11-25T10:02:00.250Z", &UTC), Ok(ms + 250));
        assert_eq!(timestamp_ms(" 2025-11-25 10:02:00 ", &UTC), Ok(ms));
        assert_eq!(timestamp_ms("2025-11-25T10:02:00", &UTC), Ok(ms));
        let bangkok = FixedOffset::parse("+07:00").unwrap();
        assert_eq!(timestamp_ms("2025-11-25 17:02:00", &bangkok), Ok(ms));
        let caracas = FixedOffset::parse("-04:00").unwrap();
        assert_eq!(timestamp_ms("2025-11-25 06:02:00", &caracas), Ok(ms));
        for bad in [
            "25/11/2025",
            "",
            "2025-02-30 10:00:00",
            "2025-11-25 24:00:00",
            "2025-1-5 1:2:3",
        ] {
            assert_eq!(
                timestamp_ms(bad, &UTC),
                Err(RowError::BadTimestamp(bad.trim().into())),
                "{bad}"
            );
        }
        assert!(timestamp_ms("99999999999999999999", &UTC).is_err());
    }

    #[test]
    fn offsets() {
        assert_eq!(
            FixedOffset::parse("+07:00").map(FixedOffset::seconds),
            Some(25_200)
        );
        assert_eq!(
            FixedOffset::parse(" 05:30").map(FixedOffset::seconds),
            Some(19_800)
        );
        assert_eq!(
            FixedOffset::parse("-09:30").map(FixedOffset::seconds),
            Some(-34_200)
        );
        assert_eq!(FixedOffset::parse("Z"), Some(FixedOffset::UTC));
        assert_eq!(
            FixedOffset::parse("+18:00").map(FixedOffset::seconds),
            Some(64_800)
        );
        for bad in [
            "",
            "7",
            "+7:00",
            "+07",
            "+0700",
            "+18:01",
            "+07:60",
            "UTC+7",
            "+07:00:00",
        ] {
            assert_eq!(FixedOffset::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_and_ids() {
        assert_eq!(value(" 12.50 "), Ok(Some(12.5)));
        assert_eq!(value(""), Ok(None));
        assert_eq!(value("12,50"), Err(RowError::BadValue("12,50".into())));
        assert!(value("-1").is_err());
        assert!(value("inf").is_err());
        assert_eq!(content_ids("a| b ,c;;"), ["a", "b", "c"]);
    }

    proptest! {
        /// Any existing civil time reads back at the instant `time` computes for it.
        #[test]
        fn civil_times_read_back(seconds in 0i64..4_102_444_800, offset in -64_800i32..=64_800) {
            let offset = offset / 60 * 60;
            let local = OffsetDateTime::from_unix_timestamp(seconds + i64::from(offset)).unwrap();
            let text = alloc::format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                local.year(), u8::from(local.month()), local.day(),
                local.hour(), local.minute(), local.second()
            );
            let sign = if offset < 0 { '-' } else { '+' };
            let abs = offset.unsigned_abs();
            let rule = FixedOffset::parse(&alloc::format!(
                "{sign}{:02}:{:02}", abs / 3_600, abs % 3_600 / 60
            )).unwrap();
            prop_assert_eq!(timestamp_ms(&text, &rule), Ok(seconds * 1_000));
        }
    }
}
