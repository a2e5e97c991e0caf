//! The connection test: one request at once, within the same rate window as the send loop,
//! written down like any call, but never queued nor counted as an event.

use ttedge_core::connection;
use ttedge_core::delivery::{call_counts, Metric};
use ttedge_core::tiktok::request_body_spliced;
use worker::{Env, Response, Result};

use super::client::{TestAnswer, TestCall};
use super::send_loop::{delivery, post, record, window};
use super::storage::Storage;
use crate::error::ApiError;
use crate::runtime::now_ms;

/// Sends the test event; 429 with `retry_after_ms` when the rate window is full.
pub async fn send(storage: &Storage, env: &Env, test: &TestCall) -> Result<Response> {
    let delivery = match delivery(storage, env) {
        Ok(delivery) => delivery,
        Err(error) => return error.into_response(),
    };
    let now = now_ms();
    let state = storage.state()?;
    if let Err(free_at) = window(&state, delivery.rate_limit_per_minute).check(now) {
        return rate_limited(free_at.saturating_sub(now));
    }
    let key =
        ttedge_core::tiktok::RequestKey::web(&test.pixel_code, test.test_event_code.as_deref());
    let outcome = post(&delivery, request_body_spliced(key, [test.element.get()])).await;

    let now = now_ms();
    let mut state = storage.state()?;
    record(&mut state, &outcome, 1, now);
    state.count(now, [(Metric::Requests, 1)]);
    state.count(now, call_counts(&outcome.verdict));
    storage.save_state(&mut state, now)?;
    let read = connection::test_outcome(&outcome.verdict);
    Response::from_json(&TestAnswer {
        ok: read.ok,
        latency_ms: outcome.latency_ms,
        http_status: outcome.http_status,
        tiktok_code: read.tiktok_code,
        message: read.message,
        hint: read.hint,
    })
}

/// The answer when the token's rate window is full: the error, and when to try again.
#[derive(serde::Serialize)]
struct RateLimited {
    error: ApiError,
    retry_after_ms: u64,
}

fn rate_limited(retry_after_ms: u64) -> Result<Response> {
    let body = RateLimited {
        error: ApiError::new(
            429,
            "rate_limited",
            "the access token's rate window is full; try again after retry_after_ms",
        ),
        retry_after_ms,
    };
    let response = Response::from_json(&body)?.with_status(429);
    response.headers().set(
        "Retry-After",
        &retry_after_ms.div_ceil(1000).max(1).to_string(),
    )?;
    Ok(response)
}
