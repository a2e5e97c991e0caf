//! From the first release's tables to these: run when an object starts and finds them.
//!
//! The first release kept one `queue` row per event (with two indexes), hourly counters one
//! row per metric, and every call. Each step here reads one of those sources, writes what it
//! holds in the new form, and then drops the source, so a step is done once its source is
//! gone. A step that stops halfway (an error, or the object being killed) runs again in full
//! on the next start, and every write is one that may run twice: rows are replaced or
//! inserted-or-ignored by a key they bring, and the queued events go into a table that is
//! dropped and made anew. `queue` goes last: while it exists, the migration is not done.
//!
//! An error stops the object opening (its calls answer 503 and say why); the old tables
//! are still there, so nothing is lost.

use serde::Deserialize;
use ttedge_core::delivery::{dedup_key, Metric};
use ttedge_core::health::Counts;
use ttedge_core::quality::QualitySummary;
use ttedge_core::tiktok::Failure;
use worker::SqlStorageValue;

use super::storage::{int, EventMeta, LaneKey, MigrationError, State, Storage, MAX_EVENTS_PER_ROW};

/// The generation migrated queued events go in: before any other, so they leave first.
const MIGRATED_GENERATION: u64 = 0;

/// Runs every step whose source table is still there.
pub fn from_first_release(storage: &Storage) -> Result<(), MigrationError> {
    let exists = |table: &str| has_table(storage, table);
    if exists("counters")? || exists("health")? {
        step("hours", hours(storage))?;
    }
    for table in ["sends", "calls"] {
        if exists(table)? {
            step(table, drop(storage, table))?;
        }
    }
    if exists("queue")? {
        step("parked events", parked(storage))?;
        step("deduplication keys", seen(storage))?;
        step("queued events", queued(storage))?;
        step("queue", drop(storage, "queue"))?;
    }
    Ok(())
}

fn step(name: &str, result: worker::Result<()>) -> Result<(), MigrationError> {
    result.map_err(|error| MigrationError(format!("moving {name} from the first release: {error}")))
}

fn has_table(storage: &Storage, table: &str) -> Result<bool, MigrationError> {
    let rows: Vec<serde::de::IgnoredAny> = storage
        .sql()
        .exec(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![table.into()],
        )
        .and_then(|cursor| cursor.to_array())
        .map_err(|error| MigrationError(format!("reading the schema: {error}")))?;
    Ok(!rows.is_empty())
}

fn drop(storage: &Storage, table: &str) -> worker::Result<()> {
    storage
        .sql()
        .exec(&format!("DROP TABLE IF EXISTS {table}"), None)
        .map(|_| ())
}

/// Hourly counters (one row per metric) and health rows, into one bucket per hour.
fn hours(storage: &Storage) -> worker::Result<()> {
    let sql = storage.sql();
    // A state's hours, only to collect the buckets by hour.
    let mut hours = State::default();
    if has_table(storage, "counters").unwrap_or(false) {
        #[derive(Deserialize)]
        struct Row {
            hour: f64,
            metric: String,
            value: f64,
        }
        let rows: Vec<Row> = sql
            .exec("SELECT hour, metric, value FROM counters", None)?
            .to_array()?;
        for row in rows {
            let Ok(metric) = serde_json::from_value::<Metric>(row.metric.clone().into()) else {
                worker::console_error!(
                    "migration: an unknown counter {:?} is left out",
                    row.metric
                );
                continue;
            };
            hours
                .hour(row.hour as u64)
                .counts
                .add(metric, row.value as u64);
        }
    }
    if has_table(storage, "health").unwrap_or(false) {
        #[derive(Deserialize)]
        struct Row {
            hour: f64,
            latency: Option<String>,
            quality: Option<String>,
        }
        let rows: Vec<Row> = sql
            .exec("SELECT hour, latency, quality FROM health", None)?
            .to_array()?;
        for row in rows {
            let bucket = hours.hour(row.hour as u64);
            if let Some(latency) = row.latency.and_then(|l| serde_json::from_str(&l).ok()) {
                bucket.latency = latency;
            }
            if let Some(quality) = row
                .quality
                .and_then(|q| serde_json::from_str::<QualitySummary>(&q).ok())
            {
                bucket.quality = quality;
            }
        }
    }
    for bucket in &hours.hours {
        sql.exec(
            "INSERT OR REPLACE INTO hours (hour, bucket) VALUES (?, ?)",
            vec![int(bucket.hour_ms), serde_json::to_string(bucket)?.into()],
        )?;
    }
    drop(storage, "counters")?;
    drop(storage, "health")
}

