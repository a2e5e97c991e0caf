//! The destination form: add a site, or edit a stored one. Server-rendered; the page's
//! script sends it as the admin API's `PUT` and puts each refusal under the field its `path`
//! names (`e-<field>`, `e-form` for the rest).
//!
//! Every input has a `<label for>`, in the order the fields are read. The access token and
//! the webhook secret are password fields that are never filled in: on edit, leaving one
//! empty keeps the stored value.

use super::format::escape;
use super::Form;
use crate::admin::views::DestinationView;

/// How a field is entered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Password,
    /// A textarea, one value per line.
    Lines,
    Checkbox,
}

/// One field: its settings name (the API's JSON path), label and help text.
struct Field {
    name: &'static str,
    label: &'static str,
    kind: Kind,
    help: &'static str,
}

const fn field(name: &'static str, label: &'static str, kind: Kind, help: &'static str) -> Field {
    Field {
        name,
        label,
        kind,
        help,
    }
}

/// The main fields, in the form's order.
const MAIN: [Field; 6] = [
    field(
        "host",
        "Site host",
        Kind::Text,
        "The host this Worker is routed on for the shop, such as t.shop.com (no https://).",
    ),
    field(
        "pixel_id",
        "Pixel ID",
        Kind::Text,
        "In TikTok Ads Manager: Tools → Events → the pixel; the ID is under its name.",
    ),
    field(
        "access_token",
        "Access Token",
        Kind::Password,
        "In Events Manager: the pixel → Settings → Generate Access Token. TikTok shows it only \
         once: paste it here. It is stored encrypted and never shown again.",
    ),
    field(
        "test_event_code",
        "Test Event Code",
        Kind::Text,
        "Optional. Events Manager → the pixel → Test Events. While it is set, events only show \
         under Test Events.",
    ),
    field(
        "baseline_pixel_code",
        "Baseline Pixel Code",
        Kind::Text,
        "Optional. The browser pixel the recovery figures compare with, when it is not the \
         Pixel ID.",
    ),
    field(
        "site_origins",
        "Site origins",
        Kind::Lines,
        "One per line, such as https://shop.com: the pages allowed to send events.",
    ),
];

/// The fields under Advanced.
const ADVANCED: [Field; 10] = [
    field(
        "cookie_domain",
        "Cookie domain",
        Kind::Text,
        "Empty: the host's registrable domain (t.shop.com → shop.com).",
    ),
    field(
        "event_overrides",
        "Event overrides",
        Kind::Lines,
        "One per line: incoming name = TikTok name, such as order_placed = PlaceAnOrder.",
    ),
    field(
        "custom_events",
        "Custom events",
        Kind::Checkbox,
        "On: names that are not TikTok standard events go as custom events. Off: they are \
         skipped.",
    ),
    field(
        "offline_event_set_id",
        "Offline Event Set ID",
        Kind::Text,
        "Optional. Events Manager → Connect data source → Offline: the set's ID. Set, offline \
         conversions (uploads, orders confirmed without a checkout) go there; empty, they go \
         to the pixel.",
    ),
    field(
        "rate_limit_per_minute",
        "Rate limit per minute",
        Kind::Text,
        "Requests per minute for this token; empty: 1000.",
    ),
    field(
        "conversion_events",
        "Extra conversion events",
        Kind::Lines,
        "One TikTok event name per line, counted as conversions besides CompletePayment, \
         PlaceAnOrder and Purchase.",
    ),
    field(
        "cod_checkout_events",
        "Cash-on-delivery checkout events",
        Kind::Lines,
        "One TikTok event name per line that keeps its order for a cash-on-delivery \
         confirmation, besides PlaceAnOrder. The event needs an order_id.",
    ),
    field(
        "cod_days",
        "Cash-on-delivery days",
        Kind::Text,
        "Days an order is kept waiting for its confirmation (paid, delivered or cancelled); \
         empty: 60.",
    ),
    field(
        "webhook_secret",
        "Order webhook secret",
        Kind::Password,
        "The secret your shop platform signs POST /webhooks/{host}/orders with (HMAC-SHA256, \
         header X-Ttedge-Signature), at least 16 characters, such as the output of openssl \
         rand -hex 32. Stored encrypted and never shown again.",
    ),
    field(
        "identity_days",
        "Identity days",
        Kind::Text,
        "Days a browser's hashed email, phone and external id are kept from last use, so its \
         later events carry them (with consent); 0 turns it off; empty: 90.",
    ),
];

/// Every field the form has, by its settings name: what the tests and the script rely on.
#[cfg(test)]
pub fn field_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    MAIN.iter().chain(&ADVANCED).map(|f| (f.name, f.label))
}

