//! `ttedge send FILE`: offline conversions from a CSV or JSON Lines file.
//!
//! Every row becomes a collect event with `source: "offline"` (core's `offline` module), runs
//! through the same pipeline as `preview`, and is scored against the offline threshold of 50.
//! Personal data is hashed by that pipeline on this machine; only hashes are printed or sent.
//! This step builds `--dry-run`; the upload to the Worker is the next one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Args;
use jiff::tz::TimeZone;
use serde::Serialize;
use ttedge_core::event::Source;
use ttedge_core::mapping::NameRules;
use ttedge_core::offline::{to_collect_event, OfflineRow, MAX_AGE_MS};
use ttedge_core::pipeline::{prepare_request, Destination, RequestContext, Status};
use ttedge_core::quality::{threshold, MissingFactor};

use crate::rows::{self, ColumnMap, Field, Format};
use crate::{preview, score, BadInput, Outcome, Prepared, Problem};

/// The rules `ttedge send --help` states after the options.
pub const AFTER_HELP: &str = "\
Columns (header names match case-insensitively, spaces as underscores; --map adds others):
  email; phone; external_id, customer_id; order_id, transaction_id; event, event_type
  (default CompletePayment); value, amount, total; currency; timestamp, event_time,
  created_at; content_ids, content_id (several ids in one cell separated by | , or ;).
CSV: comma, semicolon or tab (from the header line); quotes, BOM, CRLF, blank lines.
Timestamps: epoch seconds, or milliseconds from 100000000000 up; RFC 3339; or
  YYYY-MM-DD HH:MM:SS in --timezone (a skipped local time moves forward, a repeated one
  is the earlier). Rows older than 28 days or in the future are rejected.
Event ids: <Event>-<order_id>, else <Event>- and 32 hex of a SHA-256 over the hashed
  email, phone and external_id, event, timestamp and value: the same row, the same id.
Email, phone and external_id are hashed (SHA-256) here; only hashes are printed or sent.
Exit status: 0 all rows ready, 1 some row rejected, 2 usage error.";

#[derive(Args)]
pub struct SendArgs {
    /// Offline conversions: CSV with a header row (`.csv`, `.tsv`, `.txt`) or JSON Lines
    /// (`.jsonl`, `.ndjson`, `.json`); any other name is read as JSON Lines when it starts
    /// with `{`, else as CSV.
    file: PathBuf,
    /// Read column COLUMN as FIELD (email, phone, external_id, order_id, event, value,
    /// currency, timestamp, content_ids). Repeatable; wins over the recognised header names.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
    /// IANA time zone of `YYYY-MM-DD HH:MM:SS` timestamps (e.g. Asia/Jakarta).
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Print what would be sent, as `preview` does, and the summary; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON on stdout (instead of the event lines and the text summary).
    #[arg(long)]
    json: bool,
    /// Treat non-standard event names as unknown (rejected) rather than custom events.
    #[arg(long)]
    no_custom_events: bool,
    /// Tests only: the current time (RFC 3339) the 28-day window is measured from.
    #[arg(long, hide = true)]
    now: Option<String>,
}

/// A rejected row.
#[derive(Serialize)]
struct RejectedRow {
    line: usize,
    reason: String,
}

/// A row whose event_id an earlier row of the file already has.
#[derive(Serialize)]
struct DuplicateRow {
    line: usize,
    event_id: String,
    first_line: usize,
}

#[derive(Serialize)]
struct Summary {
    rows: u64,
    ready: u64,
    rejected: Vec<RejectedRow>,
    duplicates: Vec<DuplicateRow>,
    skipped: u64,
    held: u64,
    offline_threshold: u32,
    scored: u64,
    mean_score: Option<f64>,
    below_threshold: u64,
    most_missing: Vec<MissingFactor>,
}

pub fn run(args: &SendArgs) -> anyhow::Result<Outcome> {
    let map = ColumnMap::parse(&args.map)?;
    let zone = TimeZone::get(&args.timezone)
        .with_context(|| format!("--timezone {:?} is not an IANA time zone", args.timezone))?;
    let now_ms = match &args.now {
        Some(now) => now
            .parse::<jiff::Timestamp>()
            .with_context(|| format!("--now {now:?}: expected RFC 3339"))?
            .as_millisecond(),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
    };
    if !args.dry_run {
        bail!("sending is not available yet: the Worker's upload endpoint is the next step; use --dry-run to see what would be sent");
    }
    let text = rows::read(&args.file)?;
    let rows = match rows::format_of(&args.file, &text) {
        Format::Csv => rows::csv_rows(&text, &map)?,
        Format::JsonLines => rows::json_rows(&text, &map),
    };
    let destination = Destination {
        pixel_id: String::from("SEND"),
        test_event_code: None,
        names: {
            let mut names = NameRules::default();
            names.custom_events = !args.no_custom_events;
            names
        },
    };
    let ctx = RequestContext {
        now_ms: u64::try_from(now_ms).unwrap_or_default(),
        ..RequestContext::default()
    };
    let mut prepared: Vec<Prepared> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            prepare_row(row, &zone, &destination, &ctx, now_ms).map_err(|reason| BadInput {
                index,
                line: row.line,
                error: Problem::Row(reason),
            })
        })
        .collect();
    // Each row was prepared alone; its index is its place among the file's rows.
    for (index, event) in prepared.iter_mut().enumerate() {
        if let Ok(event) = event {
            event.index = index;
        }
    }
    let duplicates = mark_duplicates(&mut prepared, &rows);
    let summary = summarise(&prepared, duplicates);
    let outcome = if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        Outcome {
            any_rejected: !summary.rejected.is_empty(),
        }
    } else {
        let outcome = preview::print(&prepared, &destination)?;
        eprint!("{}", render(&summary, &prepared));
        outcome
    };
    Ok(outcome)
}

