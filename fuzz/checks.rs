//! The checks behind every fuzz target, one function per target.
//!
//! Each libFuzzer target in `fuzz_targets/` is one call into this file, and the stable
//! `cargo test` replay (`core/tests/fuzz_corpus.rs`) includes the same file and runs every
//! file of `fuzz/corpus/<target>/` through the same function. A check panics on the first
//! broken property, with the input in the message.
//!
//! Input formats (the corpus files are written in them, so they stay readable):
//!
//! - `parse_collect`: the collect body itself.
//! - `prepare`: `flags US ip US user_agent US accept_language US cookie US host US body`,
//!   `US` being the unit separator 0x1f; an input with fewer than six separators is all body.
//! - `cookie`: `flags US cookie_header US page_url US host` (missing parts are empty).
//! - `destination`: `host LF body`; without a line feed, all body for host `t.shop.example`.
//! - `offline_csv`: the CSV text itself (a shop's export, or a chunk of one).
//!
//! `flags` is raw bytes read by [`Flags`]: switches, then `now_ms` and the random arrays
//! (zeros once the bytes run out).

// Included with `#[path]` by the replay test as well, where not every helper is used alike.
#![allow(dead_code)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use serde::de;
use serde_json::Value;

use ttedge_core::cookie::{self, PublicSuffixList};
use ttedge_core::destination::{self, DestinationSettings, SettingsError};
use ttedge_core::event::{parse_collect, parse_collect_with, Reader, MAX_BATCH_EVENTS};
use ttedge_core::mapping::NameRules;
use ttedge_core::offline::{self, ColumnMap, FixedOffset, OfflineRow};
use ttedge_core::pipeline::{self, Destination, Prepared, RequestContext, Status};

/// A check: panics when `data` breaks a property.
pub type Check = fn(&[u8]);

/// Every target: its name (the corpus directory) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("parse_collect", parse_collect_check),
    ("prepare", prepare_check),
    ("cookie", cookie_check),
    ("destination", destination_check),
    ("offline_csv", offline_csv_check),
];

/// The unit separator between the parts of a `prepare` or `cookie` input.
pub const SEPARATOR: u8 = 0x1f;

/// The pixel code of the fuzzed destination.
const PIXEL: &str = "C4TEST";

/// Set by the fuzz targets (never by the replay test): see [`tolerate_known_bugs`].
static TOLERATE_KNOWN_BUGS: AtomicBool = AtomicBool::new(false);

/// Makes the checks pass over bugs already reported, so that a fuzzing run goes on to find
/// others; the replay test stays strict, so their reproducers in the corpus keep failing it.
/// Each tolerated bug is named where [`known_bug`] is called (none at the moment: the
/// `dl_dl_x` override key was, until commit 2d4d521 refused it).
pub fn tolerate_known_bugs() {
    TOLERATE_KNOWN_BUGS.store(true, Ordering::Relaxed);
}

/// Whether an input shows a known bug (`shows`) and fuzzing tolerates it.
fn known_bug(shows: bool) -> bool {
    shows && TOLERATE_KNOWN_BUGS.load(Ordering::Relaxed)
}

/// The Public Suffix List, parsed once per process.
fn suffixes() -> &'static PublicSuffixList {
    static LIST: OnceLock<PublicSuffixList> = OnceLock::new();
    LIST.get_or_init(PublicSuffixList::embedded)
}

/// The input for messages: escaped, and cut when long.
fn shown(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut out: String = text.chars().take(2_000).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Text from fuzz bytes: borrowed when UTF-8, else with replacement characters.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Splits `data` at the first `parts - 1` separators; `None` when there are fewer.
fn split_parts(data: &[u8], parts: usize) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(parts);
    let mut rest = data;
    for _ in 1..parts {
        let at = rest.iter().position(|&b| b == SEPARATOR)?;
        out.push(&rest[..at]);
        rest = &rest[at + 1..];
    }
    out.push(rest);
    Some(out)
}

/// Reads switches and numbers from the flag bytes; zeros once they run out.
pub struct Flags<'a> {
    bytes: &'a [u8],
}

