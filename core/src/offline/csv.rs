//! Reading a CSV export with a header row, for `ttedge send` and the upload endpoint alike.
//!
//! The records are split by `csv-core` (no_std): quoted fields with the separator, quotes
//! (`""`) or line ends inside, CRLF or LF line ends, blank lines skipped. On top of it this
//! module strips the UTF-8 byte-order mark, picks the separator from the header line, keeps
//! the physical line each record starts on, and checks each record on its own: one with the
//! wrong number of fields or not in UTF-8 is a rejected row, not a failed file.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::columns::{Cells, ColumnMap, Field};
use super::RowError;

/// The UTF-8 byte-order mark some spreadsheets write first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading UTF-8 byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// The separator of a CSV text: whichever of `,`, `;` and tab the header line holds most
/// often outside quotes (comma on a tie or when none).
pub fn separator(text: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &byte in text {
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

/// Why a CSV text cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsvError {
    /// The header row is not UTF-8 text.
    HeaderNotUtf8,
    /// No column of the header row feeds a field.
    NoKnownColumn {
        /// The header row's names.
        headers: Vec<String>,
    },
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsvError::HeaderNotUtf8 => f.write_str("the CSV header row is not UTF-8 text"),
            CsvError::NoKnownColumn { headers } => write!(
                f,
                "no column of the header row is recognised ({}); name them email, phone, \
                 external_id, order_id, event, value, currency, timestamp or content_ids, \
                 or use --map COLUMN=FIELD",
                headers.join(", ")
            ),
        }
    }
}

impl core::error::Error for CsvError {}

/// One data row of a CSV text.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// 1-based physical line the row starts on.
    pub line: usize,
    /// Its cells by field, or why the record is not a row.
    pub cells: Result<Cells, RowError>,
}

/// The records of a CSV text, one after the other, each with its starting line.
struct Records<'t> {
    bytes: &'t [u8],
    /// Bytes consumed by the parser so far.
    pos: usize,
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Fields in `ends` of the last record.
    fields: usize,
    done: bool,
    lines: LineIndex<'t>,
}

impl<'t> Records<'t> {
    fn new(bytes: &'t [u8], separator: u8) -> Self {
        Records {
            bytes,
            pos: 0,
            reader: csv_core::ReaderBuilder::new().delimiter(separator).build(),
            out: vec![0; 1024],
            ends: vec![0; 32],
            fields: 0,
            done: false,
            lines: LineIndex::new(bytes),
        }
    }

    /// Reads the next record; its line, or `None` at the end.
    fn next(&mut self) -> Option<usize> {
        let start = self.pos;
        let (mut written, mut ended) = (0, 0);
        while !self.done {
            let (result, read, wrote, ends) = self.reader.read_record(
                &self.bytes[self.pos..],
                &mut self.out[written..],
                &mut self.ends[ended..],
            );
            self.pos += read;
            written += wrote;
            ended += ends;
            match result {
                // The next call, with no input left, tells the parser the text has ended.
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    self.out.resize(self.out.len() * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    self.ends.resize(self.ends.len() * 2, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    self.fields = ended;
                    return Some(self.lines.of(start));
                }
                csv_core::ReadRecordResult::End => self.done = true,
            }
        }
        None
    }

    /// The fields of the last record, as bytes.
    fn fields(&self) -> impl Iterator<Item = &[u8]> {
        let ends = &self.ends[..self.fields];
        ends.iter().enumerate().map(move |(i, &end)| {
            let from = if i == 0 { 0 } else { ends[i - 1] };
            &self.out[from..end]
        })
    }

    /// The line just after the last record's line end.
    fn line_after(&mut self) -> usize {
        // The parser stops after the `\n` of LF, after the `\r` or the `\n` of CRLF.
        let mut at = self.pos;
        let before = at.checked_sub(1).and_then(|i| self.bytes.get(i));
        if before != Some(&b'\n') {
            if before != Some(&b'\r') && self.bytes.get(at) == Some(&b'\r') {
                at += 1;
            }
            if self.bytes.get(at) == Some(&b'\n') {
                at += 1;
            }
        }
        self.lines.count_to(at)
    }
}

/// Physical line numbers of byte offsets (a line ends with LF, CRLF or a lone CR): lines
/// are counted from the record's starting
/// offset, which the parser leaves at the end of the previous record, so the line ends and
/// blank lines after it are skipped first. Records come in order, so the count goes on from
/// the previous record's start.
struct LineIndex<'t> {
    bytes: &'t [u8],
    /// Offset counted up to, and the 1-based line there.
    counted: usize,
    line: usize,
}

impl<'t> LineIndex<'t> {
    fn new(bytes: &'t [u8]) -> Self {
        LineIndex {
            bytes,
            counted: 0,
            line: 1,
        }
    }

    /// The 1-based line of the first character of the record found at `at`.
    fn of(&mut self, at: usize) -> usize {
        let mut start = at.min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        self.count_to(start)
    }

