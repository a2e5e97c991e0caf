//! Reading an offline file for `ttedge send`: CSV or JSON Lines rows, each with the line
//! it starts on, its cells picked by column into the fields of an offline event.
//!
//! The rules themselves (header names, `--map`, the CSV reader, timestamps, values) are
//! core's (`ttedge_core::offline`), shared with the Worker's upload endpoint; this module
//! adds the file, JSON Lines and IANA time zones (jiff).

use std::path::Path;

use anyhow::Context as _;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use ttedge_core::offline::csv::strip_bom;
use ttedge_core::offline::{csv_rows as core_csv_rows, CivilDateTime, LocalTime};

pub use ttedge_core::offline::{Cells, ColumnMap, Field};

/// One row's cells by field, or why the row could not be read.
pub struct Row {
    /// 1-based physical line the row starts on.
    pub line: usize,
    /// The cells, or the reason the row is unreadable.
    pub cells: Result<Cells, String>,
}

/// The layout of an offline file.
#[derive(Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

/// By extension (`.csv`, `.tsv`, `.txt`: CSV; `.jsonl`, `.ndjson`, `.json`: JSON Lines),
/// else by content: a first non-blank character `{` means JSON Lines.
pub fn format_of(path: &Path, text: &str) -> Format {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv" | "tsv" | "txt") => Format::Csv,
        Some("jsonl" | "ndjson" | "json") => Format::JsonLines,
        _ if text.trim_start().starts_with('{') => Format::JsonLines,
        _ => Format::Csv,
    }
}

/// Reads the file, without its UTF-8 byte-order mark.
pub fn read(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = match strip_bom(&bytes) {
        text if text.len() < bytes.len() => text.to_vec(),
        _ => bytes,
    };
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// The rows of a CSV file with a header row, read by core's CSV reader.
pub fn csv_rows(text: &str, map: &ColumnMap) -> anyhow::Result<Vec<Row>> {
    Ok(core_csv_rows(text.as_bytes(), map, None)?
        .into_iter()
        .map(|row| Row {
            line: row.line,
            cells: row.cells.map_err(|error| error.to_string()),
        })
        .collect())
}

/// The rows of a JSON Lines file: one flat object per line, its keys read as header names.
/// A value is a string or a number; `content_ids` may also be an array.
pub fn json_rows(text: &str, map: &ColumnMap) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
            .map_err(|error| format!("not a JSON object: {error}"))
            .and_then(|object| json_cells(object, map));
        rows.push(Row {
            line: index + 1,
            cells,
        });
    }
    rows
}

fn json_cells(
    object: serde_json::Map<String, serde_json::Value>,
    map: &ColumnMap,
) -> Result<Cells, String> {
    use serde_json::Value;
    let keys: Vec<String> = object.keys().cloned().collect();
    let columns = map.columns(&keys);
    let mut cells = Cells::default();
    for (field, (key, value)) in columns.into_iter().zip(object) {
        let Some(field) = field else { continue };
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Array(items) if field == Field::ContentIds => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    Value::Number(number) => Ok(number.to_string()),
                    _ => Err(format!("{key}: expected strings or numbers")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join("|"),
            _ => return Err(format!("{key}: expected a string or a number")),
        };
        cells.set(field, text);
    }
    Ok(cells)
}

/// Local times in an IANA zone. A local time that a daylight-saving change skips is moved
/// forward by the gap; one that it repeats is read as the earlier of the two (jiff's
/// "compatible" rule, as RFC 5545 and JavaScript do).
pub struct Zone<'z>(pub &'z TimeZone);

impl LocalTime for Zone<'_> {
    fn to_utc_ms(&self, local: CivilDateTime) -> Option<i64> {
        let civil = DateTime::new(
            i16::try_from(local.year).ok()?,
            i8::try_from(local.month).ok()?,
            i8::try_from(local.day).ok()?,
            i8::try_from(local.hour).ok()?,
            i8::try_from(local.minute).ok()?,
            i8::try_from(local.second).ok()?,
            0,
        )
        .ok()?;
        let zoned = civil.to_zoned_datetime(self.0.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    /// A timestamp cell through core's rules, local times in `zone`.
    fn timestamp_ms(cell: &str, zone: &TimeZone) -> Result<i64, String> {
        ttedge_core::offline::cells::timestamp_ms(cell, &Zone(zone))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn formats() {
        let csv = Path::new("orders.CSV");
        assert_eq!(format_of(csv, "{\"email\":1}"), Format::Csv);
        assert_eq!(
            format_of(Path::new("a.ndjson"), "email\n"),
            Format::JsonLines
        );
        assert_eq!(
            format_of(Path::new("export"), " \n{\"a\":1}"),
            Format::JsonLines
        );
        assert_eq!(format_of(Path::new("export"), "email\n"), Format::Csv);
    }

    #[test]
    fn timestamps() {
        // date -u -d '2025-11-25 10:02:00' +%s → 1764064920
        let ms = 1_764_064_920_000;
        assert_eq!(timestamp_ms("1764064920", &utc()), Ok(ms));
        assert_eq!(timestamp_ms("1764064920000", &utc()), Ok(ms));
        assert_eq!(timestamp_ms("2025-11-25T10:02:00Z", &utc()), Ok(ms));
        assert_eq!(timestamp_ms("2025-11-25T11:02:00+01:00", &utc()), Ok(ms));
        assert_eq!(timestamp_ms(" 2025-11-25 10:02:00 ", &utc()), Ok(ms));
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(timestamp_ms("2025-11-25 11:02:00", &paris), Ok(ms));
        assert!(timestamp_ms("25/11/2025", &utc()).is_err());
        assert!(timestamp_ms("", &utc()).is_err());
    }

    #[test]
    fn daylight_saving_edges() {
        let new_york = TimeZone::get("America/New_York").unwrap();
        // 2025-03-09 02:30 does not exist in New York: moved forward to 03:30 EDT = 07:30Z.
        // date -u -d '2025-03-09 07:30:00' +%s → 1741505400
        assert_eq!(
            timestamp_ms("2025-03-09 02:30:00", &new_york),
            Ok(1_741_505_400_000)
        );
        // 2025-11-02 01:30 happens twice: the earlier, EDT (UTC-4) = 05:30Z.
        // date -u -d '2025-11-02 05:30:00' +%s → 1762061400
        assert_eq!(
            timestamp_ms("2025-11-02 01:30:00", &new_york),
            Ok(1_762_061_400_000)
        );
    }

    #[test]
    fn csv_lines_count_quoted_newlines_and_crlf() {
        let text = "email;note\r\na@x.io;\"one;\r\ntwo\"\r\n\r\nb@x.io;x;extra\r\nc@x.io;z\r\n";
        let rows = csv_rows(text, &ColumnMap::default()).unwrap();
        let lines: Vec<_> = rows.iter().map(|r| (r.line, r.cells.is_ok())).collect();
        assert_eq!(lines, [(2, true), (5, false), (6, true)]);
    }
}
