//! What the collect API's end-to-end tests (`tests/tests/collect_*.rs`) share: the shop they
//! play (pixel, tokens, origins, the collect host, the browser's headers), the SHA-256 of its
//! personal data, the `Set-Cookie` attributes DESIGN prescribes, soft assertions ([`Checks`])
//! that report every failed expectation at once, a [`Client`] that keeps every answer body
//! (to look for the leaked access token), and the checks every file ends with: exactly the
//! expected events reached TikTok ([`nothing_else_reached_tiktok`]) and no secret or personal
//! data leaked ([`check_no_secret`]).
//!
//! Each test file starts its own mock and `wrangler dev` with [`start`], so each file's
//! "nothing else reached TikTok" covers exactly its own events.

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::panic::Location;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mock::{MockTikTok, RecordedRequest};
use crate::worker::{http_client, WranglerDev, WranglerDevOptions};
/// The pixel code (`event_source_id`).
pub const PIXEL: &str = "C4E2ECOLLECT0000001";
/// The access token: sent to TikTok in `Access-Token`, never in an answer or a log line.
pub const ACCESS_TOKEN: &str = "e2e-collect-SECRET-token-7f3a9c1d5b2e";
/// Bearer token of `/admin/api/status`.
pub const ADMIN_TOKEN: &str = "e2e-collect-admin-0b5d";
/// The shop's page origin.
pub const SITE: &str = "https://shop.test";
/// A second allowed page origin.
pub const SITE_WWW: &str = "https://www.shop.test";
/// A local development origin: `http://` is allowed for localhost.
pub const SITE_LOCAL: &str = "http://localhost:3000";
/// The collect host (the Worker's first-party subdomain); `wrangler dev` keeps `Host`.
pub const HOST: &str = "t.shop.test";
/// Request headers of "the browser": `CF-Connecting-IP`, `User-Agent`, `Accept-Language`.
pub const IP: &str = "203.0.113.7";
/// The browser's `User-Agent`.
pub const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
                  (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
/// The browser's `Accept-Language`.
pub const ACCEPT_LANGUAGE: &str = "de-CH,de;q=0.9,en;q=0.8";
/// The `ttclid` of the landing page URL.
pub const TTCLID: &str = "E.C.P.e2eClick42";

// SHA-256 of the normalised values, computed with coreutils on the normalised string:
///   printf '%s' 'user@example.com' | sha256sum         (email " User@Example.com ")
pub const SHA_EMAIL_USER: &str = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";
///   printf '%s' 'buyer@example.com' | sha256sum        (email "buyer@example.com")
pub const SHA_EMAIL_BUYER: &str =
    "6a6c26195c3682faa816966af789717c3bfa834eee6c599d667d2b3429c27cfd";
///   printf '%s' '15551234567' | sha256sum              (phone "+1 (555) 123-4567")
pub const SHA_PHONE_US: &str = "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a";
///   printf '%s' 'cust-42' | sha256sum                  (external_id " cust-42 ")
pub const SHA_EXTERNAL_CUST42: &str =
    "8a3c5a67cad508582b5edf6b8352cea3ffbad7f44812c1a736b4444c0f5746aa";
///   printf '%s' 'shopper.two@example.org' | sha256sum  (email " Shopper.Two@Example.ORG ")
pub const SHA_EMAIL_SHOPPER2: &str =
    "870fdc81966fbecd5f922c9fe01234bb67d998ae5824028bea2930b7ba80deaa";
///   printf '%s' '447700900123' | sha256sum             (phone "+44 7700 900123")
pub const SHA_PHONE_UK: &str = "033134b911b137918338415ee3d20a064b24773d36a3b02e8b99fdd3fcd6b4cd";
///   printf '%s' '4242' | sha256sum                     (external_id 4242, a JSON number)
pub const SHA_EXTERNAL_4242: &str =
    "0315b4020af3eccab7706679580ac87a710d82970733b8719e70af9b57e7b9e6";

/// `_ttp`: about 13 months.
pub const TTP_ATTRS: &str = "Path=/; Max-Age=34128000; Secure; SameSite=Lax";
/// `ttclid`: 30 days.
pub const TTCLID_ATTRS: &str = "Path=/; Max-Age=2592000; Secure; SameSite=Lax";

/// Longer than the Dispatcher's 200 ms batch window (and an alarm's scheduling slack): when
/// nothing arrived after this, nothing was queued.
pub const QUIET: Duration = Duration::from_millis(1_500);
/// Time for queued events to reach the mock.
pub const DELIVERY: Duration = Duration::from_secs(15);

// ---- soft assertions --------------------------------------------------------------------

/// Collects failed expectations, so a run reports all of them at once.
pub struct Checks {
    name: &'static str,
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    /// No checks yet, for the test `name`.
    pub fn new(name: &'static str) -> Self {
        Checks {
            name,
            failures: Vec::new(),
            passed: 0,
        }
    }

    /// Expects `actual == expected`.
    #[track_caller]
    pub fn eq<A, E>(&mut self, what: impl Display, actual: A, expected: E) -> bool
    where
        A: PartialEq<E> + Debug,
        E: Debug,
    {
        let ok = actual == expected;
        if ok {
            self.passed += 1;
        } else {
            self.fail(format!(
                "{what}\n      expected: {expected:?}\n      actual:   {actual:?}"
            ));
        }
        ok
    }

    /// Expects `ok`; `detail` says what was seen instead.
    #[track_caller]
    pub fn that(&mut self, what: impl Display, ok: bool, detail: impl Display) -> bool {
        if ok {
            self.passed += 1;
        } else {
            self.fail(format!("{what}\n      {detail}"));
        }
        ok
    }

    /// Records a failure, with the file and line of the check.
    #[track_caller]
    pub fn fail(&mut self, message: String) {
        let at = Location::caller();
        self.failures
            .push(format!("[{}:{}] {message}", at.file(), at.line()));
    }

    /// Records a hard error (a time-out, a transport error) as a failure and goes on.
    #[track_caller]
    pub fn ok<T>(&mut self, what: impl Display, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.fail(format!("{what}: {error:#}"));
                None
            }
        }
    }

    /// Prints the tally and panics with every failure, if any.
    pub fn finish(self) {
        eprintln!(
            "{}: {} check(s) passed, {} failed",
            self.name,
            self.passed,
            self.failures.len()
        );
        if !self.failures.is_empty() {
            panic!(
                "{}: {} check(s) failed:\n  - {}",
                self.name,
                self.failures.len(),
                self.failures.join("\n  - ")
            );
        }
    }
}

