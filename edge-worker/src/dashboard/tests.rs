//! The renderer against typed answers: figures and their `data-metric` names, the hourly
//! charts' data attributes, escaping, and nothing loaded from another host.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use ttedge_core::destination::{Baseline, BaselineRecovery};
use ttedge_core::health::{
    self, Counts, EmqReport, HourPoint, IdentityReport, Recovery, WindowTotals, Windows, HOUR_MS,
};
use ttedge_core::quality::{Coaching, Factor, Grade, MatchQuality, MissingFactor, Points};

use super::charts::{nice_ceil, ERRORS, LATENCY, VOLUME};
use super::format::NONE;
use super::*;
use crate::admin::views::{DestinationKind, StoredFields};
use crate::config_store::LastTest;
use crate::dispatcher::client::TestAnswer;
use crate::dispatcher::report::{Current, ParkedListed, RateWindow, RecoveryReport};

const NOW: u64 = 1_764_000_000_000;

fn stored_fields(updated_ms: u64) -> DestinationKind {
    DestinationKind::Admin(Box::new(StoredFields {
        baseline_pixel_code: None,
        event_overrides: BTreeMap::new(),
        custom_events: true,
        conversion_events: Vec::new(),
        cod_checkout_events: Vec::new(),
        cod_days: 60,
        webhook_secret_set: false,
        baselines: vec![Baseline {
            from: "2026-11-01".into(),
            to: "2026-11-07".into(),
            pixel_conversions: 120,
        }],
        updated_ms,
        last_test: None,
        test_passed_ms: None,
    }))
}

fn destination(host: Option<&str>, kind: DestinationKind) -> DestinationView {
    DestinationView {
        host: host.map(str::to_string),
        pixel_id: "CABC123".into(),
        access_token: "…1234".into(),
        test_event_code: Some("TEST123".into()),
        offline_event_set_id: None,
        live: false,
        site_origins: vec!["https://shop.com".into()],
        cookie_domain: None,
        rate_limit_per_minute: 1000,
        identity_days: 90,
        kind,
    }
}

fn destinations() -> Vec<DestinationView> {
    let mut other = destination(Some("t.other.com"), DestinationKind::Vars);
    other.test_event_code = None;
    other.live = true;
    vec![destination(Some("t.shop.com"), stored_fields(NOW)), other]
}

fn window(received: u64, p95: u64) -> WindowTotals {
    WindowTotals {
        counts: Counts {
            received,
            delivered: received - 4,
            retried: 3,
            parked: 4,
            held: 2,
            skipped: 1,
            rejected: 0,
            not_live: 5,
            requests: 20,
            calls: 20,
            failed_calls: 1,
            conversions: 9,
            conversions_unseen: 2,
            cod_confirmed: 6,
            cod_cancelled: 2,
            ..Counts::default()
        },
        success_rate: Some(0.97333),
        error_rate: Some(0.05),
        cod_confirmation_rate: Some(0.75),
        p50: Some(120),
        p95: Some(p95),
        p99: Some(900),
        max: Some(1200),
    }
}

/// 25 hours; every fifth has no calls, so no latency.
fn hourly() -> Vec<HourPoint> {
    let hour0 = NOW / HOUR_MS * HOUR_MS - 24 * HOUR_MS;
    (0..25)
        .map(|i| {
            let busy = i % 5 != 0;
            HourPoint {
                hour_ms: hour0 + i * HOUR_MS,
                received: i * 7,
                delivered: i * 6,
                retried: 0,
                parked: i % 3,
                failed_calls: i % 4,
                calls: i,
                p50: busy.then_some(100 + i),
                p95: busy.then_some(300 + 4 * i),
                p99: busy.then_some(700),
            }
        })
        .collect()
}

fn current() -> Current {
    Current {
        // `CallRecord` is the Dispatcher's own type: read from its JSON, as the API sends it.
        last_errors: serde_json::from_value(json!([{"at_ms": 1_763_999_000_000u64,
            "latency_ms": 80, "verdict": "reject", "events": 3, "http_status": 200,
            "tiktok_code": 40001, "message": "Invalid \"pixel\" & token",
            "hint": "<script>alert(1)</script> check the token"}]))
        .expect("a call record"),
        queue_depth: 7,
        parked: 4,
        oldest_queued_age_ms: Some(183_422),
        rate_window: RateWindow {
            used: 850,
            limit: 1000,
        },
    }
}

