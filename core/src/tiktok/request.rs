//! The `POST /open_api/v1.3/event/track/` request and its `data[]` element.
//!
//! The element borrows its text (`Cow`) from the collect body and the request headers, so
//! building one allocates little more than its three hashes; [`TrackEvent::to_json`] then
//! writes it straight from those borrows.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::Source;
use crate::hashing::Sha256Hex;
use crate::json::{self, key, Object};

/// Path of the track endpoint, appended to `TIKTOK_API_BASE`.
pub const TRACK_PATH: &str = "/open_api/v1.3/event/track/";

/// The most events TikTok takes in one request.
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;

/// One element of the request's `data[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackEvent<'a> {
    /// TikTok event name, standard or custom.
    pub event: Cow<'a, str>,
    /// Unix time in **seconds**.
    pub event_time: i64,
    /// Deduplication key shared with the pixel.
    pub event_id: Cow<'a, str>,
    /// Matching data; PII is SHA-256 hex.
    pub user: User<'a>,
    /// The page the event happened on.
    #[serde(default, skip_serializing_if = "Page::is_empty")]
    pub page: Page<'a>,
    /// Commerce properties.
    #[serde(default, skip_serializing_if = "TrackProperties::is_empty")]
    pub properties: TrackProperties<'a>,
    /// Limited Data Use, from consent.
    pub limited_data_use: bool,
}

impl TrackEvent<'_> {
    /// A copy that owns all of its text.
    pub fn into_owned(self) -> TrackEvent<'static> {
        TrackEvent {
            event: owned(self.event),
            event_time: self.event_time,
            event_id: owned(self.event_id),
            user: User {
                email: self.user.email,
                phone: self.user.phone,
                external_id: self.user.external_id,
                ttp: self.user.ttp.map(owned),
                ttclid: self.user.ttclid.map(owned),
                ip: self.user.ip.map(owned),
                user_agent: self.user.user_agent.map(owned),
                locale: self.user.locale.map(owned),
            },
            page: Page {
                url: self.page.url.map(owned),
                referrer: self.page.referrer.map(owned),
            },
            properties: self.properties.into_owned(),
            limited_data_use: self.limited_data_use,
        }
    }

    /// The element as JSON: the same bytes as `serde_json::to_string(self)`, written
    /// several times faster (the writer checks eight bytes at a time for escapes). This is what the Worker stores and sends.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.json_len_hint());
        let mut element = Object::open(&mut out);
        element.str(key!("event"), &self.event);
        json::write_int(element.key(key!("event_time")), self.event_time);
        element.str(key!("event_id"), &self.event_id);
        self.user.write_json(element.key(key!("user")));
        if !self.page.is_empty() {
            let mut page = Object::open(element.key(key!("page")));
            page.opt_str(key!("url"), self.page.url.as_deref());
            page.opt_str(key!("referrer"), self.page.referrer.as_deref());
            page.close();
        }
        if !self.properties.is_empty() {
            self.properties.write_json(element.key(key!("properties")));
        }
        json::write_bool(element.key(key!("limited_data_use")), self.limited_data_use);
        element.close();
        out
    }

    /// Enough room for the element without escapes, so the string is allocated once.
    fn json_len_hint(&self) -> usize {
        let text = |value: &Option<Cow<'_, str>>| value.as_ref().map_or(0, |text| text.len());
        let user = &self.user;
        let properties = &self.properties;
        let contents: usize = properties
            .contents
            .iter()
            .map(|c| {
                120 + text(&c.content_id)
                    + text(&c.content_name)
                    + text(&c.content_category)
                    + text(&c.brand)
            })
            .sum();
        400 + self.event.len()
            + self.event_id.len()
            + 3 * 64
            + [
                &user.ttp,
                &user.ttclid,
                &user.ip,
                &user.user_agent,
                &user.locale,
                &self.page.url,
                &self.page.referrer,
                &properties.currency,
                &properties.content_type,
                &properties.order_id,
                &properties.query,
                &properties.description,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>()
            + contents
    }
}

/// `data[].user`. Absent values are left out rather than sent empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User<'a> {
    /// SHA-256 of the normalised email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Sha256Hex>,
    /// SHA-256 of the phone's digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Sha256Hex>,
    /// SHA-256 of the trimmed external id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<Sha256Hex>,
    /// The `_ttp` cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttp: Option<Cow<'a, str>>,
    /// The TikTok click id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttclid: Option<Cow<'a, str>>,
    /// The visitor's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Cow<'a, str>>,
    /// The visitor's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Cow<'a, str>>,
    /// The first `Accept-Language` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Cow<'a, str>>,
}

