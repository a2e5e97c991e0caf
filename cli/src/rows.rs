//! Reading an offline file for `ttedge send`: CSV or JSON Lines rows, each with the line
//! it starts on, its cells picked by column into the fields of an offline event.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The fields a column can feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Email,
    Phone,
    ExternalId,
    OrderId,
    Event,
    Value,
    Currency,
    Timestamp,
    ContentIds,
}

impl Field {
    /// Every field with the name `--map` takes.
    pub const NAMES: [(&'static str, Field); 9] = [
        ("email", Field::Email),
        ("phone", Field::Phone),
        ("external_id", Field::ExternalId),
        ("order_id", Field::OrderId),
        ("event", Field::Event),
        ("value", Field::Value),
        ("currency", Field::Currency),
        ("timestamp", Field::Timestamp),
        ("content_ids", Field::ContentIds),
    ];

    /// The field a header name stands for, among the names shops export.
    fn of_header(normalized: &str) -> Option<Field> {
        Some(match normalized {
            "email" => Field::Email,
            "phone" => Field::Phone,
            "external_id" | "customer_id" => Field::ExternalId,
            "order_id" | "transaction_id" => Field::OrderId,
            "event" | "event_type" => Field::Event,
            "value" | "amount" | "total" => Field::Value,
            "currency" => Field::Currency,
            "timestamp" | "event_time" | "created_at" => Field::Timestamp,
            "content_ids" | "content_id" => Field::ContentIds,
            _ => return None,
        })
    }
}

/// A header or `--map` name, compared case-insensitively with spaces as underscores.
fn normalize(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "_")
}

/// Columns named by `--map column=field`, normalised.
pub struct ColumnMap(HashMap<String, Field>);

impl ColumnMap {
    /// Reads `--map` values; an unknown field or a value without `=` is a usage error.
    pub fn parse(maps: &[String]) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for entry in maps {
            let Some((column, field)) = entry.split_once('=') else {
                bail!("--map {entry:?}: expected COLUMN=FIELD");
            };
            let field_name = normalize(field);
            let Some((_, field)) = Field::NAMES.iter().find(|(name, _)| *name == field_name) else {
                let known: Vec<_> = Field::NAMES.iter().map(|(name, _)| *name).collect();
                bail!(
                    "--map {entry:?}: unknown field {:?}; fields are {}",
                    field.trim(),
                    known.join(", ")
                );
            };
            map.insert(normalize(column), *field);
        }
        Ok(ColumnMap(map))
    }

    /// For each column, the field it feeds: `--map` first, then the recognised header
    /// names; when two columns feed one field, the first wins.
    fn columns(&self, headers: &[String]) -> Vec<Option<Field>> {
        let mut taken = Vec::new();
        let mut columns = Vec::new();
        for header in headers {
            let name = normalize(header);
            let field =
                self.0.get(&name).copied().or_else(|| {
                    Field::of_header(&name).filter(|f| !self.0.values().any(|m| m == f))
                });
            let field = field.filter(|f| !taken.contains(f));
            if let Some(field) = field {
                taken.push(field);
            }
            columns.push(field);
        }
        columns
    }
}

/// One row's cells by field, or why the row could not be read.
pub struct Row {
    /// 1-based physical line the row starts on.
    pub line: usize,
    /// The cells, or the reason the row is unreadable.
    pub cells: Result<HashMap<Field, String>, String>,
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
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .map(<[u8]>::to_vec)
        .unwrap_or(bytes);
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// The separator of a CSV file: whichever of `,`, `;` and tab the header line holds most
/// often outside quotes (comma on a tie or when none).
pub fn separator(text: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for byte in text.bytes() {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    candidates[best]
}

/// The rows of a CSV file with a header row.
pub fn csv_rows(text: &str, map: &ColumnMap) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(text))
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .context("cannot read the CSV header row")?
        .iter()
        .map(str::to_string)
        .collect();
    let columns = map.columns(&headers);
    if columns.iter().all(Option::is_none) {
        bail!(
            "no column of the header row is recognised ({}); name them or use --map COLUMN=FIELD",
            headers.join(", ")
        );
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = LineIndex::new(text);
    loop {
        let byte_before = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = lines.of(record.position().map_or(byte_before, |p| p.byte()));
                if record.len() == 1 && record[0].trim().is_empty() {
                    // A line of spaces only: as blank as an empty one.
                    continue;
                }
                let cells = if record.len() != headers.len() {
                    Err(format!(
                        "has {} fields, the header row has {}",
                        record.len(),
                        headers.len()
                    ))
                } else {
                    Ok(columns
                        .iter()
                        .zip(record.iter())
                        .filter_map(|(field, cell)| Some((((*field)?), cell.to_string())))
                        .collect())
                };
                rows.push(Row { line, cells });
            }
            Err(error) => {
                let line = lines.of(error.position().map_or(byte_before, |p| p.byte()));
                let reason = match error.kind() {
                    csv::ErrorKind::Utf8 { .. } => "is not UTF-8 text".to_string(),
                    _ => format!("cannot be read: {error}"),
                };
                rows.push(Row {
                    line,
                    cells: Err(reason),
                });
            }
        }
    }
    Ok(rows)
}

