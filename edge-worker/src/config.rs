//! Which destination serves a site host: one stored through the admin API (the Config
//! Durable Object), else the single-site default from `wrangler.toml` vars and secrets.
//!
//! Every problem with the vars is collected, not just the first, so an operator fixes them
//! in one go. Nothing here panics on a missing or malformed value.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ttedge_core::cookie::PublicSuffixList;
use ttedge_core::destination::{self, origin_problem, DEFAULT_COD_DAYS};
use ttedge_core::identity;
use ttedge_core::pipeline::Destination;
use ttedge_core::ratelimit::DEFAULT_LIMIT_PER_MINUTE;
use ttedge_core::seal::{self, MasterKey};
use worker::Env;

use crate::config_store::{self, StoredDestination};
use crate::error::ApiError;
use crate::runtime;

/// TikTok's production API.
pub const DEFAULT_API_BASE: &str = "https://business-api.tiktok.com";

/// How long one call to TikTok may take before it counts as a time-out.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// How long an isolate trusts what it read from the Config object. Short, so a change made
/// through another isolate reaches `/collect` soon; long enough that a busy site asks the
/// Config object about once per isolate every half minute, not once per request.
pub const CACHE_TTL_MS: u64 = 30_000;

/// How long an isolate trusts "nothing is stored for this host": briefly, so that a flood
/// of made-up `Host` headers costs few Config calls, and a new site is served soon.
pub const UNKNOWN_TTL_MS: u64 = 5_000;

/// The most hosts one isolate keeps, so that distinct `Host` headers cannot grow its memory
/// without bound. An agency's shops fit many times over.
pub const MAX_CACHED_HOSTS: usize = 1_024;

thread_local! {
    /// Parsed once per isolate, on the first request that needs it.
    static SUFFIXES: PublicSuffixList = PublicSuffixList::embedded();
    /// Stored destinations by site host (`None`: nothing stored for that host).
    static CACHE: RefCell<HashMap<String, CachedSite>> = RefCell::new(HashMap::new());
}

struct CachedSite {
    fetched_ms: u64,
    site: Option<Rc<SiteConfig>>,
}

impl CachedSite {
    fn fresh(&self, now_ms: u64) -> bool {
        let ttl = match self.site {
            Some(_) => CACHE_TTL_MS,
            None => UNKNOWN_TTL_MS,
        };
        now_ms.saturating_sub(self.fetched_ms) < ttl
    }
}

