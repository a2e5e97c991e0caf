//! The operator's API under `/admin/api/`, behind `Authorization: Bearer <ADMIN_TOKEN>`.
//!
//! Without the `ADMIN_TOKEN` secret, admin is off. Answers never hold access tokens or
//! personal data: parked events show their id, name and TikTok's answer only.
//!
//! Routes:
//!
//! - `GET /admin/api/status`: the default destination's queue state.
//! - `GET /admin/api/health` and `GET /admin/api/destinations/{host}/health`: delivery
//!   health.
//! - `POST /admin/api/destinations/{host}/test`: the connection test, `{ok, latency_ms,
//!   http_status, tiktok_code, message, hint, emq: {score, grade, coaching}}`; 429 with
//!   `retry_after_ms` when the token's rate window is full.
//! - `GET /admin/api/destinations/{host}/parked?limit=50&after=<seq>`: `{events: [{seq,
//!   event_id, event_name, http_status, tiktok_code, message, hint, attempts,
//!   parked_at_ms}], next_after, total}`, oldest first; `limit` 1–500.
//! - `POST /admin/api/destinations/{host}/parked/replay` with `{}` (every parked event) or
//!   `{"event_ids": [...]}`: `{replayed, not_found}`.

use serde_json::Value;
use ttedge_core::connection;
use ttedge_core::hashing::sha256_hex;
use worker::{Env, Method, Request, Response, Result};

use crate::config::{self, secret, SiteConfig};
use crate::dispatcher::{self, ParkedPage, Replay, TestCall};
use crate::error::ApiError;
use crate::runtime;

/// The most event ids one replay may list.
const MAX_REPLAY_IDS: usize = 1_000;
/// The largest replay body.
const MAX_REPLAY_BODY: usize = 256 * 1024;

/// Routes `/admin/...`.
pub async fn route(req: Request, env: &Env) -> Result<Response> {
    if let Err(error) = authorize(&req, env) {
        return error.into_response();
    }
    let path = req.path();
    if let Some(rest) = path.strip_prefix("/admin/api/destinations/") {
        let answer = destination_route(req, env, rest).await;
        return answer.or_else(|error| error.into_response());
    }
    match (path.as_str(), req.method()) {
        ("/admin/api/status", Method::Get) => {
            let site = match config::load(env) {
                Ok(site) => site,
                Err(error) => return error.into_response(),
            };
            Response::from_json(&dispatcher::state(env, &site).await?)
        }
        // The default destination's health; `/admin/api/destinations/{host}/health` is the
        // same answer (see `resolve`).
        ("/admin/api/health", Method::Get) => {
            let site = match config::load(env) {
                Ok(site) => site,
                Err(error) => return error.into_response(),
            };
            Response::from_json(&dispatcher::health(env, &site).await?)
        }
        (path, _) => {
            ApiError::new(404, "not_found", format!("no admin route for {path}")).into_response()
        }
    }
}

/// `/admin/api/destinations/{host}/...`.
async fn destination_route(
    req: Request,
    env: &Env,
    rest: &str,
) -> std::result::Result<Response, ApiError> {
    let (host, action) = rest.split_once('/').unwrap_or((rest, ""));
    let allowed = match action {
        "health" | "parked" => "GET",
        "test" | "parked/replay" => "POST",
        _ => {
            return Err(ApiError::new(
                404,
                "not_found",
                format!("no admin route for {}", req.path()),
            ))
        }
    };
    if req.method().to_string() != allowed {
        let response = ApiError::new(
            405,
            "method_not_allowed",
            format!("{} is not allowed here; use {allowed}", req.method()),
        )
        .into_response()?;
        response.headers().set("Allow", allowed)?;
        return Ok(response);
    }
    let site = resolve(env, host)?;
    match action {
        "health" => Ok(Response::from_json(&dispatcher::health(env, &site).await?)?),
        "test" => connection_test(env, &site, host).await,
        "parked" => {
            let url = req.url()?;
            let query = |name: &str| {
                url.query_pairs()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.into_owned())
            };
            let page = ParkedPage::parse(query("limit"), query("after"))?;
            Ok(dispatcher::parked(env, &site, page).await?)
        }
        _ => {
            let replay = replay_request(req).await?;
            Ok(dispatcher::replay(env, &site, &replay).await?)
        }
    }
}