// ---- talking to the Worker -----------------------------------------------------------------

/// One answer of the Worker, read whole.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Every header.
    pub headers: reqwest::header::HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header, in order.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// `error.code` of an error answer.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }

    /// `error.path` of an error answer.
    pub fn error_path(&self) -> Option<String> {
        self.json()["error"]["path"].as_str().map(str::to_owned)
    }

    /// `"<status> <body>"`, for failure messages.
    pub fn show(&self) -> String {
        format!("HTTP {} {}", self.status, self.body)
    }
}

/// A client of the running Worker, keeping every answer body it got (to look for leaked
/// secrets).
pub struct Client {
    base: String,
    client: reqwest::Client,
    bodies: Vec<String>,
}

impl Client {
    /// A client of `worker`.
    pub fn new(worker: &WranglerDev) -> Self {
        Client {
            base: worker.base_url(),
            client: http_client(),
            bodies: Vec::new(),
        }
    }

    /// `method path` on the Worker, no header set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// `POST /collect` as a page on [`SITE`] sends it (through the SDK, with credentials),
    /// to the collect host [`HOST`].
    pub fn browser_post(&self, body: &Value) -> reqwest::RequestBuilder {
        self.collect_post(HOST, Some(SITE), Some("application/json"), body.to_string())
    }

    /// `POST /collect` with the browser's `CF-Connecting-IP`, `User-Agent` and
    /// `Accept-Language`, and each of `Host`, `Origin` and `Content-Type` set once (reqwest's
    /// `header()` appends, so these must not be added again).
    pub fn collect_post(
        &self,
        host: &str,
        origin: Option<&str>,
        content_type: Option<&str>,
        body: String,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .request(reqwest::Method::POST, "/collect")
            .header("Host", host)
            .header("CF-Connecting-IP", IP)
            .header("User-Agent", UA)
            .header("Accept-Language", ACCEPT_LANGUAGE)
            .body(body);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        request
    }

