//! Delivery health end to end (issue 4, "Delivery health"): `GET /admin/api/health` after a
//! known mix of events must report exactly what the loopback mock of TikTok saw.
//!
//! The mix, posted in three requests so that each goes to TikTok in its own call:
//!
//! 1. one batch: four ready events (three conversions, whose pages reported the pixel
//!    `blocked`, `absent` and `loaded`, and a `ViewContent`), one held back by consent and
//!    one skipped (`identify`): one call, answered with success;
//! 2. one conversion the mock answers with 40001: parked at once, with TikTok's hint;
//! 3. one conversion (pixel `blocked`) answered 503 once, then success: one retry.
//!
//! Every mock answer is delayed by 30 ms, so every latency percentile is at least that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use ttedge_e2e::{MockResponse, Site};

const ADMIN_TOKEN: &str = "e2e-health-admin-7c1e";
const PIXEL_ID: &str = "C4HEALTH00000000000";
const DELAY: Duration = Duration::from_millis(30);
const PARKED_ID: &str = "hl-parked";
const RETRY_ID: &str = "hl-retry";

struct Rig(Site);

impl std::ops::Deref for Rig {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.0
    }
}

impl Rig {
    async fn start() -> anyhow::Result<Rig> {
        let site = Site::start("e2e-health-token-0123456789", PIXEL_ID, ADMIN_TOKEN, &[]).await?;
        Ok(Rig(site))
    }

    /// `GET /admin/api/health` with `token`; returns the status only.
    async fn get_health(&self, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::GET, "/admin/api/health", token, None)
            .await
    }

    async fn health(&self) -> anyhow::Result<Value> {
        self.admin_get("/admin/api/health").await
    }

    /// Polls the health until `done` holds.
    async fn wait_health(
        &self,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_admin("/admin/api/health", "the expected figures", timeout, done)
            .await
    }
}

/// An event with `name`, `id`, the page's pixel status and some personal data (so that
/// scores differ).
fn event(name: &str, id: &str, pixel: &str, user: Value) -> Value {
    json!({
        "event": name,
        "event_id": id,
        "url": "https://shop.example/checkout",
        "user_data": user,
        "properties": {"value": 42.5, "currency": "usd",
                       "items": [{"product_id": "sku-1", "quantity": 1, "price": 42.5}]},
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"},
        "context": {"pixel": pixel}
    })
}

/// The scores of the events that have one in a 202 answer.
fn scores(answer: &Value) -> Vec<(f64, bool)> {
    answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| !e["emq"].is_null())
        .map(|e| {
            (
                e["emq"]["score"].as_f64().unwrap(),
                e["emq"]["grade"] == "needs_improvement",
            )
        })
        .collect()
}

