//! Connecting a shop from the dashboard alone (issue 12): a real browser drives the page —
//! the admin API is only called to read back what the page did.
//!
//! One `wrangler dev` with no destination and no default, so `/admin` opens on the Add form.
//! The walk: log in; add a destination with a bad Pixel ID and see the error next to Pixel
//! ID, then a bad second origin next to Site origins; save; see the token masked; Test, while
//! the mock TikTok receives a `ViewContent` with that token and test code; turn it Live
//! (no question asked: it passed a test); send an event to its host and see it counted;
//! import a pixel baseline (a bad date refused under From) and see the delta; edit
//! without retyping the token and Test again; Delete, confirming. Then the Add form by
//! keyboard only (Tab order, Enter submits), a Live switch that asks first (never tested),
//! Copy, and Delete again, back to the first run. All of it in headless Chromium, then in
//! headless Firefox ESR (geckodriver).
//!
//! `TTEDGE_UPDATE_SCREENSHOT=1` writes the screenshots to `docs/setup-*.png` (the README's);
//! otherwise they go to `target/e2e-logs/`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use fantoccini::key::Key;
use reqwest::Method;
use serde_json::{json, Value};
use ttedge_e2e::browser::{Browser, BrowserOptions};
use ttedge_e2e::{repo_root, Site};

const ADMIN_TOKEN: &str = "e2e-setup-admin-token-71c2";
const MASTER_KEY: &str = "1f2e3d4c5b6a79880796a5b4c3d2e1f00112233445566778899aabbccddeeff1";
const WAIT: Duration = Duration::from_secs(20);

/// One walk's destination: its host, page origin, pixel, token and test codes.
struct Shop {
    host: String,
    origin: String,
    pixel: &'static str,
    token: String,
    test_code: &'static str,
    second_test_code: &'static str,
}

impl Shop {
    fn new(name: &str) -> Shop {
        Shop {
            host: format!("t.{name}.test"),
            origin: format!("https://{name}.test"),
            pixel: "C4SETUP00000000000001",
            token: format!("setup-token-{name}-5d6e7f8091a2WXYZ"),
            test_code: "TEST7788",
            second_test_code: "TEST9900",
        }
    }
}

async fn start() -> anyhow::Result<Site> {
    // No pixel and no token in the vars: no default destination, a first run.
    Site::start("", "", ADMIN_TOKEN, &[("MASTER_KEY", MASTER_KEY)]).await
}

fn screenshot_path(name: &str) -> std::path::PathBuf {
    match std::env::var_os("TTEDGE_UPDATE_SCREENSHOT") {
        Some(_) => repo_root().join(format!("docs/setup-{name}.png")),
        None => repo_root().join(format!("target/e2e-logs/setup-{name}.png")),
    }
}

/// A screenshot of the whole page (the window grows to fit it), when `shots` is on.
async fn shot(browser: &Browser, shots: bool, name: &str) -> anyhow::Result<()> {
    if !shots {
        return Ok(());
    }
    browser
        .screenshot_whole_page(screenshot_path(name), 900)
        .await
}

