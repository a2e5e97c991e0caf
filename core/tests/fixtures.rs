//! Acceptance fixture: runs every case of `tests/fixtures/cases.json` through the public API
//! (`parse_collect`, then `prepare_request`) and compares the outcome with the expectation
//! written from DESIGN.md.
//!
//! Expectations are matched as a *subset*: every key of an expected object must match the
//! actual value (objects recursively, arrays with equal length element by element, numbers
//! numerically, other scalars exactly), and an expected `null` matches `null` or a missing key.
//! Every mismatch is printed with its case and JSON path; the test fails once, at the end.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use ttedge_core::event::{parse_collect, MAX_BATCH_EVENTS};
use ttedge_core::mapping::NameRules;
use ttedge_core::pipeline::{prepare_request, Destination, RequestContext};

const CASES: &str = include_str!("fixtures/cases.json");

/// The fixture must not silently shrink.
const MIN_CASES: usize = 40;

const NOW_MS: u64 = 1_764_064_800_000;
const TTP_RANDOM: [u8; 16] = [0x11; 16];
const ID_RANDOM: [u8; 16] = [0x22; 16];
const COOKIE_DOMAIN: &str = "shop.com";
const PIXEL_ID: &str = "PIXEL1";

/// Keys of an expected event that are not fields of the serialised `PreparedEvent`.
const REASON_CONTAINS: &str = "reason_contains";
const EVENT_ID_GENERATED: &str = "event_id_generated";

#[test]
fn acceptance_cases() {
    let doc: Value = serde_json::from_str(CASES).expect("cases.json is valid JSON");
    assert!(
        doc.get("_about").is_some_and(Value::is_array),
        "cases.json needs an `_about` array"
    );
    let cases = doc
        .get("cases")
        .and_then(Value::as_array)
        .expect("cases.json has a `cases` array");

    let mut failures: Vec<String> = Vec::new();
    if MAX_BATCH_EVENTS != 100 {
        failures.push(format!(
            "(setup): MAX_BATCH_EVENTS is {MAX_BATCH_EVENTS}, DESIGN says at most 100"
        ));
    }
    let mut names = BTreeSet::new();
    let mut ran = 0;
    let mut failed_cases = 0;
    for (position, case) in cases.iter().enumerate() {
        let name = case
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("cases[{position}]"), str::to_string);
        let mut problems = Vec::new();
        if !names.insert(name.clone()) {
            problems.push("duplicate case name".to_string());
        }
        run_case(case, &mut problems);
        ran += 1;
        if !problems.is_empty() {
            failed_cases += 1;
            let rule = case.get("rule").and_then(Value::as_str).unwrap_or("");
            let mut report = format!("FAIL {name}\n  rule: {rule}");
            for problem in &problems {
                report.push_str("\n  ");
                report.push_str(problem);
            }
            println!("{report}");
            failures.push(report);
        }
    }
    println!("fixture: {ran} cases ran, {failed_cases} failed");
    assert!(
        ran >= MIN_CASES,
        "only {ran} fixture cases ran; at least {MIN_CASES} are required"
    );
    assert!(
        failures.is_empty(),
        "{} fixture failure(s) in {ran} cases; every mismatch is printed above",
        failures.len()
    );
}