impl<'a> Flags<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Flags { bytes }
    }

    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for byte in &mut out {
            *byte = self.byte();
        }
        out
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

// ---- 1. parse_collect: the fast reader against serde --------------------------------------

/// The fast reader and serde_json agree on every body: the same events, or errors with the
/// same code and path.
pub fn parse_collect_check(data: &[u8]) {
    let fast = parse_collect_with(data, MAX_BATCH_EVENTS, Reader::Fast);
    let serde = parse_collect_with(data, MAX_BATCH_EVENTS, Reader::Serde);
    match (&fast, &serde) {
        (Ok(fast), Ok(serde)) => {
            let (fast, serde) = (format!("{fast:?}"), format!("{serde:?}"));
            assert!(
                fast == serde,
                "the readers read {} differently:\nfast:  {fast}\nserde: {serde}",
                shown(data)
            );
        }
        (Err(fast), Err(serde)) => assert!(
            (fast.code(), fast.path()) == (serde.code(), serde.path()),
            "the readers refuse {} differently:\nfast:  {fast:?}\nserde: {serde:?}",
            shown(data)
        ),
        _ => panic!(
            "one reader accepts {}:\nfast:  {fast:?}\nserde: {serde:?}",
            shown(data)
        ),
    }
}

// ---- 2. prepare: the whole pipeline --------------------------------------------------------

/// A prepare input, cut into its parts.
struct PrepareInput<'a> {
    flags: &'a [u8],
    headers: [Option<Cow<'a, str>>; 5],
    body: &'a [u8],
}

impl<'a> PrepareInput<'a> {
    fn new(data: &'a [u8]) -> Self {
        match split_parts(data, 7) {
            Some(parts) => {
                let header = |bytes: &'a [u8]| (!bytes.is_empty()).then(|| text(bytes));
                PrepareInput {
                    flags: parts[0],
                    headers: [
                        header(parts[1]),
                        header(parts[2]),
                        header(parts[3]),
                        header(parts[4]),
                        header(parts[5]),
                    ],
                    body: parts[6],
                }
            }
            None => PrepareInput {
                flags: &[],
                headers: Default::default(),
                body: data,
            },
        }
    }
}

/// The cookie `Domain` the Worker would use for `host`: its registrable domain.
fn registrable_cookie_domain(host: &str) -> Option<String> {
    suffixes().registrable_domain(host)
}

