//! The admin JSON API under `/admin/api/` (the caller is already authenticated).
//!
//! Answers never hold access tokens or personal data: tokens are shown masked (`…` and the
//! last 4 characters), parked events show their id, name and TikTok's answer only.
//!
//! Routes:
//!
//! - `GET /admin/api/destinations`: `{destinations: [...], default: {...} | null}`, the
//!   stored destinations and the `wrangler.toml` default.
//! - `GET`, `PUT`, `DELETE /admin/api/destinations/{host}`: one stored destination. A `PUT`
//!   replaces the settings; without `access_token` it keeps the stored token.
//! - `POST /admin/api/destinations/{host}/live` with `{"live": true|false}`.
//! - `POST /admin/api/destinations/{host}/baseline` with `{from, to, pixel_conversions}`:
//!   the pixel's own conversions over those days; answers the recovery against it.
//! - `POST /admin/api/destinations/{host}/test`: the connection test, `{ok, latency_ms,
//!   http_status, tiktok_code, message, hint, emq: {score, grade, coaching}}`; 429 with
//!   `retry_after_ms` when the token's rate window is full. A stored destination keeps the
//!   result (`last_test`, and `test_passed_ms` when it passed) for the dashboard's card and
//!   its live switch.
//! - `GET /admin/api/destinations/{host}/health`: delivery health, with the recovery
//!   against every imported baseline.
//! - `GET /admin/api/destinations/{host}/parked?limit=50&after=<seq>`: `{events: [{seq,
//!   event_id, event_name, http_status, tiktok_code, message, hint, attempts,
//!   parked_at_ms}], next_after, total}`, oldest first; `limit` 1–500.
//! - `POST /admin/api/destinations/{host}/parked/replay` with `{}` (every parked event) or
//!   `{"event_ids": [...]}`: `{replayed, not_found}`.
//! - `POST /admin/api/destinations/{host}/offline`: JSON Lines of offline events, at most
//!   1,000 or 1 MiB; answered per event as `/collect` answers (see [`crate::offline`]).
//! - `POST /admin/api/destinations/{host}/orders/{order_id}` with `{"status":
//!   "paid"|"delivered"|"cancelled", ...}`: a cash-on-delivery order confirmed or
//!   cancelled, `{order_id, outcome, event_id}` (see [`crate::orders`]).
//! - `GET` and `DELETE /admin/api/destinations/{host}/identities?ttp=…` or `?email=…`:
//!   data-subject access and erasure. `{identities: [{kind, key, email_sha256,
//!   phone_sha256, external_id_sha256, first_seen_ms, last_seen_ms, expires_ms}], erased}`;
//!   a clear email is hashed here and never stored, logged or answered.
//! - `GET /admin/api/status` and `GET /admin/api/health`: the default destination's queue
//!   and health.
//!
//! `{host}` is the site host `/collect` is served on. Health, test and parked events work
//! for any host `/collect` would serve: a stored destination, else the default.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use ttedge_core::connection;
use ttedge_core::cookie;
use ttedge_core::destination::{self, parse_baseline, parse_live, parse_settings, SettingsError};
use ttedge_core::hashing::{self, Sha256Hex};
use ttedge_core::quality::MatchQuality;
use ttedge_core::seal;
use worker::{Env, Method, Request, Response};

use super::views::{DestinationList, DestinationView};
use crate::config::{self, Provenance, SiteConfig};
use crate::config_store::{self, LastTest, Put};
use crate::dispatcher::client::TestAnswer;
use crate::dispatcher::report::Health;
use crate::dispatcher::{self, ConversionQuery, IdentityQuery, ParkedPage, Replay, TestCall};
use crate::error::ApiError;
use crate::{router, runtime};

/// The most event ids one replay may list.
const MAX_REPLAY_IDS: usize = 1_000;
/// The largest body of any admin request.
const MAX_BODY: usize = 256 * 1024;

type Answer = std::result::Result<Response, ApiError>;

