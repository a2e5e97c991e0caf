//! The dashboard at `/admin` (issue 4, "Dashboard"): its login and session cookie over HTTP,
//! then in a real headless Chromium — log in, compare the page's figures with the health API,
//! read the hourly charts bar by bar, press Test, toggle live, and save the screenshot the
//! README shows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};
use ttedge_e2e::browser::{Browser, BrowserOptions};
use ttedge_e2e::{repo_root, Site};

const ADMIN_TOKEN: &str = "e2e-dashboard-admin-token-3c9d";
const MASTER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
const HOST: &str = "t.shop-dash.test";
const TOKEN: &str = "dashboard-site-token-5e6f7a8b9c0d1e2fDASH";
const PIXEL: &str = "C4DASH00000000000000";

async fn start() -> anyhow::Result<Site> {
    let site = Site::start(
        "e2e-dashboard-default-token-0001",
        "C4DASHDEFAULT0000000",
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await?;
    let settings = json!({
        "pixel_id": PIXEL,
        "access_token": TOKEN,
        "test_event_code": "TEST4242",
        "live": true,
        "site_origins": ["https://shop-dash.test"],
    });
    site.put_destination(HOST, &settings).await?;
    Ok(site)
}

/// Traffic for the figures: delivered events of several kinds, one parked event, and two
/// cash-on-delivery checkouts: one confirmed (a purchase more), one cancelled.
async fn traffic(site: &Site) -> anyhow::Result<()> {
    site.tiktok.reject_batches_containing(
        &["dash-bad"],
        40002,
        "Invalid value for field: content_id",
    );
    let mut batch = Vec::new();
    for i in 0..6 {
        // The first two are checkouts whose orders wait for their confirmation.
        let (event, order_id) = match i {
            0 | 1 => ("place_order", Some(format!("dash-order-{i}"))),
            _ => ("purchase", None),
        };
        batch.push(json!({
            "event": event,
            "event_id": format!("dash-{i}"),
            "user_data": {"email": format!("buyer{i}@example.com")},
            "properties": {"value": 20 + i, "currency": "eur", "order_id": order_id},
            "context": {"pixel": if i % 2 == 0 { "blocked" } else { "loaded" }},
        }));
    }
    batch.push(json!({"event": "view_content", "event_id": "dash-bad"}));
    let (status, _, answer) = site
        .collect_on(HOST, None, &json!({ "batch": batch }))
        .await?;
    anyhow::ensure!(status == 202, "collect answered {status}: {answer}");
    for (order, status) in [("dash-order-0", "paid"), ("dash-order-1", "cancelled")] {
        let (code, answer) = site
            .admin(
                Method::POST,
                &format!("/admin/api/destinations/{HOST}/orders/{order}"),
                Some(&json!({ "status": status }).to_string()),
            )
            .await?;
        anyhow::ensure!(code == 202 || code == 200, "{order}: {code} {answer}");
    }
    site.wait_admin(
        &format!("/admin/api/destinations/{HOST}/health"),
        "7 delivered (a confirmed order among them) and 1 parked",
        Duration::from_secs(30),
        |h| h["windows"]["last_hour"]["delivered"] == 7 && h["windows"]["last_hour"]["parked"] == 1,
    )
    .await?;
    Ok(())
}

/// What the hourly charts draw: each series is a field of the health API's `hourly[]`.
const CHART_SERIES: [&str; 7] = [
    "received",
    "delivered",
    "parked",
    "failed_calls",
    "p50",
    "p95",
    "p99",
];

/// Figures by (series, hour start in ms).
type Points = BTreeMap<(String, u64), u64>;

/// Every bar and point of the page's hourly charts, from their `data-series`,
/// `data-hour-ms` and `data-value`.
async fn chart_points(browser: &Browser) -> anyhow::Result<Points> {
    let found = browser
        .execute(
            "return Array.from(document.querySelectorAll('svg [data-series]')).map(e => \
             [e.getAttribute('data-series'), e.getAttribute('data-hour-ms'), \
             e.getAttribute('data-value')])",
            vec![],
        )
        .await?;
    let mut points = Points::new();
    for item in found.as_array().context("not an array")? {
        let field = |i: usize| item[i].as_str().with_context(|| format!("{item}"));
        let series = field(0)?.to_string();
        let hour: u64 = field(1)?.parse().with_context(|| format!("{item}"))?;
        let value: u64 = field(2)?.parse().with_context(|| format!("{item}"))?;
        anyhow::ensure!(
            points.insert((series, hour), value).is_none(),
            "two elements for {item}"
        );
    }
    Ok(points)
}

/// The figures of `health["hourly"]` the charts must draw (latencies only for hours with
/// calls).
fn expected_points(health: &Value) -> anyhow::Result<Points> {
    let mut points = Points::new();
    for hour in health["hourly"].as_array().context("no hourly series")? {
        let hour_ms = hour["hour_ms"]
            .as_u64()
            .with_context(|| format!("{hour}"))?;
        for series in CHART_SERIES {
            if let Some(value) = hour[series].as_u64() {
                points.insert((series.to_string(), hour_ms), value);
            }
        }
    }
    Ok(points)
}

fn hours(points: &Points) -> BTreeSet<u64> {
    points.keys().map(|(_, hour)| *hour).collect()
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_writes_need_the_csrf_header() -> anyhow::Result<()>
{
    let site = start().await?;
    let base = site.worker.base_url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // Not logged in: the login form, under a policy that loads nothing from elsewhere.
    let page = client.get(format!("{base}/admin")).send().await?;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await?;
    assert!(html.contains("name=\"token\""), "{html}");

    // A wrong token: the form again, 401, no cookie.
    let wrong = client
        .post(format!("{base}/admin/login"))
        .header("CF-Connecting-IP", "192.0.2.50")
        .form(&[("token", "not-the-token")])
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    // The right token: 303 to /admin with the session cookie.
    let right = client
        .post(format!("{base}/admin/login"))
        .header("CF-Connecting-IP", "192.0.2.50")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await?;
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/admin");
    let cookie = right.headers()["set-cookie"].to_str()?.to_string();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let session = cookie.split(';').next().unwrap_or_default().to_string();
    assert!(!cookie.contains(ADMIN_TOKEN));

    // The cookie opens the page and the API; a forged one does not.
    let page = client
        .get(format!("{base}/admin"))
        .header("Cookie", &session)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains(HOST) && page.contains("data-action=\"test\""),
        "{page}"
    );
    for origin in ["https://", "http://"] {
        assert!(
            !page.contains(&format!("src=\"{origin}")),
            "the page loads from another host"
        );
        assert!(
            !page.contains(&format!("href=\"{origin}")),
            "the page links another host"
        );
    }
    let api = client
        .get(format!("{base}/admin/api/destinations"))
        .header("Cookie", &session)
        .send()
        .await?;
    assert_eq!(api.status(), 200);
    let forged = format!("{}x", session.trim_end_matches(|c: char| c != '.'));
    let api = client
        .get(format!("{base}/admin/api/destinations"))
        .header("Cookie", &forged)
        .send()
        .await?;
    assert_eq!(api.status(), 401);

    // A cookie-authenticated write needs X-Requested-With (a cross-site form cannot send it).
    let live = format!("{base}/admin/api/destinations/{HOST}/live");
    let refused = client
        .post(&live)
        .header("Cookie", &session)
        .json(&json!({"live": false}))
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await?;
    assert_eq!(body["error"]["code"], "csrf");
    let allowed = client
        .post(&live)
        .header("Cookie", &session)
        .header("X-Requested-With", "ttedge")
        .json(&json!({"live": false}))
        .send()
        .await?;
    assert_eq!(allowed.status(), 200);

    // A second browser's session, to see that one logout ends only its own session.
    let other = client
        .post(format!("{base}/admin/login"))
        .header("CF-Connecting-IP", "192.0.2.51")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await?;
    let other = other.headers()["set-cookie"].to_str()?;
    let other = other.split(';').next().unwrap_or_default().to_string();

    // Logging out clears the cookie, and ends the session on the server: a copy of the
    // cookie kept from before opens neither the API nor the page.
    let out = client
        .post(format!("{base}/admin/logout"))
        .header("Cookie", &session)
        .send()
        .await?;
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"].to_str()?.contains("Max-Age=0"));
    let api = client
        .get(format!("{base}/admin/api/destinations"))
        .header("Cookie", &session)
        .header("CF-Connecting-IP", "192.0.2.52")
        .send()
        .await?;
    assert_eq!(
        api.status(),
        401,
        "the copied cookie still works after logout"
    );
    let page = client
        .get(format!("{base}/admin"))
        .header("Cookie", &session)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains("name=\"token\""),
        "the page after logout: {page}"
    );
    let api = client
        .get(format!("{base}/admin/api/destinations"))
        .header("Cookie", &other)
        .send()
        .await?;
    assert_eq!(api.status(), 200, "another browser's session ended too");
    Ok(())
}