fn run_case(case: &Value, problems: &mut Vec<String>) {
    let body: Vec<u8> = match (case.get("body_text"), case.get("body")) {
        (Some(Value::String(text)), _) => text.as_bytes().to_vec(),
        (None, Some(body)) => serde_json::to_vec(body).expect("a JSON value serialises"),
        _ => {
            problems.push("case needs `body` or a string `body_text`".to_string());
            return;
        }
    };
    let parsed = parse_collect(&body, MAX_BATCH_EVENTS);

    if let Some(expected) = case.get("expect_error") {
        match parsed {
            Ok(events) => problems.push(format!(
                "at $: expected input error {expected}, actual: accepted {} event(s)",
                events.len()
            )),
            Err(error) => {
                let actual = serde_json::json!({
                    "code": error.code(),
                    "path": error.path(),
                    "message": error.to_string(),
                });
                subset(expected, Some(&actual), "$.error", problems);
            }
        }
        return;
    }

    let Some(expect) = case.get("expect") else {
        problems.push("case needs `expect` or `expect_error`".to_string());
        return;
    };
    let events = match parsed {
        Ok(events) => events,
        Err(error) => {
            problems.push(format!(
                "at $: expected the body to be accepted, actual: {} error at {:?}: {error}",
                error.code(),
                error.path()
            ));
            return;
        }
    };

    let request = case.get("request").cloned().unwrap_or(Value::Null);
    let ctx = match request_context(&request) {
        Ok(ctx) => ctx,
        Err(problem) => {
            problems.push(problem);
            return;
        }
    };
    let destination = match destination(case.get("destination")) {
        Ok(destination) => destination,
        Err(problem) => {
            problems.push(problem);
            return;
        }
    };

    let prepared = prepare_request(events, &ctx, &destination);

    let actual_events: Vec<Value> = prepared
        .events
        .iter()
        .map(|event| {
            let mut value = serde_json::to_value(event).expect("PreparedEvent serialises");
            if let Value::Object(object) = &mut value {
                object.insert(
                    "event_name".to_string(),
                    event
                        .event_name
                        .as_ref()
                        .map_or(Value::Null, |name| Value::String(name.to_string())),
                );
            }
            value
        })
        .collect();

    match expect.get("events").and_then(Value::as_array) {
        Some(expected_events) => {
            if expected_events.len() != actual_events.len() {
                problems.push(format!(
                    "at $.events: expected {} event(s), actual {}",
                    expected_events.len(),
                    actual_events.len()
                ));
            }
            let mut generated_ids = BTreeSet::new();
            for (index, (expected, actual)) in
                expected_events.iter().zip(&actual_events).enumerate()
            {
                let path = format!("$.events[{index}]");
                check_event(expected, actual, &path, &mut generated_ids, problems);
            }
        }
        None => problems.push("`expect.events` must be an array".to_string()),
    }

    if let Some(expected_cookies) = expect.get("set_cookies") {
        let actual_cookies = Value::from(prepared.set_cookies.clone());
        subset(
            expected_cookies,
            Some(&actual_cookies),
            "$.set_cookies",
            problems,
        );
    }
}

/// Matches one expected event, handling the keys that are checks rather than fields.
fn check_event(
    expected: &Value,
    actual: &Value,
    path: &str,
    generated_ids: &mut BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let Some(expected) = expected.as_object() else {
        problems.push(format!("at {path}: expected event must be an object"));
        return;
    };
    let mut fields = expected.clone();

    if let Some(needle) = fields.remove(REASON_CONTAINS) {
        let needle = needle.as_str().unwrap_or_default();
        match actual.get("reason").and_then(Value::as_str) {
            Some(reason) if reason.contains(needle) => {}
            _ => problems.push(format!(
                "at {path}.reason: expected a reason containing {needle:?}, actual {}",
                show(actual.get("reason"))
            )),
        }
    }

    if let Some(flag) = fields.remove(EVENT_ID_GENERATED) {
        if flag == Value::Bool(true) {
            match actual.get("event_id").and_then(Value::as_str) {
                Some(id) if !id.trim().is_empty() => {
                    if !generated_ids.insert(id.to_string()) {
                        problems.push(format!(
                            "at {path}.event_id: generated id {id:?} is not unique in the request"
                        ));
                    }
                    let sent = actual.get("tiktok").filter(|t| !t.is_null());
                    if let Some(tiktok) = sent {
                        subset(
                            &Value::String(id.to_string()),
                            tiktok.get("event_id"),
                            &format!("{path}.tiktok.event_id"),
                            problems,
                        );
                    }
                }
                _ => problems.push(format!(
                    "at {path}.event_id: expected a generated non-empty id, actual {}",
                    show(actual.get("event_id"))
                )),
            }
        }
    }

    subset(&Value::Object(fields), Some(actual), path, problems);
}

