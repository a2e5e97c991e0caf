//! The page's frame and the order of its sections: the head with the inline CSS, the bar
//! with the destination selector, then destinations, health, charts, quality and parked
//! events. The cards and charts themselves are [`super::cards`]' and [`super::charts`]'.

use super::cards;
use super::charts::{self, Style, ERRORS, LATENCY, VOLUME};
use super::format::{escape, query_value, utc};
use super::{DashboardView, CSS};
use crate::dispatcher::report::Health;

/// `<!doctype html>` up to `<body>`, with the CSS inline: the page loads nothing else.
pub fn open_page(out: &mut String, title: &str) {
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
pub fn header(out: &mut String, view: &DashboardView) {
    out.push_str("<header><strong>ttedge</strong><nav aria-label=\"Destinations\">");
    for host in view.destinations.iter().filter_map(|d| d.host.as_deref()) {
        let current = if view.selected == Some(host) {
            " aria-current=\"page\""
        } else {
            ""
        };
        put!(
            out,
            "<a href=\"/admin?host={}\"{current}>{}</a>",
            escape(&query_value(host)),
            escape(host)
        );
    }
    out.push_str(
        "</nav><form method=\"post\" action=\"/admin/logout\"><button>Log out</button></form>\
         </header>",
    );
}

/// No destination at all: none stored and no default from the vars.
pub fn first_run(view: &DashboardView) -> bool {
    view.destinations.is_empty()
}

/// Every destination with a host, as a card, after the Add button; a note when there is none.
pub fn destinations(out: &mut String, view: &DashboardView) {
    out.push_str(
        "<div class=\"row\"><h2>Destinations</h2><form method=\"get\" action=\"/admin\">\
         <input type=\"hidden\" name=\"add\" value=\"1\">\
         <button class=\"primary\" id=\"add-destination\">Add destination</button></form></div>\
         <div class=\"grid\">",
    );
    let mut any = false;
    for item in view.destinations {
        let Some(host) = item.host.as_deref() else {
            continue;
        };
        any = true;
        cards::destination_card(out, item, host, view.selected == Some(host));
    }
    if !any {
        out.push_str("<p class=\"card muted\">No destinations are configured yet.</p>");
    }
    out.push_str("</div>");
}

/// The selected host's health: now and the three windows, the hourly charts, then match
/// quality, recovery and recent errors.
pub fn health_sections(out: &mut String, host: &str, health: &Health, stored: bool) {
    put!(
        out,
        "<h2>Health of {} <small>as of {} UTC</small></h2><div class=\"grid\">",
        escape(host),
        utc(health.now_ms)
    );
    cards::now_card(out, &health.current);
    for (key, title, window) in cards::windows(&health.windows) {
        cards::window_card(out, key, title, window);
    }
    out.push_str(
        "</div><h2>Hourly, last 25 hours <small>UTC</small></h2><div class=\"grid charts\">",
    );
    let hourly = &health.hourly;
    charts::chart_card(out, "Volume (events)", hourly, &VOLUME, Style::Bars);
    charts::chart_card(out, "Errors (events, calls)", hourly, &ERRORS, Style::Bars);
    charts::chart_card(out, "Latency (ms)", hourly, &LATENCY, Style::Lines);
    out.push_str("</div><h2>Quality and recovery</h2><div class=\"grid charts\">");
    cards::emq_card(out, &health.emq, &health.identity);
    cards::recovery_card(out, &health.recovery, stored.then_some(host));
    cards::errors_card(out, &health.current);
    out.push_str("</div>");
}

/// Said instead of the health when the Dispatcher could not answer.
pub fn health_unavailable(out: &mut String, host: &str) {
    put!(
        out,
        "<h2>Health</h2><p class=\"card bad\">The health of {} is not available right now.</p>",
        escape(host)
    );
}
