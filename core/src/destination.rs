//! A destination: the settings an operator stores for one site host through the admin API,
//! and the pixel baselines that recovery is measured against.
//!
//! [`parse_settings`] reads a PUT body strictly: unknown fields are refused (a typo such as
//! `custom_event` would otherwise silently keep the default), and every error names the
//! field by its JSON path (`event_overrides.add_to_cart`, `site_origins[1]`), so the
//! dashboard can put the message next to the right input. What passes is normalised:
//! blank optional strings become `None`, host-dependent values are lower-cased, standard
//! TikTok names get TikTok's spelling, so the stored value is the value applied.
//!
//! The access token is the one secret here. It is never serialised, never shown by
//! `Debug`, and no error message repeats it: these values end up in answers and logs.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::connection::is_site_host;
use crate::cookie::PublicSuffixList;
use crate::json_error::{self, JsonError, BODY};
use crate::mapping::{normalize, valid_custom_name, NameRules, STANDARD_EVENTS};
use crate::pipeline::Destination;
use crate::ratelimit::DEFAULT_LIMIT_PER_MINUTE;

/// Longest pixel code, test event code or baseline pixel code accepted.
pub const MAX_CODE_LEN: usize = 64;
/// Longest access token accepted; TikTok's are 40 characters.
pub const MAX_TOKEN_LEN: usize = 512;
/// Most allowed page origins per destination.
pub const MAX_SITE_ORIGINS: usize = 50;
/// Most event-name overrides per destination.
pub const MAX_OVERRIDES: usize = 200;
/// Longest incoming event name an override may name, in characters.
pub const MAX_OVERRIDE_KEY_LEN: usize = 100;
/// Most extra conversion names per destination.
pub const MAX_CONVERSION_EVENTS: usize = 20;
/// Highest rate limit accepted, requests per minute: well above any TikTok grant.
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 100_000;
/// Longest baseline, in days (inclusive): a bit over a year of Ads Manager reports.
pub const MAX_BASELINE_DAYS: u32 = 400;
/// Highest pixel conversion count a baseline may hold.
pub const MAX_BASELINE_CONVERSIONS: u64 = 1_000_000_000_000;
/// Days a cash-on-delivery order is kept after checkout unless `cod_days` says otherwise.
pub const DEFAULT_COD_DAYS: u32 = 60;
/// The longest a cash-on-delivery order may be kept, in days.
pub const MAX_COD_DAYS: u32 = 365;
/// Shortest webhook secret accepted: 16 characters, such as `openssl rand -hex 16`.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;
/// One day in milliseconds.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1_000;

/// The settings of one site host, as stored and as answered by the admin API.
///
/// `Debug` shows whether an access token is present, never the token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSettings {
    /// The TikTok pixel code events are sent to (`event_source_id`).
    pub pixel_id: String,
    /// The TikTok access token. `None` on a PUT keeps the stored one; never serialised, so
    /// an answer or a stored settings row cannot leak it (it is sealed separately).
    #[serde(default, skip_serializing)]
    pub access_token: Option<String>,
    /// Sends every event as a test event (Events Manager's "Test events") when set.
    #[serde(default)]
    pub test_event_code: Option<String>,
    /// The Offline Event Set offline events (CSV uploads, cash-on-delivery confirmations)
    /// are sent to, as `event_source: "offline"`. Without one they go to the pixel.
    #[serde(default)]
    pub offline_event_set_id: Option<String>,
    /// The browser pixel the server's conversions are compared with, when it is not
    /// `pixel_id` (see [`Baseline`]).
    #[serde(default)]
    pub baseline_pixel_code: Option<String>,
    /// Whether events are sent to TikTok. Off, they are scored and counted only, so an
    /// operator can check match quality before anything reaches the ad account.
    #[serde(default)]
    pub live: bool,
    /// Page origins allowed to post to `/collect` (`https://shop.example`).
    #[serde(default)]
    pub site_origins: Vec<String>,
    /// `Domain` of the `_ttp` and `ttclid` cookies; by default the host's registrable domain.
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// Normalised incoming event name → TikTok event name, so server and pixel agree.
    #[serde(default)]
    pub event_overrides: BTreeMap<String, String>,
    /// Whether names that are not standard events go as custom events (else skipped).
    #[serde(default = "default_custom_events")]
    pub custom_events: bool,
    /// Requests per sliding minute for this destination's access token.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u32,
    /// TikTok names counted as conversions besides [`crate::health::CONVERSIONS`].
    #[serde(default)]
    pub conversion_events: Vec<String>,
    /// TikTok names that store a cash-on-delivery order besides `PlaceAnOrder` (see
    /// [`crate::cod`]).
    #[serde(default)]
    pub cod_checkout_events: Vec<String>,
    /// Days a cash-on-delivery order is kept after checkout, waiting for its confirmation.
    #[serde(default = "default_cod_days")]
    pub cod_days: u32,
    /// The secret that signs the order webhook. Write-only like the access token: `None`
    /// on a PUT keeps the stored one; never serialised (it is sealed separately).
    #[serde(default, skip_serializing)]
    pub webhook_secret: Option<String>,
    /// Days a browser's identity (hashed email, phone, external id) is kept from its last
    /// use, for identity resolution; 0 turns it off (see [`crate::identity`]).
    #[serde(default = "default_identity_days")]
    pub identity_days: u32,
}

fn default_identity_days() -> u32 {
    crate::identity::DEFAULT_DAYS
}

fn default_cod_days() -> u32 {
    DEFAULT_COD_DAYS
}

fn default_custom_events() -> bool {
    true
}

fn default_rate_limit() -> u32 {
    DEFAULT_LIMIT_PER_MINUTE
}

impl fmt::Debug for DestinationSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationSettings")
            .field("pixel_id", &self.pixel_id)
            .field("access_token", &self.access_token.as_ref().map(|_| ".."))
            .field("test_event_code", &self.test_event_code)
            .field("offline_event_set_id", &self.offline_event_set_id)
            .field("baseline_pixel_code", &self.baseline_pixel_code)
            .field("live", &self.live)
            .field("site_origins", &self.site_origins)
            .field("cookie_domain", &self.cookie_domain)
            .field("event_overrides", &self.event_overrides)
            .field("custom_events", &self.custom_events)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("conversion_events", &self.conversion_events)
            .field("cod_checkout_events", &self.cod_checkout_events)
            .field("cod_days", &self.cod_days)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| ".."),
            )
            .field("identity_days", &self.identity_days)
            .finish()
    }
}