impl User<'_> {
    /// Whether it names a person: by email, phone or external id (what an offline event
    /// needs, and what identity resolution keeps).
    pub fn identifies(&self) -> bool {
        self.email.is_some() || self.phone.is_some() || self.external_id.is_some()
    }

    fn write_json(&self, out: &mut String) {
        let mut user = Object::open(out);
        user.opt_digest(key!("email"), self.email.as_ref());
        user.opt_digest(key!("phone"), self.phone.as_ref());
        user.opt_digest(key!("external_id"), self.external_id.as_ref());
        user.opt_str(key!("ttp"), self.ttp.as_deref());
        user.opt_str(key!("ttclid"), self.ttclid.as_deref());
        user.opt_str(key!("ip"), self.ip.as_deref());
        user.opt_str(key!("user_agent"), self.user_agent.as_deref());
        user.opt_str(key!("locale"), self.locale.as_deref());
        user.close();
    }
}

/// `data[].page`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<'a> {
    /// The page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    /// The referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Cow<'a, str>>,
}

impl Page<'_> {
    fn is_empty(&self) -> bool {
        self.url.is_none() && self.referrer.is_none()
    }
}

/// `data[].properties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackProperties<'a> {
    /// Order or cart value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// ISO 4217, upper-case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Cow<'a, str>>,
    /// `product` whenever there are contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Cow<'a, str>>,
    /// Line items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content<'a>>,
    /// The shop's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Cow<'a, str>>,
    /// A search query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Cow<'a, str>>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
}

impl TrackProperties<'_> {
    /// Whether every field is unset: such properties are left out of the element.
    pub fn is_empty(&self) -> bool {
        *self == TrackProperties::default()
    }

    fn into_owned(self) -> TrackProperties<'static> {
        TrackProperties {
            value: self.value,
            currency: self.currency.map(owned),
            content_type: self.content_type.map(owned),
            contents: self
                .contents
                .into_iter()
                .map(|content| Content {
                    content_id: content.content_id.map(owned),
                    content_name: content.content_name.map(owned),
                    content_category: content.content_category.map(owned),
                    brand: content.brand.map(owned),
                    quantity: content.quantity,
                    price: content.price,
                })
                .collect(),
            order_id: self.order_id.map(owned),
            query: self.query.map(owned),
            description: self.description.map(owned),
        }
    }

    fn write_json(&self, out: &mut String) {
        let mut properties = Object::open(out);
        properties.opt_f64(key!("value"), self.value);
        properties.opt_str(key!("currency"), self.currency.as_deref());
        properties.opt_str(key!("content_type"), self.content_type.as_deref());
        if !self.contents.is_empty() {
            let out = properties.key(key!("contents"));
            out.push('[');
            for (index, content) in self.contents.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                content.write_json(out);
            }
            out.push(']');
        }
        properties.opt_str(key!("order_id"), self.order_id.as_deref());
        properties.opt_str(key!("query"), self.query.as_deref());
        properties.opt_str(key!("description"), self.description.as_deref());
        properties.close();
    }
}

/// One of `properties.contents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content<'a> {
    /// Always a string, even when the shop's ids are numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<Cow<'a, str>>,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_name: Option<Cow<'a, str>>,
    /// Product category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_category: Option<Cow<'a, str>>,
    /// Brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<Cow<'a, str>>,
    /// Units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// Unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

impl Content<'_> {
    fn write_json(&self, out: &mut String) {
        let mut content = Object::open(out);
        content.opt_str(key!("content_id"), self.content_id.as_deref());
        content.opt_str(key!("content_name"), self.content_name.as_deref());
        content.opt_str(key!("content_category"), self.content_category.as_deref());
        content.opt_str(key!("brand"), self.brand.as_deref());
        if let Some(quantity) = self.quantity {
            json::write_int(content.key(key!("quantity")), quantity);
        }
        content.opt_f64(key!("price"), self.price);
        content.close();
    }
}

/// `text`, owned.
fn owned(text: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(text.into_owned())
}

/// TikTok's `event_source`: what kind of source `event_source_id` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// A pixel: events from pages, and offline events of a destination without an offline
    /// event set.
    #[default]
    Web,
    /// An Offline Event Set: CSV uploads and cash-on-delivery confirmations, when the
    /// destination names one.
    Offline,
}