/// Every body that parses goes through [`pipeline::prepare`] without a panic; every ready
/// element serialises (by hand) to the bytes serde_json writes, a JSON object; every
/// `Set-Cookie` keeps the grammar.
pub fn prepare_check(data: &[u8]) {
    let input = PrepareInput::new(data);
    let Ok(events) = parse_collect(input.body, MAX_BATCH_EVENTS) else {
        return;
    };
    let mut flags = Flags::new(input.flags);
    let switches = flags.byte();
    let [ip, user_agent, accept_language, cookie_header, host] = &input.headers;
    let host = host.as_deref().unwrap_or("t.shop.example");
    let cookie_domain = match (switches >> 3) & 3 {
        0 => None,
        1 => Some("shop.example".to_string()),
        _ => registrable_cookie_domain(host),
    };
    let ctx = RequestContext {
        now_ms: flags.u64(),
        ttp_random: (switches & 1 == 0).then(|| flags.array()),
        id_random: flags.array(),
        ip: ip.as_deref(),
        user_agent: user_agent.as_deref(),
        accept_language: accept_language.as_deref(),
        cookie_header: cookie_header.as_deref(),
        cookie_domain: cookie_domain.as_deref(),
    };
    let custom_events = switches & 4 == 0;
    // An override for the first event's name: every event of that name must then map to it,
    // which holds the stack normaliser of incoming names to the one of override keys.
    let override_from = (switches & 32 != 0)
        .then(|| events[0].event.as_deref())
        .flatten();
    let names = match override_from {
        Some(from) => NameRules::new([(from, "Lead")], custom_events).expect("Lead is standard"),
        None => {
            let mut names = NameRules::default();
            names.custom_events = custom_events;
            names
        }
    };
    let destination = Destination {
        pixel_id: PIXEL.to_string(),
        test_event_code: (switches & 2 != 0).then(|| "TEST123".to_string()),
        names,
    };

    let prepared = pipeline::prepare(&events, &ctx, &destination);
    let context = || format!("{} (ctx {ctx:?})", shown(data));
    assert_eq!(prepared.events.len(), events.len(), "{}", context());
    for (index, (event, incoming)) in prepared.events.iter().zip(&events).enumerate() {
        assert_eq!(event.index, index, "{}", context());
        assert!(!event.event_id.is_empty(), "{}", context());
        assert_eq!(
            event.tiktok.is_some(),
            event.status == Status::Ready,
            "event {index} of {}",
            context()
        );
        if let Some(from) = override_from {
            if incoming.event.as_deref() == Some(from) {
                assert_eq!(
                    event.event_name.as_deref(),
                    Some("Lead"),
                    "event {index} of {} misses the override of {from:?}",
                    context()
                );
            }
        }
        if let Some(element) = &event.tiktok {
            let json = element.to_json();
            let parsed: Result<Value, _> = serde_json::from_str(&json);
            assert!(
                matches!(parsed, Ok(Value::Object(_))),
                "event {index} of {}: the element is not a JSON object: {json}",
                context()
            );
            let by_serde = serde_json::to_string(element).expect("an element serialises");
            assert!(
                json == by_serde,
                "event {index} of {}: to_json and serde_json differ:\nto_json: {json}\nserde:   {by_serde}",
                context()
            );
            assert_eq!(element.event_id, event.event_id, "{}", context());
        }
    }
    for set_cookie in &prepared.set_cookies {
        if let Err(problem) = check_set_cookie(set_cookie, ctx.cookie_domain) {
            panic!("{}: Set-Cookie {set_cookie:?}: {problem}", context());
        }
    }
    // The owned twin is the same request.
    let owned = pipeline::prepare_request(events.clone(), &ctx, &destination);
    assert!(owned == prepared, "{}: prepare_request differs", context());
}

// ---- 3. cookie: the Cookie header, the page URL, the Set-Cookie values --------------------

/// Whether `byte` is an RFC 6265 cookie-octet.
fn is_cookie_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// An RFC 7230 `token` character (a cookie name).
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 6265's `domain-value`: labels of letters, digits and inner hyphens (RFC 1123).
fn is_domain_value(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks one `Set-Cookie` value against the RFC 6265 `set-cookie-string` grammar, in the
/// one shape ttedge writes: `name=value; [Domain=d; ]Path=/; Max-Age=n; Secure;
/// SameSite=Lax`, with `Domain` the expected one.
pub fn check_set_cookie(set_cookie: &str, domain: Option<&str>) -> Result<(), String> {
    if let Some(bad) = set_cookie
        .bytes()
        .find(|b| b.is_ascii_control() || !b.is_ascii())
    {
        return Err(format!(
            "holds byte {bad:#04x} (a control or non-ASCII byte)"
        ));
    }
    let mut parts = set_cookie.split("; ");
    let pair = parts.next().unwrap_or_default();
    let (name, value) = pair.split_once('=').ok_or("the cookie-pair has no '='")?;
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(format!("the name {name:?} is not a token"));
    }
    if value.is_empty() || !value.bytes().all(is_cookie_octet) {
        return Err(format!("the value {value:?} is not cookie-octets"));
    }
    let attributes: Vec<&str> = parts.collect();
    let mut expected = Vec::new();
    let domain_attribute = domain.map(|domain| format!("Domain={domain}"));
    if let Some(attribute) = &domain_attribute {
        expected.push(attribute.as_str());
    }
    expected.extend(["Path=/", "MAX-AGE", "Secure", "SameSite=Lax"]);
    if attributes.len() != expected.len() {
        return Err(format!("attributes {attributes:?}, expected {expected:?}"));
    }
    for (attribute, expected) in attributes.iter().zip(&expected) {
        if *expected == "MAX-AGE" {
            let digits = attribute
                .strip_prefix("Max-Age=")
                .ok_or_else(|| format!("{attribute:?} is not Max-Age"))?;
            let mut bytes = digits.bytes();
            if !matches!(bytes.next(), Some(b'1'..=b'9')) || !bytes.all(|b| b.is_ascii_digit()) {
                return Err(format!("Max-Age {digits:?} is not a positive number"));
            }
        } else if attribute != expected {
            return Err(format!("attribute {attribute:?}, expected {expected:?}"));
        }
    }
    if let Some(domain) = domain {
        if !is_domain_value(domain) {
            return Err(format!("Domain {domain:?} is not a domain-value"));
        }
    }
    Ok(())
}

