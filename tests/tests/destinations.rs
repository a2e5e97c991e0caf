//! Many sites on one Worker (issue 4, "Destinations" and "Admin API"), end to end against
//! `wrangler dev` and the loopback mock of TikTok: the destination API and its refusals,
//! tokens sealed and masked, tenant isolation across site hosts, `live` off, a changed
//! `MASTER_KEY`, the slow-down of failed logins, and recovery against a baseline.

use std::time::Duration;

use anyhow::bail;
use reqwest::Method;
use serde_json::{json, Value};
use ttedge_e2e::Site;

const ADMIN_TOKEN: &str = "e2e-destinations-admin-token-77c1";
const MASTER_KEY: &str = "8f0c4e3a9b7d2615f4e8a0c3b5d7e9f1a2c4e6081b3d5f7092a4c6e8f0b2d4e6";
const DEFAULT_TOKEN: &str = "e2e-default-token-never-shown-0001";
const DEFAULT_PIXEL: &str = "C4DEFAULT00000000000";

const HOST_A: &str = "t.shop-a.test";
const TOKEN_A: &str = "sitea-token-9f8e7d6c5b4a39281706SECRETA";
const PIXEL_A: &str = "C4SITEA0000000000000";
const HOST_B: &str = "t.shop-b.test";
const TOKEN_B: &str = "siteb-token-0a1b2c3d4e5f60718293SECRETB";
const PIXEL_B: &str = "C4SITEB0000000000000";