/// The form, in a card of its own. `first_run`: no destination exists yet.
pub fn destination_form(out: &mut String, form: Form, first_run: bool) {
    let editing = match form {
        Form::Add => None,
        Form::Edit(item) => Some(item),
    };
    out.push_str("<section class=\"card wide\" id=\"destination-form-card\">");
    match editing.and_then(|d| d.host.as_deref()) {
        Some(host) => put!(out, "<h3>Edit {}</h3>", escape(host)),
        None => out.push_str("<h3>Add destination</h3>"),
    }
    if first_run {
        out.push_str(
            "<p>Connect your first shop: its site host, the TikTok Pixel ID and an Access \
             Token are all it takes. Save, press Test, then turn it Live.</p>",
        );
    }
    let live = editing.is_some_and(|d| d.live);
    put!(
        out,
        "<form id=\"destination-form\" method=\"post\" action=\"/admin\" novalidate \
         data-mode=\"{}\" data-live=\"{live}\">",
        if editing.is_some() { "edit" } else { "add" }
    );
    for f in &MAIN {
        field_row(out, f, editing);
    }
    out.push_str("<details id=\"advanced\"><summary>Advanced</summary>");
    for f in &ADVANCED {
        field_row(out, f, editing);
    }
    out.push_str(
        "</details><p class=\"err\" id=\"e-form\" role=\"alert\"></p><div class=\"row\">\
         <button type=\"submit\" class=\"primary\">Save</button>",
    );
    if !first_run {
        let back = editing
            .and_then(|d| d.host.as_deref())
            .map(|h| format!("/admin?host={}", super::format::query_value(h)))
            .unwrap_or_else(|| "/admin".into());
        put!(out, "<a href=\"{}\">Cancel</a>", escape(&back));
    }
    out.push_str("</div></form></section>");
}

/// One field: label, input, help, and the empty slot its error goes in.
fn field_row(out: &mut String, f: &Field, editing: Option<&DestinationView>) {
    let name = f.name;
    let value = editing.map(|d| value(d, name)).unwrap_or_default();
    // The first field is where typing starts: the host when adding, else the pixel.
    let focus = match editing {
        None => name == "host",
        Some(_) => name == "pixel_id",
    };
    let autofocus = if focus { " autofocus" } else { "" };
    let described = format!("aria-describedby=\"h-{name} e-{name}\"");
    let label = format!("<label for=\"f-{name}\">{}</label>", f.label);
    match f.kind {
        Kind::Checkbox => {
            // A new destination takes the API's default: on.
            let on = editing
                .and_then(DestinationView::stored_fields)
                .is_none_or(|stored| stored.custom_events);
            put!(
                out,
                "<div class=\"field check\"><input id=\"f-{name}\" name=\"{name}\" \
                 type=\"checkbox\"{} {described}{autofocus}>{label}",
                if on { " checked" } else { "" }
            );
        }
        Kind::Lines => put!(
            out,
            "<div class=\"field\">{label}<textarea id=\"f-{name}\" name=\"{name}\" rows=\"3\" \
             spellcheck=\"false\" {described}{autofocus}>{}</textarea>",
            escape(&value)
        ),
        Kind::Password => put!(
            // Never filled in: the stored token is not even known here, only its mask.
            out,
            "<div class=\"field\">{label}<input id=\"f-{name}\" name=\"{name}\" \
             type=\"password\" autocomplete=\"new-password\" spellcheck=\"false\" \
             {described}{autofocus}>"
        ),
        Kind::Text => {
            let readonly = if name == "host" && editing.is_some() {
                " readonly"
            } else {
                ""
            };
            put!(
                out,
                "<div class=\"field\">{label}<input id=\"f-{name}\" name=\"{name}\" \
                 type=\"text\" value=\"{}\" autocomplete=\"off\" spellcheck=\"false\" \
                 {described}{readonly}{autofocus}>",
                escape(&value)
            );
        }
    }
    put!(out, "<small id=\"h-{name}\">{}", escape(f.help));
    match (name, editing) {
        ("access_token", Some(d)) => put!(
            out,
            " Stored: {}. Leave it empty to keep it.",
            escape(&d.access_token)
        ),
        ("webhook_secret", Some(d)) => {
            let set = d.stored_fields().is_some_and(|s| s.webhook_secret_set);
            out.push_str(match set {
                true => " A secret is set. Leave it empty to keep it.",
                false => " None is set: the webhook is off.",
            });
        }
        _ => {}
    }
    put!(
        out,
        "</small><p class=\"err\" id=\"e-{name}\" role=\"alert\"></p></div>"
    );
}

/// The form's text for `name` of a destination (never the token).
fn value(d: &DestinationView, name: &str) -> String {
    let stored = d.stored_fields();
    match name {
        "host" => d.host.clone().unwrap_or_default(),
        "pixel_id" => d.pixel_id.clone(),
        "test_event_code" => d.test_event_code.clone().unwrap_or_default(),
        "offline_event_set_id" => d.offline_event_set_id.clone().unwrap_or_default(),
        "baseline_pixel_code" => stored
            .and_then(|s| s.baseline_pixel_code.clone())
            .unwrap_or_default(),
        "site_origins" => d.site_origins.join("\n"),
        "cookie_domain" => d.cookie_domain.clone().unwrap_or_default(),
        "event_overrides" => stored
            .map(|s| {
                s.event_overrides
                    .iter()
                    .map(|(from, to)| format!("{from} = {to}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
        "rate_limit_per_minute" => d.rate_limit_per_minute.to_string(),
        "identity_days" => d.identity_days.to_string(),
        "conversion_events" => stored
            .map(|s| s.conversion_events.join("\n"))
            .unwrap_or_default(),
        "cod_checkout_events" => stored
            .map(|s| s.cod_checkout_events.join("\n"))
            .unwrap_or_default(),
        "cod_days" => stored.map(|s| s.cod_days.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}
