//! The Dispatcher's delivery rules as pure, clock-injected decisions.
//!
//! Queued events wait in **lanes**, one per TikTok request key (pixel, test code, event
//! source): a request carries one lane's events only. Within a lane, events leave in the
//! order they came, so a lane's whole progress is one cursor into the event sequence, and
//! only the batch at its head has a state of its own (failed attempts, when it is due, how
//! many events it may hold). That is what lets the Dispatcher keep no per-event state after
//! intake: marking a thousand events delivered is one cursor move.
//!
//! The Worker turns these decisions into SQL and fetches:
//!
//! 1. [`next_batch`] picks the lane to send from and how many events, within the rate
//!    window, or says when to look again;
//! 2. [`Lane::settle`] turns TikTok's [`Verdict`] on that batch into the events delivered,
//!    the events parked, the counter changes, and the lane's next state.
//!
//! Everything here is deterministic given its inputs, which is what the property tests
//! (`tests/delivery.rs`) drive: every event ends delivered or parked within the attempt
//! budget, splitting reaches single events, no event is in two batches at once, no window
//! holds more sends than the limit, and the counters balance.

use serde::{Deserialize, Serialize};

use crate::ratelimit::SlidingWindow;
use crate::retry::{after_failure, NextStep};
use crate::tiktok::{Failure, Verdict};

/// The most events TikTok takes in one request.
pub const MAX_BATCH_EVENTS: u32 = 1_000;

/// What makes two events one for TikTok, which keeps the first copy of an event with the
/// same pixel, name and event_id (and test code): a SHA-256 of those four, each with its
/// length so that no two tuples run together. 32 bytes are all a delivered event keeps.
pub fn dedup_key(
    pixel_code: &str,
    event_name: &str,
    event_id: &str,
    test_event_code: Option<&str>,
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [
        pixel_code,
        event_name,
        event_id,
        test_event_code.unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// A counter the Dispatcher keeps per hour. Health knows every one of them
/// ([`crate::health::Counts`] has a field for each), so a counter cannot be written and then
/// ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Events stored for delivery (duplicates not counted).
    Received,
    /// Events put in a request to TikTok (each attempt counts).
    Sent,
    /// Events TikTok accepted.
    Delivered,
    /// Event retries scheduled after a retryable failure.
    Retried,
    /// Events parked: refused, or not delivered after every retry.
    Parked,
    /// Parked events put back in the queue by the operator.
    Replayed,
    /// Events held back by consent.
    Held,
    /// Events skipped (internal events, custom events off).
    Skipped,
    /// Events rejected before queueing.
    Rejected,
    /// Events accepted while the destination is not live: scored and counted, not sent.
    NotLive,
    /// Requests sent to TikTok.
    Requests,
    /// Calls to TikTok that came back (with an answer, an error or a time-out).
    Calls,
    /// Calls that failed: retried or refused (a partial success is not a failure).
    FailedCalls,
    /// Conversions delivered.
    Conversions,
    /// Conversions delivered whose page reported the pixel blocked or absent.
    ConversionsUnseen,
    /// Events stored whose page reported the pixel blocked or absent: the browser pixel
    /// could not have sent them.
    PixelMissing,
    /// Cash-on-delivery orders confirmed (paid or delivered): one `CompletePayment` each.
    CodConfirmed,
    /// Cash-on-delivery orders cancelled: nothing sent, the order forgotten.
    CodCancelled,
    /// Events that received a stored email, phone or external id (identity resolution).
    Enriched,
    /// Score points those events gained, in hundredths.
    EnrichmentGain,
}

impl Metric {
    /// Every metric, in the order health lists them.
    pub const ALL: [Metric; 20] = [
        Metric::Received,
        Metric::Sent,
        Metric::Delivered,
        Metric::Retried,
        Metric::Parked,
        Metric::Replayed,
        Metric::Held,
        Metric::Skipped,
        Metric::Rejected,
        Metric::NotLive,
        Metric::Requests,
        Metric::Calls,
        Metric::FailedCalls,
        Metric::Conversions,
        Metric::ConversionsUnseen,
        Metric::PixelMissing,
        Metric::CodConfirmed,
        Metric::CodCancelled,
        Metric::Enriched,
        Metric::EnrichmentGain,
    ];
}

/// One lane's progress: where its queue starts, and the state of the batch at its head.
///
/// Event positions are the Dispatcher's own sequence numbers, given at intake, increasing.
/// Events of other lanes sit between a lane's events; a lane only ever looks at its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    /// Every event of this lane before this position has left the queue.
    pub cursor: u64,
    /// Failed, retryable attempts of the batch at the head.
    pub attempts: u32,
    /// The head may not be sent before this time (a retry's backoff), epoch ms.
    pub due_ms: u64,
    /// The most events the head's request may carry: halved by each 40002 split.
    pub limit: u32,
    /// A split's halved limit holds until the cursor passes this position, the end of the
    /// batch that was refused; after it, requests are full again.
    pub split_end: u64,
    /// A batch of this lane is out, awaiting TikTok's answer: no second one is planned.
    #[serde(default)]
    pub in_flight: bool,
}

