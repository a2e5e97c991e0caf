//! The browser SDK (`GET /sdk.js`, issue 5) in a real headless Chromium, against the real
//! Worker under `wrangler dev --local-protocol https` and a loopback mock of TikTok.
//!
//! Each test has its own rig:
//!
//! - the shop's pages on `https://shop.test/` ([`PageServer`], self-signed TLS);
//! - the Worker on `https://t.shop.test/`: `wrangler dev` with `SITE_ORIGINS=https://shop.test`,
//!   reached through a [`SwitchProxy`] that a test can take down;
//! - Chromium with `--host-resolver-rules` mapping both names to loopback (the port comes with
//!   the mapping, so the URLs carry none, as in production), `cdn.pixel.test` (a pixel script
//!   of another origin) to the page server, and `analytics.tiktok.com` to nothing, as a
//!   DNS-level ad blocker does; certificates are accepted as trusted.
//!
//! Every page records what the SDK posts and what the Worker answers (`window.__sent`, a
//! wrapper around `fetch` installed before the SDK loads), so a test can check both what left
//! the browser and what reached TikTok. Expected SHA-256 digests are computed with coreutils'
//! `sha256sum`, not with the code under test.
//!
//! These tests fail, never skip, when Chromium, chromedriver or wrangler is missing.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::{json, Value};
use ttedge_e2e::browser::{Browser, BrowserOptions};
use ttedge_e2e::pages::{PageServer, SwitchProxy};
use ttedge_e2e::worker::https_client;
use ttedge_e2e::{repo_root, MockTikTok, WranglerDev, WranglerDevOptions};

const PIXEL_ID: &str = "C4SDKE2E0000000000";
const ACCESS_TOKEN: &str = "e2e-sdk-token-5f0c9a";
const ADMIN_TOKEN: &str = "e2e-sdk-admin-2b7d";
/// How long anything may take to show up (an event travels page → Worker → Dispatcher → mock).
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// The SDK as the repository holds it (what `GET /sdk.js` must serve byte for byte).
fn sdk_source() -> anyhow::Result<String> {
    let path = repo_root().join("edge-worker/sdk/ttedge.js");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// SHA-256 of `text` in hex, computed by coreutils' `sha256sum`.
fn sha256sum(text: &str) -> anyhow::Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum's stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "sha256sum failed");
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_owned())
}

/// `gzip -9` size of `bytes`, as `make figures` and the README measure.
fn gzip_size(bytes: &[u8]) -> anyhow::Result<usize> {
    let mut child = Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    child
        .stdin
        .take()
        .context("gzip's stdin")?
        .write_all(bytes)?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout.len())
}

/// A shop page: the test hook on `fetch`, `head` (the page's own scripts, e.g. a dataLayer or
/// a TikTok pixel), the SDK snippet with `calls`, then `body`.
fn shop_page(title: &str, head: &str, calls: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script>
  // Test hook: what the SDK posts and what the Worker answers.
  window.__sent = []; window.__errors = [];
  addEventListener('error', (e) => __errors.push(String(e.message || e.target && e.target.src)));
  addEventListener('unhandledrejection', (e) => __errors.push('rejection: ' + e.reason));
  const realFetch = window.fetch;
  window.fetch = function (url, init) {{
    const sent = realFetch.apply(this, arguments);
    if (String(url).includes('/collect')) {{
      const record = {{ url: String(url), body: JSON.parse(init.body), credentials: init.credentials,
                       keepalive: init.keepalive, type: (init.headers || {{}})['Content-Type'] }};
      __sent.push(record);
      sent.then((r) => (record.status = r.status, r.clone().json()))
          .then((answer) => (record.answer = answer), (e) => (record.error = String(e)));
    }}
    return sent;
  }};
</script>
{head}
<script>
  window.ttedge = window.ttedge || function () {{ (ttedge.q = ttedge.q || []).push(arguments); }};
  {calls}
</script>
<script async src="https://t.shop.test/sdk.js"></script>
</head>
<body><h1>{title}</h1><p id="status">loading</p>{body}</body></html>
"#
    )
}

const INIT: &str = "ttedge('init', {endpoint: 'https://t.shop.test'});";
const GRANTED: &str =
    "ttedge('consent', {sendable_to_ads: true, ad_storage: 'granted', ad_user_data: 'granted'});";
const IDENTIFY: &str = "ttedge('identify', {email: ' User@Example.com ', phone: '+1 (555) 123-4567', external_id: ' cust-42 '});";

/// The personal data of [`IDENTIFY`], normalised as DESIGN says and hashed by `sha256sum`.
struct Hashes {
    email: String,
    phone: String,
    external_id: String,
}

fn hashes() -> anyhow::Result<Hashes> {
    Ok(Hashes {
        email: sha256sum("user@example.com")?,
        phone: sha256sum("15551234567")?,
        external_id: sha256sum("cust-42")?,
    })
}

/// A mock TikTok and the Worker on HTTPS sending to it.
struct Edge {
    tiktok: MockTikTok,
    worker: WranglerDev,
    client: reqwest::Client,
}

