//! `ttedge send` end to end (issue 13, "ttedge send FILE"): the command uploads files to
//! `wrangler dev`, which delivers to the loopback mock of TikTok.
//!
//! One Worker for three files, told apart by their order ids (A-, B-, C-):
//! (a) a messy shop export: byte-order mark, CRLF, semicolons, quoted separators and a
//!     quoted newline, blank lines and one bad line; the right hashes arrive, the bad line
//!     is reported with its line in the file;
//! (b) 100,000 rows sent whole: every event_id arrives exactly once;
//! (c) an upload killed with SIGKILL after some chunks were confirmed, then run again: the
//!     second run sends only the rest (and at most the chunk whose answer was lost, answered
//!     duplicate), and the mock gets every event exactly once.
//!
//! The command is the `ttedge` binary of this workspace, built first with `cargo build -p
//! ttedge-cli` (the e2e crate cannot name another package's binary).
//!
//! Expected SHA-256 values were computed with coreutils, independently of ttedge:
//!   printf '%s' 'buyer@example.com' | sha256sum
//!   printf '%s' '442079460958' | sha256sum
//!   printf '%s' 'c@x.io' | sha256sum
//!   printf '%s' 'cust-7' | sha256sum

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use ttedge_e2e::collect::SHA_EMAIL_BUYER;
use ttedge_e2e::{clock, repo_root, ttedge_binary, Site};

const ADMIN_TOKEN: &str = "e2e-send-admin-token-77c1";
const MASTER_KEY: &str = "1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0a0";
const HOST: &str = "t.shop-send.test";
const TOKEN: &str = "sites-token-9f8e7d6c5b4a3928SECRETS";
const PIXEL: &str = "C4SITES0000000000000";
const BUYER_PHONE: &str = "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823";
const C_EMAIL: &str = "1d897cdd8c8c3a2bc42615db085b99fa7aa9ecc7c0d4f32063de07acb56f42b6";
const CUST_7: &str = "dcf3a047f36839e9765beb629393fe2a121bd0659f6aa87be352244bfbf666f0";
const BIG: usize = 100_000;
const KILLED: usize = 10_000;

