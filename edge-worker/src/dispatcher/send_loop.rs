//! The alarm's send loop, and the one way a request reaches TikTok.
//!
//! Core decides ([`next_batch`], [`Lane::settle`]); this file reads the batch's elements,
//! splices them into TikTok's body, posts, and writes down what became of it: one state
//! row per request, plus parked events when there are any.

use ttedge_core::delivery::{next_batch, Lane, Metric, Next, Queued, SentBatch};
use ttedge_core::destination::day_of;
use ttedge_core::health::unseen_by_pixel;
use ttedge_core::ratelimit::{SlidingWindow, MINUTE_MS};
use ttedge_core::tiktok::{request_body_spliced, Failure, Verdict};
use worker::{Env, Result};

use super::identity;
use super::storage::{
    generation_of, position, CallRecord, EventMeta, IntakeSummary, LaneKey, State, Storage,
    INTAKE_GENERATION_MS,
};
use crate::config;
use crate::error::ApiError;
use crate::runtime::now_ms;
use crate::tiktok_client::{post_track, CallOutcome};

/// New events wait this long so that events arriving together leave together.
pub const BATCH_WINDOW_MS: u64 = 200;
/// Requests one alarm run may send before it hands over to the next alarm.
const MAX_REQUESTS_PER_ALARM: usize = 25;
/// When configuration is broken, look again after this long.
const CONFIG_RETRY_MS: u64 = 60_000;

/// Where, with which token, how fast.
pub struct Delivery {
    api_base: String,
    access_token: String,
    timeout_ms: u32,
    /// Requests per sliding minute.
    pub rate_limit_per_minute: u32,
}

/// The token and transport for a send: a stored destination's sealed token opened with
/// `MASTER_KEY`, or the default destination's secret.
pub fn delivery(storage: &Storage, env: &Env) -> std::result::Result<Delivery, ApiError> {
    match storage.credentials()? {
        Some(super::client::Credentials {
            host: Some(host),
            sealed_token: Some(sealed),
            rate_limit_per_minute,
        }) => {
            let access_token = config::open_token(env, &host, &sealed)?;
            let (api_base, timeout_ms) = config::transport_from_env(env)?;
            Ok(Delivery {
                api_base,
                access_token,
                timeout_ms,
                rate_limit_per_minute,
            })
        }
        _ => {
            let site = config::load(env)?;
            Ok(Delivery {
                api_base: site.api_base,
                access_token: site.access_token,
                timeout_ms: site.timeout_ms,
                rate_limit_per_minute: site.rate_limit_per_minute,
            })
        }
    }
}

/// The rate window of `state`: the sends of the last minute.
pub fn window(state: &State, limit: u32) -> SlidingWindow {
    SlidingWindow::per_minute(limit).with_sends(state.sends.iter().copied())
}

/// Counts, at an instance's start, the request its predecessor may have had out.
///
/// A request is recorded only once its answer is back, so an object stopped while one was
/// out (kill -9, a crash, a deploy) never recorded it, and TikTok counted it. An instance
/// that finds the object was busy (a send in the last minute, or events waiting) counts one
/// send at its start, and writes it down at once: a second restart within the minute keeps
/// it, where a count held in memory would be lost and the window would run one over. It
/// costs one row, only on a restart while busy.
pub fn count_unrecorded_send(storage: &Storage, started_ms: u64) -> Result<()> {
    let mut state = storage.state()?;
    state.sends.retain(|&at| at + MINUTE_MS > started_ms);
    let busy = !state.sends.is_empty()
        || !waiting_cursors(&state, &pending_intake(storage, &state)?).is_empty();
    if busy {
        state.sends.push(started_ms);
        storage.save_state(&mut state, started_ms)?;
    }
    Ok(())
}

/// What the send loop found to do after one step.
enum Step {
    /// A request went (or a damaged row was parked): look again.
    Sent,
    /// Wake at this time.
    WakeAt(u64),
    /// Nothing is queued.
    Idle,
}

