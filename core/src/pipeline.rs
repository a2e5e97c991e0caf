//! One collect request through every rule: name, consent, hashing, cookies, score, element.
//!
//! The Worker calls [`prepare`] and the `ttedge` command [`prepare_request`], its owned
//! twin, so what `ttedge preview` shows is exactly what the edge would send.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Serialize;

use crate::consent::{self, ConsentDecision};
use crate::cookie;
use crate::event::{CollectEvent, PixelStatus, Properties, Source, UserData};
use crate::hashing::{self, Sha256Hex};
use crate::identity::{self, IdentityUse};
use crate::mapping::{NameMapping, NameRules};
use crate::offline::RowError;
use crate::quality::{self, MatchQuality, MatchSignals};
use crate::text;
use crate::tiktok::{Content, Page, RequestKey, TrackEvent, TrackProperties, User};

/// Where a site's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The TikTok pixel code (`event_source_id`).
    pub pixel_id: String,
    /// Sends everything as test events when set.
    pub test_event_code: Option<String>,
    /// Name overrides and the custom-events switch.
    pub names: NameRules,
}

impl Destination {
    /// The request key its events are grouped under.
    pub fn request_key(&self) -> RequestKey<'_> {
        RequestKey::web(&self.pixel_id, self.test_event_code.as_deref())
    }
}

/// What the Worker knows about the HTTP request, and the time and randomness core may not
/// fetch itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext<'a> {
    /// Now, epoch milliseconds.
    pub now_ms: u64,
    /// Random bytes for a new `_ttp` when the browser has none; `None` never mints one
    /// (`ttedge preview` has no cookie jar to put it in).
    pub ttp_random: Option<[u8; 16]>,
    /// Random bytes that prefix generated event ids.
    pub id_random: [u8; 16],
    /// `CF-Connecting-IP`.
    pub ip: Option<&'a str>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Accept-Language`.
    pub accept_language: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie_header: Option<&'a str>,
    /// `Domain` for cookies: `COOKIE_DOMAIN` or the request host's registrable domain.
    pub cookie_domain: Option<&'a str>,
}

/// The fate of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Will be sent to TikTok.
    Ready,
    /// Never sent: an internal event, or custom events are off.
    Skipped,
    /// Held back by consent (`sendable_to_ads: false`).
    Held,
    /// Cannot be sent as it is; the reason says why.
    Rejected,
}

/// One event after the rules, in the shape `ttedge preview` prints.
///
/// Its text borrows from the collect body and the request headers (`'a`);
/// [`into_owned`](PreparedEvent::into_owned) makes a copy that outlives them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreparedEvent<'a> {
    /// Position in the request.
    pub index: usize,
    /// Given, or generated when absent.
    pub event_id: Cow<'a, str>,
    /// Ready, skipped, held or rejected.
    pub status: Status,
    /// Why the event is not ready.
    pub reason: Option<String>,
    /// The `data[]` element, when ready.
    pub tiktok: Option<TrackEvent<'a>>,
    /// Match quality, when the event maps to a TikTok event.
    pub emq: Option<MatchQuality>,
    /// The TikTok event name, when the event maps to one.
    #[serde(skip)]
    pub event_name: Option<Cow<'a, str>>,
    /// Browser or offline.
    #[serde(skip)]
    pub source: Source,
    /// The page's pixel status, for recovery figures.
    #[serde(skip)]
    pub pixel: Option<PixelStatus>,
    /// What identity resolution may do with it, as its consent allows.
    #[serde(skip)]
    pub identity: IdentityUse,
}

impl PreparedEvent<'_> {
    /// A copy that owns all of its text.
    pub fn into_owned(self) -> PreparedEvent<'static> {
        PreparedEvent {
            index: self.index,
            event_id: Cow::Owned(self.event_id.into_owned()),
            status: self.status,
            reason: self.reason,
            tiktok: self.tiktok.map(TrackEvent::into_owned),
            emq: self.emq,
            event_name: self.event_name.map(|name| Cow::Owned(name.into_owned())),
            source: self.source,
            pixel: self.pixel,
            identity: self.identity,
        }
    }
}