/// Routes `/admin/api/...`.
pub async fn route(req: Request, env: &Env) -> Answer {
    let path = req.path();
    let Some(allowed) = allowed_methods(&path) else {
        return Err(not_found(&path));
    };
    let method = req.method();
    if !allowed.split(", ").any(|m| m == method.as_ref()) {
        return Ok(router::wrong_method(method.as_ref(), allowed)?);
    }
    if let Some(rest) = path.strip_prefix("/admin/api/destinations/") {
        return destination_route(req, env, rest).await;
    }
    match path.as_str() {
        "/admin/api/destinations" => Ok(Response::from_json(&destination_list(env).await?)?),
        "/admin/api/status" => {
            let site = config::load(env)?;
            Ok(Response::from_json(&dispatcher::state(env, &site).await?)?)
        }
        _ => {
            let site = config::load(env)?;
            Ok(Response::from_json(&health(env, &site).await?)?)
        }
    }
}

/// The methods an API path answers; `None` for no such path.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix("/admin/api/destinations/") else {
        return match path {
            "/admin/api/destinations" | "/admin/api/status" | "/admin/api/health" => Some("GET"),
            _ => None,
        };
    };
    let (host, action) = rest.split_once('/').unwrap_or((rest, ""));
    match action {
        _ if host.is_empty() => None,
        "" => Some("GET, PUT, DELETE"),
        "health" | "parked" => Some("GET"),
        "identities" => Some("GET, DELETE"),
        "test" | "parked/replay" | "live" | "baseline" | "offline" => Some("POST"),
        _ if action
            .strip_prefix("orders/")
            .is_some_and(|id| !id.is_empty()) =>
        {
            Some("POST")
        }
        _ => None,
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(404, "not_found", format!("no admin route for {path}"))
}

/// `/admin/api/destinations/{host}[/action]`, its method already checked.
async fn destination_route(mut req: Request, env: &Env, rest: &str) -> Answer {
    let (host, action) = rest.split_once('/').unwrap_or((rest, ""));
    let host = checked_host(host)?;
    match (action, req.method()) {
        ("", Method::Get) => match config_store::get(env, &host).await? {
            Some(stored) => Ok(Response::from_json(&DestinationView::stored(&stored))?),
            None => Err(unknown_destination(&host)),
        },
        ("", Method::Put) => {
            let body = body(&mut req).await?;
            put(env, &host, &body).await
        }
        ("", _) => {
            if !config_store::delete(env, &host).await? {
                return Err(unknown_destination(&host));
            }
            config::forget(&host);
            Ok(Response::from_json(&Deleted { deleted: host })?)
        }
        ("live", _) => {
            let live = parse_live(&body(&mut req).await?).map_err(settings_error)?;
            let stored = config_store::set_live(env, &host, live)
                .await?
                .ok_or_else(|| unknown_destination(&host))?;
            config::forget(&host);
            Ok(Response::from_json(&DestinationView::stored(&stored))?)
        }
        ("baseline", _) => {
            let baseline = parse_baseline(&body(&mut req).await?).map_err(settings_error)?;
            let stored = config_store::add_baseline(env, &host, &baseline)
                .await?
                .ok_or_else(|| unknown_destination(&host))?;
            let site = SiteConfig::from_stored(env, &stored)?;
            let recovered = recoveries(env, &site, std::slice::from_ref(&baseline)).await?;
            Ok(Response::from_json(&recovered[0])?)
        }
        ("health", _) => {
            let site = config::for_host(env, &host).await?;
            Ok(Response::from_json(&health(env, &site).await?)?)
        }
        ("offline", _) => crate::offline::upload(req, env, &host).await,
        (action, _) if action.starts_with("orders/") => {
            let segment = action["orders/".len()..].to_string();
            crate::orders::admin_update(req, env, &host, &segment).await
        }
        ("identities", method) => {
            let site = config::for_host(env, &host).await?;
            let query = identity_query(&req, &site, method == Method::Delete)?;
            Ok(Response::from_json(
                &dispatcher::identities(env, &site, &query).await?,
            )?)
        }
        ("test", _) => connection_test(env, &*config::for_host(env, &host).await?, &host).await,
        ("parked", _) => {
            let url = req.url()?;
            let page =
                ParkedPage::parse(runtime::query(&url, "limit"), runtime::query(&url, "after"))?;
            let site = config::for_host(env, &host).await?;
            Ok(Response::from_json(
                &dispatcher::parked(env, &site, page).await?,
            )?)
        }
        _ => {
            let replay = parse_replay(&body(&mut req).await?)?;
            let site = config::for_host(env, &host).await?;
            Ok(Response::from_json(
                &dispatcher::replay(env, &site, &replay).await?,
            )?)
        }
    }
}

