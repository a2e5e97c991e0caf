//! What goes into the queue: a collect request's events, and parked events replayed.
//!
//! One intake row per request, however many events it holds, and one deduplication key per
//! event: that is all an event costs on the way in.

use ttedge_core::delivery::{dedup_key, Metric};
use ttedge_core::event::PixelStatus;
use ttedge_core::health::Counts;
use ttedge_core::quality::QualitySummary;
use worker::Result;

use super::client::{Intake, IntakeAnswer, Replay};
use super::report::ReplayAnswer;
use super::storage::{EventMeta, LaneKey, ParkedRow, Storage, MAX_EVENTS_PER_ROW};

/// Stores a collect request's events (skipping those seen within the deduplication window)
/// with its counts, in one synchronous block.
pub fn enqueue(storage: &Storage, intake: &Intake, now_ms: u64) -> Result<IntakeAnswer> {
    let lane = LaneKey {
        pixel_code: intake.pixel_code.clone(),
        test_event_code: intake.test_event_code.clone(),
    };
    let mut answer = IntakeAnswer::default();
    let mut counts = Counts::default();
    counts.add(Metric::Held, u64::from(intake.held));
    counts.add(Metric::Skipped, u64::from(intake.skipped));
    counts.add(Metric::Rejected, u64::from(intake.rejected));
    let mut meta = Vec::new();
    let mut data = String::new();
    if intake.live {
        for event in &intake.events {
            let key = dedup_key(
                &lane.pixel_code,
                &event.event_name,
                &event.event_id,
                lane.test_event_code.as_deref(),
            );
            if !storage.first_sighting(&key, now_ms)? {
                answer.duplicates.push(event.event_id.clone());
                continue;
            }
            if !data.is_empty() {
                data.push(',');
            }
            data.push_str(event.element.get());
            meta.push(EventMeta {
                event_id: event.event_id.clone(),
                event_name: event.event_name.clone(),
                pixel_status: event.pixel_status,
                conversion: event.conversion,
                len: event.element.get().len(),
            });
        }
        counts.add(Metric::Received, meta.len() as u64);
    } else {
        counts.add(Metric::NotLive, intake.events.len() as u64);
    }
    answer.queued = meta.len() as u32;
    let counted = counts != Counts::default() || intake.quality != QualitySummary::default();
    if !meta.is_empty() || counted {
        let lane = (!meta.is_empty()).then_some(&lane);
        storage.insert_intake(now_ms, lane, &meta, &data, &counts, &intake.quality)?;
    }
    Ok(answer)
}

/// Puts parked events back in the queue as if new: intake rows per lane (as many as
/// [`MAX_EVENTS_PER_ROW`] allows), counted as replayed. The send loop then delivers each once.
pub fn replay(storage: &Storage, replay: &Replay, now_ms: u64) -> Result<ReplayAnswer> {
    let rows = storage.unpark(replay.event_ids.as_deref())?;
    let mut answer = ReplayAnswer {
        replayed: rows.len() as u64,
        not_found: Vec::new(),
    };
    for id in replay.event_ids.iter().flatten() {
        if !rows.iter().any(|row| &row.event_id == id) && !answer.not_found.contains(id) {
            answer.not_found.push(id.clone());
        }
    }
    let mut lanes: Vec<&str> = rows.iter().map(|row| row.lane.as_str()).collect();
    lanes.sort_unstable();
    lanes.dedup();
    for stored in lanes {
        let Some(lane) = LaneKey::parse(stored) else {
            // Keys are written by this object from typed values, so this does not happen;
            // if it ever did, the log says so rather than the events vanishing unseen.
            worker::console_error!("replay: an unreadable lane key {stored:?}");
            continue;
        };
        let of_lane: Vec<&ParkedRow> = rows.iter().filter(|row| row.lane == stored).collect();
        for chunk in of_lane.chunks(MAX_EVENTS_PER_ROW) {
            let mut meta = Vec::with_capacity(chunk.len());
            let mut data = String::new();
            for row in chunk {
                if !data.is_empty() {
                    data.push(',');
                }
                data.push_str(&row.element);
                meta.push(EventMeta {
                    event_id: row.event_id.clone(),
                    event_name: row.event_name.clone(),
                    pixel_status: row.pixel_status.as_deref().and_then(PixelStatus::parse),
                    conversion: row.conversion != 0,
                    len: row.element.len(),
                });
            }
            let mut counts = Counts::default();
            counts.add(Metric::Replayed, meta.len() as u64);
            storage.insert_intake(
                now_ms,
                Some(&lane),
                &meta,
                &data,
                &counts,
                &QualitySummary::default(),
            )?;
        }
    }
    Ok(answer)
}
