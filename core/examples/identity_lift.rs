//! Identity resolution's lift on match quality, measured on a session corpus.
//!
//! 1,000 deterministic browsers (each its own `_ttp` cookie, IP and user agent; half came
//! from a TikTok ad, so they also carry a `ttclid` cookie), all with consent granted. Each
//! makes one to three visits three days apart: a page view, one to three product views and
//! an add to cart. Half the browsers check out on their first visit, the others on their
//! last: the checkout is the only event that carries the email (corpus A; corpus B: the
//! email and the phone of the same form), and a purchase on the thank-you page follows
//! without it. Every event goes through core's pipeline as the Worker runs it, then through
//! the Dispatcher's rules of core's `identity` module (learn what an event carries, fill what
//! a later event lacks), with a map in place of the Dispatcher's table. It prints the mean
//! score and the share of events at 70 or above, with and without identity resolution.
//!
//! Run: `cargo run --release -p ttedge-core --example identity_lift` (README, "Identity
//! resolution").

use std::collections::HashMap;

use serde_json::json;
use ttedge_core::destination::DAY_MS;
use ttedge_core::event::{parse_collect, MAX_BATCH_EVENTS};
use ttedge_core::identity::{self, Identity, IdentityKey, DEFAULT_DAYS};
use ttedge_core::mapping::NameRules;
use ttedge_core::pipeline::{prepare, Destination, RequestContext, Status};
use ttedge_core::quality::{threshold, MatchQuality};

const BROWSERS: u64 = 1_000;
/// 2024-01-15T12:00:00Z.
const BASE_MS: u64 = 1_705_320_000_000;
const UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// The events of visit `v` of browser `b`, in order: (name, carries the checkout's data).
fn visit(b: u64, v: u64) -> Vec<(&'static str, bool)> {
    let visits = 1 + b % 3;
    let mut events = vec![("page_view", false)];
    for _ in 0..=((b + v) % 3) {
        events.push(("view_item", false));
    }
    events.push(("add_to_cart", false));
    let checkout_visit = if b % 2 == 0 { 0 } else { visits - 1 };
    if v == checkout_visit {
        events.push(("begin_checkout", true));
        events.push(("purchase", false));
    }
    events
}

fn body(b: u64, id: &str, name: &str, at_ms: u64, checkout: Option<bool>) -> String {
    let product = 1000 + (b * 7 + at_ms / 1_000) % 97;
    let mut event = json!({
        "event": name,
        "event_id": id,
        "timestamp": at_ms,
        "url": format!("https://shop.example.com/products/{product}"),
        "properties": {
            "value": 19.99, "currency": "USD",
            "items": [{"product_id": format!("sku-{product}"), "price": 19.99, "quantity": 1}],
        },
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"},
    });
    if name == "page_view" {
        event["properties"] = json!({});
    }
    match checkout {
        Some(false) => event["user_data"] = json!({"email": format!("shopper.{b:05}@example.com")}),
        Some(true) => {
            event["user_data"] = json!({
                "email": format!("shopper.{b:05}@example.com"),
                "phone": format!("+1 555 {:07}", b),
            })
        }
        None => {}
    }
    event.to_string()
}

/// The Dispatcher's table for one pixel.
#[derive(Default)]
struct Store {
    rows: HashMap<(&'static str, String), Identity>,
    written: u64,
}

impl Store {
    fn get(&self, key: &IdentityKey<'_>) -> Option<Identity> {
        self.rows
            .get(&(key.kind(), key.value().to_string()))
            .copied()
    }

    fn put(&mut self, key: &IdentityKey<'_>, identity: Identity) {
        self.written += 1;
        self.rows
            .insert((key.kind(), key.value().to_string()), identity);
    }
}

/// Scores summed: events, points (hundredths), events at or above the threshold.
#[derive(Default)]
struct Tally {
    events: u64,
    points: u64,
    good: u64,
}

impl Tally {
    fn add(&mut self, quality: &MatchQuality) {
        self.events += 1;
        self.points += u64::from(quality.score.0);
        self.good += u64::from(quality.score >= threshold(ttedge_core::event::Source::Browser));
    }

