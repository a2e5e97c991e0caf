//! The common shape of a collect body, read without serde.
//!
//! serde_json's derived readers spend about 200 instructions per JSON token on these structs
//! (field dispatch, `Option` and visitor layers, moving large structs). Bodies from the SDK
//! and tag managers are plain, so this reader takes them straight into a [`CollectEvent`].
//!
//! It gives up (`None`) on anything outside that plain shape: an escape or control character
//! in a string, a number it cannot read exactly (a sign, an exponent, over 15 digits), a
//! numeric string, an RFC 3339 timestamp, a value of a type serde would refuse, a duplicate
//! field, a nested batch, deep nesting. [`parse_collect`](super::parse_collect) then parses
//! the body with serde_json as before, errors and all. So this reader never accepts what
//! serde refuses, and what it accepts it reads exactly as serde does: strings are borrowed
//! from the body, whole numbers are `u64`s, and a fraction of at most 15 digits is
//! `digits / 10^k`, which is serde_json's own arithmetic (one correctly rounded division).

use alloc::borrow::Cow;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::{CollectEvent, Consent, Context, Item, Named, Properties, Timestamp, UserData};
use crate::json;

/// Parses `text`, a whole collect body, as serde_json would; `None` to leave it to serde.
/// The event is built in place in the vector [`parse_collect`](super::parse_collect) returns.
pub(super) fn parse(text: &str) -> Option<Vec<CollectEvent<'_>>> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut events = alloc::vec![CollectEvent::default()];
    reader.event(&mut events[0], true)?;
    reader.skip_whitespace();
    (reader.at == text.len()).then_some(events)
}

/// Unknown fields nested deeper than this are left to serde (and its recursion limit).
const MAX_SKIP_DEPTH: u32 = 16;

/// Digits in a number read here: below 2^53, so exact as an `f64`, with an exact 10^k.
const MAX_DIGITS: usize = 15;

/// Powers of ten up to [`MAX_DIGITS`], all exact.
const POW10: [f64; MAX_DIGITS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A number as serde_json reads it.
enum Number<'a> {
    /// No fraction: serde_json's `u64`, and its digits as written.
    Whole(u64, &'a str),
    /// With a fraction: serde_json's `f64`.
    Fraction(f64),
}

impl Number<'_> {
    fn value(&self) -> f64 {
        match *self {
            Number::Whole(n, _) => n as f64,
            Number::Fraction(x) => x,
        }
    }
}