/// One row through core's offline rules and the pipeline.
fn prepare_row(
    row: &rows::Row,
    zone: &TimeZone,
    destination: &Destination,
    ctx: &RequestContext<'_>,
    now_ms: i64,
) -> Result<ttedge_core::pipeline::PreparedEvent<'static>, String> {
    let cells = row.cells.as_ref().map_err(Clone::clone)?;
    let cell = |field| cells.get(&field).map(String::as_str);
    let timestamp_ms = cell(Field::Timestamp)
        .filter(|t| !t.trim().is_empty())
        .map(|t| rows::timestamp_ms(t, zone))
        .transpose()?;
    let value = match cell(Field::Value) {
        Some(cell) => rows::value(cell)?,
        None => None,
    };
    let offline = OfflineRow {
        email: cell(Field::Email),
        phone: cell(Field::Phone),
        external_id: cell(Field::ExternalId),
        order_id: cell(Field::OrderId),
        event: cell(Field::Event),
        value,
        currency: cell(Field::Currency),
        timestamp_ms,
        content_ids: cell(Field::ContentIds)
            .map(rows::content_ids)
            .unwrap_or_default(),
    };
    let event = to_collect_event(&offline, &destination.names, now_ms, MAX_AGE_MS)
        .map_err(|error| error.to_string())?;
    let request = prepare_request(vec![event], ctx, destination);
    let prepared = request
        .events
        .into_iter()
        .next()
        .ok_or("the pipeline returned no event")?;
    match prepared.status {
        Status::Rejected => Err(prepared.reason.unwrap_or_default()),
        _ => Ok(prepared),
    }
}

/// A ready event whose event_id an earlier one has is skipped as a duplicate: it would be
/// counted once by TikTok anyway, and is not sent twice.
fn mark_duplicates(prepared: &mut [Prepared], rows: &[rows::Row]) -> Vec<DuplicateRow> {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut duplicates = Vec::new();
    for (event, row) in prepared.iter_mut().zip(rows) {
        let Ok(event) = event else { continue };
        if event.status != Status::Ready {
            continue;
        }
        match first_line.get(event.event_id.as_ref()) {
            Some(&first) => {
                event.status = Status::Skipped;
                event.reason = Some(format!(
                    "duplicate: line {first} has the same event_id {}",
                    event.event_id
                ));
                event.tiktok = None;
                event.emq = None;
                duplicates.push(DuplicateRow {
                    line: row.line,
                    event_id: event.event_id.to_string(),
                    first_line: first,
                });
            }
            None => {
                first_line.insert(event.event_id.to_string(), row.line);
            }
        }
    }
    duplicates
}

fn summarise(prepared: &[Prepared], duplicates: Vec<DuplicateRow>) -> Summary {
    let report = score::summarise(prepared);
    let rejected = prepared
        .iter()
        .filter_map(|event| event.as_ref().err())
        .map(|bad| RejectedRow {
            line: bad.line,
            reason: match &bad.error {
                Problem::Row(reason) => reason.clone(),
                Problem::Input(error) => error.to_string(),
            },
        })
        .collect();
    Summary {
        rows: report.events.total,
        ready: report.events.ready,
        rejected,
        skipped: report
            .events
            .skipped
            .saturating_sub(duplicates.len() as u64),
        duplicates,
        held: report.events.held,
        offline_threshold: threshold(Source::Offline).0 / 100,
        scored: report.scored,
        mean_score: report.mean_score,
        below_threshold: report.below_threshold,
        most_missing: report.most_missing,
    }
}

fn render(summary: &Summary, prepared: &[Prepared]) -> String {
    let mut text = format!(
        "rows read: {}, ready: {}, rejected: {}, duplicates in the file: {}",
        summary.rows,
        summary.ready,
        summary.rejected.len(),
        summary.duplicates.len()
    );
    if summary.skipped > 0 || summary.held > 0 {
        text.push_str(&format!(
            ", skipped: {}, held back by consent: {}",
            summary.skipped, summary.held
        ));
    }
    text.push('\n');
    for bad in prepared.iter().filter_map(|e| e.as_ref().err()) {
        text.push_str(&format!("  rejected {bad}\n"));
    }
    for duplicate in &summary.duplicates {
        text.push_str(&format!(
            "  duplicate line {}: same event_id {} as line {}\n",
            duplicate.line, duplicate.event_id, duplicate.first_line
        ));
    }
    match summary.mean_score {
        Some(mean) => text.push_str(&format!(
            "mean match quality {mean:.1} against the offline threshold of {} ({} of {} events under it)\n",
            summary.offline_threshold, summary.below_threshold, summary.scored
        )),
        None => text.push_str("match quality: no event could be scored\n"),
    }
    if !summary.most_missing.is_empty() {
        score::write_most_missing(&mut text, &summary.most_missing);
    }
    text.push_str("dry run: nothing was sent\n");
    text
}