/// One alarm run: up to [`MAX_REQUESTS_PER_ALARM`] requests, then the clean-up. Answers
/// when to wake next, if ever.
pub async fn run(storage: &Storage, env: &Env) -> Result<Option<u64>> {
    let delivery = match delivery(storage, env) {
        Ok(delivery) => delivery,
        Err(error) => {
            worker::console_error!("dispatcher cannot send: {:?}", error.message);
            return Ok(Some(now_ms() + CONFIG_RETRY_MS));
        }
    };
    let mut wake = None;
    for _ in 0..MAX_REQUESTS_PER_ALARM {
        match step(storage, &delivery).await? {
            Step::Sent => wake = Some(now_ms()),
            Step::WakeAt(at) => {
                wake = Some(at);
                break;
            }
            Step::Idle => {
                wake = None;
                break;
            }
        }
    }
    clean_up(storage, now_ms())?;
    Ok(wake)
}

/// Counts what came in since the last count, then plans one request and sends it.
async fn step(storage: &Storage, delivery: &Delivery) -> Result<Step> {
    let now = now_ms();
    let mut state = storage.state()?;
    let intake = pending_intake(storage, &state)?;
    // With nothing to send, the state is written only when it changed: an idle wake-up
    // writes no row.
    let changed = count_intake(&mut state, &intake);
    let lanes = lanes_of(&state);
    let queued: Vec<Queued> = lanes
        .iter()
        .map(|(key, lane)| Queued {
            lane: *lane,
            events: queued_events(&intake, key, lane.cursor),
        })
        .collect();
    let mut window = window(&state, delivery.rate_limit_per_minute);
    let plan = match next_batch(&queued, &mut window, now) {
        Next::Send(plan) => plan,
        waiting => {
            if changed {
                storage.save_state(&mut state, now)?;
            }
            return Ok(match waiting {
                Next::WaitUntil(at) => Step::WakeAt(at),
                _ => Step::Idle,
            });
        }
    };
    let (key, lane) = &lanes[plan.lane];
    let Some(lane_key) = LaneKey::parse(key) else {
        return Err(worker::Error::RustError(format!("unreadable lane {key:?}")));
    };
    let batch = assemble(storage, &intake, key, lane.cursor, plan.count)?;
    let Some(mut elements) = batch.elements else {
        // A damaged row: its events are parked with the reason, never sent half-read.
        let failure = Failure {
            http_status: 0,
            code: None,
            message: "the stored event could not be read back".into(),
            hint: "replay it once the cause is fixed; report it if it happens again".into(),
        };
        let mut lane = *lane;
        let settled = lane.set_aside(&batch.sent, &failure, now);
        storage.park(key, &batch.parkable(), &failure, lane.attempts, now)?;
        state.count(now, settled.counts);
        state.lanes.insert(key.clone(), lane);
        storage.save_state(&mut state, now)?;
        return Ok(Step::Sent);
    };
    // Events whose browser was identified since they came are sent with what it told.
    let enriched = identity::enrich_queued(
        storage,
        &lane_key.pixel_code,
        &batch.meta,
        &mut elements,
        now,
    );
    let body = request_body_spliced(lane_key.request_key(), elements.iter().map(String::as_str));

    let outcome = post(delivery, body).await;

    // Everything below is synchronous SQL: it commits as one unit. The state is read
    // again, since a connection test may have written it while the request was out.
    let now = now_ms();
    let mut state = storage.state()?;
    count_intake(&mut state, &intake);
    let lane = state.lanes.entry(key.clone()).or_insert(*lane);
    let attempts = lane.attempts + 1;
    let mut changes = lane.sending(&batch.sent).to_vec();
    let settled = lane.settle(&batch.sent, &outcome.verdict, now);
    changes.extend(settled.counts.iter().copied());
    record(&mut state, &outcome, u64::from(batch.sent.events), now);
    state.count(now, changes);
    if settled.delivered {
        state.convert(now, &lane_key.pixel_code, u64::from(batch.sent.conversions));
        // Counted once, when the batch is delivered: each attempt enriches it anew.
        for enriched in &enriched {
            state.count(
                now,
                [
                    (Metric::Enriched, 1),
                    (Metric::EnrichmentGain, enriched.gain()),
                ],
            );
            state
                .hour(now)
                .quality
                .rescore(&enriched.before, &enriched.after);
        }
    }
    if let Some(failure) = &settled.parked {
        let events: Vec<(&EventMeta, &str)> = batch
            .meta
            .iter()
            .zip(elements.iter().map(String::as_str))
            .collect();
        storage.park(key, &events, failure, attempts, now)?;
    }
    storage.save_state(&mut state, now)?;
    Ok(Step::Sent)
}

