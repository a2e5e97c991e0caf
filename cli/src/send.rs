//! `ttedge send FILE`: offline conversions from a CSV or JSON Lines file.
//!
//! Every row becomes a collect event with `source: "offline"` (core's `offline` module), runs
//! through the same pipeline as `preview`, and is scored against the offline threshold of 50.
//! Personal data is hashed by that pipeline on this machine; only hashes are printed or sent.
//!
//! Without `--dry-run`, each ready row goes to the Worker's upload endpoint as one
//! collect-API line carrying only hashes ([`upload_line`]), in chunks ([`upload`]), with a
//! journal beside the file ([`journal`]) so that an interrupted run continues where it
//! stopped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Args;
use jiff::tz::TimeZone;
use serde::Serialize;
use ttedge_core::answer::AnswerStatus;
use ttedge_core::event::Source;
use ttedge_core::hashing::{self, Sha256Hex};
use ttedge_core::mapping::NameRules;
use ttedge_core::offline::{
    to_collect_event, OfflineRow, MAX_AGE_MS, MAX_UPLOAD_BYTES, MAX_UPLOAD_EVENTS,
};
use ttedge_core::pipeline::{prepare_request, Destination, PreparedEvent, RequestContext, Status};
use ttedge_core::quality::{threshold, MissingFactor};
use ttedge_core::tiktok::TrackProperties;

use crate::journal::{self, Confirmed, Journal, JournalError};
use crate::progress::Progress;
use crate::rows::{self, ColumnMap, Format};
use crate::upload::{self, Client, RetryPolicy, UploadAnswer, UploadError};
use crate::{preview, score, BadInput, Outcome, Prepared, Problem};

/// The environment variable holding the Worker's admin token.
pub const TOKEN_VAR: &str = "TTEDGE_ADMIN_TOKEN";

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
Sending: --endpoint and --site, the admin token from TTEDGE_ADMIN_TOKEN; chunks of at most
  1,000 events and 1 MiB; 429 (after Retry-After), 5xx and network errors are retried
  with exponential backoff and jitter (--retries).
Journal: FILE.ttedge-journal records what the Worker confirmed, after each chunk. Run the
  same command again after Ctrl-C, a crash or a lost network: it sends only the rest. A
  journal of another file content, endpoint, site, --map, --timezone or
  --no-custom-events is refused: delete it to send from the start (the Worker answers
  events it already has as duplicates).
Exit status: 0 all rows ready (and accepted), 1 some row rejected (here or by the Worker),
  2 usage error (or the Worker refused the upload, e.g. a wrong token), 3 gave up after
  the retries (the journal is kept: run the same command again to continue).";

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
    /// The Worker's base URL, e.g. https://t.shop.com (needed unless --dry-run).
    #[arg(long, required_unless_present = "dry_run")]
    endpoint: Option<String>,
    /// The site (destination host) the rows are for, e.g. t.shop.com (needed unless
    /// --dry-run).
    #[arg(long, required_unless_present = "dry_run")]
    site: Option<String>,
    /// Retries of a chunk after 429, 5xx or network errors before giving up (exit 3).
    #[arg(long, default_value_t = 8)]
    retries: u32,
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
    /// Tests only: the first backoff wait, in milliseconds.
    #[arg(long, hide = true, default_value_t = 500)]
    retry_base_ms: u64,
    /// Tests and benchmarks only: events per chunk (at most 1,000).
    #[arg(long, hide = true, default_value_t = MAX_UPLOAD_EVENTS)]
    chunk_events: usize,
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

/// What the upload did.
#[derive(Serialize)]
struct UploadSummary {
    endpoint: String,
    site: String,
    journal: String,
    /// Ready rows, to be confirmed by the Worker.
    to_send: u64,
    /// Confirmed by an earlier run, per the journal.
    resumed: u64,
    /// Sent and confirmed by this run.
    sent_this_run: u64,
    /// Answered ready: stored, to be sent to TikTok.
    accepted: u64,
    /// Answered duplicate: the Worker already had the event_id.
    duplicates: u64,
    /// Answered rejected (listed in `rejected` with their lines).
    rejected: u64,
    /// Not confirmed (the upload stopped).
    unsent: u64,
    /// Whether the destination sends to TikTok (false: stored in test mode); unknown when
    /// nothing was sent by this run.
    live: Option<bool>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<UploadSummary>,
}

/// Where and how to send, checked before anything is read.
struct Target {
    endpoint: String,
    site: String,
    token: String,
}