impl DestinationSettings {
    /// The naming rules of these settings: the overrides and the custom-events switch.
    ///
    /// Settings from [`parse_settings`] always convert whole; an override that is not a
    /// name TikTok accepts (settings built by hand) is left out rather than failing events.
    pub fn name_rules(&self) -> NameRules {
        let valid = self
            .event_overrides
            .iter()
            .filter(|(_, to)| tiktok_name(to).is_some())
            .map(|(from, to)| (from.as_str(), to.as_str()));
        let mut rules = NameRules::new(valid, self.custom_events).unwrap_or_default();
        rules.custom_events = self.custom_events;
        rules
    }

    /// What the pipeline needs to prepare this destination's events.
    pub fn pipeline_destination(&self) -> Destination {
        Destination {
            pixel_id: self.pixel_id.clone(),
            test_event_code: self.test_event_code.clone(),
            names: self.name_rules(),
        }
    }
}

/// Why a settings or baseline body was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The JSON path of the field (`site_origins[1]`), or `(body)` for the whole body.
    pub path: String,
    /// What is wrong, for a person. Never holds a secret value.
    pub message: String,
    kind: ErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    MalformedJson,
    UnknownField,
    InvalidField,
}

impl SettingsError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError {
            path: path.into(),
            message: message.into(),
            kind: ErrorKind::InvalidField,
        }
    }

    /// A stable machine-readable name: `malformed_json` (not JSON at all), `unknown_field`
    /// (a field these settings do not have) or `invalid_field`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::MalformedJson => "malformed_json",
            ErrorKind::UnknownField => "unknown_field",
            ErrorKind::InvalidField => "invalid_field",
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl core::error::Error for SettingsError {}

/// Reads and checks the settings body of a PUT for the site host `host`.
///
/// Missing fields take their defaults (`live` false, `custom_events` true, the default
/// rate limit); blank optional strings mean `None` (for `access_token`: keep the stored
/// one). The result is normalised: trimmed, origins and cookie domain lower-cased,
/// override keys normalised like incoming names, standard TikTok names in TikTok's
/// spelling, duplicate origins and conversion names dropped.
///
/// `suffixes` refuses a cookie domain that is a public suffix, which browsers would drop.
pub fn parse_settings(
    host: &str,
    body: &[u8],
    suffixes: &PublicSuffixList,
) -> Result<DestinationSettings, SettingsError> {
    if !is_site_host(host) {
        return Err(SettingsError::invalid(
            "host",
            "is not a site host (DNS name with an optional :port)",
        ));
    }
    let host = host.to_ascii_lowercase();
    let mut settings: DestinationSettings = read_json(body)?;

    settings.pixel_id = settings.pixel_id.trim().to_string();
    if settings.pixel_id.is_empty() {
        return Err(SettingsError::invalid("pixel_id", "is required"));
    }
    check_code("pixel_id", &settings.pixel_id)?;

    settings.access_token = blank_to_none(settings.access_token.take());
    if let Some(token) = &settings.access_token {
        if token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            // Never the value: this message is answered and may be logged.
            return Err(SettingsError::invalid(
                "access_token",
                format!("must be 1 to {MAX_TOKEN_LEN} visible ASCII characters without spaces"),
            ));
        }
    }

    settings.test_event_code = blank_to_none(settings.test_event_code.take());
    if let Some(code) = &settings.test_event_code {
        check_code("test_event_code", code)?;
    }
    settings.offline_event_set_id = blank_to_none(settings.offline_event_set_id.take());
    if let Some(id) = &settings.offline_event_set_id {
        check_code("offline_event_set_id", id)?;
    }
    settings.baseline_pixel_code = blank_to_none(settings.baseline_pixel_code.take());
    if let Some(code) = &settings.baseline_pixel_code {
        check_code("baseline_pixel_code", code)?;
    }

    settings.site_origins = check_origins(&settings.site_origins)?;

    settings.cookie_domain = blank_to_none(settings.cookie_domain.take());
    if let Some(domain) = settings.cookie_domain.take() {
        settings.cookie_domain = Some(check_cookie_domain(&host, &domain, suffixes)?);
    }

    settings.event_overrides = check_overrides(&settings.event_overrides)?;

    if !(1..=MAX_RATE_LIMIT_PER_MINUTE).contains(&settings.rate_limit_per_minute) {
        return Err(SettingsError::invalid(
            "rate_limit_per_minute",
            format!("must be from 1 to {MAX_RATE_LIMIT_PER_MINUTE}"),
        ));
    }

    settings.conversion_events = check_names("conversion_events", &settings.conversion_events)?;
    settings.cod_checkout_events =
        check_names("cod_checkout_events", &settings.cod_checkout_events)?;
    if !(1..=MAX_COD_DAYS).contains(&settings.cod_days) {
        return Err(SettingsError::invalid(
            "cod_days",
            format!("must be a whole number of days from 1 to {MAX_COD_DAYS}"),
        ));
    }
    settings.webhook_secret = blank_to_none(settings.webhook_secret.take());
    if let Some(secret) = &settings.webhook_secret {
        let visible = secret.bytes().all(|b| b.is_ascii_graphic());
        if !(MIN_WEBHOOK_SECRET_LEN..=MAX_TOKEN_LEN).contains(&secret.len()) || !visible {
            // Never the value: this message is answered and may be logged.
            return Err(SettingsError::invalid(
                "webhook_secret",
                format!(
                    "must be {MIN_WEBHOOK_SECRET_LEN} to {MAX_TOKEN_LEN} visible ASCII \
                     characters without spaces, such as the output of `openssl rand -hex 32`"
                ),
            ));
        }
    }

    if settings.identity_days > crate::identity::MAX_DAYS {
        return Err(SettingsError::invalid(
            "identity_days",
            format!(
                "must be from 0 (identity resolution off) to {}",
                crate::identity::MAX_DAYS
            ),
        ));
    }
    Ok(settings)
}