fn health() -> Health {
    Health {
        now_ms: NOW,
        windows: Windows {
            last_hour: window(30, 412),
            last_24h: window(154, 450),
            last_7d: window(1000, 480),
        },
        hourly: hourly(),
        current: current(),
        emq: EmqReport {
            events: 200,
            mean: Some(63.44),
            histogram: [0, 1, 2, 5, 10, 30, 50, 60, 30, 12],
            below_threshold_share: Some(0.4),
            most_missing: vec![
                MissingFactor {
                    factor: Factor::Phone,
                    events: 3,
                    share: 0.015,
                    mean_gain: 25.0,
                },
                MissingFactor {
                    factor: Factor::Email,
                    events: 2,
                    share: 0.01,
                    mean_gain: 12.34,
                },
            ],
        },
        recovery: RecoveryReport {
            totals: Recovery {
                conversions_delivered: 9,
                unseen_by_pixel: 2,
                unseen_share: Some(0.2222),
                events_received: 16,
                pixel_missing: 5,
                pixel_missing_share: Some(0.3125),
            },
            baselines: vec![BaselineRecovery {
                from: "2026-11-01".into(),
                to: "2026-11-07".into(),
                pixel_conversions: 120,
                server_conversions: 150,
                delta: -30,
                recovered_share: Some(0.25),
            }],
        },
        identity: IdentityReport {
            enriched: 12,
            mean_gain: Some(27.5),
        },
    }
}

fn parked_page() -> ParkedList {
    ParkedList {
        events: vec![ParkedListed {
            seq: 1,
            event_id: "ord-1\"><img src=x>".into(),
            event_name: "CompletePayment".into(),
            http_status: 200,
            tiktok_code: Some(40002),
            message: "bad value".into(),
            hint: "fix the value".into(),
            attempts: 1,
            parked_at_ms: 1_763_990_000_000,
        }],
        next_after: None,
        total: 1,
    }
}

fn render(health: Option<&Health>, parked: Option<&ParkedList>) -> String {
    render_dashboard(&DashboardView {
        destinations: &destinations(),
        selected: Some("t.shop.com"),
        health,
        parked,
        form: None,
    })
}

fn sample() -> String {
    render(Some(&health()), Some(&parked_page()))
}

/// The text of the element with `data-metric="name"`.
fn metric<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let attribute = format!("data-metric=\"{name}\">");
    let start = html.find(&attribute)? + attribute.len();
    html[start..].split('<').next()
}

/// The value of `name="…"` in the tag that starts at the beginning of `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let tag = &tag[..tag.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].split('"').next()
}

/// Every hourly bar and point as `(data-series, data-hour-ms) → data-value`, with the tag
/// name (`rect` or `circle`) that draws it.
fn chart_data(html: &str) -> BTreeMap<(String, u64), (u64, &str)> {
    let mut found = BTreeMap::new();
    for (at, _) in html.match_indices('<') {
        let tag = &html[at + 1..];
        if attribute(tag, "data-series").is_none() {
            continue;
        }
        let read = |name| {
            attribute(tag, name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} of {}", &tag[..80.min(tag.len())]))
        };
        let series = attribute(tag, "data-series")
            .unwrap_or_default()
            .to_string();
        let element = tag.split(' ').next().unwrap_or_default();
        let previous = found.insert(
            (series, read("data-hour-ms")),
            (read("data-value"), element),
        );
        assert!(previous.is_none(), "one element per series and hour");
    }
    found
}

/// Every URL an attribute or CSS of `html` points at. Data cannot fake one: a `"` in
/// data is escaped.
fn references(html: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for attr in [" src=\"", " href=\"", " action=\"", " srcset=\"", "url("] {
        for (at, _) in html.match_indices(attr) {
            let value = &html[at + attr.len()..];
            found.push(value.split(['"', ')']).next().unwrap_or(value));
        }
    }
    found
}

#[test]
fn figures_carry_their_metric_names() {
    let html = sample();
    let expect = [
        ("last_hour.received", "30"),
        ("last_hour.p95", "412"),
        ("last_24h.delivered", "150"),
        ("last_24h.not_live", "5"),
        ("last_24h.success_rate", "97.3"),
        ("last_24h.error_rate", "5.0"),
        ("last_24h.cod_confirmed", "6"),
        ("last_24h.cod_cancelled", "2"),
        ("last_24h.cod_confirmation_rate", "75.0"),
        ("last_7d.p99", "900"),
        ("current.queue_depth", "7"),
        ("current.parked", "4"),
        ("current.oldest_queued_age_s", "183"),
        ("current.rate_window.used", "850"),
        ("current.rate_window.limit", "1000"),
        ("emq.mean", "63.4"),
        ("emq.events", "200"),
        ("emq.below_threshold_share", "40.0"),
        ("identity.enriched", "12"),
        ("identity.mean_gain", "27.5"),
        ("emq.histogram.0", "0"),
        ("emq.histogram.7", "60"),
        ("emq.most_missing.0.events", "3"),
        ("emq.most_missing.0.gain", "25.0"),
        ("emq.most_missing.0.share", "1.5"),
        ("emq.most_missing.1.gain", "12.3"),
        ("emq.most_missing.1.share", "1.0"),
        ("recovery.conversions_delivered", "9"),
        ("recovery.unseen_by_pixel", "2"),
        ("recovery.unseen_share", "22.2"),
        ("recovery.pixel_missing", "5"),
        ("recovery.pixel_missing_share", "31.3"),
        ("recovery.baselines.0.pixel_conversions", "120"),
        ("recovery.baselines.0.server_conversions", "150"),
        ("recovery.baselines.0.delta", "-30"),
        ("recovery.baselines.0.recovered_share", "25.0"),
        ("parked.total", "1"),
    ];
    for (name, value) in expect {
        assert_eq!(metric(&html, name), Some(value), "{name}");
        assert_eq!(html.matches(&format!("data-metric=\"{name}\"")).count(), 1);
    }
    assert!(html.contains("<td>phone</td>"), "factors by their API name");
    assert!(
        html.contains("<dd data-field=\"updated_ms\">2025-11-24 16:00</dd>"),
        "updated, in UTC"
    );
}

