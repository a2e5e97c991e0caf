//! One call to TikTok's track endpoint, bounded by a time-out, classified by core.

use ttedge_core::tiktok::{classify, classify_transport_error, track_url, Verdict};
use worker::wasm_bindgen::JsValue;
use worker::{AbortSignal, Fetch, Headers, Method, Request, RequestInit};

use crate::runtime::now_ms;

/// What one call came to.
pub struct CallOutcome {
    /// Delivered, partially delivered, retry or reject, with TikTok's code and a hint.
    pub verdict: Verdict,
    /// HTTP status; 0 when no answer came.
    pub http_status: u16,
    /// From sending the request to the end of the answer's body.
    pub latency_ms: u64,
}

/// `POST {api_base}/open_api/v1.3/event/track/` with `Access-Token`.
pub async fn post_track(
    api_base: &str,
    access_token: &str,
    body: String,
    timeout_ms: u32,
) -> CallOutcome {
    let started = now_ms();
    let outcome = |verdict: Verdict, http_status| CallOutcome {
        verdict,
        http_status,
        latency_ms: now_ms().saturating_sub(started),
    };
    let request = match track_request(&track_url(api_base), access_token, body) {
        Ok(request) => request,
        Err(error) => return outcome(classify_transport_error(&error.to_string()), 0),
    };
    // `AbortSignal.timeout()` aborts the fetch, body read included, after the time-out.
    let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(timeout_ms));
    let transport_error = |error: worker::Error| {
        if signal.aborted() {
            format!("timed out after {timeout_ms} ms")
        } else {
            format!("network error: {error}")
        }
    };
    let mut response = match Fetch::Request(request).send_with_signal(&signal).await {
        Ok(response) => response,
        Err(error) => return outcome(classify_transport_error(&transport_error(error)), 0),
    };
    let status = response.status_code();
    match response.bytes().await {
        Ok(body) => outcome(classify(status, &body), status),
        Err(error) => outcome(classify_transport_error(&transport_error(error)), status),
    }
}

fn track_request(url: &str, access_token: &str, body: String) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Access-Token", access_token)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body)));
    Request::new_with_init(url, &init)
}
