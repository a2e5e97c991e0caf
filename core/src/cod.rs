//! Cash on delivery (COD): a checkout's order is kept, and its purchase is sent once the
//! order is paid or delivered, with the identifiers the checkout had.
//!
//! In COD markets many orders are cancelled, so the purchase (`CompletePayment`) must not
//! be sent at checkout. A ready checkout event ([`CHECKOUT_EVENT`], or a name of the
//! destination's `cod_checkout_events`) that carries an order id is kept whole, its
//! `data[]` element already hashed. A confirmation ([`OrderUpdate`]) then becomes
//! [`confirmation`]: the checkout's element renamed, with the stable event id
//! `CompletePayment-<order_id>`, so the same user, page, consent (Limited Data Use) and
//! contents match as well as the web event would.
//!
//! Shop platforms confirm through a webhook signed with a per-destination secret:
//! [`verify_signature`] checks `X-Ttedge-Signature: t=<unix seconds>,v1=<hex>`, the
//! HMAC-SHA256 of `"<t>." + raw body`, with the clock passed in.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::destination::{read_json, SettingsError};
use crate::event::{opt_string_or_number, Timestamp};
use crate::offline::{DAY_MS, MAX_AGE_MS};

/// The TikTok event that stores an order, besides the destination's `cod_checkout_events`.
pub const CHECKOUT_EVENT: &str = "PlaceAnOrder";
/// The TikTok event a confirmed order sends.
pub const CONFIRMATION_EVENT: &str = "CompletePayment";
/// Longest order id accepted, in bytes.
pub const MAX_ORDER_ID_LEN: usize = 128;
/// Longest email, phone or external id accepted in a confirmation, in bytes.
const MAX_IDENTIFIER_LEN: usize = 256;
/// The webhook's signature header.
pub const SIGNATURE_HEADER: &str = "X-Ttedge-Signature";
/// How far a signed timestamp may be from now, either way: 5 minutes.
pub const SIGNATURE_TOLERANCE_S: i64 = 5 * 60;
/// How far ahead of now a confirmation's `at` may be (clock skew): 5 minutes.
const MAX_AHEAD_MS: i64 = SIGNATURE_TOLERANCE_S * 1_000;

/// Whether a ready event named `name` (TikTok's name) stores its order.
pub fn is_checkout(name: &str, extra: &[String]) -> bool {
    name == CHECKOUT_EVENT || extra.iter().any(|e| e == name)
}

/// The event id of an order's confirmation: the same for every confirmation of one order,
/// so TikTok and the Dispatcher count it once.
pub fn confirmation_id(order_id: &str) -> String {
    format!("{CONFIRMATION_EVENT}-{order_id}")
}

/// An order id as given: trimmed, 1 to [`MAX_ORDER_ID_LEN`] bytes, no control characters.
/// `None` when it is not one.
pub fn order_id(text: &str) -> Option<&str> {
    let text = text.trim();
    let fits = !text.is_empty() && text.len() <= MAX_ORDER_ID_LEN;
    (fits && !text.chars().any(char::is_control)).then_some(text)
}

/// An order id from a URL path segment, percent-decoded (`A%2F7` is `A/7`), then checked
/// as [`order_id`]. `None` for a bad escape, text that is not UTF-8, or no order id.
pub fn order_id_from_path(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = alloc::vec::Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = segment
                .get(at + 1..at + 3)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    let text = String::from_utf8(decoded).ok()?;
    order_id(&text).map(ToString::to_string)
}

/// What became of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Paid: the purchase is sent.
    Paid,
    /// Delivered (and so paid, in cash): the purchase is sent.
    Delivered,
    /// Cancelled: nothing is sent and the order is forgotten.
    Cancelled,
}

impl OrderStatus {
    /// Whether this status sends the purchase.
    pub fn confirms(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::Delivered)
    }
}

/// A confirmation or cancellation, as checked by [`parse_update`].
///
/// The identifiers are in clear (the pipeline hashes them, for an order the Dispatcher does
/// not know); `Debug` shows only whether each is there.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdate {
    /// Paid, delivered or cancelled.
    pub status: OrderStatus,
    /// Replaces the checkout's value.
    #[serde(default)]
    pub value: Option<f64>,
    /// Replaces the checkout's currency: ISO 4217, upper-case.
    #[serde(default)]
    pub currency: Option<String>,
    /// When the order was paid or delivered, epoch ms; the Worker's clock when absent.
    #[serde(default)]
    pub at_ms: Option<i64>,
    /// For an order the Dispatcher does not know: sent as a plain offline event.
    #[serde(default)]
    pub email: Option<String>,
    /// As `email`.
    #[serde(default)]
    pub phone: Option<String>,
    /// As `email`.
    #[serde(default)]
    pub external_id: Option<String>,
}

