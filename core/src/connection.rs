//! The admin API's connection test: the test event, the site-host check, and how TikTok's
//! answer reads for a person.
//!
//! The test event is a minimal `ViewContent` built through [`prepare_request`], exactly as a
//! page's event would be: no personal data, no browser context, so it scores low and its
//! coaching says what real events should carry.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use serde::Serialize;

use crate::event::CollectEvent;
use crate::pipeline::{prepare_request, Destination, PreparedEvent, RequestContext};
use crate::tiktok::Verdict;

/// The answer's `message` when TikTok took the test event.
pub const SUCCESS_MESSAGE: &str = "Connection test successful!";

/// Prefix of a test event's id; the rest is random hex.
pub const TEST_EVENT_ID_PREFIX: &str = "ttedge-test-";

/// The path of the test event's page on the site host.
pub const TEST_PAGE_PATH: &str = "/ttedge-connection-test";

/// Whether `host` is a syntactically valid site host: DNS labels of letters, digits and
/// inner hyphens (1–63 characters each, 253 in all), optionally with `:port`. Case is
/// ignored; no scheme, path, user info or trailing dot.
pub fn is_site_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if port.parse::<u32>().map_or(true, |p| p == 0 || p > 65_535) {
            return false;
        }
    }
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// The connection test's event for `host`: `ViewContent` with id
/// `ttedge-test-<16 hex digits>` and page `https://<host>/ttedge-connection-test`, through
/// the same rules as any event (so it is ready, and scored as a browser event).
pub fn test_event(
    host: &str,
    now_ms: u64,
    random: [u8; 8],
    destination: &Destination,
) -> PreparedEvent<'static> {
    let event_id = format!("{TEST_EVENT_ID_PREFIX}{}", hex::encode(random));
    let url = format!("https://{}{TEST_PAGE_PATH}", host.to_ascii_lowercase());
    let mut event = CollectEvent::default();
    event.event = Some(Cow::Borrowed("ViewContent"));
    event.event_id = Some(Cow::Owned(event_id));
    event.url = Some(Cow::Owned(url));
    let ctx = RequestContext {
        now_ms,
        ..RequestContext::default()
    };
    let mut prepared = prepare_request(vec![event], &ctx, destination);
    // One event in, one event out.
    prepared.events.remove(0)
}

/// TikTok's answer to the test, for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestOutcome {
    /// Whether TikTok took the event (`code == 0`).
    pub ok: bool,
    /// TikTok's `code`, when the answer had one (0 on success).
    pub tiktok_code: Option<i64>,
    /// [`SUCCESS_MESSAGE`], or TikTok's code and message.
    pub message: String,
    /// What to do about a failure; `None` on success.
    pub hint: Option<String>,
}

/// Reads a test call's verdict. A partial success of a one-event request means the event
/// was refused, so only [`Verdict::Delivered`] is a success.
pub fn test_outcome(verdict: &Verdict) -> TestOutcome {
    match verdict.failure() {
        None => TestOutcome {
            ok: true,
            tiktok_code: Some(0),
            message: SUCCESS_MESSAGE.to_string(),
            hint: None,
        },
        Some(failure) => TestOutcome {
            ok: false,
            tiktok_code: failure.code,
            message: match failure.code {
                Some(code) => format!("TikTok answered code {code}: {}", failure.message),
                None if failure.http_status == 0 => failure.message.clone(),
                None => format!("HTTP {}: {}", failure.http_status, failure.message),
            },
            hint: Some(failure.hint.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::NameRules;
    use crate::pipeline::Status;
    use crate::quality::{Factor, Grade};
    use crate::tiktok::classify;

    fn destination() -> Destination {
        Destination {
            pixel_id: "C4TEST".into(),
            test_event_code: Some("TEST123".into()),
            names: NameRules::default(),
        }
    }

    #[test]
    fn site_hosts() {
        for ok in [
            "t.shop.com",
            "T.Shop.COM",
            "localhost",
            "127.0.0.1",
            "t.shop.com:8443",
            "a-b.c",
        ] {
            assert!(is_site_host(ok), "{ok}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            "https://t.shop.com",
            "t.shop.com/x",
            "-a.com",
            "a-.com",
            "a..com",
            "a.com.",
            "a.com:",
            "a.com:0",
            "a.com:70000",
            "a b.com",
            "user@a.com",
            "%2e.com",
            long_label.as_str(),
        ] {
            assert!(!is_site_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_test_event_is_a_minimal_view_content_that_scores_low() {
        let event = test_event("T.Shop.com", 1_764_064_800_000, [0xab; 8], &destination());
        assert_eq!(event.status, Status::Ready);
        assert_eq!(event.event_id, "ttedge-test-abababababababab");
        assert_eq!(event.event_name.as_deref(), Some("ViewContent"));
        let element = event.tiktok.as_ref().expect("ready");
        assert_eq!(element.event, "ViewContent");
        assert_eq!(element.event_time, 1_764_064_800);
        assert_eq!(
            element.page.url.as_deref(),
            Some("https://t.shop.com/ttedge-connection-test")
        );
        let json = serde_json::to_value(element).unwrap();
        let user = &json["user"];
        for pii in ["email", "phone", "external_id", "ttp", "ip", "user_agent"] {
            assert!(user.get(pii).is_none(), "no {pii}: {json}");
        }
        let emq = event.emq.expect("scored");
        assert_eq!(emq.grade, Grade::NeedsImprovement);
        assert!(emq.score.0 < 7_000);
        assert_eq!(emq.coaching[0].factor, Factor::Email, "heaviest gain first");
    }

    #[test]
    fn outcomes_read_for_a_person() {
        let ok = test_outcome(&classify(200, br#"{"code":0,"message":"OK"}"#));
        assert!(ok.ok);
        assert_eq!(ok.message, SUCCESS_MESSAGE);
        assert_eq!(ok.hint, None);

        let token = test_outcome(&classify(
            200,
            br#"{"code":40001,"message":"No permission"}"#,
        ));
        assert!(!token.ok);
        assert_eq!(token.tiktok_code, Some(40001));
        assert_eq!(token.message, "TikTok answered code 40001: No permission");
        assert!(token.hint.unwrap().contains("regenerate"));

        let pixel = test_outcome(&classify(200, br#"{"code":40002,"message":"Invalid"}"#));
        assert!(pixel.hint.unwrap().contains("pixel ID"));

        let gateway = test_outcome(&classify(503, b"<html>Service Unavailable</html>"));
        assert!(!gateway.ok);
        assert_eq!(gateway.tiktok_code, None);
        assert!(
            gateway.message.starts_with("HTTP 503"),
            "{}",
            gateway.message
        );

        let partial = test_outcome(&classify(200, br#"{"code":20001,"message":"partial"}"#));
        assert!(!partial.ok, "the only event was refused");
    }
}
