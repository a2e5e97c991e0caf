//! Configuration of the collect path, end to end under `wrangler dev` with the loopback mock
//! of TikTok (DESIGN, "Configuration"). Two Worker configurations, one test (and one
//! `wrangler dev`) each:
//!
//! - [`test_event_code_and_cookie_domain`]: `TIKTOK_TEST_EVENT_CODE` is sent to TikTok as
//!   `test_event_code` (with the event otherwise as usual), and `COOKIE_DOMAIN` replaces the
//!   registrable domain of the collect host in both cookies; nothing else reaches TikTok.
//! - [`missing_pixel_id_answers_503_misconfigured`]: without `TIKTOK_PIXEL_ID`, `/healthz`
//!   says what is missing, `POST /collect` answers 503 `misconfigured` (no cookie), and
//!   TikTok receives nothing.
//!
//! Each test records every failed expectation and reports them all at the end ([`Checks`]),
//! and checks that the access token and personal data appear in no answer and nowhere in
//! wrangler's log.
//!
//! Run with `cargo test -p ttedge-e2e --test collect_config`.

use serde_json::{json, Value};
use ttedge_e2e::collect::{
    check_no_secret, closing_checks, cookie_value, is_minted_ttp, main_site_options, start, Checks,
    NotSent, ACCESS_TOKEN, DELIVERY, IP, PIXEL, QUIET, SHA_EMAIL_USER, SITE, TTCLID, TTCLID_ATTRS,
    TTP_ATTRS, UA,
};
use ttedge_e2e::WranglerDevOptions;

#[tokio::test(flavor = "multi_thread")]
async fn test_event_code_and_cookie_domain() -> anyhow::Result<()> {
    let (tiktok, worker, mut client) = start(|tiktok| {
        main_site_options(tiktok)
            .var("TIKTOK_TEST_EVENT_CODE", "TEST40123")
            .var("COOKIE_DOMAIN", "shop.example")
    })
    .await?;
    let mut checks = Checks::new("test_event_code_and_cookie_domain");

    let event = json!({
        "event": "purchase",
        "event_id": "e2e-test-code-1",
        "timestamp": 1_764_064_800_000_i64,
        "url": format!("{SITE}/thanks?ttclid={TTCLID}"),
        "user_data": {"email": " User@Example.com "},
        "properties": {"value": 10, "currency": "usd"},
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"}
    });
    let answer = client.send(client.browser_post(&event)).await?;
    checks.eq(format!("status ({})", answer.show()), answer.status, 202);
    let cookies = answer.set_cookies();
    let ttp = cookies
        .iter()
        .find_map(|c| cookie_value(c, "_ttp"))
        .unwrap_or_default()
        .to_owned();
    checks.that("a new _ttp", is_minted_ttp(&ttp), format!("{cookies:?}"));
    checks.eq(
        "COOKIE_DOMAIN overrides the registrable domain of t.shop.test",
        cookies,
        vec![
            format!("_ttp={ttp}; Domain=shop.example; {TTP_ATTRS}"),
            format!("ttclid={TTCLID}; Domain=shop.example; {TTCLID_ATTRS}"),
        ],
    );

    if let Some(requests) = checks.ok(
        "the test event reaches TikTok",
        tiktok.wait_for_requests(1, DELIVERY).await,
    ) {
        let request = &requests[0];
        checks.eq("path", request.path.as_str(), "/open_api/v1.3/event/track/");
        checks.eq(
            "Access-Token",
            request.header("access-token"),
            Some(ACCESS_TOKEN),
        );
        let body = request.json.clone().unwrap_or(Value::Null);
        checks.eq(
            "body: event_source, event_source_id, test_event_code",
            (
                &body["event_source"],
                &body["event_source_id"],
                &body["test_event_code"],
            ),
            (&json!("web"), &json!(PIXEL), &json!("TEST40123")),
        );
        checks.eq(
            "body: the event",
            request.data().to_vec(),
            vec![json!({
                "event": "CompletePayment",
                "event_time": 1_764_064_800,
                "event_id": "e2e-test-code-1",
                "user": {"email": SHA_EMAIL_USER, "ttp": ttp, "ttclid": TTCLID, "ip": IP,
                         "user_agent": UA, "locale": "de-CH"},
                "page": {"url": format!("{SITE}/thanks?ttclid={TTCLID}")},
                "properties": {"value": 10.0, "currency": "USD"},
                "limited_data_use": false
            })],
        );
    }
    closing_checks(
        checks,
        &mut client,
        &tiktok,
        &worker,
        &["e2e-test-code-1".to_owned()],
        NotSent::default(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_pixel_id_answers_503_misconfigured() -> anyhow::Result<()> {
    // wrangler.toml's TIKTOK_PIXEL_ID is "", and no --var sets it.
    let (tiktok, worker, mut client) = start(|tiktok| {
        WranglerDevOptions::new()
            .var("TIKTOK_API_BASE", tiktok.base_url())
            .var("TIKTOK_ACCESS_TOKEN", ACCESS_TOKEN)
            .var("SITE_ORIGINS", SITE)
    })
    .await?;
    let mut checks = Checks::new("missing_pixel_id_answers_503_misconfigured");

    let answer = client
        .send(client.request(reqwest::Method::GET, "/healthz"))
        .await?;
    let health = answer.json();
    checks.eq(
        format!("GET /healthz: status ({})", answer.show()),
        answer.status,
        200,
    );
    checks.eq(
        "GET /healthz: configured",
        &health["configured"],
        &json!(false),
    );
    let mentions_pixel = |problems: &Value| {
        problems.as_array().is_some_and(|p| {
            p.len() == 1 && p[0].as_str().is_some_and(|s| s.contains("TIKTOK_PIXEL_ID"))
        })
    };
    checks.that(
        "GET /healthz: problems lists the missing TIKTOK_PIXEL_ID (and only that)",
        mentions_pixel(&health["problems"]),
        answer.show(),
    );

    let event = json!({"event": "purchase", "event_id": "e2e-unconfigured-1",
                       "user_data": {"email": "a@b.test"}});
    let answer = client.send(client.browser_post(&event)).await?;
    checks.eq(
        format!("POST /collect: status ({})", answer.show()),
        answer.status,
        503,
    );
    checks.eq(
        "POST /collect: error code",
        answer.error_code().as_deref(),
        Some("misconfigured"),
    );
    checks.that(
        "POST /collect: error.problems lists the missing TIKTOK_PIXEL_ID (and only that)",
        mentions_pixel(&answer.json()["error"]["problems"]),
        answer.show(),
    );
    checks.eq(
        "POST /collect: no Set-Cookie",
        answer.set_cookies(),
        Vec::<String>::new(),
    );

    tokio::time::sleep(QUIET).await;
    checks.that(
        "misconfigured: TikTok received nothing",
        tiktok.requests().is_empty(),
        tiktok.summary(),
    );
    check_no_secret(&mut checks, &client, &worker);
    checks.finish();
    Ok(())
}