    /// Sends `request` and reads the whole answer (keeping its body).
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await?;
        self.bodies.push(body.clone());
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `GET /admin/api/status` with [`ADMIN_TOKEN`].
    pub async fn admin_status(&mut self) -> anyhow::Result<Answer> {
        let request = self
            .request(reqwest::Method::GET, "/admin/api/status")
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"));
        self.send(request).await
    }
}

/// The token appears in no answer body and nowhere in wrangler's log.
pub fn check_no_secret(checks: &mut Checks, client: &Client, worker: &WranglerDev) {
    let leaking: Vec<&String> = client
        .bodies
        .iter()
        .filter(|body| body.contains(ACCESS_TOKEN))
        .collect();
    checks.that(
        format!(
            "the access token appears in none of the {} answer bodies",
            client.bodies.len()
        ),
        leaking.is_empty(),
        format!("leaked in: {leaking:?}"),
    );
    let log = worker.log();
    checks.that(
        format!(
            "the access token appears nowhere in wrangler's log ({})",
            worker.log_path().display()
        ),
        !log.contains(ACCESS_TOKEN),
        "found it in the log",
    );
    let clear_pii = [
        "User@Example.com",
        "user@example.com",
        "Shopper.Two@Example.ORG",
        "shopper.two@example.org",
        "+1 (555) 123-4567",
        "15551234567",
        "447700900123",
    ];
    let logged_pii: Vec<&str> = clear_pii
        .iter()
        .copied()
        .filter(|pii| log.contains(pii))
        .collect();
    checks.that(
        "no personal data in clear in wrangler's log",
        logged_pii.is_empty(),
        format!("found {logged_pii:?}"),
    );
    checks.that(
        "the Worker never panicked",
        !log.contains("panicked") && !log.contains("RuntimeError: unreachable"),
        format!("log tail:\n{}", worker.log_tail(30)),
    );
}

/// The `data[]` element with `event_id`, from every request received.
pub fn element(requests: &[RecordedRequest], event_id: &str) -> Option<Value> {
    requests
        .iter()
        .flat_map(|r| r.data().iter())
        .find(|e| e["event_id"] == event_id)
        .cloned()
}