impl Edge {
    async fn start() -> anyhow::Result<Edge> {
        let tiktok = MockTikTok::start_new().await?;
        let worker = WranglerDev::start(
            WranglerDevOptions::new()
                .https(true)
                .var("TIKTOK_API_BASE", tiktok.base_url())
                .var("TIKTOK_PIXEL_ID", PIXEL_ID)
                .var("TIKTOK_ACCESS_TOKEN", ACCESS_TOKEN)
                .var("ADMIN_TOKEN", ADMIN_TOKEN)
                .var("SITE_ORIGINS", "https://shop.test"),
        )
        .await?;
        eprintln!(
            "wrangler dev (https) ready in {:.1?} on {} (log {})",
            worker.startup_time(),
            worker.base_url(),
            worker.log_path().display()
        );
        Ok(Edge {
            tiktok,
            worker,
            client: https_client(),
        })
    }

    /// The `data[]` element with `event_id`, once TikTok received it.
    async fn event(&self, event_id: &str) -> anyhow::Result<Value> {
        self.event_where(&format!("event_id {event_id}"), |e| {
            e["event_id"] == json!(event_id)
        })
        .await
    }

    /// The first `data[]` element TikTok received that satisfies `pick`.
    async fn event_where(
        &self,
        what: &str,
        pick: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = self.tiktok.events().into_iter().find(|e| pick(&e.event)) {
                return Ok(found.event);
            }
            if Instant::now() >= deadline {
                bail!(
                    "TikTok never received {what} within {WAIT:?}; it got: {}\nWorker log tail:\n{}",
                    self.received(),
                    self.worker.log_tail(30)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Name and id of every event TikTok received, for error messages.
    fn received(&self) -> String {
        let seen: Vec<String> = self
            .tiktok
            .events()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e.event_name().unwrap_or("?"),
                    e.event_id().unwrap_or("?")
                )
            })
            .collect();
        format!("{seen:?}")
    }

    /// How many times TikTok received `event_id`.
    fn count(&self, event_id: &str) -> usize {
        self.tiktok
            .events()
            .iter()
            .filter(|e| e.event_id() == Some(event_id))
            .count()
    }

