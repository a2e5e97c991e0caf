//! The operator dashboard at `GET /admin`: one HTML page rendered by the Worker.
//!
//! Everything is inline (CSS, script, SVG charts computed here), so the page loads nothing
//! from another host. The inputs are the admin API's JSON answers rather than storage
//! structs: the page depends only on the API's shape, and any field may be missing or null,
//! which shows as "–".
//!
//! Every figure carries `data-metric="<its JSON path>"` (such as `last_24h.delivered` or
//! `recovery.baselines.0.delta`) and its exact value as text:
//!
//! - counts and latencies (ms) as integers;
//! - rates and shares as percentages with one decimal and no `%` sign (`97.3` for 0.973);
//! - the EMQ mean and the factor gains with one decimal;
//! - the oldest queued event's age in whole seconds, as `current.oldest_queued_age_s`.
//!
//! Floats are formatted with integer arithmetic, and the CSS and script stay small: the
//! Worker's wasm has a size budget.

use std::fmt::{self, Write};

use serde_json::Value;

/// `write!` into a `String`, which cannot fail.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

const CSS: &str = include_str!("dashboard.css");
const JS: &str = include_str!("dashboard.js");

/// Shown for a missing or null figure.
const NONE: &str = "–";
const HOUR_MS: u64 = 3_600_000;

/// The health windows, by their key in `health.windows`.
const WINDOWS: [(&str, &str); 3] = [
    ("last_hour", "Last hour"),
    ("last_24h", "Last 24 hours"),
    ("last_7d", "Last 7 days"),
];

/// The event counts of a window card.
const COUNTS: [(&str, &str); 8] = [
    ("received", "Received"),
    ("delivered", "Delivered"),
    ("retried", "Retried"),
    ("parked", "Parked"),
    ("held", "Held (consent)"),
    ("skipped", "Skipped"),
    ("not_live", "Not live"),
    ("rejected", "Rejected"),
];

/// One line or set of bars of an hourly chart: its key in `health.hourly[]`, its legend and
/// its colour class (`k1`…`k7` in the CSS).
struct Series(&'static str, &'static str, &'static str);

const VOLUME: [Series; 2] = [
    Series("received", "Received", "k1"),
    Series("delivered", "Delivered", "k2"),
];
const ERRORS: [Series; 2] = [
    Series("parked", "Parked", "k3"),
    Series("failed_calls", "Failed calls", "k4"),
];
const LATENCY: [Series; 3] = [
    Series("p50", "p50", "k5"),
    Series("p95", "p95", "k6"),
    Series("p99", "p99", "k7"),
];

/// What one dashboard page shows.
pub struct DashboardView<'a> {
    /// Items as `GET /admin/api/destinations` lists them.
    pub destinations: &'a [Value],
    /// The host whose health is shown; `None` when there are no destinations.
    pub selected: Option<&'a str>,
    /// `GET /admin/api/destinations/{host}/health` of the selected host.
    pub health: Option<&'a Value>,
    /// First page of `GET /admin/api/destinations/{host}/parked`.
    pub parked: Option<&'a Value>,
}

/// The dashboard page: destinations with their live switch and connection test, then the
/// selected host's health, charts, match quality, recovery, recent errors and parked events.
pub fn render_dashboard(view: &DashboardView) -> String {
    let mut out = String::with_capacity(48 * 1024);
    let title = view
        .selected
        .map_or("ttedge".into(), |h| format!("ttedge · {h}"));
    open_page(&mut out, &title);
    header(&mut out, view);
    out.push_str("<main><p id=\"flash\" class=\"flash\" role=\"status\"></p>");
    destinations(&mut out, view);
    if let Some(host) = view.selected {
        match view.health {
            Some(health) => health_sections(&mut out, host, health),
            None => put!(
                out,
                "<h2>Health</h2><p class=\"card bad\">The health of {} is not available right now.</p>",
                escape(host)
            ),
        }
        parked(&mut out, host, view.parked);
    }
    put!(out, "</main><script>{JS}</script></body></html>");
    out
}

/// The login page: one password field `token`, posted form-urlencoded to `/admin/login`;
/// `message` (such as "Wrong token") is shown above it.
pub fn render_login(message: Option<&str>) -> String {
    let mut out = String::with_capacity(CSS.len() + 1024);
    open_page(&mut out, "ttedge · sign in");
    out.push_str("<main class=\"login\"><section class=\"card\"><h3>ttedge admin</h3>");
    if let Some(message) = message {
        put!(
            out,
            "<p class=\"flash bad\" role=\"alert\">{}</p>",
            escape(message)
        );
    }
    out.push_str(
        "<form method=\"post\" action=\"/admin/login\"><label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus><button class=\"primary\">Sign in</button></form></section></main>\
         </body></html>",
    );
    out
}