/// Caches `entry` for `host`, first making room: stale entries go, then the oldest one.
fn remember(cache: &mut HashMap<String, CachedSite>, host: String, entry: CachedSite) {
    if cache.len() >= MAX_CACHED_HOSTS && !cache.contains_key(&host) {
        cache.retain(|_, cached| cached.fresh(entry.fetched_ms));
        if cache.len() >= MAX_CACHED_HOSTS {
            let oldest = cache
                .iter()
                .min_by_key(|(_, cached)| cached.fetched_ms)
                .map(|(host, _)| host.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
    }
    cache.insert(host, entry);
}

/// Where a destination's settings come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// `wrangler.toml` vars and the `TIKTOK_ACCESS_TOKEN` secret.
    Vars,
    /// Stored through the admin API for this site host; the token is sealed under
    /// `MASTER_KEY` with the host as associated data.
    Stored { host: String, sealed_token: String },
}

/// What the Worker needs to run one site.
#[derive(Clone)]
pub struct SiteConfig {
    /// Where the settings come from.
    pub provenance: Provenance,
    /// Where events go.
    pub destination: Destination,
    /// The Offline Event Set offline events go to, instead of the pixel.
    pub offline_event_set_id: Option<String>,
    /// The TikTok access token. Never logged, never answered, never in an object name.
    pub access_token: String,
    /// Page origins allowed to post to `/collect`.
    pub site_origins: Vec<String>,
    /// `Domain` of the cookies, when set; else the request host's registrable domain.
    pub cookie_domain: Option<String>,
    /// `TIKTOK_API_BASE`, without a trailing slash.
    pub api_base: String,
    /// Requests per sliding minute for this token.
    pub rate_limit_per_minute: u32,
    /// Time-out of one TikTok call.
    pub timeout_ms: u32,
    /// Off: events are accepted, scored and counted, but not sent.
    pub live: bool,
    /// TikTok names counted as conversions besides `CompletePayment`, `PlaceAnOrder` and
    /// `Purchase`.
    pub conversion_events: Vec<String>,
    /// TikTok names that keep a cash-on-delivery order besides `PlaceAnOrder`.
    pub cod_checkout_events: Vec<String>,
    /// Days a cash-on-delivery order is kept for its confirmation.
    pub cod_days: u32,
    /// The order webhook's secret, opened; `None`: the webhook is off. Never logged.
    pub webhook_secret: Option<String>,
    /// Days identities are kept from last use; 0 turns identity resolution off.
    pub identity_days: u32,
}

impl SiteConfig {
    /// The default destination from vars and secrets; `Err` lists every problem found.
    pub fn from_env(env: &Env) -> Result<SiteConfig, Vec<String>> {
        let mut problems = Vec::new();
        let pixel_id = match var(env, "TIKTOK_PIXEL_ID") {
            Some(id) => checked_code("TIKTOK_PIXEL_ID", id, &mut problems),
            None => {
                problems.push("TIKTOK_PIXEL_ID is not set".to_string());
                String::new()
            }
        };
        let access_token = secret(env, "TIKTOK_ACCESS_TOKEN").unwrap_or_else(|| {
            problems.push(
                "TIKTOK_ACCESS_TOKEN is not set (wrangler secret put, or .dev.vars locally)"
                    .to_string(),
            );
            String::new()
        });
        let (api_base, timeout_ms) = transport(env, &mut problems);
        let rate_limit_per_minute = positive(
            env,
            "RATE_LIMIT_PER_MINUTE",
            DEFAULT_LIMIT_PER_MINUTE,
            &mut problems,
        );
        let site_origins = var(env, "SITE_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(|origin| origin.trim().trim_end_matches('/').to_string())
                    .filter(|origin| !origin.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for origin in &site_origins {
            if let Some(problem) = origin_problem(origin) {
                problems.push(format!("SITE_ORIGINS: {problem}"));
            }
        }
        let identity_days = match var(env, "IDENTITY_DAYS") {
            None => identity::DEFAULT_DAYS,
            Some(text) => match text.parse::<u32>() {
                Ok(days) if days <= identity::MAX_DAYS => days,
                _ => {
                    problems.push(format!(
                        "IDENTITY_DAYS must be a whole number from 0 (off) to {}, found {text:?}",
                        identity::MAX_DAYS
                    ));
                    identity::DEFAULT_DAYS
                }
            },
        };
        let cookie_domain =
            var(env, "COOKIE_DOMAIN").map(|d| d.trim_start_matches('.').to_string());
        let test_event_code = var(env, "TIKTOK_TEST_EVENT_CODE");
        let offline_event_set_id = var(env, "TIKTOK_OFFLINE_EVENT_SET_ID")
            .map(|id| checked_code("TIKTOK_OFFLINE_EVENT_SET_ID", id, &mut problems));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SiteConfig {
            provenance: Provenance::Vars,
            destination: Destination {
                pixel_id,
                test_event_code,
                names: Default::default(),
            },
            offline_event_set_id,
            access_token,
            site_origins,
            cookie_domain,
            api_base,
            rate_limit_per_minute,
            timeout_ms,
            live: true,
            conversion_events: Vec::new(),
            cod_checkout_events: Vec::new(),
            cod_days: DEFAULT_COD_DAYS,
            webhook_secret: secret(env, WEBHOOK_SECRET),
            identity_days,
        })
    }

    /// A stored destination, its token opened with `MASTER_KEY`.
    pub fn from_stored(env: &Env, stored: &StoredDestination) -> Result<SiteConfig, ApiError> {
        let access_token = open_token(env, &stored.host, &stored.sealed_token)?;
        let (api_base, timeout_ms) = transport_from_env(env)?;
        let settings = &stored.settings;
        Ok(SiteConfig {
            provenance: Provenance::Stored {
                host: stored.host.clone(),
                sealed_token: stored.sealed_token.clone(),
            },
            destination: settings.pipeline_destination(),
            offline_event_set_id: settings.offline_event_set_id.clone(),
            access_token,
            site_origins: settings.site_origins.clone(),
            cookie_domain: settings.cookie_domain.clone(),
            api_base,
            rate_limit_per_minute: settings.rate_limit_per_minute,
            timeout_ms,
            live: settings.live,
            conversion_events: settings.conversion_events.clone(),
            cod_checkout_events: settings.cod_checkout_events.clone(),
            cod_days: settings.cod_days,
            webhook_secret: match &stored.sealed_webhook_secret {
                Some(sealed) => Some(open_webhook_secret(env, &stored.host, sealed)?),
                None => None,
            },
            identity_days: settings.identity_days,
        })
    }

    /// The Dispatcher's name: SHA-256 of the access token, so one object counts one token's
    /// rate limit and the token itself never appears in an object name.
    pub fn dispatcher_name(&self) -> String {
        ttedge_core::hashing::sha256_hex(&self.access_token)
    }

    /// The cookie `Domain` for a request to `host`.
    pub fn cookie_domain_for(&self, host: &str) -> Option<String> {
        self.cookie_domain
            .clone()
            .or_else(|| with_suffixes(|list| list.registrable_domain(host)))
    }

    /// Whether a page on `origin` may post events.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.site_origins.iter().any(|allowed| allowed == origin)
    }
}

/// Runs `f` with this isolate's Public Suffix List, parsed on first use.
pub fn with_suffixes<R>(f: impl FnOnce(&PublicSuffixList) -> R) -> R {
    SUFFIXES.with(f)
}

/// The default destination, or the 503 answer that lists what is wrong.
pub fn load(env: &Env) -> Result<SiteConfig, ApiError> {
    SiteConfig::from_env(env).map_err(misconfigured)
}

/// Whether the `wrangler.toml` default destination is meant to exist: a pixel or a token is
/// set. A Worker that only serves admin-stored destinations sets neither.
pub fn has_default(env: &Env) -> bool {
    var(env, "TIKTOK_PIXEL_ID").is_some() || secret(env, "TIKTOK_ACCESS_TOKEN").is_some()
}

fn misconfigured(problems: Vec<String>) -> ApiError {
    worker::console_error!("ttedge is misconfigured: {}", problems.join("; "));
    let mut error = ApiError::new(
        503,
        "misconfigured",
        "ttedge is not configured for this site; see `problems`",
    );
    error.problems = problems;
    error
}

/// The destination of the site host `host`: the one stored through the admin API, else the
/// `wrangler.toml` default.
///
/// Answers are cached per isolate for [`CACHE_TTL_MS`] ([`UNKNOWN_TTL_MS`] for a host with
/// nothing stored), at most [`MAX_CACHED_HOSTS`] of them; admin writes in this isolate call
/// [`forget`], and other isolates see a change within the TTL.
pub async fn for_host(env: &Env, host: &str) -> Result<Rc<SiteConfig>, ApiError> {
    let host = host.to_ascii_lowercase();
    let now = runtime::now_ms();
    let cached = CACHE.with(|cache| {
        cache
            .borrow()
            .get(&host)
            .filter(|entry| entry.fresh(now))
            .map(|entry| entry.site.clone())
    });
    let stored = match cached {
        Some(site) => site,
        None => {
            let site = match config_store::get(env, &host).await? {
                Some(stored) => Some(Rc::new(SiteConfig::from_stored(env, &stored)?)),
                None => None,
            };
            let entry = CachedSite {
                fetched_ms: now,
                site: site.clone(),
            };
            CACHE.with(|cache| remember(&mut cache.borrow_mut(), host.clone(), entry));
            site
        }
    };
    match stored {
        Some(site) => Ok(site),
        None if has_default(env) => load(env).map(Rc::new),
        None => Err(ApiError::new(
            404,
            "unknown_site",
            format!(
                "no destination is set up for {host}; add one with PUT /admin/api/destinations/{host}"
            ),
        )),
    }
}

/// Drops this isolate's cached answer for `host` after an admin change.
pub fn forget(host: &str) {
    CACHE.with(|cache| cache.borrow_mut().remove(&host.to_ascii_lowercase()));
}

/// `MASTER_KEY`, which seals access tokens at rest.
pub fn master_key(env: &Env) -> Result<MasterKey, ApiError> {
    let text = secret(env, "MASTER_KEY").ok_or_else(|| {
        ApiError::new(
            503,
            "master_key_missing",
            "set the MASTER_KEY secret (32 random bytes as 64 hex characters) to store destinations",
        )
    })?;
    MasterKey::parse(&text).map_err(|error| ApiError::new(503, error.code(), error.to_string()))
}

/// A var that holds a TikTok code (a pixel, an offline event set), checked by the rule of
/// the setting it stands for; a bad one is listed in `problems`.
fn checked_code(name: &str, code: String, problems: &mut Vec<String>) -> String {
    if let Err(error) = destination::check_code(name, &code) {
        problems.push(format!("{name} {}", error.message));
    }
    code
}

/// The secret that signs the default destination's order webhook.
pub const WEBHOOK_SECRET: &str = "WEBHOOK_SECRET";

/// What a webhook secret is sealed with besides `MASTER_KEY`: its host, marked apart from
/// the token's, so that neither sealed value opens in the other's place.
pub fn webhook_seal_data(host: &str) -> String {
    format!("{host}#webhook")
}

/// Opens a sealed webhook secret; as [`open_token`], a changed `MASTER_KEY` is a clear 503.
fn open_webhook_secret(env: &Env, host: &str, sealed: &str) -> Result<String, ApiError> {
    seal::open(&master_key(env)?, sealed, &webhook_seal_data(host)).map_err(|error| {
        worker::console_error!(
            "the webhook secret of {host} does not open: {}",
            error.code()
        );
        ApiError::new(
            503,
            "webhook_secret_unreadable",
            format!(
                "the stored webhook secret of {host} cannot be opened; if MASTER_KEY changed, \
                 enter it again with PUT /admin/api/destinations/{host}"
            ),
        )
    })
}

/// Opens a sealed token; a changed `MASTER_KEY` is a clear 503, never a garbage token.
pub fn open_token(env: &Env, host: &str, sealed: &str) -> Result<String, ApiError> {
    seal::open(&master_key(env)?, sealed, host).map_err(|error| {
        worker::console_error!("the access token of {host} does not open: {}", error.code());
        ApiError::new(
            503,
            "token_unreadable",
            format!(
                "the stored access token of {host} cannot be opened ({error}); if MASTER_KEY \
                 changed, enter the token again with PUT /admin/api/destinations/{host}"
            ),
        )
    })
}

/// `TIKTOK_API_BASE` and `TIKTOK_TIMEOUT_MS`, or the 503 answer naming what is wrong.
pub fn transport_from_env(env: &Env) -> Result<(String, u32), ApiError> {
    let mut problems = Vec::new();
    let transport = transport(env, &mut problems);
    if problems.is_empty() {
        Ok(transport)
    } else {
        Err(misconfigured(problems))
    }
}

/// `TIKTOK_API_BASE` and `TIKTOK_TIMEOUT_MS`, shared by every destination.
fn transport(env: &Env, problems: &mut Vec<String>) -> (String, u32) {
    let api_base = var(env, "TIKTOK_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.into());
    if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
        problems.push(format!(
            "TIKTOK_API_BASE must be an http(s) URL, found {api_base:?}"
        ));
    }
    let timeout_ms = positive(env, "TIKTOK_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, problems);
    (api_base.trim_end_matches('/').to_string(), timeout_ms)
}

fn positive(env: &Env, name: &str, default: u32, problems: &mut Vec<String>) -> u32 {
    match var(env, name) {
        None => default,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(format!(
                    "{name} must be a whole number above 0, found {text:?}"
                ));
                default
            }
        },
    }
}

