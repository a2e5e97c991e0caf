//! Single-site configuration from `wrangler.toml` vars and secrets.
//!
//! Every problem is collected, not just the first, so an operator fixes them in one go.
//! Nothing here panics on a missing or malformed value.

use ttedge_core::cookie::PublicSuffixList;
use ttedge_core::mapping::NameRules;
use ttedge_core::pipeline::Destination;
use ttedge_core::ratelimit::DEFAULT_LIMIT_PER_MINUTE;
use worker::Env;

use crate::error::ApiError;

/// TikTok's production API.
pub const DEFAULT_API_BASE: &str = "https://business-api.tiktok.com";

/// How long one call to TikTok may take before it counts as a time-out.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

thread_local! {
    /// Parsed once per isolate, on the first request that needs it.
    static SUFFIXES: PublicSuffixList = PublicSuffixList::embedded();
}

/// What the Worker needs to run one site.
#[derive(Clone)]
pub struct SiteConfig {
    /// Where events go.
    pub destination: Destination,
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
}

impl SiteConfig {
    /// Reads and checks every setting; `Err` lists every problem found.
    pub fn from_env(env: &Env) -> Result<SiteConfig, Vec<String>> {
        let mut problems = Vec::new();
        let pixel_id = match var(env, "TIKTOK_PIXEL_ID") {
            Some(id) if id.bytes().all(|b| b.is_ascii_alphanumeric()) => id,
            Some(_) => {
                problems.push("TIKTOK_PIXEL_ID must be letters and digits only".to_string());
                String::new()
            }
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
        let api_base = var(env, "TIKTOK_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.into());
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            problems.push(format!(
                "TIKTOK_API_BASE must be an http(s) URL, found {api_base:?}"
            ));
        }
        let rate_limit_per_minute = positive(
            env,
            "RATE_LIMIT_PER_MINUTE",
            DEFAULT_LIMIT_PER_MINUTE,
            &mut problems,
        );
        let timeout_ms = positive(env, "TIKTOK_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, &mut problems);
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
        let cookie_domain =
            var(env, "COOKIE_DOMAIN").map(|d| d.trim_start_matches('.').to_string());
        let test_event_code = var(env, "TIKTOK_TEST_EVENT_CODE");
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SiteConfig {
            destination: Destination {
                pixel_id,
                test_event_code,
                names: NameRules::default(),
            },
            access_token,
            site_origins,
            cookie_domain,
            api_base: api_base.trim_end_matches('/').to_string(),
            rate_limit_per_minute,
            timeout_ms,
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
            .or_else(|| SUFFIXES.with(|list| list.registrable_domain(host)))
    }

    /// Whether a page on `origin` may post events.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.site_origins.iter().any(|allowed| allowed == origin)
    }
}

/// The configuration, or the 503 answer that lists what is wrong.
pub fn load(env: &Env) -> Result<SiteConfig, ApiError> {
    SiteConfig::from_env(env).map_err(|problems| {
        worker::console_error!("ttedge is misconfigured: {}", problems.join("; "));
        let mut error = ApiError::new(
            503,
            "misconfigured",
            "ttedge is not configured for this site; see `problems`",
        );
        error.problems = problems;
        error
    })
}

/// An origin as a browser sends it: `https://host[:port]`; `http://` only for local hosts.
fn origin_problem(origin: &str) -> Option<String> {
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
    None
}

fn is_local(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name == "localhost" || name == "127.0.0.1" || name.ends_with(".localhost")
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