    /// `GET path` on the Worker with the admin token.
    async fn admin_get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .client
            .get(format!("{}{path}", self.worker.base_url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        ensure!(status == 200, "GET {path} answered {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }
}

/// The whole rig: the edge, the shop's pages, the switch in front of the Worker, and Chromium.
struct Rig {
    edge: Edge,
    pages: PageServer,
    proxy: SwitchProxy,
    browser: Browser,
}

impl std::ops::Deref for Rig {
    type Target = Edge;
    fn deref(&self) -> &Edge {
        &self.edge
    }
}

impl Rig {
    async fn start() -> anyhow::Result<Rig> {
        let edge = Edge::start().await?;
        let pages = PageServer::start(&["shop.test"]).await?;
        let proxy = SwitchProxy::start(edge.worker.port()).await?;
        let rules = format!(
            "MAP t.shop.test 127.0.0.1:{}, MAP shop.test 127.0.0.1:{p}, MAP cdn.pixel.test 127.0.0.1:{p}, \
             MAP analytics.tiktok.com ~NOTFOUND",
            proxy.port(),
            p = pages.port()
        );
        let browser = Browser::start(
            BrowserOptions::new()
                .host_resolver_rules(rules)
                .accept_insecure_certs(true),
        )
        .await?;
        Ok(Rig {
            edge,
            pages,
            proxy,
            browser,
        })
    }

    /// Loads `https://shop.test<path>` and waits until the SDK has loaded.
    async fn visit(&self, path: &str) -> anyhow::Result<()> {
        self.browser
            .goto(&format!("https://shop.test{path}"))
            .await?;
        self.until(
            &format!("the SDK loaded on {path}"),
            "return !!(window.ttedge && ttedge.loaded);",
        )
        .await
        .map(drop)
    }

    /// Polls `js` (a function body) until it returns something truthy; returns that.
    async fn until(&self, what: &str, js: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.browser.execute(js, vec![]).await?;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                let sent = self.sent().await.unwrap_or(Value::Null);
                bail!(
                    "{what}: not so within {WAIT:?} (last {value}); the SDK sent {sent}; \
                     TikTok got {}; console: {:?}",
                    self.received(),
                    self.browser.console_logs().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `js` in the page.
    async fn run(&self, js: &str) -> anyhow::Result<Value> {
        self.browser.execute(js, vec![]).await
    }

    /// What the SDK posted from the page shown now: `[{body, status, answer, ...}]`.
    async fn sent(&self) -> anyhow::Result<Value> {
        self.run("return window.__sent || [];").await
    }

    /// The event with `event_id` as the SDK posted it, and the Worker's answer for it, once
    /// answered.
    async fn posted(&self, event_id: &str) -> anyhow::Result<(Value, Value)> {
        let js = format!(
            "for (const r of window.__sent || []) {{
               const events = r.body.batch || [r.body];
               const i = events.findIndex((e) => e.event_id === {id});
               if (i >= 0 && r.answer) return [events[i], (r.answer.events || [])[i] || r.answer];
             }}
             return null;",
            id = json!(event_id)
        );
        let found = self
            .until(&format!("the SDK posted {event_id} and got an answer"), &js)
            .await?;
        Ok((found[0].clone(), found[1].clone()))
    }

    /// Every value of `document.cookie` named `name`.
    async fn page_cookie(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self
            .run(&format!(
                "const m = document.cookie.match(/(?:^|; ){name}=([^;]*)/); return m && m[1];"
            ))
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }
}

/// The events of a posted body (a batch or one event).
fn events_of(body: &Value) -> Vec<Value> {
    match body.get("batch").and_then(Value::as_array) {
        Some(batch) => batch.clone(),
        None => vec![body.clone()],
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sdk_js_is_small_cacheable_and_revalidates() -> anyhow::Result<()> {
    let edge = Edge::start().await?;
    let source = sdk_source()?;
    let url = format!("{}/sdk.js", edge.worker.base_url());

    let resp = edge.client.get(&url).send().await?;
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(
        header("cache-control").as_deref(),
        Some("public, max-age=300, stale-while-revalidate=86400")
    );
    let etag = header("etag").context("no ETag")?;
    assert_eq!(
        etag,
        format!("\"{}\"", sha256sum(&source)?),
        "a strong ETag: the SHA-256 of the file"
    );
    let body = resp.text().await?;
    assert_eq!(body, source, "served as written");

    // Issue 5: at most 5 KB gzipped.
    let gzipped = gzip_size(body.as_bytes())?;
    eprintln!(
        "sdk.js: {} bytes, {gzipped} bytes gzipped (gzip -9)",
        body.len()
    );
    assert!(
        gzipped <= 5 * 1024,
        "sdk.js is {gzipped} bytes gzipped, over 5 KB"
    );

    // Revalidation.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let resp = edge
            .client
            .get(&url)
            .header("If-None-Match", &tag)
            .send()
            .await?;
        assert_eq!(resp.status(), 304, "If-None-Match: {tag}");
        assert_eq!(
            resp.headers().get("etag").and_then(|v| v.to_str().ok()),
            Some(etag.as_str())
        );
        assert!(resp.headers().contains_key("cache-control"));
        assert_eq!(resp.text().await?, "", "a 304 has no body");
    }
    let stale = edge
        .client
        .get(&url)
        .header("If-None-Match", "\"0000\"")
        .send()
        .await?;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.text().await?, source);

    // HEAD: the same headers, no body.
    let head = edge.client.head(&url).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert_eq!(head.text().await?, "");

    let post = edge.client.post(&url).body("x").send().await?;
    assert_eq!(post.status(), 405);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_tiktok_with_names_properties_hashes_and_the_first_party_cookie(
) -> anyhow::Result<()> {
    let rig = Rig::start().await?;
    let h = hashes()?;

    // Landing from a TikTok ad. GTM's own event and a GA4 view_item are in the dataLayer before
    // the SDK loads.
    let landing_head = "<script>window.dataLayer = [{event: 'gtm.js', 'gtm.start': Date.now()},
        {event: 'view_item', ecommerce: {currency: 'EUR', value: 29.95,
          items: [{item_id: 'sku-9', item_name: 'Boot', item_brand: 'Acme', price: 29.95, quantity: 1}]}}];</script>";
    let landing_calls = format!(
        "{INIT} {GRANTED} {IDENTIFY}
         ttedge('track', 'Add To Cart', {{value: 29.95, currency: 'eur', items: [{{id: 'sku-1', name: 'Sneaker',
           category: 'shoes', brand: 'Acme', quantity: 1, price: '29.95'}}]}}, {{event_id: 'atc-1'}});"
    );
    rig.pages.html(
        "/landing",
        shop_page(
            "Landing",
            landing_head,
            &landing_calls,
            "<a id=next href=\"/product\">Next</a>",
        ),
    );
    rig.visit("/landing?ttclid=E.C.P.landing1").await?;

    let atc = rig.event("atc-1").await?;
    assert_eq!(atc["event"], "AddToCart");
    assert_eq!(atc["user"]["email"], json!(h.email));
    assert_eq!(atc["user"]["phone"], json!(h.phone));
    assert_eq!(atc["user"]["external_id"], json!(h.external_id));
    assert_eq!(atc["user"]["ttclid"], "E.C.P.landing1");
    assert_eq!(atc["limited_data_use"], false, "{atc:#}");
    assert_eq!(
        atc["page"]["url"],
        "https://shop.test/landing?ttclid=E.C.P.landing1"
    );
    assert_eq!(
        atc["properties"],
        json!({"value": 29.95, "currency": "EUR", "content_type": "product",
               "contents": [{"content_id": "sku-1", "content_name": "Sneaker", "content_category": "shoes",
                             "brand": "Acme", "quantity": 1, "price": 29.95}]})
    );

    // What left the browser: hashes only, with credentials and keepalive, batched.
    let (posted, answer) = rig.posted("atc-1").await?;
    assert_eq!(answer["status"], "ready", "{answer}");
    assert_eq!(answer["event"], "AddToCart");
    assert_eq!(
        posted["user_data"],
        json!({"email_hash": h.email, "phone_hash": h.phone, "external_id": h.external_id})
    );
    assert_eq!(
        posted["consent"],
        json!({"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"})
    );
    let sent = rig.sent().await?;
    let requests = sent.as_array().context("__sent")?;
    assert!(requests.iter().all(|r| r["credentials"] == "include"
        && r["keepalive"] == true
        && r["type"] == "text/plain"
        && r["url"] == "https://t.shop.test/collect"));
    let names: Vec<String> = requests
        .iter()
        .flat_map(|r| events_of(&r["body"]))
        .map(|e| e["event"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        requests.iter().any(|r| events_of(&r["body"]).len() >= 3),
        "page_view, the dataLayer's view_item and add_to_cart go in one batch: {sent}"
    );
    assert!(
        !names.iter().any(|n| n.contains("gtm")),
        "GTM's own events stay home: {names:?}"
    );

    // The automatic page_view and the dataLayer's view_item, from before the SDK loaded.
    let pageview = rig
        .event_where("the landing Pageview", |e| {
            e["event"] == "Pageview" && e["page"]["url"].as_str().unwrap_or("").contains("/landing")
        })
        .await?;
    assert_eq!(
        pageview["user"]["email"],
        json!(h.email),
        "identify came first in the snippet"
    );
    let view = rig
        .event_where("the dataLayer's ViewContent", |e| {
            e["event"] == "ViewContent"
        })
        .await?;
    assert_eq!(view["properties"]["contents"][0]["content_id"], "sku-9");
    assert_eq!(view["properties"]["contents"][0]["content_name"], "Boot");
    assert_eq!(view["properties"]["currency"], "EUR");

    // `_ttp`: set by the Worker for Domain=shop.test, readable by the page, sent with events.
    let cookies = rig.browser.all_cookies().await?;
    let ttp = cookies
        .iter()
        .find(|c| c.name == "_ttp")
        .with_context(|| format!("no _ttp cookie: {cookies:?}"))?
        .clone();
    assert_eq!(ttp.domain, ".shop.test", "{ttp:?}");
    assert!(ttp.secure && !ttp.http_only, "{ttp:?}");
    assert_eq!(ttp.same_site.as_deref(), Some("Lax"));
    assert_eq!(
        rig.page_cookie("_ttp").await?.as_deref(),
        Some(ttp.value.as_str())
    );
    assert_eq!(atc["user"]["ttp"], json!(ttp.value));
    assert!(
        cookies
            .iter()
            .any(|c| c.name == "ttclid" && c.value == "E.C.P.landing1"),
        "{cookies:?}"
    );

    // Personal data is stored for the session only, hashed; never in clear anywhere.
    let storage = rig
        .run("return JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage});")
        .await?;
    let storage = storage.as_str().unwrap_or_default();
    for clear in ["xample.com", "5551234567", "cust-42"] {
        assert!(!storage.contains(clear), "{clear} in storage: {storage}");
    }
    let session = rig
        .run("return JSON.parse(sessionStorage.getItem('ttedge:u'));")
        .await?;
    assert_eq!(
        session,
        json!({"email_hash": h.email, "phone_hash": h.phone, "external_id": h.external_id})
    );
    rig.until(
        "the delivered events left localStorage",
        "return localStorage.getItem('ttedge:q') === null;",
    )
    .await?;

    // A second page without ttclid: the click id and the identity carry over.
    let product_calls = format!("{INIT} {GRANTED}");
    rig.pages.html(
        "/product",
        shop_page("Product", "", &product_calls, "<button id=buy>Buy</button>"),
    );
    rig.browser.click("#next").await?;
    rig.until(
        "the product page and its SDK loaded",
        "return location.pathname === '/product' && !!(window.ttedge && ttedge.loaded);",
    )
    .await?;
    rig.run("ttedge('track', 'view_item', {content_id: 'sku-2', content_name: 'Sandal', price: 19, value: 19, currency: 'EUR'}, {event_id: 'view-2'});")
        .await?;
    let view2 = rig.event("view-2").await?;
    assert_eq!(view2["event"], "ViewContent");
    assert_eq!(view2["user"]["ttclid"], "E.C.P.landing1", "{view2:#}");
    assert_eq!(view2["user"]["ttp"], json!(ttp.value));
    assert_eq!(
        view2["user"]["email"],
        json!(h.email),
        "identity kept for the session"
    );
    assert_eq!(
        view2["page"]["referrer"],
        "https://shop.test/landing?ttclid=E.C.P.landing1"
    );
    assert_eq!(view2["properties"]["contents"][0]["content_id"], "sku-2");

    // A single-page-app route change is a page view, with the previous URL as its referrer.
    rig.run("history.pushState({}, '', '/product/2');").await?;
    let spa = rig
        .event_where("the Pageview of /product/2", |e| {
            e["event"] == "Pageview" && e["page"]["url"] == "https://shop.test/product/2"
        })
        .await?;
    assert_eq!(spa["page"]["referrer"], "https://shop.test/product");
    // Back: popstate is one too.
    rig.run("history.back();").await?;
    rig.event_where("the Pageview after going back", |e| {
        e["event"] == "Pageview"
            && e["page"]["url"] == "https://shop.test/product"
            && e["page"]["referrer"] == "https://shop.test/product/2"
    })
    .await?;

    // A GA4 purchase pushed to the dataLayer becomes CompletePayment with contents.
    let pushed = rig
        .run(
            "return dataLayer.push({event: 'purchase', ecommerce: {transaction_id: 'T-1001', value: 59.9,
               currency: 'USD', items: [
                 {item_id: 'sku-1', item_name: 'Sneaker', item_brand: 'Acme', item_category: 'shoes', price: 29.95, quantity: 2},
                 {item_id: 42, item_name: 'Socks', price: '0', quantity: '1'}]}});",
        )
        .await?;
    assert!(
        pushed.is_number(),
        "dataLayer.push still returns the length: {pushed}"
    );
    let purchase = rig.event("CompletePayment-T-1001").await?;
    assert_eq!(purchase["event"], "CompletePayment");
    assert_eq!(
        purchase["properties"],
        json!({"value": 59.9, "currency": "USD", "content_type": "product", "order_id": "T-1001",
               "contents": [
                 {"content_id": "sku-1", "content_name": "Sneaker", "content_category": "shoes",
                  "brand": "Acme", "quantity": 2, "price": 29.95},
                 {"content_id": "42", "content_name": "Socks", "quantity": 1, "price": 0.0}]})
    );
    assert_eq!(purchase["user"]["email"], json!(h.email));
    let (posted, _) = rig.posted("CompletePayment-T-1001").await?;
    assert_eq!(posted["event"], "dl_purchase");

    // Another visit: the same `_ttp`.
    rig.visit("/landing").await?;
    let again = rig
        .event_where("the second landing Pageview", |e| {
            e["event"] == "Pageview" && e["page"]["url"] == "https://shop.test/landing"
        })
        .await?;
    assert_eq!(again["user"]["ttp"], json!(ttp.value));
    assert_eq!(
        rig.page_cookie("_ttp").await?.as_deref(),
        Some(ttp.value.as_str())
    );
    let errors = rig.run("return window.__errors;").await?;
    assert_eq!(errors, json!([]), "the page saw errors");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_mode_and_consent_calls_decide_cookie_pii_and_sending() -> anyhow::Result<()> {
    let rig = Rig::start().await?;
    let h = hashes()?;
    // Google Consent Mode v2, denied by default, as a CMP sets it before anything loads.
    let head = "<script>window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}
      gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied', ad_personalization: 'denied',
        analytics_storage: 'denied'});</script>";
    let calls = format!(
        "{INIT} {IDENTIFY}
         ttedge('track', 'purchase', {{value: 10, currency: 'EUR', order_id: 'C-1'}}, {{event_id: 'denied-1'}});"
    );
    rig.pages
        .html("/consent", shop_page("Consent", head, &calls, ""));
    rig.visit("/consent").await?;