#[test]
fn hourly_charts_draw_every_hour_with_its_figures() {
    let health = health();
    let html = sample();
    assert!(!html.contains("No hourly data yet"));
    let drawn = chart_data(&html);
    // What the charts must show: each series' field of `hourly[]` as the API serialises it,
    // so a `data-series` name is also the JSON field a test compares it with.
    let mut expected = BTreeMap::new();
    for (series, element) in [
        (&VOLUME[..], "rect"),
        (&ERRORS, "rect"),
        (&LATENCY, "circle"),
    ] {
        for s in series {
            for point in &health.hourly {
                let json = serde_json::to_value(point).expect("an hour serialises");
                assert_eq!(
                    json[s.key].as_u64(),
                    (s.value)(point),
                    "{} is hourly[].{}",
                    s.key,
                    s.key
                );
                if let Some(v) = json[s.key].as_u64() {
                    expected.insert((s.key.to_string(), point.hour_ms), (v, element));
                }
            }
        }
    }
    assert_eq!(drawn, expected);
    // 25 bars per count series; latencies skip the 5 hours without calls.
    let per_series: BTreeMap<&str, usize> = drawn.keys().fold(BTreeMap::new(), |mut m, (s, _)| {
        *m.entry(s.as_str()).or_default() += 1;
        m
    });
    assert_eq!(per_series["received"], 25);
    assert_eq!(per_series["failed_calls"], 25);
    assert_eq!(per_series["p95"], 20);
    // Heights are to scale: 168 received on an axis up to 200 is 99 of the 118 units high;
    // a zero bar has no height.
    let last = health.hourly[24].hour_ms;
    let tallest = format!("data-series=\"received\" data-hour-ms=\"{last}\"");
    let bar = html.find(&tallest).expect("the last hour's bar");
    let tag = &html[html[..bar].rfind('<').expect("its tag")..];
    assert_eq!(attribute(tag, "height"), Some("99"), "{}", &tag[..120]);
    let first = health.hourly[0].hour_ms;
    let zero = format!("height=\"0\" data-series=\"received\" data-hour-ms=\"{first}\"");
    assert!(html.contains(&zero));
    assert!(html.contains(">200</text>"), "the axis top");
}

#[test]
fn controls_are_present() {
    let html = sample();
    assert!(html.contains("data-action=\"test\" data-host=\"t.shop.com\""));
    assert!(html.contains("id=\"test-result-t.shop.com\""));
    assert!(html.contains("id=\"test-result-t.other.com\""));
    assert!(html.contains("data-action=\"live\" data-host=\"t.shop.com\" data-live=\"false\""));
    // A destination from vars is always live and has no switch.
    assert!(!html.contains("data-action=\"live\" data-host=\"t.other.com\""));
    assert!(html.contains("<button data-action=\"replay\" data-host=\"t.shop.com\">"));
    assert!(html.contains("data-event-id=\"ord-1&quot;&gt;&lt;img src=x&gt;\""));
    assert!(html.contains("href=\"/admin?host=t.other.com\""));
    assert!(html.contains("action=\"/admin/logout\""));
    assert!(html.contains("'X-Requested-With': 'ttedge'"));
    assert_eq!(
        html.matches("<polyline").count(),
        3 * 5,
        "lines break at hours without calls"
    );
}

#[test]
fn every_destination_has_its_upload_form() {
    let html = sample();
    for host in ["t.shop.com", "t.other.com"] {
        let form = format!("<form class=\"upload\" data-host=\"{host}\"");
        assert!(html.contains(&form), "{host}");
        for (id, name) in [("uf", "file"), ("uo", "utc_offset")] {
            let label = format!("<label for=\"{id}-{host}\">");
            assert!(html.contains(&label), "{label}");
            let input = tag_with_id(&html, &format!("{id}-{host}"));
            assert!(input.contains(&format!("name=\"{name}\"")), "{input}");
        }
        let file = tag_with_id(&html, &format!("uf-{host}"));
        assert!(
            file.contains("type=\"file\"") && file.contains("text/csv"),
            "{file}"
        );
    }
    assert!(html.contains("<progress max=\"1\" value=\"0\" hidden></progress>"));
    assert!(html.contains("Upload offline conversions"));
    // The page sends CSV chunks with their file line; it does not read the rows itself.
    assert!(JS.contains("'Content-Type': 'text/csv'") && JS.contains("'?first_line='"));
    assert!(!JS.contains("sha256") && !JS.contains("crypto.subtle"));
}

