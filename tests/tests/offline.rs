//! The offline upload (issue 13, "The upload endpoint"), end to end against `wrangler dev`
//! and the loopback mock of TikTok: a JSON Lines body answered per event, request headers
//! kept away from TikTok, a resend answered as duplicates, the 413s and a wrong token.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use ttedge_e2e::clock::{self, now_ms, DAY_MS};
use ttedge_e2e::collect::SHA_EMAIL_BUYER;
use ttedge_e2e::site::status_and_json;
use ttedge_e2e::Site;

const ADMIN_TOKEN: &str = "e2e-offline-admin-token-5d2a";
const MASTER_KEY: &str = "0b1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0";
const HOST: &str = "t.shop-o.test";
const TOKEN: &str = "siteo-token-1a2b3c4d5e6f708192a3SECRETO";
const PIXEL: &str = "C4SITEO0000000000000";
const HEADER_IP: &str = "198.51.100.77";
const HEADER_UA: &str = "UploaderBot/1.0 (header, must not reach TikTok)";

fn upload_path(host: &str) -> String {
    format!("/admin/api/destinations/{host}/offline")
}

/// Uploads `body` to `host`'s endpoint with request headers and cookies that must be ignored.
async fn upload_to(
    site: &Site,
    host: &str,
    token: &str,
    body: String,
) -> anyhow::Result<(u16, Value)> {
    let resp = site
        .client
        .post(format!("{}{}", site.worker.base_url(), upload_path(host)))
        .bearer_auth(token)
        .header("Content-Type", "application/x-ndjson")
        .header("CF-Connecting-IP", HEADER_IP)
        .header("User-Agent", HEADER_UA)
        .header("Accept-Language", "fr-CH,fr;q=0.9")
        .header(
            "Cookie",
            "_ttp=cookie-ttp-must-not-be-used; ttclid=cookie-click",
        )
        .body(body)
        .send()
        .await?;
    status_and_json(resp, "the upload").await
}

async fn upload(site: &Site, token: &str, body: String) -> anyhow::Result<(u16, Value)> {
    upload_to(site, HOST, token, body).await
}

/// A Worker whose default destination has `default_token`, and the destination of `HOST`.
async fn start(default_token: &str) -> anyhow::Result<Site> {
    let site = Site::start(
        default_token,
        "C4DEFAULT00000000000",
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await?;
    let settings = json!({
        "pixel_id": PIXEL, "access_token": TOKEN, "live": true,
        "site_origins": ["https://shop-o.test"],
    });
    site.put_destination(HOST, &settings).await?;
    Ok(site)
}

/// Each answered event's `key` (`index` or `line`) with its status.
fn statuses_by<'a>(events: &'a [Value], key: &str) -> Vec<(u64, &'a str)> {
    events
        .iter()
        .map(|e| {
            (
                e[key].as_u64().unwrap_or(u64::MAX),
                e["status"].as_str().unwrap_or("?"),
            )
        })
        .collect()
}

