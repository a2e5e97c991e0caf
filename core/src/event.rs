//! The collect API v1: what a page, a tag manager or an export sends to ttedge.
//!
//! A body is one event object or `{"batch": [event, …]}`. Parsing is strict about types
//! (a wrong type is an error that names the field, such as `batch[2].properties.value`) and
//! lenient about shape: unknown fields are ignored, `null` means absent, and the common
//! spellings of GA4, Segment and Shopify (`line_items`, `item_id`, `sku`, numeric strings for
//! money) are accepted, because pages send what their platforms give them.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use core::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;

use crate::json_error::{self, JsonError};

mod fast;

/// The most events one `/collect` request may carry.
pub const MAX_BATCH_EVENTS: usize = 100;

/// One event as the collect API receives it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CollectEvent<'a> {
    /// The incoming event name, before mapping. Required and non-empty.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub event: Option<Cow<'a, str>>,
    /// Kept as given, so TikTok can deduplicate server and pixel copies.
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    pub event_id: Option<Cow<'a, str>>,
    /// When the event happened.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// The page URL; its `ttclid` query parameter is the click id.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub url: Option<Cow<'a, str>>,
    /// The page referrer.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub referrer: Option<Cow<'a, str>>,
    /// Personal data, in clear or pre-hashed.
    #[serde(borrow, default, deserialize_with = "opt_object")]
    pub user_data: Option<UserData<'a>>,
    /// Commerce properties.
    #[serde(borrow, default, deserialize_with = "opt_object")]
    pub properties: Option<Properties<'a>>,
    /// Consent signals; absent means unknown.
    #[serde(default, deserialize_with = "opt_object")]
    pub consent: Option<Consent>,
    /// Browser context the page could see itself.
    #[serde(borrow, default, deserialize_with = "opt_object")]
    pub context: Option<Context<'a>>,
    /// Where the event comes from; decides the match-quality threshold.
    #[serde(default)]
    pub source: Option<Source>,
    /// Only at the top level: the events of a batch document.
    #[serde(borrow, default, deserialize_with = "opt_objects")]
    batch: Option<Vec<CollectEvent<'a>>>,
}

/// Personal data of the person behind an event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserData<'a> {
    /// Email in clear (or already a SHA-256 hex).
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub email: Option<Cow<'a, str>>,
    /// Phone in any format (or already a SHA-256 hex).
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub phone: Option<Cow<'a, str>>,
    /// The shop's own customer id.
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    pub external_id: Option<Cow<'a, str>>,
    /// Email hashed by the page (the SDK hashes in the browser).
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub email_hash: Option<Cow<'a, str>>,
    /// Phone hashed by the page.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub phone_hash: Option<Cow<'a, str>>,
}

/// Commerce properties of an event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Properties<'a> {
    /// Order or cart value.
    #[serde(default, deserialize_with = "opt_number")]
    pub value: Option<f64>,
    /// ISO 4217 currency, any case.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub currency: Option<Cow<'a, str>>,
    /// The shop's order id.
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    pub order_id: Option<Cow<'a, str>>,
    /// A search query.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub query: Option<Cow<'a, str>>,
    /// A free-text description.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub description: Option<Cow<'a, str>>,
    /// Line items (GA4 and most SDKs).
    #[serde(borrow, default, deserialize_with = "opt_objects")]
    pub items: Option<Vec<Item<'a>>>,
    /// Line items under Shopify's name.
    #[serde(borrow, default, deserialize_with = "opt_objects")]
    pub line_items: Option<Vec<Item<'a>>>,
    /// Line items under TikTok's own name.
    #[serde(borrow, default, deserialize_with = "opt_objects")]
    pub contents: Option<Vec<Item<'a>>>,
}

impl Properties<'_> {
    /// The line items, whichever of `items`, `line_items` or `contents` carried them.
    pub fn line_items(&self) -> &[Item<'_>] {
        [&self.items, &self.line_items, &self.contents]
            .into_iter()
            .find_map(|items| items.as_deref().filter(|items| !items.is_empty()))
            .unwrap_or(&[])
    }
}