/// One call to TikTok's track endpoint.
pub async fn post(delivery: &Delivery, body: String) -> CallOutcome {
    post_track(
        &delivery.api_base,
        &delivery.access_token,
        body,
        delivery.timeout_ms,
    )
    .await
}

/// Writes down a call that came back at `now_ms`: the rate window, the latency, the call
/// counters and the last calls. The send loop and the connection test both use it.
pub fn record(state: &mut State, outcome: &CallOutcome, events: u64, now_ms: u64) {
    state.sends.retain(|&at| at + MINUTE_MS > now_ms);
    // Counted from when the answer came back, the latest moment TikTok can have counted the
    // request: a slow request never squeezes the next window.
    state.sends.push(now_ms);
    state.hour(now_ms).latency.record(outcome.latency_ms);
    let (verdict, failure) = match &outcome.verdict {
        Verdict::Delivered => ("delivered", None),
        Verdict::PartiallyDelivered(f) => ("partially_delivered", Some(f)),
        Verdict::Retry(f) => ("retry", Some(f)),
        Verdict::Reject(f) => ("reject", Some(f)),
    };
    state.record_call(CallRecord {
        at_ms: now_ms,
        latency_ms: outcome.latency_ms,
        events,
        verdict: verdict.to_string(),
        http_status: outcome.http_status,
        tiktok_code: failure.and_then(|f| f.code),
        message: failure.map(|f| f.message.clone()),
        hint: failure.map(|f| f.hint.clone()),
    });
}

/// The intake rows still needed: from the earliest lane cursor or uncounted row on.
pub fn pending_intake(storage: &Storage, state: &State) -> Result<Vec<IntakeSummary>> {
    storage.intake_since(earliest(state))
}

/// The cursors of the lanes that have events queued in `intake`.
fn waiting_cursors(state: &State, intake: &[IntakeSummary]) -> Vec<u64> {
    state
        .lanes
        .iter()
        .filter(|(key, lane)| queued_events(intake, key, lane.cursor) > 0)
        .map(|(_, lane)| lane.cursor)
        .collect()
}

/// Where reading the intake must start: the earliest lane cursor or uncounted row.
fn earliest(state: &State) -> u64 {
    state
        .lanes
        .values()
        .map(|lane| lane.cursor)
        .chain([state.counted])
        .min()
        .unwrap_or(0)
}

/// Adds the counts and match quality of intake rows not yet counted to their hours, and
/// gives each new lane its state; answers whether there were any.
///
/// A lane is known from the moment its first row is counted: reading the intake starts at
/// the earliest of `counted` and the lanes' cursors, so a lane first seen in a row that is
/// counted but not yet known would never be read again, nor kept by the clean-up.
pub fn count_intake(state: &mut State, intake: &[IntakeSummary]) -> bool {
    let counted = state.counted;
    let mut any = false;
    for row in intake.iter().filter(|row| row.position >= counted) {
        let bucket = state.hour(row.received_ms);
        bucket.counts.merge(&row.counts);
        bucket.quality.merge(&row.quality);
        if let Some(lane) = &row.lane {
            state.lanes.entry(lane.clone()).or_default();
        }
        any = true;
    }
    if let Some(last) = intake.last() {
        state.counted = state.counted.max(last.position + 1);
    }
    any
}

/// Every lane with its state.
fn lanes_of(state: &State) -> Vec<(String, Lane)> {
    state
        .lanes
        .iter()
        .map(|(key, lane)| (key.clone(), *lane))
        .collect()
}

/// Events of lane `key` at or after `cursor`.
pub fn queued_events(intake: &[IntakeSummary], key: &str, cursor: u64) -> u64 {
    intake
        .iter()
        .filter(|row| row.lane.as_deref() == Some(key))
        .map(|row| {
            let end = row.position + row.events;
            end.saturating_sub(row.position.max(cursor))
        })
        .sum()
}

/// A batch read back from the intake rows.
struct Assembled {
    sent: SentBatch,
    meta: Vec<EventMeta>,
    /// Each element's text; `None` when a row is damaged.
    elements: Option<Vec<String>>,
}