    /// The 1-based line of offset `at`.
    fn count_to(&mut self, at: usize) -> usize {
        let at = at.min(self.bytes.len());
        if at > self.counted {
            let bytes = self.bytes;
            self.line += (self.counted..at)
                .filter(|&i| match bytes[i] {
                    b'\n' => true,
                    // A lone CR ends a line too (old Mac exports); CRLF counts once.
                    b'\r' => bytes.get(i + 1) != Some(&b'\n'),
                    _ => false,
                })
                .count();
            self.counted = at;
        }
        self.line
    }
}

/// The data rows of a CSV text with a header row, its cells picked by `map`.
///
/// `first_line` renumbers the rows when the text is a chunk of a larger file (its header
/// line, then some of the file's records): it is the file's line number of the chunk's first
/// line after the header. Without it, rows carry the text's own line numbers.
pub fn csv_rows(
    text: &[u8],
    map: &ColumnMap,
    first_line: Option<usize>,
) -> Result<Vec<CsvRow>, CsvError> {
    let text = strip_bom(text);
    let mut records = Records::new(text, separator(text));
    let mut headers = Vec::new();
    if records.next().is_some() {
        for field in records.fields() {
            let name = core::str::from_utf8(field).map_err(|_| CsvError::HeaderNotUtf8)?;
            headers.push(String::from(name));
        }
    }
    let columns = map.columns(&headers);
    if columns.iter().all(Option::is_none) {
        return Err(CsvError::NoKnownColumn { headers });
    }
    let body_line = records.line_after();
    let renumber = |line: usize| match first_line {
        Some(first) => (line + first).saturating_sub(body_line),
        None => line,
    };
    let mut rows = Vec::new();
    while let Some(line) = records.next() {
        let fields: Vec<&[u8]> = records.fields().collect();
        if let [only] = fields[..] {
            if only.iter().all(u8::is_ascii_whitespace) {
                // A line of spaces only: as blank as an empty one.
                continue;
            }
        }
        rows.push(CsvRow {
            line: renumber(line),
            cells: cells(&columns, &fields),
        });
    }
    Ok(rows)
}

