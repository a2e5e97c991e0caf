//! The cards: one per destination, then the selected host's health (now, the three
//! windows, match quality, recovery, recent errors) and its parked events.
//!
//! Each card reads a typed answer (`Health`, `ParkedList`, `DestinationView`) field by field:
//! a field renamed or dropped in the API is a compile error here, not a "–" on the page.

use ttedge_core::destination::BaselineRecovery;
use ttedge_core::health::{EmqReport, IdentityReport, WindowTotals, Windows};
use ttedge_core::quality::Grade;

use super::charts;
use super::format::{dec1, escape, int, pct, query_value, utc, NONE};
use crate::admin::views::DestinationView;
use crate::config_store::LastTest;
use crate::dispatcher::report::{Current, ParkedList, RecoveryReport};

/// The health windows with their key in `health.windows` (the `data-metric` prefix) and
/// their title, in the page's order.
pub fn windows(w: &Windows) -> [(&'static str, &'static str, &WindowTotals); 3] {
    [
        ("last_hour", "Last hour", &w.last_hour),
        ("last_24h", "Last 24 hours", &w.last_24h),
        ("last_7d", "Last 7 days", &w.last_7d),
    ]
}

/// One destination: its settings, its live switch (stored destinations only), its
/// connection test with the last result (the script writes a new one into
/// `#test-result-<host>`), Edit and Delete, and how to install the SDK for it.
pub fn destination_card(out: &mut String, item: &DestinationView, host: &str, selected: bool) {
    let class = if selected {
        "card wide sel"
    } else {
        "card wide"
    };
    let vars = item.is_vars();
    let stored = item.stored_fields();
    let h = escape(host);
    put!(
        out,
        "<section class=\"{class}\" data-destination=\"{h}\"><div class=\"cols\"><div>\
         <a href=\"/admin?host={}\"><strong>{h}</strong></a> <span class=\"badge\">{}</span><dl>",
        escape(&query_value(host)),
        if vars { "wrangler.toml vars" } else { "admin" }
    );
    let baseline = stored.and_then(|s| s.baseline_pixel_code.as_deref());
    for (label, field, text) in [
        ("Pixel ID", "pixel_id", item.pixel_id.clone()),
        ("Access Token", "access_token", item.access_token.clone()),
        (
            "Test Event Code",
            "test_event_code",
            or_none(item.test_event_code.as_deref()),
        ),
        (
            "Baseline Pixel Code",
            "baseline_pixel_code",
            or_none(baseline),
        ),
        (
            "Offline Event Set",
            "offline_event_set_id",
            or_none(item.offline_event_set_id.as_deref()),
        ),
        ("Site origins", "site_origins", item.site_origins.join(", ")),
        (
            "Rate limit / min",
            "rate_limit_per_minute",
            item.rate_limit_per_minute.to_string(),
        ),
        (
            "Identity days",
            "identity_days",
            match item.identity_days {
                0 => "off".to_string(),
                days => days.to_string(),
            },
        ),
        ("Updated (UTC)", "updated_ms", utc(item.updated_ms())),
    ] {
        put!(
            out,
            "<dt>{label}</dt><dd data-field=\"{field}\">{}</dd>",
            escape(&text)
        );
    }
    out.push_str("</dl><div class=\"row\">");
    if vars {
        // Destinations from vars have no switch: they are always live.
        out.push_str("<span class=\"badge ok\">Always live</span>");
    } else {
        let live = item.live;
        let tested = stored.is_some_and(|s| s.test_passed_ms.is_some());
        put!(
            out,
            "<button class=\"sw\" role=\"switch\" aria-checked=\"{live}\" aria-label=\"Live\" \
             data-action=\"live\" data-host=\"{h}\" data-live=\"{live}\" \
             data-tested=\"{tested}\"></button><span>{}</span>",
            if live { "Live" } else { "Not live" }
        );
    }
    put!(
        out,
        "<button class=\"primary\" data-action=\"test\" data-host=\"{h}\">Test</button>"
    );
    if !vars {
        put!(
            out,
            "<form method=\"get\" action=\"/admin\"><input type=\"hidden\" name=\"edit\" \
             value=\"{h}\"><button>Edit</button></form>\
             <button data-action=\"delete\" data-host=\"{h}\">Delete</button>"
        );
    }
    put!(
        out,
        "</div><div class=\"result\" id=\"test-result-{h}\" aria-live=\"polite\">"
    );
    if let Some(test) = stored.and_then(|s| s.last_test.as_ref()) {
        test_result(out, test);
    }
    out.push_str("</div></div>");
    install(out, host);
    out.push_str("</div>");
    upload_form(out, host);
    out.push_str("</section>");
}