/// Why `origin` is not an origin as a browser sends it, or `None` when it is one.
///
/// An origin is `https://host[:port]`, lower-case, without a path or trailing slash;
/// `http://` is allowed only for local development hosts (`localhost`, `127.0.0.1`,
/// `*.localhost`), since a page served over plain HTTP elsewhere has no business sending
/// personal data. The answer names the origin, never anything secret.
pub fn origin_problem(origin: &str) -> Option<String> {
    let host = match origin.split_once("://") {
        Some(("https", host)) => host,
        Some(("http", host)) if is_local(host) => host,
        _ => return Some(format!("{origin:?} is not an https:// origin")),
    };
    if host.is_empty() || host.contains('/') {
        return Some(format!(
            "{origin:?} must be scheme://host[:port], without a path"
        ));
    }
    if !is_site_host(host) {
        return Some(format!("{origin:?} does not hold a valid host name"));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        // Browsers send origins lower-case, and origins are compared exactly.
        return Some(format!("{origin:?} must be lower-case"));
    }
    None
}

/// Local development hosts, where pages are served over plain HTTP.
fn is_local(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name == "localhost" || name == "127.0.0.1" || name.ends_with(".localhost")
}

/// TikTok's name for `name`: a standard event in TikTok's spelling (any case accepted), or
/// a valid custom name as written. `None` for a name TikTok would refuse.
fn tiktok_name(name: &str) -> Option<String> {
    let name = name.trim();
    match STANDARD_EVENTS
        .iter()
        .find(|standard| standard.eq_ignore_ascii_case(name))
    {
        Some(standard) => Some((*standard).to_string()),
        None => valid_custom_name(name).ok().map(ToString::to_string),
    }
}

/// [`tiktok_name`], or an error at `path` that says why the name is refused.
fn check_tiktok_name(path: &str, name: &str) -> Result<String, SettingsError> {
    tiktok_name(name).ok_or_else(|| {
        let why = match valid_custom_name(name.trim()) {
            Err(error) => error.to_string(),
            Ok(_) => String::from("not accepted"),
        };
        SettingsError::invalid(
            path,
            format!("must be a TikTok standard event or a valid custom event name: {why}"),
        )
    })
}

fn blank_to_none(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

/// Pixel, test and offline event set codes are 1 to [`MAX_CODE_LEN`] letters and digits;
/// the error names `path`.
pub fn check_code(path: &str, code: &str) -> Result<(), SettingsError> {
    if code.len() > MAX_CODE_LEN || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SettingsError::invalid(
            path,
            format!("must be 1 to {MAX_CODE_LEN} letters and digits"),
        ));
    }
    Ok(())
}