/// An old `queue` row.
#[derive(Deserialize)]
struct OldRow {
    seq: f64,
    event_id: String,
    event_name: String,
    pixel_code: String,
    test_event_code: Option<String>,
    pixel_status: Option<String>,
    element: String,
    attempts: f64,
    done_ms: Option<f64>,
    received_ms: f64,
    http_status: Option<f64>,
    tiktok_code: Option<f64>,
    message: Option<String>,
    hint: Option<String>,
    conversion: Option<f64>,
}

fn old_rows(storage: &Storage, state: &str) -> worker::Result<Vec<OldRow>> {
    // `conversion` came after the first schema; `ALTER TABLE` added it, so it is there.
    storage
        .sql()
        .exec(
            "SELECT seq, event_id, event_name, pixel_code, test_event_code, pixel_status,
                element, attempts, done_ms, received_ms, http_status, tiktok_code, message,
                hint, conversion
             FROM queue WHERE state = ? ORDER BY seq",
            vec![state.into()],
        )?
        .to_array()
}

fn lane_of(row: &OldRow) -> LaneKey {
    LaneKey {
        pixel_code: row.pixel_code.clone(),
        test_event_code: row.test_event_code.clone(),
        offline_event_set_id: None,
    }
}

fn meta_of(row: &OldRow) -> EventMeta {
    EventMeta {
        event_id: row.event_id.clone(),
        event_name: row.event_name.clone(),
        pixel_status: row
            .pixel_status
            .as_deref()
            .and_then(ttedge_core::event::PixelStatus::parse),
        conversion: row.conversion.unwrap_or(0.0) != 0.0,
        len: row.element.len(),
        identity: None,
    }
}

/// Parked rows keep their old sequence number as id, so a second run ignores them.
fn parked(storage: &Storage) -> worker::Result<()> {
    for row in old_rows(storage, "parked")? {
        let failure = Failure {
            http_status: row.http_status.unwrap_or(0.0) as u16,
            code: row.tiktok_code.map(|code| code as i64),
            message: row.message.clone().unwrap_or_default(),
            hint: row.hint.clone().unwrap_or_default(),
        };
        storage.sql().exec(
            "INSERT OR IGNORE INTO parked (id, lane, event_id, event_name, pixel_status,
                conversion, element, parked_ms, attempts, http_status, tiktok_code, message,
                hint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                int(row.seq as u64),
                lane_of(&row).stored().into(),
                row.event_id.clone().into(),
                row.event_name.clone().into(),
                row.pixel_status
                    .clone()
                    .map_or(SqlStorageValue::Null, Into::into),
                int(u64::from(row.conversion.unwrap_or(0.0) != 0.0)),
                row.element.clone().into(),
                int(row.done_ms.unwrap_or(row.received_ms) as u64),
                int(row.attempts as u64),
                i64::from(failure.http_status).into(),
                failure.code.map_or(SqlStorageValue::Null, Into::into),
                failure.message.into(),
                failure.hint.into(),
            ],
        )?;
    }
    Ok(())
}

/// Every event the old queue still knew (delivered ones are kept 48 hours) stays known.
fn seen(storage: &Storage) -> worker::Result<()> {
    let now = crate::runtime::now_ms();
    for state in ["delivered", "queued", "parked"] {
        for row in old_rows(storage, state)? {
            let key = dedup_key(
                &row.pixel_code,
                &row.event_name,
                &row.event_id,
                row.test_event_code.as_deref(),
            );
            // Seen when it came, so it leaves the window when it would have.
            storage.first_sightings(&[key], (row.received_ms as u64).min(now))?;
        }
    }
    Ok(())
}

/// Queued events, in order, into intake rows of their lane.
fn queued(storage: &Storage) -> worker::Result<()> {
    storage.sql().exec(
        &format!("DROP TABLE IF EXISTS intake_{MIGRATED_GENERATION}"),
        None,
    )?;
    let rows = old_rows(storage, "queued")?;
    if !rows.is_empty() {
        storage.open_generation(MIGRATED_GENERATION)?;
    }
    let mut lanes: Vec<LaneKey> = rows.iter().map(lane_of).collect();
    lanes.sort();
    lanes.dedup();
    for lane in lanes {
        let of_lane: Vec<&OldRow> = rows.iter().filter(|row| lane_of(row) == lane).collect();
        for chunk in of_lane.chunks(MAX_EVENTS_PER_ROW) {
            let meta: Vec<EventMeta> = chunk.iter().map(|row| meta_of(row)).collect();
            let data: Vec<&str> = chunk.iter().map(|row| row.element.as_str()).collect();
            let received = chunk.first().map_or(0, |row| row.received_ms as u64);
            // Counted as received when they first came: no counts here.
            storage.insert_intake_into(
                MIGRATED_GENERATION,
                received,
                Some(&lane),
                &meta,
                &data.join(","),
                &Counts::default(),
                &QualitySummary::default(),
            )?;
        }
    }
    Ok(())
}
