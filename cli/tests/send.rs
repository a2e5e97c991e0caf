//! `ttedge send`, run as a user would run it, on messy files written here.
//!
//! Expected SHA-256 values were computed with coreutils, independently of ttedge:
//!   printf '%s' 'buyer@example.com' | sha256sum
//!   printf '%s' '442079460958' | sha256sum
//!   printf '%s' 'cust-7' | sha256sum
//!   printf '%s' 'c@x.io' | sha256sum
//! Epoch seconds with GNU date:
//!   date -u -d '2025-11-25 10:02:00' +%s                 → 1764064920
//!   TZ=Europe/Berlin date -d '2026-03-29 03:30:00' +%s   → 1774747800
//! Match quality weights (DESIGN): email 30, phone 25, external_id 20, browser 15, event 10
//! (value 3, currency 2, line items 3, product ids 2).

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

const BUYER_EMAIL: &str = "6a6c26195c3682faa816966af789717c3bfa834eee6c599d667d2b3429c27cfd";
const BUYER_PHONE: &str = "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823";
const CUST_7: &str = "dcf3a047f36839e9765beb629393fe2a121bd0659f6aa87be352244bfbf666f0";
const C_EMAIL: &str = "1d897cdd8c8c3a2bc42615db085b99fa7aa9ecc7c0d4f32063de07acb56f42b6";
const NOW: &str = "2025-12-01T00:00:00Z";

fn ttedge() -> Command {
    Command::cargo_bin("ttedge").expect("the ttedge binary is built")
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("send");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every output line is JSON"))
        .collect()
}

fn send(path: &PathBuf, extra: &[&str]) -> std::process::Output {
    ttedge()
        .arg("send")
        .arg(path)
        .args(["--dry-run", "--now", NOW])
        .args(extra)
        .output()
        .unwrap()
}

/// A shop export at its messiest: BOM, CRLF, semicolons, a blank line, a quoted newline and
/// quoted separators, and bad rows of every kind.
const MESSY: &[u8] =
    b"\xEF\xBB\xBFOrder ID;Email;Phone;Customer ID;Total;Currency;Created At;Content IDs;Note\r\n\
1001;Buyer@Example.com;+44 20 7946 0958;;120.00;GBP;2025-11-25 10:02:00;\"A1;B2\";plain\r\n\
\r\n\
1002;c@x.io;;;9.5;gbp;2025-11-25 10:02:00;;\"two\r\nlines; with ; separators\"\r\n\
1003;;;;5;GBP;2025-11-25 10:02:00;;no identifier\r\n\
1004;d@x.io;;;5;GBP;yesterday;;\r\n\
1005;d@x.io;;;5;GBP\r\n\
1001;buyer@example.com;;;120;GBP;2025-11-25 10:02:00;;again\r\n\
1006;;;cust-7;1,5;GBP;2025-11-25 10:02:00;;\r\n\
1007;e@x.io;;;5;GBP;2025-10-01 00:00:00;;\r\n\
1008;e@x.io;;;5;GBP;2025-12-02 00:00:00;;\r\n\
;;;cust-7;;;1764064920;;\r\n";

#[test]
fn messy_csv_dry_run_prints_hashes_and_line_numbers() {
    let path = write("messy.csv", MESSY);
    let output = send(&path, &[]);
    assert_eq!(output.status.code(), Some(1), "rows were rejected");
    let events = lines(&output.stdout);
    assert_eq!(events.len(), 10, "one line per row, blank lines skipped");

    let first = &events[0]["tiktok"];
    assert_eq!(events[0]["event_id"], "CompletePayment-1001");
    assert_eq!(first["event_time"], 1_764_064_920);
    assert_eq!(first["user"]["email"], BUYER_EMAIL);
    assert_eq!(first["user"]["phone"], BUYER_PHONE);
    assert_eq!(first["properties"]["contents"][0]["content_id"], "A1");
    assert_eq!(first["properties"]["contents"][1]["content_id"], "B2");
    assert_eq!(events[0]["emq"]["score"], 65);

    assert_eq!(events[1]["event_id"], "CompletePayment-1002");
    assert_eq!(events[1]["tiktok"]["user"]["email"], C_EMAIL);
    assert_eq!(events[1]["tiktok"]["properties"]["currency"], "GBP");

    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["status"] == "rejected")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert!(
        reasons[0].starts_with("line 6: no identifier"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("line 7: bad timestamp"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("line 8: has 6 fields"),
        "{reasons:?}"
    );
    assert!(reasons[3].starts_with("line 10: bad value"), "{reasons:?}");
    assert!(reasons[4].starts_with("line 11: too old"), "{reasons:?}");
    assert!(
        reasons[5].starts_with("line 12: dated in the future"),
        "{reasons:?}"
    );

    assert_eq!(events[5]["status"], "skipped");
    assert!(events[5]["reason"]
        .as_str()
        .unwrap()
        .contains("duplicate: line 2"));

    let last = &events[9];
    assert_eq!(last["status"], "ready");
    assert_eq!(last["tiktok"]["user"]["external_id"], CUST_7);
    let id = last["event_id"].as_str().unwrap();
    assert!(
        id.starts_with("CompletePayment-") && id.len() == 16 + 32,
        "{id}"
    );

    // Personal data leaves only as hashes.
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .to_lowercase();
    for clear in ["buyer@example.com", "c@x.io", "d@x.io", "7946", "cust-7"] {
        assert!(!all.contains(clear), "{clear} appears in clear");
    }

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rows read: 10, ready: 3, rejected: 6, duplicates in the file: 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("against the offline threshold of 50"),
        "{stderr}"
    );
    assert!(stderr.contains("dry run: nothing was sent"), "{stderr}");
}