/// `cookie::get` as plain `str` code, to hold the eight-bytes-at-a-time helpers to.
fn reference_get<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// `cookie::is_cookie_value` byte by byte.
fn reference_is_cookie_value(value: &str) -> bool {
    !value.is_empty() && value.len() <= 512 && value.bytes().all(is_cookie_octet)
}

/// `cookie::ttclid_from_url` as plain `str` code.
fn reference_ttclid(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    let pair = query.split('&').find(|pair| {
        pair.strip_prefix("ttclid")
            .is_some_and(|r| r.starts_with('='))
    })?;
    let raw = &pair["ttclid=".len()..];
    let value = if raw.contains(['%', '+']) {
        form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(_, value)| value.trim().to_string())?
    } else {
        raw.trim().to_string()
    };
    (!value.is_empty()).then_some(value)
}

/// The Cookie header and page URL readers agree with plain `str` code, and the cookies the
/// pipeline writes keep the `Set-Cookie` grammar: `_ttp` kept from the header only when it
/// is a valid cookie value (else a new one), `ttclid` from the page URL when valid.
pub fn cookie_check(data: &[u8]) {
    let parts = split_parts(data, 4)
        .or_else(|| split_parts(data, 3))
        .or_else(|| split_parts(data, 2))
        .unwrap_or_else(|| vec![data]);
    let part = |i: usize| text(parts.get(i).copied().unwrap_or_default());
    let (header, url, host) = (part(1), part(2), part(3));
    let mut flags = Flags::new(parts[0]);
    let context = || shown(data);

    for name in [cookie::TTP, cookie::TTCLID, "a", ""] {
        assert_eq!(
            cookie::get(&header, name),
            reference_get(&header, name),
            "cookie {name:?} of {}",
            context()
        );
    }
    for candidate in header
        .split(';')
        .chain(header.split(['=', ';']))
        .chain([&*header, &*url, &*host])
    {
        assert_eq!(
            cookie::is_cookie_value(candidate),
            reference_is_cookie_value(candidate),
            "is_cookie_value({candidate:?}) of {}",
            context()
        );
    }
    let page_ttclid = cookie::ttclid_from_url(&url);
    assert_eq!(
        page_ttclid.as_deref(),
        reference_ttclid(&url).as_deref(),
        "ttclid of {}",
        context()
    );
    // A registrable domain is the host's own tail, and a DNS name whatever the host: the
    // Worker puts it into `Set-Cookie` as it is.
    if let Some(domain) = suffixes().registrable_domain(&host) {
        let lowered = host.trim().to_ascii_lowercase();
        assert!(
            lowered.contains(&domain),
            "registrable domain {domain:?} is not in host {host:?}"
        );
        assert!(
            is_domain_value(&domain),
            "registrable domain {domain:?} of host {host:?} is not a domain-value"
        );
    }

    // The pipeline: one browser page view on `url`, all consent granted, this Cookie header.
    let switches = flags.byte();
    let cookie_domain = match switches & 3 {
        0 => None,
        1 => Some("shop.example".to_string()),
        _ => registrable_cookie_domain(&host),
    };
    let body = serde_json::json!({
        "event": "page_view",
        "url": &*url,
        "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"},
    })
    .to_string();
    let events = parse_collect(body.as_bytes(), MAX_BATCH_EVENTS).expect("a page view parses");
    assert_eq!(events[0].url.as_deref(), Some(&*url), "{}", context());
    let ttp_random: [u8; 16] = flags.array();
    let ctx = RequestContext {
        now_ms: flags.u64(),
        ttp_random: Some(ttp_random),
        id_random: [7; 16],
        ip: None,
        user_agent: None,
        accept_language: None,
        cookie_header: Some(&header),
        cookie_domain: cookie_domain.as_deref(),
    };
    let destination = Destination {
        pixel_id: PIXEL.to_string(),
        test_event_code: None,
        names: NameRules::default(),
    };
    let Prepared {
        events: prepared,
        set_cookies,
    } = pipeline::prepare(&events, &ctx, &destination);
    for set_cookie in &set_cookies {
        if let Err(problem) = check_set_cookie(set_cookie, ctx.cookie_domain) {
            panic!("{}: Set-Cookie {set_cookie:?}: {problem}", context());
        }
    }
    let value_of = |name: &str| {
        set_cookies.iter().find_map(|set_cookie| {
            let pair = set_cookie.split("; ").next()?;
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    let incoming_ttp = cookie::get(&header, cookie::TTP);
    let ttp = value_of(cookie::TTP).unwrap_or_else(|| panic!("no _ttp set for {}", context()));
    if Some(ttp.as_str()) == incoming_ttp {
        assert!(
            cookie::is_cookie_value(&ttp),
            "{}: kept an invalid _ttp",
            context()
        );
    }
    let expected_ttp = match incoming_ttp.filter(|v| reference_is_cookie_value(v)) {
        Some(kept) => kept.to_string(),
        None => cookie::new_ttp(ttp_random, ctx.now_ms),
    };
    assert_eq!(ttp, expected_ttp, "_ttp for {}", context());
    let expected_ttclid = page_ttclid
        .as_deref()
        .filter(|v| reference_is_cookie_value(v));
    assert_eq!(
        value_of(cookie::TTCLID).as_deref(),
        expected_ttclid,
        "ttclid cookie for {}",
        context()
    );
    let element = prepared[0]
        .tiktok
        .as_ref()
        .unwrap_or_else(|| panic!("a granted page view is ready: {}", context()));
    assert_eq!(element.user.ttp.as_deref(), Some(ttp.as_str()));
    let cookie_ttclid =
        || reference_get(&header, cookie::TTCLID).filter(|v| reference_is_cookie_value(v));
    assert_eq!(
        element.user.ttclid.as_deref(),
        page_ttclid.as_deref().or_else(cookie_ttclid),
        "the element's ttclid for {}",
        context()
    );
    assert_eq!(
        set_cookies.len(),
        1 + usize::from(expected_ttclid.is_some())
    );
}

// ---- 4. destination: the admin API's settings, baselines and live switch -----------------

/// Fields whose values an error names on purpose, so the operator sees which one is
/// wrong: origins, the cookie domain, event names. None of them is secret.
const NAMED_IN_ERRORS: &[&str] = &[
    "site_origins",
    "cookie_domain",
    "event_overrides",
    "conversion_events",
];

/// One string of a JSON body: where its content is, and the top-level field it is under.
struct JsonString {
    /// The bytes between the quotes, escapes as written.
    content: std::ops::Range<usize>,
    key: bool,
    top: Option<String>,
}

/// Every string of `body`, which must be valid JSON (lexical, so duplicates are kept).
fn json_strings(body: &[u8]) -> Vec<JsonString> {
    let mut strings = Vec::new();
    let (mut at, mut depth, mut top) = (0, 0usize, None::<String>);
    while at < body.len() {
        match body[at] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = at + 1;
                at = start;
                while at < body.len() && body[at] != b'"' {
                    at += if body[at] == b'\\' { 2 } else { 1 };
                }
                let content = start..at.min(body.len());
                let after = body[at.min(body.len())..]
                    .iter()
                    .skip(1)
                    .find(|b| !b.is_ascii_whitespace());
                let key = after == Some(&b':');
                if key && depth == 1 {
                    let raw = &body[start - 1..(at + 1).min(body.len())];
                    top = serde_json::from_slice::<String>(raw).ok();
                }
                strings.push(JsonString {
                    content,
                    key,
                    top: top.clone(),
                });
            }
            _ => {}
        }
        at += 1;
    }
    strings
}

