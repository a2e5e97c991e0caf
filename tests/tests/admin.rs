//! The admin API's connection test, parked listing and replay, end to end (issue 4, "Admin
//! API"), against `wrangler dev` and the loopback mock of TikTok.
//!
//! The routes live under `/admin/api/destinations/{host}/...`; until multi-site
//! destinations exist every valid host resolves to the single default destination from the
//! vars, so the tests use the site host `t.shop.example`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use ttedge_e2e::{MockTikTok, Site};

const ADMIN_TOKEN: &str = "e2e-admin-api-token-5b2f";
const PIXEL_ID: &str = "C4ADMIN0000000000000";
const HOST: &str = "t.shop.example";

struct Rig(Site);

impl std::ops::Deref for Rig {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.0
    }
}

impl Rig {
    async fn start(name: &str, extra: &[(&str, &str)]) -> anyhow::Result<Rig> {
        let token = format!("e2e-admin-{name}-token-0123456789");
        Ok(Rig(Site::start(&token, PIXEL_ID, ADMIN_TOKEN, extra).await?))
    }

    /// The path of a destination route of `HOST`.
    fn url(&self, path: &str) -> String {
        format!("/admin/api/destinations/{HOST}{path}")
    }

    /// An admin request to a destination route of `HOST`.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        self.0.admin(method, &self.url(path), body).await
    }

    async fn connection_test(&self) -> anyhow::Result<Value> {
        let (status, body) = self.admin(reqwest::Method::POST, "/test", None).await?;
        if status != 200 {
            bail!("POST /test answered {status}: {body}");
        }
        Ok(body)
    }

    async fn parked(&self, query: &str) -> anyhow::Result<Value> {
        self.admin_get(&self.url(&format!("/parked{query}"))).await
    }

    async fn replay(&self, body: &Value) -> anyhow::Result<Value> {
        let (status, answer) = self
            .admin(
                reqwest::Method::POST,
                "/parked/replay",
                Some(&body.to_string()),
            )
            .await?;
        if status != 200 {
            bail!("POST /parked/replay answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// Polls the parked list until it holds `total` events.
    async fn wait_parked(&self, total: u64) -> anyhow::Result<Value> {
        let what = format!("{total} parked");
        self.wait_admin(
            &self.url("/parked"),
            &what,
            Duration::from_secs(30),
            |list| list["total"] == json!(total),
        )
        .await
    }

    async fn health(&self) -> anyhow::Result<Value> {
        self.admin_get(&self.url("/health")).await
    }
}

fn purchase(id: &str) -> Value {
    json!({
        "event": "purchase",
        "event_id": id,
        "url": "https://shop.example/thanks",
        "user_data": {"email": "buyer@example.com"},
        "properties": {"value": 10, "currency": "USD"},
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"}
    })
}

/// How often the mock saw each event id (every attempt).
fn seen(tiktok: &MockTikTok) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in tiktok.events() {
        *counts
            .entry(event.event_id().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn connection_test_succeeds_and_admin_refuses_strangers() -> anyhow::Result<()> {
    let rig = Rig::start("test-ok", &[("TIKTOK_TEST_EVENT_CODE", "TEST98765")]).await?;

    let answer = rig.connection_test().await?;
    assert_eq!(answer["ok"], json!(true), "{answer:#}");
    assert_eq!(answer["message"], json!("Connection test successful!"));
    assert_eq!(answer["http_status"], json!(200));
    assert_eq!(answer["tiktok_code"], json!(0));
    assert!(answer["latency_ms"].as_u64().is_some(), "{answer:#}");
    assert_eq!(answer["hint"], Value::Null);
    let emq = &answer["emq"];
    assert_eq!(emq["grade"], json!("needs_improvement"), "{emq:#}");
    assert!(emq["score"].as_f64().unwrap() < 70.0, "{emq:#}");
    let coached: Vec<&str> = emq["coaching"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["factor"].as_str())
        .collect();
    assert!(coached.contains(&"email"), "{emq:#}");

    // Exactly one request, with the test code and the test ViewContent, no PII.
    rig.tiktok
        .wait_for_requests(1, Duration::from_secs(5))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = rig.tiktok.requests();
    assert_eq!(requests.len(), 1, "{}", rig.tiktok.summary());
    let req = &requests[0];
    assert_eq!(req.field("test_event_code"), Some("TEST98765"));
    assert_eq!(req.field("event_source_id"), Some(PIXEL_ID));
    assert_eq!(req.data().len(), 1);
    let event = &req.data()[0];
    assert_eq!(event["event"], json!("ViewContent"));
    let id = event["event_id"].as_str().unwrap();
    assert!(id.starts_with("ttedge-test-"), "{id}");
    assert_eq!(answer["event_id"], json!(id));
    assert_eq!(
        event["page"]["url"],
        json!(format!("https://{HOST}/ttedge-connection-test"))
    );
    assert!(event["user"].get("email").is_none(), "{event}");

    // Not a shop event: not received, sent or delivered, not queued; but a call, within
    // the token's rate window.
    let health = rig.health().await?;
    let hour = &health["windows"]["last_hour"];
    for metric in ["received", "delivered", "parked", "retried"] {
        assert_eq!(hour[metric], json!(0), "{metric}: {hour:#}");
    }
    assert_eq!(hour["calls"], json!(1), "{hour:#}");
    assert_eq!(hour["failed_calls"], json!(0), "{hour:#}");
    assert!(hour["p50"].as_u64().is_some(), "latency recorded: {hour:#}");
    assert_eq!(health["current"]["queue_depth"], json!(0));
    assert!(health["current"]["rate_window"]["used"].as_u64().unwrap() >= 1);
    // The per-destination route is an alias of `/admin/api/health`.
    let legacy = rig.admin_get("/admin/api/health").await?;
    assert_eq!(legacy["windows"], health["windows"]);

    // Refusals: no token, wrong token, on every new route.
    for (method, path, body) in [
        (reqwest::Method::POST, "/test", None),
        (reqwest::Method::GET, "/parked", None),
        (reqwest::Method::POST, "/parked/replay", Some("{}")),
        (reqwest::Method::GET, "/health", None),
    ] {
        for token in [None, Some("wrong-token")] {
            let (status, answer) = rig
                .send(method.clone(), &rig.url(path), token, body)
                .await?;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
            assert_eq!(answer["error"]["code"], json!("unauthorized"));
        }
    }
    // Validation: a host that is not one, a wrong method, an unknown action.
    let (status, answer) = rig
        .send(
            reqwest::Method::POST,
            "/admin/api/destinations/bad_host!/test",
            Some(ADMIN_TOKEN),
            None,
        )
        .await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["path"], json!("host"));
    let (status, _) = rig.admin(reqwest::Method::GET, "/test", None).await?;
    assert_eq!(status, 405);
    let (status, _) = rig.admin(reqwest::Method::GET, "/nothing", None).await?;
    assert_eq!(status, 404);
    assert_eq!(rig.tiktok.requests().len(), 1, "refusals sent nothing");
    Ok(())
}

#[tokio::test]
async fn connection_test_failures_carry_tiktok_code_and_hint() -> anyhow::Result<()> {
    // Two requests a minute: the third test must wait for the rate window.
    let rig = Rig::start("test-fail", &[("RATE_LIMIT_PER_MINUTE", "2")]).await?;

    rig.tiktok
        .reject_next_n(1, 40001, "No permission to operate");
    let answer = rig.connection_test().await?;
    assert_eq!(answer["ok"], json!(false), "{answer:#}");
    assert_eq!(answer["tiktok_code"], json!(40001));
    assert_eq!(answer["http_status"], json!(200));
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("40001"), "{message}");
    assert!(message.contains("No permission to operate"), "{message}");
    assert!(
        answer["hint"].as_str().unwrap().contains("regenerate"),
        "{answer:#}"
    );
    assert_eq!(answer["emq"]["grade"], json!("needs_improvement"));

    rig.tiktok.fail_next_n(1, 503);
    let answer = rig.connection_test().await?;
    assert_eq!(answer["ok"], json!(false), "{answer:#}");
    assert_eq!(answer["http_status"], json!(503));
    assert!(answer["hint"].as_str().is_some(), "{answer:#}");

    // Not queued, so never retried.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rig.tiktok.requests().len(), 2, "{}", rig.tiktok.summary());
    let health = rig.health().await?;
    assert_eq!(health["current"]["queue_depth"], json!(0));
    assert_eq!(health["current"]["parked"], json!(0));
    let errors = health["current"]["last_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "both calls are recorded: {health:#}");
    assert_eq!(health["current"]["rate_window"]["used"], json!(2));

    // The window is full: 429 with when to try again, and nothing sent.
    let (status, answer) = rig.admin(reqwest::Method::POST, "/test", None).await?;
    assert_eq!(status, 429, "{answer:#}");
    assert_eq!(answer["error"]["code"], json!("rate_limited"));
    let wait = answer["retry_after_ms"]
        .as_u64()
        .context("retry_after_ms")?;
    assert!(wait > 0 && wait <= 60_000, "{wait}");
    assert_eq!(rig.tiktok.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn parked_events_are_paged_and_replayed_once() -> anyhow::Result<()> {
    let rig = Rig::start("parked", &[]).await?;
    let ids = ["pk-1", "pk-2", "pk-3"];

    // One batch, refused with 40001: all three parked at once.
    rig.tiktok
        .reject_next_n(1, 40001, "No permission to operate");
    rig.collect(&json!({"batch": ids.iter().map(|id| purchase(id)).collect::<Vec<_>>()}))
        .await?;
    rig.wait_parked(3).await?;

    let first = rig.parked("?limit=2").await?;
    assert_eq!(first["total"], json!(3), "{first:#}");
    let events = first["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{first:#}");
    assert_eq!(events[0]["event_id"], json!("pk-1"));
    assert_eq!(events[1]["event_id"], json!("pk-2"));
    let row = &events[0];
    assert_eq!(row["event_name"], json!("CompletePayment"));
    assert_eq!(row["tiktok_code"], json!(40001));
    assert_eq!(row["http_status"], json!(200));
    assert_eq!(row["attempts"], json!(1));
    assert_eq!(row["message"], json!("No permission to operate"));
    assert!(row["hint"].as_str().unwrap().contains("regenerate"));
    assert!(row["parked_at_ms"].as_f64().unwrap() > 0.0);
    assert!(row["seq"].as_u64().is_some());
    assert!(row.get("element").is_none(), "never the element: {row}");
    assert!(!first.to_string().contains("buyer@"), "no PII");
    let next = first["next_after"].as_u64().context("next_after")?;
    assert_eq!(next, events[1]["seq"].as_u64().unwrap());

    let rest = rig.parked(&format!("?limit=2&after={next}")).await?;
    let events = rest["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{rest:#}");
    assert_eq!(events[0]["event_id"], json!("pk-3"));
    assert_eq!(rest["next_after"], Value::Null);

    // Paging validation names the field.
    for (query, path) in [
        ("?limit=0", "limit"),
        ("?limit=x", "limit"),
        ("?after=-1", "after"),
    ] {
        let (status, answer) = rig
            .admin(reqwest::Method::GET, &format!("/parked{query}"), None)
            .await?;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["path"], json!(path), "{query}");
    }

    // Replay two listed ids and an unknown one.
    let answer = rig
        .replay(&json!({"event_ids": ["pk-1", "pk-2", "nope"]}))
        .await?;
    assert_eq!(answer, json!({"replayed": 2, "not_found": ["nope"]}));
    rig.tiktok
        .wait_for_events(3 + 2, Duration::from_secs(20))
        .await?;
    let left = rig.wait_parked(1).await?;
    assert_eq!(left["events"][0]["event_id"], json!("pk-3"));

    // Replay all.
    let answer = rig.replay(&json!({})).await?;
    assert_eq!(answer, json!({"replayed": 1, "not_found": []}));
    rig.tiktok
        .wait_for_events(3 + 3, Duration::from_secs(20))
        .await?;
    let empty = rig.wait_parked(0).await?;
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["next_after"], Value::Null);

    // Each replayed event reached TikTok exactly once more (after its parked attempt), and
    // nothing was sent twice.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let counts = seen(&rig.tiktok);
    for id in ids {
        assert_eq!(counts.get(id), Some(&2), "{id}: {counts:?}");
    }
    let accepted: Vec<String> = rig
        .tiktok
        .accepted_events()
        .iter()
        .filter_map(|e| e.event_id().map(str::to_string))
        .collect();
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    let status = rig.health().await?;
    assert_eq!(status["current"]["queue_depth"], json!(0));

    // Nothing left: a replay finds nothing.
    let answer = rig.replay(&json!({"event_ids": ["pk-1"]})).await?;
    assert_eq!(answer, json!({"replayed": 0, "not_found": ["pk-1"]}));

    // Bad bodies: 400 with the field path.
    for (body, code, path) in [
        ("{not json", "malformed_json", "body"),
        ("[]", "invalid_field", "body"),
        (r#"{"event_ids": "pk-1"}"#, "invalid_field", "event_ids"),
        (
            r#"{"event_ids": ["ok", 7]}"#,
            "invalid_field",
            "event_ids[1]",
        ),
        (r#"{"ids": []}"#, "invalid_field", "ids"),
    ] {
        let (status, answer) = rig
            .admin(reqwest::Method::POST, "/parked/replay", Some(body))
            .await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], json!(code), "{body}: {answer}");
        assert_eq!(answer["error"]["path"], json!(path), "{body}: {answer}");
    }
    Ok(())
}
