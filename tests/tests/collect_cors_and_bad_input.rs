//! What `POST /collect` refuses, and that nothing refused reaches TikTok (DESIGN, "Collect
//! API v1"), under `wrangler dev` with the loopback mock of TikTok as `TIKTOK_API_BASE`.
//!
//! One Worker in the everyday single-site configuration, one scenario in order:
//!
//! 1. CORS: the preflight from each allowed origin (`https://` origins and `http://localhost`)
//!    is answered 204 with the origin, credentials, POST, `Content-Type` and
//!    `Vary: Origin`; preflights and posts from origins not in `SITE_ORIGINS` get 403 and no
//!    CORS header nor cookie.
//! 2. Bad input: wrong methods (405 with `Allow`), wrong or missing content types (415),
//!    malformed JSON, fields of the wrong type (with the path of the field), a batch of 101
//!    events, an empty batch, and bodies over 64 KiB: each gets its status, a JSON error
//!    with code and message, CORS for the allowed origin and no `Set-Cookie`.
//! 3. After all the refusals TikTok has received nothing and the Dispatcher has received
//!    nothing.
//! 4. The limits themselves are accepted: a body of exactly 64 KiB and a batch of exactly 100
//!    events reach TikTok.
//! 5. Exactly those 101 events reached TikTok, once each, with the access token; the
//!    Dispatcher's counters agree; the access token and personal data appear in no answer
//!    and nowhere in wrangler's log.
//!
//! Every failed expectation is recorded and all are reported at the end ([`Checks`]).
//!
//! Run with `cargo test -p ttedge-e2e --test collect_cors_and_bad_input`.

use serde_json::{json, Value};
use ttedge_e2e::collect::{
    closing_checks, main_site_options, padded_body, start, truncate, wait_for_ids, Checks, Client,
    NotSent, HOST, QUIET, SITE, SITE_LOCAL, SITE_WWW,
};
use ttedge_e2e::MockTikTok;

#[tokio::test(flavor = "multi_thread")]
async fn refusals_forward_nothing_and_limits_are_inclusive() -> anyhow::Result<()> {
    let (tiktok, worker, mut client) = start(main_site_options).await?;
    let mut checks = Checks::new("refusals_forward_nothing_and_limits_are_inclusive");

    preflight_from_allowed_origins(&mut checks, &mut client).await?;
    foreign_origins_are_refused(&mut checks, &mut client).await?;
    wrong_methods_and_content_types(&mut checks, &mut client).await?;
    bodies_refused_whole(&mut checks, &mut client).await?;
    refusals_forwarded_nothing(&mut checks, &mut client, &tiktok).await?;
    let delivered = limits_are_inclusive(&mut checks, &mut client, &tiktok).await?;
    closing_checks(
        checks,
        &mut client,
        &tiktok,
        &worker,
        &delivered,
        NotSent::default(),
    )
    .await?;
    Ok(())
}

/// A valid event, refused for where it comes from or how it is posted.
fn refused_event() -> Value {
    json!({"event": "purchase", "event_id": "e2e-foreign-1",
           "properties": {"value": 10, "currency": "USD"}})
}

/// The preflight from each allowed origin.
async fn preflight_from_allowed_origins(
    checks: &mut Checks,
    client: &mut Client,
) -> anyhow::Result<()> {
    for origin in [SITE, SITE_WWW, SITE_LOCAL] {
        let answer = client
            .send(
                client
                    .request(reqwest::Method::OPTIONS, "/collect")
                    .header("Host", HOST)
                    .header("Origin", origin)
                    .header("Access-Control-Request-Method", "POST")
                    .header("Access-Control-Request-Headers", "content-type"),
            )
            .await?;
        checks.eq(
            format!("preflight from {origin}: status"),
            answer.status,
            204,
        );
        checks.eq(
            format!("preflight from {origin}: Access-Control-Allow-Origin"),
            answer.header("access-control-allow-origin"),
            Some(origin),
        );
        checks.eq(
            format!("preflight from {origin}: Access-Control-Allow-Credentials"),
            answer.header("access-control-allow-credentials"),
            Some("true"),
        );
        let methods = answer
            .header("access-control-allow-methods")
            .unwrap_or_default()
            .to_ascii_uppercase();
        checks.that(
            format!("preflight from {origin}: Access-Control-Allow-Methods allows POST"),
            methods.split(',').any(|m| m.trim() == "POST"),
            format!("Access-Control-Allow-Methods: {methods:?}"),
        );
        let allowed_headers = answer
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        checks.that(
            format!("preflight from {origin}: Access-Control-Allow-Headers allows Content-Type"),
            allowed_headers
                .split(',')
                .any(|h| h.trim() == "content-type"),
            format!("Access-Control-Allow-Headers: {allowed_headers:?}"),
        );
        checks.that(
            format!("preflight from {origin}: Vary includes Origin"),
            answer
                .header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("origin")),
            format!("Vary: {:?}", answer.header("vary")),
        );
    }
    Ok(())
}