/// Recursive subset match; pushes one line per mismatch.
fn subset(expected: &Value, actual: Option<&Value>, path: &str, problems: &mut Vec<String>) {
    let mismatch = |problems: &mut Vec<String>| {
        problems.push(format!(
            "at {path}: expected {expected}, actual {}",
            show(actual)
        ));
    };
    match expected {
        Value::Null => {
            if !matches!(actual, None | Some(Value::Null)) {
                mismatch(problems);
            }
        }
        Value::Object(expected_map) => match actual {
            Some(Value::Object(actual_map)) => {
                subset_object(expected_map, actual_map, path, problems)
            }
            _ => mismatch(problems),
        },
        Value::Array(expected_items) => match actual {
            Some(Value::Array(actual_items)) if actual_items.len() == expected_items.len() => {
                for (index, (e, a)) in expected_items.iter().zip(actual_items).enumerate() {
                    subset(e, Some(a), &format!("{path}[{index}]"), problems);
                }
            }
            _ => mismatch(problems),
        },
        Value::Number(expected_number) => {
            let equal = match actual {
                Some(Value::Number(actual_number)) => {
                    match (expected_number.as_f64(), actual_number.as_f64()) {
                        (Some(e), Some(a)) => (e - a).abs() <= 1e-9 * e.abs().max(1.0),
                        _ => false,
                    }
                }
                _ => false,
            };
            if !equal {
                mismatch(problems);
            }
        }
        Value::String(_) | Value::Bool(_) => {
            if actual != Some(expected) {
                mismatch(problems);
            }
        }
    }
}

fn subset_object(
    expected: &Map<String, Value>,
    actual: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    for (key, value) in expected {
        subset(value, actual.get(key), &format!("{path}.{key}"), problems);
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(missing)".to_string(), Value::to_string)
}

/// Builds the request context from a case's `request`, with the fixed defaults.
fn request_context(request: &Value) -> Result<RequestContext<'_>, String> {
    let text = |key: &str| -> Result<Option<&str>, String> {
        match request.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(format!("request.{key} must be a string, found {other}")),
        }
    };
    let byte = |value: &Value, key: &str| -> Result<u8, String> {
        value
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("request.{key} must be a byte value, found {value}"))
    };
    let ttp_random = match request.get("ttp_random") {
        None => Some(TTP_RANDOM),
        Some(Value::Null) => None,
        Some(value) => Some([byte(value, "ttp_random")?; 16]),
    };
    let id_random = match request.get("id_random") {
        None | Some(Value::Null) => ID_RANDOM,
        Some(value) => [byte(value, "id_random")?; 16],
    };
    let now_ms = match request.get("now_ms") {
        None | Some(Value::Null) => NOW_MS,
        Some(value) => value
            .as_u64()
            .ok_or_else(|| format!("request.now_ms must be a whole number, found {value}"))?,
    };
    let cookie_domain = match request.get("cookie_domain") {
        None => Some(COOKIE_DOMAIN),
        Some(_) => text("cookie_domain")?,
    };
    Ok(RequestContext {
        now_ms,
        ttp_random,
        id_random,
        ip: text("ip")?,
        user_agent: text("user_agent")?,
        accept_language: text("accept_language")?,
        cookie_header: text("cookie")?,
        cookie_domain,
    })
}

/// Builds the destination from a case's `destination`, with the fixed defaults.
fn destination(spec: Option<&Value>) -> Result<Destination, String> {
    let spec = spec.cloned().unwrap_or(Value::Null);
    let mut overrides: Vec<(&str, &str)> = Vec::new();
    if let Some(map) = spec.get("overrides").and_then(Value::as_object) {
        for (from, to) in map {
            let to = to
                .as_str()
                .ok_or_else(|| format!("destination.overrides.{from} must be a string"))?;
            overrides.push((from.as_str(), to));
        }
    }
    let custom_events = spec
        .get("custom_events")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let names = NameRules::new(overrides, custom_events)
        .map_err(|error| format!("at $.destination: NameRules::new refused: {error}"))?;
    Ok(Destination {
        pixel_id: spec
            .get("pixel_id")
            .and_then(Value::as_str)
            .unwrap_or(PIXEL_ID)
            .to_string(),
        test_event_code: spec
            .get("test_event_code")
            .and_then(Value::as_str)
            .map(str::to_string),
        names,
    })
}
