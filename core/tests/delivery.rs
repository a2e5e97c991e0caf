//! Property tests of the delivery rules (`ttedge_core::delivery`), after
//! boinkor-net/governor's: a simulated TikTok answers batches at random, a simulated clock
//! runs, and whatever happens the rules must hold.
//!
//! - Every event ends delivered or parked, within the attempt budget.
//! - Splitting reaches single events: a bad event is parked alone, its neighbours delivered.
//! - No event is in two batches in flight.
//! - No sliding minute holds more requests than the limit.
//! - The counters balance: received + replayed = delivered + parked + queued.

use std::collections::HashMap;

use proptest::prelude::*;
use ttedge_core::delivery::{next_batch, Lane, Metric, Next, Queued, SentBatch, MAX_BATCH_EVENTS};
use ttedge_core::ratelimit::{SlidingWindow, MINUTE_MS};
use ttedge_core::retry::MAX_ATTEMPTS;
use ttedge_core::tiktok::{classify, Verdict};

const T0: u64 = 1_764_064_800_000;

/// One simulated event.
#[derive(Debug, Clone)]
struct Event {
    lane: usize,
    /// TikTok refuses every request that carries it with a 40002.
    bad: bool,
    sent: u32,
    fate: Option<Fate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Delivered,
    /// Parked in a batch of this many events.
    Parked(u32),
}

/// How the simulated TikTok answers a batch without a bad event.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    Retryable,
    Refused,
}

#[derive(Debug, Clone)]
struct Scenario {
    lanes: Vec<usize>,
    bad: Vec<bool>,
    answers: Vec<Answer>,
    latencies: Vec<u64>,
    limit: u32,
    concurrent: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..4, 1usize..1_500).prop_flat_map(|(lanes, events)| {
        (
            prop::collection::vec(0..lanes, events),
            prop::collection::vec(prop::bool::weighted(0.004), events),
            prop::collection::vec(
                prop_oneof![
                    6 => Just(Answer::Ok),
                    3 => Just(Answer::Retryable),
                    1 => Just(Answer::Refused),
                ],
                1..64,
            ),
            prop::collection::vec(1u64..12_000, 1..16),
            1u32..40,
            any::<bool>(),
        )
            .prop_map(
                |(lanes, bad, answers, latencies, limit, concurrent)| Scenario {
                    lanes,
                    bad,
                    answers,
                    latencies,
                    limit,
                    concurrent,
                },
            )
    })
}