fn line(value: Value) -> String {
    value.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_upload_end_to_end() -> anyhow::Result<()> {
    let site = start("e2e-offline-default-token-0001").await?;

    let now = now_ms();
    let body = [
        // 0: clear email and phone, three days ago.
        line(
            json!({"event": "CompletePayment", "event_id": "CompletePayment-A-1001",
            "timestamp": now - 3 * DAY_MS,
            "user_data": {"email": " Buyer@Example.com ", "phone": "+49 170 1234567"},
            "properties": {"value": 49.9, "currency": "eur", "order_id": "A-1001"},
            "source": "browser"}),
        ),
        String::new(),
        // 1: hashes only; its context's own ip and user agent count.
        line(
            json!({"event": "CompletePayment", "event_id": "CompletePayment-A-1002",
            "timestamp": now - DAY_MS,
            "user_data": {"email_hash": SHA_EMAIL_BUYER, "external_id": "cust-7"},
            "context": {"ip": "192.0.2.44", "user_agent": "ShopPOS/2"},
            "properties": {"value": 12, "currency": "eur"}}),
        ),
        "  \r".to_string(),
        // 2: too old.
        line(
            json!({"event": "CompletePayment", "event_id": "CompletePayment-OLD",
            "timestamp": now - 29 * DAY_MS, "user_data": {"email": "old@example.com"}}),
        ),
        // 3: in the future.
        line(
            json!({"event": "CompletePayment", "event_id": "CompletePayment-FUT",
            "timestamp": now + DAY_MS, "user_data": {"email": "soon@example.com"}}),
        ),
        // 4: malformed.
        "{\"event\": \"CompletePayment\", \"user_data\": ".to_string(),
        // 5: no identifier.
        line(
            json!({"event": "CompletePayment", "event_id": "CompletePayment-NOID",
            "timestamp": now - DAY_MS, "properties": {"value": 5, "currency": "eur"}}),
        ),
        // 6: a phone only, an hour ago.
        line(
            json!({"event": "Purchase", "event_id": "CompletePayment-A-1003",
            "timestamp": now - 3_600_000, "user_data": {"phone": "+1 555 010 9999"}}),
        ),
    ]
    .join("\r\n");

    let (status, answer) = upload(&site, ADMIN_TOKEN, body.clone()).await?;
    assert_eq!(status, 202, "{answer:#}");
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 7, "{answer:#}");
    let statuses = statuses_by(&events, "index");
    assert_eq!(
        statuses,
        vec![
            (0, "ready"),
            (1, "ready"),
            (2, "rejected"),
            (3, "rejected"),
            (4, "rejected"),
            (5, "rejected"),
            (6, "ready")
        ],
        "{answer:#}"
    );
    assert_eq!(answer["accepted"], 3, "{answer:#}");
    let reason = |i: usize| events[i]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason(2).starts_with("too old"), "{}", reason(2));
    assert!(reason(2).contains("28 days"), "{}", reason(2));
    assert_eq!(reason(3), "dated in the future");
    assert!(reason(4).contains("malformed JSON"), "{}", reason(4));
    assert!(reason(5).starts_with("no identifier"), "{}", reason(5));
    // Scored against the offline threshold: email + phone is 55, over 50.
    // (a browser event with these two would be under its 70).
    let grade = events[0]["emq"]["grade"].as_str().unwrap_or_default();
    assert!(grade == "good" || grade == "excellent", "{answer:#}");
    // No personal data or token in the answer.
    let text = answer.to_string();
    for secret in [
        "Buyer@Example.com",
        "buyer@example.com",
        "1234567",
        "cust-7",
        ADMIN_TOKEN,
        TOKEN,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    let received = site
        .tiktok
        .wait_for_events(3, Duration::from_secs(20))
        .await?;
    let mut ids = site.tiktok.event_ids();
    ids.sort();
    assert_eq!(
        ids,
        [
            "CompletePayment-A-1001",
            "CompletePayment-A-1002",
            "CompletePayment-A-1003"
        ]
    );
    for event in &received {
        let user = &event.event["user"];
        let shown = event.event.to_string();
        assert!(!shown.contains(HEADER_IP), "{shown}");
        assert!(!shown.contains("UploaderBot"), "{shown}");
        assert!(!shown.contains("cookie-ttp"), "{shown}");
        assert!(!shown.contains("cookie-click"), "{shown}");
        assert!(user.get("locale").is_none(), "{shown}");
        if event.event_id() == Some("CompletePayment-A-1002") {
            assert_eq!(user["ip"], "192.0.2.44", "{shown}");
            assert_eq!(user["user_agent"], "ShopPOS/2", "{shown}");
            assert_eq!(user["email"], SHA_EMAIL_BUYER, "{shown}");
        } else {
            assert!(user.get("ip").is_none(), "{shown}");
            assert!(user.get("user_agent").is_none(), "{shown}");
        }
    }
    let requests = site.tiktok.requests();
    assert!(requests
        .iter()
        .all(|r| r.header("Access-Token") == Some(TOKEN)));

    // The same body again: every ready one is a duplicate, nothing new reaches TikTok.
    let (status, again) = upload(&site, ADMIN_TOKEN, body).await?;
    assert_eq!(status, 202, "{again:#}");
    assert_eq!(again["accepted"], 0, "{again:#}");
    for i in [0, 1, 6] {
        assert_eq!(again["events"][i]["status"], "duplicate", "{again:#}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(site.tiktok.events().len(), 3, "{}", site.tiktok.summary());

    // Exactly 1,000 events (the limit is inclusive): all stored and delivered.
    let thousand: Vec<String> = (0..1_000)
        .map(|i| {
            line(
                json!({"event": "CompletePayment", "event_id": format!("CompletePayment-B-{i}"),
                "timestamp": now - DAY_MS, "user_data": {"external_id": format!("c-{i}")}}),
            )
        })
        .collect();
    let (status, answer) = upload(&site, ADMIN_TOKEN, thousand.join("\n")).await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1_000, "{answer}");
    site.tiktok
        .wait_for_events(1_003, Duration::from_secs(60))
        .await?;

    // 1,001 events: 413 naming the event limit.
    let one = line(
        json!({"event": "CompletePayment", "timestamp": now - DAY_MS,
        "user_data": {"email": "x@example.com"}}),
    );
    let (status, refused) = upload(&site, ADMIN_TOKEN, vec![one; 1_001].join("\n")).await?;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_events", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("1000"));

    // Over 1 MiB: 413 naming the size limit.
    let padding = "x".repeat(1024 * 1024);
    let big = line(json!({"event": "CompletePayment", "properties": {"description": padding}}));
    let (status, refused) = upload(&site, ADMIN_TOKEN, big).await?;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(refused["error"]["code"], "body_too_large", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("1024 KiB"));

    // A wrong token: 401, nothing stored.
    let (status, refused) = upload(&site, "not-the-token", "{}".into()).await?;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["code"], "unauthorized");
    assert_eq!(
        site.tiktok.events().len(),
        1_003,
        "{}",
        site.tiktok.summary()
    );

    // The log holds neither the personal data nor the token.
    let log = site.worker.log_tail(2_000);
    for secret in [
        "Buyer@Example.com",
        "buyer@example.com",
        "+49 170",
        "cust-7",
    ] {
        assert!(!log.contains(secret), "{secret} in the Worker's log");
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` of `ms` at +07:00, as a shop in Bangkok exports it.
fn bangkok(ms: i64) -> String {
    clock::local_time(ms, 7)
}

async fn upload_csv(site: &Site, query: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
    let resp = site
        .client
        .post(format!(
            "{}{}?{query}",
            site.worker.base_url(),
            upload_path(HOST)
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "text/csv; charset=utf-8")
        .body(body)
        .send()
        .await?;
    status_and_json(resp, "the CSV upload").await
}

/// `ttedge send FILE --dry-run --timezone Asia/Bangkok`: one JSON line per row.
fn cli_dry_run(path: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let output = std::process::Command::new(ttedge_e2e::ttedge_binary()?)
        .arg("send")
        .arg(path)
        .args(["--dry-run", "--timezone", "Asia/Bangkok"])
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).with_context(|| {
                format!(
                    "ttedge send --dry-run ({}) printed {line:?}; stderr: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )
            })
        })
        .collect()
}

/// A messy shop export (BOM, CRLF, semicolons, quotes, a quoted line end, blank lines, bad
/// rows) sent as two chunks the way the dashboard sends it, each with the header line and
/// `first_line`: every answer names its file line, the rows get the event_ids `ttedge send`
/// gives them, and only the good rows reach TikTok, once.
#[tokio::test(flavor = "multi_thread")]
async fn csv_chunks_end_to_end() -> anyhow::Result<()> {
    let site = start("e2e-offline-default-token-0002").await?;

    let now = now_ms();
    let t1 = bangkok(now - DAY_MS);
    let t2 = bangkok(now - 2 * DAY_MS);
    let old = bangkok(now - 40 * DAY_MS);
    let header = "\u{FEFF}Order ID;Email;Phone;Total;Currency;Created At;Content IDs;Note\r\n";
    // The file's lines 2 to 7, then 8 to 13.
    let first = format!(
        "C-1;Buyer@Example.com;+44 20 7946 0958;120.00;GBP;{t1};\"A1;B2\";plain\r\n\
         \r\n\
         C-2;c@x.io;;9.5;gbp;{t1};;\"two\r\nlines; with ; separators\"\r\n\
         C-3;;;5;GBP;{t1};;no identifier\r\n\
         C-4;d@x.io;;5;GBP;yesterday;;bad timestamp\r\n"
    );
    let second = format!(
        "C-5;d@x.io;;5;GBP\r\n\
         C-1;buyer@example.com;;120;GBP;{t1};;again\r\n\
         C-6;e@x.io;;1,5;GBP;{t1};;\r\n\
         C-7;e@x.io;;5;GBP;{old};;\r\n\
         ;\"f@x.io\";;7;EUR;{t2};;\"\"\"quoted\"\"\"\r\n   \r\n"
    );
    let chunk = |body: &str| [header.as_bytes(), body.as_bytes()].concat();
    let (status, a) = upload_csv(&site, "utc_offset=%2B07:00", chunk(&first)).await?;
    assert_eq!(status, 202, "{a:#}");
    let (status, b) = upload_csv(&site, "utc_offset=%2B07:00&first_line=8", chunk(&second)).await?;
    assert_eq!(status, 202, "{b:#}");
    let answers: Vec<Value> = [&a, &b]
        .iter()
        .flat_map(|x| x["events"].as_array().cloned().unwrap_or_default())
        .collect();
    let summary = statuses_by(&answers, "line");
    assert_eq!(
        summary,
        [
            (2, "ready"),
            (4, "ready"),
            (6, "rejected"),
            (7, "rejected"),
            (8, "rejected"),
            (9, "duplicate"),
            (10, "rejected"),
            (11, "rejected"),
            (12, "ready"),
        ],
        "{a:#} {b:#}"
    );
    let reason = |i: usize| {
        answers[i]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(reason(2).starts_with("no identifier"), "{}", reason(2));
    assert!(
        reason(3).starts_with("bad timestamp \"yesterday\""),
        "{}",
        reason(3)
    );
    assert_eq!(reason(4), "has 5 fields, the header row has 8");
    assert!(reason(6).starts_with("bad value \"1,5\""), "{}", reason(6));
    assert!(reason(7).starts_with("too old"), "{}", reason(7));
    assert_eq!(
        (a["accepted"].as_u64(), b["accepted"].as_u64()),
        (Some(2), Some(1))
    );
    let text = format!("{a} {b}");
    for secret in [
        "Buyer@Example.com",
        "buyer@example.com",
        "7946",
        "c@x.io",
        "f@x.io",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // The same file through `ttedge send --dry-run`: the same fate and event_id for every
    // row, the same reasons with the same line numbers.
    let file = tempfile::Builder::new().suffix(".csv").tempfile()?;
    std::fs::write(file.path(), [header, &first, &second].concat())?;
    let cli = cli_dry_run(file.path())?;
    assert_eq!(cli.len(), answers.len(), "{cli:#?}");
    for (cli, worker) in cli.iter().zip(&answers) {
        let expected = match cli["status"].as_str() {
            Some("skipped") => "duplicate",
            other => other.unwrap_or("?"),
        };
        assert_eq!(worker["status"], expected, "{cli} / {worker}");
        assert_eq!(cli["event_id"], worker["event_id"], "{cli} / {worker}");
        if expected == "rejected" {
            let line = worker["line"].as_u64().unwrap_or(0);
            let reason = worker["reason"].as_str().unwrap_or_default();
            assert_eq!(cli["reason"], format!("line {line}: {reason}"));
        }
    }
    let hashed = answers[8]["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(hashed.starts_with("CompletePayment-") && hashed.len() == 16 + 32);

    // TikTok gets the three ready rows, once, at the time read at +07:00.
    let received = site
        .tiktok
        .wait_for_events(3, Duration::from_secs(20))
        .await?;
    let mut ids = site.tiktok.event_ids();
    ids.sort();
    let mut expected = vec![
        "CompletePayment-C-1".to_string(),
        "CompletePayment-C-2".to_string(),
        hashed,
    ];
    expected.sort();
    assert_eq!(ids, expected);
    let c1 = received
        .iter()
        .find(|e| e.event_id() == Some("CompletePayment-C-1"))
        .expect("C-1 arrived");
    assert_eq!(
        c1.event["event_time"],
        (now - DAY_MS) / 1_000,
        "{}",
        c1.event
    );
    assert_eq!(c1.event["user"]["email"], SHA_EMAIL_BUYER);
    assert_eq!(c1.event["properties"]["contents"][1]["content_id"], "B2");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.tiktok.events().len(), 3, "{}", site.tiktok.summary());

    // Refusals of the whole chunk, each naming what is wrong.
    let (status, refused) = upload_csv(&site, "utc_offset=Asia/Bangkok", chunk(&first)).await?;
    assert_eq!(
        (status, &refused["error"]["path"]),
        (400, &json!("utc_offset")),
        "{refused}"
    );
    let (status, refused) = upload_csv(&site, "first_line=0", chunk(&first)).await?;
    assert_eq!(
        (status, &refused["error"]["path"]),
        (400, &json!("first_line")),
        "{refused}"
    );
    let (status, refused) = upload_csv(&site, "", b"colour;size\r\nred;9\r\n".to_vec()).await?;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (400, &json!("bad_csv")),
        "{refused}"
    );
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("(colour, size)"));
    let rows = format!("email,timestamp\n{}", "a@x.io,1764064920\n".repeat(1_001));
    let (status, refused) = upload_csv(&site, "", rows.into_bytes()).await?;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_events", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("1001 rows"));

    let log = site.worker.log_tail(2_000);
    for secret in [
        "Buyer@Example.com",
        "buyer@example.com",
        "7946 0958",
        "f@x.io",
    ] {
        assert!(!log.contains(secret), "{secret} in the Worker's log");
    }
    Ok(())
}

/// A destination with an Offline Event Set: its offline events (uploaded, or posted to
/// `/collect` with `source: "offline"`) go in requests of their own to the set, as
/// `event_source: "offline"`; its browser events still go to the pixel. An offline event
/// without an email, phone or external_id is refused on `/collect` too.
#[tokio::test(flavor = "multi_thread")]
async fn offline_events_go_to_the_offline_event_set() -> anyhow::Result<()> {
    const SET_HOST: &str = "t.shop-set.test";
    const SET_PIXEL: &str = "C4SETPIXEL0000000000";
    const SET_ID: &str = "7301234567890123456";
    let site = Site::start(
        "e2e-offline-set-default-token-02",
        "C4DEFAULT00000000000",
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await?;
    let settings = json!({
        "pixel_id": SET_PIXEL, "access_token": "siteset-token-99887766554433221100",
        "live": true, "site_origins": ["https://shop-set.test"],
        "offline_event_set_id": SET_ID,
    });
    let answer = site.put_destination(SET_HOST, &settings).await?;
    assert_eq!(answer["offline_event_set_id"], SET_ID, "{answer}");

    let now = now_ms();
    let uploaded = [
        json!({"event": "CompletePayment", "event_id": "CompletePayment-S-1",
            "timestamp": now - DAY_MS, "user_data": {"email_hash": SHA_EMAIL_BUYER}}),
        json!({"event": "CompletePayment", "event_id": "CompletePayment-S-2",
            "timestamp": now - DAY_MS, "user_data": {"external_id": "cust-set-2"}}),
    ]
    .map(line)
    .join("\n");
    let (status, answer) = upload_to(&site, SET_HOST, ADMIN_TOKEN, uploaded).await?;
    assert_eq!(
        (status, &answer["accepted"]),
        (202, &json!(2)),
        "{answer:#}"
    );

    let batch = json!({"batch": [
        {"event": "purchase", "event_id": "web-1", "url": "https://shop-set.test/thanks",
         "user_data": {"email": "web@example.com"}},
        {"event": "purchase", "event_id": "pos-1", "source": "offline",
         "user_data": {"phone": "+1 555 010 1234"}},
        {"event": "purchase", "event_id": "pos-2", "source": "offline",
         "context": {"ip": "192.0.2.8", "ttp": "known-ttp"}},
    ]});
    let (status, _, answer) = site
        .collect_on(SET_HOST, Some("https://shop-set.test"), &batch)
        .await?;
    assert_eq!(status, 202, "{answer:#}");
    let statuses: Vec<&str> = answer["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(statuses, ["ready", "ready", "rejected"], "{answer:#}");
    let reason = answer["events"][2]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("no identifier"), "{reason}");

    site.tiktok
        .wait_for_events(4, Duration::from_secs(30))
        .await?;
    let mut routes: Vec<(String, String, Vec<String>)> = site
        .tiktok
        .requests()
        .iter()
        .map(|request| {
            let mut ids = request.event_ids();
            ids.sort();
            (
                request.field("event_source").unwrap_or("?").to_string(),
                request.field("event_source_id").unwrap_or("?").to_string(),
                ids,
            )
        })
        .collect();
    routes.sort();
    // The uploads and the offline collect may share a request or not; each request holds
    // one route only.
    let mut offline_ids: Vec<String> = routes
        .iter()
        .filter(|(source, id, _)| source == "offline" && id == SET_ID)
        .flat_map(|(_, _, ids)| ids.clone())
        .collect();
    offline_ids.sort();
    assert_eq!(
        offline_ids,
        ["CompletePayment-S-1", "CompletePayment-S-2", "pos-1"],
        "{routes:?}"
    );
    let web: Vec<&(String, String, Vec<String>)> = routes
        .iter()
        .filter(|(source, _, _)| source == "web")
        .collect();
    assert_eq!(web.len(), 1, "{routes:?}");
    assert_eq!(
        (web[0].1.as_str(), web[0].2.as_slice()),
        (SET_PIXEL, &["web-1".to_string()][..])
    );
    assert_eq!(
        routes.len(),
        web.len() + routes.iter().filter(|(s, _, _)| s == "offline").count(),
        "every request is web or offline: {routes:?}"
    );
    Ok(())
}