/// Physical line numbers of byte offsets.
///
/// The csv crate's own `Position::line()` is off for CRLF files and after blank lines, so
/// lines are counted here from the record's byte offset, which the crate puts at the end of
/// the previous record: the line ends and blank lines after it are skipped first.
/// Records come in order, so the count goes on from the previous record's start.
struct LineIndex<'t> {
    bytes: &'t [u8],
    /// Offset counted up to, and the 1-based line there.
    counted: usize,
    line: usize,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        LineIndex {
            bytes: text.as_bytes(),
            counted: 0,
            line: 1,
        }
    }

    /// The 1-based line of the first character of the record found at `byte`.
    fn of(&mut self, byte: u64) -> usize {
        let bytes = self.bytes;
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.counted {
            self.line += bytes[self.counted..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.counted = start;
        }
        self.line
    }
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
) -> Result<HashMap<Field, String>, String> {
    use serde_json::Value;
    let keys: Vec<String> = object.keys().cloned().collect();
    let columns = map.columns(&keys);
    let mut cells = HashMap::new();
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
        cells.insert(field, text);
    }
    Ok(cells)
}

/// Content ids in one cell: separated by `|`, `,` or `;`, each trimmed.
pub fn content_ids(cell: &str) -> Vec<&str> {
    cell.split(['|', ',', ';'])
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect()
}

/// Epoch numbers below this are seconds, above it milliseconds: 10^11 seconds is the year
/// 5138, 10^11 milliseconds is March 1973.
pub const MILLISECONDS_FROM: u64 = 100_000_000_000;

/// A timestamp cell as epoch milliseconds: epoch seconds or milliseconds, RFC 3339, or
/// `YYYY-MM-DD HH:MM:SS` (or with `T`) as a local time in `zone`. A local time that a
/// daylight-saving change skips is moved forward by the gap; one that it repeats is read as
/// the earlier of the two (jiff's "compatible" rule, as RFC 5545 and JavaScript do).
pub fn timestamp_ms(cell: &str, zone: &TimeZone) -> Result<i64, String> {
    let text = cell.trim();
    let bad = || {
        format!(
            "bad timestamp {text:?}: expected epoch seconds or milliseconds, RFC 3339, or YYYY-MM-DD HH:MM:SS"
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let number: u64 = text.parse().map_err(|_| bad())?;
        let ms = if number < MILLISECONDS_FROM {
            number * 1_000
        } else {
            number
        };
        return i64::try_from(ms).map_err(|_| bad());
    }
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Ok(instant.as_millisecond());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = DateTime::strptime(format, text) {
            return local
                .to_zoned_datetime(zone.clone())
                .map(|zoned| zoned.timestamp().as_millisecond())
                .map_err(|_| bad());
        }
    }
    Err(bad())
}

/// A value cell: a non-negative decimal number with `.` as the decimal point.
pub fn value(cell: &str) -> Result<Option<f64>, String> {
    let text = cell.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
        _ => Err(format!(
            "bad value {text:?}: expected a non-negative number such as 12.50"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> TimeZone {
        TimeZone::UTC
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
    fn separators() {
        assert_eq!(separator("a,b,c\n1;2;3"), b',');
        assert_eq!(separator("a;b;\"c,d,e\"\n"), b';');
        assert_eq!(separator("a\tb\tc"), b'\t');
        assert_eq!(separator("email"), b',');
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
    fn values_and_ids() {
        assert_eq!(value(" 12.50 "), Ok(Some(12.5)));
        assert_eq!(value(""), Ok(None));
        assert!(value("12,50").is_err());
        assert!(value("-1").is_err());
        assert_eq!(content_ids("a| b ,c;;"), ["a", "b", "c"]);
    }

    #[test]
    fn headers_and_map() {
        let map = ColumnMap::parse(&["Buyer Mail=email".to_string()]).unwrap();
        let headers: Vec<String> = [
            "Order ID",
            "Buyer Mail",
            "EMAIL",
            "Created At",
            "Total",
            "Amount",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            map.columns(&headers),
            [
                Some(Field::OrderId),
                Some(Field::Email),
                None,
                Some(Field::Timestamp),
                Some(Field::Value),
                None
            ]
        );
        let error = ColumnMap::parse(&["x=colour".to_string()]).err().unwrap();
        assert!(error.to_string().contains("unknown field \"colour\""));
        assert!(ColumnMap::parse(&["x".to_string()]).is_err());
    }

    #[test]
    fn csv_lines_count_quoted_newlines_and_crlf() {
        let text = "email;note\r\na@x.io;\"one;\r\ntwo\"\r\n\r\nb@x.io;x;extra\r\nc@x.io;z\r\n";
        let rows = csv_rows(text, &ColumnMap::parse(&[]).unwrap()).unwrap();
        let lines: Vec<_> = rows.iter().map(|r| (r.line, r.cells.is_ok())).collect();
        assert_eq!(lines, [(2, true), (5, false), (6, true)]);
    }
}
