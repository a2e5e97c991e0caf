//! The Dispatcher's SQLite storage, laid out for few rows written.
//!
//! workerd bills every row an `INSERT`, `UPDATE` or `DELETE` touches, index entries
//! included, but `DROP TABLE` writes no rows however many it holds, and reads cost a
//! thousandth of writes (measured with `SqlCursor::rows_written`: README, "Storage"). So:
//!
//! - **Intake** goes into one row per collect request, `intake_<g>`, holding all its
//!   elements; the table of a five-minute generation `g` is dropped whole once every event
//!   in it has left the queue. No per-event row is ever updated or deleted.
//! - **Deduplication keys** (32 bytes each) go into `seen_<g>` tables of twelve-hour
//!   generations, without a rowid, and a table is dropped whole once all its keys are more
//!   than 48 hours old. A delivered event keeps nothing else.
//! - **Progress** is core's lanes (one cursor each), the rate window and the counters of
//!   recent hours: one `state` row, written once per request to TikTok.
//! - What is rare costs what it costs: parked events, failed calls, hours flushed from the
//!   state, conversions per day.
//! - **Cash-on-delivery orders** (a checkout's element, kept for its confirmation) go into
//!   `orders_<d>` tables by the UTC day `d` they expire, without a rowid: one row written
//!   at checkout, one when confirmed or cancelled, and none when they expire, since the
//!   table of a past day is dropped whole.
//!
//! Each event has a **position**: its intake row's generation and rowid, and its index in
//! the row. Positions only grow, so a lane's cursor says which of its events have left.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ttedge_core::delivery::{Lane, Metric};
use ttedge_core::event::PixelStatus;
use ttedge_core::health::{self, Counts, HourBucket};
use ttedge_core::identity::IdentityUse;
use ttedge_core::quality::QualitySummary;
use ttedge_core::tiktok::{Failure, RequestKey};
use worker::{SqlCursor, SqlStorage, SqlStorageValue};

/// Intake tables hold five minutes each.
pub const INTAKE_GENERATION_MS: u64 = 5 * 60 * 1_000;
/// Deduplication tables hold twelve hours each.
pub const SEEN_GENERATION_MS: u64 = 12 * 60 * 60 * 1_000;
/// An event id is refused again for at least 48 hours: the generation it was seen in and
/// the four after it, so 48 to 60 hours.
pub const SEEN_GENERATIONS_KEPT: u64 = 5;
/// Bits of a position below the rowid: up to 1,024 events per intake row.
const INDEX_BITS: u32 = 10;
/// The most events one intake row may hold: more would run into the next row's positions.
pub const MAX_EVENTS_PER_ROW: usize = 1 << INDEX_BITS;
/// Bits of a position below the generation: up to 16 million intake rows per generation.
const ROW_BITS: u32 = 24;
/// Calls, and failed calls, kept for the health and state answers.
pub const LAST_CALLS: usize = 20;
/// Days of conversions kept, for baselines imported from Ads Manager.
const CONVERSION_DAYS_KEPT: u32 = 400;

/// The fixed tables. Intake and deduplication tables are made as their generation starts.
const SCHEMA: &[&str] = &[
    // Core's lanes, the rate window and unflushed hours: `State` as JSON.
    "CREATE TABLE IF NOT EXISTS state (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL
    )",
    // Events that could not be delivered, kept whole for replay.
    "CREATE TABLE IF NOT EXISTS parked (
        id           INTEGER PRIMARY KEY,
        lane         TEXT    NOT NULL,
        event_id     TEXT    NOT NULL,
        event_name   TEXT    NOT NULL,
        pixel_status TEXT,
        conversion   INTEGER NOT NULL,
        element      TEXT    NOT NULL,
        parked_ms    INTEGER NOT NULL,
        attempts     INTEGER NOT NULL,
        http_status  INTEGER NOT NULL,
        tiktok_code  INTEGER,
        message      TEXT    NOT NULL,
        hint         TEXT    NOT NULL
    )",
    // Past hours of core's `HourBucket`, as JSON.
    "CREATE TABLE IF NOT EXISTS hours (
        hour   INTEGER PRIMARY KEY,
        bucket TEXT NOT NULL
    )",
    // Conversions delivered per UTC day and pixel, for the recovery against a baseline.
    "CREATE TABLE IF NOT EXISTS conversions_daily (
        day        INTEGER NOT NULL,
        pixel_code TEXT    NOT NULL,
        delivered  INTEGER NOT NULL,
        PRIMARY KEY (day, pixel_code)
    )",
    // How to reach TikTok for this token, as the Worker last said.
    "CREATE TABLE IF NOT EXISTS credentials (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        host         TEXT,
        sealed_token TEXT,
        rate_limit   INTEGER NOT NULL
    )",
    // Identity resolution's hashed values per pixel and key.
    super::identity::TABLE,
];

