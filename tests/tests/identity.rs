//! Identity resolution (issue 14), end to end against `wrangler dev` and the loopback mock of
//! TikTok: a browser's later events carry the email it gave at checkout, with consent; what
//! is sent is what the answer and health report; a denial, an erasure request and another
//! pixel's destination see nothing. The SDK's `ttedge('reset')` in a real browser is tested
//! in `sdk.rs`, beside the SDK's other tests.
//!
//! Expected hashes are computed with coreutils' `sha256sum`, not with the code under test.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};
use ttedge_e2e::collect::{SHA_EMAIL_BUYER, SHA_PHONE_US};
use ttedge_e2e::site::status_and_json;
use ttedge_e2e::Site;

const ADMIN_TOKEN: &str = "e2e-identity-admin-token-4d2a";
const ACCESS_TOKEN: &str = "e2e-identity-token-0123456789";
const PIXEL: &str = "C4IDENTITY0000000000";
const MASTER_KEY: &str = "3c1d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d";
/// Another shop with another pixel, on the same access token (so the same Dispatcher).
const OTHER_HOST: &str = "t.other-shop.test";
const OTHER_PIXEL: &str = "C4OTHERPIXEL00000000";

/// `printf %s other@example.com | sha256sum`
const OTHER_EMAIL_SHA256: &str = "5b71ed5f946240dc76f3b7c24bdcbbc3528284ec5f4519249fb702686f0df5b8";
/// `printf %s cust-77 | sha256sum`
const CUSTOMER_SHA256: &str = "0e103e5e09e5d2d255fbbbd08e7deb4d3d96a7922bfeb479d0d76fafd25d4efc";

const WAIT: Duration = Duration::from_secs(20);