/// A whole collect request after the rules, borrowing its text like [`PreparedEvent`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared<'a> {
    /// One per input event, in order.
    pub events: Vec<PreparedEvent<'a>>,
    /// `Set-Cookie` header values for the answer.
    pub set_cookies: Vec<String>,
}

/// A whole collect request after the rules, owning its text: what [`prepare_request`] gives.
pub type PreparedRequest = Prepared<'static>;

impl Prepared<'_> {
    /// A copy that owns all of its text.
    pub fn into_owned(self) -> PreparedRequest {
        Prepared {
            events: self
                .events
                .into_iter()
                .map(PreparedEvent::into_owned)
                .collect(),
            set_cookies: self.set_cookies,
        }
    }
}

/// The click and browser ids one event can use.
struct EventIds<'a, 'r> {
    /// The `ttclid` of the event's own page URL.
    page_ttclid: Option<Cow<'a, str>>,
    /// The request's cookies.
    browser: &'r BrowserIds<'a>,
}

/// Cookie state shared by the events of one browser request.
struct BrowserIds<'a> {
    ttp: Option<Cow<'a, str>>,
    /// The ttp was minted by this request.
    new_ttp: bool,
    ttclid_cookie: Option<&'a str>,
}

/// Runs every event of a request through the rules and decides the cookies to set, into
/// a result that owns its text (see [`prepare`] for the one that borrows it).
pub fn prepare_request(
    events: Vec<CollectEvent<'_>>,
    ctx: &RequestContext<'_>,
    destination: &Destination,
) -> PreparedRequest {
    prepare(&events, ctx, destination).into_owned()
}

/// Runs every event of a request through the rules and decides the cookies to set.
///
/// The result borrows its text from `events` and `ctx` instead of copying it: the Worker
/// serialises the elements ([`TrackEvent::to_json`]) while the body is still at hand.
pub fn prepare<'a>(
    events: &'a [CollectEvent<'_>],
    ctx: &RequestContext<'a>,
    destination: &Destination,
) -> Prepared<'a> {
    let is_browser = |event: &&CollectEvent<'_>| source_of(event) == Source::Browser;
    let browser = || events.iter().filter(is_browser);
    // One event that refuses ad storage is enough to set no cookie for the whole request.
    let cookies_allowed = browser().next().is_some()
        && browser().all(|e| consent::decide(e.consent.as_ref()).cookies_allowed);

    let cookie_value = |name| {
        ctx.cookie_header
            .and_then(|header| cookie::get(header, name))
            .filter(|value| cookie::is_cookie_value(value))
    };
    let known_ttp = cookie_value(cookie::TTP).or_else(|| {
        browser()
            .filter_map(|e| e.context.as_ref()?.ttp.as_deref())
            .map(text::trim)
            .find(|ttp| cookie::is_cookie_value(ttp))
    });
    let ttp = match known_ttp {
        Some(ttp) => Some(Cow::Borrowed(ttp)),
        None if cookies_allowed => ctx
            .ttp_random
            .map(|random| Cow::Owned(cookie::new_ttp(random, ctx.now_ms))),
        None => None,
    };
    let ids = BrowserIds {
        new_ttp: known_ttp.is_none() && ttp.is_some(),
        ttp,
        ttclid_cookie: cookie_value(cookie::TTCLID),
    };
    // Each page URL is read once, for its event's `ttclid` and for the cookie: the landing
    // page is the last browser event's page that has one.
    let mut landing_ttclid = None;
    let events = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let page_ttclid = event.url.as_deref().and_then(cookie::ttclid_from_url);
            if is_browser(&event) && page_ttclid.is_some() {
                landing_ttclid.clone_from(&page_ttclid);
            }
            let ids = EventIds {
                page_ttclid,
                browser: &ids,
            };
            prepare_event(index, event, ctx, &ids, destination)
        })
        .collect();

    let mut set_cookies = Vec::new();
    if cookies_allowed {
        if let Some(ttp) = &ids.ttp {
            set_cookies.push(cookie::set_ttp(ttp, ctx.cookie_domain));
        }
        if let Some(ttclid) = landing_ttclid.filter(|v| cookie::is_cookie_value(v)) {
            set_cookies.push(cookie::set_ttclid(&ttclid, ctx.cookie_domain));
        }
    }
    Prepared {
        events,
        set_cookies,
    }
}

