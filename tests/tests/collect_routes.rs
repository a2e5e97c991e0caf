//! The Worker's routes besides `POST /collect`, end to end under `wrangler dev`:
//! `GET /healthz` says the Worker is configured, `GET /sdk.js` is the JavaScript SDK posting
//! to `/collect` with credentials, an unknown path is a JSON 404, and
//! `GET /admin/api/status` without the admin token is refused (401). None of them sends
//! anything to TikTok.
//!
//! One Worker in the everyday single-site configuration. Every failed expectation is recorded
//! and all are reported at the end ([`Checks`]); the access token and personal data appear
//! in no answer and nowhere in wrangler's log.
//!
//! Run with `cargo test -p ttedge-e2e --test collect_routes`.

use serde_json::json;
use ttedge_e2e::collect::{
    closing_checks, main_site_options, start, truncate, Checks, Client, NotSent,
};

#[tokio::test(flavor = "multi_thread")]
async fn other_routes_answer_and_forward_nothing() -> anyhow::Result<()> {
    let (tiktok, worker, mut client) = start(main_site_options).await?;
    let mut checks = Checks::new("other_routes_answer_and_forward_nothing");

    other_routes(&mut checks, &mut client).await?;
    admin_status_needs_the_token(&mut checks, &mut client).await?;
    closing_checks(
        checks,
        &mut client,
        &tiktok,
        &worker,
        &[],
        NotSent::default(),
    )
    .await?;
    Ok(())
}

/// `/healthz`, `/sdk.js` and an unknown path.
async fn other_routes(checks: &mut Checks, client: &mut Client) -> anyhow::Result<()> {
    let answer = client
        .send(client.request(reqwest::Method::GET, "/healthz"))
        .await?;
    checks.eq("GET /healthz: status", answer.status, 200);
    checks.eq(
        "GET /healthz: configured",
        (&answer.json()["ok"], &answer.json()["configured"]),
        (&json!(true), &json!(true)),
    );
    let answer = client
        .send(client.request(reqwest::Method::GET, "/sdk.js"))
        .await?;
    checks.eq("GET /sdk.js: status", answer.status, 200);
    checks.that(
        "GET /sdk.js: JavaScript",
        answer
            .header("content-type")
            .is_some_and(|v| v.contains("javascript")),
        format!("Content-Type: {:?}", answer.header("content-type")),
    );
    checks.that(
        "GET /sdk.js: posts to /collect with credentials",
        answer.body.contains("/collect") && answer.body.contains("credentials"),
        truncate(&answer.body, 300),
    );
    let answer = client
        .send(client.request(reqwest::Method::GET, "/no-such-page"))
        .await?;
    checks.eq(
        "GET /no-such-page",
        (answer.status, answer.error_code()),
        (404, Some("not_found".to_owned())),
    );
    Ok(())
}

/// `GET /admin/api/status` without the admin token: refused.
async fn admin_status_needs_the_token(
    checks: &mut Checks,
    client: &mut Client,
) -> anyhow::Result<()> {
    let answer = client
        .send(client.request(reqwest::Method::GET, "/admin/api/status"))
        .await?;
    checks.eq(
        "admin status without a bearer token: 401",
        (answer.status, answer.error_code()),
        (401, Some("unauthorized".to_owned())),
    );
    Ok(())
}