async fn start() -> anyhow::Result<Site> {
    Site::start(
        DEFAULT_TOKEN,
        DEFAULT_PIXEL,
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await
}

fn path(host: &str, action: &str) -> String {
    format!("/admin/api/destinations/{host}{action}")
}

/// PUTs a destination and fails unless it is stored.
async fn put(site: &Site, host: &str, settings: &Value) -> anyhow::Result<Value> {
    let (status, answer) = site
        .admin(Method::PUT, &path(host, ""), Some(&settings.to_string()))
        .await?;
    if status != 200 && status != 201 {
        bail!("PUT {host} answered {status}: {answer}");
    }
    Ok(answer)
}

fn settings(pixel: &str, token: &str, origin: &str) -> Value {
    json!({
        "pixel_id": pixel,
        "access_token": token,
        "live": true,
        "site_origins": [origin],
    })
}

fn purchase(id: &str) -> Value {
    json!({
        "event": "purchase",
        "event_id": id,
        "user": {"email": "buyer@example.com"},
        "properties": {"value": 10, "currency": "usd"},
    })
}

/// Asserts that a refused PUT names `field` with `code`.
async fn refused(
    site: &Site,
    host: &str,
    body: &str,
    code: &str,
    field: &str,
) -> anyhow::Result<()> {
    let (status, answer) = site.admin(Method::PUT, &path(host, ""), Some(body)).await?;
    assert_eq!(status, 400, "{body} → {answer}");
    assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
    assert_eq!(answer["error"]["path"], field, "{body} → {answer}");
    Ok(())
}

#[tokio::test]
async fn destinations_are_validated_stored_masked_and_deleted() -> anyhow::Result<()> {
    let site = start().await?;
    let mut answers = Vec::new();

    let list = site.admin_get("/admin/api/destinations").await?;
    assert_eq!(list["destinations"], json!([]));
    assert_eq!(list["default"]["pixel_id"], DEFAULT_PIXEL);
    assert_eq!(list["default"]["access_token"], "…0001");
    answers.push(list.to_string());

    // Refusals, each naming its field.
    let good = settings(PIXEL_A, TOKEN_A, "https://shop-a.test");
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body.to_string()
    };
    let bad_settings = [
        ("pixel_id", json!(""), "invalid_field", "pixel_id"),
        ("pixel_id", json!("C4-X"), "invalid_field", "pixel_id"),
        (
            "site_origins",
            json!(["https://shop-a.test", "http://shop-a.test"]),
            "invalid_field",
            "site_origins[1]",
        ),
        (
            "rate_limit_per_minute",
            json!(0),
            "invalid_field",
            "rate_limit_per_minute",
        ),
        ("live", json!("yes"), "invalid_field", "live"),
        (
            "custom_event",
            json!(false),
            "unknown_field",
            "custom_event",
        ),
        (
            "cookie_domain",
            json!("shop-b.test"),
            "invalid_field",
            "cookie_domain",
        ),
        (
            "event_overrides",
            json!({"add_to_cart": "Not A Name!"}),
            "invalid_field",
            "event_overrides.add_to_cart",
        ),
    ];
    for (field, value, code, path) in bad_settings {
        refused(&site, HOST_A, &with(field, value), code, path).await?;
    }
    let mut no_token = good.clone();
    no_token.as_object_mut().unwrap().remove("access_token");
    refused(
        &site,
        HOST_A,
        &no_token.to_string(),
        "invalid_field",
        "access_token",
    )
    .await?;
    let (status, answer) = site
        .admin(Method::PUT, &path(HOST_A, ""), Some("{\"pixel_id\": "))
        .await?;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{answer}"
    );
    let (status, answer) = site
        .admin(Method::PUT, &path("https:", ""), Some(&good.to_string()))
        .await?;
    assert_eq!(
        (status, answer["error"]["path"].as_str()),
        (400, Some("host")),
        "{answer}"
    );
    let (status, answer) = site.admin(Method::GET, &path(HOST_A, ""), None).await?;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_destination")),
        "{answer}"
    );

    // Created: the token comes back masked as its last 4 characters.
    let (status, created) = site
        .admin(Method::PUT, &path(HOST_A, ""), Some(&good.to_string()))
        .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["host"], HOST_A);
    assert_eq!(created["pixel_id"], PIXEL_A);
    assert_eq!(created["access_token"], "…RETA");
    assert_eq!(created["live"], true);
    assert_eq!(created["custom_events"], true);
    assert_eq!(created["rate_limit_per_minute"], 1000);
    answers.push(created.to_string());

    // Replaced without a token: the stored token stays.
    let mut update = good.clone();
    update.as_object_mut().unwrap().remove("access_token");
    update["test_event_code"] = json!("TEST123");
    update["conversion_events"] = json!(["Subscribe"]);
    let (status, updated) = site
        .admin(Method::PUT, &path(HOST_A, ""), Some(&update.to_string()))
        .await?;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["access_token"], "…RETA");
    assert_eq!(updated["test_event_code"], "TEST123");
    assert_eq!(updated["conversion_events"], json!(["Subscribe"]));
    answers.push(updated.to_string());

    let fetched = site.admin_get(&path(HOST_A, "")).await?;
    assert_eq!(fetched["test_event_code"], "TEST123");
    let list = site.admin_get("/admin/api/destinations").await?;
    assert_eq!(list["destinations"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["destinations"][0]["host"], HOST_A);
    answers.push(list.to_string());

    // The live switch.
    let (status, answer) = site
        .admin(
            Method::POST,
            &path(HOST_A, "/live"),
            Some("{\"live\": \"no\"}"),
        )
        .await?;
    assert_eq!(
        (status, answer["error"]["path"].as_str()),
        (400, Some("live")),
        "{answer}"
    );
    let (status, answer) = site
        .admin(
            Method::POST,
            &path(HOST_A, "/live"),
            Some("{\"live\": false}"),
        )
        .await?;
    assert_eq!((status, &answer["live"]), (200, &json!(false)), "{answer}");
    answers.push(answer.to_string());
    let (status, _) = site
        .admin(
            Method::POST,
            &path(HOST_B, "/live"),
            Some("{\"live\": true}"),
        )
        .await?;
    assert_eq!(status, 404);

    // Deleted, once.
    let (status, answer) = site.admin(Method::DELETE, &path(HOST_A, ""), None).await?;
    assert_eq!(
        (status, &answer["deleted"]),
        (200, &json!(HOST_A)),
        "{answer}"
    );
    let (status, _) = site.admin(Method::DELETE, &path(HOST_A, ""), None).await?;
    assert_eq!(status, 404);
    let (status, _) = site.admin(Method::GET, &path(HOST_A, ""), None).await?;
    assert_eq!(status, 404);

    // No answer and no log line holds a token.
    let log = site.worker.log();
    for secret in [TOKEN_A, DEFAULT_TOKEN, MASTER_KEY] {
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "an answer holds a secret: {answer}"
            );
        }
        assert!(!log.contains(secret), "the wrangler log holds a secret");
    }
    Ok(())
}

