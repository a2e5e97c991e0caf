//! Wall-clock times for tests that build dated events and shop exports, or that count the
//! rows a step writes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1_000;

/// How long the Dispatcher's intake tables hold (`INTAKE_GENERATION_MS` of
/// edge-worker/src/dispatcher/storage.rs). Its days' tables turn over on these boundaries
/// too, since a day is a whole number of them.
pub const INTAKE_GENERATION_MS: i64 = 5 * 60 * 1_000;

/// Waits, if need be, until `span` fits before the next intake generation begins: a test
/// that counts the rows each step writes starts here, since the step that opens a new
/// generation also writes that table's schema and drops a drained one.
pub async fn clear_of_generation_turn(span: Duration) {
    let into = now_ms().rem_euclid(INTAKE_GENERATION_MS);
    let left = INTAKE_GENERATION_MS - into;
    if left < span.as_millis() as i64 {
        tokio::time::sleep(Duration::from_millis(left as u64 + 100)).await;
    }
}

/// Now, epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Now, epoch seconds.
pub fn now_secs() -> i64 {
    now_ms() / 1_000
}

/// `YYYY-MM-DD HH:MM:SS` of `ms` at UTC+`offset_hours`, as a shop's export writes local
/// times.
pub fn local_time(ms: i64, offset_hours: i8) -> String {
    let offset = time::UtcOffset::from_hms(offset_hours, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let at = time::OffsetDateTime::from_unix_timestamp(ms / 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