/// The data-subject request of `?ttp=` or `?email=` (exactly one) for `site`'s pixel. A
/// clear email is hashed as events' emails are, so it finds what they stored.
fn identity_query(
    req: &Request,
    site: &SiteConfig,
    erase: bool,
) -> std::result::Result<IdentityQuery, ApiError> {
    let url = req.url()?;
    let (ttp, email) = (runtime::query(&url, "ttp"), runtime::query(&url, "email"));
    let mut query = IdentityQuery {
        pixel_code: site.destination.pixel_id.clone(),
        ttp: None,
        email: None,
        erase,
    };
    match (ttp, email) {
        (Some(ttp), None) => {
            let ttp = ttp.trim();
            if !cookie::is_cookie_value(ttp) {
                return Err(ApiError::invalid_field(
                    "ttp",
                    "ttp must be the browser's _ttp cookie value",
                ));
            }
            query.ttp = Some(ttp.to_string());
        }
        (None, Some(email)) => {
            let looks_right = email.contains('@') || Sha256Hex::parse(email.trim()).is_some();
            query.email = looks_right.then(|| hashing::email(&email)).flatten();
            if query.email.is_none() {
                return Err(ApiError::invalid_field(
                    "email",
                    "email must be an email address, or its SHA-256 as 64 hex characters",
                ));
            }
        }
        _ => {
            return Err(ApiError::new(
                400,
                "invalid_query",
                "give exactly one of ?ttp= (the browser's _ttp cookie) or ?email=",
            ))
        }
    }
    Ok(query)
}

/// A site host from the path, lower-case: no scheme, path or port (`/collect` resolves by
/// the host alone).
pub(crate) fn checked_host(host: &str) -> std::result::Result<String, ApiError> {
    if !connection::is_site_host(host) || host.contains(':') {
        let shown: String = host.chars().take(100).collect();
        return Err(ApiError::invalid_field(
            "host",
            format!("{shown:?} is not a site host such as t.shop.com (no scheme, path or port)"),
        ));
    }
    Ok(host.to_ascii_lowercase())
}

fn unknown_destination(host: &str) -> ApiError {
    ApiError::new(
        404,
        "unknown_destination",
        format!("no destination is stored for {host}; create it with PUT"),
    )
}

fn settings_error(error: SettingsError) -> ApiError {
    let mut api = ApiError::new(400, error.code(), error.message);
    api.path = Some(error.path);
    api
}

/// Reads a request body, at most [`MAX_BODY`] bytes.
async fn body(req: &mut Request) -> std::result::Result<Vec<u8>, ApiError> {
    runtime::read_body(req, MAX_BODY)
        .await?
        .ok_or_else(|| ApiError::body_too_large(MAX_BODY))
}

/// `PUT /admin/api/destinations/{host}`: checks the settings, seals a given token under
/// `MASTER_KEY` bound to the host, stores, and answers the destination (201 when new).
async fn put(env: &Env, host: &str, body: &[u8]) -> Answer {
    let mut settings = config::with_suffixes(|suffixes| parse_settings(host, body, suffixes))
        .map_err(settings_error)?;
    let token = match settings.access_token.take() {
        Some(token) => {
            let key = config::master_key(env)?;
            let sealed = seal::seal(&key, runtime::random_bytes()?, &token, host);
            Some((sealed, seal::mask(&token)))
        }
        None => None,
    };
    let webhook_secret = match settings.webhook_secret.take() {
        Some(secret) => {
            let key = config::master_key(env)?;
            let data = config::webhook_seal_data(host);
            Some(seal::seal(&key, runtime::random_bytes()?, &secret, &data))
        }
        None => None,
    };
    let put = Put {
        host: host.to_string(),
        settings,
        token,
        webhook_secret,
    };
    let answer = config_store::put(env, &put).await?;
    config::forget(host);
    let status = if answer.created { 201 } else { 200 };
    Ok(Response::from_json(&DestinationView::stored(&answer.stored))?.with_status(status))
}

/// `GET /admin/api/destinations`.
pub async fn destination_list(env: &Env) -> std::result::Result<DestinationList, ApiError> {
    let stored = config_store::list(env).await?;
    let default = match config::has_default(env) {
        true => config::load(env)
            .ok()
            .map(|site| DestinationView::default_destination(&site)),
        false => None,
    };
    Ok(DestinationList {
        destinations: stored.iter().map(DestinationView::stored).collect(),
        default,
    })
}

