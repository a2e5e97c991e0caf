//! `POST /collect` and its CORS preflight: check, run core's pipeline, queue durably, answer.
//!
//! The answer (202) is sent only after the Dispatcher has stored the events, so a 202 means
//! the events are safe. A refused request queues nothing.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use ttedge_core::cod;
use ttedge_core::event::{parse_collect, MAX_BATCH_EVENTS};
use ttedge_core::health::is_conversion;
use ttedge_core::pipeline::{prepare, PreparedEvent, RequestContext, Status};
use ttedge_core::quality::MatchQuality;
use ttedge_core::tiktok::offline_event_set;
use worker::{Env, Headers, Request, Response, Result};

use crate::config::{self, SiteConfig};
use crate::dispatcher::{self, Intake, IntakeEvent};
use crate::error::ApiError;
use crate::runtime;

/// The largest body accepted (DESIGN: 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The 202 answer: how many events were queued, and each event's fate.
#[derive(Serialize)]
struct CollectAnswer<'a> {
    accepted: usize,
    /// `false` while the destination is being set up: events are scored and counted, not
    /// sent.
    live: bool,
    events: Vec<EventAnswer<'a>>,
}

/// One event in the answer.
#[derive(Serialize)]
pub(crate) struct EventAnswer<'a> {
    pub index: usize,
    /// The file line of an offline upload's CSV row; absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `None` only for an offline upload's line that could not be read.
    pub event_id: Option<&'a str>,
    /// `ready`, `skipped`, `held`, `rejected`, or `duplicate` when already received.
    pub status: &'a str,
    /// The TikTok event name.
    pub event: Option<&'a str>,
    pub reason: Option<Cow<'a, str>>,
    pub emq: Option<&'a MatchQuality>,
}

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

/// `POST /collect`, for the destination of the request's host.
pub async fn collect(req: Request, env: &Env) -> Result<Response> {
    let host = request_host(&req)?;
    let site = match config::for_host(env, &host).await {
        Ok(site) => site,
        Err(error) => return error.into_response(),
    };
    let origin = runtime::header(&req, "Origin")?;
    let response = match handle(req, env, &site, &host, origin.as_deref()).await {
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
    let answers = store_and_answer(env, site, &prepared.events, 0).await?;
    let response = Response::from_json(&CollectAnswer {
        accepted: answers.iter().filter(|a| a.status == "ready").count(),
        live: site.live,
        events: answers,
    })?
    .with_status(202);
    for cookie in &prepared.set_cookies {
        response.headers().append("Set-Cookie", cookie)?;
    }
    Ok(response)
}

/// Stores the ready events of `events` durably in the destination's Dispatcher (group
/// commit and dedup included) and answers each event: `ready`, `duplicate`, `skipped`,
/// `held` or `rejected`, in the order given. `rejected_before` counts events refused before
/// the pipeline (an offline upload's unreadable or out-of-date lines), for health.
pub(crate) async fn store_and_answer<'a>(
    env: &Env,
    site: &SiteConfig,
    events: &'a [PreparedEvent<'_>],
    rejected_before: u32,
) -> std::result::Result<Vec<EventAnswer<'a>>, ApiError> {
    let repeats = repeated_ids(events);
    let mut intake = intake(site, events, &repeats)?;
    intake.rejected += rejected_before;
    let duplicates = dispatcher::enqueue(env, site, &intake).await?.duplicates;
    events.iter().for_each(log_weak_match);
    Ok(events
        .iter()
        .zip(&repeats)
        .map(|(event, repeat)| answer_for(event, *repeat, &duplicates))
        .collect())
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

/// What the Dispatcher stores: the ready elements but repeats, and counts of the rest for
/// health.
fn intake(site: &SiteConfig, events: &[PreparedEvent<'_>], repeats: &[bool]) -> Result<Intake> {
    let mut intake = Intake {
        live: site.live,
        pixel_code: site.destination.pixel_id.clone(),
        test_event_code: site.destination.test_event_code.clone(),
        cod_days: site.cod_days,
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
        });
    }
    Ok(intake)
}

/// Under its threshold, an event's coaching goes to the log as well as the answer, so an
/// operator sees what to fix without the page's developer console. No personal data: only
/// the id, the name, the score and the missing factors.
fn log_weak_match(event: &PreparedEvent<'_>) {
    let Some(emq) = event.emq.as_ref().filter(|emq| emq.below_threshold()) else {
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
    duplicates: &[String],
) -> EventAnswer<'a> {
    let duplicate = repeat
        || (event.status == Status::Ready && duplicates.iter().any(|id| *id == event.event_id));
    let status = match event.status {
        Status::Ready if duplicate => "duplicate",
        Status::Ready => "ready",
        Status::Skipped => "skipped",
        Status::Held => "held",
        Status::Rejected => "rejected",
    };
    EventAnswer {
        index: event.index,
        line: None,
        event_id: Some(&event.event_id),
        status,
        event: event.event_name.as_deref(),
        reason: match (repeat, duplicate) {
            (true, _) => Some(Cow::Borrowed(
                "an earlier event of this request has this event_id; not queued again",
            )),
            (false, true) => Some(Cow::Borrowed(
                "already received with this event_id; not queued again",
            )),
            (false, false) => event.reason.as_deref().map(Cow::Borrowed),
        },
        emq: event.emq.as_ref(),
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
