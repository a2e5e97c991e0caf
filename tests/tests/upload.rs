//! The dashboard's "Upload offline conversions" form (issue 13), in headless Chromium: a
//! messy shop export of 3,000 rows (BOM, CRLF, semicolons, quoted separators and line ends,
//! blank lines, bad rows, repeated orders) is chosen in the file input and uploaded. The page
//! sends it in chunks (several: 1,000 rows at most each); when it says it is done, its
//! figures must be what the mock TikTok received, and the rejected lines it lists must be
//! the file's bad lines. Then the same file again with the network down at first
//! (DevTools' offline emulation): the page retries with backoff until it is back, every row
//! is a duplicate, and TikTok receives nothing more.
//!
//! `TTEDGE_UPDATE_SCREENSHOT=1` writes the screenshot to `docs/upload.png` (the README's);
//! otherwise it goes to `target/e2e-logs/`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use serde_json::json;
use ttedge_e2e::browser::{Browser, BrowserOptions};
use ttedge_e2e::clock::{self, now_ms, DAY_MS};
use ttedge_e2e::{repo_root, Site};

const ADMIN_TOKEN: &str = "e2e-upload-admin-token-93be";
const MASTER_KEY: &str = "2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819";
const HOST: &str = "t.shop-u.test";
const TOKEN: &str = "siteu-token-9f8e7d6c5b4a3928SECRETU";
const PIXEL: &str = "C4SITEU0000000000000";
const ROWS: usize = 3_000;

/// `YYYY-MM-DD HH:MM:SS` of `ms` at +07:00.
fn bangkok(ms: i64) -> String {
    clock::local_time(ms, 7)
}

/// The export, and what a correct upload of it gives.
struct Export {
    bytes: Vec<u8>,
    /// File lines of the rows that must be rejected.
    bad_lines: BTreeSet<u64>,
    /// Rows repeating an earlier order.
    duplicates: usize,
}

/// Row `i`'s defect, if it has one: every 500 rows a bad timestamp, a short record and a
/// row without an email; every 750 a value with a decimal comma; every 1,000 an old row.
fn defect(i: usize) -> Option<&'static str> {
    match (i % 500, i % 750, i % 1_000) {
        (7, _, _) => Some("timestamp"),
        (123, _, _) => Some("short"),
        (321, _, _) => Some("no email"),
        (_, 50, _) => Some("value"),
        (_, _, 999) => Some("old"),
        _ => None,
    }
}

fn export(now: i64) -> Export {
    let mut text =
        String::from("\u{FEFF}Order ID;Customer Name;Email;Total;Currency;Created At;Note\r\n");
    let mut line = 2u64;
    let mut bad_lines = BTreeSet::new();
    let mut duplicates = 0;
    for i in 0..ROWS {
        let at = bangkok(now - DAY_MS - (i as i64) * 1_000);
        // Every 600th sound row repeats the order before it (when that one was sound too).
        let repeat = i % 600 == 598 && defect(i).is_none() && defect(i - 1).is_none();
        let order = if repeat { i - 1 } else { i };
        let email = format!("buyer{order}@example.com");
        let note = if i % 100 == 0 {
            "\"gift; wrap\r\nleave at door\""
        } else {
            "\"a, b\""
        };
        let row = match defect(i) {
            Some("timestamp") => format!("U-{i};\"Doe; J\";{email};10.00;THB;31/12/2025;{note}"),
            Some("short") => format!("U-{i};\"Doe; J\";{email};10.00"),
            Some("no email") => format!("U-{i};\"Doe; J\";;10.00;THB;{at};{note}"),
            Some("value") => format!("U-{i};\"Doe; J\";{email};12,50;THB;{at};{note}"),
            Some(_) => {
                let old = bangkok(now - 40 * DAY_MS);
                format!("U-{i};\"Doe; J\";{email};10.00;THB;{old};{note}")
            }
            None => format!("U-{order};\"Doe; J\";{email};10.00;THB;{at};{note}"),
        };
        if defect(i).is_some() {
            bad_lines.insert(line);
        }
        if repeat {
            duplicates += 1;
        }
        line += 1 + row.matches('\n').count() as u64;
        text += &row;
        text += "\r\n";
        if i % 250 == 0 {
            text += "\r\n";
            line += 1;
        }
    }
    Export {
        bytes: text.into_bytes(),
        bad_lines,
        duplicates,
    }
}