async fn start() -> anyhow::Result<Site> {
    Site::start(
        ACCESS_TOKEN,
        PIXEL,
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await
}

fn granted() -> Value {
    json!({"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"})
}

fn event(name: &str, id: &str, consent: Value, user_data: Option<Value>) -> Value {
    let mut event = json!({
        "event": name,
        "event_id": id,
        "url": "https://shop.test/p",
        "properties": {"value": 25, "currency": "EUR", "items": [{"product_id": "sku-1", "price": 25}]},
        "consent": consent,
    });
    if let Some(user_data) = user_data {
        event["user_data"] = user_data;
    }
    event
}

/// The element TikTok received with `event_id`, once it has.
async fn received(site: &Site, event_id: &str) -> anyhow::Result<Value> {
    Ok(site.tiktok.wait_for_event(event_id, WAIT).await?.event)
}

/// A purchase without user data, consent granted, from the browser `ttp` on `host` (`None`:
/// the default destination); answers what TikTok received of it.
async fn granted_purchase(
    site: &Site,
    host: Option<&str>,
    ttp: &str,
    event_id: &str,
) -> anyhow::Result<Value> {
    let body = event("purchase", event_id, granted(), None);
    site.collect_as(host, Some(ttp), &body).await?;
    received(site, event_id).await
}

fn factors(answer: &Value) -> Vec<String> {
    answer["events"][0]["emq"]["coaching"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| c["factor"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn identities_path(host: &str, query: &str) -> String {
    format!("/admin/api/destinations/{host}/identities?{query}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_checkout_email_reaches_a_later_purchase_with_consent_only() -> anyhow::Result<()> {
    let site = start().await?;
    // The default destination answers for the Worker's own host too.
    let host = "127.0.0.1";
    let ttp = "ttp-visitor-one";

    // A view with only the cookie: nothing to learn, nothing to fill.
    let view = site
        .collect_as(
            None,
            Some(ttp),
            &json!(event("view_item", "view-1", granted(), None)),
        )
        .await?;
    assert!(factors(&view).contains(&"email".to_string()), "{view}");
    let view_sent = received(&site, "view-1").await?;
    assert_eq!(view_sent["user"].get("email"), None, "{view_sent}");

    // The checkout gives the email and the phone.
    let checkout = event(
        "begin_checkout",
        "checkout-1",
        granted(),
        Some(json!({"email": " Buyer@Example.com ", "phone": "+1 (555) 123-4567"})),
    );
    site.collect_as(None, Some(ttp), &checkout).await?;

    // The purchase on the thank-you page says neither: it is sent with both, and the answer
    // scores what is sent.
    let purchase = site
        .collect_as(
            None,
            Some(ttp),
            &event("purchase", "purchase-1", granted(), None),
        )
        .await?;
    let missing = factors(&purchase);
    assert!(
        !missing.contains(&"email".to_string()) && !missing.contains(&"phone".to_string()),
        "the answer scores the enriched event: {purchase}"
    );
    let sent = received(&site, "purchase-1").await?;
    assert_eq!(sent["user"]["email"], SHA_EMAIL_BUYER, "{sent}");
    assert_eq!(sent["user"]["phone"], SHA_PHONE_US, "{sent}");
    assert_eq!(sent["user"]["ttp"], ttp, "{sent}");
    assert_eq!(
        sent["user"].get("external_id"),
        None,
        "nothing invented: {sent}"
    );

    // Health counts it: one event enriched, 55 points gained (email 30 + phone 25).
    let health = site
        .wait_admin(
            &format!("/admin/api/destinations/{host}/health"),
            "one enriched event",
            WAIT,
            |h| h["identity"]["enriched"] == 1,
        )
        .await?;
    assert_eq!(health["identity"]["mean_gain"], 55.0, "{health}");

    // The data-subject request finds it by the cookie and by the clear email, hashes only.
    for query in [
        format!("ttp={ttp}"),
        "email=%20BUYER%40example.com".to_string(),
    ] {
        let found = site.admin_get(&identities_path(host, &query)).await?;
        let rows = found["identities"].as_array().context("identities")?;
        assert_eq!(rows.len(), 1, "{query}: {found}");
        assert_eq!(rows[0]["kind"], "ttp");
        assert_eq!(rows[0]["key"], ttp);
        assert_eq!(rows[0]["email_sha256"], SHA_EMAIL_BUYER);
        assert_eq!(rows[0]["phone_sha256"], SHA_PHONE_US);
        assert_eq!(found["erased"], 0);
        let text = found.to_string().to_lowercase();
        assert!(
            !text.contains("buyer@") && !text.contains("5551234567"),
            "{found}"
        );
    }

    // A purchase whose own consent denies ad_user_data is not enriched (and erases).
    let denied =
        json!({"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "denied"});
    site.collect_as(
        None,
        Some(ttp),
        &event("purchase", "purchase-denied", denied, None),
    )
    .await?;
    let sent = received(&site, "purchase-denied").await?;
    assert_eq!(sent["user"].get("email"), None, "{sent}");
    assert_eq!(sent["user"].get("phone"), None, "{sent}");
    let after = site
        .admin_get(&identities_path(host, &format!("ttp={ttp}")))
        .await?;
    assert_eq!(
        after["identities"],
        json!([]),
        "the denial erased it: {after}"
    );

    // So a later purchase with consent granted again finds nothing.
    let sent = granted_purchase(&site, None, ttp, "purchase-2").await?;
    assert_eq!(sent["user"].get("email"), None, "{sent}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure_newest_wins_and_other_pixels() -> anyhow::Result<()> {
    let site = start().await?;
    let host = "127.0.0.1";
    // Another shop on the same token, with its own pixel.
    let other = json!({"pixel_id": OTHER_PIXEL, "access_token": ACCESS_TOKEN, "live": true});
    site.put_destination(OTHER_HOST, &other).await?;

    // Newest wins: a second email replaces the first.
    let ttp = "ttp-visitor-two";
    for (id, email) in [("co-a", "first@example.com"), ("co-b", "other@example.com")] {
        let checkout = event(
            "begin_checkout",
            id,
            granted(),
            Some(json!({"email": email})),
        );
        site.collect_as(None, Some(ttp), &checkout).await?;
    }
    let sent = granted_purchase(&site, None, ttp, "p-newest").await?;
    assert_eq!(
        sent["user"]["email"], OTHER_EMAIL_SHA256,
        "no sticky email: {sent}"
    );

    // Another pixel's destination never sees it, even on the same Dispatcher.
    let sent = granted_purchase(&site, Some(OTHER_HOST), ttp, "p-other-pixel").await?;
    assert_eq!(sent["user"].get("email"), None, "{sent}");
    assert_eq!(sent["user"]["ttp"], ttp);
    let other_request = site
        .tiktok
        .requests()
        .into_iter()
        .find(|r| r.event_ids().iter().any(|id| id == "p-other-pixel"))
        .context("the other pixel's request")?;
    assert_eq!(other_request.field("event_source_id"), Some(OTHER_PIXEL));
    let listed = site
        .admin_get(&identities_path(OTHER_HOST, &format!("ttp={ttp}")))
        .await?;
    assert_eq!(listed["identities"], json!([]), "{listed}");

    // An erasure request by email removes it; the answer lists what was there, hashed.
    let (status, erased) = site
        .admin(
            Method::DELETE,
            &identities_path(host, "email=other@example.com"),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["erased"], 1, "{erased}");
    assert_eq!(erased["identities"][0]["email_sha256"], OTHER_EMAIL_SHA256);
    assert!(
        !erased.to_string().contains("other@example.com"),
        "{erased}"
    );
    let sent = granted_purchase(&site, None, ttp, "p-after-erasure").await?;
    assert_eq!(sent["user"].get("email"), None, "{sent}");

    // By external id: a customer who logs in on a second device brings the email along.
    let laptop = event(
        "begin_checkout",
        "co-laptop",
        granted(),
        Some(json!({"email": "buyer@example.com", "external_id": "cust-77"})),
    );
    site.collect_as(None, Some("ttp-laptop"), &laptop).await?;
    let phone_purchase = event(
        "purchase",
        "p-phone",
        granted(),
        Some(json!({"external_id": "cust-77"})),
    );
    site.collect_as(None, Some("ttp-phone"), &phone_purchase)
        .await?;
    let sent = received(&site, "p-phone").await?;
    assert_eq!(sent["user"]["email"], SHA_EMAIL_BUYER, "{sent}");
    assert_eq!(sent["user"]["external_id"], CUSTOMER_SHA256, "{sent}");
    assert_eq!(sent["user"]["ttp"], "ttp-phone", "{sent}");

    // Without sendable_to_ads nothing is learned: the later purchase gets nothing.
    let unsure = json!({"ad_storage": "granted", "ad_user_data": "granted"});
    let ttp3 = "ttp-visitor-three";
    let checkout = event(
        "begin_checkout",
        "co-unsure",
        unsure,
        Some(json!({"email": "buyer@example.com"})),
    );
    site.collect_as(None, Some(ttp3), &checkout).await?;
    let sent = granted_purchase(&site, None, ttp3, "p-unsure").await?;
    assert_eq!(sent["user"].get("email"), None, "{sent}");

    // Bad requests are named.
    for (query, code) in [
        ("", "invalid_query"),
        ("ttp=a&email=b%40c.d", "invalid_query"),
        ("email=not-an-email", "invalid_field"),
        ("ttp=%20", "invalid_field"),
    ] {
        let (status, answer) = site
            .admin(Method::GET, &identities_path(host, query), None)
            .await?;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{query}: {answer}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_events_are_enriched_when_their_browser_is_identified() -> anyhow::Result<()> {
    let site = start().await?;
    let ttp = "ttp-visitor-four";
    // TikTok is down for two requests: the view stays queued for its retries.
    site.tiktok.fail_next_n(2, 503);
    site.collect_as(
        None,
        Some(ttp),
        &event("view_item", "view-queued", granted(), None),
    )
    .await?;
    site.tiktok.wait_for_requests(1, WAIT).await?;
    // Meanwhile the visitor gives the email at checkout.
    let checkout = event(
        "begin_checkout",
        "checkout-4",
        granted(),
        Some(json!({"email": "buyer@example.com"})),
    );
    site.collect_as(None, Some(ttp), &checkout).await?;
    // The retried view goes out with it.
    let sent = site
        .tiktok
        .wait_for_accepted_event("view-queued", WAIT)
        .await?
        .event;
    assert_eq!(sent["user"]["email"], SHA_EMAIL_BUYER, "{sent}");
    // Counted once, when delivered, with the 30 points the email added.
    let health = site
        .wait_admin(
            "/admin/api/destinations/127.0.0.1/health",
            "the enriched view counted",
            WAIT,
            |h| h["identity"]["enriched"] == 1,
        )
        .await?;
    assert_eq!(health["identity"]["mean_gain"], 30.0, "{health}");
    Ok(())
}

/// `POST /collect/reset` as `curl` would send it: answers the rows erased, names bad input.
async fn reset(site: &Site, cookie: Option<&str>, body: &str) -> anyhow::Result<(u16, Value)> {
    let mut request = site
        .client
        .post(format!("{}/collect/reset", site.worker.base_url()))
        .header("Content-Type", "text/plain");
    if let Some(ttp) = cookie {
        request = request.header("Cookie", format!("_ttp={ttp}"));
    }
    status_and_json(
        request.body(body.to_string()).send().await?,
        "/collect/reset",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reset_endpoint_erases_by_cookie_or_body() -> anyhow::Result<()> {
    let site = start().await?;
    let identified = |ttp: &'static str, id: &'static str| {
        let checkout = event(
            "begin_checkout",
            id,
            granted(),
            Some(json!({"email": "buyer@example.com"})),
        );
        (ttp, checkout)
    };
    for (ttp, checkout) in [
        identified("ttp-reset-cookie", "co-r1"),
        identified("ttp-reset-body", "co-r2"),
    ] {
        site.collect_as(None, Some(ttp), &checkout).await?;
    }
    // By the cookie the browser sends, then again: nothing left.
    assert_eq!(
        reset(&site, Some("ttp-reset-cookie"), "").await?,
        (200, json!({"erased": 1}))
    );
    assert_eq!(
        reset(&site, Some("ttp-reset-cookie"), "").await?,
        (200, json!({"erased": 0}))
    );
    // By the body, as the SDK sends it when the request carries no cookie.
    assert_eq!(
        reset(&site, None, r#"{"ttp":"ttp-reset-body"}"#).await?,
        (200, json!({"erased": 1}))
    );
    for (ttp, id) in [("ttp-reset-cookie", "p-r1"), ("ttp-reset-body", "p-r2")] {
        site.collect_as(None, Some(ttp), &event("purchase", id, granted(), None))
            .await?;
        let sent = received(&site, id).await?;
        assert_eq!(sent["user"].get("email"), None, "{sent}");
    }
    // Bad input is named.
    let (status, answer) = reset(&site, None, "{").await?;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("malformed_json"))
    );
    let (status, answer) = reset(&site, None, r#"{"ttp":"a b"}"#).await?;
    assert_eq!(
        (status, &answer["error"]["path"]),
        (400, &json!("ttp")),
        "{answer}"
    );
    Ok(())
}
