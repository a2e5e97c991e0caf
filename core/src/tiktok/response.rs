//! Reading TikTok's answer: delivered, partially delivered, retry, or reject.
//!
//! TikTok reports most errors with HTTP 200 and a non-zero `code` in the body, and gateway
//! errors as 5xx with an HTML body, so the status alone says little.

use alloc::string::{String, ToString};
use serde::{Deserialize, Serialize};

/// TikTok's "partial success" code: some events of the request were refused.
pub const CODE_PARTIAL: i64 = 20001;
/// No permission: a wrong, expired or under-privileged access token.
pub const CODE_NO_PERMISSION: i64 = 40001;
/// A bad parameter somewhere in the request.
pub const CODE_BAD_PARAMETER: i64 = 40002;
/// Too many requests for this access token.
pub const CODE_RATE_LIMITED: i64 = 40100;
/// An invalid access token.
pub const CODE_INVALID_TOKEN: i64 = 40105;
/// TikTok-side internal error.
pub const CODE_INTERNAL: i64 = 50000;
/// TikTok-side service error.
pub const CODE_SERVICE: i64 = 50002;

/// What to do with a request's events after TikTok answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// `code == 0`: every event was taken.
    Delivered,
    /// Code 20001: TikTok took the request but refused some events.
    PartiallyDelivered(Failure),
    /// Worth another attempt later.
    Retry(Failure),
    /// Will fail the same way again: park (or split, see [`Verdict::should_split`]).
    Reject(Failure),
}

impl Verdict {
    /// A refused batch of several events may hide one bad event among good ones: split it.
    pub fn should_split(&self, batch_len: usize) -> bool {
        matches!(self, Verdict::Reject(f) if f.code == Some(CODE_BAD_PARAMETER) && batch_len > 1)
    }

    /// The failure, unless everything was delivered.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Verdict::Delivered => None,
            Verdict::PartiallyDelivered(f) | Verdict::Retry(f) | Verdict::Reject(f) => Some(f),
        }
    }
}

/// What went wrong, for the parked event and the person reading the health page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// HTTP status, 0 when no answer came (network error, time-out).
    pub http_status: u16,
    /// TikTok's `code`, when the body had one.
    pub code: Option<i64>,
    /// TikTok's `message`, or a description of the transport error.
    pub message: String,
    /// What a person should do about it.
    pub hint: String,
}

