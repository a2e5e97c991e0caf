//! Delivery end to end: the Dispatcher's retries, parking, 40002 batch splitting, time-outs,
//! the sliding-window rate limit and durability across a crash, each checked against what a
//! loopback mock of TikTok actually received (and when), and against the Dispatcher's own
//! status (`GET /admin/api/status`).
//!
//! DESIGN ("TikTok API") and issue 3 ("Retries", "Rate limit", "Durability") are the
//! specification: retried answers (HTTP 5xx, 429, codes 40100/50000/50002, network errors,
//! time-outs) are tried again after 500, 1,000 and 2,000 ms and then parked; other rejections
//! are parked at once with TikTok's code, message and a hint; a 40002 on a batch is split so
//! the good events are still delivered; no sliding 60-second window holds more than
//! `RATE_LIMIT_PER_MINUTE` requests; and an event answered with 202 is delivered exactly once
//! even if `wrangler dev` is killed before it could be sent.
//!
//! Every test starts its own mock and its own `wrangler dev` (own port, own persist
//! directory), so the tests may run in parallel. Timing assertions only have generous upper
//! bounds: the machines have two cores and two workerd instances may share them.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use ttedge_e2e::{MockResponse, RecordedRequest, Site};

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
const PIXEL_ID: &str = "C4DELIVERY0000000000";

/// The mock and the Worker of one test.
struct Rig(Site);

impl std::ops::Deref for Rig {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.0
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut Site {
        &mut self.0
    }
}

impl Rig {
    /// Starts a mock and `wrangler dev` pointed at it, with `extra` vars on top of the pixel,
    /// a per-test access token and the admin token.
    async fn start(name: &str, extra: &[(&str, &str)]) -> anyhow::Result<Rig> {
        let token = format!("e2e-delivery-{name}-token-0123456789");
        Ok(Rig(Site::start(&token, PIXEL_ID, ADMIN_TOKEN, extra).await?))
    }

    /// Posts `body` to `/collect` and checks that every event was queued (`ready`).
    async fn collect(&self, body: &Value) -> anyhow::Result<Value> {
        let answer = self.0.collect(body).await?;
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        let expected = body["batch"].as_array().map_or(1, Vec::len);
        if events.len() != expected || events.iter().any(|e| e["status"] != "ready") {
            bail!("not every event was queued: {answer}");
        }
        Ok(answer)
    }

    /// Posts one purchase with `event_id`.
    async fn collect_one(&self, event_id: &str) -> anyhow::Result<Value> {
        self.collect(&purchase(event_id)).await
    }

    /// Posts a batch of purchases, one per id, in one request.
    async fn collect_batch(&self, event_ids: &[&str]) -> anyhow::Result<Value> {
        let batch: Vec<Value> = event_ids.iter().map(|id| purchase(id)).collect();
        self.collect(&json!({ "batch": batch })).await
    }

    /// `GET /admin/api/status`.
    async fn status(&self) -> anyhow::Result<Value> {
        self.admin_get("/admin/api/status").await
    }

    /// Polls the status until `done` holds; returns that status.
    async fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_admin("/admin/api/status", what, timeout, done)
            .await
    }

    /// Waits until nothing is queued any more, and returns that status.
    async fn wait_settled(&self, timeout: Duration) -> anyhow::Result<Value> {
        self.wait_status("an empty queue", timeout, |s| s["queued"] == 0)
            .await
    }

    /// The requests that carried `event_id`, in arrival order.
    fn attempts_of(&self, event_id: &str) -> Vec<RecordedRequest> {
        attempts_of(&self.tiktok.requests(), event_id)
    }

    /// How many accepted copies of `event_id` the mock holds.
    fn accepted_copies(&self, event_id: &str) -> usize {
        self.tiktok
            .accepted_events()
            .iter()
            .filter(|e| e.event_id() == Some(event_id))
            .count()
    }

    /// Every request went to the track path with this test's access token.
    fn assert_track_requests(&self) {
        for req in self.tiktok.requests() {
            assert_eq!(req.method, "POST");
            assert_eq!(req.path, "/open_api/v1.3/event/track/");
            assert!(
                req.header("access-token")
                    .is_some_and(|t| t.starts_with("e2e-delivery-")),
                "request #{} without the access token: {:?}",
                req.index,
                req.headers
            );
            assert_eq!(req.field("event_source_id"), Some(PIXEL_ID));
        }
    }
}