/// Letters and digits moved one on (`a`→`b`, `z`→`a`, `9`→`0`); everything else kept.
fn rotate(byte: u8) -> u8 {
    match byte {
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        b'a'..=b'y' | b'A'..=b'Y' | b'0'..=b'8' => byte + 1,
        _ => byte,
    }
}

/// Panics when `error`, which `read` answered for `body`, echoes a string value of the
/// body (outside [`NAMED_IN_ERRORS`]): when a run of six characters of the message that is
/// in such a value is gone once the value's letters and digits are moved one on (see
/// [`rotate`]), and the moved run is there instead. Moving keeps each value's length and
/// its kinds of characters, so the body is refused for the same reason; text of the
/// message's own (`is not a known field`) stays, and so is never taken for an echo.
fn assert_no_value_echoed(
    what: &str,
    body: &[u8],
    error: &SettingsError,
    read: impl Fn(&[u8]) -> Result<(), SettingsError>,
) {
    if serde_json::from_slice::<de::IgnoredAny>(body).is_err() {
        // Not JSON: serde_json's syntax messages never quote the input.
        return;
    }
    let mut moved = body.to_vec();
    let mut values = Vec::new();
    for string in json_strings(body) {
        let named = string
            .top
            .as_deref()
            .is_some_and(|top| NAMED_IN_ERRORS.contains(&top));
        if string.key || named {
            continue;
        }
        let mut at = string.content.start;
        while at < string.content.end {
            match body[at] {
                b'\\' if body.get(at + 1) == Some(&b'u') => at += 6,
                b'\\' => at += 2,
                byte => {
                    moved[at] = rotate(byte);
                    at += 1;
                }
            }
        }
        let raw = &body[string.content.start - 1..=string.content.end];
        if let Ok(value) = serde_json::from_slice::<String>(raw) {
            values.push(value);
        }
    }
    let message: Vec<char> = error.message.chars().collect();
    let runs: Vec<String> = message
        .windows(6)
        .map(|window| window.iter().collect::<String>())
        .filter(|run| values.iter().any(|value| value.contains(run.as_str())))
        .collect();
    if runs.is_empty() {
        return;
    }
    let Err(moved_error) = read(&moved) else {
        return;
    };
    if (moved_error.path.as_str(), moved_error.code()) != (error.path.as_str(), error.code()) {
        // Refused for another reason now: no conclusion.
        return;
    }
    for run in runs {
        let moved_run: String = run
            .chars()
            .map(|c| match u8::try_from(c) {
                Ok(byte) => char::from(rotate(byte)),
                Err(_) => c,
            })
            .collect();
        if moved_run != run
            && !moved_error.message.contains(&run)
            && moved_error.message.contains(&moved_run)
        {
            panic!(
                "{what} error {error:?} echoes {run:?}, from a value of {} (with the values \
                 moved on: {moved_error:?})",
                shown(body)
            );
        }
    }
}