fn cells(columns: &[Option<Field>], fields: &[&[u8]]) -> Result<Cells, RowError> {
    if fields.len() != columns.len() {
        return Err(RowError::FieldCount {
            found: fields.len(),
            expected: columns.len(),
        });
    }
    let mut cells = Cells::default();
    for (field, bytes) in columns.iter().zip(fields) {
        let text = core::str::from_utf8(bytes).map_err(|_| RowError::NotUtf8)?;
        if let Some(field) = field {
            cells.set(*field, String::from(text));
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use proptest::prelude::*;

    fn no_map() -> ColumnMap {
        ColumnMap::default()
    }

    fn lines(text: &[u8], first_line: Option<usize>) -> Vec<(usize, bool)> {
        csv_rows(text, &no_map(), first_line)
            .unwrap()
            .iter()
            .map(|r| (r.line, r.cells.is_ok()))
            .collect()
    }

    #[test]
    fn separators() {
        assert_eq!(separator(b"a,b,c\n1;2;3"), b',');
        assert_eq!(separator(b"a;b;\"c,d,e\"\n"), b';');
        assert_eq!(separator(b"a\tb\tc"), b'\t');
        assert_eq!(separator(b"email"), b',');
    }

    #[test]
    fn lines_count_quoted_newlines_crlf_and_blank_lines() {
        let text = b"email;note\r\na@x.io;\"one;\r\ntwo\"\r\n\r\nb@x.io;x;extra\r\nc@x.io;z\r\n";
        assert_eq!(lines(text, None), [(2, true), (5, false), (6, true)]);
        // The same records as a chunk whose first line after the header is the file's 101st.
        assert_eq!(
            lines(text, Some(101)),
            [(101, true), (104, false), (105, true)]
        );
        // Lone CRs, as old Mac spreadsheets end lines.
        let text = b"email;note\ra@x.io;\"one\rtwo\"\r\rb@x.io;x\r";
        assert_eq!(lines(text, None), [(2, true), (5, true)]);
        assert_eq!(lines(text, Some(7)), [(7, true), (10, true)]);
        // A header with a quoted newline: the body starts on line 3.
        let text = b"\"e\nmail\",email\n\n  \nx,a@x.io\n";
        assert_eq!(lines(text, None), [(5, true)]);
        assert_eq!(lines(text, Some(10)), [(12, true)]);
    }

    #[test]
    fn cells_are_picked_and_bad_records_say_why() {
        let text: &[u8] = b"\xEF\xBB\xBFOrder ID;Email;Total;Note\n\
            1001;\"Buyer@Example.com\";\"1\"\"2\";\"x;\ny\"\n\
            1002;b@x.io\n\
            1003;c@x.io;3;z\n\
            1004;c@x.io;\xFF;z";
        let rows = csv_rows(text, &no_map(), None).unwrap();
        assert_eq!(rows.len(), 4);
        let first = rows[0].cells.as_ref().unwrap();
        assert_eq!(first.get(Field::OrderId), Some("1001"));
        assert_eq!(first.get(Field::Email), Some("Buyer@Example.com"));
        assert_eq!(first.get(Field::Value), Some("1\"2"));
        assert_eq!(rows[1].line, 4);
        assert_eq!(
            rows[1].cells,
            Err(RowError::FieldCount {
                found: 2,
                expected: 4
            })
        );
        assert_eq!(
            rows[1].cells.as_ref().unwrap_err().to_string(),
            "has 2 fields, the header row has 4"
        );
        assert!(rows[2].cells.is_ok());
        assert_eq!((rows[3].line, &rows[3].cells), (6, &Err(RowError::NotUtf8)));
    }

    #[test]
    fn a_file_without_known_columns_is_refused() {
        let error = csv_rows(b"foo,bar\n1,2\n", &no_map(), None).unwrap_err();
        assert!(error.to_string().contains("(foo, bar)"));
        assert!(error.to_string().contains("--map"));
        assert_eq!(
            csv_rows(b"", &no_map(), None),
            Err(CsvError::NoKnownColumn { headers: vec![] })
        );
        assert_eq!(
            csv_rows(b"\xFFemail\n", &no_map(), None),
            Err(CsvError::HeaderNotUtf8)
        );
        let map = ColumnMap::parse(&["foo=email"]).unwrap();
        let rows = csv_rows(b"foo,bar\na@x.io,2", &map, None).unwrap();
        assert_eq!(
            rows[0].cells.as_ref().unwrap().get(Field::Email),
            Some("a@x.io")
        );
    }

    /// A field as a spreadsheet writes it: quoted when it holds a quote, a separator or a
    /// line end, quotes doubled.
    fn quote(field: &str, sep: char) -> String {
        if field.contains(['"', sep, '\n', '\r']) || field.trim().is_empty() {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_string()
        }
    }

    proptest! {
        /// Whatever the fields hold, the line ends, the separator, a BOM and blank lines
        /// between records, every record reads back with its cells and its starting line.
        #[test]
        fn messy_files_read_back(
            records in proptest::collection::vec(
                (
                    "[a-z@. ]{0,6}",
                    proptest::collection::vec("[a-z0-9 ,;\t\"\r\n]{0,8}", 2),
                    0usize..3,
                ),
                0..20,
            ),
            sep in prop_oneof![Just(','), Just(';'), Just('\t')],
            crlf in any::<bool>(),
            bom in any::<bool>(),
            first_line in 1usize..1_000_000,
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from(if bom { "\u{FEFF}" } else { "" });
            text += &["email", "note", "total"].join(&sep.to_string());
            text += end;
            let mut starts = Vec::new();
            for (email, notes, blanks) in &records {
                for _ in 0..*blanks {
                    text += end;
                }
                let email = format!("x{email}");
                let fields = [quote(&email, sep), quote(&notes[0], sep), quote(&notes[1], sep)];
                starts.push((text.len(), email, notes[1].clone()));
                text += &fields.join(&sep.to_string());
                text += end;
            }
            // A record's line: 1 + the line ends before it (LF, CRLF or a lone CR).
            let bytes = text.as_bytes();
            let line_of = |at: usize| {
                1 + (0..at)
                    .filter(|&i| bytes[i] == b'\n' || (bytes[i] == b'\r' && bytes[i + 1] != b'\n'))
                    .count()
            };
            let expected: Vec<_> = starts
                .into_iter()
                .map(|(at, email, total)| (line_of(at), email, total))
                .collect();
            let rows = csv_rows(text.as_bytes(), &ColumnMap::default(), None).unwrap();
            prop_assert_eq!(rows.len(), expected.len());
            for (row, (line, email, total)) in rows.iter().zip(&expected) {
                prop_assert_eq!(row.line, *line);
                let cells = row.cells.as_ref().unwrap();
                prop_assert_eq!(cells.get(Field::Email), Some(email.as_str()));
                prop_assert_eq!(cells.get(Field::Value), Some(total.as_str()));
            }
            // As a chunk: the same rows, moved to the file's lines.
            let moved = csv_rows(text.as_bytes(), &ColumnMap::default(), Some(first_line)).unwrap();
            for (row, (line, _, _)) in moved.iter().zip(&expected) {
                prop_assert_eq!(row.line, line - 2 + first_line);
            }
        }

        /// Any bytes at all: no panic, and the rows' lines rise within the text.
        #[test]
        fn any_bytes_are_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut text = b"email,total\n".to_vec();
            text.extend_from_slice(&bytes);
            let ends = (0..text.len())
                .filter(|&i| text[i] == b'\n' || (text[i] == b'\r' && text.get(i + 1) != Some(&b'\n')))
                .count();
            let mut last = 1;
            for row in csv_rows(&text, &ColumnMap::default(), None).unwrap() {
                // Each row on a later line than the one before, within the text.
                prop_assert!(row.line > last && row.line <= ends + 1, "{} after {last}", row.line);
                last = row.line;
            }
        }
    }
}
