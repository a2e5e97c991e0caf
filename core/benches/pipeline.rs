//! From collect-API bytes to serialised TikTok JSON with a score, per event.
//!
//! The corpus is a Rust port of `shared/bench/make-corpus.py`: 10,000 deterministic
//! e-commerce events with email, phone, external id, ttclid, IP, user agent and two items,
//! so the figure compares with other connectors measured on the same events.
//!
//! Run: `make bench` (this, several times, with each run's fastest sample; see
//! scripts/bench.sh) or `cargo bench -p ttedge-core --bench pipeline`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;
use ttedge_core::event::{parse_collect, MAX_BATCH_EVENTS};
use ttedge_core::mapping::NameRules;
use ttedge_core::pipeline::{prepare, Destination, RequestContext};

const EVENTS: [&str; 6] = [
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Product Viewed",
    "Products Searched",
    "Payment Info Entered",
];
const CATEGORIES: [&str; 5] = ["shoes", "shirts", "hats", "bags", "socks"];
/// 2024-01-15T12:00:00Z.
const BASE_MS: u64 = 1_705_320_000_000;
const UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Event `i` of make-corpus.py.
fn corpus_event(i: u64) -> String {
    let (p1, p2) = (1000 + i % 97, 2000 + i % 89);
    let (price1, price2) = ((10 + i % 50) as f64 + 0.99, (5 + i % 30) as f64 + 0.49);
    let (q1, q2) = (1 + i % 3, 1 + i % 2);
    json!({
        "event": EVENTS[(i % 6) as usize],
        "event_id": format!("msg-{i:08}"),
        "timestamp": BASE_MS + i * 1000,
        "url": format!("https://shop.example.com/products/{p1}?utm_source=tiktok&ttclid=E.C.P.{i:010}Abc"),
        "referrer": "https://www.tiktok.com/",
        "user_data": {"email": format!("  User.{i:06}@Example.COM "),
                      "phone": format!("+1 (555) {:03}-{:04}", i % 1000, i % 10000),
                      "external_id": format!("ext-{i:06}")},
        "properties": {
            "value": round2(price1 * q1 as f64 + price2 * q2 as f64), "currency": "USD",
            "items": [
                {"product_id": format!("sku-{p1}"), "name": format!("Product {p1}"),
                 "category": CATEGORIES[(i % 5) as usize], "price": price1, "quantity": q1, "brand": "Acme"},
                {"product_id": format!("sku-{p2}"), "name": format!("Product {p2}"),
                 "category": CATEGORIES[((i + 2) % 5) as usize], "price": price2, "quantity": q2, "brand": "Globex"},
            ],
        },
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"},
        "context": {"ip": format!("203.0.113.{}", i % 256), "user_agent": UA,
                    "pixel": if i % 3 == 0 { "blocked" } else { "loaded" }},
        "source": "browser",
    })
    .to_string()
}

/// Parse, map, hash, consent, score, build and serialise one event; returns output bytes.
fn process(body: &[u8], ctx: &RequestContext<'_>, destination: &Destination) -> usize {
    let events = parse_collect(body, MAX_BATCH_EVENTS).expect("corpus events are valid");
    let prepared = prepare(&events, ctx, destination);
    prepared
        .events
        .iter()
        .map(|event| {
            // What the Worker stores for the Dispatcher, and the score it answers with.
            let element = event.tiktok.as_ref().map_or(0, |e| e.to_json().len());
            let emq = serde_json::to_string(&event.emq).expect("serialises");
            element + emq.len()
        })
        .sum()
}

fn pipeline(c: &mut Criterion) {
    let corpus: Vec<String> = (0..10_000).map(corpus_event).collect();
    let destination = Destination {
        pixel_id: "C0RPUSPIXEL".into(),
        test_event_code: None,
        names: NameRules::default(),
    };
    let ctx = RequestContext {
        now_ms: BASE_MS,
        ttp_random: Some([7; 16]),
        id_random: [9; 16],
        ip: Some("203.0.113.7"),
        user_agent: Some(UA),
        accept_language: Some("en-US,en;q=0.9"),
        cookie_header: Some("_ttp=2Z3bYkq0cL1mN4pQ7rS9tUvWxYz; other=1"),
        cookie_domain: Some("example.com"),
    };
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.sample_size(20);
    // Criterion's 20 samples need about 8 s when a shared VM runs slow; 5 s made it warn.
    group.measurement_time(Duration::from_secs(12));
    group.bench_function("10k_events_parse_to_tiktok_json", |b| {
        b.iter(|| {
            corpus
                .iter()
                .map(|body| process(black_box(body.as_bytes()), &ctx, &destination))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