/// One line item. Each field accepts the names GA4, Segment, Shopify and TikTok use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Item<'a> {
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    product_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    item_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    sku: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    pub(crate) content_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    item_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    content_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    item_category: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    content_category: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    brand: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_string")]
    item_brand: Option<Cow<'a, str>>,
    /// Units bought.
    #[serde(default, deserialize_with = "opt_quantity")]
    pub quantity: Option<u32>,
    /// Unit price.
    #[serde(default, deserialize_with = "opt_number")]
    pub price: Option<f64>,
}

/// The first non-empty value among spellings of one field.
fn first<'a>(candidates: &[&'a Option<Cow<'_, str>>]) -> Option<&'a str> {
    candidates
        .iter()
        .filter_map(|value| value.as_deref())
        .map(crate::text::trim)
        .find(|value| !value.is_empty())
}

impl Item<'_> {
    /// The product id: `product_id`, else `id`, `item_id`, `sku` or `content_id`.
    pub fn product_id(&self) -> Option<&str> {
        first(&[
            &self.product_id,
            &self.id,
            &self.item_id,
            &self.sku,
            &self.content_id,
        ])
    }
    /// The product name: `name`, else `item_name` or `content_name`.
    pub fn name(&self) -> Option<&str> {
        first(&[&self.name, &self.item_name, &self.content_name])
    }
    /// The category: `category`, else `item_category` or `content_category`.
    pub fn category(&self) -> Option<&str> {
        first(&[&self.category, &self.item_category, &self.content_category])
    }
    /// The brand: `brand`, else `item_brand`.
    pub fn brand(&self) -> Option<&str> {
        first(&[&self.brand, &self.item_brand])
    }
}

/// One Google-Consent-Mode-style signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The person agreed.
    Granted,
    /// The person refused.
    Denied,
}

/// Consent signals as the page knows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Consent {
    /// `false` means the event must not reach TikTok at all.
    #[serde(default)]
    pub sendable_to_ads: Option<bool>,
    /// Storage of advertising cookies (`_ttp`, `ttclid`).
    #[serde(default)]
    pub ad_storage: Option<Signal>,
    /// Use of personal data for advertising.
    #[serde(default)]
    pub ad_user_data: Option<Signal>,
}

/// Whether the page's own TikTok pixel ran, as the SDK saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelStatus {
    /// The pixel loaded: TikTok may have a browser copy of the event.
    Loaded,
    /// The pixel's script failed to load, as with an ad blocker.
    Blocked,
    /// The page has no pixel.
    Absent,
}

impl PixelStatus {
    /// The name the collect API uses, for storage and logs.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, status)| *status == self)
            .map_or("", |(name, _)| name)
    }

    /// The status named `text`, as [`as_str`](PixelStatus::as_str) writes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, status)| *status)
    }
}

/// Browser context the page reports about itself.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Context<'a> {
    /// `_ttp` as the page read it; the cookie wins.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub ttp: Option<Cow<'a, str>>,
    /// The click id as the page read it; the URL and cookie win.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub ttclid: Option<Cow<'a, str>>,
    /// The TikTok pixel's state on the page.
    #[serde(default)]
    pub pixel: Option<PixelStatus>,
    /// User agent; the request header wins for browser events.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub user_agent: Option<Cow<'a, str>>,
    /// IP address; `CF-Connecting-IP` wins for browser events.
    #[serde(borrow, default, deserialize_with = "opt_string")]
    pub ip: Option<Cow<'a, str>>,
}

/// Where an event comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A page in a browser: request headers and cookies describe the person.
    #[default]
    Browser,
    /// No browser context (CSV imports, cash-on-delivery confirmations).
    Offline,
}