/// Preflight and POST from origins that are not in `SITE_ORIGINS`.
async fn foreign_origins_are_refused(
    checks: &mut Checks,
    client: &mut Client,
) -> anyhow::Result<()> {
    let event = refused_event();
    for origin in [
        "https://evil.test",
        "http://shop.test",
        "https://shop.test.evil.test",
        "https://shop.test:8443",
        "null",
    ] {
        let answer = client
            .send(
                client
                    .request(reqwest::Method::OPTIONS, "/collect")
                    .header("Host", HOST)
                    .header("Origin", origin)
                    .header("Access-Control-Request-Method", "POST"),
            )
            .await?;
        checks.eq(
            format!("preflight from foreign {origin}: status"),
            answer.status,
            403,
        );
        checks.eq(
            format!("preflight from foreign {origin}: no Access-Control-Allow-Origin"),
            answer.header("access-control-allow-origin"),
            None,
        );
        let answer = client
            .send(client.collect_post(
                HOST,
                Some(origin),
                Some("application/json"),
                event.to_string(),
            ))
            .await?;
        checks.eq(
            format!("POST from foreign {origin}: status ({})", answer.show()),
            answer.status,
            403,
        );
        checks.eq(
            format!("POST from foreign {origin}: error code"),
            answer.error_code().as_deref(),
            Some("origin_not_allowed"),
        );
        checks.eq(
            format!("POST from foreign {origin}: no Access-Control-Allow-Origin"),
            answer.header("access-control-allow-origin"),
            None,
        );
        checks.eq(
            format!("POST from foreign {origin}: no Set-Cookie"),
            answer.set_cookies(),
            Vec::<String>::new(),
        );
    }
    Ok(())
}

/// Wrong methods on `/collect`, and wrong or missing content types.
async fn wrong_methods_and_content_types(
    checks: &mut Checks,
    client: &mut Client,
) -> anyhow::Result<()> {
    let event = refused_event();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let answer = client
            .send(
                client
                    .request(method.clone(), "/collect")
                    .header("Host", HOST)
                    .header("Origin", SITE),
            )
            .await?;
        checks.eq(
            format!("{method} /collect: status ({})", answer.show()),
            answer.status,
            405,
        );
        checks.eq(
            format!("{method} /collect: error code"),
            answer.error_code().as_deref(),
            Some("method_not_allowed"),
        );
        checks.eq(
            format!("{method} /collect: Allow"),
            answer.header("allow"),
            Some("POST, OPTIONS"),
        );
    }

    // Wrong or missing content types.
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/html"),
        None,
    ] {
        let mut request = client
            .request(reqwest::Method::POST, "/collect")
            .header("Host", HOST)
            .header("Origin", SITE)
            .body(event.to_string());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let answer = client.send(request).await?;
        checks.eq(
            format!("Content-Type {content_type:?}: status ({})", answer.show()),
            answer.status,
            415,
        );
        checks.eq(
            format!("Content-Type {content_type:?}: error code"),
            answer.error_code().as_deref(),
            Some("unsupported_content_type"),
        );
    }
    Ok(())
}

