//! The Dispatcher's answers about itself: health, the queue's state, parked events. Every
//! one is a typed struct that the admin API and the dashboard read as it is.

use serde::{Deserialize, Serialize};
use ttedge_core::destination::BaselineRecovery;
use ttedge_core::health::{
    self, Counts, EmqReport, HourBucket, HourPoint, IdentityReport, Recovery, Windows,
};
use worker::Result;

use super::send_loop::{count_intake, pending_intake, queued_events, window};
use super::storage::{CallRecord, IntakeSummary, ParkedRow, State, Storage};
use ttedge_core::ratelimit::DEFAULT_LIMIT_PER_MINUTE;

/// `GET /health`: delivery health over the kept hours, and what is going on now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// When the report was made, epoch ms.
    pub now_ms: u64,
    /// Totals of the last hour, 24 hours and 7 days.
    pub windows: Windows,
    /// The last 25 hours, oldest first, for the charts.
    pub hourly: Vec<HourPoint>,
    /// Now.
    pub current: Current,
    /// Match quality over the last 7 days.
    pub emq: EmqReport,
    /// Recovery over the last 7 days, and against each imported baseline.
    pub recovery: RecoveryReport,
    /// Identity resolution over the last 7 days: events enriched, mean points gained.
    #[serde(default)]
    pub identity: IdentityReport,
}

/// Recovery figures: the Dispatcher's own, and the admin API's per baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Conversions delivered and those the pixel could not have seen.
    #[serde(flatten)]
    pub totals: Recovery,
    /// Against each imported baseline (filled in by the admin API, which has them).
    #[serde(default)]
    pub baselines: Vec<BaselineRecovery>,
}

/// What is going on now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Current {
    /// The last failed calls, newest first.
    pub last_errors: Vec<CallRecord>,
    /// Events waiting to be sent.
    pub queue_depth: u64,
    /// Events parked, waiting for a replay.
    pub parked: u64,
    /// How long the oldest waiting event has waited.
    pub oldest_queued_age_ms: Option<u64>,
    /// Requests of the last minute against the limit.
    pub rate_window: RateWindow,
}

/// Requests of the last minute against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    /// Requests that still count.
    pub used: u32,
    /// Requests allowed per sliding minute.
    pub limit: u32,
}

/// `GET /state`: the queue as it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueState {
    /// Events waiting to be sent.
    pub queued: u64,
    /// Events parked.
    pub parked: u64,
    /// How long the oldest waiting event has waited.
    pub oldest_queued_age_ms: Option<u64>,
    /// When the alarm is set for, epoch ms.
    pub alarm_at: Option<f64>,
    /// Requests of the last minute against the limit.
    pub rate_window: RateWindow,
    /// Every counter over the kept hours.
    pub counters: Counts,
    /// The first page of parked events.
    pub parked_events: Vec<ParkedListed>,
    /// The last calls to TikTok, newest first.
    pub recent_calls: Vec<CallRecord>,
    /// SQLite rows this object wrote since it started: what storage is billed by.
    pub rows_written: u64,
}

/// A parked event as listed: never its element (hashed personal data).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedListed {
    /// Listing order; `after` pages from it.
    pub seq: u64,
    /// TikTok's deduplication key.
    pub event_id: String,
    /// The TikTok event name.
    pub event_name: String,
    /// TikTok's answer.
    pub http_status: u16,
    /// TikTok's code.
    pub tiktok_code: Option<i64>,
    /// TikTok's message.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was parked, epoch ms.
    pub parked_at_ms: u64,
}

impl From<&ParkedRow> for ParkedListed {
    fn from(row: &ParkedRow) -> Self {
        ParkedListed {
            seq: row.id as u64,
            event_id: row.event_id.clone(),
            event_name: row.event_name.clone(),
            http_status: row.http_status as u16,
            tiktok_code: row.tiktok_code.map(|code| code as i64),
            message: row.message.clone(),
            hint: row.hint.clone(),
            attempts: row.attempts as u32,
            parked_at_ms: row.parked_ms as u64,
        }
    }
}

/// `GET /parked`: one page, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedList {
    /// The page.
    pub events: Vec<ParkedListed>,
    /// `after` for the next page; `null` on the last page.
    pub next_after: Option<u64>,
    /// Parked events in all.
    pub total: u64,
}

/// `POST /parked/replay`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplayAnswer {
    /// Events put back in the queue.
    pub replayed: u64,
    /// Asked-for ids with no parked event.
    pub not_found: Vec<String>,
}

/// `POST /conversions`: conversions delivered in each range asked, in order.
pub type ConversionCounts = Vec<u64>;