impl Default for Lane {
    fn default() -> Self {
        Lane::starting_at(0)
    }
}

/// A batch that [`next_batch`] planned: `count` events of lane `lane`, from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// The index of the lane in the slice given to [`next_batch`].
    pub lane: usize,
    /// How many of the lane's queued events, from its cursor.
    pub count: u32,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send this batch now.
    Send(Planned),
    /// Nothing may go before this time (a backoff, or the rate window): wake then.
    WaitUntil(u64),
    /// Nothing is queued.
    Idle,
}

/// A lane's queue as the Worker sees it when planning: how many of its events are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The lane's state.
    pub lane: Lane,
    /// Its events at or after the cursor.
    pub events: u64,
}

/// Picks the next batch: the lane whose head has been due longest, if the rate window lets a
/// request go now. Lanes with a batch in flight are passed over.
pub fn next_batch(lanes: &[Queued], window: &mut SlidingWindow, now_ms: u64) -> Next {
    let waiting = lanes
        .iter()
        .enumerate()
        .filter(|(_, queued)| queued.events > 0 && !queued.lane.in_flight);
    let Some((index, head)) = waiting.min_by_key(|(_, queued)| queued.lane.due_ms) else {
        return Next::Idle;
    };
    if head.lane.due_ms > now_ms {
        return Next::WaitUntil(head.lane.due_ms);
    }
    if let Err(free_at) = window.check(now_ms) {
        return Next::WaitUntil(free_at);
    }
    let count = u64::from(head.lane.limit.clamp(1, MAX_BATCH_EVENTS)).min(head.events) as u32;
    Next::Send(Planned { lane: index, count })
}

/// The counters of one call to TikTok that came back with `verdict`: a call, and a failed
/// one unless TikTok took the request (a partial success is not a failure). The send loop
/// and the connection test count their calls alike.
pub fn call_counts(verdict: &Verdict) -> [(Metric, u64); 2] {
    let failed = matches!(verdict, Verdict::Retry(_) | Verdict::Reject(_));
    [(Metric::Calls, 1), (Metric::FailedCalls, u64::from(failed))]
}

/// A sent batch as [`Lane::settle`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentBatch {
    /// The position of its first event: the lane's cursor when it was planned.
    pub first: u64,
    /// The position just after its last event.
    pub end: u64,
    /// How many events it carried.
    pub events: u32,
    /// How many of them are conversions.
    pub conversions: u32,
    /// How many of those conversions the browser pixel could not have seen.
    pub conversions_unseen: u32,
}

/// What became of a batch, for the Worker to write down.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settlement {
    /// The batch's events left the queue delivered.
    pub delivered: bool,
    /// The batch's events left the queue parked, with this failure.
    pub parked: Option<Failure>,
    /// Counter changes.
    pub counts: alloc::vec::Vec<(Metric, u64)>,
}