/// Marks field number `field` of a struct as read; `None` the second time, because serde
/// refuses a duplicate field (even a duplicate `null`).
fn first_time(seen: &mut u32, field: u32) -> Option<()> {
    let bit = 1 << field;
    (*seen & bit == 0).then(|| *seen |= bit)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    // ---- JSON -------------------------------------------------------------------------

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed. Compact JSON has no whitespace, so
    /// the next byte is tried first.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        if byte > b' ' {
            return Some(byte);
        }
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// Consumes `byte`, the next after whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `word` (`null`, `true`, `false`) if it comes next.
    fn literal(&mut self, word: &str) -> bool {
        self.skip_whitespace();
        let found = self.bytes[self.at..].starts_with(word.as_bytes());
        if found {
            self.at += word.len();
        }
        found
    }

    /// A string without escapes or control characters, borrowed from the body.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        self.string_rest()
    }

    /// The rest of a string whose opening quote was just read.
    // Inlined into every reader, like `string`: as a call it cost a tenth of the parse.
    #[inline(always)]
    fn string_rest(&mut self) -> Option<&'a str> {
        let start = self.at;
        let end = start + json::find_escape(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are next to an ASCII quote, so on character boundaries.
        self.text.get(start..end)
    }

    /// Digits from here on, added to `significand` (wrapping: callers refuse more than
    /// [`MAX_DIGITS`] anyway); how many there were.
    fn digits(&mut self, significand: &mut u64) -> usize {
        let from = self.at;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(self.at) {
            *significand = significand
                .wrapping_mul(10)
                .wrapping_add(u64::from(digit - b'0'));
            self.at += 1;
        }
        self.at - from
    }

    /// A number without sign or exponent and with at most [`MAX_DIGITS`] digits.
    fn number(&mut self) -> Option<Number<'a>> {
        self.peek()?;
        let start = self.at;
        let mut significand = 0;
        let whole = self.digits(&mut significand);
        // JSON allows one leading zero only, and serde_json refuses `01`.
        if whole == 0 || (whole > 1 && self.bytes[start] == b'0') {
            return None;
        }
        let mut fraction = 0;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            fraction = self.digits(&mut significand);
            if fraction == 0 {
                return None;
            }
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) || whole + fraction > MAX_DIGITS {
            return None;
        }
        Some(match fraction {
            0 => Number::Whole(significand, &self.text[start..self.at]),
            count => Number::Fraction(significand as f64 / POW10[count]),
        })
    }

    /// An object, handing each key to `member`, which reads its value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array, calling `element` to read each element.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value of an unknown field, checked but not kept (serde ignores it).
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'0'..=b'9' => self.number().map(drop),
            b'{' if depth < MAX_SKIP_DEPTH => self.object(|r, _| r.skip(depth + 1)),
            b'[' if depth < MAX_SKIP_DEPTH => self.array(|r| r.skip(depth + 1)),
            _ => (self.literal("null") || self.literal("true") || self.literal("false"))
                .then_some(()),
        }
    }

    // ---- the collect API's field readers (event.rs names them the same) ---------------

    /// `opt_string`: a string or `null`.
    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_rest().map(|text| Some(Cow::Borrowed(text)))
            }
            _ => self.literal("null").then_some(None),
        }
    }

    /// `opt_string_or_number`: also a whole number, as its digits (serde's `format!("{n}")`
    /// of the `u64`, which is the digits as written: JSON has no leading zeros).
    fn opt_string_or_number(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'0'..=b'9' => match self.number()? {
                Number::Whole(_, digits) => Some(Some(Cow::Owned(digits.to_string()))),
                Number::Fraction(_) => None,
            },
            _ => self.opt_string(),
        }
    }

    /// `opt_number`: a number or `null`.
    fn opt_number(&mut self) -> Option<Option<f64>> {
        match self.peek()? {
            b'0'..=b'9' => self.number().map(|n| Some(n.value())),
            _ => self.literal("null").then_some(None),
        }
    }

    /// `opt_quantity`: a whole, non-negative number that fits a `u32`, or `null`.
    fn opt_quantity(&mut self) -> Option<Option<u32>> {
        let Some(n) = self.opt_number()? else {
            return Some(None);
        };
        (n >= 0.0 && n <= u32::MAX as f64 && n == (n as u32) as f64).then_some(Some(n as u32))
    }

    /// `Option<bool>`.
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        if self.literal("null") {
            Some(None)
        } else if self.literal("true") {
            Some(Some(true))
        } else if self.literal("false") {
            Some(Some(false))
        } else {
            None
        }
    }

    /// An optional unit enum written as its lower-case name.
    fn opt_name<T: Named>(&mut self) -> Option<Option<T>> {
        if self.literal("null") {
            return Some(None);
        }
        let text = self.string()?;
        let (_, value) = T::NAMES.iter().find(|(name, _)| *name == text)?;
        Some(Some(*value))
    }

    /// `Timestamp`: epoch milliseconds as a number (RFC 3339 text is left to serde).
    fn opt_timestamp(&mut self) -> Option<Option<Timestamp>> {
        Some(match self.opt_number()? {
            None => None,
            Some(ms) if ms.abs() < 9.0e15 => Some(Timestamp(ms as i64)),
            Some(_) => return None,
        })
    }

    /// `null`, or a struct that `read` fills in.
    fn opt_struct<T: Default>(
        &mut self,
        slot: &mut Option<T>,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        if self.literal("null") {
            *slot = None;
            return Some(());
        }
        read(self, slot.insert(T::default()))
    }

    /// `null`, or an array of structs that `read` fills in, each in its place in the list.
    fn opt_list<T: Default>(
        &mut self,
        slot: &mut Option<Vec<T>>,
        mut read: impl FnMut(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        if self.literal("null") {
            *slot = None;
            return Some(());
        }
        let list = slot.insert(Vec::new());
        self.array(|r| {
            list.push(T::default());
            read(r, list.last_mut()?)
        })
    }

    // ---- the collect API's structs ----------------------------------------------------

    /// One event; `top` allows `batch`. Field numbers follow the struct's field order.
    fn event(&mut self, event: &mut CollectEvent<'a>, top: bool) -> Option<()> {
        let mut seen = 0;
        self.object(|r, key| {
            match key {
                "event" => {
                    first_time(&mut seen, 0)?;
                    event.event = r.opt_string()?;
                }
                "event_id" => {
                    first_time(&mut seen, 1)?;
                    event.event_id = r.opt_string_or_number()?;
                }
                "timestamp" => {
                    first_time(&mut seen, 2)?;
                    event.timestamp = r.opt_timestamp()?;
                }
                "url" => {
                    first_time(&mut seen, 3)?;
                    event.url = r.opt_string()?;
                }
                "referrer" => {
                    first_time(&mut seen, 4)?;
                    event.referrer = r.opt_string()?;
                }
                "user_data" => {
                    first_time(&mut seen, 5)?;
                    r.opt_struct(&mut event.user_data, Self::user_data)?;
                }
                "properties" => {
                    first_time(&mut seen, 6)?;
                    r.opt_struct(&mut event.properties, Self::properties)?;
                }
                "consent" => {
                    first_time(&mut seen, 7)?;
                    r.opt_struct(&mut event.consent, Self::consent)?;
                }
                "context" => {
                    first_time(&mut seen, 8)?;
                    r.opt_struct(&mut event.context, Self::context)?;
                }
                "source" => {
                    first_time(&mut seen, 9)?;
                    event.source = r.opt_name()?;
                }
                "batch" if top => {
                    first_time(&mut seen, 10)?;
                    r.opt_list(&mut event.batch, |r, event| r.event(event, false))?;
                }
                "batch" => return None,
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn user_data(&mut self, data: &mut UserData<'a>) -> Option<()> {
        let mut seen = 0;
        self.object(|r, key| {
            match key {
                "email" => {
                    first_time(&mut seen, 0)?;
                    data.email = r.opt_string()?;
                }
                "phone" => {
                    first_time(&mut seen, 1)?;
                    data.phone = r.opt_string()?;
                }
                "external_id" => {
                    first_time(&mut seen, 2)?;
                    data.external_id = r.opt_string_or_number()?;
                }
                "email_hash" => {
                    first_time(&mut seen, 3)?;
                    data.email_hash = r.opt_string()?;
                }
                "phone_hash" => {
                    first_time(&mut seen, 4)?;
                    data.phone_hash = r.opt_string()?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn properties(&mut self, properties: &mut Properties<'a>) -> Option<()> {
        let mut seen = 0;
        self.object(|r, key| {
            match key {
                "value" => {
                    first_time(&mut seen, 0)?;
                    properties.value = r.opt_number()?;
                }
                "currency" => {
                    first_time(&mut seen, 1)?;
                    properties.currency = r.opt_string()?;
                }
                "order_id" => {
                    first_time(&mut seen, 2)?;
                    properties.order_id = r.opt_string_or_number()?;
                }
                "query" => {
                    first_time(&mut seen, 3)?;
                    properties.query = r.opt_string()?;
                }
                "description" => {
                    first_time(&mut seen, 4)?;
                    properties.description = r.opt_string()?;
                }
                "items" => {
                    first_time(&mut seen, 5)?;
                    r.opt_list(&mut properties.items, Self::item)?;
                }
                "line_items" => {
                    first_time(&mut seen, 6)?;
                    r.opt_list(&mut properties.line_items, Self::item)?;
                }
                "contents" => {
                    first_time(&mut seen, 7)?;
                    r.opt_list(&mut properties.contents, Self::item)?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn item(&mut self, item: &mut Item<'a>) -> Option<()> {
        let mut seen = 0;
        self.object(|r, key| {
            let (field, text) = match key {
                "product_id" => (0, &mut item.product_id),
                "id" => (1, &mut item.id),
                "item_id" => (2, &mut item.item_id),
                "sku" => (3, &mut item.sku),
                "content_id" => (4, &mut item.content_id),
                "name" => (5, &mut item.name),
                "item_name" => (6, &mut item.item_name),
                "content_name" => (7, &mut item.content_name),
                "category" => (8, &mut item.category),
                "item_category" => (9, &mut item.item_category),
                "content_category" => (10, &mut item.content_category),
                "brand" => (11, &mut item.brand),
                "item_brand" => (12, &mut item.item_brand),
                "quantity" => {
                    first_time(&mut seen, 13)?;
                    item.quantity = r.opt_quantity()?;
                    return Some(());
                }
                "price" => {
                    first_time(&mut seen, 14)?;
                    item.price = r.opt_number()?;
                    return Some(());
                }
                _ => return r.skip(0),
            };
            first_time(&mut seen, field)?;
            // The five ids take numbers too; names, categories and brands only text.
            *text = if field <= 4 {
                r.opt_string_or_number()?
            } else {
                r.opt_string()?
            };
            Some(())
        })
    }

    fn consent(&mut self, consent: &mut Consent) -> Option<()> {
        let mut seen = 0;
        self.object(|r, key| {
            match key {
                "sendable_to_ads" => {
                    first_time(&mut seen, 0)?;
                    consent.sendable_to_ads = r.opt_bool()?;
                }
                "ad_storage" => {
                    first_time(&mut seen, 1)?;
                    consent.ad_storage = r.opt_name()?;
                }
                "ad_user_data" => {
                    first_time(&mut seen, 2)?;
                    consent.ad_user_data = r.opt_name()?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn context(&mut self, context: &mut Context<'a>) -> Option<()> {
        let mut seen = 0;
        self.object(|r, key| {
            match key {
                "ttp" => {
                    first_time(&mut seen, 0)?;
                    context.ttp = r.opt_string()?;
                }
                "ttclid" => {
                    first_time(&mut seen, 1)?;
                    context.ttclid = r.opt_string()?;
                }
                "pixel" => {
                    first_time(&mut seen, 2)?;
                    context.pixel = r.opt_name()?;
                }
                "user_agent" => {
                    first_time(&mut seen, 3)?;
                    context.user_agent = r.opt_string()?;
                }
                "ip" => {
                    first_time(&mut seen, 4)?;
                    context.ip = r.opt_string()?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;

    /// What serde reads, written out (`Debug` shows every field, `batch` included).
    fn by_serde(text: &str) -> Option<String> {
        serde_json::from_str::<CollectEvent<'_>>(text)
            .ok()
            .map(|event| format!("{event:?}"))
    }

    fn by_fast(text: &str) -> Option<String> {
        parse(text).map(|events| format!("{:?}", events[0]))
    }

    /// Whatever this reader accepts, serde reads the same.
    fn agrees(text: &str) {
        if let Some(fast) = by_fast(text) {
            assert_eq!(Some(fast), by_serde(text), "{text}");
        }
    }

    const RICH: &str = r#" {"event":"Order Completed","event_id":"msg-1","timestamp":1705320000000,
        "url":"https://shop.example.com/p/1?ttclid=E.C.P.x","referrer":null,
        "user_data":{"email":" Müller@Example.COM ","phone":"+1 (555) 123-4567","external_id":42,
          "email_hash":null,"extra":[1,{"a":true},"x",null,false]},
        "properties":{"value":16.48,"currency":"usd","order_id":1001,"query":"q",
          "items":[{"product_id":"sku-1","name":"Product 1","category":"shoes","price":10.99,
            "quantity":1,"brand":"Acme"},{"sku":7,"item_name":"Other","quantity":2.0,"price":5}],
          "line_items":[],"contents":null},
        "consent":{"sendable_to_ads":true,"ad_storage":"granted","ad_user_data":"denied"},
        "context":{"ip":"203.0.113.9","user_agent":"Mozilla/5.0 (X11)","pixel":"blocked",
          "ttp":"abc","ttclid":null},
        "source":"browser","unknown":{"deep":[[[]]]}} "#;

    #[test]
    fn plain_bodies_are_read_as_serde_reads_them() {
        let batch = format!(r#"{{"batch":[{RICH},{{"event":"a","timestamp":0.5}}]}}"#);
        for text in [RICH, &batch, "{}", r#"{"event":"a","quantity":0}"#] {
            assert!(by_fast(text).is_some(), "{text}");
            agrees(text);
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        for text in [
            r#"{"event":"a\"b"}"#,
            r#"{"ev\u0065nt":"a"}"#,
            "{\"event\":\"tab\there\"}",
            r#"{"event":"a","event":"b"}"#,
            r#"{"event":null,"event":null}"#,
            r#"{"event":"a","timestamp":-1}"#,
            r#"{"event":"a","timestamp":1e3}"#,
            r#"{"event":"a","timestamp":"2025-11-25T10:00:00Z"}"#,
            r#"{"event":"a","properties":{"value":"59.90"}}"#,
            r#"{"event":"a","properties":{"value":1234567890123456}}"#,
            r#"{"event":"a","properties":{"items":[{"quantity":1.5}]}}"#,
            r#"{"event":"a","properties":{"items":[{"id":1.5}]}}"#,
            r#"{"event":"a","consent":{"ad_storage":"maybe"}}"#,
            r#"{"event":"a","source":"server"}"#,
            r#"{"batch":[{"event":"a","batch":[]}]}"#,
            r#"{"event":"a","x":01}"#,
            r#"{"event":"a",}"#,
            r#"{"event":"a"} x"#,
            r#"[{"event":"a"}]"#,
        ] {
            assert_eq!(by_fast(text), None, "{text}");
        }
    }

    #[test]
    fn no_single_edit_makes_them_disagree() {
        let edits: &[&str] = &[
            "", "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "9", ".", "-", "e", "n",
            "null", "x", "\u{1}", "1.5", "\"a\"",
        ];
        for at in (0..=RICH.len()).filter(|at| RICH.is_char_boundary(*at)) {
            let next = (at + 1..=RICH.len())
                .find(|end| RICH.is_char_boundary(*end))
                .unwrap_or(at);
            for edit in edits {
                // Insert before `at`, and replace the character at `at`.
                agrees(&format!("{}{edit}{}", &RICH[..at], &RICH[at..]));
                agrees(&format!("{}{edit}{}", &RICH[..at], &RICH[next..]));
            }
        }
    }
}