/// What `js` returns, as a string (`""` for anything else).
async fn js_text(browser: &Browser, js: &str) -> anyhow::Result<String> {
    Ok(browser
        .execute(js, vec![])
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Polls `js` until it returns a string for which `done` holds; returns it.
async fn wait_js(
    browser: &Browser,
    js: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        // A page in the middle of navigating may not answer: try again.
        let text = js_text(browser, js).await.unwrap_or_default();
        if done(&text) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{what} never came; last {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the element `css`, or `""` when there is none.
fn text_of(css: &str) -> String {
    format!("const e = document.querySelector({css:?}); return e ? e.textContent : '';")
}

/// The value of the input `#id`.
async fn value_of(browser: &Browser, id: &str) -> anyhow::Result<String> {
    js_text(
        browser,
        &format!("return document.getElementById({id:?}).value"),
    )
    .await
}

/// Replaces `window.confirm` for the page shown now: it records each question in
/// `sessionStorage` (which outlives the navigation a confirmed action makes) and answers
/// `answer`.
async fn answer_confirm(browser: &Browser, answer: bool) -> anyhow::Result<()> {
    browser
        .execute(
            "sessionStorage.removeItem('asked'); const answer = arguments[0]; \
             window.confirm = question => { sessionStorage.setItem('asked', question); \
             return answer; };",
            vec![json!(answer)],
        )
        .await?;
    Ok(())
}

/// The question `confirm()` was asked since [`answer_confirm`], if any.
async fn asked(browser: &Browser) -> anyhow::Result<String> {
    js_text(browser, "return sessionStorage.getItem('asked') || ''").await
}

/// `GET /admin/api/destinations/{host}`: the status and the answer.
async fn stored(site: &Site, host: &str) -> anyhow::Result<(u16, Value)> {
    site.admin(
        Method::GET,
        &format!("/admin/api/destinations/{host}"),
        None,
    )
    .await
}

/// Waits until the API reads `done` for `host`.
async fn wait_stored(
    site: &Site,
    host: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, answer) = stored(site, host).await?;
        if done(status, &answer) {
            return Ok(answer);
        }
        if Instant::now() > deadline {
            bail!("{host} never showed {what}; last {status} {answer}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Presses Test on `host`'s card and waits for the result; returns its text.
async fn press_test(browser: &Browser, host: &str) -> anyhow::Result<String> {
    browser
        .click(&format!("[data-action=test][data-host=\"{host}\"]"))
        .await?;
    wait_js(
        browser,
        &text_of(&format!("#test-result-{}", host.replace('.', "\\."))),
        "a test result",
        |t| t.contains("HTTP") || t.contains("Failed") || t.contains("error"),
    )
    .await
}

/// The connection test that reached TikTok after `before` requests, with `test_code`.
fn test_request(
    site: &Site,
    before: usize,
    test_code: &str,
) -> anyhow::Result<ttedge_e2e::mock::RecordedRequest> {
    site.tiktok
        .requests()
        .into_iter()
        .skip(before)
        .find(|r| r.field("test_event_code") == Some(test_code))
        .with_context(|| {
            format!(
                "no test event with {test_code} reached TikTok: {}",
                site.tiktok.summary()
            )
        })
}

/// The label of the focused element (`Advanced` for the summary, a button's text).
const FOCUSED: &str = "const a = document.activeElement; if (!a) return ''; \
    if (a.id) { const l = document.querySelector('label[for=\"' + a.id + '\"]'); \
    if (l) return l.textContent; } return a.tagName + ':' + a.textContent;";

/// Presses `keys` on the focused element, as a user at the keyboard would.
async fn press(browser: &Browser, keys: &str) -> anyhow::Result<()> {
    let focused = browser.client().active_element().await?;
    focused.send_keys(keys).await?;
    Ok(())
}

/// Logs in on `/admin`; the page then opens on the first run's Add form.
async fn log_in(browser: &Browser, base: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{base}/admin")).await?;
    browser.fill("input[name=token]", ADMIN_TOKEN).await?;
    browser.submit("form").await?;
    browser
        .wait_for("#destination-form[data-mode=add]", WAIT)
        .await?;
    Ok(())
}

/// Fills the Add form's main fields (the token too) and presses Save.
async fn fill_and_save(
    browser: &Browser,
    fields: &[(&str, &str)],
    token: &str,
) -> anyhow::Result<()> {
    for (name, value) in fields {
        browser.fill(&format!("#f-{name}"), value).await?;
    }
    browser.fill("#f-access_token", token).await?;
    let save = "#destination-form button[type=submit]";
    ensure!(browser.text(save).await? == "Save", "the button is Save");
    browser.click(save).await?;
    Ok(())
}

/// The whole walk in one browser; `shots` saves the screenshots.
async fn walk(site: &Site, browser: &Browser, shop: &Shop, shots: bool) -> anyhow::Result<()> {
    let base = format!("http://localhost:{}", site.worker.port());
    let host = shop.host.as_str();
    let card = format!("[data-destination=\"{host}\"]");

    // First run: the Add form, the cursor in Site host.
    log_in(browser, &base).await?;
    let focused = js_text(browser, FOCUSED).await?;
    ensure!(focused == "Site host", "{focused}");
    let title = js_text(browser, &text_of("#destination-form-card h3")).await?;
    ensure!(title == "Add destination", "{title}");
    shot(browser, shots, "1-first-run").await?;

    // A bad Pixel ID: its error next to Pixel ID; the values stay, except the token.
    fill_and_save(
        browser,
        &[
            ("host", host),
            ("pixel_id", "C4-BAD!"),
            ("test_event_code", shop.test_code),
            ("site_origins", &shop.origin),
        ],
        &shop.token,
    )
    .await?;
    let error = wait_js(
        browser,
        &text_of("#e-pixel_id"),
        "the Pixel ID error",
        |t| !t.is_empty(),
    )
    .await?;
    ensure!(error.contains("letters and digits"), "{error}");
    let beside = js_text(
        browser,
        "return document.getElementById('e-pixel_id').closest('.field').querySelector('label').textContent",
    )
    .await?;
    ensure!(beside == "Pixel ID", "the error is under {beside:?}");
    ensure!(
        js_text(browser, FOCUSED).await? == "Pixel ID",
        "the cursor goes to the field"
    );
    ensure!(value_of(browser, "f-host").await? == host);
    ensure!(value_of(browser, "f-pixel_id").await? == "C4-BAD!");
    ensure!(value_of(browser, "f-test_event_code").await? == shop.test_code);
    ensure!(value_of(browser, "f-site_origins").await? == shop.origin);
    ensure!(
        value_of(browser, "f-access_token").await?.is_empty(),
        "the token stays"
    );
    ensure!(stored(site, host).await?.0 == 404, "nothing stored");
    shot(browser, shots, "2-field-error").await?;

    // A bad second origin: `site_origins[1]` is shown next to Site origins.
    fill_and_save(
        browser,
        &[
            ("pixel_id", shop.pixel),
            (
                "site_origins",
                &format!("{}\nftp://bad.example", shop.origin),
            ),
        ],
        &shop.token,
    )
    .await?;
    let error = wait_js(
        browser,
        &text_of("#e-site_origins"),
        "the origin error",
        |t| !t.is_empty(),
    )
    .await?;
    ensure!(
        error.starts_with("Line 2: ") && error.contains("ftp://bad.example"),
        "{error}"
    );
    ensure!(
        browser.text("#e-pixel_id").await?.is_empty(),
        "the old error is gone"
    );
    ensure!(stored(site, host).await?.0 == 404, "nothing stored");

    // Fixed: saved, and the page shows the new destination, its token masked, not live.
    fill_and_save(browser, &[("site_origins", &shop.origin)], &shop.token).await?;
    browser.wait_for(&card, WAIT).await?;
    let last4 = &shop.token[shop.token.len() - 4..];
    let masked = browser
        .text(&format!("{card} dd[data-field=access_token]"))
        .await?;
    ensure!(masked == format!("…{last4}"), "{masked}");
    let page = browser.source().await?;
    ensure!(!page.contains(&shop.token), "the token is on the page");
    let (_, answer) = stored(site, host).await?;
    ensure!(answer["pixel_id"] == shop.pixel, "{answer}");
    ensure!(answer["test_event_code"] == shop.test_code, "{answer}");
    ensure!(answer["site_origins"] == json!([shop.origin]), "{answer}");
    ensure!(answer["access_token"] == format!("…{last4}"), "{answer}");
    ensure!(
        answer["live"] == false,
        "a new destination starts not live: {answer}"
    );
    let switch = format!("[data-action=live][data-host=\"{host}\"]");
    ensure!(browser.attr(&switch, "data-live").await?.as_deref() == Some("false"));
    ensure!(browser.attr(&switch, "aria-label").await?.as_deref() == Some("Live"));

    // Install: the snippet with this host's endpoint.
    let snippet = browser
        .text(&format!("#snippet-{}", host.replace('.', "\\.")))
        .await?;
    ensure!(
        snippet.contains(&format!("endpoint: 'https://{host}'"))
            && snippet.contains(&format!("src=\"https://{host}/sdk.js\"")),
        "{snippet}"
    );

    // Test: success with its latency, while TikTok got a ViewContent with the token and the
    // test code.
    let before = site.tiktok.requests().len();
    let result = press_test(browser, host).await?;
    ensure!(result.contains("Connection test successful!"), "{result}");
    let latency = result
        .split(" ms")
        .next()
        .and_then(|head| head.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok())
        .with_context(|| format!("no latency in {result}"))?;
    ensure!(latency < 20_000, "{result}");
    ensure!(
        result.contains("HTTP 200") && result.contains("TikTok code 0"),
        "{result}"
    );
    ensure!(
        result.contains("EMQ"),
        "the test event's match quality: {result}"
    );
    let sent = test_request(site, before, shop.test_code)?;
    ensure!(sent.header("access-token") == Some(shop.token.as_str()));
    ensure!(sent.field("event_source_id") == Some(shop.pixel));
    ensure!(
        sent.data().first().and_then(|e| e["event"].as_str()) == Some("ViewContent"),
        "{:?}",
        sent.json
    );
    // The result stays on the card.
    browser.goto(&format!("{base}/admin?host={host}")).await?;
    let kept = browser.text(&format!("{card} .result")).await?;
    ensure!(
        kept.contains("Connection test successful!") && kept.contains("Tested"),
        "{kept}"
    );
    shot(browser, shots, "3-tested").await?;

    // Live: it passed a test, so no question.
    answer_confirm(browser, false).await?;
    browser.click(&switch).await?;
    browser
        .wait_for(&format!("{switch}[data-live=\"true\"]"), WAIT)
        .await?;
    ensure!(asked(browser).await?.is_empty(), "asked before going live");
    wait_stored(site, host, "live", |_, a| a["live"] == true).await?;

    // An event to its host is delivered with its token and counted on the page.
    let (status, _, answer) = site
        .collect_on(
            host,
            Some(&shop.origin),
            &json!({"event": "purchase", "event_id": format!("{host}-1"),
                    "user": {"email": "buyer@example.com"},
                    "properties": {"value": 10, "currency": "usd"}}),
        )
        .await?;
    ensure!(status == 202, "{answer}");
    let deadline = Instant::now() + WAIT;
    loop {
        browser.goto(&format!("{base}/admin?host={host}")).await?;
        let delivered = browser
            .text("[data-metric=\"last_hour.delivered\"]")
            .await?;
        if delivered == "1" {
            break;
        }
        ensure!(Instant::now() < deadline, "never counted: {delivered}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ensure!(browser.text("[data-metric=\"last_hour.received\"]").await? == "1");
    let event = site
        .tiktok
        .requests()
        .into_iter()
        .find(|r| r.event_ids().contains(&format!("{host}-1")))
        .context("the event never reached TikTok")?;
    ensure!(event.header("access-token") == Some(shop.token.as_str()));

    // A pixel baseline for today: a bad date is refused under From; then the delta shows
    // (the server delivered 1 conversion, the pixel is said to have seen none).
    let today = time::OffsetDateTime::now_utc().date().to_string();
    browser.fill("#b-from", "2026-13-01").await?;
    browser.fill("#b-to", &today).await?;
    browser.fill("#b-pixel_conversions", "0").await?;
    let import = "#baseline-form button[type=submit]";
    ensure!(browser.text(import).await? == "Import");
    browser.click(import).await?;
    let error = wait_js(browser, &text_of("#eb-from"), "the From error", |t| {
        !t.is_empty()
    })
    .await?;
    ensure!(error.contains("YYYY-MM-DD"), "{error}");
    browser.fill("#b-from", &today).await?;
    browser.click(import).await?;
    let delta = "[data-metric=\"recovery.baselines.0.delta\"]";
    browser.wait_until_text(delta, |t| t == "1", WAIT).await?;
    ensure!(
        browser
            .text("[data-metric=\"recovery.baselines.0.server_conversions\"]")
            .await?
            == "1"
    );
    let bar = "[data-baseline=\"0\"][data-field=server_conversions]";
    ensure!(browser.attr(bar, "data-value").await?.as_deref() == Some("1"));
    let health = site
        .admin_get(&format!("/admin/api/destinations/{host}/health"))
        .await?;
    let recovered = &health["recovery"]["baselines"][0];
    ensure!(
        recovered["from"] == today && recovered["delta"] == 1,
        "{health}"
    );
    shot(browser, shots, "4-live").await?;

    // Edit without retyping the token: another test code; the stored token still works.
    browser
        .click(&format!("{card} input[name=edit] + button"))
        .await?;
    browser
        .wait_for("#destination-form[data-mode=edit]", WAIT)
        .await?;
    ensure!(value_of(browser, "f-access_token").await?.is_empty());
    ensure!(value_of(browser, "f-pixel_id").await? == shop.pixel);
    ensure!(value_of(browser, "f-site_origins").await? == shop.origin);
    browser
        .fill("#f-test_event_code", shop.second_test_code)
        .await?;
    shot(browser, shots, "5-edit").await?;
    browser
        .click("#destination-form button[type=submit]")
        .await?;
    let code = format!("{card} dd[data-field=test_event_code]");
    browser
        .wait_until_text(&code, |t| t == shop.second_test_code, WAIT)
        .await?;
    let (_, answer) = stored(site, host).await?;
    ensure!(answer["live"] == true, "editing kept the switch: {answer}");
    ensure!(answer["access_token"] == format!("…{last4}"), "{answer}");
    let before = site.tiktok.requests().len();
    let result = press_test(browser, host).await?;
    ensure!(result.contains("Connection test successful!"), "{result}");
    let sent = test_request(site, before, shop.second_test_code)?;
    ensure!(sent.header("access-token") == Some(shop.token.as_str()));

    // Delete: nothing happens when the question is answered no; it is deleted on yes.
    let delete = format!("[data-action=delete][data-host=\"{host}\"]");
    ensure!(browser.text(&delete).await? == "Delete");
    answer_confirm(browser, false).await?;
    browser.click(&delete).await?;
    wait_js(
        browser,
        "return sessionStorage.getItem('asked') || ''",
        "a question",
        |q| !q.is_empty(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(stored(site, host).await?.0 == 200, "deleted without a yes");
    answer_confirm(browser, true).await?;
    browser.click(&delete).await?;
    wait_stored(site, host, "deleted", |status, _| status == 404).await?;
    browser
        .wait_for("#destination-form[data-mode=add]", WAIT)
        .await?;
    let question = asked(browser).await?;
    ensure!(
        question.contains(&format!("Delete the destination {host}")),
        "{question}"
    );
    Ok(())
}

/// The Add form with the keyboard only: Tab reaches the fields in label order, then
/// Advanced and Save; Shift+Tab goes back; Enter in a field saves.
async fn keyboard(site: &Site, browser: &Browser, shop: &Shop) -> anyhow::Result<()> {
    let host = shop.host.as_str();
    ensure!(js_text(browser, FOCUSED).await? == "Site host");
    for (label, value) in [
        ("Site host", host),
        ("Pixel ID", shop.pixel),
        ("Access Token", shop.token.as_str()),
        ("Test Event Code", ""),
        ("Baseline Pixel Code", ""),
        ("Site origins", shop.origin.as_str()),
    ] {
        let focused = js_text(browser, FOCUSED).await?;
        ensure!(
            focused == label,
            "Tab reached {focused:?} instead of {label}"
        );
        if !value.is_empty() {
            press(browser, value).await?;
        }
        press(browser, &Key::Tab.to_string()).await?;
    }
    ensure!(js_text(browser, FOCUSED).await? == "SUMMARY:Advanced");
    press(browser, &Key::Tab.to_string()).await?;
    ensure!(js_text(browser, FOCUSED).await? == "BUTTON:Save");
    let back = format!("{}{}", Key::Shift, Key::Tab);
    for label in [
        "SUMMARY:Advanced",
        "Site origins",
        "Baseline Pixel Code",
        "Test Event Code",
    ] {
        press(browser, &back).await?;
        let focused = js_text(browser, FOCUSED).await?;
        ensure!(
            focused == label,
            "Shift+Tab reached {focused:?} instead of {label}"
        );
    }
    ensure!(stored(site, host).await?.0 == 404);
    press(browser, &Key::Enter.to_string()).await?;
    let answer = wait_stored(site, host, "saved", |status, _| status == 200).await?;
    ensure!(answer["pixel_id"] == shop.pixel, "{answer}");
    ensure!(answer["site_origins"] == json!([shop.origin]), "{answer}");
    ensure!(answer["live"] == false, "{answer}");
    let last4 = &shop.token[shop.token.len() - 4..];
    ensure!(answer["access_token"] == format!("…{last4}"), "{answer}");
    browser
        .wait_for(&format!("[data-destination=\"{host}\"]"), WAIT)
        .await?;
    Ok(())
}

/// A destination that never passed a test: Live asks first, and No leaves it off. Copy
/// copies the snippet (or selects it where the clipboard is closed). Delete returns to the
/// first run.
async fn never_tested(site: &Site, browser: &Browser, shop: &Shop) -> anyhow::Result<()> {
    let host = shop.host.as_str();
    let switch = format!("[data-action=live][data-host=\"{host}\"]");
    answer_confirm(browser, false).await?;
    browser.click(&switch).await?;
    let question = wait_js(
        browser,
        "return sessionStorage.getItem('asked') || ''",
        "the question",
        |q| !q.is_empty(),
    )
    .await?;
    ensure!(
        question.contains("never passed a connection test"),
        "{question}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        stored(site, host).await?.1["live"] == false,
        "live without a yes"
    );
    answer_confirm(browser, true).await?;
    browser.click(&switch).await?;
    wait_stored(site, host, "live", |_, a| a["live"] == true).await?;
    browser
        .wait_for(&format!("{switch}[data-live=\"true\"]"), WAIT)
        .await?;

    let copy = format!("[data-action=copy][data-target=\"snippet-{host}\"]");
    ensure!(browser.text(&copy).await? == "Copy");
    browser.click(&copy).await?;
    let said = wait_js(browser, &text_of(&copy), "Copy's answer", |t| t != "Copy").await?;
    let snippet = browser
        .text(&format!("#snippet-{}", host.replace('.', "\\.")))
        .await?;
    match said.as_str() {
        "Copied" => {}
        "Press Ctrl+C" => {
            let selected = js_text(browser, "return getSelection().toString()").await?;
            ensure!(selected.trim() == snippet.trim(), "{selected:?}");
        }
        other => bail!("Copy said {other:?}"),
    }

    answer_confirm(browser, true).await?;
    browser
        .click(&format!("[data-action=delete][data-host=\"{host}\"]"))
        .await?;
    wait_stored(site, host, "deleted", |status, _| status == 404).await?;
    browser
        .wait_for("#destination-form[data-mode=add]", WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_shop_is_connected_tested_and_turned_live_from_the_dashboard_alone() -> anyhow::Result<()>
{
    let site = start().await?;

    // The page's script runs by its hash: no 'unsafe-inline' for scripts.
    let page = site
        .client
        .get(format!("{}/admin", site.worker.base_url()))
        .send()
        .await?;
    let csp = page.headers()["content-security-policy"]
        .to_str()?
        .to_string();
    ensure!(csp.contains("script-src 'sha256-"), "{csp}");
    ensure!(!csp.contains("script-src 'unsafe-inline'"), "{csp}");

    // The same walk in Chromium (with the screenshots), then in Firefox: each ends on the
    // first run again, as it began.
    for (options, name) in [
        (BrowserOptions::new(), "chromium"),
        (BrowserOptions::firefox(), "firefox"),
    ] {
        let browser = Browser::start(options).await?;
        let shots = name == "chromium";
        walk(&site, &browser, &Shop::new(&format!("{name}-shop")), shots)
            .await
            .with_context(|| format!("the walk in {name}"))?;
        let keys = Shop::new(&format!("{name}-keys"));
        keyboard(&site, &browser, &keys)
            .await
            .with_context(|| format!("the keyboard in {name}"))?;
        never_tested(&site, &browser, &keys)
            .await
            .with_context(|| format!("a never-tested destination in {name}"))?;
        browser.close().await?;
    }
    Ok(())
}