fn command(binary: &Path, site: &Site, file: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("send")
        .arg(file)
        .args([
            "--endpoint",
            &site.worker.base_url(),
            "--site",
            HOST,
            "--json",
        ])
        .env("TTEDGE_ADMIN_TOKEN", ADMIN_TOKEN)
        // An HTTP(S)_PROXY of the machine must not capture requests to loopback.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

fn summary(output: &Output) -> anyhow::Result<Value> {
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "ttedge send printed no JSON summary ({}); stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The summary of a run that exited 0 (every row ready and sent).
fn succeeded(output: &Output) -> anyhow::Result<Value> {
    if output.status.code() != Some(0) {
        bail!(
            "ttedge send exited {}; stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    summary(output)
}

/// Event ids the mock received that start with `prefix`, with how often each came.
fn received(site: &Site, prefix: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in site.tiktok.events() {
        if let Some(id) = event.event_id().filter(|id| id.starts_with(prefix)) {
            *counts.entry(id.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Waits until the mock holds `n` distinct ids starting with `prefix`.
async fn wait_for_ids(
    site: &Site,
    prefix: &str,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = received(site, prefix).len();
        if got >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{got} of {n} {prefix} events reached the mock in {timeout:?}; log tail:\n{}",
                site.worker.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn work_dir() -> PathBuf {
    let dir = repo_root().join("target/e2e-logs/offline-send");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A fresh file (and no journal beside it).
fn write(name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = work_dir().join(name);
    std::fs::write(&path, bytes)?;
    let _ = std::fs::remove_file(journal_of(&path));
    Ok(path)
}

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.ttedge-journal", path.display()))
}

/// `n` rows with order ids `<prefix><i>`, timed an hour ago (epoch seconds).
fn rows(prefix: &str, n: usize) -> Vec<u8> {
    let at = clock::now_ms() / 1_000 - 3_600;
    let mut csv = String::from("order_id,email,total,currency,created_at\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{prefix}{i},u{i}@example.com,{}.5,EUR,{at}\n",
            i % 90
        ));
    }
    csv.into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn ttedge_send_end_to_end() -> anyhow::Result<()> {
    let binary = tokio::task::spawn_blocking(ttedge_binary).await??;
    let site = Site::start(
        "e2e-send-default-token-0001",
        "C4DEFAULT00000000000",
        ADMIN_TOKEN,
        &[("MASTER_KEY", MASTER_KEY)],
    )
    .await?;
    let settings = json!({
        "pixel_id": PIXEL, "access_token": TOKEN, "live": true,
        "site_origins": ["https://shop-send.test"],
    });
    site.put_destination(HOST, &settings).await?;

    messy_export(&binary, &site).await?;
    whole_big_file(&binary, &site).await?;
    killed_and_resumed(&binary, &site).await?;

    // Late duplicates would show now: every id still arrived exactly once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (prefix, n) in [
        ("CompletePayment-A-", 3),
        ("CompletePayment-B-", BIG),
        ("CompletePayment-C-", KILLED),
    ] {
        let counts = received(&site, prefix);
        assert_eq!(counts.len(), n, "{prefix}: distinct ids at the mock");
        let twice: Vec<_> = counts.iter().filter(|(_, &c)| c > 1).take(5).collect();
        assert!(twice.is_empty(), "{prefix}: sent more than once: {twice:?}");
    }
    assert!(site
        .tiktok
        .requests()
        .iter()
        .all(|r| r.header("Access-Token") == Some(TOKEN)));
    let log = site.worker.log();
    // Order ids such as B-17946 may hold the phone's digits; its spaced form may not show.
    for clear in [
        "@example.com",
        "@Example.com",
        "c@x.io",
        "7946 0958",
        "cust-7",
    ] {
        assert!(!log.contains(clear), "{clear} in the Worker's log");
    }
    Ok(())
}

/// (a) A shop export at its messiest.
async fn messy_export(binary: &Path, site: &Site) -> anyhow::Result<()> {
    let yesterday_ms = clock::now_ms() - clock::DAY_MS;
    let at = clock::local_time(yesterday_ms, 0);
    let seconds = yesterday_ms / 1_000;
    let csv = format!(
        "\u{feff}Order ID;Email;Phone;Customer ID;Total;Currency;Created At;Content IDs;Note\r\n\
A-1;Buyer@Example.com;+44 20 7946 0958;;120.00;GBP;{at};\"P1;P2\";plain\r\n\
\r\n\
A-2;c@x.io;;;9.5;gbp;{at};;\"two\r\nlines; with ; separators\"\r\n\
A-3;;;;5;GBP;{at};;no identifier\r\n\
A-4;;;cust-7;1.5;GBP;{at};;\r\n\
\r\n\
A-5;d@x.io;;;5;GBP\r\n"
    );
    let path = write("messy.csv", csv.as_bytes())?;
    let output = command(binary, site, &path).output().await?;
    assert_eq!(
        output.status.code(),
        Some(1),
        "two rows rejected: {output:?}"
    );
    let summary = summary(&output)?;
    let rejected: Vec<(u64, String)> = summary["rejected"]
        .as_array()
        .context("rejected")?
        .iter()
        .map(|r| (r["line"].as_u64().unwrap_or(0), r["reason"].to_string()))
        .collect();
    assert_eq!(rejected.len(), 2, "{summary:#}");
    assert_eq!(rejected[0].0, 6, "{rejected:?}");
    assert!(rejected[0].1.contains("no identifier"), "{rejected:?}");
    assert_eq!(
        rejected[1].0, 9,
        "the bad line, after a quoted newline and blank lines"
    );
    assert!(rejected[1].1.contains("has 6 fields"), "{rejected:?}");
    assert_eq!(summary["upload"]["accepted"], 3, "{summary:#}");
    assert_eq!(summary["offline_threshold"], 50);

    wait_for_ids(site, "CompletePayment-A-", 3, Duration::from_secs(30)).await?;
    let events: HashMap<String, Value> = site
        .tiktok
        .events()
        .into_iter()
        .filter_map(|e| Some((e.event_id()?.to_string(), e.event.clone())))
        .collect();
    let first = &events["CompletePayment-A-1"];
    assert_eq!(first["event"], "CompletePayment");
    assert_eq!(first["event_time"], seconds);
    assert_eq!(first["user"]["email"], SHA_EMAIL_BUYER);
    assert_eq!(first["user"]["phone"], BUYER_PHONE);
    assert_eq!(first["properties"]["value"], 120.0);
    assert_eq!(first["properties"]["currency"], "GBP");
    assert_eq!(first["properties"]["contents"][0]["content_id"], "P1");
    assert_eq!(first["properties"]["contents"][1]["content_id"], "P2");
    assert!(first["user"].get("ip").is_none(), "{first}");
    let second = &events["CompletePayment-A-2"];
    assert_eq!(second["user"]["email"], C_EMAIL);
    assert_eq!(second["properties"]["currency"], "GBP");
    assert!(second["user"].get("phone").is_none(), "{second}");
    let fourth = &events["CompletePayment-A-4"];
    assert_eq!(fourth["user"]["external_id"], CUST_7);
    for request in site.tiktok.requests() {
        let body = request.body_text().to_lowercase();
        for clear in ["buyer@example.com", "c@x.io", "7946", "cust-7"] {
            assert!(!body.contains(clear), "{clear} reached TikTok in clear");
        }
    }
    // The journal holds ids and answers, nothing personal.
    let journal = std::fs::read_to_string(journal_of(&path))?.to_lowercase();
    for clear in ["buyer@example.com", "c@x.io", "7946", "cust-7"] {
        assert!(!journal.contains(clear), "{clear} in the journal");
    }
    Ok(())
}

/// (b) 100,000 rows in one run.
async fn whole_big_file(binary: &Path, site: &Site) -> anyhow::Result<()> {
    let path = write("big.csv", &rows("B-", BIG))?;
    let output = command(binary, site, &path).output().await?;
    let summary = succeeded(&output)?;
    assert_eq!(summary["rows"], BIG);
    assert_eq!(summary["upload"]["accepted"], BIG, "{summary:#}");
    assert_eq!(summary["upload"]["duplicates"], 0);
    assert_eq!(summary["upload"]["sent_this_run"], BIG);
    // 100 chunks: one header line and one line per chunk.
    let journal = std::fs::read_to_string(journal_of(&path))?;
    assert_eq!(journal.lines().count(), 1 + BIG / 1_000);
    wait_for_ids(site, "CompletePayment-B-", BIG, Duration::from_secs(120)).await
}

/// (c) SIGKILL mid-upload, then the same command again.
async fn killed_and_resumed(binary: &Path, site: &Site) -> anyhow::Result<()> {
    let path = write("killed.csv", &rows("C-", KILLED))?;
    let journal = journal_of(&path);
    let mut child = command(binary, site, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Kill once three chunks are confirmed (header + 3 lines in the journal).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(&journal)
            .map(|text| text.matches('\n').count())
            .unwrap_or(0);
        if lines >= 4 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the journal never reached three chunks");
        }
        if let Some(status) = child.try_wait()? {
            bail!("ttedge send ended ({status}) before it could be killed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill()?; // SIGKILL
    let status = child.wait().await?;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    let confirmed_before = std::fs::read_to_string(&journal)?.matches('\n').count() - 1;
    assert!(
        confirmed_before < KILLED / 1_000,
        "killed before the end ({confirmed_before} chunks)"
    );

    let output = command(binary, site, &path).output().await?;
    let summary = succeeded(&output)?;
    let upload = &summary["upload"];
    let resumed = upload["resumed"].as_u64().context("resumed")? as usize;
    let sent = upload["sent_this_run"].as_u64().context("sent_this_run")? as usize;
    let duplicates = upload["duplicates"].as_u64().context("duplicates")? as usize;
    assert_eq!(resumed, confirmed_before * 1_000, "{summary:#}");
    assert_eq!(
        resumed + sent,
        KILLED,
        "the second run sent only the rest: {summary:#}"
    );
    assert!(
        duplicates <= 1_000,
        "at most the chunk whose answer was lost: {summary:#}"
    );
    assert_eq!(
        upload["accepted"].as_u64(),
        Some((KILLED - duplicates) as u64)
    );
    assert_eq!(upload["unsent"], 0);
    wait_for_ids(site, "CompletePayment-C-", KILLED, Duration::from_secs(60)).await?;

    // Done: a third run sends nothing.
    let output = command(binary, site, &path).output().await?;
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing to send"));
    assert_eq!(summary_of_done(&output)?, KILLED);
    Ok(())
}

fn summary_of_done(output: &Output) -> anyhow::Result<usize> {
    let summary = summary(output)?;
    let upload = &summary["upload"];
    assert_eq!(upload["sent_this_run"], 0);
    Ok(
        (upload["accepted"].as_u64().unwrap_or(0) + upload["duplicates"].as_u64().unwrap_or(0))
            as usize,
    )
}
