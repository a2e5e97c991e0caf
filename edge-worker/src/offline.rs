//! `POST /admin/api/destinations/{host}/offline`: an upload of offline conversions as JSON
//! Lines of collect-API events, or as a CSV chunk of a shop's export (issue 13, "The upload
//! endpoint").
//!
//! **CSV** (`Content-Type: text/csv`): the header line, then rows, read by core's CSV reader
//! and row rules, exactly as `ttedge send` reads them (same columns, same event_ids). Query:
//! `utc_offset=+07:00` places `YYYY-MM-DD HH:MM:SS` times (UTC when absent), and
//! `first_line=N`, the file's line number of the chunk's first line after the header, makes
//! every answer carry its row's line in the whole file (`line`). The dashboard's upload form
//! sends a file this way, in chunks.
//!
//! Every line is one event, read as `/collect` reads a body of one event, and forced to
//! `source: "offline"`: the request's headers (IP, user agent, Accept-Language) and cookies
//! describe the uploading machine, not the customer, so they are never given to the
//! pipeline. Then the line goes through core's pipeline and into the destination's
//! Dispatcher through the same [`store_and_answer`] as `/collect`, so a resent event_id is
//! answered `duplicate`.
//!
//! On top of `/collect`'s checks, an offline event is rejected when it has no timestamp, is
//! dated in the future, or is older than `OFFLINE_MAX_AGE_DAYS` (a Worker var, 28 by default:
//! what TikTok accepts for offline events). One without an email, phone or external_id is
//! rejected by core's pipeline, as on `/collect`.
//!
//! The answer indexes events by their position among the body's non-blank lines (CSV: data
//! rows), from 0. A line that cannot be read is rejected alone; the whole call is refused
//! only for auth, a body over [`MAX_UPLOAD_BYTES`] or [`MAX_UPLOAD_EVENTS`] (413), an
//! unknown host, or (CSV) a bad query value or a header row without a known column (400).

use std::borrow::Cow;

use ttedge_core::answer::{CollectAnswer, EventAnswer};
use ttedge_core::event::{parse_collect, CollectEvent, Source};
use ttedge_core::mapping::NameRules;
use ttedge_core::offline::{
    check_date, csv_rows, to_collect_event, ColumnMap, CsvRow, FixedOffset, OfflineRow, DAY_MS,
    MAX_AGE_MS, MAX_UPLOAD_BYTES, MAX_UPLOAD_EVENTS,
};
use ttedge_core::pipeline::{prepare, RequestContext};
use worker::{Env, Request, Response};

use crate::collect::store_and_answer;
use crate::config::{self, SiteConfig};
use crate::error::ApiError;
use crate::runtime;

/// The Worker var that sets the oldest accepted event, in days.
pub const MAX_AGE_VAR: &str = "OFFLINE_MAX_AGE_DAYS";

/// How a CSV chunk is read: the query of a `text/csv` upload.
struct CsvQuery {
    offset: FixedOffset,
    first_line: Option<usize>,
}

impl CsvQuery {
    /// `utc_offset` and `first_line`; a bad value is a 400 naming it.
    fn parse(url: &worker::Url) -> Result<Self, ApiError> {
        let offset = match runtime::query(url, "utc_offset") {
            None => FixedOffset::UTC,
            Some(text) => FixedOffset::parse(&text).ok_or_else(|| {
                ApiError::invalid_field(
                    "utc_offset",
                    format!("utc_offset {text:?}: expected +HH:MM or -HH:MM, at most 18:00"),
                )
            })?,
        };
        let first_line = match runtime::query(url, "first_line") {
            None => None,
            Some(text) => Some(text.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(
                || {
                    ApiError::invalid_field(
                        "first_line",
                        format!(
                            "first_line {text:?}: expected the file's line number (from 1) of the \
                         chunk's first line after the header"
                        ),
                    )
                },
            )?),
        };
        Ok(CsvQuery { offset, first_line })
    }
}

/// The upload read into events for the pipeline, and the rest refused before it.
#[derive(Default)]
struct Read<'b> {
    events: Vec<CollectEvent<'b>>,
    /// Each event's index in the upload.
    index_of: Vec<usize>,
    /// Index and reason of what is rejected before the pipeline.
    refused: Vec<(usize, String)>,
    /// CSV: each row's file line, by index.
    lines: Vec<usize>,
}

impl<'b> Read<'b> {
    fn push(&mut self, index: usize, event: Result<CollectEvent<'b>, String>) {
        match event {
            Ok(event) => {
                self.events.push(event);
                self.index_of.push(index);
            }
            Err(reason) => self.refused.push((index, reason)),
        }
    }
}

