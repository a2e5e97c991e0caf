//! Cash-on-delivery orders, from checkout to confirmation (core's [`cod`] rules).
//!
//! The checkout's element is kept by [`intake`](super::intake) in the same write as the
//! event. A confirmation queues `CompletePayment` built from it in one intake row, marks the
//! order confirmed, and counts it; a cancellation forgets the order and counts that. Both
//! counts ride on the intake row, as every count does, so health reads them as it reads the
//! rest.

use ttedge_core::cod::{self, confirmation_id, CONFIRMATION_EVENT};
use ttedge_core::delivery::{dedup_key, Metric};
use ttedge_core::destination::day_of;
use ttedge_core::health::{is_conversion, Counts};
use ttedge_core::quality::QualitySummary;
use worker::Result;

use super::client::{OrderAnswer, OrderCall, OrderOutcome};
use super::storage::{EventMeta, LaneKey, Storage};

/// Applies an order update at `now_ms`: queues the purchase once, answers a repeat as a
/// duplicate, forgets a cancelled order; an order not kept is [`OrderOutcome::Unknown`].
pub fn update(storage: &Storage, call: &OrderCall, now_ms: u64) -> Result<OrderAnswer> {
    let answer = |outcome, event_id| OrderAnswer {
        order_id: call.order_id.clone(),
        outcome,
        event_id,
    };
    let event_id = confirmation_id(&call.order_id);
    let Some(order) = storage.order(day_of(now_ms), &call.pixel_code, &call.order_id)? else {
        return Ok(answer(OrderOutcome::Unknown, None));
    };
    let mut counts = Counts::default();
    if !call.update.status.confirms() {
        storage.forget_order(&call.pixel_code, &call.order_id)?;
        // A confirmed order cancelled later (a refund) was counted confirmed: not twice.
        if !order.confirmed {
            counts.add(Metric::CodCancelled, 1);
            count(storage, &counts, now_ms)?;
        }
        return Ok(answer(OrderOutcome::Cancelled, None));
    }
    if order.confirmed {
        return Ok(answer(OrderOutcome::Duplicate, Some(event_id)));
    }
    if !call.live {
        counts.add(Metric::NotLive, 1);
        count(storage, &counts, now_ms)?;
        return Ok(answer(OrderOutcome::NotLive, Some(event_id)));
    }
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let element = cod::confirmation(&order.element, &call.order_id, &call.update, now)
        .map_err(|error| worker::Error::RustError(error.to_string()))?;
    let key = dedup_key(
        &call.pixel_code,
        CONFIRMATION_EVENT,
        &event_id,
        call.test_event_code.as_deref(),
    );
    storage.confirm_order(&order, &call.pixel_code, &call.order_id, now_ms)?;
    counts.add(Metric::CodConfirmed, 1);
    // The same event id may have come another way (an upload, the shop's own server)
    // within the deduplication window: then it is not queued again.
    if storage.first_sightings(&[key], now_ms)?.first() != Some(&true) {
        count(storage, &counts, now_ms)?;
        return Ok(answer(OrderOutcome::Duplicate, Some(event_id)));
    }
    counts.add(Metric::Received, 1);
    // A web event, to the pixel: it carries the checkout's browser identifiers.
    let lane = LaneKey {
        pixel_code: call.pixel_code.clone(),
        test_event_code: call.test_event_code.clone(),
        offline_event_set_id: None,
    };
    let meta = EventMeta {
        event_id: event_id.clone(),
        event_name: CONFIRMATION_EVENT.to_string(),
        pixel_status: None,
        conversion: is_conversion(CONFIRMATION_EVENT, &[]),
        len: element.len(),
        // It carries the checkout's identifiers, as they were when the consent was given.
        identity: None,
    };
    storage.insert_intake(
        now_ms,
        Some(&lane),
        &[meta],
        &element,
        &counts,
        &QualitySummary::default(),
    )?;
    Ok(answer(OrderOutcome::Queued, Some(event_id)))
}

/// Counts without an event: a row of counts only, as an intake with nothing to queue has.
fn count(storage: &Storage, counts: &Counts, now_ms: u64) -> Result<()> {
    storage
        .insert_intake(now_ms, None, &[], "", counts, &QualitySummary::default())
        .map(drop)
}