impl Settlement {
    /// The change to `metric`, zero when there is none.
    pub fn count(&self, metric: Metric) -> u64 {
        self.counts
            .iter()
            .filter(|(m, _)| *m == metric)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Lane {
    /// A lane whose queue starts at `position`, with nothing failed and full requests.
    pub fn starting_at(position: u64) -> Lane {
        Lane {
            cursor: position,
            attempts: 0,
            due_ms: 0,
            limit: MAX_BATCH_EVENTS,
            split_end: position,
            in_flight: false,
        }
    }

    /// The counters of a request about to leave, and the lane marked in flight.
    pub fn sending(&mut self, batch: &SentBatch) -> [(Metric, u64); 2] {
        self.in_flight = true;
        [
            (Metric::Requests, 1),
            (Metric::Sent, u64::from(batch.events)),
        ]
    }

    /// Applies TikTok's verdict on `batch`, sent from this lane's head, at `now_ms`.
    ///
    /// - Delivered (or partly: TikTok took the request): the cursor passes the batch.
    /// - 40002 on several events: the batch is halved, and the first half goes next, at once.
    /// - Retryable: tried again after the backoff; once the attempts are used up, parked.
    /// - Any other refusal: parked at once.
    ///
    /// Parked events leave the queue too (the Worker keeps them, listed and replayable).
    pub fn settle(&mut self, batch: &SentBatch, verdict: &Verdict, now_ms: u64) -> Settlement {
        self.in_flight = false;
        let events = u64::from(batch.events);
        let mut settlement = Settlement {
            counts: call_counts(verdict).to_vec(),
            ..Settlement::default()
        };
        match verdict {
            Verdict::Delivered | Verdict::PartiallyDelivered(_) => {
                settlement.delivered = true;
                settlement.counts.extend([
                    (Metric::Delivered, events),
                    (Metric::Conversions, u64::from(batch.conversions)),
                    (
                        Metric::ConversionsUnseen,
                        u64::from(batch.conversions_unseen),
                    ),
                ]);
                self.advance(batch.end, now_ms);
            }
            Verdict::Reject(_) if verdict.should_split(batch.events as usize) => {
                // A binary search: the bad event is in this batch, so the search narrows
                // to it, and its halves go in turn (a delivered half leaves the other).
                self.limit = batch.events.div_ceil(2);
                self.split_end = batch.end;
                self.due_ms = now_ms;
            }
            Verdict::Reject(failure) => self.park(batch, failure, now_ms, &mut settlement),
            Verdict::Retry(failure) => match after_failure(self.attempts + 1) {
                NextStep::RetryAfter(delay) => {
                    self.attempts += 1;
                    self.due_ms = now_ms.saturating_add(delay);
                    settlement.counts.push((Metric::Retried, events));
                }
                NextStep::Park => self.park(batch, failure, now_ms, &mut settlement),
            },
        }
        settlement.counts.retain(|(_, n)| *n > 0);
        settlement
    }

    /// Parks a batch that cannot be sent at all (its stored events do not read back), with
    /// no call to TikTok.
    pub fn set_aside(&mut self, batch: &SentBatch, failure: &Failure, now_ms: u64) -> Settlement {
        let mut settlement = Settlement::default();
        self.park(batch, failure, now_ms, &mut settlement);
        settlement
    }

    fn park(&mut self, batch: &SentBatch, failure: &Failure, now_ms: u64, out: &mut Settlement) {
        out.parked = Some(failure.clone());
        out.counts.push((Metric::Parked, u64::from(batch.events)));
        self.advance(batch.end, now_ms);
        // A split ends with its event found; another bad one starts a search of its own.
        self.end_split();
    }

    /// The head has left: the next batch starts fresh, and full once past a split.
    fn advance(&mut self, end: u64, now_ms: u64) {
        self.cursor = end;
        self.attempts = 0;
        self.due_ms = now_ms;
        if self.cursor >= self.split_end {
            self.end_split();
        }
    }

    fn end_split(&mut self) {
        self.limit = MAX_BATCH_EVENTS;
        self.split_end = self.cursor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiktok::classify;

    const T0: u64 = 1_764_064_800_000;

    fn batch(first: u64, events: u32) -> SentBatch {
        SentBatch {
            first,
            end: first + u64::from(events),
            events,
            conversions: 0,
            conversions_unseen: 0,
        }
    }

    fn verdict(code: i64) -> Verdict {
        classify(
            200,
            alloc::format!(r#"{{"code":{code},"message":"m"}}"#).as_bytes(),
        )
    }

    #[test]
    fn dedup_keys_tell_each_part_apart() {
        let key = dedup_key("C4", "Purchase", "order-1", None);
        assert_eq!(key, dedup_key("C4", "Purchase", "order-1", Some("")));
        for other in [
            dedup_key("C5", "Purchase", "order-1", None),
            dedup_key("C4", "Lead", "order-1", None),
            dedup_key("C4", "Purchase", "order-2", None),
            dedup_key("C4", "Purchase", "order-1", Some("TEST1")),
            // The same letters split differently between the parts.
            dedup_key("C4P", "urchase", "order-1", None),
        ] {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn delivered_moves_the_cursor_past_the_batch() {
        let mut lane = Lane::starting_at(10);
        let sent = batch(10, 5);
        lane.sending(&sent);
        assert!(lane.in_flight);
        let settled = lane.settle(&sent, &verdict(0), T0);
        assert!(settled.delivered);
        assert_eq!(settled.count(Metric::Delivered), 5);
        assert_eq!(settled.count(Metric::Calls), 1);
        assert_eq!(settled.count(Metric::FailedCalls), 0);
        assert_eq!((lane.cursor, lane.in_flight), (15, false));
    }

    #[test]
    fn retries_back_off_then_park() {
        let mut lane = Lane::starting_at(0);
        let sent = batch(0, 3);
        let mut now = T0;
        for delay in crate::retry::BACKOFF_MS {
            let settled = lane.settle(&sent, &verdict(50000), now);
            assert_eq!(settled.count(Metric::Retried), 3);
            assert_eq!(lane.due_ms, now + delay);
            assert_eq!(lane.cursor, 0);
            now += delay;
        }
        let settled = lane.settle(&sent, &verdict(50000), now);
        assert_eq!(settled.parked.as_ref().map(|f| f.code), Some(Some(50000)));
        assert_eq!(settled.count(Metric::Parked), 3);
        assert_eq!((lane.cursor, lane.attempts), (3, 0));
    }

    #[test]
    fn a_40002_halves_until_the_bad_event_stands_alone() {
        let mut lane = Lane::starting_at(0);
        let settled = lane.settle(&batch(0, 8), &verdict(40002), T0);
        assert!(!settled.delivered && settled.parked.is_none());
        assert_eq!((lane.limit, lane.split_end, lane.cursor), (4, 8, 0));
        // The first half is fine, so the bad event is in the second: it is halved in turn.
        lane.settle(&batch(0, 4), &verdict(0), T0);
        assert_eq!((lane.limit, lane.cursor), (4, 4));
        lane.settle(&batch(4, 4), &verdict(40002), T0);
        assert_eq!((lane.limit, lane.split_end), (2, 8));
        lane.settle(&batch(4, 2), &verdict(40002), T0);
        assert_eq!((lane.limit, lane.split_end), (1, 6));
        lane.settle(&batch(4, 1), &verdict(0), T0);
        assert_eq!((lane.limit, lane.cursor), (1, 5));
        let settled = lane.settle(&batch(5, 1), &verdict(40002), T0);
        assert_eq!(settled.count(Metric::Parked), 1, "alone, it is parked");
        assert_eq!(lane.cursor, 6);
        assert_eq!(
            lane.limit, MAX_BATCH_EVENTS,
            "found: requests are full again"
        );
    }

    #[test]
    fn other_refusals_park_at_once() {
        let mut lane = Lane::starting_at(0);
        let settled = lane.settle(&batch(0, 2), &verdict(40001), T0);
        assert_eq!(settled.count(Metric::Parked), 2);
        assert_eq!(settled.count(Metric::FailedCalls), 1);
        assert_eq!(lane.cursor, 2);
    }

    #[test]
    fn planning_takes_the_longest_due_lane_within_the_window() {
        let due = |due_ms, events| Queued {
            lane: Lane {
                due_ms,
                ..Lane::default()
            },
            events,
        };
        let mut window = SlidingWindow::per_minute(1);
        let lanes = [due(T0 + 5, 3), due(T0 - 5, 2000), due(T0, 0)];
        assert_eq!(
            next_batch(&lanes, &mut window, T0),
            Next::Send(Planned {
                lane: 1,
                count: 1000
            })
        );
        window.record(T0);
        assert_eq!(
            next_batch(&lanes, &mut window, T0 + 1),
            Next::WaitUntil(T0 + 60_000)
        );
        assert_eq!(
            next_batch(&[due(T0 + 5, 3)], &mut window, T0),
            Next::WaitUntil(T0 + 5)
        );
        assert_eq!(next_batch(&[due(T0, 0)], &mut window, T0), Next::Idle);
        let mut busy = due(T0, 3);
        busy.lane.in_flight = true;
        assert_eq!(next_batch(&[busy], &mut window, T0), Next::Idle);
    }
}
