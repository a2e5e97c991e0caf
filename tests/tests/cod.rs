//! Cash on delivery (issue 13, "Cash on delivery"), end to end against `wrangler dev` and the
//! loopback mock of TikTok: a browser-like checkout kept across a restart of the Worker, its
//! confirmation sent once as `CompletePayment` with the checkout's identifiers, a cancel that
//! sends nothing, the signed webhook and its refusals, an unknown order sent as an offline
//! event, the health figures, and the rows written per order.

use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};
use ttedge_e2e::collect::SHA_EMAIL_BUYER;
use ttedge_e2e::site::status_and_json;
use ttedge_e2e::{clock, RecordedEvent, Site};

const ADMIN_TOKEN: &str = "e2e-cod-admin-token-8e3f";
const MASTER_KEY: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
const HOST: &str = "t.shop-cod.test";
const ORIGIN: &str = "https://shop-cod.test";
const TOKEN: &str = "sitecod-token-9f8e7d6c5b4a3928SECRETCOD";
const PIXEL: &str = "C4SITECOD00000000000";
const WEBHOOK_SECRET: &str = "whsec_e2e_cod_5b1f0c9a7d3e2f48";
const TTP: &str = "01JEC0D7TTPCOOKIE0000000001";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) ttedge-e2e-cod";
const IP: &str = "203.0.113.42";
/// `printf '%s' 'buyer3@example.com' | sha256sum`
const BUYER3_HASH: &str = "8b328910f89ee026eb1648d59133787b236b6c429b4278c091660ab9741fcea6";
/// `printf '%s' 'offline@example.com' | sha256sum`
const OFFLINE_HASH: &str = "a00f0efceed68bc0d3c923de13e1360e199b7a1dec29fb0a9d63ac9b49add84f";

/// The webhook header for `body` signed at `t` with `secret`, the HMAC computed by
/// `openssl dgst -sha256 -hmac`, apart from the Worker's code.
fn signature(secret: &str, t: i64, body: &str) -> anyhow::Result<String> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), format!("{t}.{body}"))?;
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .arg(file.path())
        .output()
        .context("running openssl")?;
    anyhow::ensure!(out.status.success(), "openssl failed: {out:?}");
    let text = String::from_utf8(out.stdout)?;
    let hex = text.split_whitespace().next().context("no digest")?;
    anyhow::ensure!(hex.len() == 64, "unexpected openssl output {text}");
    Ok(format!("t={t},v1={hex}"))
}

fn checkout(order_id: &str, email: &str, value: u64) -> Value {
    json!({
        "event": "PlaceAnOrder",
        "event_id": format!("checkout-{order_id}"),
        "url": format!("{ORIGIN}/checkout/thanks?order={order_id}"),
        "user_data": {"email": email},
        "properties": {
            "value": value, "currency": "idr", "order_id": order_id,
            "contents": [{"content_id": "sku-7", "quantity": 2, "price": value / 2}],
        },
    })
}