/// `POST /admin/api/destinations/{host}/offline`, the caller already authenticated.
pub async fn upload(mut req: Request, env: &Env, host: &str) -> Result<Response, ApiError> {
    let site = config::for_host(env, host).await?;
    let max_age_ms = max_age_ms(config::var(env, MAX_AGE_VAR).as_deref())?;
    let csv = runtime::header(&req, "Content-Type")?
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/csv"));
    let query = if csv {
        Some(CsvQuery::parse(&req.url()?)?)
    } else {
        None
    };
    let body = runtime::read_body(&mut req, MAX_UPLOAD_BYTES)
        .await?
        .ok_or_else(|| ApiError::body_too_large(MAX_UPLOAD_BYTES))?;
    let now_ms = runtime::now_ms();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let rows: Vec<CsvRow>;
    let lines: Vec<&[u8]>;
    let read = match &query {
        Some(query) => {
            rows = csv_rows(&body, &ColumnMap::default(), query.first_line)
                .map_err(|error| ApiError::new(400, "bad_csv", error.to_string()))?;
            too_many(rows.len(), "rows")?;
            read_csv(&rows, query, &site.destination.names, now, max_age_ms)
        }
        None => {
            lines = non_blank_lines(&body);
            too_many(lines.len(), "events (non-blank lines)")?;
            let mut read = Read::default();
            for (index, line) in lines.iter().enumerate() {
                read.push(index, read_line(line, now, max_age_ms));
            }
            read
        }
    };

    // Offline: no header, no cookie, no new `_ttp`; only the events' own fields count.
    let ctx = RequestContext {
        now_ms,
        ttp_random: None,
        id_random: runtime::random_bytes()?,
        ..RequestContext::default()
    };
    // Core's pipeline rejects an offline event without an email, phone or external_id.
    let mut prepared = prepare(&read.events, &ctx, &site.destination).events;
    for event in &mut prepared {
        event.index = read
            .index_of
            .get(event.index)
            .copied()
            .unwrap_or(event.index);
    }
    let mut answers = store_and_answer(
        env,
        &site,
        &prepared,
        u32::try_from(read.refused.len()).unwrap_or(0),
        Vec::new(),
    )
    .await?;
    answers.extend(
        read.refused
            .iter()
            .map(|(index, reason)| EventAnswer::refused(*index, Cow::Borrowed(reason))),
    );
    for answer in &mut answers {
        answer.line = read.lines.get(answer.index).copied();
    }
    answers.sort_by_key(|answer| answer.index);
    answer(&site, answers)
}

/// 413 when an upload holds more than [`MAX_UPLOAD_EVENTS`] `what`.
fn too_many(count: usize, what: &str) -> Result<(), ApiError> {
    if count <= MAX_UPLOAD_EVENTS {
        return Ok(());
    }
    Err(ApiError::new(
        413,
        "too_many_events",
        format!("{count} {what}; at most {MAX_UPLOAD_EVENTS} are accepted per call"),
    ))
}

/// CSV rows as offline events, by core's rules (those of `ttedge send`).
fn read_csv<'r>(
    rows: &'r [CsvRow],
    query: &CsvQuery,
    names: &NameRules,
    now_ms: i64,
    max_age_ms: i64,
) -> Read<'r> {
    let mut read = Read::default();
    for (index, row) in rows.iter().enumerate() {
        read.lines.push(row.line);
        let event = row
            .cells
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|cells| OfflineRow::from_cells(cells, &query.offset))
            .and_then(|offline| to_collect_event(&offline, names, now_ms, max_age_ms))
            .map_err(|error| error.to_string());
        read.push(index, event);
    }
    read
}

fn answer(site: &SiteConfig, events: Vec<EventAnswer<'_>>) -> Result<Response, ApiError> {
    Ok(Response::from_json(&CollectAnswer::new(site.live, events))?.with_status(202))
}