/// The keys of `body`, decoded (none when it is not JSON).
fn json_keys(body: &[u8]) -> Vec<String> {
    if serde_json::from_slice::<de::IgnoredAny>(body).is_err() {
        return Vec::new();
    }
    json_strings(body)
        .into_iter()
        .filter(|string| string.key)
        .filter_map(|string| {
            serde_json::from_slice(&body[string.content.start - 1..=string.content.end]).ok()
        })
        .collect()
}
/// The access token as the canary of [`destination_check`]: text no message has.
const CANARY: &str = "SeCrEtToKeN";

/// `body` with `"access_token": <one of eight shapes of the canary>` as its first member,
/// when it is an object.
fn with_canary_token(body: &[u8]) -> Option<Vec<u8>> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body[start] != b'{' {
        return None;
    }
    let rest = &body[start + 1..];
    let token = match body.len() % 8 {
        0 => format!("\"{CANARY}-ok.123\""),
        1 => format!("\"{CANARY} with a space\""),
        2 => format!("\"{CANARY}\\u00e9\""),
        3 => format!("\"{CANARY}\\u007f\""),
        4 => format!("\"{CANARY}{}\"", "x".repeat(600)),
        5 => format!("[\"{CANARY}\"]"),
        6 => format!("{{\"t\":\"{CANARY}\"}}"),
        _ => format!("\" {CANARY} \""),
    };
    let mut out = b"{\"access_token\":".to_vec();
    out.extend_from_slice(token.as_bytes());
    if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Settings that `parse_settings` accepted: normalised for good, and the token never shown.