/// `/collect` as a browser on the shop sends it: Origin, user agent, IP and a `_ttp` cookie.
async fn browser_collect(site: &Site, body: &Value) -> anyhow::Result<Value> {
    let resp = site
        .request_to(HOST, Method::POST, "/collect")
        .header("Content-Type", "text/plain;charset=UTF-8")
        .header("Origin", ORIGIN)
        .header("User-Agent", USER_AGENT)
        .header("CF-Connecting-IP", IP)
        .header("Cookie", format!("_ttp={TTP}"))
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    anyhow::ensure!(status == 202, "collect answered {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

fn order_path(order_id: &str) -> String {
    format!("/admin/api/destinations/{HOST}/orders/{order_id}")
}

async fn update(site: &Site, order_id: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    site.admin(Method::POST, &order_path(order_id), Some(&body.to_string()))
        .await
}

/// `POST /webhooks/{HOST}/orders` with `body` as sent and an optional signature header.
async fn webhook(site: &Site, body: &str, signature: Option<&str>) -> anyhow::Result<(u16, Value)> {
    let mut req = site
        .request_to(HOST, Method::POST, &format!("/webhooks/{HOST}/orders"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        req = req.header("X-Ttedge-Signature", signature);
    }
    status_and_json(req.send().await?, "the webhook").await
}

fn sent(site: &Site, event_id: &str) -> Vec<RecordedEvent> {
    site.tiktok
        .events()
        .into_iter()
        .filter(|e| e.event_id() == Some(event_id))
        .collect()
}

async fn wait_sent(site: &Site, event_id: &str) -> anyhow::Result<Value> {
    let wait = Duration::from_secs(30);
    Ok(site.tiktok.wait_for_event(event_id, wait).await?.event)
}

fn error_of(answer: &Value) -> (&str, &str) {
    (
        answer["error"]["code"].as_str().unwrap_or_default(),
        answer["error"]["path"].as_str().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cash_on_delivery_end_to_end() -> anyhow::Result<()> {
    let mut site = Site::start(
        "e2e-cod-default-token-0001",
        "C4CODDEFAULT00000000",
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await?;
    let settings = json!({
        "pixel_id": PIXEL, "access_token": TOKEN, "live": true, "site_origins": [ORIGIN],
        "webhook_secret": WEBHOOK_SECRET, "cod_checkout_events": ["CodOrder"],
    });
    let answer = site.put_destination(HOST, &settings).await?;
    assert_eq!(answer["webhook_secret_set"], true, "{answer}");
    assert_eq!(answer["cod_days"], 60, "{answer}");
    assert!(!answer.to_string().contains(WEBHOOK_SECRET), "{answer}");

    // Checkout: four orders, from a browser with its `_ttp` cookie; the last one under the
    // destination's own checkout event; and a page view that keeps nothing.
    let mut own = checkout("A-1005", "buyer5@example.com", 5_000);
    own["event"] = json!("CodOrder");
    let body = json!({"batch": [
        checkout("A-1001", "buyer@example.com", 150_000),
        checkout("A-1002", "buyer2@example.com", 90_000),
        checkout("A-1003", "buyer3@example.com", 40_000),
        own,
        {"event": "view_content", "event_id": "view-A-1006", "properties": {"order_id": "A-1006"}},
    ]});
    let answer = browser_collect(&site, &body).await?;
    assert_eq!(answer["accepted"], 5, "{answer}");
    for id in [
        "checkout-A-1001",
        "checkout-A-1002",
        "checkout-A-1003",
        "checkout-A-1005",
        "view-A-1006",
    ] {
        wait_sent(&site, id).await?;
    }
    assert!(
        site.tiktok
            .events()
            .iter()
            .all(|e| e.event_name() != Some("CompletePayment")),
        "no purchase at checkout: {}",
        site.tiktok.summary()
    );

    // The Worker stops and starts again on the same storage: the orders are still kept.
    site.worker.restart().await?;

    // Confirmed: CompletePayment with the checkout's hashes, ttp, IP, user agent and page.
    let (status, answer) = update(
        &site,
        "A-1001",
        &json!({"status": "paid", "value": 155_000, "currency": "IDR"}),
    )
    .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"order_id": "A-1001", "outcome": "queued", "event_id": "CompletePayment-A-1001"})
    );
    let purchase = wait_sent(&site, "CompletePayment-A-1001").await?;
    assert_eq!(purchase["event"], "CompletePayment", "{purchase}");
    let placed = wait_sent(&site, "checkout-A-1001").await?;
    assert_eq!(
        purchase["user"], placed["user"],
        "the checkout's identifiers"
    );
    assert_eq!(
        purchase["limited_data_use"], placed["limited_data_use"],
        "its consent"
    );
    assert_eq!(purchase["user"]["email"], SHA_EMAIL_BUYER, "{purchase}");
    assert_eq!(purchase["user"]["ttp"], TTP, "{purchase}");
    assert_eq!(purchase["user"]["ip"], IP, "{purchase}");
    assert_eq!(purchase["user"]["user_agent"], USER_AGENT, "{purchase}");
    assert_eq!(
        purchase["page"]["url"],
        format!("{ORIGIN}/checkout/thanks?order=A-1001")
    );
    assert_eq!(purchase["properties"]["value"], 155_000.0, "{purchase}");
    assert_eq!(purchase["properties"]["currency"], "IDR", "{purchase}");
    assert_eq!(purchase["properties"]["order_id"], "A-1001", "{purchase}");
    assert_eq!(purchase["properties"]["contents"][0]["content_id"], "sku-7");

    // Confirmed again: a duplicate, nothing sent.
    let (status, answer) = update(&site, "A-1001", &json!({"status": "delivered"})).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "duplicate", "{answer}");

    // The destination's own checkout event kept its order; a page view kept none.
    let (status, answer) = update(&site, "A-1005", &json!({"status": "paid"})).await?;
    assert_eq!(
        (status, &answer["outcome"]),
        (202, &json!("queued")),
        "{answer}"
    );
    let (status, answer) = update(&site, "A-1006", &json!({"status": "paid"})).await?;
    assert_eq!(
        (status, error_of(&answer).0),
        (404, "unknown_order"),
        "{answer}"
    );

    // Cancelled: nothing sent, and the order is forgotten.
    let (status, answer) = update(&site, "A-1002", &json!({"status": "cancelled"})).await?;
    assert_eq!(
        (status, &answer["outcome"]),
        (200, &json!("cancelled")),
        "{answer}"
    );
    let (status, answer) = update(&site, "A-1002", &json!({"status": "paid"})).await?;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(error_of(&answer).0, "unknown_order", "{answer}");

    // The webhook: signed with the destination's secret, the order id in the body.
    let body = json!({"order_id": "A-1003", "status": "delivered"}).to_string();
    let (status, answer) = webhook(
        &site,
        &body,
        Some(&signature(WEBHOOK_SECRET, clock::now_secs(), &body)?),
    )
    .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["event_id"], "CompletePayment-A-1003", "{answer}");

    // Refused: another secret, no signature, a signature of 6 minutes ago.
    let forged = json!({"order_id": "A-1004", "status": "paid", "email": "x@example.com"});
    let forged = forged.to_string();
    let wrong = signature("whsec_someone_else_000000", clock::now_secs(), &forged)?;
    let old = signature(WEBHOOK_SECRET, clock::now_secs() - 6 * 60, &forged)?;
    for (signature, code) in [
        (Some(wrong.as_str()), "signature_mismatch"),
        (None, "signature_missing"),
        (Some(old.as_str()), "signature_expired"),
        (Some("t=1,v1=zz"), "signature_malformed"),
    ] {
        let (status, answer) = webhook(&site, &forged, signature).await?;
        assert_eq!((status, error_of(&answer).0), (401, code), "{answer}");
    }
    // Signed, but without an order id: 400 naming it.
    let body = json!({"status": "paid"}).to_string();
    let (status, answer) = webhook(
        &site,
        &body,
        Some(&signature(WEBHOOK_SECRET, clock::now_secs(), &body)?),
    )
    .await?;
    assert_eq!((status, error_of(&answer).1), (400, "order_id"), "{answer}");

    // An unknown order with an email goes as an offline event; without one, it is a 404.
    let (status, answer) = update(
        &site,
        "OFF-77",
        &json!({"status": "delivered", "email": "Offline@Example.com", "value": 10, "currency": "usd"}),
    )
    .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "queued_offline", "{answer}");
    let (status, answer) = update(&site, "A-9999", &json!({"status": "paid"})).await?;
    assert_eq!(
        (status, error_of(&answer).0),
        (404, "unknown_order"),
        "{answer}"
    );

    // Bad bodies: 400 naming the field.
    for (body, path) in [
        (json!({"status": "shipped"}), "status"),
        (json!({"status": "paid", "value": -1}), "value"),
        (json!({"status": "paid", "currency": "rupiah"}), "currency"),
        (json!({"status": "paid", "at": "yesterday"}), "at"),
        (json!({"status": "paid", "note": 1}), "note"),
        (json!({"value": 1}), "status"),
    ] {
        let (status, answer) = update(&site, "A-1003", &body).await?;
        assert_eq!(
            (status, error_of(&answer).1),
            (400, path),
            "{body}: {answer}"
        );
    }
    let (status, answer) = site
        .admin(Method::POST, &order_path("A-1003"), Some("{\"status\":"))
        .await?;
    assert_eq!(
        (status, error_of(&answer).0),
        (400, "malformed_json"),
        "{answer}"
    );

    // What arrived: the webhook's and the offline purchase; never a second A-1001 nor A-1002.
    let hook = wait_sent(&site, "CompletePayment-A-1003").await?;
    assert_eq!(hook["user"]["email"], BUYER3_HASH, "{hook}");
    assert_eq!(
        hook["properties"]["value"], 40_000.0,
        "stored value: {hook}"
    );
    let offline = wait_sent(&site, "CompletePayment-OFF-77").await?;
    assert_eq!(offline["user"]["email"], OFFLINE_HASH, "{offline}");
    assert_eq!(offline["user"].get("ttp"), None, "{offline}");
    assert_eq!(offline["user"].get("ip"), None, "{offline}");
    assert_eq!(offline["properties"]["currency"], "USD", "{offline}");
    assert_eq!(sent(&site, "CompletePayment-A-1001").len(), 1);
    assert!(sent(&site, "CompletePayment-A-1002").is_empty());
    assert!(sent(&site, "CompletePayment-A-1004").is_empty());

    let own = wait_sent(&site, "CompletePayment-A-1005").await?;
    assert_eq!(own["properties"]["order_id"], "A-1005", "{own}");

    // Health: 3 confirmed (A-1001, A-1003, A-1005), 1 cancelled; the offline one had no
    // order.
    let health = site
        .wait_admin(
            &format!("/admin/api/destinations/{HOST}/health"),
            "3 COD confirmations and 1 cancellation",
            Duration::from_secs(30),
            |h| h["windows"]["last_hour"]["cod_confirmed"] == 3,
        )
        .await?;
    let hour = &health["windows"]["last_hour"];
    assert_eq!(hour["cod_cancelled"], 1, "{hour}");
    let rate = hour["cod_confirmation_rate"].as_f64().context("no rate")?;
    assert_eq!(rate, 0.75, "{hour}");

    // The secret and the buyers' emails never reach the log.
    let log = site.worker.log();
    for secret in [WEBHOOK_SECRET, "buyer@example.com", "Offline@Example.com"] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_written_per_cash_on_delivery_order() -> anyhow::Result<()> {
    let site = Site::start(
        "e2e-cod-rows-token-0123456789",
        "C4CODROWS00000000000",
        ADMIN_TOKEN,
        &[],
    )
    .await?;
    let quiet = || tokio::time::sleep(Duration::from_millis(1_200));
    let path = |id: &str| format!("/admin/api/destinations/t.rows.test/orders/{id}");
    clock::clear_of_generation_turn(Duration::from_secs(45)).await;
    // The first checkout makes the day's tables.
    site.collect(&checkout("W-0", "buyer@example.com", 10))
        .await?;
    let mut delivered = 1;
    let mut before = Site::rows_written(&site.drained(delivered).await?)?;

    // An ordinary event pays what it paid before: its key, its intake row, the alarm and
    // the state row.
    quiet().await;
    site.collect(&json!({"event": "purchase", "event_id": "plain-1"}))
        .await?;
    delivered += 1;
    let after = Site::rows_written(&site.drained(delivered).await?)?;
    let plain = after - before;
    before = after;
    assert_eq!(plain, 4, "an ordinary event");

    // A checkout with an order id: one row more, its order.
    quiet().await;
    site.collect(&checkout("R-1", "buyer@example.com", 10))
        .await?;
    delivered += 1;
    let after = Site::rows_written(&site.drained(delivered).await?)?;
    let stored = after - before;
    before = after;
    assert_eq!(stored, plain + 1, "a checkout keeps its order in one row");

    // Confirmed: the order marked, the purchase's key and intake row, the alarm, the state.
    quiet().await;
    let (status, answer) = site
        .admin(Method::POST, &path("R-1"), Some(r#"{"status":"paid"}"#))
        .await?;
    assert_eq!(status, 202, "{answer}");
    delivered += 1;
    let after = Site::rows_written(&site.drained(delivered).await?)?;
    let confirmed = after - before;
    assert_eq!(confirmed, 5, "a confirmation");

    // Cancelled: the order deleted and a row of counts; nothing to send, no alarm.
    quiet().await;
    site.collect(&checkout("R-2", "buyer@example.com", 10))
        .await?;
    delivered += 1;
    let before = Site::rows_written(&site.drained(delivered).await?)?;
    let (status, answer) = site
        .admin(
            Method::POST,
            &path("R-2"),
            Some(r#"{"status":"cancelled"}"#),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    quiet().await;
    let cancelled = Site::rows_written(&site.drained(delivered).await?)? - before;
    assert_eq!(cancelled, 2, "a cancellation");
    eprintln!(
        "rows written: ordinary event {plain}, COD checkout {stored}, confirmation \
         {confirmed}, cancellation {cancelled}"
    );
    Ok(())
}
