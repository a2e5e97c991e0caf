//! The Dispatcher's storage bill (issue 11, "A smaller storage bill"), end to end: rows
//! written per event as the object counts them (`SqlCursor::rows_written` plus one per alarm
//! set, as Cloudflare bills), with group commit under concurrent collects, a quiet site's
//! cost per event, and wake-ups that write nothing when there is nothing to do. Every event
//! still reaches TikTok exactly once, and a resent event_id is still a duplicate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use ttedge_e2e::clock::clear_of_generation_turn;
use ttedge_e2e::Site;

const ADMIN_TOKEN: &str = "e2e-storage-admin-token-7c1e";

async fn start(name: &str) -> anyhow::Result<Site> {
    Site::start(
        &format!("e2e-storage-{name}-token-0123456789"),
        "C4STORAGE00000000000",
        ADMIN_TOKEN,
        &[],
    )
    .await
}

fn event(id: &str) -> Value {
    json!({
        "event": "purchase",
        "event_id": id,
        "user_data": {"email": "buyer@example.com"},
        "properties": {"value": 10, "currency": "usd"},
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"},
    })
}

/// How many times TikTok received each event id.
fn deliveries(site: &Site) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for request in site.tiktok.requests() {
        for id in request.event_ids() {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_single_event_collects_cost_under_two_rows_each() -> anyhow::Result<()> {
    let site = start("busy").await?;
    const EVENTS: usize = 240;
    const CLIENTS: usize = 8;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let http = site.client.clone();
        let url = format!("{}/collect", site.worker.base_url());
        clients.spawn(async move {
            let mut answers = Vec::new();
            for n in (client..EVENTS).step_by(CLIENTS) {
                let body = event(&format!("busy-{n}")).to_string();
                let resp = http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                answers.push((resp.status().as_u16(), resp.text().await?));
            }
            anyhow::Ok(answers)
        });
    }
    while let Some(answers) = clients.join_next().await {
        for (status, body) in answers?? {
            assert_eq!(status, 202, "{body}");
            assert!(body.contains("\"ready\""), "{body}");
        }
    }
    let state = site.drained(EVENTS as u64).await?;
    let rows = Site::rows_written(&state)?;
    let per_event = rows as f64 / EVENTS as f64;
    eprintln!("{rows} rows written for {EVENTS} events: {per_event:.3} per event");
    assert!(per_event <= 2.0, "{per_event:.3} rows per event: {state:#}");

    let seen = deliveries(&site);
    assert_eq!(seen.len(), EVENTS, "every event reached TikTok");
    assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");

    // A resent id is still a duplicate.
    let answer = site.collect(&event("busy-7")).await?;
    assert_eq!(answer["events"][0]["status"], "duplicate", "{answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_from_many_clients_at_once_is_stored_and_sent_once() -> anyhow::Result<()> {
    let site = start("crowd").await?;
    // The crowd comes at once, so most of it is grouped; grouped or not, one copy is stored.
    site.collect(&event("crowd-warm-up")).await?;
    let mut crowd = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let http = site.client.clone();
        let url = format!("{}/collect", site.worker.base_url());
        crowd.spawn(async move {
            let resp = http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(json!({"batch": [event("crowd-same"), event("crowd-same")]}).to_string())
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 202, "{}", resp.text().await?);
            let answer: Value = resp.json().await?;
            let statuses: Vec<String> = answer["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["status"].as_str().unwrap_or_default().to_string())
                .collect();
            anyhow::Ok(statuses)
        });
    }
    let mut statuses = Vec::new();
    while let Some(answer) = crowd.join_next().await {
        statuses.extend(answer??);
    }
    let ready = statuses.iter().filter(|s| *s == "ready").count();
    let duplicate = statuses.iter().filter(|s| *s == "duplicate").count();
    assert_eq!((ready, duplicate), (1, 23), "{statuses:?}");
    site.drained(2).await?;
    assert_eq!(deliveries(&site).get("crowd-same"), Some(&1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_site_pays_four_rows_an_event_and_idle_wakes_write_nothing() -> anyhow::Result<()> {
    let site = start("quiet").await?;
    clear_of_generation_turn(Duration::from_secs(45)).await;
    site.collect(&event("quiet-0")).await?;
    let mut before = Site::rows_written(&site.drained(1).await?)?;
    for n in 1..=3u64 {
        // Past the grouping gap, so each event comes to a quiet object.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        site.collect(&event(&format!("quiet-{n}"))).await?;
        let after = Site::rows_written(&site.drained(n + 1).await?)?;
        // Its key, its intake row, the alarm that sends it, and the state row after.
        assert_eq!(after - before, 4, "event {n} wrote {} rows", after - before);
        before = after;
    }

    // With nothing queued, /healthz wakes the object without setting an alarm or writing.
    for _ in 0..5 {
        let resp = site
            .client
            .get(format!("{}/healthz", site.worker.base_url()))
            .send()
            .await?;
        assert_eq!(resp.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = site.admin_get("/admin/api/status").await?;
    assert_eq!(
        Site::rows_written(&state)?,
        before,
        "idle wakes wrote rows: {state:#}"
    );
    assert_eq!(
        state["alarm_at"],
        Value::Null,
        "no alarm for nothing: {state:#}"
    );
    Ok(())
}
