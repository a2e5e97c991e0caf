//! Event names: from whatever a page or tag manager calls an event to TikTok's name for it.
//!
//! TikTok deduplicates a server event against the pixel's copy on pixel + event name +
//! event_id, so the name must come out the same on both sides; a destination can therefore
//! override single mappings.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use core::fmt;

use crate::text;

/// TikTok's standard events, as TikTok spells them.
pub const STANDARD_EVENTS: [&str; 22] = [
    "Pageview",
    "ViewContent",
    "ClickButton",
    "Search",
    "AddToWishlist",
    "AddToCart",
    "InitiateCheckout",
    "AddPaymentInfo",
    "PlaceAnOrder",
    "CompletePayment",
    "CompleteRegistration",
    "Lead",
    "SubmitForm",
    "Contact",
    "Download",
    "Subscribe",
    "StartTrial",
    "Schedule",
    "FindLocation",
    "CustomizeProduct",
    "SubmitApplication",
    "ApplicationApproval",
];

/// The longest custom event name TikTok accepts.
pub const MAX_CUSTOM_NAME_LEN: usize = 50;

/// What becomes of an incoming event name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMapping {
    /// Send under this TikTok name (standard or custom).
    Send(String),
    /// Never sent: an internal event, or custom events are off.
    Skip(SkipReason),
    /// Cannot be sent: the name is not one TikTok would accept.
    Reject(NameError),
}

/// Why a name is not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Bookkeeping events of SDKs and Google Tag Manager (`identify`, `gtm.js`, …).
    Internal(String),
    /// A custom event while the destination has custom events turned off.
    CustomEventsOff(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Internal(name) => write!(f, "'{name}' is an internal event, never sent"),
            SkipReason::CustomEventsOff(name) => write!(
                f,
                "'{name}' is not a standard event and custom events are off for this destination"
            ),
        }
    }
}

/// Why a custom name cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Longer than [`MAX_CUSTOM_NAME_LEN`].
    TooLong(String),
    /// Does not start with a letter.
    BadStart(String),
    /// Holds a character other than letters, digits, `_` and `-`.
    BadCharacter(String, char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::TooLong(name) => write!(
                f,
                "custom event name '{name}' is longer than {MAX_CUSTOM_NAME_LEN} characters"
            ),
            NameError::BadStart(name) => {
                write!(f, "custom event name '{name}' must start with a letter")
            }
            NameError::BadCharacter(name, c) => write!(
                f,
                "custom event name '{name}' holds {c:?}; only letters, digits, '_' and '-' are allowed"
            ),
        }
    }
}

/// A destination's own naming rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRules {
    /// Normalised incoming name → TikTok name. Wins over the table and the skip list.
    overrides: BTreeMap<String, String>,
    /// When false, names that are not standard events are skipped.
    pub custom_events: bool,
}

impl Default for NameRules {
    fn default() -> Self {
        NameRules {
            overrides: BTreeMap::new(),
            custom_events: true,
        }
    }
}