fn target(args: &SendArgs) -> anyhow::Result<Option<Target>> {
    if args.dry_run {
        return Ok(None);
    }
    let (Some(endpoint), Some(site)) = (&args.endpoint, &args.site) else {
        bail!("--endpoint and --site are needed to send (or use --dry-run)");
    };
    let endpoint = endpoint.trim().trim_end_matches('/').to_string();
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        bail!("--endpoint {endpoint:?}: expected the Worker's URL, such as https://t.shop.com");
    }
    let site = site.trim().to_ascii_lowercase();
    if site.is_empty() || site.contains(['/', ':', '?', '#', ' ']) {
        bail!("--site {site:?}: expected the site's host name, such as t.shop.com");
    }
    let token = match std::env::var(TOKEN_VAR) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_string(),
        _ => bail!(
            "{TOKEN_VAR} is not set: put the Worker's admin token (its ADMIN_TOKEN) in it to send"
        ),
    };
    if args.chunk_events == 0 {
        bail!("--chunk-events must be at least 1");
    }
    Ok(Some(Target {
        endpoint,
        site,
        token,
    }))
}

/// Reads the file, prepares every row, then prints the dry run or uploads the ready rows
/// and prints the summary. An upload that stops returns its [`UploadError`] after the
/// summary (exit 3 when it gave up after the retries, 2 when the Worker refused it).
pub fn run(args: &SendArgs) -> anyhow::Result<Outcome> {
    let map = ColumnMap::parse(&args.map)?;
    let zone = TimeZone::get(&args.timezone)
        .with_context(|| format!("--timezone {:?} is not an IANA time zone", args.timezone))?;
    let target = target(args)?;
    let journal_path = Journal::path_for(&args.file);
    let now_ms = match &args.now {
        Some(now) => now
            .parse::<jiff::Timestamp>()
            .with_context(|| format!("--now {now:?}: expected RFC 3339"))?
            .as_millisecond(),
        // A resumed upload judges rows as its first run did (see `journal::started_ms`).
        None => target
            .as_ref()
            .and_then(|_| journal::started_ms(&journal_path))
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default()
            }),
    };
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
    let mut lines: Vec<Option<String>> = Vec::with_capacity(rows.len());
    let mut prepared: Vec<Prepared> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let (event, line) = match prepare_row(row, &zone, &destination, &ctx, now_ms) {
                Ok((event, line)) => (Ok(event), line),
                Err(reason) => (
                    Err(BadInput {
                        index,
                        line: row.line,
                        error: Problem::Row(reason),
                    }),
                    None,
                ),
            };
            lines.push(line);
            event
        })
        .collect();
    // Each row was prepared alone; its index is its place among the file's rows.
    for (index, event) in prepared.iter_mut().enumerate() {
        if let Ok(event) = event {
            event.index = index;
        }
    }
    let duplicates = mark_duplicates(&mut prepared, &rows);
    let mut summary = summarise(&prepared, duplicates);
    let Some(target) = target else {
        let outcome = if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Outcome {
                any_rejected: !summary.rejected.is_empty(),
            }
        } else {
            let outcome = preview::print(&prepared, &destination)?;
            eprint!("{}", render(&summary));
            outcome
        };
        return Ok(outcome);
    };

    // The rows to send: ready ones, in file order, each with its line in the file.
    let outgoing: Vec<Outgoing<'_>> = prepared
        .iter()
        .zip(&lines)
        .zip(&rows)
        .filter_map(|((event, line), row)| {
            let event = event.as_ref().ok().filter(|e| e.status == Status::Ready)?;
            Some(Outgoing {
                id: &event.event_id,
                line: line.as_deref()?,
                row_line: row.line,
            })
        })
        .collect();
    let identity = journal::Identity {
        file_sha256: hashing::sha256_hex(&text),
        endpoint: target.endpoint.clone(),
        site: target.site.clone(),
        map: args.map.clone(),
        timezone: args.timezone.clone(),
        no_custom_events: args.no_custom_events,
    };
    let mut journal = Journal::open(&journal_path, &identity, now_ms)?;
    let client = Client::new(
        &target.endpoint,
        &target.site,
        target.token,
        RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_base_ms),
            cap: Duration::from_secs(30),
        },
    )?;
    let sent = send_rows(&client, &mut journal, &outgoing, args.chunk_events);
    summary.add_upload(&target.endpoint, &target.site, &journal, &outgoing, &sent);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary));
    }
    match sent.stopped {
        Some(Stop::Upload(error)) => {
            if matches!(error, UploadError::GaveUp { .. }) {
                eprintln!(
                    "ttedge: {} keeps what the Worker confirmed: run the same command again to continue",
                    journal.path().display()
                );
            }
            return Err(error.into());
        }
        Some(Stop::Journal(error)) => {
            return Err(anyhow::Error::new(error)
                .context("the Worker answered a chunk that the journal could not record"))
        }
        None => {}
    }
    Ok(Outcome {
        any_rejected: !summary.rejected.is_empty(),
    })
}