fn check_accepted(host: &str, body: &[u8], settings: &DestinationSettings) {
    let context = || format!("host {host:?}, body {}", shown(body));
    let json = serde_json::to_value(settings).expect("settings serialise");
    let Value::Object(mut object) = json else {
        panic!("settings serialise to a non-object for {}", context());
    };
    assert!(!object.contains_key("access_token"), "{}", context());
    if let Some(token) = &settings.access_token {
        // Neither Debug nor the serialisation depends on the token.
        let other = DestinationSettings {
            access_token: Some(format!("{token}x")),
            ..settings.clone()
        };
        assert!(
            format!("{settings:?}") == format!("{other:?}"),
            "Debug shows the token: {}",
            context()
        );
        assert!(
            serde_json::to_string(settings).ok() == serde_json::to_string(&other).ok(),
            "the serialised settings hold the token: {}",
            context()
        );
        object.insert("access_token".into(), Value::String(token.clone()));
    }
    // The webhook secret is write-only too: never serialised, given again as the token is.
    assert!(!object.contains_key("webhook_secret"), "{}", context());
    if let Some(secret) = &settings.webhook_secret {
        let other = DestinationSettings {
            webhook_secret: Some(format!("{secret}x")),
            ..settings.clone()
        };
        assert!(
            format!("{settings:?}") == format!("{other:?}"),
            "Debug shows the webhook secret: {}",
            context()
        );
        object.insert("webhook_secret".into(), Value::String(secret.clone()));
    }
    let again = serde_json::to_vec(&Value::Object(object)).expect("JSON serialises");
    match destination::parse_settings(host, &again, suffixes()) {
        Ok(back) => assert!(
            back == *settings,
            "settings change when read again: {}\nfirst:  {settings:?}\nsecond: {back:?}",
            context()
        ),
        Err(error) => panic!(
            "accepted settings are refused when read again ({error}): {}\nsettings: {}",
            context(),
            String::from_utf8_lossy(&again)
        ),
    }
    assert!(
        settings.name_rules().overrides() == &settings.event_overrides,
        "the name rules differ from the overrides for {}: {:?}",
        context(),
        settings.name_rules().overrides()
    );
    if let Some(domain) = &settings.cookie_domain {
        let set_cookie = cookie::set_ttp("abc", Some(domain));
        if let Err(problem) = check_set_cookie(&set_cookie, Some(domain)) {
            panic!(
                "accepted cookie domain makes {set_cookie:?}: {problem}; {}",
                context()
            );
        }
    }
    let _ = settings.pipeline_destination();
}