fn source_of(event: &CollectEvent<'_>) -> Source {
    event.source.unwrap_or_default()
}

fn prepare_event<'a>(
    index: usize,
    event: &'a CollectEvent<'_>,
    ctx: &RequestContext<'a>,
    ids: &EventIds<'a, '_>,
    destination: &Destination,
) -> PreparedEvent<'a> {
    let event_id = match non_empty(event.event_id.as_deref()) {
        Some(id) => id,
        None => Cow::Owned(format!("{}-{index}", hex::encode(ctx.id_random))),
    };
    let source = source_of(event);
    let pixel = event.context.as_ref().and_then(|c| c.pixel);
    let mut prepared = PreparedEvent {
        index,
        event_id,
        status: Status::Rejected,
        reason: None,
        tiktok: None,
        emq: None,
        event_name: None,
        source,
        pixel,
        identity: identity::allowed(
            event.consent.as_ref(),
            source,
            source == Source::Browser && ids.browser.new_ttp,
        ),
    };
    let incoming = event.event.as_deref().unwrap_or_default();
    let name = match destination.names.resolve(incoming) {
        Ok(name) => name,
        Err(NameMapping::Skip(reason)) => {
            prepared.status = Status::Skipped;
            prepared.reason = Some(reason.to_string());
            return prepared;
        }
        Err(NameMapping::Reject(error)) => {
            prepared.reason = Some(error.to_string());
            return prepared;
        }
        // `resolve` gives sent names as `Ok`; this arm only keeps the match whole.
        Err(NameMapping::Send(name)) => Cow::Owned(name),
    };
    prepared.event_name = Some(name.clone());

    let properties = match track_properties(event.properties.as_ref()) {
        Ok(properties) => properties,
        Err(reason) => {
            prepared.reason = Some(reason);
            return prepared;
        }
    };
    let decision = consent::decide(event.consent.as_ref());
    let element = TrackEvent {
        event: name,
        event_time: event_time_secs(event, ctx.now_ms),
        event_id: prepared.event_id.clone(),
        user: track_user(event, source, decision, ctx, ids),
        page: Page {
            url: non_empty(event.url.as_deref()),
            referrer: non_empty(event.referrer.as_deref()),
        },
        properties,
        limited_data_use: decision.limited_data_use,
    };
    if source == Source::Offline && !element.user.identifies() {
        // TikTok refuses an offline event without one; no cookie or IP can stand in for it.
        prepared.reason = Some(RowError::NoIdentifier.to_string());
        return prepared;
    }
    prepared.emq = Some(quality::score(&match_signals(&element), source));
    prepared.identity = prepared.identity.for_user(&element.user);
    if decision.send {
        prepared.status = Status::Ready;
        prepared.tiktok = Some(element);
    } else {
        prepared.status = Status::Held;
        prepared.reason = Some("held back by consent: sendable_to_ads is false".to_string());
    }
    prepared
}

/// Trimmed, and `None` when empty; still borrowed.
fn non_empty(value: Option<&str>) -> Option<Cow<'_, str>> {
    value
        .map(text::trim)
        .filter(|v| !v.is_empty())
        .map(Cow::Borrowed)
}

fn event_time_secs(event: &CollectEvent<'_>, now_ms: u64) -> i64 {
    match event.timestamp {
        Some(timestamp) => timestamp.0.div_euclid(1_000),
        None => (now_ms / 1_000) as i64,
    }
}

