//! The inline SVG charts: the three hourly charts drawn from `Health.hourly`, the EMQ
//! histogram and the rate-window meter. Computed here, so the page loads no chart library.
//!
//! Every hourly bar and point carries `data-series` (its field in `hourly[]`),
//! `data-hour-ms` and `data-value`, the exact figure, so a test reads the chart as data.

use ttedge_core::destination::BaselineRecovery;
use ttedge_core::health::{HourPoint, HOUR_MS};

use super::format::{escape, utc};

/// One set of bars or one line of an hourly chart.
pub struct Series {
    /// Its field in `health.hourly[]`, written as `data-series`.
    pub key: &'static str,
    /// The legend.
    pub label: &'static str,
    /// The colour class (`k1`…`k7` in the CSS).
    pub class: &'static str,
    /// The hour's figure; `None` for a gap (a latency without calls).
    pub value: fn(&HourPoint) -> Option<u64>,
}

/// Events received and delivered, per hour.
pub const VOLUME: [Series; 2] = [
    Series {
        key: "received",
        label: "Received",
        class: "k1",
        value: |h| Some(h.received),
    },
    Series {
        key: "delivered",
        label: "Delivered",
        class: "k2",
        value: |h| Some(h.delivered),
    },
];

/// Events parked and failed calls, per hour.
pub const ERRORS: [Series; 2] = [
    Series {
        key: "parked",
        label: "Parked",
        class: "k3",
        value: |h| Some(h.parked),
    },
    Series {
        key: "failed_calls",
        label: "Failed calls",
        class: "k4",
        value: |h| Some(h.failed_calls),
    },
];

/// Call latency percentiles, per hour, in ms.
pub const LATENCY: [Series; 3] = [
    Series {
        key: "p50",
        label: "p50",
        class: "k5",
        value: |h| h.p50,
    },
    Series {
        key: "p95",
        label: "p95",
        class: "k6",
        value: |h| h.p95,
    },
    Series {
        key: "p99",
        label: "p99",
        class: "k7",
        value: |h| h.p99,
    },
];

/// How a chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Grouped bars: counts, where every hour has a figure.
    Bars,
    /// Lines with a dot per hour, broken at hours without a figure: latencies.
    Lines,
}