/// The destination of a site host.
///
/// For now every syntactically valid host resolves to the single default destination
/// configured from `wrangler.toml` vars and secrets (`TIKTOK_PIXEL_ID`,
/// `TIKTOK_ACCESS_TOKEN`, …), so `/admin/api/destinations/{any host}/...` and
/// `/admin/api/health` answer for the same Dispatcher. Per-host destinations (a Config
/// Durable Object) will only change this resolution; the routes stay as they are.
fn resolve(env: &Env, host: &str) -> std::result::Result<SiteConfig, ApiError> {
    if !connection::is_site_host(host) {
        let shown: String = host.chars().take(100).collect();
        let mut error = ApiError::new(
            400,
            "invalid_field",
            format!("{shown:?} is not a site host such as t.shop.com"),
        );
        error.path = Some("host".into());
        return Err(error);
    }
    config::load(env)
}

/// `POST .../test`: builds the test `ViewContent` with core, scores it, and has the
/// Dispatcher send it at once (not queued, not retried, not counted as a shop event).
async fn connection_test(
    env: &Env,
    site: &SiteConfig,
    host: &str,
) -> std::result::Result<Response, ApiError> {
    let event = connection::test_event(
        host,
        runtime::now_ms(),
        runtime::random_bytes()?,
        &site.destination,
    );
    let element = event
        .tiktok
        .as_ref()
        .ok_or_else(|| worker::Error::from("the test event is not ready"))?;
    let call = TestCall {
        pixel_code: site.destination.pixel_id.clone(),
        test_event_code: site.destination.test_event_code.clone(),
        element: serde_json::to_string(element).map_err(|e| worker::Error::from(e.to_string()))?,
    };
    let mut response = dispatcher::test(env, site, &call).await?;
    if response.status_code() != 200 {
        // A 429 with `retry_after_ms`, or a configuration error: passed on as it is.
        return Ok(response);
    }
    let mut answer: Value = response.json().await?;
    answer["event_id"] = Value::from(event.event_id.clone());
    answer["emq"] =
        serde_json::to_value(&event.emq).map_err(|e| worker::Error::from(e.to_string()))?;
    Ok(Response::from_json(&answer)?)
}

/// Reads `{}` or `{"event_ids": ["...", ...]}`; every error names its field.
async fn replay_request(mut req: Request) -> std::result::Result<Replay, ApiError> {
    let body = req.bytes().await?;
    if body.len() > MAX_REPLAY_BODY {
        return Err(ApiError::new(
            413,
            "body_too_large",
            format!("the body is larger than {} KiB", MAX_REPLAY_BODY / 1024),
        ));
    }
    parse_replay(&body)
}

fn parse_replay(body: &[u8]) -> std::result::Result<Replay, ApiError> {
    let invalid = |path: String, message: &str| {
        let mut error = ApiError::new(400, "invalid_field", message);
        error.path = Some(path);
        error
    };
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        let mut api = ApiError::new(
            400,
            "malformed_json",
            format!(
                "the body is not JSON: {} (line {}, column {}); send {{}} or {{\"event_ids\": [...]}}",
                error, error.line(), error.column()
            ),
        );
        api.path = Some("body".into());
        api
    })?;
    let Value::Object(fields) = value else {
        return Err(invalid(
            "body".into(),
            "send an object: {} or {\"event_ids\": [...]}",
        ));
    };
    let mut replay = Replay::default();
    for (name, value) in fields {
        if name != "event_ids" {
            return Err(invalid(name, "unknown field; only event_ids is accepted"));
        }
        let Value::Array(items) = value else {
            return Err(invalid(
                name,
                "event_ids must be an array of event id strings",
            ));
        };
        if items.len() > MAX_REPLAY_IDS {
            return Err(invalid(
                name,
                &format!("at most {MAX_REPLAY_IDS} event ids per replay"),
            ));
        }
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(id) if !id.trim().is_empty() => ids.push(id),
                _ => {
                    return Err(invalid(
                        format!("event_ids[{i}]"),
                        "each event id must be a non-empty string",
                    ))
                }
            }
        }
        replay.event_ids = Some(ids);
    }
    Ok(replay)
}

fn authorize(req: &Request, env: &Env) -> std::result::Result<(), ApiError> {
    let Some(expected) = secret(env, "ADMIN_TOKEN") else {
        return Err(ApiError::new(
            404,
            "admin_disabled",
            "admin is off: set the ADMIN_TOKEN secret to turn it on",
        ));
    };
    let given = req
        .headers()
        .get("Authorization")?
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default();
    if constant_time_eq(&given, &expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "unauthorized",
            "send Authorization: Bearer <ADMIN_TOKEN>",
        ))
    }
}

/// Compares digests, so neither the length nor the first differing byte leaks through time.
fn constant_time_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (sha256_hex(given), sha256_hex(expected));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