    let denied = rig.event("denied-1").await?;
    assert_eq!(denied["limited_data_use"], true);
    for field in ["email", "phone", "external_id", "ttp"] {
        assert!(
            denied["user"].get(field).is_none(),
            "{field} sent: {denied:#}"
        );
    }
    let (posted, _) = rig.posted("denied-1").await?;
    assert_eq!(
        posted["consent"],
        json!({"ad_storage": "denied", "ad_user_data": "denied"})
    );
    // The page view came after Consent Mode was read: the SDK did not even post personal data.
    let pageview = rig
        .until(
            "the SDK posted the page_view",
            "for (const r of __sent) for (const e of r.body.batch || [r.body])
               if (e.event === 'page_view' && r.answer) return e;
             return null;",
        )
        .await?;
    assert!(pageview.get("user_data").is_none(), "{pageview}");
    assert!(pageview["context"]["ttp"].is_null(), "{pageview}");
    assert!(
        posted.get("user_data").is_none(),
        "denied by the time it was sent: {posted}"
    );
    let cookies = rig.browser.all_cookies().await?;
    assert!(
        !cookies.iter().any(|c| c.name == "_ttp"),
        "ad_storage denied, yet a _ttp cookie: {cookies:?}"
    );

    // The CMP's update grants both: cookie, personal data, no Limited Data Use.
    rig.run(
        "gtag('consent', 'update', {ad_storage: 'granted', ad_user_data: 'granted'});
         ttedge('track', 'purchase', {value: 11, currency: 'EUR'}, {event_id: 'granted-1'});",
    )
    .await?;
    let granted = rig.event("granted-1").await?;
    assert_eq!(granted["limited_data_use"], false, "{granted:#}");
    assert_eq!(granted["user"]["email"], json!(h.email));
    assert!(granted["user"]["ttp"].is_string(), "{granted:#}");
    rig.posted("granted-1").await?;
    let cookies = rig.browser.all_cookies().await?;
    assert!(cookies.iter().any(|c| c.name == "_ttp"), "{cookies:?}");