fn statuses(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_matches_what_the_mock_saw() -> anyhow::Result<()> {
    let rig = Rig::start().await?;

    // Refusals first: the health is behind the admin token.
    assert_eq!(rig.get_health(None).await?.0, 401);
    assert_eq!(rig.get_health(Some("wrong-token")).await?.0, 401);

    // Nothing yet: zeros, and nulls where a figure has no meaning.
    let empty = rig.health().await?;
    let week = &empty["windows"]["last_7d"];
    assert_eq!(week["received"], 0, "{empty:#}");
    assert!(week["success_rate"].is_null(), "{empty:#}");
    assert!(week["error_rate"].is_null(), "{empty:#}");
    assert!(week["p50"].is_null(), "{empty:#}");
    assert!(empty["emq"]["mean"].is_null(), "{empty:#}");
    assert_eq!(empty["recovery"]["conversions_delivered"], 0, "{empty:#}");

    // 40001 for the batch holding PARKED_ID; 503 for the first call holding RETRY_ID.
    let retry_calls = Arc::new(AtomicUsize::new(0));
    let seen = retry_calls.clone();
    rig.tiktok.respond_with(move |req| {
        let ids = req.event_ids();
        let answer = if ids.iter().any(|id| id == PARKED_ID) {
            MockResponse::tiktok(40001, "No permission to operate (mock)")
        } else if ids.iter().any(|id| id == RETRY_ID) && seen.fetch_add(1, Ordering::SeqCst) == 0 {
            MockResponse::failure(503)
        } else {
            MockResponse::ok()
        };
        Some(answer.with_delay(DELAY))
    });

    let full = json!({"email": "a@example.com", "phone": "+1 555 123 4567", "external_id": "c-1"});
    let email_only = json!({"email": "b@example.com"});
    let nobody = json!({});
    let mut held = event("purchase", "hl-held", "loaded", full.clone());
    held["consent"]["sendable_to_ads"] = json!(false);
    let batch = json!({"batch": [
        event("purchase", "hl-conv-blocked", "blocked", full.clone()),
        event("place_order", "hl-conv-absent", "absent", email_only.clone()),
        event("purchase", "hl-conv-loaded", "loaded", nobody.clone()),
        event("view_item", "hl-view", "blocked", full.clone()),
        held,
        {"event": "identify", "event_id": "hl-skip"},
    ]});
    let mut answers = vec![rig.collect(&batch).await?];
    assert_eq!(
        statuses(&answers[0]),
        ["ready", "ready", "ready", "ready", "held", "skipped"],
        "{:#}",
        answers[0]
    );
    rig.tiktok
        .wait_for_requests(1, Duration::from_secs(20))
        .await?;

    answers.push(
        rig.collect(&event("purchase", PARKED_ID, "blocked", email_only.clone()))
            .await?,
    );
    rig.tiktok
        .wait_for_requests(2, Duration::from_secs(20))
        .await?;

    answers.push(
        rig.collect(&event(
            "complete_payment",
            RETRY_ID,
            "blocked",
            full.clone(),
        ))
        .await?,
    );
    rig.tiktok
        .wait_for_requests(4, Duration::from_secs(20))
        .await?;

    let health = rig
        .wait_health(Duration::from_secs(20), |h| {
            let w = &h["windows"]["last_hour"];
            w["delivered"] == 5 && w["parked"] == 1 && h["current"]["queue_depth"] == 0
        })
        .await?;
    eprintln!("[health] {health:#}");

    // What the mock saw.
    let requests = rig.tiktok.requests();
    let accepted = rig.tiktok.accepted_events();
    let refused_40001: usize = requests
        .iter()
        .filter(|r| r.event_ids().iter().any(|id| id == PARKED_ID))
        .map(|r| r.data().len())
        .sum();
    let failed_calls = requests.iter().filter(|r| !r.answer.is_success()).count();
    assert_eq!(requests.len(), 4, "{}", rig.tiktok.summary());
    assert_eq!(accepted.len(), 5, "{}", rig.tiktok.summary());
    assert_eq!(refused_40001, 1);
    assert_eq!(failed_calls, 2);
    let conversions: Vec<&str> = accepted
        .iter()
        .filter(|e| {
            matches!(
                e.event_name(),
                Some("CompletePayment" | "PlaceAnOrder" | "Purchase")
            )
        })
        .filter_map(|e| e.event_id())
        .collect();
    assert_eq!(conversions.len(), 4, "{conversions:?}");

    // Every event landed in this hour: the three windows agree.
    for name in ["last_hour", "last_24h", "last_7d"] {
        let w = &health["windows"][name];
        let n = |field: &str| w[field].as_u64().unwrap_or(u64::MAX);
        assert_eq!(n("received"), 6, "{name}: {w:#}");
        assert_eq!(n("delivered"), accepted.len() as u64, "{name}: {w:#}");
        assert_eq!(n("parked"), refused_40001 as u64, "{name}: {w:#}");
        assert_eq!(n("retried"), 1, "{name}: {w:#}");
        assert_eq!(n("held"), 1, "{name}: {w:#}");
        assert_eq!(n("skipped"), 1, "{name}: {w:#}");
        assert_eq!(n("rejected"), 0, "{name}: {w:#}");
        assert_eq!(n("requests"), requests.len() as u64, "{name}: {w:#}");
        assert_eq!(n("calls"), requests.len() as u64, "{name}: {w:#}");
        assert_eq!(n("failed_calls"), failed_calls as u64, "{name}: {w:#}");
        assert_eq!(w["success_rate"].as_f64(), Some(5.0 / 6.0), "{name}");
        assert_eq!(w["error_rate"].as_f64(), Some(0.5), "{name}");
        let (p50, p95, p99) = (
            w["p50"].as_u64().context("p50")?,
            w["p95"].as_u64().context("p95")?,
            w["p99"].as_u64().context("p99")?,
        );
        assert!(p50 >= DELAY.as_millis() as u64, "{name}: p50 {p50}");
        assert!(p50 <= p95 && p95 <= p99, "{name}: {p50} {p95} {p99}");
        assert!(p99 <= w["max"].as_u64().context("max")?, "{name}");
    }

    // Current state: the two failed calls, newest first; nothing queued.
    let current = &health["current"];
    let errors = current["last_errors"].as_array().context("last_errors")?;
    assert_eq!(errors.len(), 2, "{current:#}");
    assert_eq!(errors[0]["verdict"], "retry", "{current:#}");
    assert_eq!(errors[0]["http_status"], 503, "{current:#}");
    assert_eq!(errors[1]["verdict"], "reject", "{current:#}");
    assert_eq!(errors[1]["tiktok_code"], 40001, "{current:#}");
    assert_eq!(errors[1]["http_status"], 200, "{current:#}");
    assert_eq!(
        errors[1]["message"], "No permission to operate (mock)",
        "{current:#}"
    );
    assert!(
        errors[1]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("regenerate the access token")),
        "{current:#}"
    );
    let at = errors[1]["at_ms"].as_u64().context("at_ms")?;
    assert!(
        at >= requests[1].received_at_ms.saturating_sub(5_000),
        "{at}"
    );
    assert_eq!(current["queue_depth"], 0);
    assert_eq!(current["parked"], 1);
    assert!(current["oldest_queued_age_ms"].is_null(), "{current:#}");
    assert_eq!(current["rate_window"]["used"], 4, "{current:#}");
    assert_eq!(current["rate_window"]["limit"], 1000, "{current:#}");

    // Match quality: the mean of the scores the 202 answers reported (ready and held).
    let scored: Vec<(f64, bool)> = answers.iter().flat_map(scores).collect();
    assert_eq!(scored.len(), 7, "{answers:#?}");
    let emq = &health["emq"];
    let mean = scored.iter().map(|(s, _)| s).sum::<f64>() / scored.len() as f64;
    let got = emq["mean"].as_f64().context("emq mean")?;
    assert!((got - mean).abs() < 1e-9, "emq mean {got}, answers {mean}");
    assert_eq!(emq["events"], 7);
    let mut bins = [0u64; 10];
    for (score, _) in &scored {
        bins[((*score / 10.0) as usize).min(9)] += 1;
    }
    assert_eq!(emq["histogram"], json!(bins), "{emq:#}");
    let below = scored.iter().filter(|(_, below)| *below).count();
    assert_eq!(
        emq["below_threshold_share"].as_f64(),
        Some(below as f64 / 7.0),
        "{emq:#}"
    );
    let missing = emq["most_missing"].as_array().context("most_missing")?;
    assert!(!missing.is_empty(), "{emq:#}");
    for m in missing {
        assert!(
            m["factor"].is_string() && m["events"].as_u64() > Some(0),
            "{m}"
        );
        assert!(m["share"].as_f64().is_some() && m["mean_gain"].as_f64() > Some(0.0));
    }

    // Recovery: delivered conversions, and those the pixel could not see (blocked/absent).
    // The parked conversion does not count.
    let recovery = &health["recovery"];
    assert_eq!(recovery["conversions_delivered"], 4, "{recovery:#}");
    assert_eq!(recovery["unseen_by_pixel"], 3, "{recovery:#}");
    assert_eq!(recovery["unseen_share"].as_f64(), Some(0.75));
    Ok(())
}