/// "Upload offline conversions": a CSV file, the UTC offset of its local times (the script
/// fills in the browser's), Upload, then a progress bar, the figures and the rejected rows
/// by file line. The script sends the file to `…/offline` in chunks of whole records; the
/// rules (columns, timestamps, event_ids) are the Worker's, as for `ttedge send`.
fn upload_form(out: &mut String, host: &str) {
    let h = escape(host);
    put!(
        out,
        "<form class=\"upload\" data-host=\"{h}\" method=\"post\" action=\"/admin\" novalidate>\
         <p><strong>Upload offline conversions</strong><br><small id=\"uh-{h}\">A CSV export \
         with a header row (email, phone, external_id, order_id, event, value, currency, \
         timestamp, content_ids, or the names shops use, as for ttedge send). YYYY-MM-DD \
         HH:MM:SS times are read at the UTC offset. Clear emails and phones are hashed by \
         this Worker before they are stored or sent.</small></p><div class=\"cols3\">\
         <div class=\"field\"><label for=\"uf-{h}\">CSV file</label><input id=\"uf-{h}\" \
         name=\"file\" type=\"file\" accept=\".csv,.tsv,.txt,text/csv\" \
         aria-describedby=\"uh-{h}\"></div>\
         <div class=\"field\"><label for=\"uo-{h}\">UTC offset</label><input id=\"uo-{h}\" \
         name=\"utc_offset\" type=\"text\" placeholder=\"+07:00\" autocomplete=\"off\" \
         value=\"+00:00\"></div></div><div class=\"row\"><button type=\"submit\" \
         class=\"primary\">Upload</button><progress max=\"1\" value=\"0\" hidden></progress>\
         </div>\
         <p class=\"status\" role=\"status\" aria-live=\"polite\"></p><ol class=\"rejected\"></ol>\
         </form>"
    );
}

/// The last connection test, as the script shows a new one: "Connection test successful!"
/// or TikTok's message, then latency, HTTP status and TikTok's code, the hint, and the test
/// event's match quality with its coaching.
fn test_result(out: &mut String, test: &LastTest) {
    let t = &test.answer;
    let (tone, verdict) = if t.ok {
        ("ok", "OK")
    } else {
        ("bad", "Failed")
    };
    put!(
        out,
        "<div><span class=\"badge {tone}\">{verdict}</span> {}</div>\
         <div class=\"muted\">{} ms · HTTP {} · TikTok code {}</div>",
        escape(&t.message),
        t.latency_ms,
        t.http_status,
        int(t.tiktok_code)
    );
    if let Some(hint) = t.hint.as_deref().filter(|h| !h.is_empty()) {
        put!(out, "<div class=\"warn\">{}</div>", escape(hint));
    }
    if let Some(q) = &test.emq {
        let grade = match q.grade {
            Grade::Excellent => "excellent",
            Grade::Good => "good",
            Grade::NeedsImprovement => "needs improvement",
        };
        put!(out, "<div>EMQ {} ({grade})</div>", q.score);
        if !q.coaching.is_empty() {
            out.push_str("<ul>");
            for c in &q.coaching {
                put!(
                    out,
                    "<li>{} +{}: {}</li>",
                    c.factor.name(),
                    c.gain,
                    escape(&c.advice)
                );
            }
            out.push_str("</ul>");
        }
    }
    put!(
        out,
        "<div class=\"muted\">Tested {} UTC</div>",
        utc(test.at_ms)
    );
}

/// The SDK snippet for `host` with its Copy button, and Google Tag Manager in short.
fn install(out: &mut String, host: &str) {
    let h = escape(host);
    put!(
        out,
        "<div class=\"install\"><strong>Install</strong><p class=\"muted\">In the &lt;head&gt; \
         of every page:</p><pre id=\"snippet-{h}\">{}</pre>\
         <button data-action=\"copy\" data-target=\"snippet-{h}\">Copy</button>\
         <p><strong>With Google Tag Manager</strong></p><ol>\
         <li>Tags → New → Custom HTML: paste the snippet.</li>\
         <li>Trigger: Initialization – All Pages (after your consent banner's Consent \
         Initialization).</li>\
         <li>Submit. The SDK reads the dataLayer itself (purchase → CompletePayment): no tag \
         per event.</li></ol></div>",
        escape(&snippet(host))
    );
}