impl NameRules {
    /// Rules with overrides. Keys are normalised like incoming names; each target must be
    /// a name TikTok accepts (a standard event in any case becomes TikTok's spelling).
    pub fn new<'a>(
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
        custom_events: bool,
    ) -> Result<Self, NameError> {
        let overrides = overrides
            .into_iter()
            .map(|(from, to)| {
                let target = match standard_spelling(to.trim()) {
                    Some(standard) => standard.to_string(),
                    None => valid_custom_name(to.trim())?.to_string(),
                };
                Ok((normalize(from), target))
            })
            .collect::<Result<_, NameError>>()?;
        Ok(NameRules {
            overrides,
            custom_events,
        })
    }

    /// The overrides, normalised incoming name → TikTok name.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// Maps one incoming event name.
    pub fn map(&self, incoming: &str) -> NameMapping {
        match self.resolve(incoming) {
            Ok(name) => NameMapping::Send(name.into_owned()),
            Err(not_sent) => not_sent,
        }
    }

    /// [`map`](NameRules::map) without copying the name on the way: a TikTok name is a
    /// `'static` standard name, a custom name borrowed from `incoming`, or a copy of an
    /// override. `Err` holds a skip or a rejection.
    pub(crate) fn resolve<'n>(&self, incoming: &'n str) -> Result<Cow<'n, str>, NameMapping> {
        let mut buffer = [0u8; NORMALIZED_ON_STACK];
        let long_name;
        let normalized = match normalize_ascii_into(incoming, &mut buffer) {
            Some(normalized) => normalized,
            None => {
                long_name = normalize(incoming);
                &long_name
            }
        };
        if let Some(target) = self.overrides.get(normalized) {
            return Ok(Cow::Owned(target.clone()));
        }
        if is_internal(normalized) {
            return Err(NameMapping::Skip(SkipReason::Internal(
                normalized.to_string(),
            )));
        }
        if let Some(standard) = standard_event(normalized) {
            return Ok(Cow::Borrowed(standard));
        }
        let custom = strip_dl_prefix(text::trim(incoming));
        match valid_custom_name(custom) {
            Err(error) => Err(NameMapping::Reject(error)),
            Ok(_) if !self.custom_events => Err(NameMapping::Skip(SkipReason::CustomEventsOff(
                custom.to_string(),
            ))),
            Ok(name) => Ok(Cow::Borrowed(name)),
        }
    }
}

/// Names up to this long are normalised on the stack; longer ones (never a valid name, but
/// a page may send one) take [`normalize`]'s allocation.
const NORMALIZED_ON_STACK: usize = 64;

/// [`normalize`] into `buffer`, for a short ASCII name; `None` otherwise.
fn normalize_ascii_into<'b>(name: &str, buffer: &'b mut [u8]) -> Option<&'b str> {
    let trimmed = text::trim(name);
    if !trimmed.is_ascii() {
        return None;
    }
    let lowered = buffer.get_mut(..trimmed.len())?;
    for (to, from) in lowered.iter_mut().zip(trimmed.bytes()) {
        *to = match from {
            b' ' | b'-' => b'_',
            b => b.to_ascii_lowercase(),
        };
    }
    let lowered = core::str::from_utf8(lowered).ok()?;
    Some(lowered.strip_prefix("dl_").unwrap_or(lowered))
}

/// Trim, lower-case, spaces and hyphens to `_`, strip a leading `dl_`.
pub fn normalize(name: &str) -> String {
    let trimmed = name.trim();
    let lowered: String = if trimmed.is_ascii() {
        trimmed
            .bytes()
            .map(|b| match b {
                b' ' | b'-' => '_',
                b => char::from(b.to_ascii_lowercase()),
            })
            .collect()
    } else {
        trimmed
            .chars()
            .flat_map(char::to_lowercase)
            .map(|c| if c == ' ' || c == '-' { '_' } else { c })
            .collect()
    };
    match lowered.strip_prefix("dl_") {
        Some(rest) => rest.to_string(),
        None => lowered,
    }
}

/// `dl_` marks Google Tag Manager dataLayer events; it is not part of the name.
fn strip_dl_prefix(name: &str) -> &str {
    match name.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("dl_") => &name[3..],
        _ => name,
    }
}

/// Names that describe the SDK's or GTM's own bookkeeping, not a person's action.
fn is_internal(normalized: &str) -> bool {
    matches!(
        normalized,
        "identify" | "session_start" | "page_hidden" | "consent_update"
    ) || normalized.starts_with("gtm.")
}

/// TikTok's spelling of a standard event name written in any case.
fn standard_spelling(name: &str) -> Option<&'static str> {
    STANDARD_EVENTS
        .iter()
        .copied()
        .find(|standard| standard.eq_ignore_ascii_case(name))
}