#[tokio::test]
async fn the_dashboard_in_chromium_matches_the_api_tests_and_toggles_live() -> anyhow::Result<()> {
    let site = start().await?;
    traffic(&site).await?;
    let health = site
        .admin_get(&format!("/admin/api/destinations/{HOST}/health"))
        .await?;

    let browser = Browser::start(BrowserOptions::new()).await?;
    // `localhost` is a secure context, so Chromium keeps the `Secure` session cookie over http.
    let base = format!("http://localhost:{}", site.worker.port());
    browser.goto(&format!("{base}/admin")).await?;
    browser.fill("input[name=token]", ADMIN_TOKEN).await?;
    browser.submit("form").await?;
    browser
        .wait_for(
            &format!("[data-action=test][data-host=\"{HOST}\"]"),
            Duration::from_secs(15),
        )
        .await?;
    let session = browser
        .cookie("ttedge_session")
        .await?
        .context("no session cookie after logging in")?;
    assert!(session.http_only && session.secure, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");

    // The page's figures are the health API's.
    let integer = |path: &str| {
        let mut value = &health;
        for key in path.split('.') {
            value = &value[key];
        }
        value.as_u64().map_or("–".to_string(), |n| n.to_string())
    };
    for metric in [
        "windows.last_hour.received",
        "windows.last_hour.delivered",
        "windows.last_hour.parked",
        "windows.last_24h.delivered",
        "windows.last_7d.received",
        "windows.last_hour.cod_confirmed",
        "windows.last_hour.cod_cancelled",
        "windows.last_7d.cod_confirmed",
        "current.queue_depth",
        "current.parked",
        "emq.events",
        "recovery.conversions_delivered",
        "recovery.unseen_by_pixel",
        "recovery.pixel_missing",
    ] {
        let name = metric.trim_start_matches("windows.");
        let shown = browser.text(&format!("[data-metric=\"{name}\"]")).await?;
        assert_eq!(shown, integer(metric), "{name}");
    }
    assert_eq!(integer("windows.last_hour.delivered"), "7");
    assert_eq!(integer("windows.last_hour.cod_confirmed"), "1");
    assert_eq!(integer("windows.last_hour.cod_cancelled"), "1");
    let cod_rate = health["windows"]["last_24h"]["cod_confirmation_rate"]
        .as_f64()
        .context("no COD confirmation rate")?;
    assert_eq!(cod_rate, 0.5);
    assert_eq!(
        browser
            .text("[data-metric=\"last_24h.cod_confirmation_rate\"]")
            .await?,
        format!("{:.1}", cod_rate * 100.0)
    );
    assert_eq!(integer("recovery.unseen_by_pixel"), "3");
    // Three of the eight stored events came from pages whose pixel was blocked.
    assert_eq!(integer("recovery.pixel_missing"), "3");
    let share = health["recovery"]["pixel_missing_share"]
        .as_f64()
        .context("no pixel-missing share")?;
    assert_eq!(
        browser
            .text("[data-metric=\"recovery.pixel_missing_share\"]")
            .await?,
        format!("{:.1}", share * 100.0)
    );
    let rate = health["windows"]["last_hour"]["success_rate"]
        .as_f64()
        .context("no success rate")?;
    let shown = browser
        .text("[data-metric=\"last_hour.success_rate\"]")
        .await?;
    assert_eq!(shown, format!("{:.1}", rate * 100.0));
    let mean = health["emq"]["mean"].as_f64().context("no EMQ mean")?;
    assert_eq!(
        browser.text("[data-metric=\"emq.mean\"]").await?,
        format!("{mean:.1}")
    );
    let parked_rows = browser.texts("[data-action=replay][data-event-id]").await?;
    assert_eq!(
        parked_rows.len(),
        1,
        "one parked event with its replay button"
    );

    // The hourly charts draw the health API's `hourly` series, bar by bar and point by point.
    let mut drawn = chart_points(&browser).await?;
    let mut hourly = expected_points(&health)?;
    if hours(&drawn) != hours(&hourly) {
        // The hour turned between the API's answer and the page: read both again.
        browser.goto(&format!("{base}/admin")).await?;
        drawn = chart_points(&browser).await?;
        let health = site
            .admin_get(&format!("/admin/api/destinations/{HOST}/health"))
            .await?;
        hourly = expected_points(&health)?;
    }
    assert_eq!(
        drawn, hourly,
        "the charts are the health API's hourly figures"
    );
    assert_eq!(hours(&drawn).len(), 25, "25 hours: {drawn:?}");
    let series_total = |name: &str| -> u64 {
        drawn
            .iter()
            .filter(|((series, _), _)| series == name)
            .map(|(_, value)| value)
            .sum()
    };
    // The traffic above: 8 received (the confirmation among them), 7 delivered, 1 parked,
    // calls with their latency.
    assert_eq!(series_total("received"), 8, "{drawn:?}");
    assert_eq!(series_total("delivered"), 7, "{drawn:?}");
    assert_eq!(series_total("parked"), 1, "{drawn:?}");
    assert!(
        drawn.keys().any(|(series, _)| series == "p50"),
        "a latency point: {drawn:?}"
    );
    let page_text = browser
        .execute("return document.body.textContent", vec![])
        .await?;
    let page_text = page_text.as_str().context("no page text")?;
    assert!(!page_text.contains("No hourly data yet"), "{page_text}");

    // Test: the result with its latency and coaching, sent with the destination's test code.
    let requests_before = site.tiktok.requests().len();
    browser
        .click(&format!("[data-action=test][data-host=\"{HOST}\"]"))
        .await?;
    let result_js =
        format!("return (document.getElementById('test-result-{HOST}') || {{}}).textContent || ''");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let result = loop {
        let text = browser.execute(&result_js, vec![]).await?;
        let text = text.as_str().unwrap_or_default().to_string();
        if text.contains("successful") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(result.contains("Connection test successful!"), "{result}");
    assert!(result.contains("ms"), "latency shown: {result}");
    assert!(
        result.to_lowercase().contains("email"),
        "coaching shown: {result}"
    );
    let test_request = site
        .tiktok
        .requests()
        .into_iter()
        .skip(requests_before)
        .find(|r| r.field("test_event_code") == Some("TEST4242"))
        .context("the connection test never reached TikTok with the test code")?;
    assert_eq!(test_request.header("access-token"), Some(TOKEN));

    // Screenshot with real figures and a test result on it; the README's copy in docs/ is
    // refreshed with TTEDGE_UPDATE_SCREENSHOT=1, so a plain run leaves the checkout clean.
    let shot = match std::env::var_os("TTEDGE_UPDATE_SCREENSHOT") {
        Some(_) => repo_root().join("docs/dashboard.png"),
        None => repo_root().join("target/e2e-logs/dashboard.png"),
    };
    // The whole page, charts included.
    browser.screenshot_whole_page(&shot, 1_600).await?;

    // Live off from the page: the API agrees.
    let switch = format!("[data-action=live][data-host=\"{HOST}\"]");
    assert_eq!(
        browser.attr(&switch, "data-live").await?.as_deref(),
        Some("true")
    );
    browser.click(&switch).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let stored = site
            .admin_get(&format!("/admin/api/destinations/{HOST}"))
            .await?;
        if stored["live"] == false {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "live never went off: {stored}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .wait_for(
            &format!("{switch}[data-live=\"false\"]"),
            Duration::from_secs(15),
        )
        .await?;
    browser.close().await?;
    Ok(())
}