#[tokio::test]
async fn each_site_host_sends_with_its_own_token_and_pixel() -> anyhow::Result<()> {
    let site = start().await?;
    put(
        &site,
        HOST_A,
        &settings(PIXEL_A, TOKEN_A, "https://shop-a.test"),
    )
    .await?;
    put(
        &site,
        HOST_B,
        &settings(PIXEL_B, TOKEN_B, "https://shop-b.test"),
    )
    .await?;

    let (status, cookies, answer) = site
        .collect_on(HOST_A, Some("https://shop-a.test"), &purchase("iso-a-1"))
        .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["live"], true);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("_ttp=") && c.contains("Domain=shop-a.test")),
        "{cookies:?}"
    );
    let (status, _, answer) = site
        .collect_on(HOST_B, Some("https://shop-b.test"), &purchase("iso-b-1"))
        .await?;
    assert_eq!(status, 202, "{answer}");
    // A page of shop B may not post to shop A's endpoint.
    let (status, _, answer) = site
        .collect_on(HOST_A, Some("https://shop-b.test"), &purchase("iso-x-1"))
        .await?;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    // A host with nothing stored is the wrangler.toml default.
    let (status, _, _) = site
        .collect_on("t.other.test", None, &purchase("iso-default-1"))
        .await?;
    assert_eq!(status, 202);

    site.tiktok
        .wait_for_events(3, Duration::from_secs(20))
        .await?;
    let mut seen = Vec::new();
    for request in site.tiktok.requests() {
        let token = request
            .header("access-token")
            .unwrap_or_default()
            .to_string();
        let pixel = request
            .field("event_source_id")
            .unwrap_or_default()
            .to_string();
        for id in request.event_ids() {
            seen.push((id, pixel.clone(), token.clone()));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("iso-a-1".into(), PIXEL_A.into(), TOKEN_A.into()),
            ("iso-b-1".into(), PIXEL_B.into(), TOKEN_B.into()),
            (
                "iso-default-1".into(),
                DEFAULT_PIXEL.into(),
                DEFAULT_TOKEN.into()
            ),
        ],
        "every event leaves with its own site's pixel and token"
    );

    // Health is per destination.
    let health_a = site.admin_get(&path(HOST_A, "/health")).await?;
    assert_eq!(
        health_a["windows"]["last_hour"]["delivered"], 1,
        "{health_a}"
    );
    let log = site.worker.log();
    assert!(!log.contains(TOKEN_A) && !log.contains(TOKEN_B));
    Ok(())
}

#[tokio::test]
async fn a_site_that_is_not_live_scores_and_counts_but_sends_nothing() -> anyhow::Result<()> {
    let site = start().await?;
    let mut setup = settings(PIXEL_A, TOKEN_A, "https://shop-a.test");
    setup["live"] = json!(false);
    put(&site, HOST_A, &setup).await?;

    let batch = json!({"batch": [purchase("setup-1"), purchase("setup-2"), {"event": "page_view", "event_id": "setup-3"}]});
    let (status, _, answer) = site.collect_on(HOST_A, None, &batch).await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["live"], false);
    assert_eq!(answer["events"][0]["status"], "ready");
    assert!(answer["events"][0]["emq"]["score"].as_f64().unwrap_or(0.0) > 0.0);
    let health = site
        .wait_admin(
            &path(HOST_A, "/health"),
            "3 not_live",
            Duration::from_secs(10),
            |h| h["windows"]["last_hour"]["not_live"] == 3,
        )
        .await?;
    assert_eq!(health["windows"]["last_hour"]["received"], 0, "{health}");
    assert_eq!(health["current"]["queue_depth"], 0, "{health}");
    assert_eq!(health["emq"]["events"], 3, "{health}");

    // Live: the next events go out; the earlier ones were never stored.
    let (status, _) = site
        .admin(
            Method::POST,
            &path(HOST_A, "/live"),
            Some("{\"live\": true}"),
        )
        .await?;
    assert_eq!(status, 200);
    let (status, _, answer) = site.collect_on(HOST_A, None, &purchase("live-1")).await?;
    assert_eq!((status, &answer["live"]), (202, &json!(true)));
    site.tiktok
        .wait_for_events(1, Duration::from_secs(20))
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = site.tiktok.event_ids();
    assert_eq!(sent, vec!["live-1".to_string()]);
    Ok(())
}