impl fmt::Debug for OrderUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |value: &Option<String>| value.as_ref().map(|_| "..");
        f.debug_struct("OrderUpdate")
            .field("status", &self.status)
            .field("value", &self.value)
            .field("currency", &self.currency)
            .field("at_ms", &self.at_ms)
            .field("email", &given(&self.email))
            .field("phone", &given(&self.phone))
            .field("external_id", &given(&self.external_id))
            .finish()
    }
}

impl OrderUpdate {
    /// Whether it carries an email, a phone or an external id: an unknown order can then
    /// still be sent as an offline event.
    pub fn identifies(&self) -> bool {
        self.email.is_some() || self.phone.is_some() || self.external_id.is_some()
    }
}

/// The body as read, before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    /// Shop platforms send numbers as often as strings.
    #[serde(borrow, default, deserialize_with = "opt_string_or_number")]
    order_id: Option<Cow<'a, str>>,
    status: OrderStatus,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    at: Option<Timestamp>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
}

/// Where the order id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderIdFrom<'a> {
    /// The admin route's path (`.../orders/{order_id}`); the body must not carry one.
    Path(&'a str),
    /// The webhook's body (`"order_id"`, a string or a whole number).
    Body,
}

/// Reads `{"status": "paid"|"delivered"|"cancelled", "value"?, "currency"?, "at"?,
/// "email"?, "phone"?, "external_id"?}` (and `"order_id"` for the webhook) at `now_ms`.
/// Answers the order id and the update; every error names its field and never quotes a
/// value.
///
/// `at` is epoch milliseconds or an RFC 3339 date-time, at most 5 minutes ahead of
/// `now_ms` and at most 28 days old (what TikTok accepts for offline events).
pub fn parse_update(
    body: &[u8],
    from: OrderIdFrom<'_>,
    now_ms: i64,
) -> Result<(String, OrderUpdate), SettingsError> {
    let body: Body = read_json(body)?;
    let id = match (from, body.order_id) {
        (OrderIdFrom::Path(_), Some(_)) => {
            return Err(SettingsError::invalid(
                "order_id",
                "is given in the path (.../orders/{order_id}), not in the body",
            ))
        }
        (OrderIdFrom::Path(path), None) => Cow::Borrowed(path),
        (OrderIdFrom::Body, Some(id)) => id,
        (OrderIdFrom::Body, None) => return Err(SettingsError::invalid("order_id", "is required")),
    };
    let id = order_id(&id).ok_or_else(|| {
        SettingsError::invalid(
            "order_id",
            format!("must be 1 to {MAX_ORDER_ID_LEN} characters without control characters"),
        )
    })?;
    if let Some(value) = body.value {
        if !value.is_finite() || value < 0.0 {
            return Err(SettingsError::invalid(
                "value",
                "must be a number of 0 or more",
            ));
        }
    }
    let currency = match body.currency.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(code.to_ascii_uppercase())
        }
        Some(_) => {
            return Err(SettingsError::invalid(
                "currency",
                "must be an ISO 4217 code of 3 letters, such as IDR",
            ))
        }
    };
    if let Some(Timestamp(at)) = body.at {
        if at > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(SettingsError::invalid("at", "is in the future"));
        }
        if now_ms.saturating_sub(at) > MAX_AGE_MS {
            return Err(SettingsError::invalid(
                "at",
                format!(
                    "is more than {} days ago; TikTok refuses older events",
                    MAX_AGE_MS / DAY_MS
                ),
            ));
        }
    }
    let identifier = |field: &str, value: Option<String>| {
        let value = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        match value {
            Some(v) if v.len() > MAX_IDENTIFIER_LEN || v.chars().any(char::is_control) => {
                Err(SettingsError::invalid(
                    field,
                    format!("must be at most {MAX_IDENTIFIER_LEN} characters without control characters"),
                ))
            }
            other => Ok(other),
        }
    };
    let update = OrderUpdate {
        status: body.status,
        value: body.value,
        currency,
        at_ms: body.at.map(|t| t.0),
        email: identifier("email", body.email)?,
        phone: identifier("phone", body.phone)?,
        external_id: identifier("external_id", body.external_id)?,
    };
    Ok((id.to_string(), update))
}

/// Why a stored checkout could not become a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodError {
    /// The stored checkout element does not read back as a TikTok event.
    UnreadableCheckout,
}

impl fmt::Display for CodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodError::UnreadableCheckout => {
                f.write_str("the order's stored checkout does not read back as a TikTok event")
            }
        }
    }
}