/// A unit enum the collect API writes as one of a few lower-case names.
///
/// Read by hand rather than derived: serde_json answers a number or a boolean given for a
/// derived enum with a syntax error, which loses the field's path.
pub(crate) trait Named: Copy + 'static {
    /// Every value with its name.
    const NAMES: &'static [(&'static str, Self)];
    /// The names, for error messages.
    const EXPECTED: &'static str;
}

impl Named for Signal {
    const NAMES: &'static [(&'static str, Self)] =
        &[("granted", Signal::Granted), ("denied", Signal::Denied)];
    const EXPECTED: &'static str = "`granted` or `denied`";
}

impl Named for PixelStatus {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("loaded", PixelStatus::Loaded),
        ("blocked", PixelStatus::Blocked),
        ("absent", PixelStatus::Absent),
    ];
    const EXPECTED: &'static str = "`loaded`, `blocked` or `absent`";
}

impl Named for Source {
    const NAMES: &'static [(&'static str, Self)] =
        &[("browser", Source::Browser), ("offline", Source::Offline)];
    const EXPECTED: &'static str = "`browser` or `offline`";
}

/// Reads a [`Named`] enum from its name; anything else is a data error at its path.
fn named<'de, D: Deserializer<'de>, T: Named>(deserializer: D) -> Result<T, D::Error> {
    struct NameVisitor<T>(PhantomData<T>);
    impl<T: Named> Visitor<'_> for NameVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(T::EXPECTED)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            T::NAMES
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, value)| *value)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
        }
    }
    deserializer.deserialize_str(NameVisitor(PhantomData))
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        named(deserializer)
    }
}

impl<'de> Deserialize<'de> for PixelStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        named(deserializer)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        named(deserializer)
    }
}

/// When an event happened, as epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 date-time")
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(ms))
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Timestamp, E> {
                i64::try_from(ms)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp is out of range"))
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Timestamp, E> {
                if ms.is_finite() && ms.abs() < 9.0e15 {
                    Ok(Timestamp(ms as i64))
                } else {
                    Err(E::custom("timestamp is out of range"))
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                let parsed = time::OffsetDateTime::parse(
                    text.trim(),
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|_| E::custom("expected epoch milliseconds or an RFC 3339 date-time"))?;
                let ms = parsed.unix_timestamp_nanos() / 1_000_000;
                i64::try_from(ms)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp is out of range"))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// A collect body that could not be accepted. Every variant says where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// The body is not JSON at all.
    MalformedJson {
        /// What the JSON parser said.
        message: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// A field has the wrong type or value.
    InvalidField {
        /// Where, such as `batch[2].properties.value`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A batch with more events than allowed.
    BatchTooLong {
        /// Events in the batch.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// A batch document with no events.
    EmptyBatch,
}

impl InputError {
    /// A stable machine-readable name for the kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::MalformedJson { .. } => "malformed_json",
            InputError::InvalidField { .. } => "invalid_field",
            InputError::BatchTooLong { .. } => "batch_too_long",
            InputError::EmptyBatch => "empty_batch",
        }
    }

    /// The field path the problem is at, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            InputError::InvalidField { path, .. } => Some(path),
            InputError::BatchTooLong { .. } | InputError::EmptyBatch => Some("batch"),
            InputError::MalformedJson { .. } => None,
        }
    }

    fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        InputError::InvalidField {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::MalformedJson {
                message,
                line,
                column,
            } => write!(
                f,
                "malformed JSON at line {line}, column {column}: {message}"
            ),
            InputError::InvalidField { path, message } => write!(f, "{path}: {message}"),
            InputError::BatchTooLong { count, max } => {
                write!(f, "batch: {count} events, at most {max} are allowed")
            }
            InputError::EmptyBatch => f.write_str("batch: holds no events"),
        }
    }
}