/// The install snippet of README's "Browser SDK" with `host` as its endpoint.
pub fn snippet(host: &str) -> String {
    format!(
        "<script>\n  window.ttedge = window.ttedge || function () {{ (ttedge.q = ttedge.q || []).push(arguments); }};\n  ttedge('init', {{ endpoint: 'https://{host}' }});\n</script>\n<script async src=\"https://{host}/sdk.js\"></script>"
    )
}

/// Queue, parked events and the token's rate window at this moment.
pub fn now_card(out: &mut String, current: &Current) {
    out.push_str("<section class=\"card\"><h3>Now</h3><div class=\"big\">");
    figure(
        out,
        "current.queue_depth",
        &current.queue_depth.to_string(),
        "",
    );
    out.push_str("</div><small>events queued</small><dl>");
    row(
        out,
        "Parked",
        "current.parked",
        &current.parked.to_string(),
        "",
    );
    let age = int(current.oldest_queued_age_ms.map(|ms| ms / 1000));
    row(
        out,
        "Oldest queued",
        "current.oldest_queued_age_s",
        &age,
        " s",
    );
    let window = current.rate_window;
    out.push_str("<dt>Rate window</dt><dd>");
    figure(
        out,
        "current.rate_window.used",
        &window.used.to_string(),
        "",
    );
    out.push_str(" / ");
    figure(
        out,
        "current.rate_window.limit",
        &window.limit.to_string(),
        "",
    );
    out.push_str("</dd></dl>");
    charts::rate_meter(out, window.used, window.limit);
    out.push_str("</section>");
}

/// One window's success rate, error rate, counts and latency percentiles.
pub fn window_card(out: &mut String, key: &str, title: &str, window: &WindowTotals) {
    let tone = match window.success_rate {
        Some(rate) if rate >= 0.99 => " ok",
        Some(rate) if rate >= 0.9 => " warn",
        Some(_) => " bad",
        None => "",
    };
    put!(
        out,
        "<section class=\"card\"><h3>{title}</h3><div class=\"big{tone}\">"
    );
    figure(
        out,
        &format!("{key}.success_rate"),
        &pct(window.success_rate),
        "%",
    );
    out.push_str(
        "</div><small title=\"delivered ÷ (delivered + parked)\">success rate</small><dl>",
    );
    let error_rate = pct(window.error_rate);
    row(
        out,
        "Error rate (calls)",
        &format!("{key}.error_rate"),
        &error_rate,
        "%",
    );
    let c = &window.counts;
    for (field, label, value) in [
        ("received", "Received", c.received),
        ("delivered", "Delivered", c.delivered),
        ("retried", "Retried", c.retried),
        ("parked", "Parked", c.parked),
        ("held", "Held (consent)", c.held),
        ("skipped", "Skipped", c.skipped),
        ("not_live", "Not live", c.not_live),
        ("rejected", "Rejected", c.rejected),
        ("cod_confirmed", "COD confirmed", c.cod_confirmed),
        ("cod_cancelled", "COD cancelled", c.cod_cancelled),
    ] {
        row(
            out,
            label,
            &format!("{key}.{field}"),
            &value.to_string(),
            "",
        );
    }
    let cod_rate = pct(window.cod_confirmation_rate);
    row(
        out,
        "COD confirmation rate",
        &format!("{key}.cod_confirmation_rate"),
        &cod_rate,
        "%",
    );
    for (p, value) in [
        ("p50", window.p50),
        ("p95", window.p95),
        ("p99", window.p99),
    ] {
        let name = format!("{key}.{p}");
        row(out, &format!("Latency {p}"), &name, &int(value), " ms");
    }
    out.push_str("</dl></section>");
}