#[test]
fn data_is_escaped() {
    let html = sample();
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; check the token"));
    assert!(html.contains("Invalid &quot;pixel&quot; &amp; token"));

    let nasty = "x\"><script>alert('h')</script>";
    let mut dest = destination(Some(nasty), stored_fields(NOW));
    dest.site_origins = vec!["<b>o</b>".into()];
    dest.pixel_id = "<i>p</i>".into();
    let html = render_dashboard(&DashboardView {
        destinations: &[dest],
        selected: Some(nasty),
        health: None,
        parked: None,
        form: None,
    });
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains("<b>") && !html.contains("<i>"));
    assert!(
        html.contains("href=\"/admin?host=x%22%3E%3Cscript%3Ealert%28%27h%27%29%3C%2Fscript%3E\"")
    );
    assert!(
        html.contains("data-host=\"x&quot;&gt;&lt;script&gt;alert(&#39;h&#39;)&lt;/script&gt;\"")
    );
}

#[test]
fn nothing_is_loaded_from_another_host() {
    let (page, login) = (sample(), render_login(None));
    let found: Vec<&str> = references(&page)
        .into_iter()
        .chain(references(&login))
        .collect();
    assert!(found.len() > 5, "{found:?}");
    for reference in found {
        assert!(
            reference.starts_with('/') && !reference.starts_with("//"),
            "{reference}"
        );
    }
    for asset in [CSS, JS] {
        assert!(!asset.contains("://") && !asset.contains("url(") && !asset.contains("@import"));
    }
}

#[test]
fn figures_without_a_value_show_a_dash() {
    // No bucket at all: rates, percentiles and means have no value; counts are 0.
    let report = health::report(&[], NOW);
    let empty = Health {
        now_ms: NOW,
        windows: report.windows,
        hourly: report.hourly,
        current: Current {
            last_errors: Vec::new(),
            oldest_queued_age_ms: None,
            ..current()
        },
        emq: report.emq,
        recovery: RecoveryReport {
            totals: report.recovery,
            baselines: Vec::new(),
        },
        identity: report.identity,
    };
    let html = render(
        Some(&empty),
        Some(&ParkedList {
            events: Vec::new(),
            next_after: None,
            total: 0,
        }),
    );
    for name in [
        "last_hour.success_rate",
        "last_24h.error_rate",
        "last_7d.cod_confirmation_rate",
        "last_7d.p95",
        "current.oldest_queued_age_s",
        "emq.mean",
        "emq.below_threshold_share",
        "recovery.unseen_share",
        "recovery.pixel_missing_share",
        "identity.mean_gain",
    ] {
        assert_eq!(metric(&html, name), Some(NONE), "{name}");
    }
    for name in [
        "last_hour.received",
        "last_hour.cod_confirmed",
        "emq.events",
        "parked.total",
    ] {
        assert_eq!(metric(&html, name), Some("0"), "{name}");
    }
    // Empty hours are drawn as zero bars; hours without calls have no latency point.
    let drawn = chart_data(&html);
    assert_eq!(drawn.len(), 25 * 4);
    assert!(drawn.values().all(|(v, _)| *v == 0));
    assert!(html.contains("No failed calls.") && html.contains("No pixel baseline"));
    assert!(html.ends_with("</html>"));

    // No hours at all: the charts say so.
    let no_hours = Health {
        hourly: Vec::new(),
        ..empty
    };
    let html = render(Some(&no_hours), None);
    assert_eq!(html.matches("No hourly data yet.").count(), 3);
    assert!(!html.contains("data-series"));
    assert!(html.contains("The parked events are not available right now."));
}

#[test]
fn without_an_answer_the_page_says_so() {
    let html = render(None, None);
    assert!(html.contains("The health of t.shop.com is not available right now."));
    assert!(html.contains("The parked events are not available right now."));
    assert!(!html.contains("data-metric"));
    assert!(html.ends_with("</html>"));
}

#[test]
fn without_destinations_the_page_says_so() {
    let html = render_dashboard(&DashboardView {
        destinations: &[],
        selected: None,
        health: None,
        parked: None,
        form: None,
    });
    assert!(html.contains("No destinations are configured yet."));
    assert!(!html.contains("data-metric"));
    // A default without a host of its own has no card and no link either.
    let html = render_dashboard(&DashboardView {
        destinations: &[destination(None, DestinationKind::Vars)],
        selected: None,
        health: None,
        parked: None,
        form: None,
    });
    assert!(html.contains("No destinations are configured yet."));
    assert!(!html.contains("/admin?host="));
}

#[test]
fn login_form_posts_the_token() {
    let html = render_login(Some("Wrong <token>"));
    assert!(html.contains("<form method=\"post\" action=\"/admin/login\">"));
    assert!(html.contains("name=\"token\" type=\"password\""));
    assert!(html.contains("Wrong &lt;token&gt;"));
    assert!(!render_login(None).contains("role=\"alert\""));
    assert!(!html.contains("<script"));
}