/// Parses a collect body: one event or `{"batch": [...]}` of at most `max_events`.
///
/// The whole body is accepted or refused: a wrong field anywhere refuses all of it, so a
/// sender can fix and resend without anything being half-accepted (and later sent twice).
pub fn parse_collect(body: &[u8], max_events: usize) -> Result<Vec<CollectEvent<'_>>, InputError> {
    parse_collect_with(body, max_events, Reader::Fast)
}

/// Which reader [`parse_collect_with`] starts with.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The fast reader for plain bodies, serde for the rest: what [`parse_collect`] does.
    Fast,
    /// serde_json only. The fuzzer and tests check that both readers agree on every body.
    Serde,
}

/// [`parse_collect`], with the reader chosen; only for checking the fast reader against serde.
#[doc(hidden)]
pub fn parse_collect_with(
    body: &[u8],
    max_events: usize,
    reader: Reader,
) -> Result<Vec<CollectEvent<'_>>, InputError> {
    // serde would read a struct from an array, by position; a body must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<de::IgnoredAny>(body) {
            Err(error) => explain(body, error),
            Ok(_) => InputError::field(
                json_error::BODY,
                "expected a JSON object: one event or {\"batch\": [...]}",
            ),
        });
    }
    // One UTF-8 check of the whole body is far cheaper than serde_json's check per string.
    let text = core::str::from_utf8(body).map_err(|error| {
        let line = body[..error.valid_up_to()].split(|b| *b == b'\n').count();
        InputError::MalformedJson {
            message: format!("invalid UTF-8 at byte {}", error.valid_up_to()),
            line,
            column: 0,
        }
    })?;
    // The plain shape most bodies have is read directly; anything else goes to serde. Either
    // way the top-level object is the one element of `events` (built there, not moved).
    let fast = match reader {
        Reader::Fast => fast::parse(text),
        Reader::Serde => None,
    };
    let mut events = match fast {
        Some(events) => events,
        None => match serde_json::from_str(text) {
            Ok(top) => alloc::vec![top],
            Err(error) => return Err(explain(body, error)),
        },
    };
    let top = &mut events[0];
    match top.batch.take() {
        None => {
            check_event_name(top, "event")?;
            Ok(events)
        }
        Some(batch) => {
            if top.event.is_some() {
                return Err(InputError::field(
                    "event",
                    "a batch document holds its events under `batch` only",
                ));
            }
            if batch.is_empty() {
                return Err(InputError::EmptyBatch);
            }
            if batch.len() > max_events {
                return Err(InputError::BatchTooLong {
                    count: batch.len(),
                    max: max_events,
                });
            }
            for (index, event) in batch.iter().enumerate() {
                if event.batch.is_some() {
                    return Err(InputError::field(
                        format!("batch[{index}].batch"),
                        "batches cannot be nested",
                    ));
                }
                check_event_name(event, &format!("batch[{index}].event"))?;
            }
            Ok(batch)
        }
    }
}

fn check_event_name(event: &CollectEvent<'_>, path: &str) -> Result<(), InputError> {
    match event.event.as_deref().map(crate::text::trim) {
        Some(name) if !name.is_empty() => Ok(()),
        Some(_) => Err(InputError::field(path, "must not be empty")),
        None => Err(InputError::field(path, "is required")),
    }
}

/// Turns a serde_json error into an [`InputError`], re-parsing to find the field path.
///
/// The path costs a second parse, so it is only paid on the error path.
fn explain(body: &[u8], error: serde_json::Error) -> InputError {
    let error = match error.classify() {
        Category::Data => match json_error::read::<CollectEvent<'_>>(body) {
            Err(error) => error,
            Ok(_) => json_error::explain(String::from("."), error),
        },
        _ => json_error::explain(String::from("."), error),
    };
    match error {
        JsonError::Syntax {
            message,
            line,
            column,
        } => InputError::MalformedJson {
            message,
            line,
            column,
        },
        JsonError::Field { path, message, .. } => InputError::field(path, message),
    }
}

// ---- lenient field readers -------------------------------------------------------------