/// The body's lines that hold anything but whitespace, without their line ends (LF or CRLF).
fn non_blank_lines(body: &[u8]) -> Vec<&[u8]> {
    body.split(|&b| b == b'\n')
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// `OFFLINE_MAX_AGE_DAYS` in milliseconds: a whole number of days from 1 to 365, 28 when
/// unset.
fn max_age_ms(var: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = var else {
        return Ok(MAX_AGE_MS);
    };
    match text.trim().parse::<i64>() {
        Ok(days) if (1..=365).contains(&days) => Ok(days * DAY_MS),
        _ => Err(ApiError::new(
            503,
            "misconfigured",
            format!("{MAX_AGE_VAR} must be a whole number of days from 1 to 365"),
        )),
    }
}

/// One line as an offline event, or why it is rejected: unreadable, without a timestamp,
/// in the future or too old.
fn read_line(line: &[u8], now_ms: i64, max_age_ms: i64) -> Result<CollectEvent<'_>, String> {
    let mut event = parse_collect(line, 1)
        .map_err(|error| error.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "holds no event".to_string())?;
    event.source = Some(Source::Offline);
    check_date(event.timestamp.map(|t| t.0), now_ms, max_age_ms).map_err(|e| e.to_string())?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blank_ones_and_keep_crlf_readable() {
        let body = b"{\"a\":1}\r\n\r\n  \n{\"b\":2}\n\t\n{\"c\":3}";
        let lines = non_blank_lines(body);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], b"{\"a\":1}\r");
        assert_eq!(lines[2], b"{\"c\":3}");
        assert!(non_blank_lines(b"\n\r\n ").is_empty());
    }

    #[test]
    fn max_age_defaults_to_28_days_and_refuses_nonsense() {
        assert_eq!(max_age_ms(None).ok(), Some(28 * DAY_MS));
        assert_eq!(max_age_ms(Some("7")).ok(), Some(7 * DAY_MS));
        for bad in ["0", "-3", "366", "2.5", "many"] {
            assert!(max_age_ms(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_line_is_forced_offline_and_a_bad_one_says_why() {
        let now = 1_800_000_000_000;
        let line = format!(
            r#"{{"event":"CompletePayment","timestamp":{},"source":"browser"}}"#,
            now - 1_000
        );
        let event = read_line(line.as_bytes(), now, MAX_AGE_MS).expect("a valid line");
        assert_eq!(event.source, Some(Source::Offline));
        let reason = read_line(b"{\"event\":", now, MAX_AGE_MS).err();
        assert!(reason.is_some_and(|r| r.contains("malformed JSON")));
        let old = format!(
            r#"{{"event":"CompletePayment","timestamp":{}}}"#,
            now - 29 * DAY_MS
        );
        let reason = read_line(old.as_bytes(), now, MAX_AGE_MS).err();
        assert!(reason.is_some_and(|r| r.starts_with("too old")));
    }

    #[test]
    fn csv_query_reads_the_offset_and_first_line_and_names_a_bad_one() {
        let url = |q: &str| worker::Url::parse(&format!("https://t.test/x?{q}")).unwrap();
        let query = CsvQuery::parse(&url("utc_offset=%2B07:00&first_line=1001")).ok();
        let query = query.expect("a good query");
        assert_eq!(query.offset.seconds(), 7 * 3_600);
        assert_eq!(query.first_line, Some(1001));
        // An unencoded `+` arrives as a space.
        let plain = CsvQuery::parse(&url("utc_offset=+05:30")).ok();
        assert_eq!(plain.map(|q| q.offset.seconds()), Some(19_800));
        let none = CsvQuery::parse(&url("")).ok();
        assert!(none.is_some_and(|q| q.offset == FixedOffset::UTC && q.first_line.is_none()));
        for (q, path) in [
            ("utc_offset=Asia/Bangkok", "utc_offset"),
            ("first_line=0", "first_line"),
            ("first_line=two", "first_line"),
        ] {
            let error = CsvQuery::parse(&url(q)).err().expect(q);
            assert_eq!(
                (error.status, error.path.as_deref()),
                (400, Some(path)),
                "{q}"
            );
        }
    }

    #[test]
    fn csv_rows_become_offline_events_or_say_why() {
        let now = 1_764_600_000_000; // 2025-12-01T14:40:00Z
        let body = b"Order ID;Email;Created At;Total\r\n\
            1001;a@x.io;2025-11-30 21:00:00;5\r\n\
            1002;;2025-11-30 21:00:00;5\r\n\
            1003;b@x.io;2025-11-30 21:00:00;1,5\r\n";
        let rows = csv_rows(body, &ColumnMap::default(), Some(40)).unwrap();
        let query = CsvQuery {
            offset: FixedOffset::parse("+07:00").unwrap(),
            first_line: Some(40),
        };
        let read = read_csv(&rows, &query, &NameRules::default(), now, MAX_AGE_MS);
        assert_eq!(read.lines, [40, 41, 42]);
        assert_eq!(read.index_of, [0]);
        let event = &read.events[0];
        assert_eq!(event.event_id.as_deref(), Some("CompletePayment-1001"));
        // 2025-11-30 21:00 at +07:00 is 14:00Z: date -u -d '2025-11-30 14:00:00' +%s → 1764511200
        assert_eq!(event.timestamp.map(|t| t.0), Some(1_764_511_200_000));
        assert_eq!(read.refused[0].0, 1);
        assert!(read.refused[0].1.starts_with("no identifier"));
        assert!(read.refused[1].1.starts_with("bad value \"1,5\""));
    }
}