/// Where the events of one lane go: TikTok's request key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LaneKey {
    /// `event_source_id`.
    pub pixel_code: String,
    /// Test events go in requests of their own.
    pub test_event_code: Option<String>,
    /// Offline events of a destination with an offline event set go there, in requests of
    /// their own. Absent from a web lane's stored key, which stays what it always was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_event_set_id: Option<String>,
}

impl LaneKey {
    /// The key as stored: JSON, unambiguous whatever the codes hold.
    pub fn stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored key read back.
    pub fn parse(stored: &str) -> Option<LaneKey> {
        serde_json::from_str(stored).ok()
    }

    /// TikTok's request key.
    pub fn request_key(&self) -> RequestKey<'_> {
        RequestKey::new(
            &self.pixel_code,
            self.test_event_code.as_deref(),
            self.offline_event_set_id.as_deref(),
        )
    }
}

/// What the Dispatcher keeps between requests to TikTok, in one row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Each lane's progress, by stored lane key.
    pub lanes: BTreeMap<String, Lane>,
    /// When the requests of the last minute came back, for the rate window.
    pub sends: Vec<u64>,
    /// Intake rows before this position are counted in `hours`.
    pub counted: u64,
    /// Recent hours not yet flushed to the `hours` table.
    pub hours: Vec<HourBucket>,
    /// Conversions delivered, per UTC day and pixel, not yet flushed.
    pub conversions: Vec<(u32, String, u64)>,
    /// The last calls to TikTok, newest last.
    pub calls: Vec<CallRecord>,
    /// The last failed calls, newest last.
    pub errors: Vec<CallRecord>,
}

/// One call to TikTok, as the health and state answers list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the answer came back, epoch ms.
    pub at_ms: u64,
    /// From sending to the end of the answer.
    pub latency_ms: u64,
    /// Events in the request.
    pub events: u64,
    /// `delivered`, `partially_delivered`, `retry` or `reject`.
    pub verdict: String,
    /// 0 when no answer came (network error, time-out).
    pub http_status: u16,
    /// TikTok's code.
    pub tiktok_code: Option<i64>,
    /// TikTok's message, or what went wrong on the way.
    pub message: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl State {
    /// Keeps a call in the last calls, and in the last errors when it failed.
    pub fn record_call(&mut self, call: CallRecord) {
        let keep = |list: &mut Vec<CallRecord>, call: CallRecord| {
            list.push(call);
            let excess = list.len().saturating_sub(LAST_CALLS);
            list.drain(..excess);
        };
        if matches!(call.verdict.as_str(), "retry" | "reject") {
            keep(&mut self.errors, call.clone());
        }
        keep(&mut self.calls, call);
    }

    /// The bucket of the hour `at_ms` falls in.
    pub fn hour(&mut self, at_ms: u64) -> &mut HourBucket {
        let hour = health::hour_of(at_ms);
        match self.hours.iter().position(|b| b.hour_ms == hour) {
            Some(at) => &mut self.hours[at],
            None => {
                self.hours.push(HourBucket::new(hour));
                self.hours.last_mut().expect("just pushed")
            }
        }
    }

    /// Adds counter changes to the hour of `at_ms`.
    pub fn count(&mut self, at_ms: u64, changes: impl IntoIterator<Item = (Metric, u64)>) {
        let counts = &mut self.hour(at_ms).counts;
        for (metric, n) in changes {
            counts.add(metric, n);
        }
    }

    /// Adds delivered conversions of `pixel` on the day of `at_ms`.
    pub fn convert(&mut self, at_ms: u64, pixel: &str, n: u64) {
        if n == 0 {
            return;
        }
        let day = ttedge_core::destination::day_of(at_ms);
        match self
            .conversions
            .iter_mut()
            .find(|(d, p, _)| *d == day && p == pixel)
        {
            Some((_, _, count)) => *count += n,
            None => self.conversions.push((day, pixel.to_string(), n)),
        }
    }
}

/// One event of an intake row, as stored beside its element.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMeta {
    /// TikTok's deduplication key.
    pub event_id: String,
    /// The TikTok event name.
    pub event_name: String,
    /// The page's pixel status.
    #[serde(default)]
    pub pixel_status: Option<PixelStatus>,
    /// Counted as a conversion once delivered.
    #[serde(default)]
    pub conversion: bool,
    /// Bytes of its element in the row's `data`.
    pub len: usize,
    /// Set when it may still receive a stored identity at send time (its consent allows it
    /// and it lacked a value at intake); absent otherwise, so most rows do not grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityUse>,
}

impl EventMeta {
    /// The stand-in for an event whose metadata did not read back: parked under its
    /// position, so that the operator sees it and nothing vanishes.
    pub fn unreadable(position: u64) -> EventMeta {
        EventMeta {
            event_id: format!("unreadable-{position}"),
            event_name: "unknown".into(),
            pixel_status: None,
            conversion: false,
            len: 0,
            identity: None,
        }
    }
}