/// What puts two events in different requests: where they go (a pixel, or an offline
/// event set) and the test event code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey<'a> {
    /// `event_source`.
    pub event_source: EventSource,
    /// `event_source_id`: the pixel code, or the offline event set id.
    pub event_source_id: &'a str,
    /// Test events go in requests of their own.
    pub test_event_code: Option<&'a str>,
}

impl<'a> RequestKey<'a> {
    /// A web event's key: it goes to the pixel.
    pub fn web(pixel_code: &'a str, test_event_code: Option<&'a str>) -> RequestKey<'a> {
        RequestKey {
            event_source: EventSource::Web,
            event_source_id: pixel_code,
            test_event_code,
        }
    }

    /// The key of a lane: to `offline_event_set_id` as offline events when there is one
    /// (see [`offline_event_set`]), else to the pixel.
    pub fn new(
        pixel_code: &'a str,
        test_event_code: Option<&'a str>,
        offline_event_set_id: Option<&'a str>,
    ) -> RequestKey<'a> {
        match offline_event_set_id {
            Some(set) => RequestKey {
                event_source: EventSource::Offline,
                event_source_id: set,
                test_event_code,
            },
            None => RequestKey::web(pixel_code, test_event_code),
        }
    }
}

/// The offline event set an event of `source` goes to: an offline event goes to its
/// destination's set when it names one (TikTok matches those against offline data, and
/// keeps them out of the pixel's web figures); every other event goes to the pixel.
pub fn offline_event_set(source: Source, offline_event_set_id: Option<&str>) -> Option<&str> {
    match source {
        Source::Offline => offline_event_set_id,
        Source::Browser => None,
    }
}

/// Groups items into requests: one group per [`RequestKey`], in order of first appearance,
/// each at most [`MAX_EVENTS_PER_REQUEST`] long. Returns indices into `items`.
pub fn plan_requests<'a, T>(
    items: &'a [T],
    key: impl Fn(&'a T) -> RequestKey<'a>,
) -> Vec<(RequestKey<'a>, Vec<usize>)> {
    let mut plan: Vec<(RequestKey<'a>, Vec<usize>)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item_key = key(item);
        let open = plan
            .iter_mut()
            .rev()
            .find(|(k, group)| *k == item_key && group.len() < MAX_EVENTS_PER_REQUEST);
        match open {
            Some((_, group)) => group.push(index),
            None => plan.push((item_key, alloc::vec![index])),
        }
    }
    plan
}

#[derive(Serialize)]
struct TrackRequest<'a> {
    event_source: EventSource,
    event_source_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    data: &'a [&'a RawValue],
}

/// The request body for already-serialised `data[]` elements, without parsing them again.
pub fn request_body(key: RequestKey<'_>, data: &[&RawValue]) -> String {
    let request = TrackRequest {
        event_source: key.event_source,
        event_source_id: key.event_source_id,
        test_event_code: key.test_event_code,
        data,
    };
    // Serialising borrowed strings and raw JSON cannot fail.
    serde_json::to_string(&request).unwrap_or_default()
}

/// [`request_body`] with the elements spliced in as they are: stored elements were checked
/// when they arrived, so they go into the body without being parsed again.
pub fn request_body_spliced<'a>(
    key: RequestKey<'_>,
    data: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut body = request_body(key, &[]);
    // `data` is the last field: the body ends with `"data":[]}`.
    body.truncate(body.len() - "]}".len());
    for (i, element) in data.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(element);
    }
    body.push_str("]}");
    body
}

