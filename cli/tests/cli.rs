//! The `ttedge` command, run as a user would run it.
//!
//! Expected SHA-256 values were computed with coreutils, independently of ttedge:
//!   printf '%s' 'user@example.com' | sha256sum
//!   printf '%s' 'buyer@example.co.uk' | sha256sum
//!   printf '%s' '442079460958' | sha256sum

use assert_cmd::Command;
use serde_json::Value;

const USER_AT_EXAMPLE: &str = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";
const BUYER_EMAIL: &str = "0988710e5c95369876ffd49a41ddce30045518343c12ddb0277145b43b31973b";
const BUYER_PHONE: &str = "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823";

fn ttedge() -> Command {
    Command::cargo_bin("ttedge").expect("the ttedge binary is built")
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every output line is JSON"))
        .collect()
}

fn keys(line: &str) -> Vec<String> {
    // Key order is part of the contract, so read it from the raw text.
    let value: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
    let mut keys: Vec<(usize, String)> = value
        .keys()
        .map(|k| (line.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn preview_prints_one_line_per_event_with_fixed_keys() {
    let output = ttedge()
        .args(["preview", "../examples/events.jsonl"])
        .output()
        .unwrap();
    // The examples hold one rejected event on purpose.
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let first = stdout.lines().next().unwrap();
    assert_eq!(
        keys(first),
        ["index", "event_id", "status", "reason", "tiktok", "emq"]
    );

    let events = lines(&output.stdout);
    let statuses: Vec<_> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ready", "ready", "ready", "skipped", "ready", "rejected", "held"]
    );
    let indexes: Vec<_> = events
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6]);

    let purchase = &events[2]["tiktok"];
    assert_eq!(purchase["event"], "CompletePayment");
    assert_eq!(purchase["event_time"], 1_764_064_920);
    assert_eq!(purchase["user"]["email"], USER_AT_EXAMPLE);
    assert_eq!(purchase["properties"]["contents"][0]["content_id"], "1");
    assert_eq!(purchase["properties"]["order_id"], "1001");
    assert_eq!(purchase["limited_data_use"], false);

    let offline = &events[4];
    assert_eq!(offline["tiktok"]["user"]["email"], BUYER_EMAIL);
    assert_eq!(offline["tiktok"]["user"]["phone"], BUYER_PHONE);
    assert_eq!(offline["tiktok"]["properties"]["currency"], "GBP");
    assert_eq!(offline["tiktok"]["properties"]["value"], 120.0);
    // 30 + 25 + 5 (value and currency) = 60: good for offline (50), not for browser (70).
    assert_eq!(offline["emq"]["score"], 60);
    assert_eq!(offline["emq"]["grade"], "good");

    assert!(events[5]["reason"]
        .as_str()
        .unwrap()
        .contains("Newsletter Popup"));
    assert_eq!(events[6]["tiktok"], Value::Null);
}

#[test]
fn a_bad_line_is_reported_with_its_number_and_the_rest_still_run() {
    let input = "{\"event\":\"lead\",\"event_id\":\"a\"}\n{\"event\": \"x\", \"properties\": {\"value\": [1]}}\n{not json\n{\"event\":\"contact\",\"event_id\":\"b\"}\n";
    let output = ttedge()
        .args(["preview", "-"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let events = lines(&output.stdout);
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["tiktok"]["event"], "Lead");
    assert_eq!(events[1]["status"], "rejected");
    assert_eq!(events[1]["event_id"], Value::Null);
    assert!(events[1]["reason"]
        .as_str()
        .unwrap()
        .starts_with("line 2: properties.value:"));
    assert!(events[2]["reason"]
        .as_str()
        .unwrap()
        .starts_with("line 3, column 2:"));
    assert_eq!(events[3]["tiktok"]["event"], "Contact");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2: properties.value"), "{stderr}");
    assert!(stderr.contains("line 3, column 2"), "{stderr}");
}

#[test]
fn all_good_input_exits_zero() {
    ttedge()
        .args(["preview"])
        .write_stdin("{\"event\":\"ViewContent\"}\n")
        .assert()
        .success();
}

#[test]
fn batch_document_and_switches() {
    let input = r#"{
  "batch": [
    {"event": "quiz_done", "event_id": "q"},
    {"event": "purchase", "event_id": "p", "user_data": {"email": "user@example.com", "phone": "15551234567"}}
  ]
}"#;
    let output = ttedge()
        .args([
            "preview",
            "--no-custom-events",
            "--source",
            "offline",
            "--test-event-code",
            "TEST42",
        ])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(output.status.success());
    let events = lines(&output.stdout);
    assert_eq!(events[0]["status"], "skipped");
    assert!(events[0]["reason"]
        .as_str()
        .unwrap()
        .contains("custom events are off"));
    // 55 is good for an offline event.
    assert_eq!(events[1]["emq"]["score"], 55);
    assert_eq!(events[1]["emq"]["grade"], "good");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("test_event_code TEST42"), "{stderr}");
}

#[test]
fn score_summarises_for_a_person_and_as_json() {
    let output = ttedge()
        .args(["score", "../examples/events.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("events: 7 (ready 4, skipped 1, held 1, rejected 1)"),
        "{text}"
    );
    assert!(text.contains("missing most often:"), "{text}");

    let output = ttedge()
        .args(["score", "--json", "../examples/events.jsonl"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["events"]["total"], 7);
    assert_eq!(report["scored"], 5);
    let histogram: u64 = report["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(histogram, 5);
    let missing = report["most_missing"].as_array().unwrap();
    assert!(!missing.is_empty());
    assert!(missing
        .windows(2)
        .all(|w| w[0]["events"].as_u64() >= w[1]["events"].as_u64()));
}

#[test]
fn missing_file_is_a_usage_error() {
    let output = ttedge()
        .args(["score", "no-such-file.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-file.jsonl"));
}