    // ttedge('consent') wins over Consent Mode: not sendable to ads is held, never sent.
    rig.run(
        "ttedge('consent', {sendable_to_ads: false});
         ttedge('track', 'purchase', {value: 12, currency: 'EUR'}, {event_id: 'held-1'});",
    )
    .await?;
    let (_, answer) = rig.posted("held-1").await?;
    assert_eq!(answer["status"], "held", "{answer}");
    // ad_user_data denied by the page while Consent Mode grants it: no personal data.
    rig.run(
        "ttedge('consent', {sendable_to_ads: true, ad_user_data: 'denied'});
         ttedge('track', 'purchase', {value: 13, currency: 'EUR'}, {event_id: 'own-denied-1'});",
    )
    .await?;
    let own = rig.event("own-denied-1").await?;
    assert!(own["user"].get("email").is_none(), "{own:#}");
    assert_eq!(own["limited_data_use"], true);
    assert!(
        own["user"]["ttp"].is_string(),
        "ad_storage is still granted: {own:#}"
    );
    assert_eq!(rig.count("held-1"), 0, "a held event reached TikTok");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pixel_copies_share_event_ids_and_a_blocked_pixel_is_reported() -> anyhow::Result<()> {
    let rig = Rig::start().await?;

    // A stub `ttq` records what the pixel would send.
    let stub = "<script>window.__ttq = []; window.ttq = {track: (n, p, o) => __ttq.push([n, p, o]),
      page: () => {}, identify: () => {}};</script>";
    let calls = "ttedge('init', {endpoint: 'https://t.shop.test', mirrorToPixel: true});
      ttedge('track', 'add_to_cart', {value: 5, currency: 'EUR', items: [{id: 'sku-1', quantity: 1, price: 5}]});
      ttedge('track', 'newsletter_signup');
      ttedge('track', 'identify');";
    rig.pages
        .html("/mirror", shop_page("Mirror", stub, calls, ""));
    rig.visit("/mirror").await?;
    rig.run(
        "dataLayer.push({event: 'purchase', ecommerce: {transaction_id: 'M-1', value: 5, currency: 'EUR',
           items: [{item_id: 'sku-1', quantity: 1, price: 5}]}});",
    )
    .await?;
    let copies = rig
        .until(
            "the stub ttq got four events",
            "return __ttq.length >= 4 && __ttq;",
        )
        .await?;
    let copies = copies.as_array().context("__ttq")?.clone();
    let names: Vec<&str> = copies.iter().map(|c| c[0].as_str().unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "AddToCart",
            "newsletter_signup",
            "Pageview",
            "CompletePayment"
        ],
        "internal events are not mirrored; {copies:?}"
    );
    for copy in &copies {
        let event_id = copy[2]["event_id"]
            .as_str()
            .context("no event_id for ttq")?;
        let server = rig.event(event_id).await?;
        assert_eq!(
            server["event"], copy[0],
            "same name on both sides: {copy} / {server}"
        );
    }
    assert_eq!(copies[3][2]["event_id"], "CompletePayment-M-1");
    assert_eq!(
        copies[0][1],
        json!({"value": 5, "currency": "EUR", "content_type": "product",
               "contents": [{"content_id": "sku-1", "quantity": 1, "price": 5}]})
    );
    let (posted, _) = rig.posted("CompletePayment-M-1").await?;
    assert_eq!(
        posted["context"]["pixel"], "loaded",
        "a ttq without a script is a loaded pixel"
    );

    // TikTok's base code, whose script cannot load (as behind a DNS-level ad blocker).
    let base_code = format!(
        "<script>!function (w, d, t) {{ w.TiktokAnalyticsObject = t; var ttq = w[t] = w[t] || [];
          ttq.methods = ['page', 'track', 'identify']; ttq.setAndDefer = function (t, e) {{
            t[e] = function () {{ t.push([e].concat(Array.prototype.slice.call(arguments, 0))); }}; }};
          for (var i = 0; i < ttq.methods.length; i++) ttq.setAndDefer(ttq, ttq.methods[i]);
          ttq.load = function (e) {{ var s = d.createElement('script'); s.async = true;
            s.src = 'https://analytics.tiktok.com/i18n/pixel/events.js?sdkid=' + e + '&lib=' + t;
            var f = d.getElementsByTagName('script')[0]; f.parentNode.insertBefore(s, f); }};
          ttq.load('{PIXEL_ID}'); ttq.page(); }}(window, document, 'ttq');</script>"
    );
    let purchase = |id: &str| {
        format!(
            "{INIT} ttedge('track', 'purchase', {{value: 20, currency: 'EUR', order_id: '{id}'}});"
        )
    };
    rig.pages.html(
        "/blocked",
        shop_page("Blocked", &base_code, &purchase("B-1"), ""),
    );
    // A pixel script that loads from another origin, without Timing-Allow-Origin, as TikTok's
    // does (`pixelScript` says where it is).
    rig.pages.set(
        "/pixel/events.js",
        "application/javascript",
        "window.__pixelRan = true;",
    );
    let loaded_calls =
        "ttedge('init', {endpoint: 'https://t.shop.test', pixelScript: 'cdn.pixel.test/pixel/'});
       ttedge('track', 'purchase', {value: 20, currency: 'EUR', order_id: 'L-1'});";
    rig.pages.html(
        "/loaded",
        shop_page(
            "Loaded",
            "<script async src=\"https://cdn.pixel.test/pixel/events.js\"></script>",
            loaded_calls,
            "",
        ),
    );
    rig.pages
        .html("/absent", shop_page("Absent", "", &purchase("A-1"), ""));
    // The same script, refused by the browser itself as an ad blocker extension does
    // (ERR_BLOCKED_BY_CLIENT), through DevTools' request blocking.
    rig.pages.set(
        "/adblocked/events.js",
        "application/javascript",
        "window.__pixelRan = true;",
    );
    let adblocked_calls =
        "ttedge('init', {endpoint: 'https://t.shop.test', pixelScript: '/adblocked/'});
       ttedge('track', 'purchase', {value: 20, currency: 'EUR', order_id: 'X-1'});";
    rig.pages.html(
        "/adblocked",
        shop_page(
            "Ad-blocked",
            "<script async src=\"/adblocked/events.js\"></script>",
            adblocked_calls,
            "",
        ),
    );

    for (path, id, status) in [
        ("/blocked", "CompletePayment-B-1", "blocked"),
        ("/loaded", "CompletePayment-L-1", "loaded"),
        ("/absent", "CompletePayment-A-1", "absent"),
        ("/adblocked", "CompletePayment-X-1", "blocked"),
    ] {
        if path == "/adblocked" {
            rig.browser.cdp("Network.enable", json!({})).await?;
            rig.browser
                .cdp("Network.setBlockedURLs", json!({"urls": ["*/adblocked/*"]}))
                .await?;
        }
        rig.visit(path).await?;
        if path == "/loaded" {
            rig.until("the pixel script ran", "return window.__pixelRan === true;")
                .await?;
        }
        let (posted, answer) = rig.posted(id).await?;
        assert_eq!(posted["context"]["pixel"], status, "{path}: {posted}");
        assert_eq!(answer["status"], "ready", "{answer}");
        rig.event(id).await?;
    }

    // The Worker's recovery figures count the conversions the pixel could not have seen.
    let deadline = Instant::now() + WAIT;
    loop {
        let health = rig.admin_get("/admin/api/health").await?;
        let recovery = &health["recovery"];
        if recovery["conversions_delivered"] == 5 {
            assert_eq!(
                recovery["unseen_by_pixel"], 3,
                "blocked twice and absent: {recovery}"
            );
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "recovery never counted 5 conversions: {recovery}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn events_survive_an_unreachable_endpoint_and_a_reload() -> anyhow::Result<()> {
    let rig = Rig::start().await?;
    let h = hashes()?;
    let calls = format!("{INIT} {GRANTED} {IDENTIFY}");
    rig.pages.html("/shop", shop_page("Shop", "", &calls, ""));
    rig.pages.html(
        "/plain",
        "<!doctype html><title>Plain</title><p id=status>no SDK here</p>",
    );
    rig.visit("/shop").await?;
    rig.event_where("the shop's Pageview", |e| e["event"] == "Pageview")
        .await?;

    // The endpoint goes away; the event waits, retried with backoff, and is stored hashed.
    rig.proxy.set_up(false);
    rig.run(
        "ttedge('track', 'add_to_cart', {value: 5, currency: 'EUR'}, {event_id: 'offline-1'});",
    )
    .await?;
    rig.until(
        "the SDK tried at least twice",
        "return __sent.filter((r) => r.error && (r.body.batch || [r.body]).some((e) => e.event_id === 'offline-1')).length >= 2;",
    )
    .await?;
    let stored = rig.run("return localStorage.getItem('ttedge:q');").await?;
    let stored = stored.as_str().context("nothing stored")?;
    assert!(stored.contains("offline-1"), "{stored}");
    assert!(
        stored.contains(&h.email),
        "stored with the hashed email: {stored}"
    );
    assert!(
        !stored.contains("xample") && !stored.contains("cust-42"),
        "{stored}"
    );
    assert!(rig.proxy.refused() >= 2);

    // Leave while it is down; come back once it is up: the stored event goes.
    rig.browser.goto("https://shop.test/plain").await?;
    rig.proxy.set_up(true);
    rig.visit("/shop").await?;
    let offline = rig.event("offline-1").await?;
    assert_eq!(offline["event"], "AddToCart");
    assert_eq!(offline["user"]["email"], json!(h.email));
    rig.until(
        "the queue emptied",
        "return localStorage.getItem('ttedge:q') === null;",
    )
    .await?;
    assert_eq!(rig.count("offline-1"), 1);

    // An event tracked just before leaving goes as a beacon.
    rig.run("ttedge('track', 'lead', {}, {event_id: 'beacon-1'}); location.href = '/plain';")
        .await?;
    let lead = rig.event("beacon-1").await?;
    assert_eq!(lead["event"], "Lead");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_calls_warn_once_and_never_break_the_page() -> anyhow::Result<()> {
    let rig = Rig::start().await?;
    let calls = "ttedge('init', {endpoint: 'https://t.shop.test'});
      ttedge('no_such_command'); ttedge('no_such_command', 1);
      ttedge('track'); ttedge('track', '   ');
      ttedge('track', 'ok_custom', 'not an object', {event_id: 'bad-props'});
      ttedge('consent', {ad_storage: 'yes'}); ttedge('consent', {ad_storage: 'maybe'}); ttedge('consent', 'granted');
      ttedge('identify', 'bob@example.com');
      ttedge('track', 'purchase', {value: 'abc', currency: 'EURO', order_id: {x: 1},
        items: [{item_id: {}, quantity: 1.5, price: 'x'}, null, 'str', {sku: 7, quantity: -2, price: '3.5'}]},
        {event_id: 'messy-1'});
      ttedge('init', {});";
    // The SDK is included twice, and the page pushes odd things to its dataLayer.
    let body = "<script async src=\"https://t.shop.test/sdk.js\"></script>
      <script>window.dataLayer = window.dataLayer || [];
        dataLayer.push(null); dataLayer.push({event: {}}); dataLayer.push('str'); dataLayer.push(['event']);
        dataLayer.push({event: 5});
        document.getElementById('status').textContent = 'page still works';</script>";
    rig.pages.html("/bad", shop_page("Bad", "", calls, body));
    rig.visit("/bad").await?;

    let messy = rig.event("messy-1").await?;
    assert_eq!(messy["event"], "CompletePayment");
    assert_eq!(
        messy["properties"],
        json!({"content_type": "product", "contents": [{"quantity": 2}, {"content_id": "7", "price": 3.5}]}),
        "wrong types are dropped, not sent: {messy:#}"
    );
    let custom = rig.event("bad-props").await?;
    assert_eq!(custom["event"], "ok_custom");
    rig.event_where("the page view", |e| e["event"] == "Pageview")
        .await?;
    // Loaded twice, counted once.
    rig.until(
        "the SDK's requests were answered",
        "return __sent.length && __sent.every((r) => r.answer);",
    )
    .await?;
    let page_views = rig
        .run("return __sent.flatMap((r) => r.body.batch || [r.body]).filter((e) => e.event === 'page_view').length;")
        .await?;
    assert_eq!(page_views, json!(1));
    assert_eq!(rig.browser.text("#status").await?, "page still works");
    assert_eq!(rig.run("return window.__errors;").await?, json!([]));
    assert_eq!(rig.run("return dataLayer.length;").await?, json!(5));

    let logs = rig.browser.console_logs().await?;
    let warnings: Vec<&str> = logs
        .iter()
        .filter(|m| m.level == "WARNING" && m.message.contains("ttedge:"))
        .map(|m| m.message.as_str())
        .collect();
    let count = |needle: &str| warnings.iter().filter(|w| w.contains(needle)).count();
    for (needle, what) in [
        ("unknown command", "an unknown command"),
        ("track needs an event name", "a track without a name"),
        (
            "properties must be an object",
            "properties that are not an object",
        ),
        ("bad consent", "a bad consent value"),
        ("consent needs an object", "consent without an object"),
        ("identify needs an object", "identify without an object"),
        ("bad currency", "a currency that is not 3 letters"),
        ("init called twice", "a second init"),
        (
            "must start with a letter",
            "the Worker's refusal of the name `5`",
        ),
    ] {
        assert_eq!(
            count(needle),
            1,
            "{what}: warned once; warnings: {warnings:#?}"
        );
    }
    assert_eq!(
        warnings.len(),
        9,
        "nothing else, no internal error: {warnings:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|m| m.level == "SEVERE" && m.message.contains("sdk.js")),
        "{logs:#?}"
    );
    Ok(())
}

/// Issue 14: the Worker links the checkout's email to the browser's `_ttp`, so a later event
/// without it is sent with it; `ttedge('reset')` at logout erases that link.
#[tokio::test(flavor = "multi_thread")]
async fn reset_erases_the_identity_the_worker_linked_to_the_browser() -> anyhow::Result<()> {
    let rig = Rig::start().await?;
    let h = hashes()?;
    let calls = format!("{INIT} {GRANTED}");
    rig.pages.html("/shop", shop_page("Shop", "", &calls, ""));
    rig.visit("/shop").await?;
    rig.event_where("the shop's Pageview", |e| e["event"] == "Pageview")
        .await?;
    rig.until(
        "the _ttp cookie",
        "return document.cookie.includes('_ttp=');",
    )
    .await?;

    // Checkout: the visitor gives the email; the Worker keeps its hash for this browser.
    rig.run(&format!(
        "{IDENTIFY} ttedge('track', 'begin_checkout', {{value: 5, currency: 'EUR'}}, {{event_id: 'checkout-sdk'}});"
    ))
    .await?;
    let checkout = rig.event("checkout-sdk").await?;
    assert_eq!(checkout["user"]["email"], json!(h.email), "{checkout:#}");

    // The SDK forgets (a new session), the Worker does not: the view goes out with the email.
    rig.run("sessionStorage.clear();").await?;
    rig.visit("/shop").await?;
    rig.run("ttedge('track', 'view_item', {value: 5, currency: 'EUR'}, {event_id: 'view-sdk'});")
        .await?;
    let view = rig.event("view-sdk").await?;
    let (posted, answer) = rig.posted("view-sdk").await?;
    assert!(
        posted.get("user_data").is_none(),
        "the page sent no email: {posted}"
    );
    assert_eq!(view["user"]["email"], json!(h.email), "enriched: {view:#}");
    assert_eq!(view["user"]["phone"], json!(h.phone), "{view:#}");
    assert_eq!(
        view["user"]["external_id"],
        json!(h.external_id),
        "{view:#}"
    );
    let coached: Vec<&Value> = answer["emq"]["coaching"]
        .as_array()
        .map(|c| c.iter().map(|c| &c["factor"]).collect())
        .unwrap_or_default();
    assert!(
        !coached.contains(&&json!("email")),
        "the answer scores what is sent: {answer}"
    );

    // Logout: the SDK tells the Worker, which erases the link.
    rig.run("ttedge('reset');").await?;
    let reset = rig
        .until(
            "the reset was answered",
            "for (const r of __sent) if (r.url.endsWith('/collect/reset') && r.answer) return r;
             return null;",
        )
        .await?;
    assert_eq!(reset["status"], 200, "{reset}");
    assert_eq!(reset["credentials"], "include", "{reset}");
    assert!(
        reset["answer"]["erased"].as_u64().unwrap_or(0) >= 1,
        "{reset}"
    );
    rig.run(
        "ttedge('track', 'purchase', {value: 5, currency: 'EUR'}, {event_id: 'purchase-sdk'});",
    )
    .await?;
    let purchase = rig.event("purchase-sdk").await?;
    assert!(purchase["user"].get("email").is_none(), "{purchase:#}");
    assert_eq!(
        purchase["user"]["ttp"], view["user"]["ttp"],
        "the same browser"
    );
    Ok(())
}