impl core::error::Error for CodError {}

/// The confirmation of an order from its stored checkout element (JSON): the checkout's
/// user (hashes, ttp, ttclid, IP, user agent), page, Limited Data Use and properties,
/// renamed [`CONFIRMATION_EVENT`] with the event id [`confirmation_id`], dated `update.at_ms`
/// (else `now_ms`), with the update's value and currency when it gives them.
pub fn confirmation(
    checkout: &str,
    order_id: &str,
    update: &OrderUpdate,
    now_ms: i64,
) -> Result<String, CodError> {
    // Edited as JSON rather than read back into a `TrackEvent`: the Worker already holds
    // serde_json's `Value`, and a second reader of the element would only add code.
    let mut event: Value =
        serde_json::from_str(checkout).map_err(|_| CodError::UnreadableCheckout)?;
    let element = event.as_object_mut().ok_or(CodError::UnreadableCheckout)?;
    element.insert("event".into(), CONFIRMATION_EVENT.into());
    element.insert("event_id".into(), confirmation_id(order_id).into());
    let at_s = update.at_ms.unwrap_or(now_ms).div_euclid(1_000);
    element.insert("event_time".into(), at_s.into());
    let properties = element
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(CodError::UnreadableCheckout)?;
    if let Some(value) = update.value {
        properties.insert("value".into(), value.into());
    }
    if let Some(currency) = &update.currency {
        properties.insert("currency".into(), currency.as_str().into());
    }
    properties.insert("order_id".into(), order_id.into());
    serde_json::to_string(&event).map_err(|_| CodError::UnreadableCheckout)
}

/// Why a webhook's signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature header.
    Missing,
    /// The header is not `t=<unix seconds>,v1=<64 hex>`.
    Malformed,
    /// The signed time is more than [`SIGNATURE_TOLERANCE_S`] from now: an old request
    /// replayed, or a clock far off.
    OutsideTolerance,
    /// No `v1` is the HMAC of the body with this destination's secret.
    Mismatch,
}

impl SignatureError {
    /// A stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::OutsideTolerance => "signature_expired",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Missing => write!(f, "{SIGNATURE_HEADER} is missing"),
            SignatureError::Malformed => write!(
                f,
                "{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.\" + body>"
            ),
            SignatureError::OutsideTolerance => write!(
                f,
                "the signed timestamp is more than {} minutes from now; sign each request when \
                 it is sent",
                SIGNATURE_TOLERANCE_S / 60
            ),
            SignatureError::Mismatch => f.write_str(
                "the signature does not match the body with this destination's webhook secret",
            ),
        }
    }
}

impl core::error::Error for SignatureError {}

