//! What goes into the queue: a collect request's events, and parked events replayed.
//!
//! One intake row per lane for the requests stored together, however many events they
//! hold, and one deduplication key per event: that is all an event costs on the way in. A
//! cash-on-delivery checkout adds one row: its order, kept for its confirmation.

use ttedge_core::delivery::{dedup_key, Metric};
use ttedge_core::destination::day_of;
use ttedge_core::event::PixelStatus;
use ttedge_core::health::{unseen_by_pixel, Counts};
use ttedge_core::quality::QualitySummary;
use worker::Result;

use super::client::{EnrichedEvent, Intake, IntakeAnswer, Replay};
use super::identity::{self, Resolver};
use super::report::ReplayAnswer;
use super::storage::{EventMeta, LaneKey, ParkedRow, Storage, MAX_EVENTS_PER_ROW};

/// One intake row being built: a lane's events, at most [`MAX_EVENTS_PER_ROW`].
struct RowDraft {
    lane: LaneKey,
    meta: Vec<EventMeta>,
    data: String,
}

/// Stores the events of collect requests that reached the object together (one, or a
/// [group](super::group)) in one synchronous block: one intake row per lane for all of
/// them, and one deduplication key per event. Events seen within the deduplication window,
/// or earlier in the same group, are not queued again. Answers each request, in order.
pub fn enqueue(storage: &Storage, intakes: &[&Intake], now_ms: u64) -> Result<Vec<IntakeAnswer>> {
    let mut answers = Vec::with_capacity(intakes.len());
    let mut counts = Counts::default();
    let mut quality = QualitySummary::default();
    let mut rows: Vec<RowDraft> = Vec::new();
    // Every live event's key, in order, looked up in one pass over the window's tables.
    let keys: Vec<[u8; 32]> = intakes
        .iter()
        .filter(|intake| intake.live)
        .flat_map(|intake| {
            intake.events.iter().map(|event| {
                dedup_key(
                    &intake.pixel_code,
                    &event.event_name,
                    &event.event_id,
                    intake.test_event_code.as_deref(),
                )
            })
        })
        .collect();
    let mut first = storage.first_sightings(&keys, now_ms)?.into_iter();
    for intake in intakes {
        let mut answer = IntakeAnswer::default();
        counts.add(Metric::Held, u64::from(intake.held));
        counts.add(Metric::Skipped, u64::from(intake.skipped));
        counts.add(Metric::Rejected, u64::from(intake.rejected));
        quality.merge(&intake.quality);
        if !intake.live {
            counts.add(Metric::NotLive, intake.events.len() as u64);
            answers.push(answer);
            continue;
        }
        let mut pixel_missing = 0;
        let resolver = Resolver {
            storage,
            pixel: &intake.pixel_code,
            days: intake.identity_days,
            now_ms,
        };
        for event in &intake.events {
            if first.next() != Some(true) {
                answer.duplicates.push(event.event_id.clone());
                continue;
            }
            let resolved = resolver.event(event);
            if let Some(enriched) = &resolved.enriched {
                counts.add(Metric::Enriched, 1);
                counts.add(Metric::EnrichmentGain, enriched.gain());
                quality.rescore(&enriched.before, &enriched.after);
                answer.enriched.push(EnrichedEvent {
                    event_id: event.event_id.clone(),
                    emq: enriched.after.clone(),
                });
            }
            let element = resolved.element.as_deref().unwrap_or(event.element.get());
            let lane = LaneKey {
                pixel_code: intake.pixel_code.clone(),
                test_event_code: intake.test_event_code.clone(),
                offline_event_set_id: event.offline_event_set_id.clone(),
            };
            let row = row_for(&mut rows, &lane);
            if !row.data.is_empty() {
                row.data.push(',');
            }
            row.data.push_str(element);
            row.meta.push(EventMeta {
                event_id: event.event_id.clone(),
                event_name: event.event_name.clone(),
                pixel_status: event.pixel_status,
                conversion: event.conversion,
                len: element.len(),
                identity: resolved.later,
            });
            answer.queued += 1;
            pixel_missing += u64::from(unseen_by_pixel(event.pixel_status));
            if let Some(order_id) = event.order_id.as_deref().filter(|_| intake.cod_days > 0) {
                let expires = day_of(now_ms).saturating_add(intake.cod_days);
                // As sent: the confirmation then carries what identity resolution added.
                storage.insert_order(expires, &intake.pixel_code, order_id, element)?;
            }
        }
        counts.add(Metric::Received, u64::from(answer.queued));
        counts.add(Metric::PixelMissing, pixel_missing);
        answers.push(answer);
    }
    // Erased after the events: a denial is the request's last word on its browser.
    for intake in intakes {
        for ttp in &intake.erase_ttps {
            identity::erase_ttp(storage, &intake.pixel_code, ttp)?;
        }
    }
    // The counts ride on the first row; with no event to queue, they get a row of their own.
    let mut tally = (counts != Counts::default() || quality != QualitySummary::default())
        .then_some((counts, quality));
    if rows.is_empty() && tally.is_none() {
        return Ok(answers);
    }
    let generation = storage.intake_generation(now_ms)?;
    for row in &rows {
        let (counts, quality) = tally.take().unwrap_or_default();
        storage.insert_intake_into(
            generation,
            now_ms,
            Some(&row.lane),
            &row.meta,
            &row.data,
            &counts,
            &quality,
        )?;
    }
    if let Some((counts, quality)) = tally {
        storage.insert_intake_into(generation, now_ms, None, &[], "", &counts, &quality)?;
    }
    Ok(answers)
}

/// The row that `lane`'s next event goes in: its lane's last row while it has room.
fn row_for<'a>(rows: &'a mut Vec<RowDraft>, lane: &LaneKey) -> &'a mut RowDraft {
    let open = rows
        .iter()
        .rposition(|row| row.lane == *lane)
        .filter(|&at| rows[at].meta.len() < MAX_EVENTS_PER_ROW);
    let at = open.unwrap_or_else(|| {
        rows.push(RowDraft {
            lane: lane.clone(),
            meta: Vec::new(),
            data: String::new(),
        });
        rows.len() - 1
    });
    &mut rows[at]
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
                    identity: None,
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
