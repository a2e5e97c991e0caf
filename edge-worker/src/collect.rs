//! `POST /collect` and its CORS preflight: check, run core's pipeline, queue durably, answer.
//!
//! The answer (202) is sent only after the Dispatcher has stored the events, so a 202 means
//! the events are safe. A refused request queues nothing.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ttedge_core::answer::{AnswerStatus, CollectAnswer, EventAnswer};
use ttedge_core::cod;
use ttedge_core::event::{parse_collect, MAX_BATCH_EVENTS};
use ttedge_core::health::is_conversion;
use ttedge_core::identity;
use ttedge_core::pipeline::{prepare, PreparedEvent, RequestContext, Status};
use ttedge_core::quality::MatchQuality;
use ttedge_core::tiktok::offline_event_set;
use worker::{Env, Headers, Request, Response, Result};

use crate::config::{self, SiteConfig};
use crate::dispatcher::client::IntakeAnswer;
use crate::dispatcher::{self, Intake, IntakeEvent};
use crate::error::ApiError;
use crate::runtime;

/// The largest body accepted (DESIGN: 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `OPTIONS /collect`: allowed origins get credentials-enabled CORS, others 403.
pub async fn preflight(req: &Request, env: &Env) -> Result<Response> {
    let site = match config::for_host(env, &request_host(req)?).await {
        Ok(site) => site,
        Err(error) => return error.into_response(),
    };
    let origin = runtime::header(req, "Origin")?.unwrap_or_default();
    if !site.allows_origin(&origin) {
        return origin_refused(&origin).into_response();
    }
    let headers = cors_headers(&origin)?;
    headers.set("Access-Control-Allow-Methods", "POST, OPTIONS")?;
    headers.set("Access-Control-Allow-Headers", "Content-Type")?;
    headers.set("Access-Control-Max-Age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// The two POST endpoints a page calls.
#[derive(Clone, Copy)]
enum Endpoint {
    /// `POST /collect`: events.
    Collect,
    /// `POST /collect/reset`: the SDK's `ttedge('reset')`.
    Reset,
}

/// `POST /collect`, for the destination of the request's host.
pub async fn collect(req: Request, env: &Env) -> Result<Response> {
    serve(req, env, Endpoint::Collect).await
}

/// `POST /collect/reset`, called by the SDK's `ttedge('reset')` at logout: erases the
/// identity stored for the browser's `_ttp` (the cookie the request carries, or `{"ttp":
/// "…"}` in the body, as the SDK reads it). Answers `{"erased": n}`, the rows erased.
pub async fn reset(req: Request, env: &Env) -> Result<Response> {
    serve(req, env, Endpoint::Reset).await
}

/// The site, the origin check and CORS headers both endpoints share.
async fn serve(req: Request, env: &Env, endpoint: Endpoint) -> Result<Response> {
    let host = request_host(&req)?;
    let site = match config::for_host(env, &host).await {
        Ok(site) => site,
        Err(error) => return error.into_response(),
    };
    let origin = runtime::header(&req, "Origin")?;
    let answer = match endpoint {
        Endpoint::Collect => handle(req, env, &site, &host, origin.as_deref()).await,
        Endpoint::Reset => handle_reset(req, env, &site, origin.as_deref()).await,
    };
    let response = match answer {
        Ok(response) => response,
        Err(error) => error.into_response()?,
    };
    // Errors carry CORS headers too, so the page's script can read what was wrong.
    if let Some(origin) = origin.filter(|origin| site.allows_origin(origin)) {
        for (name, value) in cors_headers(&origin)?.entries() {
            response.headers().set(&name, &value)?;
        }
    }
    Ok(response)
}

async fn handle(
    mut req: Request,
    env: &Env,
    site: &SiteConfig,
    host: &str,
    origin: Option<&str>,
) -> std::result::Result<Response, ApiError> {
    // A browser always sends Origin on a cross-origin POST; servers and curl may not.
    if let Some(origin) = origin {
        if !site.allows_origin(origin) {
            return Err(origin_refused(origin));
        }
    }
    check_content_type(runtime::header(&req, "Content-Type")?.as_deref())?;
    let body = runtime::read_body(&mut req, MAX_BODY_BYTES)
        .await?
        .ok_or_else(|| ApiError::body_too_large(MAX_BODY_BYTES))?;
    let events = parse_collect(&body, MAX_BATCH_EVENTS)?;

    let (ip, user_agent, accept_language, cookie_header) = (
        runtime::header(&req, "CF-Connecting-IP")?,
        runtime::header(&req, "User-Agent")?,
        runtime::header(&req, "Accept-Language")?,
        runtime::header(&req, "Cookie")?,
    );
    let cookie_domain = site.cookie_domain_for(host);
    let ctx = RequestContext {
        now_ms: runtime::now_ms(),
        ttp_random: Some(runtime::random_bytes()?),
        id_random: runtime::random_bytes()?,
        ip: ip.as_deref(),
        user_agent: user_agent.as_deref(),
        accept_language: accept_language.as_deref(),
        cookie_header: cookie_header.as_deref(),
        cookie_domain: cookie_domain.as_deref(),
    };
    let prepared = prepare(&events, &ctx, &site.destination);
    let erase_ttps = erasures(&prepared.events, cookie_header.as_deref());
    let answers = store_and_answer(env, site, &prepared.events, 0, erase_ttps).await?;
    let response = Response::from_json(&CollectAnswer::new(site.live, answers))?.with_status(202);
    for cookie in &prepared.set_cookies {
        response.headers().append("Set-Cookie", cookie)?;
    }
    Ok(response)
}

/// What `POST /collect/reset` may carry: the `_ttp` the SDK read, for a request without
/// the cookie.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    #[serde(default)]
    ttp: Option<String>,
}

/// The answer of `POST /collect/reset`.
#[derive(Serialize)]
struct ResetAnswer {
    /// Identity rows erased (0 when none was stored).
    erased: u64,
}

/// The largest reset body: a `_ttp` and its key.
const MAX_RESET_BYTES: usize = 1024;

async fn handle_reset(
    mut req: Request,
    env: &Env,
    site: &SiteConfig,
    origin: Option<&str>,
) -> std::result::Result<Response, ApiError> {
    if let Some(origin) = origin {
        if !site.allows_origin(origin) {
            return Err(origin_refused(origin));
        }
    }
    let body = runtime::read_body(&mut req, MAX_RESET_BYTES)
        .await?
        .ok_or_else(|| ApiError::body_too_large(MAX_RESET_BYTES))?;
    let given: ResetBody = match body.iter().all(u8::is_ascii_whitespace) {
        true => ResetBody::default(),
        // serde's message could quote what was sent; this one names the expected shape only.
        false => serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                400,
                "malformed_json",
                "the reset body must be empty or {\"ttp\": \"<the _ttp cookie>\"}",
            )
        })?,
    };
    let cookie_header = runtime::header(&req, "Cookie")?;
    let from_cookie = identity::erasure_ttp(None, cookie_header.as_deref());
    let from_body = given.ttp.as_deref().map(str::trim);
    if from_body.is_some_and(|ttp| !ttedge_core::cookie::is_cookie_value(ttp)) {
        return Err(ApiError::invalid_field(
            "ttp",
            "ttp must be the browser's _ttp cookie value",
        ));
    }
    let mut ttps: Vec<&str> = from_cookie.into_iter().collect();
    if let Some(ttp) = from_body.filter(|ttp| !ttps.contains(ttp)) {
        ttps.push(ttp);
    }
    let mut erased = 0;
    for ttp in ttps {
        let query = dispatcher::IdentityQuery {
            pixel_code: site.destination.pixel_id.clone(),
            ttp: Some(ttp.to_string()),
            email: None,
            erase: true,
        };
        erased += dispatcher::identities(env, site, &query).await?.erased;
    }
    Ok(Response::from_json(&ResetAnswer { erased })?)
}