/// The full track URL for an API base such as `https://business-api.tiktok.com`.
pub fn track_url(api_base: &str) -> String {
    let mut url = String::from(api_base.trim_end_matches('/'));
    url.push_str(TRACK_PATH);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(pixel: &'a str, test: Option<&'a str>) -> RequestKey<'a> {
        RequestKey::web(pixel, test)
    }

    #[test]
    fn test_events_go_in_their_own_requests() {
        let items = [
            ("P1", None),
            ("P1", Some("TEST1")),
            ("P1", None),
            ("P2", None),
        ];
        let plan = plan_requests(&items, |(p, t)| key(p, *t));
        let groups: Vec<_> = plan.iter().map(|(k, g)| (*k, g.clone())).collect();
        assert_eq!(
            groups,
            [
                (key("P1", None), alloc::vec![0, 2]),
                (key("P1", Some("TEST1")), alloc::vec![1]),
                (key("P2", None), alloc::vec![3])
            ]
        );
    }

    #[test]
    fn requests_hold_at_most_1000_events() {
        let items: Vec<u32> = (0..2_500).collect();
        let plan = plan_requests(&items, |_| key("P", None));
        let sizes: Vec<_> = plan.iter().map(|(_, g)| g.len()).collect();
        assert_eq!(sizes, [1_000, 1_000, 500]);
        assert_eq!(plan[1].1[0], 1_000);
    }

    #[test]
    fn body_splices_raw_elements() {
        let raw = RawValue::from_string(String::from(r#"{"event":"Lead"}"#)).unwrap();
        let body = request_body(key("PIX", Some("T1")), &[&raw]);
        assert_eq!(
            body,
            r#"{"event_source":"web","event_source_id":"PIX","test_event_code":"T1","data":[{"event":"Lead"}]}"#
        );
        let body = request_body(key("PIX", None), &[&raw]);
        assert!(!body.contains("test_event_code"));
    }

    #[test]
    fn offline_events_go_to_the_offline_event_set_when_there_is_one() {
        let raw = RawValue::from_string(String::from(r#"{"event":"Lead"}"#)).unwrap();
        let set = offline_event_set(Source::Offline, Some("SET7"));
        assert_eq!(set, Some("SET7"));
        assert_eq!(
            request_body(RequestKey::new("PIX", None, set), &[&raw]),
            r#"{"event_source":"offline","event_source_id":"SET7","data":[{"event":"Lead"}]}"#
        );
        // A browser event never goes to the set; an offline one goes to the pixel without it.
        assert_eq!(offline_event_set(Source::Browser, Some("SET7")), None);
        assert_eq!(offline_event_set(Source::Offline, None), None);
        assert_eq!(
            RequestKey::new("PIX", Some("T1"), None),
            key("PIX", Some("T1"))
        );
    }

    fn element<'a>(
        text: &'a str,
        value: Option<f64>,
        contents: Vec<Content<'a>>,
    ) -> TrackEvent<'a> {
        let some = || Some(Cow::from(text));
        TrackEvent {
            event: Cow::from("Custom\"Name"),
            event_time: -1,
            event_id: Cow::from(text),
            user: User {
                email: Some(Sha256Hex::of(text)),
                ttclid: some(),
                locale: some(),
                ..User::default()
            },
            page: Page {
                url: None,
                referrer: some(),
            },
            properties: TrackProperties {
                value,
                currency: some(),
                contents,
                description: some(),
                ..TrackProperties::default()
            },
            limited_data_use: true,
        }
    }

    #[test]
    fn to_json_is_serde_json_byte_for_byte() {
        let content = Content {
            content_id: Some(Cow::from("sku-1")),
            quantity: Some(u32::MAX),
            price: Some(0.1 + 0.2),
            ..Content::default()
        };
        let elements = [
            element(
                "plain",
                Some(16.48),
                alloc::vec![content.clone(), Content::default()],
            ),
            element(
                "tab\there \"quoted\" \u{1} ünï 😀",
                Some(f64::NAN),
                Vec::new(),
            ),
            element("", None, alloc::vec![content]),
            TrackEvent {
                event: Cow::from("Lead"),
                event_time: 1_705_320_000,
                event_id: Cow::from("id"),
                user: User::default(),
                page: Page::default(),
                properties: TrackProperties::default(),
                limited_data_use: false,
            },
        ];
        for element in &elements {
            assert_eq!(element.to_json(), serde_json::to_string(element).unwrap());
        }
    }

    #[test]
    fn spliced_bodies_are_the_same_as_serialised_ones() {
        let elements = [
            r#"{"event":"Purchase","event_id":"a"}"#,
            r#"{"event":"Lead"}"#,
        ];
        let raw: Vec<alloc::boxed::Box<RawValue>> = elements
            .iter()
            .map(|e| RawValue::from_string((*e).into()).unwrap())
            .collect();
        let refs: Vec<&RawValue> = raw.iter().map(|r| &**r).collect();
        for test in [None, Some("TEST1")] {
            let k = key("C4", test);
            assert_eq!(request_body_spliced(k, elements), request_body(k, &refs));
            assert_eq!(request_body_spliced(k, []), request_body(k, &[]));
        }
    }

    #[test]
    fn track_url_joins_cleanly() {
        assert_eq!(
            track_url("https://business-api.tiktok.com/"),
            "https://business-api.tiktok.com/open_api/v1.3/event/track/"
        );
        assert_eq!(
            track_url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/open_api/v1.3/event/track/"
        );
    }
}