/// The form's `data-NAME`, where the page keeps its figures.
async fn data(browser: &Browser, form: &str, name: &str) -> anyhow::Result<String> {
    Ok(browser
        .attr(form, &format!("data-{name}"))
        .await?
        .unwrap_or_default())
}

fn screenshot_path() -> std::path::PathBuf {
    match std::env::var_os("TTEDGE_UPDATE_SCREENSHOT") {
        Some(_) => repo_root().join("docs/upload.png"),
        None => repo_root().join("target/e2e-logs/upload.png"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_messy_csv_is_uploaded_from_the_dashboard_in_chunks() -> anyhow::Result<()> {
    let site = Site::start(
        "e2e-upload-default-token-0001",
        "C4DEFAULT00000000000",
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await?;
    let settings = json!({
        "pixel_id": PIXEL, "access_token": TOKEN, "live": true,
        "site_origins": ["https://shop-u.test"],
    });
    site.put_destination(HOST, &settings).await?;

    let now = now_ms();
    let export = export(now);
    let file = tempfile::Builder::new()
        .prefix("shop-export-")
        .suffix(".csv")
        .tempfile()?;
    std::fs::write(file.path(), &export.bytes)?;
    let expected_ready = ROWS - export.bad_lines.len() - export.duplicates;

    let browser = Browser::start(BrowserOptions::new()).await?;
    let base = site.worker.base_url();
    browser.goto(&format!("{base}/admin")).await?;
    browser.fill("input[name=token]", ADMIN_TOKEN).await?;
    browser.submit("form").await?;
    browser
        .wait_for("form.upload", Duration::from_secs(20))
        .await?;
    browser.goto(&format!("{base}/admin?host={HOST}")).await?;
    let form = format!("form.upload[data-host=\"{HOST}\"]");

    // The offset field starts at the browser's own offset.
    let browser_offset = browser
        .execute(
            "const t = -new Date().getTimezoneOffset(), a = Math.abs(t);\
             return (t < 0 ? '-' : '+') + String(a / 60 | 0).padStart(2, '0') + ':' +\
             String(a % 60).padStart(2, '0');",
            vec![],
        )
        .await?;
    let shown = browser
        .execute(
            "return document.getElementById(arguments[0]).value",
            vec![json!(format!("uo-{HOST}"))],
        )
        .await?;
    ensure!(shown == browser_offset, "{shown} / {browser_offset}");

    let offset_field = browser
        .find(&format!("{form} input[name=utc_offset]"))
        .await?;
    offset_field.clear().await?;
    offset_field.send_keys("+07:00").await?;
    // A file input takes the file's path as its keys.
    let file_input = browser.find(&format!("{form} input[type=file]")).await?;
    file_input
        .send_keys(&file.path().display().to_string())
        .await?;
    browser
        .click(&format!("{form} button[type=submit]"))
        .await?;

    wait_done(&browser, &form).await?;
    let figure = |name: &'static str| {
        let (browser, form) = (&browser, &form);
        async move {
            data(browser, form, name)
                .await?
                .parse::<usize>()
                .with_context(|| format!("data-{name}"))
        }
    };
    let (sent, total) = (figure("sent").await?, figure("total").await?);
    let accepted = figure("accepted").await?;
    let duplicates = figure("duplicates").await?;
    let rejected = figure("rejected").await?;
    ensure!((sent, total) == (ROWS, ROWS), "sent {sent} of {total}");
    ensure!(
        (accepted, duplicates, rejected)
            == (expected_ready, export.duplicates, export.bad_lines.len()),
        "accepted {accepted}, duplicates {duplicates}, rejected {rejected}; expected \
         {expected_ready}, {}, {}",
        export.duplicates,
        export.bad_lines.len()
    );
    ensure!(export.duplicates >= 3 && export.bad_lines.len() >= 20);

    // The rejected lines listed are the file's bad lines, each with its reason.
    let items = browser.find_all(&format!("{form} .rejected li")).await?;
    let mut listed = BTreeSet::new();
    for item in &items {
        let line = item.attr("data-line").await?.unwrap_or_default();
        listed.insert(line.parse::<u64>().context("data-line")?);
        let text = item.text().await?;
        ensure!(text.starts_with(&format!("Line {line}: ")), "{text}");
    }
    ensure!(
        listed == export.bad_lines,
        "{listed:?} / {:?}",
        export.bad_lines
    );
    let texts = browser.texts(&format!("{form} .rejected li")).await?;
    for reason in [
        "bad timestamp \"31/12/2025\"",
        "has 4 fields, the header row has 7",
        "no identifier",
        "bad value \"12,50\"",
        "too old",
    ] {
        ensure!(
            texts.iter().any(|t| t.contains(reason)),
            "no {reason:?} in {texts:?}"
        );
    }
    let status = browser.text(&format!("{form} .status")).await?;
    ensure!(
        status.contains(&format!("Rows sent {ROWS} of {ROWS}")),
        "{status}"
    );
    let bar = browser.attr(&format!("{form} progress"), "value").await?;
    ensure!(bar.as_deref() == Some("3000"), "progress {bar:?}");

    // Several chunks, each one call to the endpoint.
    let calls = browser
        .execute(
            "return performance.getEntriesByType('resource')\
             .filter(e => e.name.includes('/offline?')).length",
            vec![],
        )
        .await?;
    ensure!(calls.as_u64().is_some_and(|n| n >= 3), "{calls} calls");

    // What the page counted as accepted is what TikTok receives, each event once.
    let received = site
        .tiktok
        .wait_for_events(accepted, Duration::from_secs(120))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = site.tiktok.events();
    let ids: BTreeSet<String> = events
        .iter()
        .filter_map(|e| e.event_id().map(str::to_string))
        .collect();
    ensure!(
        events.len() == accepted && ids.len() == accepted,
        "TikTok got {} events ({} ids; {} when waited), the page says {accepted}",
        events.len(),
        ids.len(),
        received.len()
    );
    ensure!(ids.contains("CompletePayment-U-0") && ids.contains("CompletePayment-U-2997"));

    browser
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView()",
            vec![json!(format!("section[data-destination=\"{HOST}\"]"))],
        )
        .await?;
    browser.screenshot(screenshot_path()).await?;

    // The same file again, with the network gone at first: the page retries with backoff
    // until it is back, every row is now a duplicate, and nothing reaches TikTok twice.
    let conditions = |offline: bool| {
        json!({"offline": offline, "latency": 0, "downloadThroughput": -1,
               "uploadThroughput": -1})
    };
    browser.cdp("Network.enable", json!({})).await?;
    browser
        .cdp("Network.emulateNetworkConditions", conditions(true))
        .await?;
    browser
        .click(&format!("{form} button[type=submit]"))
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while data(&browser, &form, "retries")
        .await?
        .parse::<u32>()
        .unwrap_or(0)
        < 2
    {
        ensure!(
            std::time::Instant::now() < deadline,
            "no retry while offline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = browser.text(&format!("{form} .status")).await?;
    ensure!(status.contains("retrying in"), "{status}");
    browser
        .cdp("Network.emulateNetworkConditions", conditions(false))
        .await?;
    wait_done(&browser, &form).await?;
    ensure!(
        (
            figure("sent").await?,
            figure("accepted").await?,
            figure("duplicates").await?,
            figure("rejected").await?
        ) == (ROWS, 0, accepted + duplicates, rejected),
        "{}",
        browser.text(&format!("{form} .status")).await?
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        site.tiktok.events().len() == accepted,
        "{}",
        site.tiktok.summary()
    );
    browser.close().await?;
    Ok(())
}

/// Waits until the page says the upload is done; fails when it says it failed.
async fn wait_done(browser: &Browser, form: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let state = data(browser, form, "state").await?;
        if state == "done" {
            return Ok(());
        }
        let status = || async { browser.text(&format!("{form} .status")).await };
        ensure!(state != "failed", "the page failed: {}", status().await?);
        ensure!(
            std::time::Instant::now() < deadline,
            "not done after 180 s: {}",
            status().await?
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