/// Stores the ready events of `events` durably in the destination's Dispatcher (group
/// commit, dedup and identity resolution included) and answers each event: `ready`,
/// `duplicate`, `skipped`, `held` or `rejected`, in the order given, with the match
/// quality it is sent with. `rejected_before` counts events refused before the pipeline
/// (an offline upload's unreadable or out-of-date lines), for health; `erase_ttps` are the
/// browsers whose identity the request erases ([`erasures`]).
pub(crate) async fn store_and_answer<'a>(
    env: &Env,
    site: &SiteConfig,
    events: &'a [PreparedEvent<'_>],
    rejected_before: u32,
    erase_ttps: Vec<String>,
) -> std::result::Result<Vec<EventAnswer<'a>>, ApiError> {
    let repeats = repeated_ids(events);
    let mut intake = intake(site, events, &repeats)?;
    intake.rejected += rejected_before;
    intake.erase_ttps = erase_ttps;
    let answer = dispatcher::enqueue(env, site, &intake).await?;
    let answers: Vec<EventAnswer<'a>> = events
        .iter()
        .zip(&repeats)
        .map(|(event, repeat)| answer_for(event, *repeat, &answer))
        .collect();
    for (event, answer) in events.iter().zip(&answers) {
        log_weak_match(event, answer.emq.as_deref());
    }
    Ok(answers)
}