fn open_page(out: &mut String, title: &str) {
    put!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title><style>{CSS}</style>\
         </head><body>",
        escape(title)
    );
}

/// The bar on top: the destination selector and "Log out".
fn header(out: &mut String, view: &DashboardView) {
    out.push_str("<header><strong>ttedge</strong><nav aria-label=\"Destinations\">");
    for host in view.destinations.iter().filter_map(|d| d["host"].as_str()) {
        let current = if view.selected == Some(host) {
            " aria-current=\"page\""
        } else {
            ""
        };
        put!(
            out,
            "<a href=\"/admin?host={}\"{current}>{}</a>",
            escape(&query_component(host)),
            escape(host)
        );
    }
    out.push_str(
        "</nav><form method=\"post\" action=\"/admin/logout\"><button>Log out</button></form>\
         </header>",
    );
}

fn destinations(out: &mut String, view: &DashboardView) {
    out.push_str("<h2>Destinations</h2><div class=\"grid\">");
    let mut any = false;
    for item in view.destinations {
        let Some(host) = item["host"].as_str() else {
            continue;
        };
        any = true;
        let class = if view.selected == Some(host) {
            "card sel"
        } else {
            "card"
        };
        let vars = item["source"].as_str() == Some("vars");
        put!(
            out,
            "<section class=\"{class}\"><a href=\"/admin?host={}\"><strong>{}</strong></a> \
             <span class=\"badge\">{}</span><dl>",
            escape(&query_component(host)),
            escape(host),
            if vars { "wrangler.toml vars" } else { "admin" }
        );
        let origins: Vec<&str> = item["site_origins"]
            .as_array()
            .map(|all| all.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (label, text) in [
            ("Pixel", text(&item["pixel_id"])),
            ("Access token", text(&item["access_token"])),
            ("Test event code", text(&item["test_event_code"])),
            ("Site origins", origins.join(", ")),
            ("Rate limit / min", int(&item["rate_limit_per_minute"])),
            ("Updated (UTC)", utc(&item["updated_ms"])),
        ] {
            put!(out, "<dt>{label}</dt><dd>{}</dd>", escape(&text));
        }
        out.push_str("</dl><div class=\"row\">");
        if vars {
            // Destinations from vars have no switch: they are always live.
            out.push_str("<span class=\"badge ok\">Always live</span>");
        } else {
            let live = item["live"].as_bool().unwrap_or(false);
            put!(
                out,
                "<button class=\"sw\" role=\"switch\" aria-checked=\"{live}\" aria-label=\"Live\" \
                 data-action=\"live\" data-host=\"{}\" data-live=\"{live}\"></button><span>{}</span>",
                escape(host),
                if live { "Live" } else { "Not live" }
            );
        }
        put!(
            out,
            "<button class=\"primary\" data-action=\"test\" data-host=\"{0}\">Test</button></div>\
             <div class=\"result\" id=\"test-result-{0}\" aria-live=\"polite\"></div></section>",
            escape(host)
        );
    }
    if !any {
        out.push_str("<p class=\"card muted\">No destinations are configured yet.</p>");
    }
    out.push_str("</div>");
}

fn health_sections(out: &mut String, host: &str, health: &Value) {
    put!(
        out,
        "<h2>Health of {} <small>as of {} UTC</small></h2><div class=\"grid\">",
        escape(host),
        utc(&health["now_ms"])
    );
    now_card(out, &health["current"]);
    for (key, title) in WINDOWS {
        window_card(out, key, title, &health["windows"][key]);
    }
    out.push_str(
        "</div><h2>Hourly, last 25 hours <small>UTC</small></h2><div class=\"grid charts\">",
    );
    let hourly = health["hourly"].as_array().map_or(&[][..], Vec::as_slice);
    chart_card(out, "Volume (events)", hourly, &VOLUME, true);
    chart_card(out, "Errors (events, calls)", hourly, &ERRORS, true);
    chart_card(out, "Latency (ms)", hourly, &LATENCY, false);
    out.push_str("</div><h2>Quality and recovery</h2><div class=\"grid charts\">");
    emq_card(out, &health["emq"]);
    recovery_card(out, &health["recovery"]);
    errors_card(out, &health["current"]["last_errors"]);
    out.push_str("</div>");
}

/// Queue, parked events and the token's rate window at this moment.
fn now_card(out: &mut String, current: &Value) {
    out.push_str("<section class=\"card\"><h3>Now</h3><div class=\"big\">");
    let (depth, parked) = (int(&current["queue_depth"]), int(&current["parked"]));
    figure(out, "current.queue_depth", &depth, "");
    out.push_str("</div><small>events queued</small><dl>");
    row(out, "Parked", "current.parked", &parked, "");
    let age = current["oldest_queued_age_ms"]
        .as_f64()
        .filter(|ms| ms.is_finite())
        .map_or(NONE.into(), |ms| ((ms / 1000.0).floor() as i64).to_string());
    let name = "current.oldest_queued_age_s";
    row(out, "Oldest queued", name, &age, " s");
    let window = &current["rate_window"];
    out.push_str("<dt>Rate window</dt><dd>");
    figure(out, "current.rate_window.used", &int(&window["used"]), "");
    out.push_str(" / ");
    figure(out, "current.rate_window.limit", &int(&window["limit"]), "");
    out.push_str("</dd></dl>");
    if let (Some(used), Some(limit)) = (window["used"].as_f64(), window["limit"].as_f64()) {
        if limit > 0.0 {
            let width = (used / limit * 100.0).clamp(0.0, 100.0) as i64;
            let class = match width {
                0..=79 => "k2",
                80..=99 => "k4",
                _ => "k3",
            };
            put!(
                out,
                "<svg class=\"meter\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\">\
                 <rect class=\"{class}\" width=\"{width}\" height=\"6\"/></svg>"
            );
        }
    }
    out.push_str("</section>");
}

fn window_card(out: &mut String, key: &str, title: &str, window: &Value) {
    let success = &window["success_rate"];
    let tone = match success.as_f64() {
        Some(rate) if rate >= 0.99 => " ok",
        Some(rate) if rate >= 0.9 => " warn",
        Some(_) => " bad",
        None => "",
    };
    put!(
        out,
        "<section class=\"card\"><h3>{title}</h3><div class=\"big{tone}\">"
    );
    figure(out, &format!("{key}.success_rate"), &pct(success), "%");
    out.push_str(
        "</div><small title=\"delivered ÷ (delivered + parked)\">success rate</small><dl>",
    );
    let error_rate = pct(&window["error_rate"]);
    row(
        out,
        "Error rate (calls)",
        &format!("{key}.error_rate"),
        &error_rate,
        "%",
    );
    for (field, label) in COUNTS {
        row(
            out,
            label,
            &format!("{key}.{field}"),
            &int(&window[field]),
            "",
        );
    }
    for p in ["p50", "p95", "p99"] {
        let name = format!("{key}.{p}");
        row(out, &format!("Latency {p}"), &name, &int(&window[p]), " ms");
    }
    out.push_str("</dl></section>");
}

fn chart_card(out: &mut String, title: &str, hourly: &[Value], series: &[Series], bars: bool) {
    put!(
        out,
        "<section class=\"card\"><h3>{title}</h3><div class=\"legend\">"
    );
    for Series(_, label, class) in series {
        put!(out, "<span><i class=\"{class}\"></i>{label}</span>");
    }
    out.push_str("</div>");
    if hourly.is_empty() {
        out.push_str("<p class=\"muted\">No hourly data yet.</p>");
    } else {
        hourly_svg(out, title, hourly, series, bars);
    }
    out.push_str("</section>");
}

// Geometry of the hourly charts, in SVG user units.
const CHART_W: i64 = 400;
const CHART_H: i64 = 150;
const PLOT_LEFT: i64 = 36;
const PLOT_TOP: i64 = 8;
const PLOT_W: i64 = 350;
const PLOT_H: i64 = 118;

/// Grouped bars or polylines (broken where a value is null), one slot per hour, with the
/// axis top rounded to 1, 2 or 5 × 10ⁿ and an hour label every 6 hours.
fn hourly_svg(out: &mut String, title: &str, hourly: &[Value], series: &[Series], bars: bool) {
    let n = hourly.len() as i64;
    let slot = (PLOT_W / n).max(1);
    let values: Vec<Vec<Option<f64>>> = series
        .iter()
        .map(|Series(key, ..)| {
            let value = |h: &Value| h[*key].as_f64().filter(|v| v.is_finite() && *v >= 0.0);
            hourly.iter().map(value).collect()
        })
        .collect();
    let top = nice_ceil(
        values
            .iter()
            .flatten()
            .flatten()
            .fold(0.0, |a, &b| f64::max(a, b)),
    );
    let y = |v: f64| PLOT_TOP + PLOT_H - ((v / top * PLOT_H as f64).round() as i64).min(PLOT_H);
    let right = PLOT_LEFT + n * slot;
    put!(
        out,
        "<svg viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    );
    for (at, label) in [(PLOT_TOP, top as u64), (PLOT_TOP + PLOT_H, 0)] {
        put!(
            out,
            "<line class=\"grid-line\" x1=\"{PLOT_LEFT}\" x2=\"{right}\" y1=\"{at}\" y2=\"{at}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
            PLOT_LEFT - 6,
            at + 4
        );
    }
    let mid = PLOT_TOP + PLOT_H / 2;
    put!(
        out,
        "<line class=\"grid-line\" x1=\"{PLOT_LEFT}\" x2=\"{right}\" y1=\"{mid}\" y2=\"{mid}\"/>"
    );
    let hours: Vec<Option<u64>> = hourly.iter().map(|h| h["hour_ms"].as_u64()).collect();
    for (i, hour) in hours.iter().enumerate() {
        if let Some(hour_of_day) = hour.map(|ms| ms / HOUR_MS % 24).filter(|h| h % 6 == 0) {
            let x = PLOT_LEFT + i as i64 * slot + slot / 2;
            put!(
                out,
                "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{hour_of_day:02}:00</text>",
                CHART_H - 6
            );
        }
    }
    let k = series.len() as i64;
    let width = (slot * 8 / 10 / k).max(1);
    for (j, (Series(_, label, class), points)) in series.iter().zip(&values).enumerate() {
        let mut line = String::new();
        for (i, (value, hour)) in points.iter().zip(&hours).enumerate() {
            let Some(v) = *value else {
                // A gap: a line restarts after it.
                close_line(out, &mut line, class);
                continue;
            };
            let when = hour.map_or(NONE.into(), |ms| utc(&Value::from(ms)));
            let slot_x = PLOT_LEFT + i as i64 * slot;
            let tip = format!("<title>{when} · {label} {}</title>", int(&Value::from(v)));
            if bars {
                let x = slot_x + (slot - width * k) / 2 + j as i64 * width;
                let top_y = y(v);
                let height = PLOT_TOP + PLOT_H - top_y;
                put!(
                    out,
                    "<rect class=\"{class}\" x=\"{x}\" y=\"{top_y}\" width=\"{width}\" \
                     height=\"{height}\">{tip}</rect>"
                );
            } else {
                let (cx, cy) = (slot_x + slot / 2, y(v));
                put!(line, "{cx},{cy} ");
                put!(
                    out,
                    "<circle class=\"{class}\" cx=\"{cx}\" cy=\"{cy}\" r=\"2.5\">{tip}</circle>"
                );
            }
        }
        close_line(out, &mut line, class);
    }
    out.push_str("</svg>");
}

/// Draws the pending points of a line (when there are two or more) and empties them.
fn close_line(out: &mut String, line: &mut String, class: &str) {
    if line.matches(' ').count() >= 2 {
        put!(
            out,
            "<polyline class=\"ln {class}\" points=\"{}\"/>",
            line.trim_end()
        );
    }
    line.clear();
}

/// Match quality over 7 days: mean, the 10-bin histogram and the factors missing most.
fn emq_card(out: &mut String, emq: &Value) {
    out.push_str(
        "<section class=\"card\"><h3>Event match quality · 7 days</h3><div class=\"big\">",
    );
    figure(out, "emq.mean", &dec1(&emq["mean"]), "");
    out.push_str("</div><small>mean score of 100</small><dl>");
    row(out, "Events scored", "emq.events", &int(&emq["events"]), "");
    let below = pct(&emq["below_threshold_share"]);
    row(
        out,
        "Below threshold",
        "emq.below_threshold_share",
        &below,
        "%",
    );
    out.push_str("</dl>");
    // 10 bins of 34 units; counts above the bars, bin bounds (0, 10, … 100) below.
    let bins: Vec<&Value> = (0..10).map(|i| &emq["histogram"][i]).collect();
    let highest = bins.iter().filter_map(|v| v.as_f64()).fold(1.0, f64::max);
    out.push_str("<svg viewBox=\"0 0 360 124\" role=\"img\" aria-label=\"EMQ histogram\">");
    for (i, bin) in bins.iter().enumerate() {
        let x = 10 + i as i64 * 34;
        let height = bin
            .as_f64()
            .map_or(0, |v| (v.max(0.0) / highest * 80.0).round() as i64);
        let height = height.min(80);
        let top = 96 - height;
        put!(
            out,
            "<rect class=\"k5\" x=\"{x}\" y=\"{top}\" width=\"30\" height=\"{height}\"/>\
             <text x=\"{mid}\" y=\"{label_y}\" text-anchor=\"middle\" \
             data-metric=\"emq.histogram.{i}\">{count}</text>\
             <text x=\"{bound}\" y=\"112\" text-anchor=\"middle\">{}</text>",
            i * 10,
            mid = x + 15,
            label_y = top - 4,
            count = int(bin),
            bound = x - 2,
        );
    }
    out.push_str("<text x=\"350\" y=\"112\" text-anchor=\"middle\">100</text>");
    out.push_str("</svg>");
    let missing = emq["most_missing"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !missing.is_empty() {
        out.push_str(
            "<table><tr><th>Missing most often</th><th class=\"n\">Events</th>\
             <th class=\"n\">Share</th><th class=\"n\">Avg gain</th></tr>",
        );
        for (i, item) in missing.iter().enumerate() {
            // Core's `MissingFactor` serializes the gain as `mean_gain`; accept `gain` too.
            let gain = match &item["mean_gain"] {
                Value::Null => &item["gain"],
                gain => gain,
            };
            put!(
                out,
                "<tr><td>{}</td><td class=\"n\" data-metric=\"emq.most_missing.{i}.events\">{}</td>\
                 <td class=\"n\">",
                escape(&text(&item["factor"])),
                int(&item["events"]),
            );
            let share = pct(&item["share"]);
            figure(out, &format!("emq.most_missing.{i}.share"), &share, "%");
            out.push_str("</td><td class=\"n\">");
            figure(
                out,
                &format!("emq.most_missing.{i}.gain"),
                &dec1(gain),
                " pts",
            );
            out.push_str("</td></tr>");
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

/// Conversions the server delivered that the pixel could not see, and the imported
/// baselines that compare pixel and server conversions per period.
fn recovery_card(out: &mut String, recovery: &Value) {
    out.push_str("<section class=\"card\"><h3>Recovery · 7 days</h3><div class=\"big\">");
    let delivered = int(&recovery["conversions_delivered"]);
    figure(out, "recovery.conversions_delivered", &delivered, "");
    out.push_str("</div><small>conversions delivered by the server</small><dl>");
    let unseen = int(&recovery["unseen_by_pixel"]);
    row(
        out,
        "Unseen by the pixel",
        "recovery.unseen_by_pixel",
        &unseen,
        "",
    );
    let share = pct(&recovery["unseen_share"]);
    row(out, "Share unseen", "recovery.unseen_share", &share, "%");
    out.push_str("</dl>");
    let baselines = recovery["baselines"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if baselines.is_empty() {
        out.push_str("<p class=\"muted\">No pixel baseline imported yet.</p>");
    } else {
        out.push_str(
            "<table><tr><th>Period</th><th class=\"n\">Pixel</th><th class=\"n\">Server</th>\
             <th class=\"n\">Δ</th><th class=\"n\">Recovered</th></tr>",
        );
        for (i, b) in baselines.iter().enumerate() {
            put!(
                out,
                "<tr><td>{} – {}</td>",
                escape(&text(&b["from"])),
                escape(&text(&b["to"]))
            );
            for field in ["pixel_conversions", "server_conversions", "delta"] {
                put!(
                    out,
                    "<td class=\"n\" data-metric=\"recovery.baselines.{i}.{field}\">{}</td>",
                    int(&b[field])
                );
            }
            let recovered = pct(&b["recovered_share"]);
            out.push_str("<td class=\"n\">");
            figure(
                out,
                &format!("recovery.baselines.{i}.recovered_share"),
                &recovered,
                "%",
            );
            out.push_str("</td></tr>");
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

/// The last failed calls, with TikTok's message and the hint on what to do.
fn errors_card(out: &mut String, errors: &Value) {
    out.push_str("<section class=\"card wide\"><h3>Recent errors</h3>");
    let errors = errors.as_array().map_or(&[][..], Vec::as_slice);
    if errors.is_empty() {
        out.push_str("<p class=\"muted\">No failed calls.</p></section>");
        return;
    }
    out.push_str(
        "<table><tr><th>When (UTC)</th><th>Verdict</th><th class=\"n\">Events</th>\
         <th class=\"n\">HTTP</th><th class=\"n\">Code</th><th>Message and hint</th></tr>",
    );
    for e in errors {
        let verdict = match e["verdict"].as_str() {
            Some("retry") => "<span class=\"badge warn\">retried</span>",
            Some("reject") => "<span class=\"badge bad\">parked</span>",
            _ => "<span class=\"badge\">–</span>",
        };
        let status = match e["http_status"].as_u64() {
            Some(0) => "none".into(),
            _ => int(&e["http_status"]),
        };
        put!(
            out,
            "<tr><td>{}</td><td>{verdict}</td><td class=\"n\">{}</td><td class=\"n\">{status}</td>\
             <td class=\"n\">{}</td><td>",
            utc(&e["at_ms"]),
            int(&e["events"]),
            int(&e["tiktok_code"])
        );
        message_and_hint(out, e);
        out.push_str("</td></tr>");
    }
    out.push_str("</table></section>");
}

/// The first page of parked events, each with its Replay button, and "Replay all".
fn parked(out: &mut String, host: &str, page: Option<&Value>) {
    out.push_str("<h2>Parked events</h2><section class=\"card\">");
    let Some(page) = page else {
        out.push_str(
            "<p class=\"bad\">The parked events are not available right now.</p></section>",
        );
        return;
    };
    let events = page["events"].as_array().map_or(&[][..], Vec::as_slice);
    let host = escape(host);
    out.push_str("<div class=\"row\"><span>");
    figure(out, "parked.total", &int(&page["total"]), "");
    out.push_str(" parked</span>");
    if !events.is_empty() {
        put!(
            out,
            "<button data-action=\"replay\" data-host=\"{host}\">Replay all</button>"
        );
    }
    out.push_str("</div>");
    if events.is_empty() {
        out.push_str("</section>");
        return;
    }
    out.push_str(
        "<table><tr><th class=\"n\">#</th><th>Event id</th><th>Event</th><th class=\"n\">HTTP</th>\
         <th class=\"n\">Code</th><th>Message and hint</th><th class=\"n\">Attempts</th>\
         <th>Parked (UTC)</th><th></th></tr>",
    );
    for e in events {
        let id = text(&e["event_id"]);
        put!(
            out,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>",
            int(&e["seq"]),
            escape(&id),
            escape(&text(&e["event_name"])),
            int(&e["http_status"]),
            int(&e["tiktok_code"])
        );
        message_and_hint(out, e);
        put!(
            out,
            "</td><td class=\"n\">{}</td><td>{}</td><td>",
            int(&e["attempts"]),
            utc(&e["parked_at_ms"])
        );
        if e["event_id"].is_string() {
            put!(
                out,
                "<button data-action=\"replay\" data-host=\"{host}\" data-event-id=\"{}\">Replay</button>",
                escape(&id)
            );
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</table>");
    if !page["next_after"].is_null() {
        put!(
            out,
            "<p class=\"muted\">The first {} are shown; Replay all replays every one.</p>",
            events.len()
        );
    }
    out.push_str("</section>");
}

fn message_and_hint(out: &mut String, item: &Value) {
    put!(out, "{}", escape(&text(&item["message"])));
    if let Some(hint) = item["hint"].as_str() {
        put!(out, "<div class=\"warn\">{}</div>", escape(hint));
    }
}

/// `<dt>label</dt><dd>figure</dd>`.
fn row(out: &mut String, label: &str, metric: &str, text: &str, unit: &str) {
    put!(out, "<dt>{label}</dt><dd>");
    figure(out, metric, text, unit);
    out.push_str("</dd>");
}

/// One figure, findable by its `data-metric` name; the unit follows unless it is missing.
fn figure(out: &mut String, metric: &str, text: &str, unit: &str) {
    put!(
        out,
        "<span data-metric=\"{}\">{}</span>",
        escape(metric),
        escape(text)
    );
    if text != NONE {
        out.push_str(unit);
    }
}

/// A string field, or "–".
fn text(value: &Value) -> String {
    value.as_str().unwrap_or(NONE).to_string()
}

/// A count or milliseconds as an exact integer (a float is rounded), or "–".
fn int(value: &Value) -> String {
    if let Some(n) = value.as_u64() {
        n.to_string()
    } else if let Some(n) = value.as_i64() {
        n.to_string()
    } else {
        match value.as_f64().filter(|f| f.is_finite()) {
            Some(f) => (f.round() as i64).to_string(),
            None => NONE.into(),
        }
    }
}

/// A 0–1 ratio as a percentage with one decimal, without the sign: 0.9734 → "97.3".
fn pct(value: &Value) -> String {
    value.as_f64().map_or(NONE.into(), |f| tenths(f * 1000.0))
}

/// A number with one decimal: 63.44 → "63.4".
fn dec1(value: &Value) -> String {
    value.as_f64().map_or(NONE.into(), |f| tenths(f * 10.0))
}

/// Formats `scaled` / 10 with one decimal, without the float formatting machinery.
fn tenths(scaled: f64) -> String {
    if !scaled.is_finite() {
        return NONE.into();
    }
    let t = scaled.round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!("{sign}{}.{}", t / 10, t % 10)
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM` in UTC, or "–".
fn utc(value: &Value) -> String {
    let Some(ms) = value.as_u64().or_else(|| value.as_f64().map(|f| f as u64)) else {
        return NONE.into();
    };
    let (days, minute) = ((ms / 86_400_000) as i64, ms / 60_000 % 1_440);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}",
        minute / 60,
        minute % 60
    )
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (at least 1): a round top for an axis.
fn nice_ceil(v: f64) -> f64 {
    let mut step = 1.0;
    while step < 1e15 {
        for factor in [1.0, 2.0, 5.0] {
            if step * factor >= v {
                return step * factor;
            }
        }
        step *= 10.0;
    }
    v
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            put!(out, "%{b:02X}");
        }
    }
    out
}

/// `s` escaped for HTML text and quoted attribute values; displays without allocating.
fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn destinations() -> Vec<Value> {
        vec![
            json!({"host":"t.shop.com","pixel_id":"CABC123","access_token":"…1234",
                "test_event_code":"TEST123","baseline_pixel_code":null,"live":false,
                "site_origins":["https://shop.com"],"cookie_domain":null,"event_overrides":{},
                "custom_events":true,"rate_limit_per_minute":1000,"conversion_events":[],
                "updated_ms":1_764_000_000_000u64,"source":"admin"}),
            json!({"host":"t.other.com","pixel_id":"CXYZ","access_token":"…9999",
                "test_event_code":null,"live":true,"site_origins":[],"source":"vars"}),
        ]
    }

    fn window(received: u64, p95: u64) -> Value {
        json!({"received":received,"delivered":received - 4,"retried":3,"parked":4,"held":2,
            "skipped":1,"rejected":0,"not_live":5,"requests":20,"calls":20,"failed_calls":1,
            "conversions":9,"conversions_unseen":2,"success_rate":0.97333,"error_rate":0.05,
            "p50":120,"p95":p95,"p99":900,"max":1200})
    }

    fn health() -> Value {
        let hour0 = 1_764_000_000_000u64 - 24 * HOUR_MS;
        let hourly: Vec<Value> = (0..25)
            .map(|i| {
                let busy = i % 5 != 0;
                json!({"hour_ms": hour0 + i * HOUR_MS, "received": i * 7, "delivered": i * 6,
                    "retried": 0, "parked": i % 3, "failed_calls": i % 4, "calls": i,
                    "p50": if busy { json!(100 + i) } else { Value::Null },
                    "p95": if busy { json!(300 + 4 * i) } else { Value::Null },
                    "p99": if busy { json!(700) } else { Value::Null }})
            })
            .collect();
        json!({
            "now_ms": 1_764_000_000_000u64,
            "windows": {"last_hour": window(30, 412), "last_24h": window(154, 450),
                "last_7d": window(1000, 480)},
            "hourly": hourly,
            "current": {
                "last_errors": [{"at_ms": 1_763_999_000_000u64, "verdict": "reject", "events": 3,
                    "http_status": 200, "tiktok_code": 40001,
                    "message": "Invalid \"pixel\" & token",
                    "hint": "<script>alert(1)</script> check the token"}],
                "queue_depth": 7, "parked": 4, "oldest_queued_age_ms": 183_422,
                "rate_window": {"used": 850, "limit": 1000}},
            "emq": {"events": 200, "mean": 63.44,
                "histogram": [0, 1, 2, 5, 10, 30, 50, 60, 30, 12],
                "below_threshold_share": 0.4,
                "most_missing": [{"factor": "phone", "events": 3, "share": 0.015, "mean_gain": 25.0},
                    {"factor": "email", "events": 2, "gain": 12.34}]},
            "recovery": {"conversions_delivered": 9, "unseen_by_pixel": 2, "unseen_share": 0.2222,
                "baselines": [{"from": "2026-11-01", "to": "2026-11-07", "pixel_conversions": 120,
                    "server_conversions": 150, "delta": -30, "recovered_share": 0.25}]}
        })
    }

    fn parked_page() -> Value {
        json!({"events": [{"seq": 1, "event_id": "ord-1\"><img src=x>", "event_name": "CompletePayment",
            "http_status": 200, "tiktok_code": 40002, "message": "bad value",
            "hint": "fix the value", "attempts": 1, "parked_at_ms": 1_763_990_000_000u64}],
            "next_after": null, "total": 1})
    }

    fn sample() -> String {
        let (destinations, health, parked) = (destinations(), health(), parked_page());
        render_dashboard(&DashboardView {
            destinations: &destinations,
            selected: Some("t.shop.com"),
            health: Some(&health),
            parked: Some(&parked),
        })
    }

    /// The text of the element with `data-metric="name"`.
    fn metric<'a>(html: &'a str, name: &str) -> Option<&'a str> {
        let attribute = format!("data-metric=\"{name}\">");
        let start = html.find(&attribute)? + attribute.len();
        html[start..].split('<').next()
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
            ("last_7d.p99", "900"),
            ("current.queue_depth", "7"),
            ("current.parked", "4"),
            ("current.oldest_queued_age_s", "183"),
            ("current.rate_window.used", "850"),
            ("current.rate_window.limit", "1000"),
            ("emq.mean", "63.4"),
            ("emq.events", "200"),
            ("emq.below_threshold_share", "40.0"),
            ("emq.histogram.0", "0"),
            ("emq.histogram.7", "60"),
            ("emq.most_missing.0.events", "3"),
            ("emq.most_missing.0.gain", "25.0"),
            ("emq.most_missing.0.share", "1.5"),
            ("emq.most_missing.1.gain", "12.3"),
            ("emq.most_missing.1.share", NONE),
            ("recovery.conversions_delivered", "9"),
            ("recovery.unseen_by_pixel", "2"),
            ("recovery.unseen_share", "22.2"),
            ("recovery.baselines.0.pixel_conversions", "120"),
            ("recovery.baselines.0.delta", "-30"),
            ("recovery.baselines.0.recovered_share", "25.0"),
            ("parked.total", "1"),
        ];
        for (name, value) in expect {
            assert_eq!(metric(&html, name), Some(value), "{name}");
            assert_eq!(html.matches(&format!("data-metric=\"{name}\"")).count(), 1);
        }
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
            "lines break at null hours"
        );
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
        let dests = vec![json!({"host": nasty, "source": "admin", "live": true})];
        let html = render_dashboard(&DashboardView {
            destinations: &dests,
            selected: Some(nasty),
            health: None,
            parked: None,
        });
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html
            .contains("href=\"/admin?host=x%22%3E%3Cscript%3Ealert%28%27h%27%29%3C%2Fscript%3E\""));
        assert!(html
            .contains("data-host=\"x&quot;&gt;&lt;script&gt;alert(&#39;h&#39;)&lt;/script&gt;\""));
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
            assert!(
                !asset.contains("://") && !asset.contains("url(") && !asset.contains("@import")
            );
        }
    }

    #[test]
    fn missing_and_null_fields_show_a_dash() {
        let nulls = json!({"windows": {"last_hour": {"received": null, "success_rate": null}},
            "hourly": [{"hour_ms": null}, {}], "current": {"last_errors": [{}]},
            "emq": {"histogram": [1, "x"], "most_missing": [{}]},
            "recovery": {"baselines": [{}]}});
        let dests = vec![json!({}), json!({"host": "t.shop.com"}), json!(42)];
        for health in [json!({}), json!(null), json!([1, 2]), nulls] {
            let page = json!({"events": [{}, 7], "next_after": 3});
            let html = render_dashboard(&DashboardView {
                destinations: &dests,
                selected: Some("t.shop.com"),
                health: Some(&health),
                parked: Some(&page),
            });
            for name in [
                "last_hour.received",
                "last_24h.success_rate",
                "last_7d.p95",
                "current.queue_depth",
                "current.oldest_queued_age_s",
                "emq.mean",
                "recovery.unseen_share",
                "parked.total",
            ] {
                assert_eq!(metric(&html, name), Some(NONE), "{name}");
            }
            assert!(html.ends_with("</html>"));
        }
    }

    #[test]
    fn without_destinations_the_page_says_so() {
        let html = render_dashboard(&DashboardView {
            destinations: &[],
            selected: None,
            health: None,
            parked: None,
        });
        assert!(html.contains("No destinations are configured yet."));
        assert!(!html.contains("data-metric"));
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
    fn formats() {
        assert_eq!(pct(&json!(0.97349)), "97.3");
        assert_eq!(pct(&json!(1)), "100.0");
        assert_eq!(pct(&json!(0.0004)), "0.0");
        assert_eq!(dec1(&json!(-2.25)), "-2.3");
        assert_eq!(int(&json!(12.6)), "13");
        assert_eq!(int(&json!(-3)), "-3");
        assert_eq!(int(&json!("12")), NONE);
        assert_eq!(utc(&json!(1_764_000_000_000u64)), "2025-11-24 16:00");
        assert_eq!(utc(&json!(951_782_400_000u64)), "2000-02-29 00:00");
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(1.5), 2.0);
        assert_eq!(nice_ceil(420.0), 500.0);
        assert_eq!(escape("a<b>&\"'").to_string(), "a&lt;b&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn css_and_script_stay_small() {
        assert!(
            CSS.len() + JS.len() <= 8 * 1024,
            "{} bytes",
            CSS.len() + JS.len()
        );
        assert!(!JS.contains("</script"));
        assert!(!JS.contains("innerHTML"));
    }

    /// `TTEDGE_DASHBOARD_SAMPLE=/tmp/dashboard-sample.html cargo test ... dashboard` writes the
    /// sample page there, to look at it in a browser.
    #[test]
    fn sample_page() {
        if let Ok(path) = std::env::var("TTEDGE_DASHBOARD_SAMPLE") {
            std::fs::write(path, sample()).expect("the sample page is written");
        }
    }
}