/// A `[vars]` value (or `--var`); `None` when unset or blank.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string().trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A secret (`wrangler secret put`, `.dev.vars` or `--var`); `None` when unset or blank.
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string().trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(fetched_ms: u64) -> CachedSite {
        CachedSite {
            fetched_ms,
            site: None,
        }
    }

    #[test]
    fn a_flood_of_hosts_never_grows_the_cache_past_its_bound() {
        let mut cache = HashMap::new();
        for i in 0..(3 * MAX_CACHED_HOSTS as u64) {
            remember(&mut cache, format!("h{i}.shop.example"), unknown(i));
            assert!(cache.len() <= MAX_CACHED_HOSTS, "{} after {i}", cache.len());
        }
        // The newest stay: the oldest went first.
        let newest = format!("h{}.shop.example", 3 * MAX_CACHED_HOSTS - 1);
        assert!(cache.contains_key(&newest));
        assert!(!cache.contains_key("h0.shop.example"));
    }

    #[test]
    fn stale_hosts_make_room_before_fresh_ones() {
        let mut cache = HashMap::new();
        remember(&mut cache, "old.shop.example".into(), unknown(0));
        let now = UNKNOWN_TTL_MS + 10;
        for i in 1..MAX_CACHED_HOSTS as u64 {
            remember(&mut cache, format!("h{i}.shop.example"), unknown(now));
        }
        assert_eq!(cache.len(), MAX_CACHED_HOSTS);
        remember(&mut cache, "new.shop.example".into(), unknown(now));
        assert!(!cache.contains_key("old.shop.example"));
        assert_eq!(cache.len(), MAX_CACHED_HOSTS);
        // Refreshing a cached host needs no room.
        remember(&mut cache, "h1.shop.example".into(), unknown(now + 1));
        assert_eq!(cache.len(), MAX_CACHED_HOSTS);
    }

    #[test]
    fn unknown_hosts_are_trusted_briefly() {
        assert!(unknown(0).fresh(UNKNOWN_TTL_MS - 1));
        assert!(!unknown(0).fresh(UNKNOWN_TTL_MS));
    }
}