fn track_user<'a>(
    event: &'a CollectEvent<'_>,
    source: Source,
    decision: ConsentDecision,
    ctx: &RequestContext<'a>,
    ids: &EventIds<'a, '_>,
) -> User<'a> {
    let mut user = User::default();
    if !decision.strip_pii {
        if let Some(data) = &event.user_data {
            hash_user_data(data, &mut user);
        }
    }
    // What the page said about itself, each field trimmed and non-empty.
    let context = event.context.as_ref();
    let ttp_in_context = || non_empty(context.and_then(|c| c.ttp.as_deref()));
    let ttclid_in_context = || non_empty(context.and_then(|c| c.ttclid.as_deref()));
    let ip_in_context = || non_empty(context.and_then(|c| c.ip.as_deref()));
    let user_agent_in_context = || non_empty(context.and_then(|c| c.user_agent.as_deref()));
    // The page URL's ttclid is the freshest click; then the cookie, then what the page said.
    user.ttclid = ids
        .page_ttclid
        .clone()
        .or_else(|| match source {
            Source::Browser => ids.browser.ttclid_cookie.map(Cow::Borrowed),
            Source::Offline => None,
        })
        .or_else(ttclid_in_context);
    match source {
        // Request headers describe the browser that sent the event; they win.
        Source::Browser => {
            if decision.cookies_allowed {
                user.ttp = ids.browser.ttp.clone();
            }
            user.ip = non_empty(ctx.ip).or_else(ip_in_context);
            user.user_agent = non_empty(ctx.user_agent).or_else(user_agent_in_context);
            user.locale = ctx
                .accept_language
                .and_then(language_tag)
                .map(Cow::Borrowed);
        }
        // An offline upload's headers describe the uploading server, not the customer.
        Source::Offline => {
            if decision.cookies_allowed {
                user.ttp = ttp_in_context();
            }
            user.ip = ip_in_context();
            user.user_agent = user_agent_in_context();
        }
    }
    user
}

/// Clear values win over the page's hashes: ttedge then controls normalisation. A "hash" that
/// is not 64 hex characters is treated as a clear value, so it is never sent unhashed.
fn hash_user_data(data: &UserData<'_>, user: &mut User<'_>) {
    let clear_or_hashed =
        |clear: Option<&str>, hashed: Option<&str>, hash: fn(&str) -> Option<Sha256Hex>| {
            clear.and_then(hash).or_else(|| hashed.and_then(hash))
        };
    user.email = clear_or_hashed(
        data.email.as_deref(),
        data.email_hash.as_deref(),
        hashing::email,
    );
    user.phone = clear_or_hashed(
        data.phone.as_deref(),
        data.phone_hash.as_deref(),
        hashing::phone,
    );
    user.external_id = clear_or_hashed(data.external_id.as_deref(), None, hashing::external_id);
}

/// `en-US,en;q=0.9` → `en-US`.
pub fn first_language_tag(accept_language: &str) -> Option<String> {
    language_tag(accept_language).map(str::to_string)
}

/// [`first_language_tag`], borrowed from the header.
fn language_tag(accept_language: &str) -> Option<&str> {
    let tag = text::trim(text::before(text::before(accept_language, b','), b';'));
    (!tag.is_empty() && tag != "*").then_some(tag)
}

/// Properties for TikTok. An invalid currency is refused here, before batching, because
/// TikTok would refuse the whole request it travels in.
fn track_properties<'a>(
    properties: Option<&'a Properties<'_>>,
) -> Result<TrackProperties<'a>, String> {
    let Some(properties) = properties else {
        return Ok(TrackProperties::default());
    };
    let currency = match non_empty(properties.currency.as_deref()) {
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            if code.bytes().all(|b| b.is_ascii_uppercase()) {
                Some(code)
            } else {
                Some(Cow::Owned(code.to_ascii_uppercase()))
            }
        }
        Some(code) => {
            return Err(format!(
                "properties.currency: expected a 3-letter ISO 4217 code, found {code:?}"
            ))
        }
        None => None,
    };
    let contents: Vec<Content<'a>> = properties
        .line_items()
        .iter()
        .map(|item| Content {
            content_id: item.product_id().map(Cow::Borrowed),
            content_name: item.name().map(Cow::Borrowed),
            content_category: item.category().map(Cow::Borrowed),
            brand: item.brand().map(Cow::Borrowed),
            quantity: item.quantity,
            price: item.price,
        })
        .collect();
    Ok(TrackProperties {
        value: properties.value,
        currency,
        content_type: (!contents.is_empty()).then_some(Cow::Borrowed("product")),
        contents,
        order_id: non_empty(properties.order_id.as_deref()),
        query: non_empty(properties.query.as_deref()),
        description: non_empty(properties.description.as_deref()),
    })
}

