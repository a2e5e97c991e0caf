//! First-party cookies (DESIGN, "Cookies"), end to end: the `Set-Cookie` headers of `POST
//! /collect` under `wrangler dev`, and what the loopback mock of TikTok receives of them.
//!
//! One Worker in the everyday single-site configuration, one visitor's requests in order:
//!
//! - a new visitor gets a new `_ttp` (27 URL-safe characters, `Domain` the registrable domain
//!   of the collect host, about 13 months, `Secure`, `SameSite=Lax`), sent as `user.ttp`;
//! - an existing `_ttp` is set again exactly (extended), the `ttclid` cookie is used when the
//!   URL has none and is not set again;
//! - `ad_storage` denied: no cookie at all, no `user.ttp`, `limited_data_use`, and the email
//!   still sent when `ad_user_data` is granted;
//! - a collect host under a multi-label public suffix (`t.shop.example.co.uk`) sets
//!   `Domain=example.co.uk`, and the minted `_ttp` is not a constant;
//! - `sendBeacon`'s `text/plain` is accepted with the kept `_ttp`; a server without `Origin`
//!   may post (no CORS headers; `user` is the context IP and hashed email only);
//! - exactly those events reached TikTok, once each; the Dispatcher's counters agree; no
//!   access token or personal data in an answer or in wrangler's log.
//!
//! The `Set-Cookie` headers of a batch with `ttclid` in the page URL are checked in
//! `collect_payload.rs`, and `COOKIE_DOMAIN` in `collect_config.rs`.
//!
//! Every failed expectation is recorded and all are reported at the end ([`Checks`]).
//!
//! Run with `cargo test -p ttedge-e2e --test collect_cookies`.

use serde_json::{json, Value};
use ttedge_e2e::collect::{
    closing_checks, cookie_value, element, is_minted_ttp, main_site_options, start, wait_for_ids,
    Checks, Client, NotSent, HOST, SHA_EMAIL_USER, SITE, TTP_ATTRS,
};
use ttedge_e2e::MockTikTok;

