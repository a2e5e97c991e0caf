//! The operator dashboard at `GET /admin`: one HTML page rendered by the Worker.
//!
//! Everything is inline (CSS, script, SVG charts computed here), so the page loads nothing
//! from another host. The inputs are the admin API's typed answers — [`Health`],
//! [`ParkedList`] and [`DestinationView`] — the very values the API serialises, so the page
//! and the API cannot drift apart: a field dropped from one is a compile error in the other.
//! A figure without a value (a rate without calls) shows as "–".
//!
//! One file per role: [`layout`] is the frame and the order of the sections, [`cards`] the
//! cards, [`charts`] the SVG charts, [`format`] how numbers, times and text are written.
//!
//! Every figure carries `data-metric="<its JSON path>"` (such as `last_24h.delivered` or
//! `recovery.baselines.0.delta`) and its exact value as text:
//!
//! - counts and latencies (ms) as integers;
//! - rates and shares as percentages with one decimal and no `%` sign (`97.3` for 0.973);
//! - the EMQ mean and the factor gains with one decimal;
//! - the oldest queued event's age in whole seconds, as `current.oldest_queued_age_s`.
//!
//! Every bar and point of the hourly charts carries `data-series`, `data-hour-ms` and
//! `data-value`: the field, hour and figure of `hourly[]` it draws.
//!
//! Floats are formatted with integer arithmetic, and the CSS and script stay small: the
//! Worker's wasm has a size budget.

/// `write!` into a `String`, which cannot fail.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        use ::std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}

mod cards;
mod charts;
mod form;
mod format;
mod layout;
#[cfg(test)]
mod tests;

use crate::admin::views::DestinationView;
use crate::dispatcher::report::{Health, ParkedList};
use format::escape;

/// The page's style sheet, inlined.
const CSS: &str = include_str!("dashboard.css");
/// The page's script (buttons, the live switch and the destination form), inlined.
const JS: &str = include_str!("dashboard.js");

/// The Content-Security-Policy source that allows the page's script and nothing else.
pub fn script_source() -> String {
    ttedge_core::hashing::csp_hash_source(JS)
}

/// What one dashboard page shows.
pub struct DashboardView<'a> {
    /// The destinations as `GET /admin/api/destinations` lists them, the default last.
    pub destinations: &'a [DestinationView],
    /// The host whose health is shown; `None` when there are no destinations.
    pub selected: Option<&'a str>,
    /// `GET /admin/api/destinations/{host}/health` of the selected host; `None` when the
    /// Dispatcher could not answer.
    pub health: Option<&'a Health>,
    /// First page of `GET /admin/api/destinations/{host}/parked`.
    pub parked: Option<&'a ParkedList>,
    /// The destination form the page opens on, if any.
    pub form: Option<Form<'a>>,
}

/// The destination form: adding one (`?add`, and the first run) or editing a stored one
/// (`?edit=<host>`).
#[derive(Clone, Copy)]
pub enum Form<'a> {
    /// Empty, for a new destination.
    Add,
    /// Filled with a stored destination's settings; the token field stays empty.
    Edit(&'a DestinationView),
}

/// The form a page opens on: `edit`'s (a stored destination's host) when asked, the Add form
/// when asked (`add`) or on the first run (no destination at all, no default either).
pub fn form_for<'a>(
    destinations: &'a [DestinationView],
    edit: Option<&str>,
    add: bool,
) -> Option<Form<'a>> {
    match edit {
        Some(host) => destinations
            .iter()
            .find(|d| !d.is_vars() && d.host.as_deref() == Some(host))
            .map(Form::Edit),
        None if add || destinations.is_empty() => Some(Form::Add),
        None => None,
    }
}

/// The dashboard page: the destination form when asked for (or on the first run), the
/// destinations with their live switch, connection test and install snippet, then the
/// selected host's health, charts, match quality, recovery, recent errors and parked events.
pub fn render_dashboard(view: &DashboardView) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = view
        .selected
        .map_or("ttedge".into(), |h| format!("ttedge · {h}"));
    layout::open_page(&mut out, &title);
    layout::header(&mut out, view);
    out.push_str("<main><p id=\"flash\" class=\"flash\" role=\"status\"></p>");
    if let Some(form) = view.form {
        form::destination_form(&mut out, form, layout::first_run(view));
    }
    layout::destinations(&mut out, view);
    if let Some(host) = view.selected {
        match view.health {
            Some(health) => {
                let stored = view
                    .destinations
                    .iter()
                    .any(|d| !d.is_vars() && d.host.as_deref() == Some(host));
                layout::health_sections(&mut out, host, health, stored)
            }
            None => layout::health_unavailable(&mut out, host),
        }
        out.push_str("<h2>Parked events</h2>");
        cards::parked_card(&mut out, host, view.parked);
    }
    put!(out, "</main><script>{JS}</script></body></html>");
    out
}

/// The login page: one password field `token`, posted form-urlencoded to `/admin/login`;
/// `message` (such as "Wrong token") is shown above it.
pub fn render_login(message: Option<&str>) -> String {
    let mut out = String::with_capacity(CSS.len() + 1024);
    layout::open_page(&mut out, "ttedge · sign in");
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
