//! The operator's side: the JSON API under `/admin/api/` ([`api`]) and the dashboard page at
//! `/admin` ([`page`]), which share the destination [`views`]; both are behind the
//! `ADMIN_TOKEN` secret.
//!
//! Without `ADMIN_TOKEN`, admin is off (404 with a message). A caller proves itself with
//! `Authorization: Bearer <ADMIN_TOKEN>` or with the dashboard's signed session cookie.
//! Failed attempts are counted per client IP in the Config object; after a few, that IP is
//! locked out for a growing time (429 with `Retry-After`) before its token is even looked
//! at, so guessing the token is slow from anywhere.

mod api;
mod page;
pub mod views;

pub(crate) use api::checked_host;

use ttedge_core::cookie;
use ttedge_core::hashing::sha256_hex;
use ttedge_core::session;
use worker::{Env, Method, Request, Response, Result};

use crate::config::secret;
use crate::config_store;
use crate::error::ApiError;
use crate::runtime;

/// Routes `/admin` and everything under it.
pub async fn route(req: Request, env: &Env) -> Result<Response> {
    let answer = match req.path().as_str() {
        "/admin" | "/admin/" | "/admin/login" | "/admin/logout" => page::route(req, env).await,
        _ => match authenticate(&req, env).await {
            Ok(_) => api::route(req, env).await,
            Err(error) => Err(error),
        },
    };
    answer.or_else(|error| error.into_response())
}

/// The methods an admin path answers, for `405`'s `Allow`; `None` for no such path.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/admin" | "/admin/" => Some("GET, HEAD"),
        "/admin/login" | "/admin/logout" => Some("POST"),
        _ => api::allowed_methods(path),
    }
}

/// How a caller proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// `Authorization: Bearer <ADMIN_TOKEN>`: scripts and tools.
    Bearer,
    /// The dashboard's session cookie: a browser, so writes need the CSRF header too.
    Session,
}

/// The header the dashboard's script sends on writes. A cross-site form cannot set it, so a
/// cookie-authenticated write without it is refused (on top of `SameSite=Strict`).
pub const CSRF_HEADER: &str = "X-Requested-With";
const CSRF_VALUE: &str = "ttedge";

/// Checks the caller of an API request.
async fn authenticate(req: &Request, env: &Env) -> std::result::Result<Caller, ApiError> {
    let expected = admin_token(env)?;
    let ip = client_ip(req)?;
    refuse_if_locked(env, &ip).await?;
    let caller = if let Some(given) = runtime::header(req, "Authorization")? {
        constant_time_eq(bearer_token(&given), &expected).then_some(Caller::Bearer)
    } else {
        match session_cookie(req)? {
            Some(value) => session_valid(env, &expected, &value)
                .await?
                .then_some(Caller::Session),
            // Nothing offered is not a guess: no failure is counted.
            None => return Err(unauthorized()),
        }
    };
    let Some(caller) = caller else {
        return Err(failed(env, &ip).await);
    };
    let is_write = !matches!(req.method(), Method::Get | Method::Head);
    if caller == Caller::Session
        && is_write
        && runtime::header(req, CSRF_HEADER)?.as_deref() != Some(CSRF_VALUE)
    {
        return Err(ApiError::new(
            403,
            "csrf",
            format!("a write from the dashboard must send {CSRF_HEADER}: {CSRF_VALUE}"),
        ));
    }
    Ok(caller)
}

/// The credentials of `Authorization: Bearer <token>`; the scheme's case does not matter
/// (RFC 9110, 11.1). Anything else gives an empty token, which never matches.
fn bearer_token(authorization: &str) -> &str {
    match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => "",
    }
}

/// `ADMIN_TOKEN`, or the 404 that says admin is off.
fn admin_token(env: &Env) -> std::result::Result<String, ApiError> {
    secret(env, "ADMIN_TOKEN").ok_or_else(|| {
        ApiError::new(
            404,
            "admin_disabled",
            "admin is off: set the ADMIN_TOKEN secret to turn it on",
        )
    })
}

/// The client's IP as Cloudflare reports it; one bucket for requests without it.
fn client_ip(req: &Request) -> Result<String> {
    Ok(runtime::header(req, "CF-Connecting-IP")?
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "unknown".into()))
}

/// 429 while `ip` is locked out after failed attempts.
async fn refuse_if_locked(env: &Env, ip: &str) -> std::result::Result<(), ApiError> {
    match config_store::login_locked(env, ip).await? {
        Some(wait_ms) => Err(locked(wait_ms)),
        None => Ok(()),
    }
}

/// Counts a failed attempt from `ip`: 401 (the attempt after the one that locks is the
/// first refused with 429).
async fn failed(env: &Env, ip: &str) -> ApiError {
    match config_store::login_failed(env, ip).await {
        Ok(_) => unauthorized(),
        Err(error) => error,
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        401,
        "unauthorized",
        "send Authorization: Bearer <ADMIN_TOKEN>, or log in at /admin",
    )
}

fn locked(wait_ms: u64) -> ApiError {
    let seconds = wait_ms.div_ceil(1000).max(1);
    let mut error = ApiError::new(
        429,
        "too_many_failures",
        format!("too many failed attempts from this address; try again in {seconds} s"),
    );
    error.retry_after_s = Some(seconds);
    error
}

/// The value of the session cookie, if the request carries one.
fn session_cookie(req: &Request) -> Result<Option<String>> {
    let header = runtime::header(req, "Cookie")?.unwrap_or_default();
    Ok(cookie::get(&header, session::COOKIE_NAME).map(str::to_string))
}

/// A signed, unexpired session that no logout has ended: its id and expiry.
async fn live_session(
    env: &Env,
    admin_token: &str,
    value: &str,
) -> std::result::Result<Option<(String, u64)>, ApiError> {
    let key = session::session_key(admin_token);
    let Ok(expires_ms) = session::verify(&key, value, runtime::now_ms()) else {
        return Ok(None);
    };
    let id = session::id(value).unwrap_or_default().to_string();
    match config_store::session_ended(env, &id).await? {
        true => Ok(None),
        false => Ok(Some((id, expires_ms))),
    }
}

async fn session_valid(
    env: &Env,
    admin_token: &str,
    value: &str,
) -> std::result::Result<bool, ApiError> {
    Ok(live_session(env, admin_token, value).await?.is_some())
}

/// Compares digests, so neither the length nor the first differing byte leaks through time.
fn constant_time_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (sha256_hex(given), sha256_hex(expected));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