fn tiktok(code: i64) -> Verdict {
    classify(
        200,
        format!(r#"{{"code":{code},"message":"m"}}"#).as_bytes(),
    )
}

/// The outcome of a run: the events, every request's answer time, and the counters.
struct Run {
    events: Vec<Event>,
    sends: Vec<u64>,
    counts: HashMap<Metric, u64>,
}

fn run(scenario: &Scenario) -> Result<Run, TestCaseError> {
    let mut events: Vec<Event> = scenario
        .lanes
        .iter()
        .zip(&scenario.bad)
        .map(|(&lane, &bad)| Event {
            lane,
            bad,
            sent: 0,
            fate: None,
        })
        .collect();
    let lane_count = scenario.lanes.iter().max().map_or(1, |l| l + 1);
    let mut lanes = vec![Lane::starting_at(0); lane_count];
    let mut window = SlidingWindow::per_minute(scenario.limit);
    let mut counts: HashMap<Metric, u64> = HashMap::new();
    counts.insert(Metric::Received, events.len() as u64);
    let mut sends = Vec::new();
    let mut now = T0;
    let mut answer_at = 0usize;

    for _step in 0..200_000 {
        let queued_of = |lane: usize, lanes: &[Lane], events: &[Event]| -> Vec<u64> {
            let cursor = lanes[lane].cursor;
            events
                .iter()
                .enumerate()
                .filter(|(at, e)| e.lane == lane && *at as u64 >= cursor)
                .map(|(at, _)| at as u64)
                .collect()
        };
        let queued: Vec<Queued> = (0..lane_count)
            .map(|lane| Queued {
                lane: lanes[lane],
                events: queued_of(lane, &lanes, &events).len() as u64,
            })
            .collect();

        // The counters balance at every step.
        let total_queued: u64 = queued.iter().map(|q| q.events).sum();
        let get = |m| counts.get(&m).copied().unwrap_or(0);
        prop_assert_eq!(
            get(Metric::Received) + get(Metric::Replayed),
            get(Metric::Delivered) + get(Metric::Parked) + total_queued
        );

        // Plan one batch, or two at once (different lanes) when the scenario says so.
        let mut planned = Vec::new();
        match next_batch(&queued, &mut window, now) {
            Next::Idle => break,
            Next::WaitUntil(at) => {
                prop_assert!(at > now, "a wait must be in the future");
                now = at;
                continue;
            }
            Next::Send(plan) => planned.push(plan),
        }
        let mut lanes_in_flight = lanes.clone();
        lanes_in_flight[planned[0].lane].in_flight = true;
        if scenario.concurrent {
            let queued: Vec<Queued> = (0..lane_count)
                .map(|lane| Queued {
                    lane: lanes_in_flight[lane],
                    events: queued_of(lane, &lanes, &events).len() as u64,
                })
                .collect();
            let mut probe = window.clone();
            probe.record(now);
            if let Next::Send(plan) = next_batch(&queued, &mut probe, now) {
                prop_assert_ne!(plan.lane, planned[0].lane, "a lane in flight was planned");
                planned.push(plan);
            }
        }

        let mut batches = Vec::new();
        for plan in &planned {
            let members: Vec<u64> = queued_of(plan.lane, &lanes, &events)
                .into_iter()
                .take(plan.count as usize)
                .collect();
            prop_assert!(!members.is_empty() && members.len() <= MAX_BATCH_EVENTS as usize);
            let batch = SentBatch {
                first: lanes[plan.lane].cursor,
                end: members.last().copied().unwrap_or_default() + 1,
                events: members.len() as u32,
                conversions: 0,
                conversions_unseen: 0,
            };
            for (metric, n) in lanes[plan.lane].sending(&batch) {
                *counts.entry(metric).or_default() += n;
            }
            batches.push((plan.lane, batch, members));
        }
        // No event in two batches in flight.
        if let [(_, _, a), (_, _, b)] = batches.as_slice() {
            prop_assert!(a.iter().all(|id| !b.contains(id)));
        }

        // The Dispatcher awaits its answers before it plans again.
        let mut answered_last = now;
        for (lane, batch, members) in batches {
            let latency = scenario.latencies[answer_at % scenario.latencies.len()];
            let answer = scenario.answers[answer_at % scenario.answers.len()];
            answer_at += 1;
            let verdict = if members.iter().any(|&id| events[id as usize].bad) {
                tiktok(40002)
            } else {
                match answer {
                    Answer::Ok => tiktok(0),
                    Answer::Retryable => tiktok(50000),
                    Answer::Refused => tiktok(40001),
                }
            };
            for &id in &members {
                events[id as usize].sent += 1;
            }
            // Counted when the answer came back, as the Worker does.
            let answered = now + latency;
            answered_last = answered_last.max(answered);
            window.record(answered);
            sends.push(answered);
            let settled = lanes[lane].settle(&batch, &verdict, answered);
            let fate = match (settled.delivered, &settled.parked) {
                (true, _) => Some(Fate::Delivered),
                (false, Some(_)) => Some(Fate::Parked(batch.events)),
                (false, None) => None,
            };
            if let Some(fate) = fate {
                for &id in &members {
                    prop_assert_eq!(events[id as usize].fate, None, "an event left twice");
                    events[id as usize].fate = Some(fate);
                }
            }
            for (metric, n) in settled.counts {
                *counts.entry(metric).or_default() += n;
            }
        }
        now = answered_last;
    }
    Ok(Run {
        events,
        sends,
        counts,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_rule_holds(scenario in scenario()) {
        let Run { events, mut sends, counts } = run(&scenario)?;

        // Every event ends delivered or parked, within the attempt budget: each level of a
        // split (at most log2(1000) + 1) gives the batch its attempts anew, and each bad
        // event of the lane can start one search.
        let split_levels = 11;
        for (id, event) in events.iter().enumerate() {
            prop_assert!(event.fate.is_some(), "event {} never left the queue", id);
            let searches = 1 + events.iter().filter(|e| e.bad && e.lane == event.lane).count() as u32;
            let budget = MAX_ATTEMPTS * split_levels * searches;
            prop_assert!(event.sent <= budget, "event {} sent {} times, budget {}", id, event.sent, budget);
            // Splitting reaches single events: a bad event is parked alone.
            if event.bad {
                prop_assert_eq!(event.fate, Some(Fate::Parked(1)), "bad event {}", id);
            }
        }

        // No sliding minute holds more requests than the limit.
        sends.sort_unstable();
        for (i, &start) in sends.iter().enumerate() {
            let in_window = sends[i..].iter().take_while(|&&t| t < start + MINUTE_MS).count();
            prop_assert!(in_window <= scenario.limit as usize, "{} sends in a minute, limit {}", in_window, scenario.limit);
        }

        // Nothing is left: everything received was delivered or parked.
        let get = |m| counts.get(&m).copied().unwrap_or(0);
        prop_assert_eq!(get(Metric::Received), get(Metric::Delivered) + get(Metric::Parked));
        prop_assert_eq!(get(Metric::Requests), sends.len() as u64);
        prop_assert_eq!(get(Metric::Calls), sends.len() as u64);
    }
}

/// A batch with one bad event among good ones: the good are delivered, the bad one parked
/// alone, whatever the batch size.
#[test]
fn one_bad_event_is_found_by_halving() {
    for size in [2u32, 3, 7, 64, 1000] {
        for bad_at in [0, size / 2, size - 1] {
            let scenario = Scenario {
                lanes: vec![0; size as usize],
                bad: (0..size).map(|i| i == bad_at).collect(),
                answers: vec![Answer::Ok],
                latencies: vec![100],
                limit: 1000,
                concurrent: false,
            };
            let run = run(&scenario).unwrap();
            for (id, event) in run.events.iter().enumerate() {
                let expected = if id as u32 == bad_at {
                    Fate::Parked(1)
                } else {
                    Fate::Delivered
                };
                assert_eq!(
                    event.fate,
                    Some(expected),
                    "size {size}, bad {bad_at}, event {id}"
                );
            }
            // About log2(size) refused requests, and the rest delivered.
            let requests = run.counts[&Metric::Requests];
            assert!(
                requests <= 2 * u64::from(size.ilog2() + 2),
                "{requests} requests for {size}"
            );
        }
    }
}