fn check_origins(origins: &[String]) -> Result<Vec<String>, SettingsError> {
    if origins.len() > MAX_SITE_ORIGINS {
        return Err(SettingsError::invalid(
            "site_origins",
            format!(
                "holds {} origins; at most {MAX_SITE_ORIGINS}",
                origins.len()
            ),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(origins.len());
    for (index, origin) in origins.iter().enumerate() {
        // A pasted URL often keeps its trailing slash; the browser's Origin never has one.
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if let Some(problem) = origin_problem(&origin) {
            return Err(SettingsError::invalid(
                format!("site_origins[{index}]"),
                problem,
            ));
        }
        if !checked.contains(&origin) {
            checked.push(origin);
        }
    }
    Ok(checked)
}

/// The cookie domain, lower-case without a leading dot, if the browser would take it from
/// a response for `host` (lower-case): `host` is it or lies under it.
fn check_cookie_domain(
    host: &str,
    domain: &str,
    suffixes: &PublicSuffixList,
) -> Result<String, SettingsError> {
    let lowered = domain.to_ascii_lowercase();
    let domain = lowered.strip_prefix('.').unwrap_or(&lowered);
    if domain.contains(':') || !is_site_host(domain) {
        return Err(SettingsError::invalid(
            "cookie_domain",
            "must be a DNS name such as shop.example, without scheme, port or path",
        ));
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    // An address has no parent domain: only the address itself will do.
    let address = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let under = name == domain
        || (!address
            && name
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.')));
    if !under {
        return Err(SettingsError::invalid(
            "cookie_domain",
            format!(
                "'{domain}' is not the site host '{name}' or a domain above it; \
                 browsers would refuse the cookie"
            ),
        ));
    }
    // Browsers take a suffix only as the host itself, and then host-only.
    if !address && name != domain && suffixes.is_public_suffix(domain) {
        return Err(SettingsError::invalid(
            "cookie_domain",
            format!(
                "'{domain}' is a public suffix, under which browsers refuse cookies; \
                 use the shop's own domain, such as the one '{name}' is registered under"
            ),
        ));
    }
    Ok(domain.to_string())
}

fn check_overrides(
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    if overrides.len() > MAX_OVERRIDES {
        return Err(SettingsError::invalid(
            "event_overrides",
            format!(
                "holds {} overrides; at most {MAX_OVERRIDES}",
                overrides.len()
            ),
        ));
    }
    // Keys are stored as incoming names are matched, so two spellings of one name collide
    // here rather than one silently winning.
    let mut checked = BTreeMap::new();
    let mut given_as: BTreeMap<String, &str> = BTreeMap::new();
    for (from, to) in overrides {
        let path = format!("event_overrides.{from}");
        let key = normalize(from);
        if key.is_empty() {
            return Err(SettingsError::invalid(
                path,
                "the incoming event name must not be empty",
            ));
        }
        if from.trim().chars().count() > MAX_OVERRIDE_KEY_LEN {
            return Err(SettingsError::invalid(
                path,
                format!("the incoming event name is longer than {MAX_OVERRIDE_KEY_LEN} characters"),
            ));
        }
        // A stored key is read again on the next PUT of the same settings: it must
        // normalise to itself (found by the `destination` fuzz target: `dl_dl_x`).
        if normalize(&key) != key {
            return Err(SettingsError::invalid(
                path,
                "a dataLayer name carries one dl_ prefix at most",
            ));
        }
        if let Some(first) = given_as.get(&key) {
            return Err(SettingsError::invalid(
                path,
                format!("names the same incoming event as '{first}' ('{key}')"),
            ));
        }
        checked.insert(key.clone(), check_tiktok_name(&path, to)?);
        given_as.insert(key, from);
    }
    Ok(checked)
}

/// A list of TikTok event names at `field` (`conversion_events`, `cod_checkout_events`):
/// at most [`MAX_CONVERSION_EVENTS`], each in TikTok's spelling, duplicates dropped.
fn check_names(field: &str, names: &[String]) -> Result<Vec<String>, SettingsError> {
    if names.len() > MAX_CONVERSION_EVENTS {
        return Err(SettingsError::invalid(
            field,
            format!(
                "holds {} names; at most {MAX_CONVERSION_EVENTS}",
                names.len()
            ),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let name = check_tiktok_name(&format!("{field}[{index}]"), name)?;
        if !checked.contains(&name) {
            checked.push(name);
        }
    }
    Ok(checked)
}

// ---- baselines -------------------------------------------------------------------------

/// Conversions the browser pixel reported over some days, as TikTok Ads Manager shows
/// them, to compare with the conversions the server delivered over the same days.
///
/// Dates are `YYYY-MM-DD` in UTC, both inclusive: Ads Manager reports by day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// Last day, `YYYY-MM-DD` (UTC), included.
    pub to: String,
    /// Conversions the pixel reported over those days.
    pub pixel_conversions: u64,
}

/// Reads the body of `POST …/live`, `{"live": true|false}`.
pub fn parse_live(body: &[u8]) -> Result<bool, SettingsError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LiveSwitch {
        live: bool,
    }
    read_json::<LiveSwitch>(body).map(|switch| switch.live)
}

/// Reads and checks a baseline body: exactly `from`, `to` and `pixel_conversions`, real
/// calendar dates from 1970 on, `from` not after `to`, at most [`MAX_BASELINE_DAYS`] days,
/// and at most [`MAX_BASELINE_CONVERSIONS`] conversions.
pub fn parse_baseline(body: &[u8]) -> Result<Baseline, SettingsError> {
    let baseline: Baseline = read_json(body)?;
    let from = epoch_day(&baseline.from).ok_or_else(|| bad_date("from"))?;
    let to = epoch_day(&baseline.to).ok_or_else(|| bad_date("to"))?;
    if to < from {
        return Err(SettingsError::invalid("to", "must not be before from"));
    }
    if to - from + 1 > MAX_BASELINE_DAYS {
        return Err(SettingsError::invalid(
            "to",
            format!(
                "the baseline spans {} days; at most {MAX_BASELINE_DAYS}",
                to - from + 1
            ),
        ));
    }
    if baseline.pixel_conversions > MAX_BASELINE_CONVERSIONS {
        return Err(SettingsError::invalid(
            "pixel_conversions",
            format!("must be a whole number from 0 to {MAX_BASELINE_CONVERSIONS}"),
        ));
    }
    Ok(baseline)
}

fn bad_date(path: &str) -> SettingsError {
    SettingsError::invalid(
        path,
        "must be a calendar date YYYY-MM-DD (UTC), not before 1970-01-01",
    )
}

impl Baseline {
    /// The first and last day as days since 1970-01-01 (UTC), both inclusive: the days
    /// whose [`day_of`] counts. A baseline not made by [`parse_baseline`] whose dates do not
    /// read gives the empty range `(1, 0)`.
    pub fn day_range(&self) -> (u32, u32) {
        match (epoch_day(&self.from), epoch_day(&self.to)) {
            (Some(from), Some(to)) => (from, to),
            _ => (1, 0),
        }
    }
}

/// The UTC day (days since 1970-01-01) that the epoch milliseconds `ms` fall in.
pub fn day_of(ms: u64) -> u32 {
    u32::try_from(ms / DAY_MS).unwrap_or(u32::MAX)
}

/// Days since 1970-01-01 of a strict `YYYY-MM-DD` date, or `None`.
fn epoch_day(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    let year: i32 = text.get(0..4)?.parse().ok()?;
    let month: u8 = text.get(5..7)?.parse().ok()?;
    let day: u8 = text.get(8..10)?.parse().ok()?;
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    // 2,440,588 is the Julian day of 1970-01-01.
    u32::try_from(date.to_julian_day() - 2_440_588).ok()
}

/// Server conversions set against a pixel baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRecovery {
    /// First day of the baseline.
    pub from: String,
    /// Last day of the baseline, included.
    pub to: String,
    /// Conversions the pixel reported over those days.
    pub pixel_conversions: u64,
    /// Conversions the server delivered over the same days.
    pub server_conversions: u64,
    /// server − pixel: conversions the server delivered beyond what the pixel saw.
    pub delta: i64,
    /// delta / pixel; `None` when the pixel reported none.
    pub recovered_share: Option<f64>,
}

/// Compares a baseline with the conversions the server delivered over its days.
pub fn recovery(baseline: &Baseline, server_conversions: u64) -> BaselineRecovery {
    let delta = i128::from(server_conversions) - i128::from(baseline.pixel_conversions);
    let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
    BaselineRecovery {
        from: baseline.from.clone(),
        to: baseline.to.clone(),
        pixel_conversions: baseline.pixel_conversions,
        server_conversions,
        delta,
        recovered_share: (baseline.pixel_conversions > 0)
            .then(|| delta as f64 / baseline.pixel_conversions as f64),
    }
}

// ---- JSON ------------------------------------------------------------------------------

/// Deserialises a whole JSON body; errors name the field and never quote a value.
pub(crate) fn read_json<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, SettingsError> {
    // serde reads a struct from an array too (`["C4..."]` as the pixel id): refuse that.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(SettingsError::invalid(BODY, "must be a JSON object"));
    }
    json_error::read(body).map_err(|error| match error {
        JsonError::Syntax { message, .. } => SettingsError {
            path: String::from(BODY),
            message,
            kind: ErrorKind::MalformedJson,
        },
        JsonError::Field {
            path,
            message,
            unknown,
        } => SettingsError {
            path,
            message,
            kind: match unknown {
                true => ErrorKind::UnknownField,
                false => ErrorKind::InvalidField,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::NameMapping;
    use serde_json::json;

    const HOST: &str = "t.shop.example";

    fn parse(body: serde_json::Value) -> Result<DestinationSettings, SettingsError> {
        parse_settings(
            HOST,
            body.to_string().as_bytes(),
            &PublicSuffixList::embedded(),
        )
    }

    /// Asserts `body` is refused as an invalid field at `path`; returns the message.
    fn refused(body: serde_json::Value, path: &str) -> String {
        match parse(body.clone()) {
            Ok(settings) => panic!("{body} was accepted: {settings:?}"),
            Err(error) => {
                assert_eq!(error.path, path, "{body}: {error}");
                assert_eq!(error.code(), "invalid_field", "{body}: {error}");
                error.message
            }
        }
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = json!({"pixel_id": "C4ABC123"});
        body[field] = value;
        body
    }

    #[test]
    fn minimal_settings_take_the_defaults() {
        let settings = parse(json!({"pixel_id": " C4ABC123 "})).unwrap();
        assert_eq!(
            settings,
            DestinationSettings {
                pixel_id: "C4ABC123".into(),
                access_token: None,
                test_event_code: None,
                offline_event_set_id: None,
                baseline_pixel_code: None,
                live: false,
                site_origins: Vec::new(),
                cookie_domain: None,
                event_overrides: BTreeMap::new(),
                custom_events: true,
                rate_limit_per_minute: DEFAULT_LIMIT_PER_MINUTE,
                conversion_events: Vec::new(),
                cod_checkout_events: Vec::new(),
                cod_days: DEFAULT_COD_DAYS,
                webhook_secret: None,
                identity_days: crate::identity::DEFAULT_DAYS,
            }
        );
    }

    #[test]
    fn full_settings_are_normalised() {
        let settings = parse(json!({
            "pixel_id": "C4ABC123",
            "access_token": " tok_ABC-123.xyz ",
            "test_event_code": "TEST123",
            "offline_event_set_id": " 7301234567890123456 ",
            "baseline_pixel_code": "C4OTHER",
            "live": true,
            "site_origins": ["https://Shop.Example/", "https://shop.example", "http://localhost:8787"],
            "cookie_domain": ".Shop.Example",
            "event_overrides": {"Order Placed": "completepayment", "dl_Quiz": " QuizDone "},
            "custom_events": false,
            "rate_limit_per_minute": 600,
            "conversion_events": ["subscribe", "Lead", "Subscribe", "QuizDone"],
        }))
        .unwrap();
        assert_eq!(settings.access_token.as_deref(), Some("tok_ABC-123.xyz"));
        assert_eq!(settings.test_event_code.as_deref(), Some("TEST123"));
        assert_eq!(
            settings.offline_event_set_id.as_deref(),
            Some("7301234567890123456")
        );
        assert_eq!(settings.baseline_pixel_code.as_deref(), Some("C4OTHER"));
        assert!(settings.live);
        assert_eq!(
            settings.site_origins,
            ["https://shop.example", "http://localhost:8787"]
        );
        assert_eq!(settings.cookie_domain.as_deref(), Some("shop.example"));
        assert_eq!(
            settings.event_overrides.into_iter().collect::<Vec<_>>(),
            [
                ("order_placed".to_string(), "CompletePayment".to_string()),
                ("quiz".to_string(), "QuizDone".to_string()),
            ]
        );
        assert!(!settings.custom_events);
        assert_eq!(settings.rate_limit_per_minute, 600);
        assert_eq!(
            settings.conversion_events,
            ["Subscribe", "Lead", "QuizDone"]
        );
    }

    #[test]
    fn blank_optional_strings_mean_none() {
        let settings = parse(json!({
            "pixel_id": "C4ABC123",
            "access_token": "  ",
            "test_event_code": "",
            "offline_event_set_id": "",
            "baseline_pixel_code": " ",
            "cookie_domain": "",
        }))
        .unwrap();
        assert_eq!(settings.access_token, None);
        assert_eq!(settings.test_event_code, None);
        assert_eq!(settings.offline_event_set_id, None);
        assert_eq!(settings.baseline_pixel_code, None);
        assert_eq!(settings.cookie_domain, None);
        let nulls = parse(json!({"pixel_id": "C4ABC123", "access_token": null})).unwrap();
        assert_eq!(nulls.access_token, None);
    }

    #[test]
    fn the_host_must_be_a_site_host() {
        for bad in ["", "https://t.shop.example", "t.shop.example/x", "a..b"] {
            let error = parse_settings(bad, br#"{"pixel_id":"C4"}"#, &PublicSuffixList::embedded())
                .unwrap_err();
            assert_eq!(
                (error.path.as_str(), error.code()),
                ("host", "invalid_field")
            );
        }
        assert!(parse_settings(
            "T.Shop.Example:8443",
            br#"{"pixel_id":"C4"}"#,
            &PublicSuffixList::embedded()
        )
        .is_ok());
    }

    #[test]
    fn json_errors_name_the_field() {
        let error =
            parse_settings(HOST, b"{\"pixel_id\": ", &PublicSuffixList::embedded()).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.code()),
            ("(body)", "malformed_json")
        );
        let error = parse_settings(HOST, b"", &PublicSuffixList::embedded()).unwrap_err();
        assert_eq!(error.code(), "malformed_json");
        let error = parse_settings(
            HOST,
            br#"{"pixel_id":"C4"} x"#,
            &PublicSuffixList::embedded(),
        )
        .unwrap_err();
        assert_eq!(error.code(), "malformed_json");

        let error = parse(json!({"pixel_id": "C4", "custom_event": false})).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.code()),
            ("custom_event", "unknown_field")
        );
        assert!(error.to_string().starts_with("custom_event: "), "{error}");

        for not_an_object in [&b"[1]"[..], br#" ["C4ABC"]"#, b"\"C4\"", b"7", b"null"] {
            let error =
                parse_settings(HOST, not_an_object, &PublicSuffixList::embedded()).unwrap_err();
            assert_eq!(
                (error.path.as_str(), error.code()),
                ("(body)", "invalid_field")
            );
            assert_eq!(error.message, "must be a JSON object");
        }
        let error = parse_baseline(br#"["2025-11-01", "2025-11-30", 1]"#).unwrap_err();
        assert_eq!(error.message, "must be a JSON object");

        assert_eq!(refused(json!({}), "pixel_id"), "is required");
        refused(with("live", json!("yes")), "live");
        refused(
            with("site_origins", json!(["https://a.example", 7])),
            "site_origins[1]",
        );
        refused(
            with("event_overrides", json!({"add_to_cart": 1})),
            "event_overrides.add_to_cart",
        );
        refused(
            with("rate_limit_per_minute", json!(-1)),
            "rate_limit_per_minute",
        );
        refused(
            with("rate_limit_per_minute", json!(1.5)),
            "rate_limit_per_minute",
        );
        refused(
            with("conversion_events", json!("Lead")),
            "conversion_events",
        );
    }

    #[test]
    fn pixel_and_test_codes_are_letters_and_digits() {
        assert_eq!(
            refused(with("pixel_id", json!("  ")), "pixel_id"),
            "is required"
        );
        refused(with("pixel_id", json!("C4-ABC")), "pixel_id");
        refused(with("pixel_id", json!("C4ÄBC")), "pixel_id");
        refused(with("pixel_id", json!("A".repeat(65))), "pixel_id");
        assert!(parse(with("pixel_id", json!("A".repeat(64)))).is_ok());
        for field in [
            "test_event_code",
            "offline_event_set_id",
            "baseline_pixel_code",
        ] {
            refused(with(field, json!("TEST 1")), field);
            refused(with(field, json!("1".repeat(65))), field);
            assert!(parse(with(field, json!("1".repeat(64)))).is_ok());
        }
    }

    #[test]
    fn access_token_errors_never_show_the_token() {
        let secret = "SECRETVALUE";
        for bad in [
            format!("{secret} more"),
            format!("{secret}\u{7f}"),
            format!("{secret}é"),
            format!("{secret}{}", "x".repeat(MAX_TOKEN_LEN)),
        ] {
            let message = refused(with("access_token", json!(bad)), "access_token");
            assert!(!message.contains(secret), "{message}");
        }
        let message = refused(with("access_token", json!(123_456_789)), "access_token");
        assert!(!message.contains("123456789"), "{message}");
        assert!(parse(with("access_token", json!("x".repeat(MAX_TOKEN_LEN)))).is_ok());
        assert!(parse(with("access_token", json!("!~"))).is_ok());
    }

    #[test]
    fn the_token_is_never_serialised_nor_debug_printed() {
        let settings = parse(with("access_token", json!("SECRETVALUE"))).unwrap();
        let json = serde_json::to_string(&settings).unwrap();
        assert!(
            !json.contains("SECRETVALUE") && !json.contains("access_token"),
            "{json}"
        );
        let debug = format!("{settings:?}");
        assert!(!debug.contains("SECRETVALUE"), "{debug}");
        assert!(debug.contains("access_token: Some(\"..\")"), "{debug}");
        // Stored settings read back, the token kept elsewhere.
        let back: DestinationSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back.access_token, None);
        assert_eq!(back.pixel_id, settings.pixel_id);
    }

    #[test]
    fn origins() {
        for ok in [
            "https://shop.example",
            "https://shop.example:8443",
            "http://localhost",
            "http://localhost:8787",
            "http://127.0.0.1:8787",
            "http://shop.localhost:3000",
        ] {
            assert_eq!(origin_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "shop.example",
            "http://shop.example",
            "ftp://shop.example",
            "https://",
            "https://shop.example/path",
            "https://shop.example/",
            "https://shop example",
            "https://shop.example:0",
            "https://user@shop.example",
            "https://Shop.example",
            "HTTPS://shop.example",
            "http://localhost.evil.example",
        ] {
            assert!(origin_problem(bad).is_some(), "{bad}");
        }
        refused(
            with(
                "site_origins",
                json!(["https://a.example", "http://b.example"]),
            ),
            "site_origins[1]",
        );
        refused(
            with("site_origins", json!(["https://a.example/shop"])),
            "site_origins[0]",
        );
        refused(with("site_origins", json!([""])), "site_origins[0]");
        let many: Vec<String> = (0..=MAX_SITE_ORIGINS)
            .map(|i| format!("https://s{i}.example"))
            .collect();
        refused(with("site_origins", json!(many)), "site_origins");
        assert!(parse(with("site_origins", json!(many[..MAX_SITE_ORIGINS]))).is_ok());
    }

    #[test]
    fn cookie_domain_must_contain_the_host() {
        for (host, domain, stored) in [
            ("t.shop.example", "shop.example", "shop.example"),
            ("t.shop.example", ".Shop.Example", "shop.example"),
            ("t.shop.example", "t.shop.example", "t.shop.example"),
            ("T.SHOP.example:8443", "shop.example", "shop.example"),
            ("localhost:8787", "localhost", "localhost"),
            ("127.0.0.1:8787", "127.0.0.1", "127.0.0.1"),
        ] {
            let body = json!({"pixel_id": "C4", "cookie_domain": domain}).to_string();
            let settings =
                parse_settings(host, body.as_bytes(), &PublicSuffixList::embedded()).unwrap();
            assert_eq!(
                settings.cookie_domain.as_deref(),
                Some(stored),
                "{host} {domain}"
            );
        }
        for bad in [
            "other.example",
            "hop.example",
            "x.t.shop.example",
            "https://shop.example",
            "shop.example:443",
            "shop.example/",
            "..shop.example",
            "shop..example",
        ] {
            refused(with("cookie_domain", json!(bad)), "cookie_domain");
        }
        let body = json!({"pixel_id": "C4", "cookie_domain": "0.0.1"}).to_string();
        let error = parse_settings("127.0.0.1", body.as_bytes(), &PublicSuffixList::embedded())
            .unwrap_err();
        assert_eq!(error.path, "cookie_domain");
    }

    #[test]
    fn cookie_domain_must_not_be_a_public_suffix() {
        let suffixes = PublicSuffixList::embedded();
        for (host, domain) in [
            ("t.shop.co.uk", "co.uk"),
            ("t.shop.co.uk", ".CO.UK"),
            ("shop.github.io", "github.io"),
            ("t.shop.com", "com"),
            ("t.shop.example", "example"),
        ] {
            let body = json!({"pixel_id": "C4", "cookie_domain": domain}).to_string();
            let error = parse_settings(host, body.as_bytes(), &suffixes).unwrap_err();
            assert_eq!(error.path, "cookie_domain", "{host} {domain}");
            assert!(error.message.contains("public suffix"), "{error}");
        }
        // The registrable domain is fine, and so is a suffix that is the host itself
        // (browsers keep that one host-only).
        for (host, domain) in [
            ("t.shop.co.uk", "shop.co.uk"),
            ("shop.github.io", "shop.github.io"),
        ] {
            let body = json!({"pixel_id": "C4", "cookie_domain": domain}).to_string();
            assert!(parse_settings(host, body.as_bytes(), &suffixes).is_ok());
        }
    }

    #[test]
    fn override_keys_read_the_same_when_stored_settings_come_back() {
        refused(
            with("event_overrides", json!({"dl_dl_x": "Lead"})),
            "event_overrides.dl_dl_x",
        );
        let settings = parse(with("event_overrides", json!({"dl_x": "Lead"}))).unwrap();
        let again = serde_json::to_value(&settings).unwrap();
        assert_eq!(parse(again).unwrap(), settings);
    }

    #[test]
    fn the_live_switch_is_an_object() {
        assert_eq!(parse_live(br#"{"live": true}"#), Ok(true));
        assert_eq!(parse_live(br#" {"live":false} "#), Ok(false));
        for (body, path) in [
            (&b"[true]"[..], "(body)"),
            (b"true", "(body)"),
            (b"{}", "live"),
            (br#"{"live":"yes"}"#, "live"),
            (br#"{"live":true,"live":false}"#, "live"),
            (br#"{"live":true,"on":1}"#, "on"),
        ] {
            let error = parse_live(body).unwrap_err();
            assert_eq!(error.path, path, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_duplicate_key_is_named() {
        let body = br#"{"pixel_id":"C1","live":false,"pixel_id":"C2"}"#;
        let error = parse_settings(HOST, body, &PublicSuffixList::embedded()).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.code()),
            ("pixel_id", "invalid_field")
        );
        assert_eq!(error.message, "appears twice");
        let error = parse_baseline(br#"{"from":"2026-11-01","from":"2026-11-02"}"#).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.message.as_str()),
            ("from", "appears twice")
        );
    }

    #[test]
    fn overrides() {
        let settings = parse(with(
            "event_overrides",
            json!({"Purchase": "PlaceAnOrder", "signup": "Lead", "quiz": "Quiz_Done-2"}),
        ))
        .unwrap();
        assert_eq!(settings.event_overrides["purchase"], "PlaceAnOrder");
        assert_eq!(settings.event_overrides["quiz"], "Quiz_Done-2");

        let message = refused(
            with("event_overrides", json!({"purchase": "Complete Payment"})),
            "event_overrides.purchase",
        );
        assert!(message.contains("custom event name"), "{message}");
        refused(
            with("event_overrides", json!({"a": "1st"})),
            "event_overrides.a",
        );
        refused(
            with("event_overrides", json!({"a": ""})),
            "event_overrides.a",
        );
        refused(
            with("event_overrides", json!({" ": "Lead"})),
            "event_overrides. ",
        );
        refused(
            with("event_overrides", json!({"dl_": "Lead"})),
            "event_overrides.dl_",
        );
        let long = "k".repeat(MAX_OVERRIDE_KEY_LEN + 1);
        refused(
            with("event_overrides", json!({ long.clone(): "Lead" })),
            &format!("event_overrides.{long}"),
        );
        assert!(parse(with(
            "event_overrides",
            json!({ "k".repeat(MAX_OVERRIDE_KEY_LEN): "Lead" })
        ))
        .is_ok());
        // Two spellings of one incoming name.
        let message = refused(
            with(
                "event_overrides",
                json!({"Order Placed": "Lead", "order_placed": "Contact"}),
            ),
            "event_overrides.order_placed",
        );
        assert!(message.contains("Order Placed"), "{message}");

        let too_many: BTreeMap<String, String> = (0..=MAX_OVERRIDES)
            .map(|i| (format!("e{i}"), "Lead".to_string()))
            .collect();
        refused(with("event_overrides", json!(too_many)), "event_overrides");
    }

    #[test]
    fn rate_limit_bounds() {
        refused(
            with("rate_limit_per_minute", json!(0)),
            "rate_limit_per_minute",
        );
        refused(
            with(
                "rate_limit_per_minute",
                json!(MAX_RATE_LIMIT_PER_MINUTE + 1),
            ),
            "rate_limit_per_minute",
        );
        for ok in [1, MAX_RATE_LIMIT_PER_MINUTE] {
            assert!(parse(with("rate_limit_per_minute", json!(ok))).is_ok());
        }
    }

    #[test]
    fn identity_days_bounds() {
        refused(
            with("identity_days", json!(crate::identity::MAX_DAYS + 1)),
            "identity_days",
        );
        refused(with("identity_days", json!(-1)), "identity_days");
        refused(with("identity_days", json!("90")), "identity_days");
        for ok in [0, 1, crate::identity::MAX_DAYS] {
            let settings = parse(with("identity_days", json!(ok))).unwrap();
            assert_eq!(settings.identity_days, ok);
        }
    }

    #[test]
    fn conversion_events() {
        refused(
            with("conversion_events", json!(["Lead", "not valid"])),
            "conversion_events[1]",
        );
        refused(
            with("conversion_events", json!([""])),
            "conversion_events[0]",
        );
        let many: Vec<String> = (0..=MAX_CONVERSION_EVENTS)
            .map(|i| format!("E{i}"))
            .collect();
        refused(with("conversion_events", json!(many)), "conversion_events");
        assert!(parse(with(
            "conversion_events",
            json!(many[..MAX_CONVERSION_EVENTS])
        ))
        .is_ok());
    }

    #[test]
    fn cod_settings() {
        let settings = parse(json!({
            "pixel_id": "C4ABC123",
            "cod_checkout_events": ["Checkout", "Checkout", "placeanorder"],
            "cod_days": 90,
            "webhook_secret": " whsec_0123456789abcdef ",
        }))
        .unwrap();
        assert_eq!(settings.cod_checkout_events, ["Checkout", "PlaceAnOrder"]);
        assert_eq!(settings.cod_days, 90);
        assert_eq!(
            settings.webhook_secret.as_deref(),
            Some("whsec_0123456789abcdef")
        );
        for days in [0, MAX_COD_DAYS + 1] {
            refused(with("cod_days", json!(days)), "cod_days");
        }
        refused(with("cod_days", json!("60")), "cod_days");
        assert!(parse(with("cod_days", json!(MAX_COD_DAYS))).is_ok());
        refused(
            with("cod_checkout_events", json!(["Checkout", "not valid"])),
            "cod_checkout_events[1]",
        );
        let many: Vec<String> = (0..=MAX_CONVERSION_EVENTS)
            .map(|i| format!("E{i}"))
            .collect();
        refused(
            with("cod_checkout_events", json!(many)),
            "cod_checkout_events",
        );
        // The secret: too short, or with a space; never repeated, never serialised.
        for bad in ["SECRETSHORT", "SECRET 0123456789abcdef"] {
            let message = refused(with("webhook_secret", json!(bad)), "webhook_secret");
            assert!(!message.contains("SECRET"), "{message}");
        }
        let json = serde_json::to_string(&settings).unwrap();
        assert!(
            !json.contains("whsec") && !json.contains("webhook_secret"),
            "{json}"
        );
        assert!(!format!("{settings:?}").contains("whsec"));
        assert_eq!(
            parse(with("webhook_secret", json!(" ")))
                .unwrap()
                .webhook_secret,
            None
        );
    }

    #[test]
    fn settings_make_name_rules_and_a_pipeline_destination() {
        let settings = parse(json!({
            "pixel_id": "C4ABC123",
            "test_event_code": "TEST1",
            "event_overrides": {"order placed": "CompletePayment"},
            "custom_events": false,
        }))
        .unwrap();
        let rules = settings.name_rules();
        assert!(!rules.custom_events);
        assert_eq!(
            rules.map("Order Placed"),
            NameMapping::Send("CompletePayment".into())
        );
        assert!(matches!(rules.map("quiz"), NameMapping::Skip(_)));
        let destination = settings.pipeline_destination();
        assert_eq!(destination.pixel_id, "C4ABC123");
        assert_eq!(destination.test_event_code.as_deref(), Some("TEST1"));
        assert_eq!(destination.names, rules);

        // Hand-built settings with a bad override: the rest still applies.
        let mut hand = settings.clone();
        hand.event_overrides.insert("x".into(), "not valid".into());
        let rules = hand.name_rules();
        assert_eq!(rules.overrides().len(), 1);
        assert!(!rules.custom_events);
    }

    // ---- baselines ----

    fn baseline(body: serde_json::Value) -> Result<Baseline, SettingsError> {
        parse_baseline(body.to_string().as_bytes())
    }

    fn baseline_refused(body: serde_json::Value, path: &str) {
        let error = baseline(body.clone()).unwrap_err();
        assert_eq!(error.path, path, "{body}: {error}");
    }

    #[test]
    fn baselines_read_whole_days() {
        let b =
            baseline(json!({"from": "2025-11-01", "to": "2025-11-30", "pixel_conversions": 120}))
                .unwrap();
        assert_eq!(b.pixel_conversions, 120);
        // 2025-11-01 is day 20,393 since 1970-01-01.
        assert_eq!(b.day_range(), (20_393, 20_422));
        assert_eq!(day_of(1_761_955_200_000), 20_393, "2025-11-01T00:00Z");
        assert_eq!(day_of(1_761_955_200_000 - 1), 20_392);
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(u64::MAX), u32::MAX);
        let one =
            baseline(json!({"from": "1970-01-01", "to": "1970-01-01", "pixel_conversions": 0}))
                .unwrap();
        assert_eq!(one.day_range(), (0, 0));
        let leap =
            baseline(json!({"from": "2024-02-29", "to": "2024-02-29", "pixel_conversions": 1}));
        assert!(leap.is_ok());
        let longest = baseline(
            json!({"from": "2024-01-01", "to": "2025-02-03", "pixel_conversions": 1_000_000_000_000u64}),
        );
        assert_eq!(
            longest.unwrap().day_range().1 - 19_723 + 1,
            MAX_BASELINE_DAYS
        );
    }

    #[test]
    fn bad_baselines_name_the_field() {
        let ok = json!({"from": "2025-11-01", "to": "2025-11-30", "pixel_conversions": 120});
        let with = |field: &str, value: serde_json::Value| {
            let mut body = ok.clone();
            body[field] = value;
            body
        };
        for bad in [
            "2025-02-29",
            "2025-13-01",
            "2025-11-00",
            "2025-1-01",
            "2025/11/01",
            "20251101",
            "1969-12-31",
            " 2025-11-01",
            "+025-11-01",
            "2025-11-01T00:00",
        ] {
            baseline_refused(with("from", json!(bad)), "from");
        }
        baseline_refused(with("to", json!("2025-10-31")), "to");
        baseline_refused(with("to", json!("2026-12-06")), "to");
        assert!(
            baseline(with("to", json!("2026-12-05"))).is_ok(),
            "400 days"
        );
        baseline_refused(with("to", json!(20_251_130)), "to");
        baseline_refused(with("pixel_conversions", json!(-1)), "pixel_conversions");
        baseline_refused(with("pixel_conversions", json!(1.5)), "pixel_conversions");
        baseline_refused(with("pixel_conversions", json!("12")), "pixel_conversions");
        baseline_refused(
            with("pixel_conversions", json!(MAX_BASELINE_CONVERSIONS + 1)),
            "pixel_conversions",
        );
        baseline_refused(
            json!({"from": "2025-11-01", "to": "2025-11-30"}),
            "pixel_conversions",
        );
        let error = baseline(with("note", json!("x"))).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.code()),
            ("note", "unknown_field")
        );
        let error = parse_baseline(b"{").unwrap_err();
        assert_eq!(error.code(), "malformed_json");
    }

    #[test]
    fn hand_built_baselines_with_bad_dates_cover_no_day() {
        let b = Baseline {
            from: "soon".into(),
            to: "2025-11-30".into(),
            pixel_conversions: 1,
        };
        let (from, to) = b.day_range();
        assert!(from > to);
    }

    #[test]
    fn recovery_compares_server_and_pixel() {
        let b = Baseline {
            from: "2025-11-01".into(),
            to: "2025-11-30".into(),
            pixel_conversions: 200,
        };
        let r = recovery(&b, 230);
        assert_eq!((r.delta, r.recovered_share), (30, Some(0.15)));
        assert_eq!((r.pixel_conversions, r.server_conversions), (200, 230));
        let r = recovery(&b, 150);
        assert_eq!((r.delta, r.recovered_share), (-50, Some(-0.25)));
        let none = Baseline {
            pixel_conversions: 0,
            ..b.clone()
        };
        assert_eq!(recovery(&none, 5).recovered_share, None);
        assert_eq!(recovery(&none, u64::MAX).delta, i64::MAX);
        let json = serde_json::to_value(recovery(&b, 230)).unwrap();
        assert_eq!(json["from"], "2025-11-01");
        assert_eq!(json["delta"], 30);
    }
}