/// The table of DESIGN's "Event names", on a normalised name.
pub fn standard_event(normalized: &str) -> Option<&'static str> {
    let tiktok = match normalized {
        "page_view" | "pageview" | "page" => "Pageview",
        "view_item" | "product_viewed" | "view_content" | "viewcontent" => "ViewContent",
        "click" | "select_item" | "product_clicked" | "click_button" | "clickbutton" => {
            "ClickButton"
        }
        "search" | "view_search_results" | "products_searched" => "Search",
        "add_to_wishlist" | "product_added_to_wishlist" | "addtowishlist" => "AddToWishlist",
        "add_to_cart" | "product_added" | "addtocart" => "AddToCart",
        "begin_checkout" | "checkout_started" | "initiate_checkout" | "initiatecheckout" => {
            "InitiateCheckout"
        }
        "add_payment_info" | "payment_info_entered" | "addpaymentinfo" => "AddPaymentInfo",
        "place_order" | "order_placed" | "placeanorder" => "PlaceAnOrder",
        "purchase" | "order_completed" | "complete_payment" | "completepayment" => {
            "CompletePayment"
        }
        "sign_up" | "signed_up" | "complete_registration" | "completeregistration" => {
            "CompleteRegistration"
        }
        "generate_lead" | "lead" => "Lead",
        "submit_form" | "form_submitted" | "submitform" => "SubmitForm",
        "contact" | "callback_started" => "Contact",
        "file_download" | "download" | "download_link_clicked" => "Download",
        "subscribe" | "subscription_created" => "Subscribe",
        "start_trial" | "trial_started" => "StartTrial",
        "schedule" => "Schedule",
        "find_location" => "FindLocation",
        "customize_product" => "CustomizeProduct",
        "submit_application" => "SubmitApplication",
        "application_approval" => "ApplicationApproval",
        // Every TikTok name maps to itself in any case (`StartTrial`, `starttrial`).
        other => return standard_spelling(other),
    };
    Some(tiktok)
}