#[test]
fn axis_tops_are_round() {
    assert_eq!(nice_ceil(0), 1);
    assert_eq!(nice_ceil(1), 1);
    assert_eq!(nice_ceil(2), 2);
    assert_eq!(nice_ceil(3), 5);
    assert_eq!(nice_ceil(420), 500);
    assert_eq!(nice_ceil(168), 200);
    assert_eq!(nice_ceil(u64::MAX), u64::MAX);
}

#[test]
fn css_and_script_stay_small() {
    // With the destination form, the install card, the CSV upload and the cash-on-delivery
    // and identity settings: about 6.8 KB of the Worker gzipped.
    assert!(
        CSS.len() + JS.len() <= 18 * 1024,
        "{} bytes",
        CSS.len() + JS.len()
    );
    assert!(!JS.contains("</script"));
    assert!(!JS.contains("innerHTML"));
}

#[test]
fn series_names_are_distinct() {
    let keys: BTreeSet<&str> = VOLUME
        .iter()
        .chain(&ERRORS)
        .chain(&LATENCY)
        .map(|s| s.key)
        .collect();
    assert_eq!(keys.len(), 7);
}

/// `TTEDGE_DASHBOARD_SAMPLE=/tmp/dashboard-sample.html cargo test ... dashboard` writes the
/// sample page there, to look at it in a browser.
#[test]
fn sample_page() {
    if let Ok(path) = std::env::var("TTEDGE_DASHBOARD_SAMPLE") {
        std::fs::write(path, sample()).expect("the sample page is written");
    }
}

// ---- the destination form, the card's controls and the install snippet ------------------

/// A stored destination with every stored field set, and `last_test`.
fn full_destination(host: &str, last_test: Option<LastTest>) -> DestinationView {
    let passed = last_test.as_ref().filter(|t| t.answer.ok).map(|t| t.at_ms);
    DestinationView {
        host: Some(host.into()),
        pixel_id: "CABC123".into(),
        access_token: "…wxyz".into(),
        test_event_code: Some("TEST123".into()),
        offline_event_set_id: Some("7301234567890123456".into()),
        live: true,
        site_origins: vec!["https://shop.com".into(), "https://www.shop.com".into()],
        cookie_domain: Some("shop.com".into()),
        rate_limit_per_minute: 600,
        identity_days: 30,
        kind: DestinationKind::Admin(Box::new(StoredFields {
            baseline_pixel_code: Some("CBASE1".into()),
            event_overrides: BTreeMap::from([("order_placed".into(), "PlaceAnOrder".into())]),
            custom_events: false,
            conversion_events: vec!["Subscribe".into(), "Lead".into()],
            cod_checkout_events: vec!["Checkout".into()],
            cod_days: 45,
            webhook_secret_set: true,
            baselines: Vec::new(),
            updated_ms: NOW,
            last_test,
            test_passed_ms: passed,
        })),
    }
}

fn passed_test() -> LastTest {
    LastTest {
        at_ms: NOW,
        answer: TestAnswer {
            ok: true,
            latency_ms: 187,
            http_status: 200,
            tiktok_code: Some(0),
            message: "Connection test successful!".into(),
            hint: None,
        },
        emq: Some(MatchQuality {
            score: Points(4_250),
            grade: Grade::NeedsImprovement,
            coaching: vec![Coaching {
                factor: Factor::Email,
                gain: Points(3_000),
                advice: "send the customer's email".into(),
            }],
        }),
    }
}

fn page_with(destinations: &[DestinationView], form: Option<Form>) -> String {
    render_dashboard(&DashboardView {
        destinations,
        selected: destinations.first().and_then(|d| d.host.as_deref()),
        health: None,
        parked: None,
        form,
    })
}

/// The opening tag of the element with `id="…"`.
fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id}"));
    let start = html[..at].rfind('<').expect("its tag");
    let end = at + html[at..].find('>').expect("the tag's end");
    &html[start..=end]
}

#[test]
fn every_field_has_its_label_bound_in_the_issues_order() {
    let html = page_with(&[], Some(Form::Add));
    let mut last = 0;
    for (name, label) in form::field_names() {
        let bound = format!("<label for=\"f-{name}\">{label}</label>");
        assert_eq!(html.matches(&bound).count(), 1, "{bound}");
        assert_eq!(
            html.matches(&format!(" id=\"f-{name}\"")).count(),
            1,
            "{name}"
        );
        let at = html.find(&bound).unwrap_or_default();
        assert!(at > last, "{label} comes after the field before it");
        last = at;
    }
    let labels: Vec<&str> = form::field_names().map(|(_, label)| label).collect();
    assert_eq!(
        labels[..6],
        [
            "Site host",
            "Pixel ID",
            "Access Token",
            "Test Event Code",
            "Baseline Pixel Code",
            "Site origins"
        ]
    );
    // The rest is under Advanced, closed.
    let advanced = html
        .find("<details id=\"advanced\"><summary>Advanced</summary>")
        .expect("Advanced");
    assert!(html.find("for=\"f-site_origins\"").unwrap_or_default() < advanced);
    assert!(html.find("for=\"f-cookie_domain\"").unwrap_or_default() > advanced);
    assert!(tag_with_id(&html, "f-site_origins").starts_with("<textarea"));
    assert!(tag_with_id(&html, "f-custom_events").contains("type=\"checkbox\" checked"));
    assert!(tag_with_id(&html, "f-host").contains("autofocus"));
    // Named buttons: Save in the form; Add destination always.
    assert!(html.contains("<button type=\"submit\" class=\"primary\">Save</button>"));
    assert!(html.contains("id=\"add-destination\">Add destination</button>"));
    // A submitted form never goes to a URL: POST to the page, which refuses it.
    assert!(tag_with_id(&html, "destination-form").contains("method=\"post\""));
}