/// An intake row as planning and counting read it (without the elements).
#[derive(Debug, Clone)]
pub struct IntakeSummary {
    /// Position of the row's first event.
    pub position: u64,
    /// Its lane, as stored; `None` for a row of counts only.
    pub lane: Option<String>,
    /// Its events.
    pub events: u64,
    /// When it came.
    pub received_ms: u64,
    /// Its counts and match quality, not yet in `State::hours` unless before `counted`.
    pub counts: Counts,
    /// Match quality of its scored events.
    pub quality: QualitySummary,
}

/// The elements and metadata of an intake row.
#[derive(Debug, Clone)]
pub struct IntakeEvents {
    /// Position of the row's first event.
    pub position: u64,
    /// The elements, joined by commas.
    pub data: String,
    /// One per element, in order.
    pub meta: Vec<EventMeta>,
    /// The row's metadata did not read back: `meta` holds stand-ins, one per event, so that
    /// its events are parked with the reason rather than skipped.
    pub damaged: bool,
}

impl IntakeEvents {
    /// Each element's text, or `None` when the row is damaged or the lengths do not add up
    /// to the stored data: its events are parked, never sent half-read nor dropped.
    pub fn elements(&self) -> Option<Vec<&str>> {
        if self.damaged {
            return None;
        }
        let mut at = 0;
        let mut elements = Vec::with_capacity(self.meta.len());
        for (i, meta) in self.meta.iter().enumerate() {
            if i > 0 {
                (self.data.as_bytes().get(at) == Some(&b',')).then_some(())?;
                at += 1;
            }
            elements.push(self.data.get(at..at.checked_add(meta.len)?)?);
            at += meta.len;
        }
        (at == self.data.len()).then_some(elements)
    }
}

/// A cash-on-delivery order as kept.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    /// The UTC day (since the epoch) its table is dropped after.
    pub expires_day: u64,
    /// The checkout's `data[]` element.
    pub element: String,
    /// Whether it was confirmed already.
    pub confirmed: bool,
}

/// A parked event as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedRow {
    /// Listing order and paging key.
    pub id: i64,
    /// Stored lane key.
    pub lane: String,
    /// TikTok's deduplication key.
    pub event_id: String,
    /// The TikTok event name.
    pub event_name: String,
    /// The page's pixel status.
    pub pixel_status: Option<String>,
    /// Counted as a conversion once delivered.
    pub conversion: i64,
    /// The element, for replay; never listed.
    pub element: String,
    /// When it was parked.
    pub parked_ms: f64,
    /// Attempts made.
    pub attempts: i64,
    /// TikTok's answer.
    pub http_status: i64,
    /// TikTok's code.
    pub tiktok_code: Option<f64>,
    /// TikTok's message.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Why the storage could not be opened.
#[derive(Debug)]
pub struct MigrationError(pub String);

/// The Dispatcher's tables.
pub struct Storage {
    sql: Counted,
}

/// The SQL handle, counting the rows every statement writes: the figure Cloudflare bills,
/// reported in the queue's state so that the storage bill per event can be measured.
struct Counted {
    sql: SqlStorage,
    written: std::cell::Cell<u64>,
}

/// A cursor whose rows written are added to the count once it is read or dropped.
pub struct CountedCursor<'a> {
    cursor: SqlCursor,
    counter: &'a std::cell::Cell<u64>,
}

impl Counted {
    fn exec(
        &self,
        query: &str,
        bindings: impl Into<Option<Vec<SqlStorageValue>>>,
    ) -> worker::Result<CountedCursor<'_>> {
        Ok(CountedCursor {
            cursor: self.sql.exec(query, bindings)?,
            counter: &self.written,
        })
    }
}

impl CountedCursor<'_> {
    /// Every row, deserialised.
    pub fn to_array<T: serde::de::DeserializeOwned>(&self) -> worker::Result<Vec<T>> {
        self.cursor.to_array()
    }

    /// The one row.
    pub fn one<T: serde::de::DeserializeOwned>(&self) -> worker::Result<T> {
        self.cursor.one()
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> usize {
        self.cursor.rows_written()
    }
}

impl Drop for CountedCursor<'_> {
    fn drop(&mut self) {
        let written = self.cursor.rows_written() as u64;
        self.counter.set(self.counter.get() + written);
    }
}

/// Milliseconds and counts fit a JavaScript number for the next 285,000 years.
pub fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

fn text(value: Option<String>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, SqlStorageValue::String)
}

/// The position of the first event of row `seq` of generation `generation`.
pub fn position(generation: u64, seq: u64) -> u64 {
    (generation << (ROW_BITS + INDEX_BITS)) | (seq << INDEX_BITS)
}