/// The Dispatcher's health of `site`, with the recovery against each imported baseline.
pub async fn health(env: &Env, site: &SiteConfig) -> std::result::Result<Health, ApiError> {
    let mut report = dispatcher::health(env, site).await?;
    let baselines = match &site.provenance {
        Provenance::Stored { host, .. } => config_store::get(env, host)
            .await?
            .map(|stored| stored.baselines)
            .unwrap_or_default(),
        Provenance::Vars => Vec::new(),
    };
    report.recovery.baselines = recoveries(env, site, &baselines).await?;
    Ok(report)
}

/// Server conversions against each baseline, counted for the destination's pixel.
async fn recoveries(
    env: &Env,
    site: &SiteConfig,
    baselines: &[destination::Baseline],
) -> std::result::Result<Vec<destination::BaselineRecovery>, ApiError> {
    if baselines.is_empty() {
        return Ok(Vec::new());
    }
    let query = ConversionQuery {
        pixel_code: site.destination.pixel_id.clone(),
        ranges: baselines.iter().map(|b| b.day_range()).collect(),
    };
    let counts = dispatcher::conversions(env, site, &query).await?;
    Ok(baselines
        .iter()
        .zip(counts)
        .map(|(baseline, server)| destination::recovery(baseline, server))
        .collect())
}

/// `POST .../test`: builds the test `ViewContent` with core, scores it, and has the
/// Dispatcher send it at once (not queued, not retried, not counted as a shop event).
pub async fn connection_test(env: &Env, site: &SiteConfig, host: &str) -> Answer {
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
        element: RawValue::from_string(element.to_json())
            .map_err(|e| worker::Error::from(e.to_string()))?,
    };
    match dispatcher::test(env, site, &call).await? {
        Ok(sent) => {
            let answer = ConnectionTest {
                sent,
                event_id: event.event_id.to_string(),
                emq: event.emq.clone(),
            };
            if let Provenance::Stored { host, .. } = &site.provenance {
                keep_test(env, host, &answer).await;
            }
            Ok(Response::from_json(&answer)?)
        }
        // A 429 with `retry_after_ms`, or a configuration error: passed on as it is.
        Err(refused) => Ok(refused),
    }
}

/// Keeps the test's result on a stored destination, for its card and its live switch. The
/// test itself happened: a failure to keep it is logged, not answered.
async fn keep_test(env: &Env, host: &str, answer: &ConnectionTest) {
    let test = LastTest {
        at_ms: runtime::now_ms(),
        answer: answer.sent.clone(),
        emq: answer.emq.clone(),
    };
    if let Err(error) = config_store::record_test(env, host, &test).await {
        worker::console_error!(
            "the connection test of {host} was not kept: {}",
            error.message
        );
    }
}

/// The connection test's answer: what TikTok said, and the test event's id and score.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectionTest {
    /// TikTok's answer, as the Dispatcher read it.
    #[serde(flatten)]
    pub sent: TestAnswer,
    /// The test event's id.
    pub event_id: String,
    /// The test event's match quality, with its coaching.
    pub emq: Option<MatchQuality>,
}

/// `DELETE /admin/api/destinations/{host}`: `{"deleted": host}`.
#[derive(Debug, Serialize)]
struct Deleted {
    /// The host whose destination was deleted.
    deleted: String,
}

/// Reads `{}` or `{"event_ids": ["...", ...]}`; every error names its field.
fn parse_replay(body: &[u8]) -> std::result::Result<Replay, ApiError> {
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
        return Err(ApiError::invalid_field(
            "body",
            "send an object: {} or {\"event_ids\": [...]}",
        ));
    };
    let mut replay = Replay::default();
    for (name, value) in fields {
        if name != "event_ids" {
            return Err(ApiError::invalid_field(
                name,
                "unknown field; only event_ids is accepted",
            ));
        }
        let Value::Array(items) = value else {
            return Err(ApiError::invalid_field(
                name,
                "event_ids must be an array of event id strings",
            ));
        };
        if items.len() > MAX_REPLAY_IDS {
            return Err(ApiError::invalid_field(
                name,
                format!("at most {MAX_REPLAY_IDS} event ids per replay"),
            ));
        }
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(id) if !id.trim().is_empty() => ids.push(id),
                _ => {
                    return Err(ApiError::invalid_field(
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