#[test]
fn messy_csv_summary_as_json() {
    let path = write("messy-json.csv", MESSY);
    let output = send(&path, &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["rows"], 10);
    assert_eq!(summary["ready"], 3);
    let rejected: Vec<u64> = summary["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [6, 7, 8, 10, 11, 12]);
    assert_eq!(summary["duplicates"][0]["line"], 9);
    assert_eq!(summary["duplicates"][0]["first_line"], 2);
    assert_eq!(summary["offline_threshold"], 50);
    // Scores: 65 (email, phone, value, currency, two ids), 35 (email, value, currency),
    // 20 (external_id only): mean 40, two under 50.
    assert_eq!(summary["scored"], 3);
    assert_eq!(summary["mean_score"], 40.0);
    assert_eq!(summary["below_threshold"], 2);
    // No row has browser signals.
    assert_eq!(summary["most_missing"][0]["factor"], "browser");
    assert_eq!(summary["most_missing"][0]["events"], 3);
}

#[test]
fn same_file_twice_gives_the_same_ids() {
    let path = write("twice.csv", MESSY);
    let first = send(&path, &[]);
    let second = send(&path, &[]);
    assert_eq!(first.stdout, second.stdout);
    assert!(!first.stdout.is_empty());
}

#[test]
fn tabs_commas_aliases_and_map() {
    let tabs = b"transaction_id\tE Mail\tBuyer\tevent_type\tamount\tevent_time\n\
T1\tx\tbuyer@example.com\tplace_order\t3\t2025-11-25T11:02:00+01:00\n";
    let output = send(&write("tabs.tsv", tabs), &["--map", "buyer=email"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let events = lines(&output.stdout);
    assert_eq!(events[0]["event_id"], "PlaceAnOrder-T1");
    assert_eq!(events[0]["tiktok"]["user"]["email"], BUYER_EMAIL);
    assert_eq!(events[0]["tiktok"]["event_time"], 1_764_064_920);

    let commas = b"customer_id,total,timestamp,content_ids,event\n\
cust-7,\"1000.5\",1764064920000,\"a,b\",\n";
    let output = send(&write("commas.csv", commas), &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let event = &lines(&output.stdout)[0]["tiktok"];
    assert_eq!(event["event"], "CompletePayment");
    assert_eq!(event["user"]["external_id"], CUST_7);
    assert_eq!(event["properties"]["value"], 1000.5);
    assert_eq!(event["properties"]["contents"][1]["content_id"], "b");
    assert_eq!(event["event_time"], 1_764_064_920);
}

#[test]
fn local_time_in_a_named_zone_across_a_daylight_saving_gap() {
    // 02:30 does not exist in Berlin on 2026-03-29: it is read as 03:30 CEST.
    let csv = b"email,created_at\nbuyer@example.com,2026-03-29 02:30:00\n";
    let path = write("berlin.csv", csv);
    let output = ttedge()
        .arg("send")
        .arg(&path)
        .args(["--dry-run", "--now", "2026-04-01T00:00:00Z"])
        .args(["--timezone", "Europe/Berlin"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        lines(&output.stdout)[0]["tiktok"]["event_time"],
        1_774_747_800
    );
}

#[test]
fn json_lines_by_content_with_a_bad_line() {
    let jsonl = b"{\"Email\":\"buyer@example.com\",\"Order ID\":7,\"Created At\":\"2025-11-25T10:02:00Z\",\"content_ids\":[\"x\",2]}\n\
\n\
{not json\n\
{\"phone\":\"+44 20 7946 0958\",\"timestamp\":1764064920}\n";
    let output = send(&write("export.data", jsonl), &[]);
    assert_eq!(output.status.code(), Some(1));
    let events = lines(&output.stdout);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event_id"], "CompletePayment-7");
    assert_eq!(
        events[0]["tiktok"]["properties"]["contents"][1]["content_id"],
        "2"
    );
    assert!(events[1]["reason"]
        .as_str()
        .unwrap()
        .starts_with("line 3: not a JSON object"));
    assert_eq!(events[2]["tiktok"]["user"]["phone"], BUYER_PHONE);
}

#[test]
fn usage_errors() {
    let path = write(
        "usage.csv",
        b"email,timestamp\nbuyer@example.com,1764064920\n",
    );
    let output = ttedge().arg("send").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--endpoint"), "{stderr}");
    assert!(output.stdout.is_empty());

    let output = send(&path, &["--map", "a=colour"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown field \"colour\""));

    let output = send(&path, &["--timezone", "Mars/Olympus"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Mars/Olympus"));

    let unknown = write("nothing.csv", b"foo,bar\n1,2\n");
    let output = send(&unknown, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--map"));
}