/// A card with a legend and an hourly chart; "No hourly data yet." without hours.
pub fn chart_card(
    out: &mut String,
    title: &str,
    hourly: &[HourPoint],
    series: &[Series],
    style: Style,
) {
    put!(
        out,
        "<section class=\"card\"><h3>{title}</h3><div class=\"legend\">"
    );
    for s in series {
        put!(out, "<span><i class=\"{}\"></i>{}</span>", s.class, s.label);
    }
    out.push_str("</div>");
    if hourly.is_empty() {
        out.push_str("<p class=\"muted\">No hourly data yet.</p>");
    } else {
        hourly_svg(out, title, hourly, series, style);
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

/// One slot per hour, the axis top rounded to 1, 2 or 5 × 10ⁿ, an hour label every 6 hours.
fn hourly_svg(
    out: &mut String,
    title: &str,
    hourly: &[HourPoint],
    series: &[Series],
    style: Style,
) {
    let n = hourly.len() as i64;
    let slot = (PLOT_W / n).max(1);
    let highest = hourly
        .iter()
        .flat_map(|h| series.iter().filter_map(|s| (s.value)(h)))
        .max()
        .unwrap_or(0);
    let top = nice_ceil(highest);
    // Heights in integer arithmetic: exact for any u64, no float formatting.
    let y = |v: u64| {
        let height = (u128::from(v) * PLOT_H as u128 + u128::from(top) / 2) / u128::from(top);
        PLOT_TOP + PLOT_H - (height.min(PLOT_H as u128) as i64)
    };
    let right = PLOT_LEFT + n * slot;
    put!(
        out,
        "<svg viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    );
    for (at, label) in [(PLOT_TOP, top), (PLOT_TOP + PLOT_H, 0)] {
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
    for (i, hour) in hourly.iter().enumerate() {
        let hour_of_day = hour.hour_ms / HOUR_MS % 24;
        if hour_of_day % 6 == 0 {
            let x = PLOT_LEFT + i as i64 * slot + slot / 2;
            put!(
                out,
                "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{hour_of_day:02}:00</text>",
                CHART_H - 6
            );
        }
    }
    let k = series.len() as i64;
    let width = (slot * 8 / 10 / k.max(1)).max(1);
    for (j, s) in series.iter().enumerate() {
        let mut line = String::new();
        for (i, hour) in hourly.iter().enumerate() {
            let Some(v) = (s.value)(hour) else {
                // A gap: a line restarts after it.
                close_line(out, &mut line, s.class);
                continue;
            };
            let data = format!(
                "data-series=\"{}\" data-hour-ms=\"{}\" data-value=\"{v}\"",
                s.key, hour.hour_ms
            );
            let tip = format!("<title>{} · {} {v}</title>", utc(hour.hour_ms), s.label);
            let slot_x = PLOT_LEFT + i as i64 * slot;
            match style {
                Style::Bars => {
                    let x = slot_x + (slot - width * k) / 2 + j as i64 * width;
                    let top_y = y(v);
                    let height = PLOT_TOP + PLOT_H - top_y;
                    put!(
                        out,
                        "<rect class=\"{}\" x=\"{x}\" y=\"{top_y}\" width=\"{width}\" \
                         height=\"{height}\" {data}>{tip}</rect>",
                        s.class
                    );
                }
                Style::Lines => {
                    let (cx, cy) = (slot_x + slot / 2, y(v));
                    put!(line, "{cx},{cy} ");
                    put!(
                        out,
                        "<circle class=\"{}\" cx=\"{cx}\" cy=\"{cy}\" r=\"2.5\" {data}>{tip}</circle>",
                        s.class
                    );
                }
            }
        }
        close_line(out, &mut line, s.class);
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

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (at least 1): a round top for an axis.
pub fn nice_ceil(v: u64) -> u64 {
    let mut step: u64 = 1;
    loop {
        for factor in [1, 2, 5] {
            match step.checked_mul(factor) {
                Some(top) if top >= v => return top,
                Some(_) => {}
                None => return v.max(1),
            }
        }
        match step.checked_mul(10) {
            Some(next) => step = next,
            None => return v.max(1),
        }
    }
}

/// The EMQ histogram: 10 bins of 10 points, each count above its bar
/// (`data-metric="emq.histogram.<bin>"`), the bin bounds below.
pub fn emq_histogram(out: &mut String, histogram: &[u64; 10]) {
    let highest = histogram.iter().copied().max().unwrap_or(0).max(1);
    out.push_str("<svg viewBox=\"0 0 360 124\" role=\"img\" aria-label=\"EMQ histogram\">");
    for (i, &count) in histogram.iter().enumerate() {
        let x = 10 + i as i64 * 34;
        let height = ((u128::from(count) * 80 + u128::from(highest) / 2) / u128::from(highest))
            .min(80) as i64;
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
            bound = x - 2,
        );
    }
    out.push_str("<text x=\"350\" y=\"112\" text-anchor=\"middle\">100</text></svg>");
}

/// The rate window as a bar: green, amber from 80 %, red when full.
pub fn rate_meter(out: &mut String, used: u32, limit: u32) {
    if limit == 0 {
        return;
    }
    let width = (u64::from(used) * 100 / u64::from(limit)).min(100);
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

/// Pixel against server conversions per imported period, as pairs of bars. Each bar
/// carries `data-baseline` (its index in `recovery.baselines`), `data-field` and
/// `data-value`; the delta is written above each pair.
pub fn baseline_chart(out: &mut String, baselines: &[BaselineRecovery]) {
    if baselines.is_empty() {
        return;
    }
    let highest = baselines
        .iter()
        .map(|b| b.pixel_conversions.max(b.server_conversions))
        .max()
        .unwrap_or(0);
    let top = nice_ceil(highest);
    let slot = 340 / baselines.len().max(1) as u64;
    let bar = (slot.saturating_sub(6) / 2).clamp(1, 40);
    out.push_str(
        "<div class=\"legend\"><span><i class=\"k1\"></i>Pixel</span>\
         <span><i class=\"k2\"></i>Server</span></div>\
         <svg viewBox=\"0 0 360 124\" role=\"img\" aria-label=\"Pixel and server conversions per period\">",
    );
    for (i, b) in baselines.iter().enumerate() {
        let x = 10 + i as u64 * slot + slot.saturating_sub(2 * bar) / 2;
        for (j, (field, class, value)) in [
            ("pixel_conversions", "k1", b.pixel_conversions),
            ("server_conversions", "k2", b.server_conversions),
        ]
        .into_iter()
        .enumerate()
        {
            let height =
                ((u128::from(value) * 80 + u128::from(top) / 2) / u128::from(top)).min(80) as u64;
            put!(
                out,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{height}\" \
                 data-baseline=\"{i}\" data-field=\"{field}\" data-value=\"{value}\"/>",
                x + j as u64 * bar,
                96 - height
            );
        }
        put!(
            out,
            "<text x=\"{mid}\" y=\"10\" text-anchor=\"middle\">{sign}{}</text>\
             <text x=\"{mid}\" y=\"112\" text-anchor=\"middle\">{}</text>",
            b.delta,
            escape(b.from.get(5..).unwrap_or(&b.from)),
            mid = x + bar,
            sign = if b.delta > 0 { "+" } else { "" },
        );
    }
    out.push_str("</svg>");
}