impl Assembled {
    /// The batch's events with whatever text could be read, for parking.
    fn parkable(&self) -> Vec<(&EventMeta, &str)> {
        self.meta.iter().map(|meta| (meta, "null")).collect()
    }
}

/// The first `count` events of lane `key` from `cursor`.
fn assemble(
    storage: &Storage,
    intake: &[IntakeSummary],
    key: &str,
    cursor: u64,
    count: u32,
) -> Result<Assembled> {
    let rows: Vec<&IntakeSummary> = intake
        .iter()
        .filter(|row| row.lane.as_deref() == Some(key) && row.position + row.events > cursor)
        .collect();
    let positions: Vec<u64> = rows.iter().map(|row| row.position).collect();
    let stored = storage.intake_events(&positions)?;
    let mut meta = Vec::new();
    let mut elements = Some(Vec::new());
    let mut end = cursor;
    'rows: for row in &stored {
        let texts = row.elements();
        // A damaged row goes in a batch of its own, so that only its events are parked.
        if texts.is_none() && !meta.is_empty() {
            break;
        }
        for (index, event) in row.meta.iter().enumerate() {
            let at = row.position + index as u64;
            if at < cursor {
                continue;
            }
            if meta.len() == count as usize {
                break 'rows;
            }
            meta.push(event.clone());
            end = at + 1;
            match (&mut elements, &texts) {
                (Some(list), Some(texts)) => list.push(texts[index].to_string()),
                _ => elements = None,
            }
        }
        if texts.is_none() {
            break;
        }
    }
    let conversions = meta.iter().filter(|m| m.conversion).count() as u32;
    let unseen = meta
        .iter()
        .filter(|m| m.conversion && unseen_by_pixel(m.pixel_status))
        .count() as u32;
    Ok(Assembled {
        sent: SentBatch {
            first: cursor,
            end,
            events: meta.len() as u32,
            conversions,
            conversions_unseen: unseen,
        },
        meta,
        elements,
    })
}

/// Drops whole tables that hold nothing needed any more: no row is written for them.
///
/// Once every event has left and every row is counted, everything before the newest table
/// is done. A newest table from a past generation is ended too, by opening the current
/// generation's (two rows, which the next request would pay anyway): so a site that went
/// quiet does not keep its last elements. The cron's wake-up comes for that.
fn clean_up(storage: &Storage, now_ms: u64) -> Result<()> {
    let state = storage.state()?;
    let intake = pending_intake(storage, &state)?;
    let waiting = waiting_cursors(&state, &intake);
    let idle = waiting.is_empty() && intake.iter().all(|row| row.position < state.counted);
    let done = match storage.intake_generations()?.last().copied() {
        Some(newest) if idle => {
            let current = now_ms / INTAKE_GENERATION_MS;
            if newest < current && holds_counted_rows(&state, newest) {
                storage.open_generation(current)?;
                position(current, 0)
            } else {
                position(newest, 0)
            }
        }
        _ => waiting
            .into_iter()
            .chain([state.counted])
            .min()
            .unwrap_or(0),
    };
    storage.drop_intake_before(done)?;
    storage.drop_old_seen(now_ms)?;
    storage.drop_expired_orders(day_of(now_ms))
}

/// Whether generation `g` holds rows already counted: the newest generation does until it
/// is ended; the one opened to end it does not until a row comes.
fn holds_counted_rows(state: &State, g: u64) -> bool {
    generation_of(state.counted) == g && state.counted > position(g, 0)
}

/// Whether an alarm has work to do: events queued or not yet counted, a past generation
/// to end, deduplication keys past their window, or cash-on-delivery orders expired. The
/// cron and `/healthz` wake the object only then, since setting an alarm is billed as a row
/// written.
pub fn has_work(storage: &Storage, now_ms: u64) -> Result<bool> {
    let state = storage.state()?;
    let intake = pending_intake(storage, &state)?;
    let queued = !waiting_cursors(&state, &intake).is_empty();
    let uncounted = intake.iter().any(|row| row.position >= state.counted);
    let current = now_ms / INTAKE_GENERATION_MS;
    let past_generation = storage
        .intake_generations()?
        .last()
        .is_some_and(|&g| g < current && holds_counted_rows(&state, g));
    Ok(queued
        || uncounted
        || past_generation
        || storage.has_old_seen(now_ms)?
        || storage.has_expired_orders(day_of(now_ms))?)
}