/// The generation a position lies in.
pub fn generation_of(position: u64) -> u64 {
    position >> (ROW_BITS + INDEX_BITS)
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

impl Storage {
    /// Opens the storage, creating the fixed tables and moving a first-release queue over.
    pub fn open(sql: SqlStorage) -> Result<Storage, MigrationError> {
        let storage = Storage {
            sql: Counted {
                sql,
                written: std::cell::Cell::new(0),
            },
        };
        for statement in SCHEMA {
            storage
                .sql
                .exec(statement, None)
                .map_err(|error| MigrationError(format!("schema: {error}")))?;
        }
        super::migrate::from_first_release(&storage)?;
        Ok(storage)
    }

    /// The SQL handle, for the migration.
    pub fn sql(&self) -> &SqlStorage {
        &self.sql.sql
    }

    /// Runs a statement, its rows written counted: for the tables of other files
    /// ([`identity`](super::identity)).
    pub fn exec(
        &self,
        query: &str,
        bindings: impl Into<Option<Vec<SqlStorageValue>>>,
    ) -> worker::Result<CountedCursor<'_>> {
        self.sql.exec(query, bindings)
    }

    /// Rows written through this storage since the object started, alarms set included.
    pub fn rows_written(&self) -> u64 {
        self.sql.written.get()
    }

    /// Counts an alarm set: Cloudflare bills each `setAlarm()` as one row written.
    pub fn count_alarm_set(&self) {
        self.sql.written.set(self.sql.written.get() + 1);
    }

    fn tables(&self, prefix: &str) -> worker::Result<Vec<u64>> {
        let names: Vec<Name> = self
            .sql
            .exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?",
                vec![format!("{prefix}%").into()],
            )?
            .to_array()?;
        let mut generations: Vec<u64> = names
            .iter()
            .filter_map(|n| n.name.strip_prefix(prefix)?.parse().ok())
            .collect();
        generations.sort_unstable();
        Ok(generations)
    }

    // ---- intake ---------------------------------------------------------------------

    /// For each key, whether it is seen here for the first time within the deduplication
    /// window; each new one is recorded as seen at `now_ms`. A key repeated in `keys` is new
    /// only at its first place. The window's tables are listed once for all the keys.
    pub fn first_sightings(&self, keys: &[[u8; 32]], now_ms: u64) -> worker::Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let current = now_ms / SEEN_GENERATION_MS;
        let earlier: Vec<u64> = self
            .tables("seen_")?
            .into_iter()
            .filter(|&g| g != current && g + SEEN_GENERATIONS_KEPT > current)
            .collect();
        self.sql.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS seen_{current} (key BLOB PRIMARY KEY) WITHOUT ROWID"
            ),
            None,
        )?;
        keys.iter()
            .map(|key| {
                for generation in &earlier {
                    let hits: Vec<serde::de::IgnoredAny> = self
                        .sql
                        .exec(
                            &format!("SELECT 1 AS hit FROM seen_{generation} WHERE key = ?"),
                            vec![SqlStorageValue::Blob(key.to_vec())],
                        )?
                        .to_array()?;
                    if !hits.is_empty() {
                        return Ok(false);
                    }
                }
                let inserted = self.sql.exec(
                    &format!("INSERT OR IGNORE INTO seen_{current} (key) VALUES (?)"),
                    vec![SqlStorageValue::Blob(key.to_vec())],
                )?;
                let _: Vec<serde::de::IgnoredAny> = inserted.to_array()?;
                Ok(inserted.rows_written() > 0)
            })
            .collect()
    }

    /// The generation intake rows written at `now_ms` go in, its table made. A clock that
    /// steps back never puts a row before an existing one. One call serves every row of an
    /// intake.
    pub fn intake_generation(&self, now_ms: u64) -> worker::Result<u64> {
        let latest = self.intake_generations()?.last().copied().unwrap_or(0);
        let generation = (now_ms / INTAKE_GENERATION_MS).max(latest);
        self.open_generation(generation)?;
        Ok(generation)
    }

    /// Stores one intake row in the current generation; answers the position of its first
    /// event.
    pub fn insert_intake(
        &self,
        now_ms: u64,
        lane: Option<&LaneKey>,
        events: &[EventMeta],
        data: &str,
        counts: &Counts,
        quality: &QualitySummary,
    ) -> worker::Result<u64> {
        let generation = self.intake_generation(now_ms)?;
        self.insert_intake_into(generation, now_ms, lane, events, data, counts, quality)
    }

    /// The intake generations that have a table, oldest first.
    pub fn intake_generations(&self) -> worker::Result<Vec<u64>> {
        self.tables("intake_")
    }

    /// Makes the table of an intake generation, if it has none.
    pub fn open_generation(&self, generation: u64) -> worker::Result<()> {
        self.sql.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS intake_{generation} (
                    seq         INTEGER PRIMARY KEY,
                    lane        TEXT,
                    events      INTEGER NOT NULL,
                    received_ms INTEGER NOT NULL,
                    data        TEXT    NOT NULL,
                    meta        TEXT    NOT NULL,
                    counts      TEXT    NOT NULL,
                    quality     TEXT    NOT NULL
                )"
            ),
            None,
        )?;
        Ok(())
    }

    /// [`insert_intake`](Storage::insert_intake) into a given generation, whose table
    /// exists ([`intake_generation`](Storage::intake_generation) or
    /// [`open_generation`](Storage::open_generation) made it).
    #[allow(clippy::too_many_arguments)]
    pub fn insert_intake_into(
        &self,
        generation: u64,
        now_ms: u64,
        lane: Option<&LaneKey>,
        events: &[EventMeta],
        data: &str,
        counts: &Counts,
        quality: &QualitySummary,
    ) -> worker::Result<u64> {
        #[derive(Deserialize)]
        struct Seq {
            seq: i64,
        }
        let row: Seq = self
            .sql
            .exec(
                &format!(
                    "INSERT INTO intake_{generation}
                        (lane, events, received_ms, data, meta, counts, quality)
                     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq"
                ),
                vec![
                    text(lane.map(LaneKey::stored)),
                    int(events.len() as u64),
                    int(now_ms),
                    data.into(),
                    serde_json::to_string(events)?.into(),
                    serde_json::to_string(counts)?.into(),
                    serde_json::to_string(quality)?.into(),
                ],
            )?
            .one()?;
        Ok(position(generation, row.seq as u64))
    }

    /// Every intake row at or after `from`, oldest first, without elements.
    pub fn intake_since(&self, from: u64) -> worker::Result<Vec<IntakeSummary>> {
        #[derive(Deserialize)]
        struct Row {
            seq: f64,
            lane: Option<String>,
            events: f64,
            received_ms: f64,
            counts: String,
            quality: String,
        }
        let mut rows = Vec::new();
        for generation in self.tables("intake_")? {
            if position(generation + 1, 0) <= from {
                continue;
            }
            let found: Vec<Row> = self
                .sql
                .exec(
                    &format!(
                        "SELECT seq, lane, events, received_ms, counts, quality
                         FROM intake_{generation} WHERE seq >= ? ORDER BY seq"
                    ),
                    vec![int(first_seq(generation, from))],
                )?
                .to_array()?;
            rows.extend(found.into_iter().map(|row| IntakeSummary {
                position: position(generation, row.seq as u64),
                lane: row.lane,
                events: row.events as u64,
                received_ms: row.received_ms as u64,
                counts: serde_json::from_str(&row.counts).unwrap_or_default(),
                quality: serde_json::from_str(&row.quality).unwrap_or_default(),
            }));
        }
        Ok(rows)
    }

    /// The elements of the intake rows at the given positions.
    pub fn intake_events(&self, positions: &[u64]) -> worker::Result<Vec<IntakeEvents>> {
        #[derive(Deserialize)]
        struct Row {
            events: f64,
            data: String,
            meta: String,
        }
        let mut found = Vec::with_capacity(positions.len());
        for &at in positions {
            let generation = generation_of(at);
            let seq = first_seq(generation, at);
            let rows: Vec<Row> = self
                .sql
                .exec(
                    &format!("SELECT events, data, meta FROM intake_{generation} WHERE seq = ?"),
                    vec![int(seq)],
                )?
                .to_array()?;
            if let Some(row) = rows.into_iter().next() {
                let events = row.events as u64;
                let (meta, damaged) = match serde_json::from_str::<Vec<EventMeta>>(&row.meta) {
                    Ok(meta) if meta.len() as u64 == events => (meta, false),
                    _ => (
                        (0..events).map(|i| EventMeta::unreadable(at + i)).collect(),
                        true,
                    ),
                };
                found.push(IntakeEvents {
                    position: at,
                    meta,
                    data: row.data,
                    damaged,
                });
            }
        }
        Ok(found)
    }

    /// Drops the intake generations that hold nothing still queued or uncounted: before
    /// `done`, and not the newest (new rows may still go there). No row is written.
    pub fn drop_intake_before(&self, done: u64) -> worker::Result<()> {
        let generations = self.tables("intake_")?;
        let newest = generations.last().copied();
        for generation in generations {
            if Some(generation) != newest && position(generation + 1, 0) <= done {
                self.sql
                    .exec(&format!("DROP TABLE IF EXISTS intake_{generation}"), None)?;
            }
        }
        Ok(())
    }

    /// Whether some deduplication generation is past the window.
    pub fn has_old_seen(&self, now_ms: u64) -> worker::Result<bool> {
        let current = now_ms / SEEN_GENERATION_MS;
        Ok(self
            .tables("seen_")?
            .iter()
            .any(|&generation| generation + SEEN_GENERATIONS_KEPT <= current))
    }

    /// Drops deduplication generations past the window. No row is written.
    pub fn drop_old_seen(&self, now_ms: u64) -> worker::Result<()> {
        let current = now_ms / SEEN_GENERATION_MS;
        for generation in self.tables("seen_")? {
            if generation + SEEN_GENERATIONS_KEPT <= current {
                self.sql
                    .exec(&format!("DROP TABLE IF EXISTS seen_{generation}"), None)?;
            }
        }
        Ok(())
    }

    // ---- cash-on-delivery orders -----------------------------------------------------

    /// Keeps a checkout's element under its pixel and order id until the end of the UTC day
    /// `expires_day`. A second checkout of the same order that day keeps the first.
    pub fn insert_order(
        &self,
        expires_day: u32,
        pixel_code: &str,
        order_id: &str,
        element: &str,
    ) -> worker::Result<()> {
        self.sql.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS orders_{expires_day} (
                    pixel_code   TEXT NOT NULL,
                    order_id     TEXT NOT NULL,
                    element      TEXT NOT NULL,
                    confirmed_ms INTEGER,
                    PRIMARY KEY (pixel_code, order_id)
                ) WITHOUT ROWID"
            ),
            None,
        )?;
        self.sql.exec(
            &format!(
                "INSERT OR IGNORE INTO orders_{expires_day} (pixel_code, order_id, element)
                 VALUES (?, ?, ?)"
            ),
            vec![pixel_code.into(), order_id.into(), element.into()],
        )?;
        Ok(())
    }

    /// The order kept under `pixel_code` and `order_id` that expires last, if any is
    /// still kept on `today`.
    pub fn order(
        &self,
        today: u32,
        pixel_code: &str,
        order_id: &str,
    ) -> worker::Result<Option<StoredOrder>> {
        #[derive(Deserialize)]
        struct Row {
            element: String,
            confirmed_ms: Option<f64>,
        }
        for day in self.tables("orders_")?.into_iter().rev() {
            if day < u64::from(today) {
                break;
            }
            let rows: Vec<Row> = self
                .sql
                .exec(
                    &format!(
                        "SELECT element, confirmed_ms FROM orders_{day}
                         WHERE pixel_code = ? AND order_id = ?"
                    ),
                    vec![pixel_code.into(), order_id.into()],
                )?
                .to_array()?;
            if let Some(row) = rows.into_iter().next() {
                return Ok(Some(StoredOrder {
                    expires_day: day,
                    element: row.element,
                    confirmed: row.confirmed_ms.is_some(),
                }));
            }
        }
        Ok(None)
    }

    /// Marks a kept order confirmed at `now_ms`: a later confirmation is a duplicate.
    pub fn confirm_order(
        &self,
        order: &StoredOrder,
        pixel_code: &str,
        order_id: &str,
        now_ms: u64,
    ) -> worker::Result<()> {
        self.sql.exec(
            &format!(
                "UPDATE orders_{} SET confirmed_ms = ? WHERE pixel_code = ? AND order_id = ?",
                order.expires_day
            ),
            vec![int(now_ms), pixel_code.into(), order_id.into()],
        )?;
        Ok(())
    }

    /// Forgets every copy of an order (a cancellation).
    pub fn forget_order(&self, pixel_code: &str, order_id: &str) -> worker::Result<()> {
        for day in self.tables("orders_")? {
            self.sql.exec(
                &format!("DELETE FROM orders_{day} WHERE pixel_code = ? AND order_id = ?"),
                vec![pixel_code.into(), order_id.into()],
            )?;
        }
        Ok(())
    }

    /// Whether some orders table is past its day.
    pub fn has_expired_orders(&self, today: u32) -> worker::Result<bool> {
        Ok(self
            .tables("orders_")?
            .first()
            .is_some_and(|&day| day < u64::from(today)))
    }

    /// Drops the orders tables past their day. No row is written.
    pub fn drop_expired_orders(&self, today: u32) -> worker::Result<()> {
        for day in self.tables("orders_")? {
            if day < u64::from(today) {
                self.sql
                    .exec(&format!("DROP TABLE IF EXISTS orders_{day}"), None)?;
            }
        }
        Ok(())
    }

    // ---- state ----------------------------------------------------------------------

    /// The state row; a fresh state before the first write.
    pub fn state(&self) -> worker::Result<State> {
        #[derive(Deserialize)]
        struct Row {
            state: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT state FROM state WHERE id = 1", None)?
            .to_array()?;
        match rows.first() {
            Some(row) => Ok(serde_json::from_str(&row.state)?),
            None => Ok(State::default()),
        }
    }

    /// Writes the state row, first moving finished hours and days to their tables.
    pub fn save_state(&self, state: &mut State, now_ms: u64) -> worker::Result<()> {
        let current = health::hour_of(now_ms);
        let (done, kept): (Vec<HourBucket>, Vec<HourBucket>) = std::mem::take(&mut state.hours)
            .into_iter()
            .partition(|bucket| bucket.hour_ms < current);
        state.hours = kept;
        for bucket in done {
            self.flush_hour(bucket)?;
        }
        let today = ttedge_core::destination::day_of(now_ms);
        let (days, kept) = std::mem::take(&mut state.conversions)
            .into_iter()
            .partition(|(day, _, _)| *day < today);
        state.conversions = kept;
        for (day, pixel, delivered) in days {
            self.add_conversions(day, &pixel, delivered)?;
        }
        self.sql.exec(
            "INSERT INTO state (id, state) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            vec![serde_json::to_string(state)?.into()],
        )?;
        Ok(())
    }

    fn flush_hour(&self, mut bucket: HourBucket) -> worker::Result<()> {
        if let Some(stored) = self
            .hours_since(bucket.hour_ms)?
            .into_iter()
            .find(|b| b.hour_ms == bucket.hour_ms)
        {
            bucket.merge(&stored);
        }
        self.sql.exec(
            "INSERT INTO hours (hour, bucket) VALUES (?, ?)
             ON CONFLICT (hour) DO UPDATE SET bucket = excluded.bucket",
            vec![int(bucket.hour_ms), serde_json::to_string(&bucket)?.into()],
        )?;
        self.sql.exec(
            "DELETE FROM hours WHERE hour < ?",
            vec![int(health::oldest_kept_hour(bucket.hour_ms))],
        )?;
        Ok(())
    }

    /// The flushed hours from `since_ms` on.
    pub fn hours_since(&self, since_ms: u64) -> worker::Result<Vec<HourBucket>> {
        #[derive(Deserialize)]
        struct Row {
            bucket: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT bucket FROM hours WHERE hour >= ?",
                vec![int(since_ms)],
            )?
            .to_array()?;
        Ok(rows
            .iter()
            .filter_map(|row| match serde_json::from_str(&row.bucket) {
                Ok(bucket) => Some(bucket),
                Err(error) => {
                    worker::console_error!(
                        "an hour of health is unreadable: {:?}",
                        error.to_string()
                    );
                    None
                }
            })
            .collect())
    }

    fn add_conversions(&self, day: u32, pixel: &str, delivered: u64) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO conversions_daily (day, pixel_code, delivered) VALUES (?, ?, ?)
             ON CONFLICT (day, pixel_code) DO UPDATE SET delivered = delivered + excluded.delivered",
            vec![i64::from(day).into(), pixel.into(), int(delivered)],
        )?;
        self.sql.exec(
            "DELETE FROM conversions_daily WHERE day < ?",
            vec![i64::from(day.saturating_sub(CONVERSION_DAYS_KEPT)).into()],
        )?;
        Ok(())
    }

    /// Conversions flushed for `pixel` in the inclusive range of days.
    pub fn conversions_between(&self, pixel: &str, first: u32, last: u32) -> worker::Result<u64> {
        #[derive(Deserialize)]
        struct Count {
            n: f64,
        }
        let rows: Vec<Count> = self
            .sql
            .exec(
                "SELECT IFNULL(SUM(delivered), 0) AS n FROM conversions_daily
                 WHERE pixel_code = ? AND day BETWEEN ? AND ?",
                vec![
                    pixel.into(),
                    i64::from(first).into(),
                    i64::from(last).into(),
                ],
            )?
            .to_array()?;
        Ok(rows.first().map_or(0, |row| row.n as u64))
    }

    // ---- parked and errors ----------------------------------------------------------

    /// Parks events with TikTok's answer: kept whole, listed, replayable, never dropped.
    pub fn park(
        &self,
        lane: &str,
        events: &[(&EventMeta, &str)],
        failure: &Failure,
        attempts: u32,
        now_ms: u64,
    ) -> worker::Result<()> {
        for (meta, element) in events {
            self.sql.exec(
                "INSERT INTO parked (lane, event_id, event_name, pixel_status, conversion,
                    element, parked_ms, attempts, http_status, tiktok_code, message, hint)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    lane.into(),
                    meta.event_id.clone().into(),
                    meta.event_name.clone().into(),
                    text(meta.pixel_status.map(|s| s.as_str().to_string())),
                    i64::from(meta.conversion).into(),
                    (*element).into(),
                    int(now_ms),
                    i64::from(attempts).into(),
                    i64::from(failure.http_status).into(),
                    failure.code.map_or(SqlStorageValue::Null, Into::into),
                    failure.message.clone().into(),
                    failure.hint.clone().into(),
                ],
            )?;
        }
        Ok(())
    }

    /// A page of parked events after id `after`, oldest first, and the total.
    pub fn parked_page(&self, after: u64, limit: u32) -> worker::Result<(Vec<ParkedRow>, u64)> {
        let rows: Vec<ParkedRow> = self
            .sql
            .exec(
                "SELECT * FROM parked WHERE id > ? ORDER BY id LIMIT ?",
                vec![int(after), i64::from(limit).into()],
            )?
            .to_array()?;
        Ok((rows, self.parked_total()?))
    }

    /// Parked events in all.
    pub fn parked_total(&self) -> worker::Result<u64> {
        #[derive(Deserialize)]
        struct Count {
            n: f64,
        }
        let row: Count = self
            .sql
            .exec("SELECT COUNT(*) AS n FROM parked", None)?
            .one()?;
        Ok(row.n as u64)
    }

    /// Takes parked events out for replay: all of them, or those with the given ids.
    pub fn unpark(&self, event_ids: Option<&[String]>) -> worker::Result<Vec<ParkedRow>> {
        let rows: Vec<ParkedRow> = match event_ids {
            None => self
                .sql
                .exec("DELETE FROM parked RETURNING *", None)?
                .to_array()?,
            Some(ids) => {
                let mut rows = Vec::new();
                for id in ids {
                    let taken: Vec<ParkedRow> = self
                        .sql
                        .exec(
                            "DELETE FROM parked WHERE event_id = ? RETURNING *",
                            vec![id.clone().into()],
                        )?
                        .to_array()?;
                    rows.extend(taken);
                }
                rows
            }
        };
        Ok(rows)
    }

    // ---- credentials ----------------------------------------------------------------

    /// Keeps what the Worker said about reaching TikTok; writes only when it changed.
    pub fn remember(&self, credentials: &super::client::Credentials) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO credentials (id, host, sealed_token, rate_limit) VALUES (1, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host,
                sealed_token = excluded.sealed_token, rate_limit = excluded.rate_limit
             WHERE host IS NOT excluded.host OR sealed_token IS NOT excluded.sealed_token
                OR rate_limit IS NOT excluded.rate_limit",
            vec![
                text(credentials.host.clone()),
                text(credentials.sealed_token.clone()),
                i64::from(credentials.rate_limit_per_minute).into(),
            ],
        )?;
        Ok(())
    }

    /// The credentials last remembered; `None` before any call.
    pub fn credentials(&self) -> worker::Result<Option<super::client::Credentials>> {
        #[derive(Deserialize)]
        struct Row {
            host: Option<String>,
            sealed_token: Option<String>,
            rate_limit: f64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT host, sealed_token, rate_limit FROM credentials",
                None,
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .next()
            .map(|row| super::client::Credentials {
                host: row.host,
                sealed_token: row.sealed_token,
                rate_limit_per_minute: row.rate_limit as u32,
            }))
    }
}