/// For each event, whether an earlier ready event of the same request has its event_id.
/// Only the first copy is queued; the others are answered as duplicates.
fn repeated_ids(events: &[PreparedEvent<'_>]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .map(|event| event.status == Status::Ready && !seen.insert(&*event.event_id))
        .collect()
}

/// What the Dispatcher stores: the ready elements but repeats, each with the identity use
/// its consent allows, and counts of the rest for health.
fn intake(site: &SiteConfig, events: &[PreparedEvent<'_>], repeats: &[bool]) -> Result<Intake> {
    let mut intake = Intake {
        live: site.live,
        pixel_code: site.destination.pixel_id.clone(),
        test_event_code: site.destination.test_event_code.clone(),
        cod_days: site.cod_days,
        identity_days: site.identity_days,
        ..Intake::default()
    };
    for (event, _) in events.iter().zip(repeats).filter(|(_, repeat)| !**repeat) {
        if let Some(emq) = &event.emq {
            intake.quality.add(emq);
        }
        match event.status {
            Status::Ready => {}
            Status::Held => intake.held += 1,
            Status::Skipped => intake.skipped += 1,
            Status::Rejected => intake.rejected += 1,
        }
        let (Some(element), Some(name)) = (&event.tiktok, &event.event_name) else {
            continue;
        };
        // A cash-on-delivery checkout with an order id: the Dispatcher keeps its order.
        let order_id = element
            .properties
            .order_id
            .as_deref()
            .filter(|_| cod::is_checkout(name, &site.cod_checkout_events))
            .and_then(cod::order_id)
            .map(str::to_string);
        intake.events.push(IntakeEvent {
            event_id: event.event_id.to_string(),
            event_name: name.to_string(),
            pixel_status: event.pixel,
            conversion: is_conversion(name, &site.conversion_events),
            offline_event_set_id: offline_event_set(
                event.source,
                site.offline_event_set_id.as_deref(),
            )
            .map(str::to_string),
            element: RawValue::from_string(element.to_json())?,
            order_id,
            identity: event.identity.within(site.identity_days),
        });
    }
    Ok(intake)
}

/// The browser ttps whose identity a request erases: those of its events whose consent
/// denies `ad_user_data` (ready or held), or the request's `_ttp` cookie when such an
/// event carries none (its `ad_storage` denied too).
fn erasures(events: &[PreparedEvent<'_>], cookie_header: Option<&str>) -> Vec<String> {
    let mut ttps: Vec<String> = Vec::new();
    for event in events.iter().filter(|event| event.identity.erase) {
        let own = event.tiktok.as_ref().and_then(|e| e.user.ttp.as_deref());
        if let Some(ttp) = identity::erasure_ttp(own, cookie_header) {
            if !ttps.iter().any(|known| known == ttp) {
                ttps.push(ttp.to_string());
            }
        }
    }
    ttps
}

/// Under its threshold, an event's coaching goes to the log as well as the answer, so an
/// operator sees what to fix without the page's developer console. No personal data: only
/// the id, the name, the score and the missing factors.
fn log_weak_match(event: &PreparedEvent<'_>, emq: Option<&MatchQuality>) {
    let Some(emq) = emq.filter(|emq| emq.below_threshold()) else {
        return;
    };
    let missing: Vec<String> = emq
        .coaching
        .iter()
        .map(|c| format!("{} +{}", c.factor.name(), c.gain))
        .collect();
    // Caller text is written escaped and quoted ({:?}): a newline in an id forges no line.
    worker::console_log!(
        "match quality below threshold: event_id={:?} event={:?} score={} missing: {}",
        event.event_id,
        event.event_name.as_deref().unwrap_or("?"),
        emq.score,
        missing.join(", ")
    );
}

fn answer_for<'a>(
    event: &'a PreparedEvent<'_>,
    repeat: bool,
    stored: &IntakeAnswer,
) -> EventAnswer<'a> {
    let duplicate = repeat
        || (event.status == Status::Ready
            && stored.duplicates.iter().any(|id| *id == event.event_id));
    let enriched = (event.status == Status::Ready && !repeat)
        .then(|| {
            stored
                .enriched
                .iter()
                .find(|e| e.event_id == event.event_id)
        })
        .flatten();
    EventAnswer {
        index: event.index,
        line: None,
        event_id: Some(Cow::Borrowed(&event.event_id)),
        status: AnswerStatus::of(event.status, duplicate),
        event: event.event_name.as_deref().map(Cow::Borrowed),
        reason: match (repeat, duplicate) {
            (true, _) => Some(Cow::Borrowed(
                "an earlier event of this request has this event_id; not queued again",
            )),
            (false, true) => Some(Cow::Borrowed(
                "already received with this event_id; not queued again",
            )),
            (false, false) => event.reason.as_deref().map(Cow::Borrowed),
        },
        emq: match enriched {
            Some(enriched) => Some(Cow::Owned(enriched.emq.clone())),
            None => event.emq.as_ref().map(Cow::Borrowed),
        },
    }
}

/// `application/json`, or `text/plain` as `navigator.sendBeacon` sends it.
fn check_content_type(content_type: Option<&str>) -> std::result::Result<(), ApiError> {
    let media_type = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" | "text/plain" => Ok(()),
        "" => Err(ApiError::new(
            415,
            "unsupported_content_type",
            "Content-Type is missing; send application/json or text/plain",
        )),
        other => Err(ApiError::new(
            415,
            "unsupported_content_type",
            format!("Content-Type {other} is not accepted; send application/json or text/plain"),
        )),
    }
}

/// The site host the request came to (without port), lower-case.
fn request_host(req: &Request) -> Result<String> {
    Ok(req
        .url()?
        .host_str()
        .unwrap_or_default()
        .to_ascii_lowercase())
}

fn origin_refused(origin: &str) -> ApiError {
    let shown = if origin.is_empty() { "(none)" } else { origin };
    ApiError::new(
        403,
        "origin_not_allowed",
        format!("origin {shown} is not among this site's origins (SITE_ORIGINS)"),
    )
}

fn cors_headers(origin: &str) -> Result<Headers> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Origin", origin)?;
    headers.set("Access-Control-Allow-Credentials", "true")?;
    headers.set("Vary", "Origin")?;
    Ok(headers)
}