/// Match quality over 7 days: mean, what identity resolution added, the 10-bin histogram
/// and the factors missing most.
pub fn emq_card(out: &mut String, emq: &EmqReport, identity: &IdentityReport) {
    out.push_str(
        "<section class=\"card\"><h3>Event match quality · 7 days</h3><div class=\"big\">",
    );
    figure(out, "emq.mean", &dec1(emq.mean), "");
    out.push_str("</div><small>mean score of 100</small><dl>");
    row(
        out,
        "Events scored",
        "emq.events",
        &emq.events.to_string(),
        "",
    );
    let below = pct(emq.below_threshold_share);
    row(
        out,
        "Below threshold",
        "emq.below_threshold_share",
        &below,
        "%",
    );
    row(
        out,
        "Enriched by identity",
        "identity.enriched",
        &identity.enriched.to_string(),
        "",
    );
    let gain = dec1(identity.mean_gain);
    row(
        out,
        "Avg points gained",
        "identity.mean_gain",
        &gain,
        " pts",
    );
    out.push_str("</dl>");
    charts::emq_histogram(out, &emq.histogram);
    if !emq.most_missing.is_empty() {
        out.push_str(
            "<table><tr><th>Missing most often</th><th class=\"n\">Events</th>\
             <th class=\"n\">Share</th><th class=\"n\">Avg gain</th></tr>",
        );
        for (i, item) in emq.most_missing.iter().enumerate() {
            put!(
                out,
                "<tr><td>{}</td><td class=\"n\" data-metric=\"emq.most_missing.{i}.events\">{}</td>\
                 <td class=\"n\">",
                escape(item.factor.name()),
                item.events,
            );
            let share = pct(item.share);
            figure(out, &format!("emq.most_missing.{i}.share"), &share, "%");
            out.push_str("</td><td class=\"n\">");
            let gain = dec1(item.mean_gain);
            figure(out, &format!("emq.most_missing.{i}.gain"), &gain, " pts");
            out.push_str("</td></tr>");
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

/// Conversions the server delivered that the pixel could not see, the imported baselines
/// that compare pixel and server conversions per period (a table and a chart), and, for a
/// stored destination (`import`: its host), the form that imports a baseline.
pub fn recovery_card(out: &mut String, recovery: &RecoveryReport, import: Option<&str>) {
    let totals = &recovery.totals;
    out.push_str("<section class=\"card\"><h3>Recovery · 7 days</h3><div class=\"big\">");
    let delivered = totals.conversions_delivered.to_string();
    figure(out, "recovery.conversions_delivered", &delivered, "");
    out.push_str("</div><small>conversions delivered by the server</small><dl>");
    let unseen = totals.unseen_by_pixel.to_string();
    row(
        out,
        "Unseen by the pixel",
        "recovery.unseen_by_pixel",
        &unseen,
        "",
    );
    let share = pct(totals.unseen_share);
    row(out, "Share unseen", "recovery.unseen_share", &share, "%");
    let missing = totals.pixel_missing.to_string();
    row(
        out,
        "Events with the pixel blocked or absent",
        "recovery.pixel_missing",
        &missing,
        "",
    );
    let share = pct(totals.pixel_missing_share);
    row(
        out,
        "Share of events",
        "recovery.pixel_missing_share",
        &share,
        "%",
    );
    out.push_str("</dl>");
    if recovery.baselines.is_empty() {
        out.push_str("<p class=\"muted\">No pixel baseline imported yet.</p>");
    } else {
        out.push_str(
            "<table><tr><th>Period</th><th class=\"n\">Pixel</th><th class=\"n\">Server</th>\
             <th class=\"n\">Δ</th><th class=\"n\">Recovered</th></tr>",
        );
        for (i, b) in recovery.baselines.iter().enumerate() {
            baseline_row(out, i, b);
        }
        out.push_str("</table>");
        charts::baseline_chart(out, &recovery.baselines);
    }
    if let Some(host) = import {
        baseline_form(out, host);
    }
    out.push_str("</section>");
}

/// The import of a pixel baseline: what Ads Manager shows for the browser pixel over some
/// days. The script posts it to `…/baseline` and puts a refusal under the field it names.
fn baseline_form(out: &mut String, host: &str) {
    put!(
        out,
        "<form id=\"baseline-form\" data-host=\"{}\" method=\"post\" action=\"/admin\" \
         novalidate><p><strong>Import a pixel baseline</strong><br><small id=\"h-baseline\">\
         Conversions of the browser pixel in Ads Manager over these days (UTC, both included).\
         </small></p><div class=\"cols3\">",
        escape(host)
    );
    for (name, label, hint) in [
        ("from", "From", "YYYY-MM-DD"),
        ("to", "To", "YYYY-MM-DD"),
        ("pixel_conversions", "Pixel conversions", "120"),
    ] {
        put!(
            out,
            "<div class=\"field\"><label for=\"b-{name}\">{label}</label><input id=\"b-{name}\" \
             name=\"{name}\" type=\"text\" placeholder=\"{hint}\" autocomplete=\"off\" \
             aria-describedby=\"h-baseline eb-{name}\"><p class=\"err\" id=\"eb-{name}\" \
             role=\"alert\"></p></div>"
        );
    }
    out.push_str(
        "</div><p class=\"err\" id=\"eb-form\" role=\"alert\"></p>\
         <button type=\"submit\">Import</button></form>",
    );
}

fn baseline_row(out: &mut String, i: usize, b: &BaselineRecovery) {
    put!(out, "<tr><td>{} – {}</td>", escape(&b.from), escape(&b.to));
    for (field, value) in [
        ("pixel_conversions", b.pixel_conversions.to_string()),
        ("server_conversions", b.server_conversions.to_string()),
        ("delta", b.delta.to_string()),
    ] {
        put!(
            out,
            "<td class=\"n\" data-metric=\"recovery.baselines.{i}.{field}\">{value}</td>"
        );
    }
    out.push_str("<td class=\"n\">");
    let recovered = pct(b.recovered_share);
    let name = format!("recovery.baselines.{i}.recovered_share");
    figure(out, &name, &recovered, "%");
    out.push_str("</td></tr>");
}

/// The last failed calls, with TikTok's message and the hint on what to do.
pub fn errors_card(out: &mut String, current: &Current) {
    out.push_str("<section class=\"card wide\"><h3>Recent errors</h3>");
    if current.last_errors.is_empty() {
        out.push_str("<p class=\"muted\">No failed calls.</p></section>");
        return;
    }
    out.push_str(
        "<table><tr><th>When (UTC)</th><th>Verdict</th><th class=\"n\">Events</th>\
         <th class=\"n\">HTTP</th><th class=\"n\">Code</th><th>Message and hint</th></tr>",
    );
    for e in &current.last_errors {
        let verdict = match e.verdict.as_str() {
            "retry" => "<span class=\"badge warn\">retried</span>",
            "reject" => "<span class=\"badge bad\">refused</span>",
            _ => "<span class=\"badge\">–</span>",
        };
        let status = match e.http_status {
            0 => "none".into(),
            status => status.to_string(),
        };
        put!(
            out,
            "<tr><td>{}</td><td>{verdict}</td><td class=\"n\">{}</td><td class=\"n\">{status}</td>\
             <td class=\"n\">{}</td><td>",
            utc(e.at_ms),
            e.events,
            int(e.tiktok_code)
        );
        message_and_hint(out, e.message.as_deref(), e.hint.as_deref());
        out.push_str("</td></tr>");
    }
    out.push_str("</table></section>");
}

/// The first page of parked events, each with its Replay button, and "Replay all".
pub fn parked_card(out: &mut String, host: &str, page: Option<&ParkedList>) {
    out.push_str("<section class=\"card\">");
    let Some(page) = page else {
        out.push_str(
            "<p class=\"bad\">The parked events are not available right now.</p></section>",
        );
        return;
    };
    let host = escape(host);
    out.push_str("<div class=\"row\"><span>");
    figure(out, "parked.total", &page.total.to_string(), "");
    out.push_str(" parked</span>");
    if !page.events.is_empty() {
        put!(
            out,
            "<button data-action=\"replay\" data-host=\"{host}\">Replay all</button>"
        );
    }
    out.push_str("</div>");
    if page.events.is_empty() {
        out.push_str("</section>");
        return;
    }
    out.push_str(
        "<table><tr><th class=\"n\">#</th><th>Event id</th><th>Event</th><th class=\"n\">HTTP</th>\
         <th class=\"n\">Code</th><th>Message and hint</th><th class=\"n\">Attempts</th>\
         <th>Parked (UTC)</th><th></th></tr>",
    );
    for e in &page.events {
        put!(
            out,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>",
            e.seq,
            escape(&e.event_id),
            escape(&e.event_name),
            e.http_status,
            int(e.tiktok_code)
        );
        message_and_hint(out, Some(&e.message), Some(&e.hint));
        put!(
            out,
            "</td><td class=\"n\">{}</td><td>{}</td><td>\
             <button data-action=\"replay\" data-host=\"{host}\" data-event-id=\"{}\">Replay</button>\
             </td></tr>",
            e.attempts,
            utc(e.parked_at_ms),
            escape(&e.event_id)
        );
    }
    out.push_str("</table>");
    if page.next_after.is_some() {
        put!(
            out,
            "<p class=\"muted\">The first {} are shown; Replay all replays every one.</p>",
            page.events.len()
        );
    }
    out.push_str("</section>");
}

/// TikTok's message, then the hint (when there is one) in the warning colour.
fn message_and_hint(out: &mut String, message: Option<&str>, hint: Option<&str>) {
    put!(out, "{}", escape(message.unwrap_or(NONE)));
    if let Some(hint) = hint.filter(|h| !h.is_empty()) {
        put!(out, "<div class=\"warn\">{}</div>", escape(hint));
    }
}

fn or_none(text: Option<&str>) -> String {
    text.unwrap_or(NONE).to_string()
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