/// TikTok accepts custom names of 1–50 letters, digits, `_` and `-`, starting with a letter.
pub fn valid_custom_name(name: &str) -> Result<&str, NameError> {
    if name.chars().count() > MAX_CUSTOM_NAME_LEN {
        return Err(NameError::TooLong(name.to_string()));
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err(NameError::BadStart(name.to_string())),
    }
    match chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        Some(bad) => Err(NameError::BadCharacter(name.to_string(), bad)),
        None => Ok(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str) -> NameMapping {
        NameRules::default().map(name)
    }

    fn sent(name: &str) -> String {
        match map(name) {
            NameMapping::Send(tiktok) => tiktok,
            other => panic!("{name} was not sent: {other:?}"),
        }
    }

    #[test]
    fn normalisation_steps() {
        assert_eq!(normalize("  Order Completed "), "order_completed");
        assert_eq!(normalize("Add-To-Cart"), "add_to_cart");
        assert_eq!(normalize("dl_Purchase"), "purchase");
        assert_eq!(normalize("DL_gtm.js"), "gtm.js");
    }

    #[test]
    fn every_table_row() {
        let rows: [(&str, &[&str]); 22] = [
            ("Pageview", &["page_view", "pageview", "page"]),
            (
                "ViewContent",
                &["view_item", "product_viewed", "view_content", "viewcontent"],
            ),
            (
                "ClickButton",
                &[
                    "click",
                    "select_item",
                    "product_clicked",
                    "click_button",
                    "clickbutton",
                ],
            ),
            (
                "Search",
                &["search", "view_search_results", "products_searched"],
            ),
            (
                "AddToWishlist",
                &[
                    "add_to_wishlist",
                    "product_added_to_wishlist",
                    "addtowishlist",
                ],
            ),
            ("AddToCart", &["add_to_cart", "product_added", "addtocart"]),
            (
                "InitiateCheckout",
                &[
                    "begin_checkout",
                    "checkout_started",
                    "initiate_checkout",
                    "initiatecheckout",
                ],
            ),
            (
                "AddPaymentInfo",
                &["add_payment_info", "payment_info_entered", "addpaymentinfo"],
            ),
            (
                "PlaceAnOrder",
                &["place_order", "order_placed", "placeanorder"],
            ),
            (
                "CompletePayment",
                &[
                    "purchase",
                    "order_completed",
                    "complete_payment",
                    "completepayment",
                ],
            ),
            (
                "CompleteRegistration",
                &[
                    "sign_up",
                    "signed_up",
                    "complete_registration",
                    "completeregistration",
                ],
            ),
            ("Lead", &["generate_lead", "lead"]),
            (
                "SubmitForm",
                &["submit_form", "form_submitted", "submitform"],
            ),
            ("Contact", &["contact", "callback_started"]),
            (
                "Download",
                &["file_download", "download", "download_link_clicked"],
            ),
            ("Subscribe", &["subscribe", "subscription_created"]),
            ("StartTrial", &["start_trial", "trial_started"]),
            ("Schedule", &["schedule"]),
            ("FindLocation", &["find_location"]),
            ("CustomizeProduct", &["customize_product"]),
            ("SubmitApplication", &["submit_application"]),
            ("ApplicationApproval", &["application_approval"]),
        ];
        for (tiktok, incoming) in rows {
            for name in incoming {
                assert_eq!(sent(name), tiktok, "{name}");
            }
            assert_eq!(sent(tiktok), tiktok);
            assert_eq!(sent(&tiktok.to_lowercase()), tiktok);
            assert_eq!(sent(&tiktok.to_uppercase()), tiktok);
        }
    }

    #[test]
    fn variants_after_normalisation() {
        assert_eq!(sent("Order Completed"), "CompletePayment");
        assert_eq!(sent("dl_add_to_cart"), "AddToCart");
        assert_eq!(sent("Products Searched"), "Search");
        assert_eq!(sent("begin-checkout"), "InitiateCheckout");
    }

    #[test]
    fn internal_events_are_skipped() {
        for name in [
            "identify",
            "session_start",
            "Page Hidden",
            "consent_update",
            "gtm.js",
            "gtm.dom",
            "gtm.load",
            "dl_gtm.historyChange",
        ] {
            assert!(
                matches!(map(name), NameMapping::Skip(SkipReason::Internal(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn custom_names_keep_their_case() {
        assert_eq!(sent(" Wishlist_Shared "), "Wishlist_Shared");
        assert_eq!(sent("dl_Quiz-Done"), "Quiz-Done");
    }

    #[test]
    fn invalid_custom_names_are_rejected() {
        assert!(matches!(
            map("Newsletter Popup"),
            NameMapping::Reject(NameError::BadCharacter(_, ' '))
        ));
        assert!(matches!(
            map("1st_visit"),
            NameMapping::Reject(NameError::BadStart(_))
        ));
        assert!(matches!(
            map(&"a".repeat(51)),
            NameMapping::Reject(NameError::TooLong(_))
        ));
        assert_eq!(sent(&"a".repeat(50)), "a".repeat(50));
        assert!(matches!(
            map("café"),
            NameMapping::Reject(NameError::BadCharacter(_, 'é'))
        ));
    }

    #[test]
    fn custom_events_off() {
        let rules = NameRules::new([], false).unwrap();
        assert_eq!(
            rules.map("purchase"),
            NameMapping::Send("CompletePayment".into())
        );
        assert!(matches!(
            rules.map("quiz_done"),
            NameMapping::Skip(SkipReason::CustomEventsOff(_))
        ));
    }

    #[test]
    fn overrides_win() {
        let rules = NameRules::new(
            [
                ("Order Placed", "completepayment"),
                ("identify", "CompleteRegistration"),
                ("quiz", "QuizDone"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            rules.map("order_placed"),
            NameMapping::Send("CompletePayment".into())
        );
        assert_eq!(
            rules.map("identify"),
            NameMapping::Send("CompleteRegistration".into())
        );
        assert_eq!(rules.map("Quiz"), NameMapping::Send("QuizDone".into()));
        assert!(NameRules::new([("x", "not valid")], true).is_err());
    }
}