    fn line(&self, label: &str) -> String {
        format!(
            "{label}: mean EMQ {:.1}, {:.1} % of {} events at 70 or above",
            self.points as f64 / self.events as f64 / 100.0,
            self.good as f64 * 100.0 / self.events as f64,
            self.events
        )
    }
}

/// Runs the corpus (`with_phone`: corpus B) and prints its figures.
fn run(with_phone: bool) {
    let destination = Destination {
        pixel_id: "C4BENCH".into(),
        test_event_code: None,
        names: NameRules::default(),
    };
    let mut store = Store::default();
    let (mut without, mut with, mut enriched) = (Tally::default(), Tally::default(), 0u64);
    // Visits in time order: browser b's visit v starts on day 3v, minute b.
    let mut visits: Vec<(u64, u64)> = (0..BROWSERS)
        .flat_map(|b| (0..1 + b % 3).map(move |v| (b, v)))
        .collect();
    visits.sort_by_key(|&(b, v)| (v, b));
    for (b, v) in visits {
        let mut cookie = format!("_ttp=ttp-browser-{b:05}");
        if b % 2 == 0 {
            cookie.push_str(&format!("; ttclid=E.C.P.{b:010}Ad"));
        }
        let ip = format!("203.0.113.{}", b % 256);
        for (n, (name, checkout)) in visit(b, v).into_iter().enumerate() {
            let now_ms = BASE_MS + v * 3 * DAY_MS + b * 60_000 + n as u64 * 5_000;
            let id = format!("b{b:05}-v{v}-{n}");
            let text = body(b, &id, name, now_ms, checkout.then_some(with_phone));
            let events = parse_collect(text.as_bytes(), MAX_BATCH_EVENTS).expect("valid");
            let ctx = RequestContext {
                now_ms,
                ttp_random: Some([b as u8; 16]),
                id_random: [0; 16],
                ip: Some(&ip),
                user_agent: Some(UA),
                accept_language: Some("en-US"),
                cookie_header: Some(&cookie),
                cookie_domain: Some("example.com"),
            };
            let prepared = prepare(&events, &ctx, &destination);
            for event in prepared.events {
                let (Status::Ready, Some(mut element), Some(emq)) =
                    (event.status, event.tiktok, event.emq)
                else {
                    continue;
                };
                without.add(&emq);
                let usage = event.identity.within(DEFAULT_DAYS);
                let own = element.user.clone();
                let mut sent = emq;
                if usage.enrich && identity::lacks_any(&element.user) {
                    let found: Vec<(IdentityKey<'_>, Identity)> = identity::lookup_keys(&own)
                        .into_iter()
                        .flatten()
                        .filter_map(|key| Some((key.clone(), store.get(&key)?)))
                        .filter(|(_, stored)| stored.is_live(now_ms, DEFAULT_DAYS))
                        .collect();
                    let identities: Vec<Identity> = found.iter().map(|(_, i)| *i).collect();
                    if let Some(result) =
                        identity::enrich(&mut element, &identities, usage.source())
                    {
                        sent = result.after;
                        enriched += 1;
                        // Last use, at most once a day, as the Dispatcher writes it.
                        for (key, stored) in &found {
                            if let Some(touched) = stored.touched(now_ms, DEFAULT_DAYS) {
                                store.put(key, touched);
                            }
                        }
                    }
                }
                with.add(&sent);
                if usage.learn {
                    for key in identity::learn_keys(&own, &usage).into_iter().flatten() {
                        let stored = store.get(&key);
                        if let Some(learned) =
                            identity::learn(stored.as_ref(), &own, now_ms, DEFAULT_DAYS)
                        {
                            store.put(&key, learned);
                        }
                    }
                }
            }
        }
    }
    let corpus = match with_phone {
        false => "A: the checkout carries the email",
        true => "B: the checkout carries the email and the phone",
    };
    println!(
        "corpus {corpus} ({BROWSERS} browsers, {} events)",
        with.events
    );
    println!("  {}", without.line("without identity resolution"));
    println!("  {}", with.line("with identity resolution   "));
    println!(
        "  {enriched} events enriched; {} identity rows written ({:.3} per event)",
        store.written,
        store.written as f64 / with.events as f64
    );
}

fn main() {
    run(false);
    run(true);
}