/// A ready row to send.
struct Outgoing<'a> {
    id: &'a str,
    line: &'a str,
    row_line: usize,
}

/// What the upload of this run did.
struct Sent {
    /// Events confirmed by this run.
    confirmed: u64,
    /// Whether the destination is live, from the last answer.
    live: Option<bool>,
    /// Why the upload stopped before the end.
    stopped: Option<Stop>,
}

/// Why an upload stopped before the end.
enum Stop {
    /// The Worker could not be reached, refused, or answered wrongly.
    Upload(UploadError),
    /// The Worker answered a chunk, but the journal could not record it: a rerun sends that
    /// chunk again and gets duplicates.
    Journal(JournalError),
}

/// Sends the rows the journal does not hold yet, chunk after chunk, journaling each answer.
fn send_rows(
    client: &Client,
    journal: &mut Journal,
    outgoing: &[Outgoing<'_>],
    chunk_events: usize,
) -> Sent {
    let pending: Vec<&Outgoing<'_>> = outgoing
        .iter()
        .filter(|row| !journal.confirmed.contains_key(row.id))
        .collect();
    let resumed = (outgoing.len() - pending.len()) as u64;
    let mut sent = Sent {
        confirmed: 0,
        live: None,
        stopped: None,
    };
    if pending.is_empty() {
        if resumed > 0 {
            eprintln!(
                "ttedge: {} says every row was confirmed already: nothing to send",
                journal.path().display()
            );
        }
        return sent;
    }
    let bodies: Vec<&str> = pending.iter().map(|row| row.line).collect();
    let mut progress = Progress::new(outgoing.len() as u64, resumed);
    let max_events = chunk_events.min(MAX_UPLOAD_EVENTS);
    for range in upload::chunks(&bodies, max_events, MAX_UPLOAD_BYTES) {
        let body = bodies[range.clone()].join("\n");
        let answered = client
            .post(body, |pause, why| progress.waiting(pause, why))
            .and_then(|answer| confirmations(&pending[range.clone()], answer));
        let (confirmed, live) = match answered {
            Ok(answered) => answered,
            Err(error) => {
                sent.stopped = Some(Stop::Upload(error));
                break;
            }
        };
        if let Err(error) = journal.append(confirmed) {
            sent.stopped = Some(Stop::Journal(error));
            break;
        }
        sent.confirmed += range.len() as u64;
        sent.live = Some(live);
        progress.advance(range.len() as u64);
    }
    progress.finish();
    sent
}

/// The Worker's answers to a chunk, one per row, in the journal's terms.
fn confirmations(
    chunk: &[&Outgoing<'_>],
    answer: UploadAnswer,
) -> Result<(Vec<Confirmed>, bool), UploadError> {
    let mut by_index: Vec<Option<Confirmed>> = vec![None; chunk.len()];
    for event in answer.events {
        let Some(row) = chunk.get(event.index) else {
            return Err(UploadError::BadAnswer(format!(
                "an answer for line {} of a chunk of {}",
                event.index,
                chunk.len()
            )));
        };
        if event.event_id.as_deref().is_some_and(|id| id != row.id) {
            return Err(UploadError::BadAnswer(format!(
                "line {} of the chunk answered as {:?}, sent as {:?}",
                event.index, event.event_id, row.id
            )));
        }
        let reason = match event.status {
            AnswerStatus::Ready | AnswerStatus::Duplicate => None,
            _ => event.reason.map(Cow::into_owned),
        };
        by_index[event.index] = Some(Confirmed {
            id: row.id.to_string(),
            status: event.status,
            reason,
        });
    }
    let confirmed = by_index
        .into_iter()
        .enumerate()
        .map(|(index, answer)| {
            answer.ok_or_else(|| {
                UploadError::BadAnswer(format!("no answer for line {index} of the chunk"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((confirmed, answer.live))
}

impl Summary {
    /// Adds what the Worker answered (this run and, per the journal, earlier ones); its
    /// rejections join the list with their lines in the file.
    fn add_upload(
        &mut self,
        endpoint: &str,
        site: &str,
        journal: &Journal,
        outgoing: &[Outgoing<'_>],
        sent: &Sent,
    ) {
        let mut upload = UploadSummary {
            endpoint: endpoint.to_string(),
            site: site.to_string(),
            journal: journal.path().display().to_string(),
            to_send: outgoing.len() as u64,
            resumed: 0,
            sent_this_run: sent.confirmed,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            unsent: 0,
            live: sent.live,
        };
        for row in outgoing {
            let Some(confirmed) = journal.confirmed.get(row.id) else {
                upload.unsent += 1;
                continue;
            };
            let reason = confirmed.reason.as_deref().unwrap_or("no reason given");
            let refused = match confirmed.status {
                AnswerStatus::Ready => {
                    upload.accepted += 1;
                    continue;
                }
                AnswerStatus::Duplicate => {
                    upload.duplicates += 1;
                    continue;
                }
                AnswerStatus::Rejected => format!("refused by the Worker: {reason}"),
                // Not stored to be sent either: counted as refused, saying how.
                other => format!("refused by the Worker: {other}: {reason}"),
            };
            upload.rejected += 1;
            self.rejected.push(RejectedRow {
                line: row.row_line,
                reason: refused,
            });
        }
        upload.resumed = upload.to_send - upload.unsent - sent.confirmed;
        self.rejected.sort_by_key(|row| row.line);
        self.upload = Some(upload);
    }
}

/// The collect-API line sent for a ready row: only hashes of the personal data.
#[derive(Serialize)]
struct UploadLine<'a> {
    event: &'a str,
    event_id: &'a str,
    /// Epoch milliseconds.
    timestamp: i64,
    user_data: HashedUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a TrackProperties<'a>>,
    source: Source,
}

/// `user_data` with hashes only: 64-hex values are used as they are (DESIGN, "Personal
/// data"), so the Worker never sees the clear text.
#[derive(Serialize)]
struct HashedUser<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
}

/// The line to upload for a prepared, ready event dated `timestamp_ms`.
fn upload_line(timestamp_ms: Option<i64>, prepared: &PreparedEvent<'_>) -> Option<String> {
    let tiktok = prepared.tiktok.as_ref()?;
    let user = &tiktok.user;
    let line = UploadLine {
        event: &tiktok.event,
        event_id: &prepared.event_id,
        timestamp: timestamp_ms?,
        user_data: HashedUser {
            email_hash: user.email.as_ref().map(Sha256Hex::as_str),
            phone_hash: user.phone.as_ref().map(Sha256Hex::as_str),
            external_id: user.external_id.as_ref().map(Sha256Hex::as_str),
        },
        properties: Some(&tiktok.properties).filter(|p| !p.is_empty()),
        source: Source::Offline,
    };
    serde_json::to_string(&line).ok()
}

/// One row through core's offline rules and the pipeline: the prepared event and, when it
/// is ready, the line that uploads it (never an empty one: the Worker skips blank lines,
/// which would shift its answers' indexes).
fn prepare_row(
    row: &rows::Row,
    zone: &TimeZone,
    destination: &Destination,
    ctx: &RequestContext<'_>,
    now_ms: i64,
) -> Result<(PreparedEvent<'static>, Option<String>), String> {
    let cells = row.cells.as_ref().map_err(Clone::clone)?;
    let offline =
        OfflineRow::from_cells(cells, &rows::Zone(zone)).map_err(|error| error.to_string())?;
    let event = to_collect_event(&offline, &destination.names, now_ms, MAX_AGE_MS)
        .map_err(|error| error.to_string())?;
    let timestamp_ms = event.timestamp.map(|at| at.0);
    let request = prepare_request(vec![event], ctx, destination);
    let prepared = request
        .events
        .into_iter()
        .next()
        .ok_or("the pipeline returned no event")?;
    match prepared.status {
        Status::Rejected => Err(prepared.reason.unwrap_or_default()),
        Status::Ready => {
            let line = upload_line(timestamp_ms, &prepared)
                .ok_or("cannot be written as an upload line (no TikTok element or time)")?;
            Ok((prepared.into_owned(), Some(line)))
        }
        // Skipped or held back: shown, never sent.
        _ => Ok((prepared.into_owned(), None)),
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
        upload: None,
    }
}

fn render(summary: &Summary) -> String {
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
    for bad in &summary.rejected {
        text.push_str(&format!("  rejected line {}: {}\n", bad.line, bad.reason));
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
    match &summary.upload {
        None => text.push_str("dry run: nothing was sent\n"),
        Some(upload) => {
            text.push_str(&format!(
                "sent to {} for {}: {} accepted, {} answered duplicate by the Worker, {} rejected by the Worker",
                upload.endpoint, upload.site, upload.accepted, upload.duplicates, upload.rejected
            ));
            if upload.live == Some(false) {
                text.push_str(" (the destination is not live: stored, not sent to TikTok)");
            }
            text.push('\n');
            text.push_str(&format!(
                "this run confirmed {} rows; {} were confirmed by an earlier run (journal {})\n",
                upload.sent_this_run, upload.resumed, upload.journal
            ));
            if upload.unsent > 0 {
                text.push_str(&format!("{} rows not sent yet\n", upload.unsent));
            }
        }
    }
    text
}