/// The HMAC-SHA256 of `"<t>." + body` under `secret`.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value that signs `body` at `t` (unix seconds): what a shop platform sends.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Checks a webhook's signature header at `now_s` (unix seconds): a `t` within
/// [`SIGNATURE_TOLERANCE_S`] of now, either way, and a `v1` (one of several, while a secret
/// is rotated) equal to the HMAC-SHA256 of `"<t>." + body`, compared in constant time.
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let mut t: Option<i64> = None;
    let mut tags: alloc::vec::Vec<[u8; 32]> = alloc::vec::Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" if t.is_none() => {
                let value = value.trim();
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                t = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => {
                let mut tag = [0u8; 32];
                hex::decode_to_slice(value.trim(), &mut tag)
                    .map_err(|_| SignatureError::Malformed)?;
                tags.push(tag);
            }
            // Other schemes (a later v2) are ignored, as Stripe's are.
            "t" => return Err(SignatureError::Malformed),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_s.abs_diff(t) > SIGNATURE_TOLERANCE_S as u64 {
        return Err(SignatureError::OutsideTolerance);
    }
    let expected = mac(secret, t, body);
    let matched = tags.iter().fold(false, |any, tag| {
        any | expected.clone().verify_slice(tag).is_ok()
    });
    matched.then_some(()).ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use serde_json::{json, Value};

    const NOW_MS: i64 = 1_764_000_000_000;
    const SECRET: &[u8] = b"whsec_test_0123456789abcdef";

    fn parse(body: Value, from: OrderIdFrom<'_>) -> Result<(String, OrderUpdate), SettingsError> {
        parse_update(body.to_string().as_bytes(), from, NOW_MS)
    }

    fn refused(body: Value, from: OrderIdFrom<'_>, path: &str) -> String {
        match parse(body.clone(), from) {
            Ok(update) => panic!("{body} was accepted: {update:?}"),
            Err(error) => {
                assert_eq!(error.path, path, "{body}: {error}");
                error.message
            }
        }
    }

    #[test]
    fn an_update_reads_with_its_defaults_and_overrides() {
        let (id, update) = parse(json!({"status": "paid"}), OrderIdFrom::Path(" A-1001 ")).unwrap();
        assert_eq!(id, "A-1001");
        assert_eq!(update.status, OrderStatus::Paid);
        assert_eq!(
            (update.value, update.currency.as_deref(), update.at_ms),
            (None, None, None)
        );
        assert!(!update.identifies());

        let (id, update) = parse(
            json!({"order_id": 1001, "status": "delivered", "value": 150000, "currency": "idr",
                   "at": "2025-11-24T15:00:00Z", "email": " buyer@example.com "}),
            OrderIdFrom::Body,
        )
        .unwrap();
        assert_eq!(id, "1001");
        assert!(update.status.confirms());
        assert_eq!(update.value, Some(150_000.0));
        assert_eq!(update.currency.as_deref(), Some("IDR"));
        // 2025-11-24T15:00:00Z is 1,763,996,400 s after the epoch (date -d ... +%s).
        assert_eq!(update.at_ms, Some(1_763_996_400_000));
        assert_eq!(update.email.as_deref(), Some("buyer@example.com"));
        assert!(update.identifies());
        assert!(!format!("{update:?}").contains("buyer"));
        let (_, cancel) = parse(
            json!({"status": "cancelled", "at": NOW_MS}),
            OrderIdFrom::Path("9"),
        )
        .unwrap();
        assert!(!cancel.status.confirms());
    }

    #[test]
    fn every_bad_field_is_named() {
        let path = OrderIdFrom::Path("1001");
        refused(json!({}), path, "status");
        refused(json!({"status": "shipped"}), path, "status");
        refused(json!({"status": "paid", "value": -1}), path, "value");
        refused(json!({"status": "paid", "value": "12"}), path, "value");
        refused(
            json!({"status": "paid", "currency": "RUPIAH"}),
            path,
            "currency",
        );
        refused(json!({"status": "paid", "at": "yesterday"}), path, "at");
        refused(
            json!({"status": "paid", "at": NOW_MS + 6 * 60_000}),
            path,
            "at",
        );
        refused(
            json!({"status": "paid", "at": NOW_MS - 29 * DAY_MS}),
            path,
            "at",
        );
        refused(json!({"status": "paid", "email": 7}), path, "email");
        refused(json!({"status": "paid", "phone": "1\n2"}), path, "phone");
        refused(json!({"status": "paid", "note": "x"}), path, "note");
        refused(json!({"status": "paid", "order_id": "1"}), path, "order_id");
        refused(json!({"status": "paid"}), OrderIdFrom::Body, "order_id");
        refused(
            json!({"status": "paid", "order_id": ""}),
            OrderIdFrom::Body,
            "order_id",
        );
        refused(
            json!({"status": "paid", "order_id": "a".repeat(129)}),
            OrderIdFrom::Body,
            "order_id",
        );
        refused(
            json!({"status": "paid"}),
            OrderIdFrom::Path("a\u{7}b"),
            "order_id",
        );
        let message = refused(
            json!({"status": "paid", "email": ["someone@example.com"]}),
            path,
            "email",
        );
        assert!(!message.contains("someone"), "{message}");
        let error = parse_update(b"{\"status\":", path, NOW_MS).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.code()),
            ("(body)", "malformed_json")
        );
    }

    fn checkout() -> String {
        json!({
            "event": "PlaceAnOrder", "event_time": 1_763_900_000, "event_id": "chk-1",
            "user": {"email": "a".repeat(64), "phone": "b".repeat(64), "ttp": "ttp.1",
                     "ttclid": "clk", "ip": "203.0.113.9", "user_agent": "UA/1"},
            "page": {"url": "https://shop.example/thanks"},
            "properties": {"value": 100.0, "currency": "IDR", "content_type": "product",
                           "contents": [{"content_id": "sku-1", "quantity": 2}], "order_id": "1001"},
            "limited_data_use": true,
        })
        .to_string()
    }

    #[test]
    fn a_confirmation_keeps_the_checkout_and_takes_the_update() {
        let (_, update) = parse(json!({"status": "paid"}), OrderIdFrom::Path("1001")).unwrap();
        let sent: Value =
            serde_json::from_str(&confirmation(&checkout(), "1001", &update, NOW_MS).unwrap())
                .unwrap();
        let mut expected: Value = serde_json::from_str(&checkout()).unwrap();
        expected["event"] = json!("CompletePayment");
        expected["event_id"] = json!("CompletePayment-1001");
        expected["event_time"] = json!(NOW_MS / 1_000);
        assert_eq!(sent, expected);

        let (_, update) = parse(
            json!({"status": "delivered", "value": 90.5, "currency": "usd", "at": NOW_MS - 60_000}),
            OrderIdFrom::Path("1001"),
        )
        .unwrap();
        let sent: Value =
            serde_json::from_str(&confirmation(&checkout(), "1001", &update, NOW_MS).unwrap())
                .unwrap();
        assert_eq!(sent["properties"]["value"], 90.5);
        assert_eq!(sent["properties"]["currency"], "USD");
        assert_eq!(sent["event_time"], NOW_MS / 1_000 - 60);
        assert_eq!(sent["limited_data_use"], true, "consent as at checkout");
        assert_eq!(sent["user"]["ttp"], "ttp.1");
        assert_eq!(
            confirmation("{\"event\":", "1001", &update, NOW_MS),
            Err(CodError::UnreadableCheckout)
        );
    }

    #[test]
    fn path_order_ids_are_percent_decoded() {
        assert_eq!(order_id_from_path("1001").as_deref(), Some("1001"));
        assert_eq!(order_id_from_path("A%2F7%20b").as_deref(), Some("A/7 b"));
        assert_eq!(order_id_from_path("%C3%A9").as_deref(), Some("é"));
        for bad in ["", "%", "%2", "%zz", "%+F", "%FF", "%0A", "%20"] {
            assert_eq!(order_id_from_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn checkouts_are_place_an_order_and_the_extras() {
        assert!(is_checkout("PlaceAnOrder", &[]));
        assert!(!is_checkout("CompletePayment", &[]));
        assert!(is_checkout("Checkout", &["Checkout".into()]));
        assert_eq!(confirmation_id("A-7"), "CompletePayment-A-7");
    }

    // The reference HMAC, computed apart from this code:
    //   printf '%s' '1764000000.{"order_id":"1001","status":"paid"}' \
    //     | openssl dgst -sha256 -hmac 'whsec_test_0123456789abcdef'
    const BODY: &[u8] = br#"{"order_id":"1001","status":"paid"}"#;
    const REFERENCE_HEX: &str = "b1a576b908b0ac43aa99546c6d14ec1ef71a7cd652eb026f115b21dbce6c9c3e";

    fn reference() -> String {
        format!("t=1764000000,v1={REFERENCE_HEX}")
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        let now = NOW_MS / 1_000;
        assert_eq!(sign(SECRET, now, BODY), reference());
        assert_eq!(
            verify_signature(SECRET, Some(&reference()), BODY, now),
            Ok(())
        );
        // Within 5 minutes either way.
        for skew in [-300, 300] {
            assert_eq!(
                verify_signature(SECRET, Some(&reference()), BODY, now + skew),
                Ok(())
            );
        }
        for skew in [-301, 301, 360] {
            assert_eq!(
                verify_signature(SECRET, Some(&reference()), BODY, now + skew),
                Err(SignatureError::OutsideTolerance)
            );
        }
    }

    #[test]
    fn a_wrong_or_missing_signature_is_refused() {
        let now = NOW_MS / 1_000;
        let good = reference();
        assert_eq!(
            verify_signature(SECRET, None, BODY, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(SECRET, Some(" "), BODY, now),
            Err(SignatureError::Missing)
        );
        // Another body, another secret, another time under the same tag.
        let other = br#"{"order_id":"1002","status":"paid"}"#;
        assert_eq!(
            verify_signature(SECRET, Some(&good), other, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"whsec_other_secret_000000", Some(&good), BODY, now),
            Err(SignatureError::Mismatch)
        );
        let moved = good.replace("t=1764000000", "t=1764000001");
        assert_eq!(
            verify_signature(SECRET, Some(&moved), BODY, now),
            Err(SignatureError::Mismatch)
        );
        // A second v1 (a rotated secret) may match.
        let rotated = format!("t={now},v1={},v1={REFERENCE_HEX}", "ab".repeat(32));
        assert_eq!(verify_signature(SECRET, Some(&rotated), BODY, now), Ok(()));
        let malformed: Vec<String> = vec![
            "v1=00".into(),
            format!("t={now}"),
            format!("t={now},v1=zz"),
            format!("t=-5,v1={REFERENCE_HEX}"),
            format!("t={now},t={now},v1={REFERENCE_HEX}"),
            format!("t=,v1={REFERENCE_HEX}"),
            "garbage".into(),
        ];
        for header in malformed {
            assert_eq!(
                verify_signature(SECRET, Some(&header), BODY, now),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        assert_eq!(SignatureError::OutsideTolerance.code(), "signature_expired");
    }
}