fn purchase(event_id: &str) -> Value {
    json!({"event": "purchase", "event_id": event_id})
}

fn attempts_of(requests: &[RecordedRequest], event_id: &str) -> Vec<RecordedRequest> {
    requests
        .iter()
        .filter(|r| r.event_ids().iter().any(|id| id == event_id))
        .cloned()
        .collect()
}

/// A counter from the status (0 when the metric was never counted).
fn counter(status: &Value, metric: &str) -> i64 {
    status["counters"][metric].as_i64().unwrap_or(0)
}

/// The parked event with `event_id`, if any.
fn parked<'a>(status: &'a Value, event_id: &str) -> Option<&'a Value> {
    status["parked_events"]
        .as_array()?
        .iter()
        .find(|p| p["event_id"] == event_id)
}

/// Time between consecutive requests.
fn gaps(requests: &[RecordedRequest]) -> Vec<Duration> {
    requests
        .windows(2)
        .map(|w| w[1].received_at.duration_since(w[0].received_at))
        .collect()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 3: two 5xx answers and then success give exactly one delivered copy after three
/// attempts, with the backoff gaps (500 ms, then 1,000 ms).
#[tokio::test(flavor = "multi_thread")]
async fn two_5xx_then_success_delivers_once_after_three_attempts() -> anyhow::Result<()> {
    let rig = Rig::start("5xx", &[]).await?;
    rig.tiktok.fail_next_n(1, 502);
    rig.tiktok.fail_next_n(1, 503);
    let id = "dlv-5xx-1";
    rig.collect_one(id).await?;

    rig.tiktok
        .wait_for_requests(3, Duration::from_secs(20))
        .await?;
    let status = rig.wait_settled(Duration::from_secs(10)).await?;
    let attempts = rig.attempts_of(id);
    let answers: Vec<_> = attempts.iter().map(|r| r.answer.clone()).collect();
    assert_eq!(
        attempts.len(),
        3,
        "exactly three attempts: {}",
        rig.tiktok.summary()
    );
    assert!(matches!(
        answers[0],
        MockResponse::Reply { status: 502, .. }
    ));
    assert!(matches!(
        answers[1],
        MockResponse::Reply { status: 503, .. }
    ));
    assert!(answers[2].is_success());
    assert_eq!(rig.accepted_copies(id), 1, "{}", rig.tiktok.summary());

    let g = gaps(&attempts);
    eprintln!(
        "[5xx] gaps between attempts: {} ms, {} ms",
        ms(g[0]),
        ms(g[1])
    );
    assert!(
        g[0] >= Duration::from_millis(450) && g[0] < Duration::from_secs(3),
        "first retry after {g:?}, expected about 500 ms"
    );
    assert!(
        g[1] >= Duration::from_millis(950) && g[1] < Duration::from_secs(3),
        "second retry after {g:?}, expected about 1,000 ms"
    );

    assert_eq!(status["queued"], 0);
    assert_eq!(status["parked"], 0, "{status:#}");
    assert_eq!(counter(&status, "received"), 1, "{status:#}");
    assert_eq!(counter(&status, "retried"), 2, "{status:#}");
    assert_eq!(counter(&status, "delivered"), 1, "{status:#}");
    assert_eq!(counter(&status, "parked"), 0, "{status:#}");
    assert_eq!(counter(&status, "requests"), 3, "{status:#}");

    // Nothing more happens afterwards (no duplicate from a re-run alarm).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.tiktok.requests().len(), 3, "{}", rig.tiktok.summary());
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: code 40002 is not retried. The event is parked at once with TikTok's code,
/// message and a hint that points at the pixel ID.
#[tokio::test(flavor = "multi_thread")]
async fn code_40002_for_a_single_event_is_parked_without_retry() -> anyhow::Result<()> {
    let rig = Rig::start("40002", &[]).await?;
    let message = "Invalid value for event_source_id (mock)";
    // Every answer is 40002: a retry would show as a second request.
    rig.tiktok.set_default(MockResponse::tiktok(40002, message));
    let id = "dlv-40002-1";
    rig.collect_one(id).await?;

    let status = rig
        .wait_status("the event parked", Duration::from_secs(20), |s| {
            s["parked"] == 1
        })
        .await?;
    let p = parked(&status, id).context("event not in parked_events")?;
    eprintln!("[40002] parked: {p}");
    assert_eq!(p["tiktok_code"], 40002, "{p}");
    assert_eq!(p["http_status"], 200, "{p}");
    assert_eq!(p["message"], message, "{p}");
    assert!(
        p["hint"].as_str().is_some_and(|h| h.contains("pixel ID")),
        "hint should mention the pixel ID: {p}"
    );
    assert_eq!(p["attempts"], 1, "{p}");
    assert_eq!(p["event_name"], "CompletePayment", "{p}");
    assert_eq!(status["queued"], 0);

    // Longer than every backoff step together (3.5 s): still one attempt.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rig.attempts_of(id).len(), 1, "{}", rig.tiktok.summary());
    assert_eq!(rig.tiktok.requests().len(), 1);
    let status = rig.status().await?;
    assert_eq!(counter(&status, "retried"), 0, "{status:#}");
    assert_eq!(counter(&status, "delivered"), 0, "{status:#}");
    assert_eq!(counter(&status, "parked"), 1, "{status:#}");
    assert_eq!(status["parked"], 1);
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: code 40100 (too many requests, with HTTP 200) is retried, and the event is
/// delivered once.
#[tokio::test(flavor = "multi_thread")]
async fn code_40100_is_retried_then_delivered_once() -> anyhow::Result<()> {
    let rig = Rig::start("40100", &[]).await?;
    rig.tiktok
        .reject_next_n(1, 40100, "Too many requests (mock)");
    let id = "dlv-40100-1";
    rig.collect_one(id).await?;

    rig.tiktok
        .wait_for_requests(2, Duration::from_secs(20))
        .await?;
    let status = rig.wait_settled(Duration::from_secs(10)).await?;
    let attempts = rig.attempts_of(id);
    assert_eq!(attempts.len(), 2, "{}", rig.tiktok.summary());
    assert!(!attempts[0].answer.is_success());
    assert!(attempts[1].answer.is_success());
    let g = gaps(&attempts);
    eprintln!("[40100] gap between attempts: {} ms", ms(g[0]));
    assert!(
        g[0] >= Duration::from_millis(450) && g[0] < Duration::from_secs(3),
        "retry after {g:?}, expected about 500 ms"
    );
    assert_eq!(rig.accepted_copies(id), 1);
    assert_eq!(status["parked"], 0, "{status:#}");
    assert_eq!(counter(&status, "retried"), 1, "{status:#}");
    assert_eq!(counter(&status, "delivered"), 1, "{status:#}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.tiktok.requests().len(), 2, "{}", rig.tiktok.summary());
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: a bad event inside a batch does not park its neighbours. TikTok answers 40002 to
/// any request that holds the bad event; the Dispatcher splits until it stands alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_event_in_a_batch_does_not_park_its_neighbours() -> anyhow::Result<()> {
    let rig = Rig::start("split", &[]).await?;
    let bad = "dlv-split-bad";
    let ids = [
        "dlv-split-1",
        "dlv-split-2",
        "dlv-split-3",
        bad,
        "dlv-split-5",
        "dlv-split-6",
    ];
    let message = "Invalid value for field 'event_time' (mock)";
    rig.tiktok.reject_batches_containing(&[bad], 40002, message);
    rig.collect_batch(&ids).await?;

    let status = rig
        .wait_status("queue drained", Duration::from_secs(30), |s| {
            s["queued"] == 0 && s["parked"] == 1
        })
        .await?;
    let requests = rig.tiktok.requests();
    let sizes: Vec<String> = requests
        .iter()
        .map(|r| {
            format!(
                "{:?}{}",
                r.event_ids(),
                if r.answer.is_success() {
                    " ok"
                } else {
                    " 40002"
                }
            )
        })
        .collect();
    eprintln!("[split] {} requests: {}", requests.len(), sizes.join(" | "));
    assert_eq!(
        requests[0].event_ids(),
        ids,
        "the six events leave together first"
    );
    for id in ids.iter().filter(|id| **id != bad) {
        assert_eq!(
            rig.accepted_copies(id),
            1,
            "{id} accepted once: {}",
            rig.tiktok.summary()
        );
        assert!(parked(&status, id).is_none(), "{id} parked: {status:#}");
    }
    assert_eq!(rig.accepted_copies(bad), 0);
    let p = parked(&status, bad).context("bad event not parked")?;
    eprintln!("[split] parked: {p}");
    assert_eq!(p["tiktok_code"], 40002, "{p}");
    assert_eq!(p["message"], message, "{p}");
    assert!(
        p["hint"].as_str().is_some_and(|h| h.contains("pixel ID")),
        "{p}"
    );
    // The bad event was finally sent alone.
    let last_bad = rig.attempts_of(bad).last().cloned().context("never sent")?;
    assert_eq!(last_bad.event_ids(), [bad]);
    assert_eq!(status["parked"], 1, "{status:#}");
    assert_eq!(counter(&status, "delivered"), 5, "{status:#}");
    assert_eq!(counter(&status, "parked"), 1, "{status:#}");
    assert_eq!(
        counter(&status, "requests") as usize,
        requests.len(),
        "{status:#}"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.tiktok.requests().len(), requests.len());
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: retries used up → parked. TikTok answers 503 every time: four attempts (500,
/// 1,000 and 2,000 ms apart), then the event is parked with the HTTP status and a hint, and
/// no fifth attempt follows.
#[tokio::test(flavor = "multi_thread")]
async fn retries_used_up_park_the_event_after_four_attempts() -> anyhow::Result<()> {
    let rig = Rig::start("503", &[]).await?;
    rig.tiktok.set_default(MockResponse::failure(503));
    let id = "dlv-503-1";
    rig.collect_one(id).await?;

    let status = rig
        .wait_status("the event parked", Duration::from_secs(30), |s| {
            s["parked"] == 1
        })
        .await?;
    let attempts = rig.attempts_of(id);
    let g = gaps(&attempts);
    eprintln!(
        "[503] {} attempts, gaps {:?} ms",
        attempts.len(),
        g.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
    assert_eq!(attempts.len(), 4, "{}", rig.tiktok.summary());
    for (gap, expected) in g.iter().zip([500u64, 1_000, 2_000]) {
        assert!(
            *gap >= Duration::from_millis(expected - 50)
                && *gap < Duration::from_millis(expected + 3_000),
            "gap {gap:?}, expected about {expected} ms (all: {g:?})"
        );
    }
    let p = parked(&status, id).context("event not in parked_events")?;
    eprintln!("[503] parked: {p}");
    assert_eq!(p["http_status"], 503, "{p}");
    assert!(p["tiktok_code"].is_null(), "{p}");
    assert_eq!(p["attempts"], 4, "{p}");
    assert!(
        p["hint"].as_str().is_some_and(|h| !h.trim().is_empty()),
        "{p}"
    );
    assert!(
        p["message"].as_str().is_some_and(|m| m.contains("503")),
        "the gateway page is kept as the message: {p}"
    );
    assert_eq!(status["queued"], 0);
    assert_eq!(counter(&status, "retried"), 3, "{status:#}");
    assert_eq!(counter(&status, "parked"), 1, "{status:#}");
    assert_eq!(counter(&status, "delivered"), 0, "{status:#}");

    // No fifth attempt.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rig.tiktok.requests().len(), 4, "{}", rig.tiktok.summary());
    rig.assert_track_requests();
    Ok(())
}

/// DESIGN: codes 40001 (no permission) and 40105 (invalid token) are never retried; the
/// event is parked at once with a hint to regenerate the access token.
#[tokio::test(flavor = "multi_thread")]
async fn code_40001_and_40105_are_parked_at_once() -> anyhow::Result<()> {
    let rig = Rig::start("40001", &[]).await?;
    let (id1, id2) = ("dlv-40001-1", "dlv-40105-1");
    let msg1 = "No permission to operate pixel code (mock)";
    let msg2 = "Access token is invalid (mock)";
    rig.tiktok.respond_with(move |req| {
        let ids = req.event_ids();
        if ids.iter().any(|i| i == id1) {
            Some(MockResponse::tiktok(40001, msg1))
        } else if ids.iter().any(|i| i == id2) {
            Some(MockResponse::tiktok(40105, msg2))
        } else {
            None
        }
    });
    rig.collect_one(id1).await?;
    let status = rig
        .wait_status("40001 parked", Duration::from_secs(20), |s| {
            s["parked"] == 1
        })
        .await?;
    let p = parked(&status, id1).context("40001 event not parked")?;
    eprintln!("[40001] parked: {p}");
    assert_eq!(p["tiktok_code"], 40001, "{p}");
    assert_eq!(p["message"], msg1, "{p}");
    assert_eq!(p["attempts"], 1, "{p}");
    assert!(
        p["hint"].as_str().is_some_and(|h| h.contains("regenerate")),
        "hint should say to regenerate the access token: {p}"
    );

    rig.collect_one(id2).await?;
    let status = rig
        .wait_status("40105 parked", Duration::from_secs(20), |s| {
            s["parked"] == 2
        })
        .await?;
    let p = parked(&status, id2).context("40105 event not parked")?;
    eprintln!("[40105] parked: {p}");
    assert_eq!(p["tiktok_code"], 40105, "{p}");
    assert_eq!(p["message"], msg2, "{p}");
    assert!(
        p["hint"].as_str().is_some_and(|h| h.contains("regenerate")),
        "{p}"
    );

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rig.attempts_of(id1).len(), 1, "{}", rig.tiktok.summary());
    assert_eq!(rig.attempts_of(id2).len(), 1, "{}", rig.tiktok.summary());
    assert_eq!(rig.tiktok.requests().len(), 2);
    let status = rig.status().await?;
    assert_eq!(counter(&status, "retried"), 0, "{status:#}");
    assert_eq!(counter(&status, "parked"), 2, "{status:#}");
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: each outbound call has a time-out, and a time-out is retried. With
/// `TIKTOK_TIMEOUT_MS=1000`, the mock never answers the first request; the second attempt
/// comes about 1,000 + 500 ms later and delivers the event once.
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_call_is_retried_and_delivered_once() -> anyhow::Result<()> {
    let rig = Rig::start("timeout", &[("TIKTOK_TIMEOUT_MS", "1000")]).await?;
    rig.tiktok.push_response(MockResponse::hang());
    let id = "dlv-timeout-1";
    rig.collect_one(id).await?;

    rig.tiktok
        .wait_for_requests(2, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\nlog tail:\n{}", rig.worker.log_tail(40)))?;
    let status = rig.wait_settled(Duration::from_secs(10)).await?;
    let attempts = rig.attempts_of(id);
    assert_eq!(attempts.len(), 2, "{}", rig.tiktok.summary());
    assert_eq!(attempts[0].answer, MockResponse::Hang);
    assert!(attempts[1].answer.is_success());
    let g = gaps(&attempts)[0];
    eprintln!("[timeout] second attempt {} ms after the first", ms(g));
    assert!(
        g >= Duration::from_millis(1_400) && g < Duration::from_secs(5),
        "time-out 1,000 ms + backoff 500 ms, got {g:?}"
    );
    assert_eq!(rig.accepted_copies(id), 1);
    assert_eq!(status["parked"], 0, "{status:#}");
    assert_eq!(counter(&status, "retried"), 1, "{status:#}");
    assert_eq!(counter(&status, "delivered"), 1, "{status:#}");
    let calls = status["recent_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let timed_out = calls
        .iter()
        .find(|c| c["verdict"] == "retry")
        .context("no retry call recorded")?;
    eprintln!("[timeout] recorded call: {timed_out}");
    assert_eq!(timed_out["http_status"], 0, "{timed_out}");
    assert!(
        timed_out["latency_ms"]
            .as_i64()
            .is_some_and(|l| (900..5_000).contains(&l)),
        "{timed_out}"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.tiktok.requests().len(), 2, "{}", rig.tiktok.summary());
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: with `RATE_LIMIT_PER_MINUTE=5` the mock never sees more than 5 requests in any
/// 60-second window, and every event still arrives. Eight events are posted one at a time,
/// each after the previous one's request reached the mock, so eight requests are needed: the
/// sixth must wait until the first leaves the window.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_keeps_every_60_s_window_within_the_limit() -> anyhow::Result<()> {
    const LIMIT: usize = 5;
    const N: usize = 8;
    let rig = Rig::start("rate", &[("RATE_LIMIT_PER_MINUTE", "5")]).await?;
    let ids: Vec<String> = (1..=N).map(|i| format!("dlv-rate-{i}")).collect();
    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        rig.collect_one(id).await?;
        if i == LIMIT {
            // The window is full: the sixth event waits queued.
            let status = rig.status().await?;
            eprintln!(
                "[rate] after posting event 6: queued {}, rate_window {}",
                status["queued"], status["rate_window"]
            );
            assert_eq!(status["queued"], 1, "{status:#}");
            assert_eq!(status["rate_window"]["used"], LIMIT, "{status:#}");
            assert_eq!(status["rate_window"]["limit"], LIMIT, "{status:#}");
        }
        rig.tiktok
            .wait_for_requests(i + 1, Duration::from_secs(90))
            .await?;
        eprintln!(
            "[rate] request {} arrived at +{} ms",
            i + 1,
            ms(started.elapsed())
        );
    }
    let status = rig.wait_settled(Duration::from_secs(10)).await?;
    let requests = rig.tiktok.requests();
    assert_eq!(requests.len(), N, "{}", rig.tiktok.summary());
    for (req, id) in requests.iter().zip(&ids) {
        assert_eq!(
            req.event_ids(),
            std::slice::from_ref(id),
            "one event per request, in order"
        );
        assert!(req.answer.is_success());
    }
    for id in &ids {
        assert_eq!(rig.accepted_copies(id), 1, "{id}");
    }

    // Every sliding 60 s window, from each request's arrival, holds at most LIMIT requests.
    let window = Duration::from_secs(60);
    let first = requests[0].received_at;
    let offsets: Vec<u128> = requests
        .iter()
        .map(|r| ms(r.received_at.duration_since(first)))
        .collect();
    eprintln!("[rate] arrival offsets (ms): {offsets:?}");
    let epoch: Vec<u64> = requests.iter().map(|r| r.received_at_ms).collect();
    eprintln!("[rate] arrival epoch ms: {epoch:?}");
    // The Dispatcher's own view: when each call started (at_ms - latency_ms, its clock).
    let mut calls = status["recent_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    calls.reverse();
    let call_starts: Vec<i64> = calls
        .iter()
        .map(|c| c["at_ms"].as_f64().unwrap_or(0.0) as i64 - c["latency_ms"].as_i64().unwrap_or(0))
        .collect();
    eprintln!("[rate] Dispatcher call starts (epoch ms): {call_starts:?}");
    eprintln!(
        "[rate] mock arrival minus call start (ms): {:?}",
        epoch
            .iter()
            .zip(&call_starts)
            .map(|(a, s)| *a as i64 - s)
            .collect::<Vec<_>>()
    );
    // The (k+5)-th request waits for the k-th to leave the window: by how much (µs)?
    let margins_us: Vec<i128> = (LIMIT..N)
        .map(|k| {
            requests[k]
                .received_at
                .duration_since(requests[k - LIMIT].received_at)
                .as_micros() as i128
                - 60_000_000
        })
        .collect();
    eprintln!(
        "[rate] arrival of request k+5 minus (arrival of request k + 60 s), µs: {margins_us:?}"
    );
    for (i, start) in requests.iter().enumerate() {
        let in_window = requests[i..]
            .iter()
            .take_while(|r| r.received_at.duration_since(start.received_at) < window)
            .count();
        assert!(
            in_window <= LIMIT,
            "{in_window} requests within 60 s from request {} (offsets {offsets:?} ms)",
            i + 1
        );
        let in_window_ms = epoch[i..]
            .iter()
            .take_while(|&&t| t < epoch[i] + 60_000)
            .count();
        assert!(
            in_window_ms <= LIMIT,
            "{in_window_ms} requests within 60,000 ms (epoch) from request {}: {epoch:?}",
            i + 1
        );
    }
    assert!(
        requests[LIMIT].received_at.duration_since(first) >= window,
        "the 6th request came {} ms after the first",
        offsets[LIMIT]
    );
    assert_eq!(counter(&status, "requests"), N as i64, "{status:#}");
    assert_eq!(counter(&status, "delivered"), N as i64, "{status:#}");
    assert_eq!(status["parked"], 0, "{status:#}");
    assert!(status["rate_window"]["used"].as_u64().unwrap_or(99) <= LIMIT as u64);
    rig.assert_track_requests();
    Ok(())
}

/// Issue 3: durability. Events are queued while TikTok is unreachable (connection refused),
/// `wrangler dev` is killed (SIGKILL) before their retries are used up, TikTok comes back and
/// the Worker restarts on the same persist directory: every event is delivered, none twice,
/// nothing parked.
#[tokio::test(flavor = "multi_thread")]
async fn events_queued_before_a_crash_are_delivered_once_after_restart() -> anyhow::Result<()> {
    const N: usize = 10;
    let mut rig = Rig::start("crash", &[]).await?;
    rig.tiktok.stop().await;
    let ids: Vec<String> = (1..=N).map(|i| format!("dlv-crash-{i:02}")).collect();

    let posting = Instant::now();
    for id in &ids {
        rig.collect_one(id).await?;
    }
    let posted = posting.elapsed();
    // Kill in the middle of the retries: after every event's first attempt failed
    // (connection refused) and its retry was scheduled, long before the fourth attempt
    // (about 3.7 s after the intake) would park it.
    let before_kill = rig
        .wait_status("a failed first attempt", Duration::from_secs(3), |s| {
            counter(s, "retried") >= N as i64
        })
        .await?;
    let status_at = posting.elapsed();
    tokio::task::block_in_place(|| rig.worker.kill());
    let killed_at = posting.elapsed();
    eprintln!(
        "[crash] {N} events posted (202) in {} ms; status at +{} ms: queued {}, parked {}, counters {}; killed at +{} ms",
        ms(posted),
        ms(status_at),
        before_kill["queued"],
        before_kill["parked"],
        before_kill["counters"],
        ms(killed_at)
    );
    // Preconditions of the scenario, not of the Worker: every event was still queued, and
    // TikTok was unreachable (nothing reached the mock).
    assert_eq!(before_kill["queued"], N, "{before_kill:#}");
    assert_eq!(before_kill["parked"], 0, "{before_kill:#}");
    assert!(rig.tiktok.requests().is_empty());

    rig.tiktok.start().await?;
    let restarting = Instant::now();
    rig.worker.restart().await?;
    eprintln!(
        "[crash] restarted in {:.1?} (log {})",
        rig.worker.startup_time(),
        rig.worker.log_path().display()
    );

    let healthz = format!("{}/healthz", rig.worker.base_url());
    let client = rig.client.clone();
    let tiktok = &rig.tiktok;
    let ids_ref = &ids;
    let mut polls = 0u32;
    let result = poll("every event accepted", Duration::from_secs(120), || {
        polls += 1;
        let client = client.clone();
        let healthz = healthz.clone();
        async move {
            // /healthz wakes the Dispatcher (re-arms an alarm lost in the crash).
            let _ = client.get(&healthz).send().await;
            let accepted = tiktok.accepted_events();
            let all = ids_ref
                .iter()
                .all(|id| accepted.iter().any(|e| e.event_id() == Some(id.as_str())));
            Ok(all.then_some(()))
        }
    })
    .await;
    if let Err(e) = result {
        bail!(
            "{e}\nmock: {}\nstatus: {:#}\nlog tail:\n{}",
            rig.tiktok.summary(),
            rig.status().await.unwrap_or_default(),
            rig.worker.log_tail(60)
        );
    }
    let delivered_after = restarting.elapsed();
    eprintln!(
        "[crash] all {N} accepted {} ms after the restart began ({polls} /healthz polls); mock: {}",
        ms(delivered_after),
        rig.tiktok.summary()
    );

    let status = rig.wait_settled(Duration::from_secs(10)).await?;
    // Idempotency: nothing more is sent afterwards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for e in rig.tiktok.accepted_events() {
        *copies
            .entry(e.event_id().unwrap_or("(none)").to_owned())
            .or_default() += 1;
    }
    eprintln!("[crash] accepted copies per event_id: {copies:?}");
    for id in &ids {
        assert_eq!(
            copies.get(id).copied().unwrap_or(0),
            1,
            "{id} accepted copies: {}",
            rig.tiktok.summary()
        );
    }
    assert_eq!(
        rig.tiktok.accepted_events().len(),
        N,
        "no other event arrived: {}",
        rig.tiktok.summary()
    );
    let status_now = rig.status().await?;
    eprintln!("[crash] final status: {status_now:#}");
    assert_eq!(status["queued"], 0, "{status:#}");
    assert_eq!(status_now["parked"], 0, "{status_now:#}");
    assert_eq!(counter(&status_now, "received"), N as i64, "{status_now:#}");
    assert_eq!(
        counter(&status_now, "delivered"),
        N as i64,
        "{status_now:#}"
    );
    assert_eq!(counter(&status_now, "parked"), 0, "{status_now:#}");
    rig.assert_track_requests();
    Ok(())
}