/// The state with what came in since the last count counted: exact, without a write.
fn counted_state(storage: &Storage) -> Result<(State, Vec<IntakeSummary>)> {
    let mut state = storage.state()?;
    let intake = pending_intake(storage, &state)?;
    count_intake(&mut state, &intake);
    Ok((state, intake))
}

/// Events waiting, and the arrival of the oldest.
fn queue(state: &State, intake: &[IntakeSummary]) -> (u64, Option<u64>) {
    let mut depth = 0;
    let mut oldest = None::<u64>;
    for (key, lane) in &state.lanes {
        depth += queued_events(intake, key, lane.cursor);
        let first = intake.iter().find(|row| {
            row.lane.as_deref() == Some(key.as_str()) && row.position + row.events > lane.cursor
        });
        if let Some(row) = first {
            oldest = Some(oldest.map_or(row.received_ms, |o| o.min(row.received_ms)));
        }
    }
    (depth, oldest)
}

fn rate_window(storage: &Storage, state: &State, now_ms: u64) -> Result<RateWindow> {
    let limit = storage
        .credentials()?
        .map_or(DEFAULT_LIMIT_PER_MINUTE, |c| c.rate_limit_per_minute);
    let mut window = window(state, limit);
    Ok(RateWindow {
        used: window.used(now_ms),
        limit: window.limit(),
    })
}

fn newest_first(calls: &[CallRecord]) -> Vec<CallRecord> {
    calls.iter().rev().cloned().collect()
}

/// Delivery health at `now_ms`.
pub fn health(storage: &Storage, now_ms: u64) -> Result<Health> {
    let (state, intake) = counted_state(storage)?;
    let mut buckets: Vec<HourBucket> = storage.hours_since(health::oldest_kept_hour(now_ms))?;
    buckets.extend(state.hours.iter().cloned());
    let report = health::report(&buckets, now_ms);
    let (queue_depth, oldest) = queue(&state, &intake);
    Ok(Health {
        now_ms,
        windows: report.windows,
        hourly: report.hourly,
        current: Current {
            last_errors: newest_first(&state.errors),
            queue_depth,
            parked: storage.parked_total()?,
            oldest_queued_age_ms: oldest.map(|at| now_ms.saturating_sub(at)),
            rate_window: rate_window(storage, &state, now_ms)?,
        },
        emq: report.emq,
        recovery: RecoveryReport {
            totals: report.recovery,
            baselines: Vec::new(),
        },
        identity: report.identity,
    })
}

/// The queue's state at `now_ms`.
pub fn queue_state(storage: &Storage, now_ms: u64, alarm_at: Option<f64>) -> Result<QueueState> {
    let (state, intake) = counted_state(storage)?;
    let mut counters = Counts::default();
    for bucket in storage.hours_since(0)?.iter().chain(&state.hours) {
        counters.merge(&bucket.counts);
    }
    let (queued, oldest) = queue(&state, &intake);
    let page = parked(
        storage,
        super::client::ParkedPage {
            limit: super::client::ParkedPage::MAX_LIMIT,
            after: 0,
        },
    )?;
    Ok(QueueState {
        queued,
        parked: page.total,
        oldest_queued_age_ms: oldest.map(|at| now_ms.saturating_sub(at)),
        alarm_at,
        rate_window: rate_window(storage, &state, now_ms)?,
        counters,
        parked_events: page.events,
        recent_calls: newest_first(&state.calls),
        rows_written: storage.rows_written(),
    })
}

/// One page of parked events.
pub fn parked(storage: &Storage, page: super::client::ParkedPage) -> Result<ParkedList> {
    let (rows, total) = storage.parked_page(page.after, page.limit + 1)?;
    let more = rows.len() > page.limit as usize;
    let events: Vec<ParkedListed> = rows
        .iter()
        .take(page.limit as usize)
        .map(ParkedListed::from)
        .collect();
    Ok(ParkedList {
        next_after: events.last().filter(|_| more).map(|row| row.seq),
        events,
        total,
    })
}

/// Conversions delivered for `pixel` in each range of days, the unflushed days included.
pub fn conversions(
    storage: &Storage,
    pixel: &str,
    ranges: &[(u32, u32)],
) -> Result<ConversionCounts> {
    let state = storage.state()?;
    ranges
        .iter()
        .map(|&(first, last)| {
            let recent: u64 = state
                .conversions
                .iter()
                .filter(|(day, p, _)| p == pixel && (first..=last).contains(day))
                .map(|(_, _, n)| n)
                .sum();
            Ok(storage.conversions_between(pixel, first, last)? + recent)
        })
        .collect()
}