/// The first rowid of `generation` at or after position `from`.
fn first_seq(generation: u64, from: u64) -> u64 {
    if generation_of(from) < generation {
        0
    } else {
        (from >> INDEX_BITS) & ((1 << ROW_BITS) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(data: &str, lens: &[usize], damaged: bool) -> IntakeEvents {
        IntakeEvents {
            position: position(7, 3),
            data: data.to_string(),
            meta: lens
                .iter()
                .map(|&len| EventMeta {
                    len,
                    ..EventMeta::unreadable(0)
                })
                .collect(),
            damaged,
        }
    }

    #[test]
    fn elements_are_split_by_their_stored_lengths() {
        let stored = row(r#"{"a":1},{"b":[2,3]}"#, &[7, 11], false);
        assert_eq!(
            stored.elements(),
            Some(vec![r#"{"a":1}"#, r#"{"b":[2,3]}"#])
        );
    }

    #[test]
    fn a_row_that_does_not_add_up_is_damaged() {
        for (data, lens) in [
            (r#"{"a":1},{"b":2}"#, &[7, 6][..]),  // one byte short
            (r#"{"a":1};{"b":2}"#, &[7, 7][..]),  // no comma between
            (r#"{"a":1}"#, &[7, usize::MAX][..]), // a length past any text
            (r#"{"a":1}"#, &[][..]),              // text without events
        ] {
            assert_eq!(row(data, lens, false).elements(), None, "{data} {lens:?}");
        }
        assert_eq!(row(r#"{"a":1}"#, &[7], true).elements(), None);
    }

    #[test]
    fn positions_keep_generation_row_and_index_apart() {
        let at = position(7, 3);
        assert_eq!(generation_of(at), 7);
        assert_eq!(first_seq(7, at + 5), 3);
        assert_eq!(
            first_seq(8, at),
            0,
            "a later generation starts at its first row"
        );
        assert!(position(7, 4) - position(7, 3) == MAX_EVENTS_PER_ROW as u64);
        assert!(position(8, 0) > position(7, (1 << ROW_BITS) - 1) + 1023);
    }
}