/// Bodies that are refused whole: each gets its status, a JSON error with code, message and
/// (for a field) path, CORS for the allowed origin, and no cookie.
async fn bodies_refused_whole(checks: &mut Checks, client: &mut Client) -> anyhow::Result<()> {
    let hundred_and_one: Vec<Value> = (0..101)
        .map(|i| json!({"event": "page_view", "event_id": format!("e2e-101-{i}")}))
        .collect();
    let hundred_and_one = json!({ "batch": hundred_and_one }).to_string();
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "truncated JSON",
            r#"{"event": "purchase", "event_id": "e2e-bad-1","#.to_owned(),
            400,
            "malformed_json",
            None,
        ),
        (
            "not JSON at all",
            "event=purchase&event_id=e2e-bad-2".to_owned(),
            400,
            "malformed_json",
            None,
        ),
        (
            "properties.value of the wrong type in the second event of a batch",
            json!({"batch": [
                {"event": "page_view", "event_id": "e2e-bad-3"},
                {"event": "purchase", "event_id": "e2e-bad-4", "properties": {"value": [59.9]}}
            ]})
            .to_string(),
            400,
            "invalid_field",
            Some("batch[1].properties.value"),
        ),
        (
            "consent.ad_storage not granted/denied",
            json!({"event": "purchase", "event_id": "e2e-bad-5",
                   "consent": {"ad_storage": "maybe"}})
            .to_string(),
            400,
            "invalid_field",
            Some("consent.ad_storage"),
        ),
        (
            "user_data.email a number",
            json!({"event": "purchase", "event_id": "e2e-bad-6", "user_data": {"email": 42}})
                .to_string(),
            400,
            "invalid_field",
            Some("user_data.email"),
        ),
        (
            "event name missing",
            json!({"event_id": "e2e-bad-7"}).to_string(),
            400,
            "invalid_field",
            Some("event"),
        ),
        (
            "batch of 101 events",
            hundred_and_one,
            413,
            "batch_too_long",
            None,
        ),
        (
            "empty batch",
            json!({"batch": []}).to_string(),
            400,
            "empty_batch",
            None,
        ),
        (
            "body of 64 KiB + 1 byte",
            padded_body("e2e-too-large", 64 * 1024 + 1),
            413,
            "body_too_large",
            None,
        ),
        (
            "body of 1 MiB",
            padded_body("e2e-much-too-large", 1024 * 1024),
            413,
            "body_too_large",
            None,
        ),
    ];
    for (what, body, status, code, path) in cases {
        let answer = client
            .send(client.collect_post(HOST, Some(SITE), Some("application/json"), body))
            .await?;
        checks.eq(
            format!("{what}: status ({})", truncate(&answer.show(), 300)),
            answer.status,
            status,
        );
        checks.eq(
            format!("{what}: error code"),
            answer.error_code().as_deref(),
            Some(code),
        );
        if let Some(path) = path {
            checks.eq(
                format!("{what}: error path"),
                answer.error_path().as_deref(),
                Some(path),
            );
        }
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        checks.that(
            format!("{what}: the error says what is wrong"),
            !message.is_empty(),
            answer.show(),
        );
        checks.that(
            format!("{what}: the error is JSON"),
            answer
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            format!("Content-Type: {:?}", answer.header("content-type")),
        );
        checks.eq(
            format!("{what}: no Set-Cookie on a refusal"),
            answer.set_cookies(),
            Vec::<String>::new(),
        );
        // The page's script may read why it was refused.
        checks.eq(
            format!("{what}: the error carries CORS for the allowed origin"),
            answer.header("access-control-allow-origin"),
            Some(SITE),
        );
    }
    Ok(())
}

/// Nothing refused may reach TikTok: wait longer than the send window, then look.
async fn refusals_forwarded_nothing(
    checks: &mut Checks,
    client: &mut Client,
    tiktok: &MockTikTok,
) -> anyhow::Result<()> {
    tokio::time::sleep(QUIET).await;
    checks.that(
        "after the refusals, TikTok received no request at all",
        tiktok.requests().is_empty(),
        tiktok.summary(),
    );
    if let Some(status) = checks.ok("GET /admin/api/status", client.admin_status().await) {
        let state = status.json();
        checks.eq(
            "after the refusals, the Dispatcher queued nothing",
            (&state["queued"], state["counters"]["received"].as_i64()),
            (&json!(0), Some(0)),
        );
    }
    Ok(())
}

/// The limits themselves are accepted: a body of exactly 64 KiB and a batch of exactly 100
/// events (see the refusals for one byte and one event more). Returns the ids sent.
async fn limits_are_inclusive(
    checks: &mut Checks,
    client: &mut Client,
    tiktok: &MockTikTok,
) -> anyhow::Result<Vec<String>> {
    let mut sent = Vec::new();
    let answer = client
        .send(client.collect_post(
            HOST,
            Some(SITE),
            Some("application/json"),
            padded_body("e2e-64kib", 64 * 1024),
        ))
        .await?;
    checks.eq(
        format!("a body of exactly 64 KiB: status ({})", answer.show()),
        answer.status,
        202,
    );
    if answer.status == 202 {
        sent.push("e2e-64kib".to_owned());
    }

    let hundred: Vec<String> = (0..100).map(|i| format!("e2e-100-{i}")).collect();
    let batch: Vec<Value> = hundred
        .iter()
        .map(|id| json!({"event": "page_view", "event_id": id}))
        .collect();
    let answer = client
        .send(client.browser_post(&json!({ "batch": batch })))
        .await?;
    checks.eq(
        format!(
            "a batch of exactly 100 events: status ({})",
            truncate(&answer.show(), 300)
        ),
        answer.status,
        202,
    );
    checks.eq(
        "a batch of exactly 100 events: accepted",
        &answer.json()["accepted"],
        &json!(100),
    );
    if answer.status == 202 {
        sent.extend(hundred);
    }
    let ids: Vec<&str> = sent.iter().map(String::as_str).collect();
    checks.ok(
        "the 64 KiB event and the 100 events reach TikTok",
        wait_for_ids(tiktok, &ids).await,
    );
    Ok(sent)
}