/// The admin API's readers never panic; what `parse_settings` accepts reads back the same
/// from its own serialisation (the access token added back); no error echoes a value, and
/// none ever shows the access token.
pub fn destination_check(data: &[u8]) {
    let (host, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (text(&data[..at]), &data[at + 1..]),
        None => (Cow::Borrowed("t.shop.example"), data),
    };
    let host = host.strip_suffix('\r').unwrap_or(&host);
    match destination::parse_settings(host, body, suffixes()) {
        Ok(settings) => check_accepted(host, body, &settings),
        Err(error) => assert_no_value_echoed("settings", body, &error, |body| {
            destination::parse_settings(host, body, suffixes()).map(drop)
        }),
    }
    match destination::parse_baseline(body) {
        Ok(baseline) => {
            let (from, to) = baseline.day_range();
            assert!(from <= to && to - from < destination::MAX_BASELINE_DAYS);
            let again = serde_json::to_vec(&baseline).expect("a baseline serialises");
            assert_eq!(destination::parse_baseline(&again), Ok(baseline));
        }
        Err(error) => assert_no_value_echoed("baseline", body, &error, |body| {
            destination::parse_baseline(body).map(drop)
        }),
    }
    match destination::parse_live(body) {
        Ok(live) => {
            let again = serde_json::json!({ "live": live }).to_string();
            assert_eq!(destination::parse_live(again.as_bytes()), Ok(live));
        }
        Err(error) => assert_no_value_echoed("live", body, &error, |body| {
            destination::parse_live(body).map(drop)
        }),
    }

    // The same body with an access token in front: no answer ever shows it.
    let Some(with_token) = with_canary_token(body) else {
        return;
    };
    let mut shown_errors = String::new();
    match destination::parse_settings(host, &with_token, suffixes()) {
        Ok(settings) => check_accepted(host, &with_token, &settings),
        Err(error) => {
            let _ = write!(shown_errors, "{error} {error:?} ");
        }
    }
    if let Err(error) = destination::parse_baseline(&with_token) {
        let _ = write!(shown_errors, "{error} {error:?} ");
    }
    if let Err(error) = destination::parse_live(&with_token) {
        let _ = write!(shown_errors, "{error} {error:?} ");
    }
    // A key may hold the canary's text; an unknown field is named by its key.
    let keys = json_keys(body);
    assert!(
        !shown_errors.contains(CANARY) || keys.iter().any(|key| key.contains(CANARY)),
        "an error shows the access token: {shown_errors}\nbody: {}",
        shown(&with_token)
    );
}

/// The offline CSV reader (`ttedge send` and the upload endpoint) never panics on any bytes;
/// its rows come on rising lines within the text; read as a chunk (`first_line`) the same rows
/// come moved by one constant; and every readable row becomes an offline event with an
/// `<Event>-…` id, or a reason, without panicking.
pub fn offline_csv_check(data: &[u8]) {
    let map = ColumnMap::default();
    let Ok(rows) = offline::csv_rows(data, &map, None) else {
        return;
    };
    let ends = (0..data.len())
        .filter(|&i| data[i] == b'\n' || (data[i] == b'\r' && data.get(i + 1) != Some(&b'\n')))
        .count();
    let mut last = 1;
    for row in &rows {
        assert!(
            row.line > last && row.line <= ends + 1,
            "line {} after {last} ({ends} line ends) in {}",
            row.line,
            shown(data)
        );
        last = row.line;
    }
    let first_line = 1 + data.len() % 1_000;
    let moved = offline::csv_rows(data, &map, Some(first_line)).expect("read once already");
    assert_eq!(moved.len(), rows.len(), "{}", shown(data));
    if let (Some(a), Some(b)) = (rows.first(), moved.first()) {
        assert!(
            b.line >= first_line,
            "first row on {} < {first_line}",
            b.line
        );
        let shift = b.line as i64 - a.line as i64;
        for (a, b) in rows.iter().zip(&moved) {
            assert_eq!(b.line as i64 - a.line as i64, shift, "{}", shown(data));
            assert_eq!(a.cells, b.cells, "{}", shown(data));
        }
    }
    let now = 1_764_600_000_000;
    let offset = FixedOffset::parse("+07:00").expect("an offset");
    for row in &rows {
        let Ok(cells) = &row.cells else { continue };
        let event = OfflineRow::from_cells(cells, &offset).and_then(|offline| {
            offline::to_collect_event(&offline, &NameRules::default(), now, offline::MAX_AGE_MS)
        });
        if let Ok(event) = event {
            let id = event.event_id.as_deref().unwrap_or_default();
            let name = event.event.as_deref().unwrap_or_default();
            assert!(
                id.starts_with(&format!("{name}-")),
                "{id} of {}",
                shown(data)
            );
        }
    }
}