#[derive(Deserialize)]
struct Answer {
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// The most characters of a body kept as a message; gateway pages can be long HTML.
const MAX_MESSAGE_CHARS: usize = 200;

/// Classifies one answer from the track endpoint.
pub fn classify(http_status: u16, body: &[u8]) -> Verdict {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    let code = answer.as_ref().and_then(|a| a.code);
    let message = match answer.and_then(|a| a.message) {
        Some(message) => message,
        None => excerpt(body),
    };
    let failure = |hint: &str| Failure {
        http_status,
        code,
        message: message.clone(),
        hint: hint.to_string(),
    };
    match http_status {
        429 => return Verdict::Retry(failure(hint(Some(CODE_RATE_LIMITED)))),
        500..=599 => {
            return Verdict::Retry(failure(
                "TikTok or its gateway failed (HTTP 5xx), usually briefly: retried with backoff, and parked for replay if it persists.",
            ))
        }
        400..=499 => {
            return Verdict::Reject(failure(match code {
                Some(_) => hint(code),
                None => "TikTok refused the request; check TIKTOK_API_BASE and the access token.",
            }))
        }
        200..=299 => {}
        _ => {
            return Verdict::Retry(failure(
                "TikTok answered with an unexpected HTTP status: retried, and parked for replay if it persists.",
            ))
        }
    }
    match code {
        Some(0) => Verdict::Delivered,
        Some(CODE_PARTIAL) => Verdict::PartiallyDelivered(failure(hint(code))),
        Some(CODE_RATE_LIMITED | CODE_INTERNAL | CODE_SERVICE) => {
            Verdict::Retry(failure(hint(code)))
        }
        Some(_) => Verdict::Reject(failure(hint(code))),
        // A success status with no code is not TikTok's API speaking (a proxy page, say).
        None => Verdict::Retry(failure(
            "TikTok's answer had no `code`: check TIKTOK_API_BASE. Retried, and parked for replay if it persists.",
        )),
    }
}

/// A failure with no answer at all: network error or time-out. Always retried.
pub fn classify_transport_error(description: &str) -> Verdict {
    Verdict::Retry(Failure {
        http_status: 0,
        code: None,
        message: description.chars().take(MAX_MESSAGE_CHARS).collect(),
        hint: "TikTok could not be reached (network error or time-out): retried, and parked for replay if it persists."
            .into(),
    })
}

/// The hint for a person, by TikTok code.
pub fn hint(code: Option<i64>) -> &'static str {
    match code {
        Some(CODE_PARTIAL) => {
            "TikTok refused some events of the request; check their fields (event names, times, ids)."
        }
        Some(CODE_NO_PERMISSION) => {
            "No permission: regenerate the access token in TikTok Events Manager and check it belongs to this pixel."
        }
        Some(CODE_BAD_PARAMETER) => {
            "Bad parameter: check the pixel ID and the event's fields."
        }
        Some(CODE_RATE_LIMITED) => {
            "Rate limit: too many requests for this access token. Retried; lower RATE_LIMIT_PER_MINUTE if it persists."
        }
        Some(CODE_INVALID_TOKEN) => {
            "Invalid access token: regenerate it in TikTok Events Manager."
        }
        Some(CODE_INTERNAL | CODE_SERVICE) => {
            "TikTok-side error: retried, and parked for replay if it persists."
        }
        _ => "TikTok refused the request; see its message.",
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        String::from("(empty body)")
    } else {
        text.chars().take(MAX_MESSAGE_CHARS).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: i64) -> alloc::string::String {
        alloc::format!(r#"{{"code":{code},"message":"msg {code}","request_id":"r1","data":{{}}}}"#)
    }

    #[test]
    fn code_zero_is_delivered() {
        assert_eq!(classify(200, body(0).as_bytes()), Verdict::Delivered);
    }

    #[test]
    fn partial_success() {
        let verdict = classify(200, body(20001).as_bytes());
        assert!(matches!(verdict, Verdict::PartiallyDelivered(ref f) if f.code == Some(20001)));
    }

    #[test]
    fn retried_codes_and_statuses() {
        for code in [40100, 50000, 50002] {
            assert!(
                matches!(classify(200, body(code).as_bytes()), Verdict::Retry(_)),
                "{code}"
            );
        }
        for status in [500, 502, 503, 504, 429] {
            let verdict = classify(status, b"<html>Bad Gateway</html>");
            assert!(matches!(verdict, Verdict::Retry(_)), "{status}");
        }
        let verdict = classify(502, b"<html>Bad Gateway</html>");
        assert_eq!(
            verdict.failure().unwrap().message,
            "<html>Bad Gateway</html>"
        );
    }

    #[test]
    fn rejected_codes_carry_hints() {
        let verdict = classify(200, body(40001).as_bytes());
        let failure = verdict.failure().unwrap();
        assert!(matches!(verdict, Verdict::Reject(_)));
        assert_eq!(failure.message, "msg 40001");
        assert!(failure.hint.contains("regenerate the access token"));
        assert!(matches!(
            classify(200, body(40105).as_bytes()),
            Verdict::Reject(_)
        ));
        let bad_param = classify(200, body(40002).as_bytes());
        assert!(bad_param.failure().unwrap().hint.contains("pixel ID"));
        assert!(bad_param.should_split(2));
        assert!(!bad_param.should_split(1));
    }

    #[test]
    fn other_4xx_are_rejected() {
        for status in [400, 401, 403, 404] {
            assert!(
                matches!(classify(status, b"nope"), Verdict::Reject(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn success_status_without_code_is_retried() {
        assert!(matches!(
            classify(200, b"<html>captive portal</html>"),
            Verdict::Retry(_)
        ));
        assert!(matches!(classify(200, b""), Verdict::Retry(_)));
    }

    #[test]
    fn transport_errors_are_retried() {
        let verdict = classify_transport_error("timed out after 10000 ms");
        assert_eq!(verdict.failure().unwrap().http_status, 0);
        assert!(matches!(verdict, Verdict::Retry(_)));
    }
}