/// An optional struct, which must be a JSON object: derived readers take an array too, by
/// position (`"consent": [false]` would be `sendable_to_ads: false`).
fn opt_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(deserializer)?.map(|Object(value)| value))
}

/// An optional list of structs, each a JSON object.
fn opt_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Vec<T>>, D::Error> {
    let list = Option::<Vec<Object<T>>>::deserialize(deserializer)?;
    Ok(list.map(|list| list.into_iter().map(|Object(value)| value).collect()))
}

/// A struct read from a JSON object only.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// Text fields borrow from the body when they hold no escapes: parsing allocates little.
fn opt_string<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    deserializer.deserialize_option(TextVisitor { numbers: false })
}

/// Ids are often numbers in shop platforms (`"order_id": 1001`); TikTok wants strings.
pub(crate) fn opt_string_or_number<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    deserializer.deserialize_option(TextVisitor { numbers: true })
}

/// Reads an optional string (borrowed when possible), and numbers too when `numbers`.
struct TextVisitor {
    numbers: bool,
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(if self.numbers {
            "a string or a number"
        } else {
            "a string"
        })
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(text)))
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(text.to_string())))
    }
    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(text)))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        self.number(n, de::Unexpected::Signed(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        self.number(n, de::Unexpected::Unsigned(n))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        self.number(n, de::Unexpected::Float(n))
    }
}

impl TextVisitor {
    fn number<'de, E: de::Error>(
        self,
        n: impl fmt::Display,
        unexpected: de::Unexpected<'_>,
    ) -> Result<Option<Cow<'de, str>>, E> {
        if self.numbers {
            Ok(Some(Cow::Owned(format!("{n}"))))
        } else {
            Err(E::invalid_type(unexpected, &self))
        }
    }
}

/// Money may arrive as `59.9` or `"59.90"`.
fn opt_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct NumberVisitor;
    impl<'de> Visitor<'de> for NumberVisitor {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Some(n as f64))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(n as f64))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
            }
        }
    }
    deserializer.deserialize_option(NumberVisitor)
}