#[tokio::test]
async fn a_changed_master_key_is_a_clear_error_until_the_token_is_entered_again(
) -> anyhow::Result<()> {
    let mut site = start().await?;
    put(
        &site,
        HOST_A,
        &settings(PIXEL_A, TOKEN_A, "https://shop-a.test"),
    )
    .await?;
    let other_key = "11".repeat(32);
    site.worker
        .restart_with_var("MASTER_KEY", &other_key)
        .await?;

    let (status, _, answer) = site.collect_on(HOST_A, None, &purchase("mk-1")).await?;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "token_unreadable");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MASTER_KEY"), "{message}");
    // The settings still read (the mask is stored apart from the sealed token).
    let stored = site.admin_get(&path(HOST_A, "")).await?;
    assert_eq!(stored["access_token"], "…RETA");

    // Entering the token again seals it under the new key.
    put(
        &site,
        HOST_A,
        &settings(PIXEL_A, TOKEN_A, "https://shop-a.test"),
    )
    .await?;
    let (status, _, answer) = site.collect_on(HOST_A, None, &purchase("mk-2")).await?;
    assert_eq!(status, 202, "{answer}");
    let events = site
        .tiktok
        .wait_for_events(1, Duration::from_secs(20))
        .await?;
    assert_eq!(events[0].event_id(), Some("mk-2"));
    assert!(!site.worker.log().contains(TOKEN_A));
    Ok(())
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down() -> anyhow::Result<()> {
    let site = start().await?;
    let attempt = |ip: &'static str, token: &'static str| {
        site.client
            .get(format!("{}/admin/api/destinations", site.worker.base_url()))
            .header("CF-Connecting-IP", ip)
            .bearer_auth(token)
            .send()
    };
    // No credentials at all is a 401 but not a guess.
    let bare = site
        .client
        .get(format!("{}/admin/api/destinations", site.worker.base_url()))
        .header("CF-Connecting-IP", "198.51.100.7")
        .send()
        .await?;
    assert_eq!(bare.status(), 401);
    // README: after 5 failures the address is locked. The 5 are each a 401; the 6th
    // attempt is refused before its token is looked at, even the right one. Trailing
    // whitespace (RFC 9110 optional whitespace) does not make another address.
    for i in 0..5 {
        let ip = ["198.51.100.7", "198.51.100.7 ", "198.51.100.7\t"][i % 3];
        let resp = attempt(ip, "wrong-token").await?;
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    let resp = attempt("198.51.100.7 ", ADMIN_TOKEN).await?;
    assert_eq!(resp.status(), 429, "the 6th attempt, with the right token");
    let resp = attempt("198.51.100.7", "wrong-token").await?;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "too_many_failures");
    // Locked out: even the right token waits.
    let resp = attempt("198.51.100.7", ADMIN_TOKEN).await?;
    assert_eq!(resp.status(), 429);
    // Another address is not affected.
    let resp = attempt("198.51.100.8", ADMIN_TOKEN).await?;
    assert_eq!(resp.status(), 200);
    Ok(())
}

#[tokio::test]
async fn recovery_compares_delivered_conversions_with_the_pixel_baseline() -> anyhow::Result<()> {
    let site = start().await?;
    let mut setup = settings(PIXEL_A, TOKEN_A, "https://shop-a.test");
    setup["conversion_events"] = json!(["Subscribe"]);
    put(&site, HOST_A, &setup).await?;

    let with_pixel = |id: &str, pixel: &str| {
        let mut event = purchase(id);
        event["context"] = json!({"pixel": pixel});
        event
    };
    let batch = json!({"batch": [
        with_pixel("rc-1", "blocked"),
        with_pixel("rc-2", "absent"),
        with_pixel("rc-3", "loaded"),
        {"event": "subscribe", "event_id": "rc-4"},
        {"event": "view_content", "event_id": "rc-5"},
    ]});
    let (status, _, answer) = site.collect_on(HOST_A, None, &batch).await?;
    assert_eq!(status, 202, "{answer}");
    site.tiktok
        .wait_for_events(5, Duration::from_secs(20))
        .await?;
    let health = site
        .wait_admin(
            &path(HOST_A, "/health"),
            "4 conversions",
            Duration::from_secs(10),
            |h| h["recovery"]["conversions_delivered"] == 4,
        )
        .await?;
    assert_eq!(health["recovery"]["unseen_by_pixel"], 2, "{health}");

    let today = today_utc();
    let (status, answer) = site
        .admin(
            Method::POST,
            &path(HOST_A, "/baseline"),
            Some(&json!({"from": today, "to": today, "pixel_conversions": 2}).to_string()),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["server_conversions"], 4, "{answer}");
    assert_eq!(answer["delta"], 2, "{answer}");
    assert_eq!(answer["recovered_share"], 1.0, "{answer}");
    let health = site.admin_get(&path(HOST_A, "/health")).await?;
    assert_eq!(health["recovery"]["baselines"][0]["delta"], 2, "{health}");

    let (status, answer) = site
        .admin(
            Method::POST,
            &path(HOST_A, "/baseline"),
            Some(
                &json!({"from": "2026-11-20", "to": "2026-11-02", "pixel_conversions": 2})
                    .to_string(),
            ),
        )
        .await?;
    assert_eq!(
        (status, answer["error"]["path"].as_str()),
        (400, Some("to")),
        "{answer}"
    );
    Ok(())
}

/// Today's UTC date as `YYYY-MM-DD`.
fn today_utc() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}