/// Waits until the mock has received every one of `ids`.
pub async fn wait_for_ids(
    tiktok: &MockTikTok,
    ids: &[&str],
) -> anyhow::Result<Vec<RecordedRequest>> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let requests = tiktok.requests();
        let seen: BTreeSet<String> = requests.iter().flat_map(|r| r.event_ids()).collect();
        if ids.iter().all(|id| seen.contains(*id)) {
            return Ok(requests);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "mock TikTok did not receive {ids:?} within {DELIVERY:?}; got {}",
                tiktok.summary()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A valid `_ttp` minted by ttedge: 27 URL-safe base64 characters.
pub fn is_minted_ttp(value: &str) -> bool {
    value.len() == 27
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The value of cookie `name` in a `Set-Cookie: name=...; ...` line.
pub fn cookie_value<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    set_cookie
        .strip_prefix(name)?
        .strip_prefix('=')?
        .split(';')
        .next()
}

/// The everyday single-site configuration: the pixel, the access token, three allowed
/// origins and the admin token.
pub fn main_site_options(tiktok: &MockTikTok) -> WranglerDevOptions {
    WranglerDevOptions::new()
        .var("TIKTOK_API_BASE", tiktok.base_url())
        .var("TIKTOK_PIXEL_ID", PIXEL)
        .var("TIKTOK_ACCESS_TOKEN", ACCESS_TOKEN)
        .var("SITE_ORIGINS", format!("{SITE}, {SITE_WWW},{SITE_LOCAL}"))
        .var("ADMIN_TOKEN", ADMIN_TOKEN)
}

/// `{"event":"page_view","event_id":<id>,"padding":"xxx…"}` of exactly `size` bytes.
pub fn padded_body(event_id: &str, size: usize) -> String {
    let head = format!(r#"{{"event":"page_view","event_id":"{event_id}","padding":""#);
    let tail = r#""}"#;
    let padding = size.saturating_sub(head.len() + tail.len());
    let body = format!("{head}{}{tail}", "x".repeat(padding));
    assert_eq!(body.len(), size);
    body
}

/// `text` cut to `max` characters (with `…` if cut), for failure messages.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The counters of events the Worker answered for but never sends.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotSent {
    /// Held back by consent.
    pub held: i64,
    /// Skipped (not an event for TikTok, such as `gtm.js`).
    pub skipped: i64,
    /// Rejected (a name TikTok would refuse).
    pub rejected: i64,
}

/// The end of every collect scenario: nothing beyond `delivered` (and `not_sent`'s counts)
/// reached TikTok, no secret in any answer or the log, and every soft check reported.
pub async fn closing_checks(
    mut checks: Checks,
    client: &mut Client,
    tiktok: &MockTikTok,
    worker: &WranglerDev,
    delivered: &[String],
    not_sent: NotSent,
) -> anyhow::Result<()> {
    nothing_else_reached_tiktok(&mut checks, client, tiktok, delivered, not_sent).await?;
    check_no_secret(&mut checks, client, worker);
    checks.finish();
    Ok(())
}

/// Every delivered event arrived exactly once; skipped, held, rejected, duplicate and refused
/// events never did; the Dispatcher's counters agree (`received` and `delivered` are the
/// delivered events, `held`, `skipped` and `rejected` are `not_sent`, nothing parked or
/// retried). Call it once the file's events have all been sent, on a Worker of its own.
pub async fn nothing_else_reached_tiktok(
    checks: &mut Checks,
    client: &mut Client,
    tiktok: &MockTikTok,
    delivered: &[String],
    not_sent: NotSent,
) -> anyhow::Result<()> {
    tokio::time::sleep(QUIET).await;
    let mut ids = tiktok.event_ids();
    ids.sort();
    let mut expected: Vec<String> = delivered.to_vec();
    expected.sort();
    checks.eq(
        "TikTok received each ready event exactly once, and nothing skipped, held, rejected, \
         duplicate or refused",
        ids,
        expected,
    );
    for request in tiktok.requests() {
        checks.eq(
            format!("request #{}: Access-Token", request.index),
            request.header("access-token"),
            Some(ACCESS_TOKEN),
        );
    }

    let Some(status) = checks.ok("GET /admin/api/status", client.admin_status().await) else {
        return Ok(());
    };
    checks.eq(
        format!("admin status: HTTP ({})", status.show()),
        status.status,
        200,
    );
    let state = status.json();
    let counter = |name: &str| state["counters"][name].as_i64().unwrap_or(0);
    let n = delivered.len() as i64;
    checks.eq(
        "admin status: queued, parked",
        (&state["queued"], &state["parked"]),
        (&json!(0), &json!(0)),
    );
    checks.eq(
        "admin status: counters received, delivered, held, skipped, rejected, parked, retried",
        [
            counter("received"),
            counter("delivered"),
            counter("held"),
            counter("skipped"),
            counter("rejected"),
            counter("parked"),
            counter("retried"),
        ],
        [
            n,
            n,
            not_sent.held,
            not_sent.skipped,
            not_sent.rejected,
            0,
            0,
        ],
    );
    let requests = tiktok.requests().len() as i64;
    checks.eq(
        "admin status: counters sent and requests match what the mock saw",
        [counter("sent"), counter("requests")],
        [n, requests],
    );
    checks.eq(
        "admin status: rate window (every request within the last minute)",
        (
            &state["rate_window"]["used"],
            &state["rate_window"]["limit"],
        ),
        (&json!(requests), &json!(1000)),
    );
    checks.eq(
        "admin status: no parked events",
        &state["parked_events"],
        &json!([]),
    );
    checks.that(
        "admin status: holds no access token",
        !status.body.contains(ACCESS_TOKEN),
        "the token is in the admin answer",
    );
    Ok(())
}

/// Starts a mock of TikTok and `wrangler dev` with `options(&mock)` (usually
/// [`main_site_options`], maybe with more vars), and a [`Client`] of it.
pub async fn start(
    options: impl FnOnce(&MockTikTok) -> WranglerDevOptions,
) -> anyhow::Result<(MockTikTok, WranglerDev, Client)> {
    let tiktok = MockTikTok::start_new().await?;
    let worker = WranglerDev::start(options(&tiktok)).await?;
    eprintln!(
        "wrangler dev ready in {:.1?} on {} (log {})",
        worker.startup_time(),
        worker.base_url(),
        worker.log_path().display()
    );
    let client = Client::new(&worker);
    Ok((tiktok, worker, client))
}