/// Quantities are whole units; `2`, `2.0` and `"2"` are all two.
fn opt_quantity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = opt_number(deserializer)? else {
        return Ok(None);
    };
    if n >= 0.0 && n <= u32::MAX as f64 && n == (n as u32) as f64 {
        Ok(Some(n as u32))
    } else {
        Err(de::Error::custom("expected a whole, non-negative quantity"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<CollectEvent<'_>>, InputError> {
        parse_collect(body.as_bytes(), MAX_BATCH_EVENTS)
    }

    #[test]
    fn single_event_with_every_field() {
        let events = parse(
            r#"{"event":"purchase","event_id":"order-1001","timestamp":1764064800000,
            "url":"https://shop.com/thanks?ttclid=E.C.P.abc","referrer":"https://www.tiktok.com/",
            "user_data":{"email":" User@Example.com ","phone":"+1 (555) 123-4567","external_id":42},
            "properties":{"value":"59.90","currency":"usd","order_id":1001,
              "line_items":[{"sku":"sku-1","item_name":"Sneaker","quantity":2,"price":29.95}]},
            "consent":{"sendable_to_ads":true,"ad_storage":"granted","ad_user_data":"denied"},
            "context":{"pixel":"blocked","ip":"203.0.113.9"},"source":"offline"}"#,
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.event.as_deref(), Some("purchase"));
        assert_eq!(event.timestamp, Some(Timestamp(1_764_064_800_000)));
        let user = event.user_data.as_ref().unwrap();
        assert_eq!(user.external_id.as_deref(), Some("42"));
        let properties = event.properties.as_ref().unwrap();
        assert_eq!(properties.value, Some(59.9));
        assert_eq!(properties.order_id.as_deref(), Some("1001"));
        let item = &properties.line_items()[0];
        assert_eq!(item.product_id(), Some("sku-1"));
        assert_eq!(item.name(), Some("Sneaker"));
        assert_eq!(item.quantity, Some(2));
        let consent = event.consent.unwrap();
        assert_eq!(consent.ad_user_data, Some(Signal::Denied));
        assert_eq!(
            event.context.as_ref().unwrap().pixel,
            Some(PixelStatus::Blocked)
        );
        assert_eq!(event.source, Some(Source::Offline));
    }

    #[test]
    fn pixel_status_names_round_trip() {
        for status in [
            PixelStatus::Loaded,
            PixelStatus::Blocked,
            PixelStatus::Absent,
        ] {
            assert_eq!(PixelStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PixelStatus::parse("unknown"), None);
    }

    #[test]
    fn batch_document() {
        let events = parse(r#"{"batch":[{"event":"a"},{"event":"b","timestamp":null}]}"#).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].event.as_deref(), Some("b"));
    }

    #[test]
    fn rfc3339_timestamp() {
        let events = parse(r#"{"event":"a","timestamp":"2025-11-25T10:00:00.250+01:00"}"#).unwrap();
        assert_eq!(events[0].timestamp, Some(Timestamp(1_764_061_200_250)));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let error = parse(r#"{"batch":[{"event":"a"},{"event":"b","properties":{"value":[1]}}]}"#)
            .unwrap_err();
        assert_eq!(error.code(), "invalid_field");
        assert_eq!(error.path(), Some("batch[1].properties.value"));
        assert!(
            error.to_string().contains("a number or a numeric string"),
            "{error}"
        );
    }

    #[test]
    fn bad_consent_value_names_the_field() {
        let error = parse(r#"{"event":"a","consent":{"ad_storage":"maybe"}}"#).unwrap_err();
        assert_eq!(error.path(), Some("consent.ad_storage"));
        assert!(error.to_string().contains("granted"), "{error}");
    }

    #[test]
    fn malformed_json_gives_a_position() {
        let error = parse("{\"event\":\n \"a\",,}").unwrap_err();
        match error {
            InputError::MalformedJson { line, .. } => assert_eq!(line, 2),
            other => panic!("expected malformed JSON, got {other:?}"),
        }
    }

    #[test]
    fn missing_or_empty_event_name() {
        assert_eq!(
            parse(r#"{"event_id":"x"}"#).unwrap_err().path(),
            Some("event")
        );
        let error = parse(r#"{"batch":[{"event":"a"},{"event":"  "}]}"#).unwrap_err();
        assert_eq!(error.path(), Some("batch[1].event"));
        assert!(error.to_string().contains("must not be empty"));
    }

    #[test]
    fn batch_limits() {
        assert_eq!(
            parse(r#"{"batch":[]}"#).unwrap_err(),
            InputError::EmptyBatch
        );
        let body = format!(
            "{{\"batch\":[{}]}}",
            alloc::vec!["{\"event\":\"a\"}"; 101].join(",")
        );
        assert_eq!(
            parse(&body).unwrap_err(),
            InputError::BatchTooLong {
                count: 101,
                max: 100
            }
        );
        assert!(parse(r#"{"batch":[{"event":"a","batch":[]}]}"#).is_err());
        assert!(parse(r#"{"event":"a","batch":[{"event":"b"}]}"#).is_err());
    }

    #[test]
    fn fractional_quantity_is_refused() {
        let error =
            parse(r#"{"event":"a","properties":{"items":[{"quantity":1.5}]}}"#).unwrap_err();
        assert_eq!(error.path(), Some("properties.items[0].quantity"));
    }

    /// Asserts `body` is refused at `path` and the answer holds none of `secrets`.
    fn refused_at(body: &str, path: &str, secrets: &[&str]) -> String {
        for reader in [Reader::Fast, Reader::Serde] {
            let error =
                parse_collect_with(body.as_bytes(), MAX_BATCH_EVENTS, reader).expect_err(body);
            assert_eq!(error.code(), "invalid_field", "{body}: {error}");
            assert_eq!(error.path(), Some(path), "{body}: {error}");
            let shown = format!("{error} {error:?}");
            for secret in secrets {
                assert!(!shown.contains(secret), "{body} shows {secret}: {shown}");
            }
        }
        parse(body).unwrap_err().to_string()
    }

    #[test]
    fn personal_data_is_never_quoted_in_an_error() {
        let message = refused_at(
            r#"{"event":"purchase","user_data":"someone@example.com"}"#,
            "user_data",
            &["someone@example.com"],
        );
        assert_eq!(message, "user_data: expected an object, found a string");
        let message = refused_at(
            r#"{"event":"purchase","user_data":{"phone":15551234567}}"#,
            "user_data.phone",
            &["15551234567"],
        );
        assert_eq!(
            message,
            "user_data.phone: expected a string, found a number"
        );
        for field in ["email", "phone", "email_hash", "phone_hash", "external_id"] {
            for value in [r#"["x@y.co"]"#, r#"{"a":"x@y.co"}"#, "true"] {
                let body = format!(r#"{{"event":"a","user_data":{{"{field}":{value}}}}}"#);
                refused_at(&body, &format!("user_data.{field}"), &["x@y.co", "true"]);
            }
        }
        // The reader's own messages: no value either.
        refused_at(
            r#"{"event":"a","timestamp":"someone@example.com"}"#,
            "timestamp",
            &["someone"],
        );
        refused_at(
            r#"{"event":"a","properties":{"value":"someone@example.com"}}"#,
            "properties.value",
            &["someone"],
        );
        refused_at(
            r#"{"event":"a","consent":{"ad_storage":"someone@example.com"}}"#,
            "consent.ad_storage",
            &["someone"],
        );
    }

    #[test]
    fn enum_fields_of_the_wrong_type_name_their_path() {
        for (path, body) in [
            (
                "consent.ad_storage",
                r#"{"event":"a","consent":{"ad_storage":VALUE}}"#,
            ),
            (
                "consent.ad_user_data",
                r#"{"event":"a","consent":{"ad_user_data":VALUE}}"#,
            ),
            (
                "context.pixel",
                r#"{"event":"a","context":{"pixel":VALUE}}"#,
            ),
            ("source", r#"{"event":"a","source":VALUE}"#),
        ] {
            for value in ["1", "true", r#"["granted"]"#, "{}", "-2.5", r#""maybe""#] {
                refused_at(&body.replace("VALUE", value), path, &["maybe"]);
            }
        }
    }

    #[test]
    fn objects_must_be_objects() {
        refused_at(r#"{"batch":[["purchase","order-1"]]}"#, "batch[0]", &[]);
        refused_at(
            r#"{"batch":[{"event":"a"},["purchase","order-1"]]}"#,
            "batch[1]",
            &[],
        );
        refused_at(r#"{"event":"a","consent":[false]}"#, "consent", &[]);
        refused_at(
            r#"{"event":"a","user_data":["a@b.co","+1 555 0100"]}"#,
            "user_data",
            &["a@b.co", "555"],
        );
        refused_at(r#"{"event":"a","properties":[1,"USD"]}"#, "properties", &[]);
        refused_at(r#"{"event":"a","context":["ttp"]}"#, "context", &[]);
        for list in ["items", "line_items", "contents"] {
            let body = format!(r#"{{"event":"a","properties":{{"{list}":[["sku-1"]]}}}}"#);
            refused_at(&body, &format!("properties.{list}[0]"), &[]);
        }
        // null still means absent.
        let events = parse(r#"{"event":"a","consent":null,"user_data":null}"#).unwrap();
        assert_eq!(events[0].consent, None);
    }

    #[test]
    fn top_level_must_be_an_object() {
        let error = parse("[1,2]").unwrap_err();
        assert_eq!(error.path(), Some("(body)"));
        assert_eq!(
            parse("event=purchase").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(parse("  ").unwrap_err().code(), "malformed_json");
    }
}
