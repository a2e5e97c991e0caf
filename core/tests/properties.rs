//! Property tests: hashing is idempotent, and no input makes parsing or the pipeline panic.

use proptest::prelude::*;
use serde_json::{json, Value};
use ttedge_core::event::{parse_collect, MAX_BATCH_EVENTS};
use ttedge_core::hashing;
use ttedge_core::mapping::NameRules;
use ttedge_core::pipeline::{prepare_request, Destination, RequestContext};

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Events shaped like the collect API, with any value in any known field.
fn collect_like() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("event"),
        Just("event_id"),
        Just("timestamp"),
        Just("url"),
        Just("referrer"),
        Just("user_data"),
        Just("properties"),
        Just("consent"),
        Just("context"),
        Just("source"),
        Just("batch"),
    ];
    prop::collection::btree_map(field, json_value(), 0..8).prop_map(|fields| {
        let mut event = json!({"event": "purchase"});
        for (key, value) in fields {
            event[key] = value;
        }
        event
    })
}

fn destination() -> Destination {
    Destination {
        pixel_id: "PIXEL".into(),
        test_event_code: None,
        names: NameRules::default(),
    }
}

fn run_everything(body: &[u8]) {
    if let Ok(events) = parse_collect(body, MAX_BATCH_EVENTS) {
        let ctx = RequestContext {
            now_ms: 1_764_064_800_000,
            ttp_random: Some([1; 16]),
            cookie_header: Some("_ttp=abc; ttclid=x"),
            ..RequestContext::default()
        };
        let prepared = prepare_request(events, &ctx, &destination());
        for event in prepared.events {
            serde_json::to_string(&event).expect("a prepared event always serialises");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn email_hashing_is_idempotent(raw in ".*") {
        if let Some(once) = hashing::email(&raw) {
            prop_assert_eq!(hashing::email(&once), Some(once));
            prop_assert!(hashing::is_sha256_hex(&once));
        }
    }

    #[test]
    fn phone_hashing_is_idempotent(raw in "[-+0-9 ()a-f]{0,70}") {
        if let Some(once) = hashing::phone(&raw) {
            prop_assert_eq!(hashing::phone(&once), Some(once));
        }
    }

    #[test]
    fn external_id_hashing_is_idempotent(raw in ".*") {
        if let Some(once) = hashing::external_id(&raw) {
            prop_assert_eq!(hashing::external_id(&once), Some(once));
        }
    }

    #[test]
    fn parsing_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        run_everything(&bytes);
    }

    #[test]
    fn parsing_never_panics_on_json(value in json_value()) {
        run_everything(value.to_string().as_bytes());
    }

    #[test]
    fn pipeline_never_panics_on_collect_like_events(event in collect_like()) {
        run_everything(event.to_string().as_bytes());
    }
}