#[test]
fn the_help_says_where_tiktok_keeps_the_pixel_and_the_token() {
    let html = page_with(&[], Some(Form::Add));
    let help = |name: &str| {
        let at = html
            .find(&format!("<small id=\"h-{name}\">"))
            .expect("help");
        html[at..]
            .split("</small>")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert!(help("pixel_id").contains("Ads Manager: Tools → Events → the pixel"));
    let token = help("access_token");
    assert!(token.contains("Events Manager: the pixel → Settings → Generate Access Token"));
    assert!(token.contains("only once"));
    for name in ["pixel_id", "access_token"] {
        let input = tag_with_id(&html, &format!("f-{name}"));
        assert!(input.contains(&format!("aria-describedby=\"h-{name} e-{name}\"")));
    }
}

#[test]
fn the_token_is_never_filled_in_and_the_card_shows_its_last_4() {
    let item = full_destination("t.shop.com", None);
    for form in [Form::Add, Form::Edit(&item)] {
        let html = page_with(std::slice::from_ref(&item), Some(form));
        let input = tag_with_id(&html, "f-access_token");
        assert!(input.contains("type=\"password\""), "{input}");
        assert!(!input.contains("value="), "{input}");
        assert!(html.contains("<dd data-field=\"access_token\">…wxyz</dd>"));
    }
    let html = page_with(std::slice::from_ref(&item), Some(Form::Edit(&item)));
    assert!(html.contains("Stored: …wxyz. Leave it empty to keep it."));
}

#[test]
fn the_edit_form_holds_the_stored_settings() {
    let item = full_destination("t.shop.com", None);
    let html = page_with(std::slice::from_ref(&item), Some(Form::Edit(&item)));
    assert!(html.contains("<h3>Edit t.shop.com</h3>"));
    let form = tag_with_id(&html, "destination-form");
    assert!(
        form.contains("data-mode=\"edit\" data-live=\"true\""),
        "{form}"
    );
    let host = tag_with_id(&html, "f-host");
    assert!(host.contains("value=\"t.shop.com\"") && host.contains("readonly"));
    assert!(tag_with_id(&html, "f-pixel_id").contains("value=\"CABC123\" "));
    assert!(tag_with_id(&html, "f-pixel_id").contains("autofocus"));
    assert!(tag_with_id(&html, "f-baseline_pixel_code").contains("value=\"CBASE1\""));
    assert!(tag_with_id(&html, "f-offline_event_set_id").contains("value=\"7301234567890123456\""));
    assert!(tag_with_id(&html, "f-rate_limit_per_minute").contains("value=\"600\""));
    assert!(tag_with_id(&html, "f-identity_days").contains("value=\"30\""));
    assert!(html.contains("<dd data-field=\"identity_days\">30</dd>"));
    let off = DestinationView {
        identity_days: 0,
        ..full_destination("t.shop.com", None)
    };
    let off_page = page_with(std::slice::from_ref(&off), None);
    assert!(off_page.contains("<dd data-field=\"identity_days\">off</dd>"));
    assert!(tag_with_id(&html, "f-cookie_domain").contains("value=\"shop.com\""));
    assert!(!tag_with_id(&html, "f-custom_events").contains("checked"));
    for text in [
        ">https://shop.com\nhttps://www.shop.com</textarea>",
        ">order_placed = PlaceAnOrder</textarea>",
        ">Subscribe\nLead</textarea>",
        ">Checkout</textarea>",
        "A secret is set. Leave it empty to keep it.",
    ] {
        assert!(html.contains(text), "{text}");
    }
    assert!(tag_with_id(&html, "f-cod_days").contains("value=\"45\""));
    let secret = tag_with_id(&html, "f-webhook_secret");
    assert!(
        secret.contains("type=\"password\"") && !secret.contains("value="),
        "{secret}"
    );
    assert!(html.find("for=\"f-webhook_secret\"") > html.find("<summary>Advanced</summary>"));
    assert!(html.contains("<a href=\"/admin?host=t.shop.com\">Cancel</a>"));
    // Adding: empty, not live.
    let html = page_with(std::slice::from_ref(&item), Some(Form::Add));
    assert!(
        tag_with_id(&html, "destination-form").contains("data-mode=\"add\" data-live=\"false\"")
    );
    assert!(tag_with_id(&html, "f-pixel_id").contains("value=\"\""));
}

#[test]
fn each_field_has_its_error_slot_right_after_it() {
    let html = page_with(&[], Some(Form::Add));
    let names: Vec<&str> = form::field_names().map(|(name, _)| name).collect();
    for (i, name) in names.iter().enumerate() {
        let input = html.find(&format!(" id=\"f-{name}\"")).expect("input");
        let slot = html.find(&format!(" id=\"e-{name}\"")).expect("error slot");
        assert!(slot > input, "{name}");
        if let Some(next) = names.get(i + 1) {
            let next_label = html.find(&format!("for=\"f-{next}\"")).expect("next label");
            assert!(slot < next_label, "the error of {name} is before {next}");
        }
        assert!(tag_with_id(&html, &format!("e-{name}")).contains("role=\"alert\""));
    }
    assert!(html.contains("<p class=\"err\" id=\"e-form\" role=\"alert\"></p>"));
    // The script puts a path's message in `e-<its first segment>`: every settings field
    // the API can name has a slot, nested paths (`site_origins[1]`) included.
    for path_root in [
        "pixel_id",
        "access_token",
        "test_event_code",
        "baseline_pixel_code",
        "offline_event_set_id",
        "site_origins",
        "cookie_domain",
        "event_overrides",
        "custom_events",
        "rate_limit_per_minute",
        "conversion_events",
        "identity_days",
        "host",
    ] {
        assert!(names.contains(&path_root), "{path_root}");
    }
    assert!(JS.contains("$('e-' + m[1])"));
}

#[test]
fn the_first_run_opens_on_the_add_form() {
    let none: &[DestinationView] = &[];
    assert!(matches!(form_for(none, None, false), Some(Form::Add)));
    let html = page_with(none, form_for(none, None, false));
    assert!(html.contains("<h3>Add destination</h3>"));
    assert!(html.contains("Connect your first shop"));
    assert!(!html.contains(">Cancel</a>"), "nowhere to go back to");
    assert!(tag_with_id(&html, "f-host").contains("autofocus"));

    let stored = [full_destination("t.shop.com", None)];
    assert!(form_for(&stored, None, false).is_none());
    assert!(matches!(form_for(&stored, None, true), Some(Form::Add)));
    assert!(matches!(
        form_for(&stored, Some("t.shop.com"), false),
        Some(Form::Edit(d)) if d.host.as_deref() == Some("t.shop.com")
    ));
    assert!(form_for(&stored, Some("t.unknown.com"), false).is_none());
    // A default from the vars is no first run, and cannot be edited here.
    let vars = [destination(Some("localhost"), DestinationKind::Vars)];
    assert!(form_for(&vars, None, false).is_none());
    assert!(form_for(&vars, Some("localhost"), false).is_none());
    let html = page_with(&vars, None);
    assert!(!html.contains("id=\"destination-form\""));
    assert!(!html.contains(">Edit</button>") && !html.contains(">Delete</button>"));
}

#[test]
fn the_card_has_its_buttons_and_keeps_the_last_test() {
    let item = full_destination("t.shop.com", Some(passed_test()));
    let html = page_with(std::slice::from_ref(&item), None);
    for button in [
        ">Test</button>",
        ">Edit</button>",
        ">Delete</button>",
        ">Copy</button>",
    ] {
        assert_eq!(html.matches(button).count(), 1, "{button}");
    }
    assert!(html.contains("aria-label=\"Live\" data-action=\"live\" data-host=\"t.shop.com\" data-live=\"true\" data-tested=\"true\""));
    assert!(html.contains("name=\"edit\" value=\"t.shop.com\""));
    let result = html
        .split("id=\"test-result-t.shop.com\" aria-live=\"polite\">")
        .nth(1)
        .and_then(|rest| rest.split("</div></div>").next())
        .expect("the result");
    for text in [
        "Connection test successful!",
        "187 ms · HTTP 200 · TikTok code 0",
        "EMQ 42.5 (needs improvement)",
        "<li>email +30: send the customer&#39;s email</li>",
        "Tested 2025-11-24 16:00 UTC",
    ] {
        assert!(result.contains(text), "{text} in {result}");
    }

    // A failure: TikTok's code, message and hint; never passed, so the switch asks.
    let failed = LastTest {
        answer: TestAnswer {
            ok: false,
            tiktok_code: Some(40001),
            message: "Access token is invalid".into(),
            hint: Some("Regenerate the access token in Events Manager.".into()),
            ..passed_test().answer
        },
        emq: None,
        ..passed_test()
    };
    let item = full_destination("t.shop.com", Some(failed));
    let html = page_with(std::slice::from_ref(&item), None);
    assert!(html.contains("data-tested=\"false\""));
    for text in [
        "<span class=\"badge bad\">Failed</span> Access token is invalid",
        "TikTok code 40001",
        "<div class=\"warn\">Regenerate the access token in Events Manager.</div>",
    ] {
        assert!(html.contains(text), "{text}");
    }
    assert!(!html.contains("successful"));
    assert!(JS.contains("has never passed a connection test"));
    assert!(JS.contains("dataset.tested !== 'true'"));
}

#[test]
fn the_install_snippet_is_the_readme_s_with_the_host_as_endpoint() {
    let readme = include_str!("../../../README.md");
    let snippet = cards::snippet("t.shop.com");
    assert!(
        readme.contains(&snippet),
        "README's Install snippet changed:\n{snippet}"
    );
    let html = page_with(&[full_destination("t.other-shop.com", None)], None);
    let shown = html
        .split("<pre id=\"snippet-t.other-shop.com\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .expect("the snippet");
    assert!(
        shown.contains("ttedge(&#39;init&#39;, { endpoint: &#39;https://t.other-shop.com&#39; });")
    );
    assert!(shown.contains("src=&quot;https://t.other-shop.com/sdk.js&quot;"));
    assert!(html.contains("data-action=\"copy\" data-target=\"snippet-t.other-shop.com\">Copy"));
    assert!(html.contains("Custom HTML") && html.contains("Initialization – All Pages"));
    assert!(JS.contains("navigator.clipboard.writeText") && JS.contains("execCommand('copy')"));
}

#[test]
fn every_user_value_is_escaped_in_the_card_and_the_form() {
    let nasty = |tag: &str| format!("\"'><{tag}>x</{tag}>");
    let mut item = full_destination(&nasty("h1"), None);
    item.pixel_id = nasty("b");
    item.access_token = nasty("i");
    item.test_event_code = Some(nasty("u"));
    item.site_origins = vec![nasty("s"), "</textarea><em>o</em>".into()];
    item.cookie_domain = Some(nasty("q"));
    if let DestinationKind::Admin(stored) = &mut item.kind {
        stored.baseline_pixel_code = Some(nasty("kbd"));
        stored.event_overrides = BTreeMap::from([(nasty("dfn"), nasty("var"))]);
        stored.conversion_events = vec![nasty("samp")];
        stored.last_test = Some(LastTest {
            answer: TestAnswer {
                message: nasty("mark"),
                hint: Some(nasty("small")),
                ..passed_test().answer
            },
            emq: Some(MatchQuality {
                coaching: vec![Coaching {
                    factor: Factor::Phone,
                    gain: Points(2_500),
                    advice: nasty("sub"),
                }],
                ..passed_test().emq.expect("an EMQ")
            }),
            ..passed_test()
        });
    }
    let html = page_with(std::slice::from_ref(&item), Some(Form::Edit(&item)));
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    for tag in [
        "h1", "b", "i", "u", "s", "q", "kbd", "dfn", "var", "samp", "mark", "sub", "em",
    ] {
        assert!(!html.contains(&format!("<{tag}>")), "<{tag}> got through");
    }
    assert!(!html.contains("</textarea><em>"));
    assert!(html.contains("&quot;&#39;&gt;&lt;b&gt;x&lt;/b&gt;"));
}

#[test]
fn the_page_s_script_is_allowed_by_its_hash() {
    let html = sample();
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the script");
    assert_eq!(script, JS);
    let source = script_source();
    assert_eq!(source, ttedge_core::hashing::csp_hash_source(script));
    assert!(source.starts_with("'sha256-") && source.ends_with("='"));
}

#[test]
fn a_stored_destination_imports_baselines_and_charts_them() {
    let html = sample();
    for (name, label) in [
        ("from", "From"),
        ("to", "To"),
        ("pixel_conversions", "Pixel conversions"),
    ] {
        let bound = format!("<label for=\"b-{name}\">{label}</label><input id=\"b-{name}\"");
        assert_eq!(html.matches(&bound).count(), 1, "{bound}");
        assert!(html.contains(&format!(
            "<p class=\"err\" id=\"eb-{name}\" role=\"alert\">"
        )));
    }
    assert!(html.contains("<button type=\"submit\">Import</button>"));
    assert!(tag_with_id(&html, "baseline-form").contains("data-host=\"t.shop.com\""));
    // The chart: one pair of bars per period, with the API's figures, and the delta.
    for (field, value) in [("pixel_conversions", 120), ("server_conversions", 150)] {
        let bar = format!("data-baseline=\"0\" data-field=\"{field}\" data-value=\"{value}\"");
        assert_eq!(html.matches(&bar).count(), 1, "{bar}");
    }
    assert!(html.contains("text-anchor=\"middle\">-30</text>"));
    assert!(JS.contains("'/baseline'") && JS.contains("$('eb-' + "));

    // The default from the vars has no baselines of its own: no form.
    let page = render_dashboard(&DashboardView {
        destinations: &destinations(),
        selected: Some("t.other.com"),
        health: Some(&health()),
        parked: None,
        form: None,
    });
    assert!(!page.contains("id=\"baseline-form\""));
    assert!(
        page.contains("data-baseline=\"0\""),
        "the chart still shows"
    );
}