/// What the element carries that TikTok can match on.
pub fn match_signals(element: &TrackEvent<'_>) -> MatchSignals {
    let user = &element.user;
    let properties = &element.properties;
    MatchSignals {
        email: user.email.is_some(),
        phone: user.phone.is_some(),
        external_id: user.external_id.is_some(),
        ttp: user.ttp.is_some(),
        ttclid: user.ttclid.is_some(),
        ip: user.ip.is_some(),
        user_agent: user.user_agent.is_some(),
        value: properties.value.is_some(),
        currency: properties.currency.is_some(),
        contents: !properties.contents.is_empty(),
        content_id: properties.contents.iter().any(|c| c.content_id.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_collect, MAX_BATCH_EVENTS};
    use crate::quality::Grade;

    fn destination() -> Destination {
        Destination {
            pixel_id: "PIXEL1".into(),
            test_event_code: None,
            names: NameRules::default(),
        }
    }

    fn ctx() -> RequestContext<'static> {
        RequestContext {
            now_ms: 1_764_064_800_123,
            ttp_random: Some([0xab; 16]),
            id_random: [0xcd; 16],
            ip: Some("198.51.100.7"),
            user_agent: Some("Mozilla/5.0 Test"),
            accept_language: Some("de-CH,de;q=0.9"),
            cookie_header: None,
            cookie_domain: Some("shop.com"),
        }
    }

    fn run(body: &str, ctx: &RequestContext<'_>) -> PreparedRequest {
        let events = parse_collect(body.as_bytes(), MAX_BATCH_EVENTS).unwrap();
        prepare_request(events, ctx, &destination())
    }

    #[test]
    fn headers_win_for_browser_events() {
        let out = run(
            r#"{"event":"page_view","context":{"ip":"10.0.0.1","user_agent":"ctx"}}"#,
            &ctx(),
        );
        let user = &out.events[0].tiktok.as_ref().unwrap().user;
        assert_eq!(user.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(user.user_agent.as_deref(), Some("Mozilla/5.0 Test"));
        assert_eq!(user.locale.as_deref(), Some("de-CH"));
    }

    #[test]
    fn offline_events_ignore_request_headers_and_cookies() {
        let out = run(
            r#"{"event":"purchase","source":"offline","context":{"ip":"10.0.0.1"},"user_data":{"external_id":"c-1"}}"#,
            &ctx(),
        );
        let user = &out.events[0].tiktok.as_ref().unwrap().user;
        assert_eq!(user.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            (user.user_agent.as_deref(), user.ttp.as_deref()),
            (None, None)
        );
        assert!(out.set_cookies.is_empty());
    }

    #[test]
    fn offline_events_need_an_email_a_phone_or_an_external_id() {
        let out = run(
            r#"{"batch":[{"event":"purchase","source":"offline","context":{"ip":"10.0.0.1","ttp":"t1"}},
                {"event":"purchase","source":"offline","user_data":{"email":"  "}},
                {"event":"purchase","source":"offline","user_data":{"phone":"+1 555 0100"}},
                {"event":"purchase","context":{"ip":"10.0.0.1"}}]}"#,
            &ctx(),
        );
        let statuses: Vec<_> = out.events.iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            [
                Status::Rejected,
                Status::Rejected,
                Status::Ready,
                Status::Ready
            ]
        );
        let reason = out.events[0].reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with("no identifier"), "{reason}");
    }

    #[test]
    fn existing_ttp_is_kept_and_extended() {
        let mut ctx = ctx();
        ctx.cookie_header = Some("_ttp=KeepMe123; other=1");
        let out = run(r#"{"event":"page_view"}"#, &ctx);
        assert_eq!(
            out.events[0].tiktok.as_ref().unwrap().user.ttp.as_deref(),
            Some("KeepMe123")
        );
        assert_eq!(
            out.set_cookies,
            ["_ttp=KeepMe123; Domain=shop.com; Path=/; Max-Age=34128000; Secure; SameSite=Lax"]
        );
    }

    #[test]
    fn missing_ttp_is_minted_and_sent() {
        let out = run(r#"{"event":"page_view"}"#, &ctx());
        let ttp = out.events[0]
            .tiktok
            .as_ref()
            .unwrap()
            .user
            .ttp
            .clone()
            .unwrap();
        assert_eq!(ttp, cookie::new_ttp([0xab; 16], ctx().now_ms));
        assert!(out.set_cookies[0].starts_with(&format!("_ttp={ttp};")));
    }

    #[test]
    fn denied_storage_sets_no_cookie_and_sends_no_ttp() {
        let mut ctx = ctx();
        ctx.cookie_header = Some("_ttp=KeepMe123");
        let out = run(
            r#"{"event":"page_view","url":"https://shop.com/?ttclid=abc",
               "consent":{"sendable_to_ads":true,"ad_storage":"denied","ad_user_data":"granted"}}"#,
            &ctx,
        );
        let element = out.events[0].tiktok.as_ref().unwrap();
        assert_eq!(element.user.ttp, None);
        assert_eq!(element.user.ttclid.as_deref(), Some("abc"));
        assert!(element.limited_data_use);
        assert!(out.set_cookies.is_empty());
    }

    #[test]
    fn ttclid_cookie_is_set_from_the_landing_url() {
        let out = run(
            r#"{"event":"page_view","url":"https://shop.com/?ttclid=E.C.P.xyz"}"#,
            &ctx(),
        );
        assert_eq!(
            out.set_cookies[1],
            "ttclid=E.C.P.xyz; Domain=shop.com; Path=/; Max-Age=2592000; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn ttclid_falls_back_to_cookie_then_context() {
        let mut ctx = ctx();
        ctx.cookie_header = Some("ttclid=fromcookie");
        let out = run(
            r#"{"event":"page_view","context":{"ttclid":"fromctx"}}"#,
            &ctx,
        );
        assert_eq!(
            out.events[0]
                .tiktok
                .as_ref()
                .unwrap()
                .user
                .ttclid
                .as_deref(),
            Some("fromcookie")
        );
        let out = run(
            r#"{"event":"page_view","context":{"ttclid":"fromctx"}}"#,
            &self::ctx(),
        );
        assert_eq!(
            out.events[0]
                .tiktok
                .as_ref()
                .unwrap()
                .user
                .ttclid
                .as_deref(),
            Some("fromctx")
        );
    }

    #[test]
    fn held_events_are_scored_but_not_sent() {
        let out = run(
            r#"{"event":"purchase","consent":{"sendable_to_ads":false}}"#,
            &ctx(),
        );
        let event = &out.events[0];
        assert_eq!(event.status, Status::Held);
        assert!(event.tiktok.is_none());
        assert!(event.emq.is_some());
        assert_eq!(event.event_name.as_deref(), Some("CompletePayment"));
    }

    #[test]
    fn generated_event_ids_are_unique_per_request() {
        let out = run(
            r#"{"batch":[{"event":"a"},{"event":"b","event_id":"  "}]}"#,
            &ctx(),
        );
        let prefix = hex::encode([0xcd; 16]);
        assert_eq!(out.events[0].event_id, format!("{prefix}-0"));
        assert_eq!(out.events[1].event_id, format!("{prefix}-1"));
    }

    #[test]
    fn bad_currency_is_rejected_before_batching() {
        let out = run(
            r#"{"event":"purchase","properties":{"currency":"dollars"}}"#,
            &ctx(),
        );
        assert_eq!(out.events[0].status, Status::Rejected);
        assert!(out.events[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("properties.currency"));
    }

    #[test]
    fn minimal_event_scores_low_with_coaching() {
        let out = run(r#"{"event":"ViewContent"}"#, &ctx());
        let emq = out.events[0].emq.as_ref().unwrap();
        assert_eq!(emq.grade, Grade::NeedsImprovement);
        assert_eq!(emq.coaching[0].factor, quality::Factor::Email);
    }

    #[test]
    fn first_language_tags() {
        assert_eq!(
            first_language_tag("en-US,en;q=0.9").as_deref(),
            Some("en-US")
        );
        assert_eq!(first_language_tag("fr;q=0.8").as_deref(), Some("fr"));
        assert_eq!(first_language_tag("*"), None);
        assert_eq!(first_language_tag(""), None);
    }
}
