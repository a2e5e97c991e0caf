//! `POST /admin/api/destinations/{host}/offline`: an upload of offline conversions as JSON
//! Lines of collect-API events (issue 13, "The upload endpoint").
//!
//! Every line is one event, read as `/collect` reads a body of one event, and forced to
//! `source: "offline"`: the request's headers (IP, user agent, Accept-Language) and cookies
//! describe the uploading machine, not the customer, so they are never given to the
//! pipeline. Then the line goes through core's pipeline and into the destination's
//! Dispatcher through the same [`store_and_answer`] as `/collect`, so a resent event_id is
//! answered `duplicate`.
//!
//! On top of `/collect`'s checks, an offline event is rejected when it has no timestamp, is
//! dated in the future, or is older than `OFFLINE_MAX_AGE_DAYS` (a Worker var, 28 by default:
//! what TikTok accepts for offline events). One without an email, phone or external_id is
//! rejected by core's pipeline, as on `/collect`.
//!
//! The answer indexes events by their position among the body's non-blank lines, from 0. A
//! line that cannot be read is rejected alone; the whole call is refused only for auth, a
//! body over [`MAX_BODY_BYTES`] or [`MAX_EVENTS`] (413), or an unknown host.

use std::borrow::Cow;

use serde::Serialize;
use ttedge_core::event::{parse_collect, CollectEvent, Source};
use ttedge_core::offline::{check_date, DAY_MS, MAX_AGE_MS};
use ttedge_core::pipeline::{prepare, RequestContext};
use worker::{Env, Request, Response};

use crate::collect::{store_and_answer, EventAnswer};
use crate::config::{self, SiteConfig};
use crate::error::ApiError;
use crate::runtime;

/// The most events one upload may carry.
pub const MAX_EVENTS: usize = 1_000;
/// The largest upload body: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The Worker var that sets the oldest accepted event, in days.
pub const MAX_AGE_VAR: &str = "OFFLINE_MAX_AGE_DAYS";

/// The answer: as `/collect`'s.
#[derive(Serialize)]
struct UploadAnswer<'a> {
    accepted: usize,
    live: bool,
    events: Vec<EventAnswer<'a>>,
}

/// `POST /admin/api/destinations/{host}/offline`, the caller already authenticated.
pub async fn upload(mut req: Request, env: &Env, host: &str) -> Result<Response, ApiError> {
    let site = config::for_host(env, host).await?;
    let max_age_ms = max_age_ms(config::var(env, MAX_AGE_VAR).as_deref())?;
    let body = runtime::read_body(&mut req, MAX_BODY_BYTES)
        .await?
        .ok_or_else(|| ApiError::body_too_large(MAX_BODY_BYTES))?;
    let lines = non_blank_lines(&body);
    if lines.len() > MAX_EVENTS {
        return Err(ApiError::new(
            413,
            "too_many_events",
            format!(
                "{} events (non-blank lines); at most {MAX_EVENTS} are accepted per call",
                lines.len()
            ),
        ));
    }
    let now_ms = runtime::now_ms();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);

    // Each line: an event for the pipeline, or the reason it is rejected before it.
    let mut events = Vec::new();
    let mut line_of = Vec::new();
    let mut refused: Vec<(usize, String)> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        match read_line(line, now, max_age_ms) {
            Ok(event) => {
                events.push(event);
                line_of.push(index);
            }
            Err(reason) => refused.push((index, reason)),
        }
    }

    // Offline: no header, no cookie, no new `_ttp`; only the events' own fields count.
    let ctx = RequestContext {
        now_ms,
        ttp_random: None,
        id_random: runtime::random_bytes()?,
        ..RequestContext::default()
    };
    // Core's pipeline rejects an offline event without an email, phone or external_id.
    let mut prepared = prepare(&events, &ctx, &site.destination).events;
    for event in &mut prepared {
        event.index = line_of.get(event.index).copied().unwrap_or(event.index);
    }
    let mut answers = store_and_answer(
        env,
        &site,
        &prepared,
        u32::try_from(refused.len()).unwrap_or(0),
    )
    .await?;
    answers.extend(refused.iter().map(|(index, reason)| EventAnswer {
        index: *index,
        event_id: None,
        status: "rejected",
        event: None,
        reason: Some(Cow::Borrowed(reason.as_str())),
        emq: None,
    }));
    answers.sort_by_key(|answer| answer.index);
    answer(&site, answers)
}

fn answer(site: &SiteConfig, events: Vec<EventAnswer<'_>>) -> Result<Response, ApiError> {
    Ok(Response::from_json(&UploadAnswer {
        accepted: events.iter().filter(|a| a.status == "ready").count(),
        live: site.live,
        events,
    })?
    .with_status(202))
}

/// The body's lines that hold anything but whitespace, without their line ends (LF or CRLF).
fn non_blank_lines(body: &[u8]) -> Vec<&[u8]> {
    body.split(|&b| b == b'\n')
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// `OFFLINE_MAX_AGE_DAYS` in milliseconds: a whole number of days from 1 to 365, 28 when
/// unset.
fn max_age_ms(var: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = var else {
        return Ok(MAX_AGE_MS);
    };
    match text.trim().parse::<i64>() {
        Ok(days) if (1..=365).contains(&days) => Ok(days * DAY_MS),
        _ => Err(ApiError::new(
            503,
            "misconfigured",
            format!("{MAX_AGE_VAR} must be a whole number of days from 1 to 365"),
        )),
    }
}

/// One line as an offline event, or why it is rejected: unreadable, without a timestamp,
/// in the future or too old.
fn read_line(line: &[u8], now_ms: i64, max_age_ms: i64) -> Result<CollectEvent<'_>, String> {
    let mut event = parse_collect(line, 1)
        .map_err(|error| error.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "holds no event".to_string())?;
    event.source = Some(Source::Offline);
    check_date(event.timestamp.map(|t| t.0), now_ms, max_age_ms).map_err(|e| e.to_string())?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blank_ones_and_keep_crlf_readable() {
        let body = b"{\"a\":1}\r\n\r\n  \n{\"b\":2}\n\t\n{\"c\":3}";
        let lines = non_blank_lines(body);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], b"{\"a\":1}\r");
        assert_eq!(lines[2], b"{\"c\":3}");
        assert!(non_blank_lines(b"\n\r\n ").is_empty());
    }

    #[test]
    fn max_age_defaults_to_28_days_and_refuses_nonsense() {
        assert_eq!(max_age_ms(None).ok(), Some(28 * DAY_MS));
        assert_eq!(max_age_ms(Some("7")).ok(), Some(7 * DAY_MS));
        for bad in ["0", "-3", "366", "2.5", "many"] {
            assert!(max_age_ms(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_line_is_forced_offline_and_a_bad_one_says_why() {
        let now = 1_800_000_000_000;
        let line = format!(
            r#"{{"event":"CompletePayment","timestamp":{},"source":"browser"}}"#,
            now - 1_000
        );
        let event = read_line(line.as_bytes(), now, MAX_AGE_MS).expect("a valid line");
        assert_eq!(event.source, Some(Source::Offline));
        let reason = read_line(b"{\"event\":", now, MAX_AGE_MS).err();
        assert!(reason.is_some_and(|r| r.contains("malformed JSON")));
        let old = format!(
            r#"{{"event":"CompletePayment","timestamp":{}}}"#,
            now - 29 * DAY_MS
        );
        let reason = read_line(old.as_bytes(), now, MAX_AGE_MS).err();
        assert!(reason.is_some_and(|r| r.starts_with("too old")));
    }
}