#[tokio::test(flavor = "multi_thread")]
async fn cookies_are_first_party_and_exact() -> anyhow::Result<()> {
    let (tiktok, worker, mut client) = start(main_site_options).await?;
    let mut checks = Checks::new("cookies_are_first_party_and_exact");

    let delivered = cookie_requests(&mut checks, &mut client, &tiktok).await?;
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

/// `Set-Cookie` for a new visitor, a kept `_ttp`, `ttclid` from the cookie, denied storage, a
/// multi-label public suffix, `sendBeacon`'s `text/plain`, and a server without `Origin`; and
/// what TikTok receives of them. Returns the ids sent.
async fn cookie_requests(
    checks: &mut Checks,
    client: &mut Client,
    tiktok: &MockTikTok,
) -> anyhow::Result<Vec<String>> {
    let granted =
        json!({"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"});
    let kept = "E2eKeep.ttp-0123456789abcdef";
    let mut sent = Vec::new();

    // A new visitor (no cookie, no ttclid in the URL): a new _ttp is minted, on the
    // registrable domain of the collect host, and nothing else is set.
    let first_visit = json!({"event": "page_view", "event_id": "e2e-new-visitor",
                             "url": format!("{SITE}/"), "consent": granted});
    let answer = client.send(client.browser_post(&first_visit)).await?;
    checks.eq(
        format!("new visitor: status ({})", answer.show()),
        answer.status,
        202,
    );
    let cookies = answer.set_cookies();
    let first_ttp = cookies
        .first()
        .and_then(|c| cookie_value(c, "_ttp"))
        .unwrap_or_default()
        .to_owned();
    checks.that(
        "new visitor: a new _ttp is minted",
        is_minted_ttp(&first_ttp),
        format!("Set-Cookie: {cookies:?}"),
    );
    checks.eq(
        "new visitor: exactly the new _ttp is set, on shop.test (no ttclid without one)",
        cookies,
        vec![format!("_ttp={first_ttp}; Domain=shop.test; {TTP_ATTRS}")],
    );
    sent.push("e2e-new-visitor".to_owned());

    // An existing _ttp is kept, extended, and sent; the ttclid cookie is used when the URL
    // has none (and is not set again).
    let answer = client
        .send(
            client
                .browser_post(
                    &json!({"event": "page_view", "event_id": "e2e-existing-ttp",
                                      "url": format!("{SITE}/"), "consent": granted}),
                )
                .header(
                    "Cookie",
                    format!("theme=dark; _ttp={kept}; ttclid=E.C.P.fromCookie7"),
                ),
        )
        .await?;
    checks.eq(
        format!("existing _ttp: status ({})", answer.show()),
        answer.status,
        202,
    );
    checks.eq(
        "existing _ttp: the same value is set again, exactly (and no ttclid cookie)",
        answer.set_cookies(),
        vec![format!("_ttp={kept}; Domain=shop.test; {TTP_ATTRS}")],
    );
    sent.push("e2e-existing-ttp".to_owned());

    // ad_storage denied: no cookie set or extended, no ttp sent, LDU.
    let answer = client
        .send(
            client
                .browser_post(&json!({
                    "event": "page_view", "event_id": "e2e-storage-denied",
                    "url": format!("{SITE}/?ttclid=E.C.P.denied1"),
                    "user_data": {"email": " User@Example.com "},
                    "consent": {"sendable_to_ads": true, "ad_storage": "denied",
                                "ad_user_data": "granted"}
                }))
                .header("Cookie", format!("_ttp={kept}")),
        )
        .await?;
    checks.eq(
        format!("ad_storage denied: status ({})", answer.show()),
        answer.status,
        202,
    );
    checks.eq(
        "ad_storage denied: no Set-Cookie at all",
        answer.set_cookies(),
        Vec::<String>::new(),
    );
    sent.push("e2e-storage-denied".to_owned());

    // Registrable domain under a multi-label public suffix.
    let answer = client
        .send(client.collect_post(
            "t.shop.example.co.uk",
            Some(SITE),
            Some("application/json"),
            json!({"event": "page_view", "event_id": "e2e-co-uk"}).to_string(),
        ))
        .await?;
    checks.eq(
        format!("host t.shop.example.co.uk: status ({})", answer.show()),
        answer.status,
        202,
    );
    let cookies = answer.set_cookies();
    let minted = cookies
        .first()
        .and_then(|c| cookie_value(c, "_ttp"))
        .unwrap_or_default()
        .to_owned();
    checks.that(
        "host t.shop.example.co.uk: a new _ttp is minted",
        is_minted_ttp(&minted),
        format!("Set-Cookie: {cookies:?}"),
    );
    checks.eq(
        "host t.shop.example.co.uk: Domain=example.co.uk",
        cookies,
        vec![format!("_ttp={minted}; Domain=example.co.uk; {TTP_ATTRS}")],
    );
    checks.that(
        "host t.shop.example.co.uk: the minted _ttp is not a constant",
        minted != first_ttp,
        format!("both requests got {minted:?}"),
    );
    sent.push("e2e-co-uk".to_owned());

    // sendBeacon posts text/plain.
    let answer = client
        .send(
            client
                .collect_post(
                    HOST,
                    Some(SITE),
                    Some("text/plain;charset=UTF-8"),
                    json!({"event": "Pageview", "event_id": "e2e-beacon-1", "consent": granted})
                        .to_string(),
                )
                .header("Cookie", format!("_ttp={kept}")),
        )
        .await?;
    checks.eq(
        format!("text/plain (sendBeacon): status ({})", answer.show()),
        answer.status,
        202,
    );
    checks.eq(
        "text/plain (sendBeacon): the event is ready",
        (
            &answer.json()["accepted"],
            &answer.json()["events"][0]["event"],
        ),
        (&json!(1), &json!("Pageview")),
    );
    sent.push("e2e-beacon-1".to_owned());

    // A server (no Origin header) may post, with a charset in the content type.
    let answer = client
        .send(
            client
                .request(reqwest::Method::POST, "/collect")
                .header("Host", HOST)
                .header("Content-Type", "application/json; charset=utf-8")
                .body(
                    json!({"event": "CompletePayment", "event_id": "e2e-server-1",
                           "source": "offline",
                           "context": {"ip": "198.51.100.23"},
                           "user_data": {"email": " User@Example.com "}})
                    .to_string(),
                ),
        )
        .await?;
    checks.eq(
        format!("no Origin (server to server): status ({})", answer.show()),
        answer.status,
        202,
    );
    checks.eq(
        "no Origin (server to server): no CORS headers",
        answer.header("access-control-allow-origin"),
        None,
    );
    sent.push("e2e-server-1".to_owned());

    let ids: Vec<&str> = sent.iter().map(String::as_str).collect();
    let Some(requests) = checks.ok(
        "the cookie events reach TikTok",
        wait_for_ids(tiktok, &ids).await,
    ) else {
        return Ok(sent);
    };
    let user = |id: &str| element(&requests, id).map_or(Value::Null, |e| e["user"].clone());
    checks.eq(
        "new visitor: the minted _ttp is sent as user.ttp",
        &user("e2e-new-visitor")["ttp"],
        &json!(first_ttp),
    );
    checks.eq(
        "existing _ttp: sent as user.ttp",
        &user("e2e-existing-ttp")["ttp"],
        &json!(kept),
    );
    checks.eq(
        "ttclid cookie: sent as user.ttclid when the URL has none",
        &user("e2e-existing-ttp")["ttclid"],
        &json!("E.C.P.fromCookie7"),
    );
    let denied = element(&requests, "e2e-storage-denied").unwrap_or(Value::Null);
    checks.eq(
        "ad_storage denied: no user.ttp sent",
        denied["user"].get("ttp"),
        None,
    );
    checks.eq(
        "ad_storage denied: limited_data_use",
        &denied["limited_data_use"],
        &json!(true),
    );
    checks.eq(
        "ad_storage denied (ad_user_data granted): the email is still sent",
        &denied["user"]["email"],
        &json!(SHA_EMAIL_USER),
    );
    checks.eq(
        "host t.shop.example.co.uk: the minted _ttp is sent as user.ttp",
        &user("e2e-co-uk")["ttp"],
        &json!(minted),
    );
    checks.eq(
        "no consent signals: limited_data_use",
        &element(&requests, "e2e-co-uk").unwrap_or_default()["limited_data_use"],
        &json!(true),
    );
    checks.eq(
        "text/plain (sendBeacon): sent with the kept _ttp",
        &user("e2e-beacon-1")["ttp"],
        &json!(kept),
    );
    checks.eq(
        "offline event from a server: user is context IP and hashed email only",
        user("e2e-server-1"),
        json!({"email": SHA_EMAIL_USER, "ip": "198.51.100.23"}),
    );
    Ok(sent)
}
