//! The upload of `ttedge send`: chunks of event lines posted to the Worker's
//! `POST /admin/api/destinations/{host}/offline`, retried with backoff.
//!
//! A chunk holds at most core's [`MAX_UPLOAD_EVENTS`] lines and [`MAX_UPLOAD_BYTES`] of
//! body, the Worker's limits. 429 (after its `Retry-After`), 5xx and network errors are
//! retried with exponential backoff and jitter; any other answer but 202 stops the upload
//! with the Worker's JSON error.
//!
//! [`MAX_UPLOAD_EVENTS`]: ttedge_core::offline::MAX_UPLOAD_EVENTS
//! [`MAX_UPLOAD_BYTES`]: ttedge_core::offline::MAX_UPLOAD_BYTES

use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// The longest `Retry-After` honoured; a longer one is waited this long, then retried.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The Worker's answer to an upload: core's, the type the Worker writes it with.
pub type UploadAnswer = ttedge_core::answer::CollectAnswer<'static>;

/// Why an upload stopped.
#[derive(Debug)]
pub enum UploadError {
    /// The Worker refused the call (a 4xx other than 429, or an unexpected status).
    Refused {
        /// HTTP status.
        status: u16,
        /// The Worker's answer, as it came (a JSON error).
        body: String,
    },
    /// Every retry failed.
    GaveUp {
        /// Calls made.
        attempts: u32,
        /// What the last one got.
        last: String,
    },
    /// A 202 whose body is not the per-event answer.
    BadAnswer(String),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::Refused { status, body } => {
                write!(f, "the Worker refused the upload with {status}: {body}")
            }
            UploadError::GaveUp { attempts, last } => {
                write!(f, "gave up after {attempts} attempts; last: {last}")
            }
            UploadError::BadAnswer(what) => write!(f, "the Worker's answer: {what}"),
        }
    }
}

impl std::error::Error for UploadError {}

/// How failed calls are retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first call.
    pub retries: u32,
    /// The first wait; each retry doubles it.
    pub base: Duration,
    /// The longest backoff wait.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1 for the first): `base·2^(attempt-1)`, capped, of
    /// which a random half ("equal jitter"), so many senders do not retry in step.
    /// `random` is uniform in [0, 1).
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let doubled = self.base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let full = doubled.min(self.cap);
        full / 2 + full.mul_f64(random.clamp(0.0, 1.0) / 2.0)
    }
}

/// The line ranges of the chunks: in order, each at most `max_events` lines and, with a
/// line end after each line, at most `max_bytes`. A line longer than that alone goes in a
/// chunk of its own (the Worker refuses it with a 413 naming the limit).
pub fn chunks(lines: &[&str], max_events: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, line) in lines.iter().enumerate() {
        let size = line.len() + 1;
        let full = index - start == max_events.max(1) || bytes + size > max_bytes;
        if index > start && full {
            chunks.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < lines.len() {
        chunks.push(start..lines.len());
    }
    chunks
}

/// The seconds of a `Retry-After` header (the HTTP-date form is not used by the Worker).
fn retry_after(value: Option<&str>) -> Option<Duration> {
    let seconds: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// A client of one site's upload endpoint.
pub struct Client {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
    policy: RetryPolicy,
}

impl Client {
    /// A client posting to `{endpoint}/admin/api/destinations/{site}/offline` with the
    /// admin `token`.
    pub fn new(
        endpoint: &str,
        site: &str,
        token: String,
        policy: RetryPolicy,
    ) -> anyhow::Result<Client> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // 1,000 events are stored durably before the answer; generous for a slow link.
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("ttedge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            url: format!(
                "{}/admin/api/destinations/{site}/offline",
                endpoint.trim_end_matches('/')
            ),
            token,
            policy,
        })
    }

    /// Posts one chunk (lines joined by `\n`) until the Worker answers it, retrying as the
    /// policy says. `waiting` is told each wait and why, for the progress display.
    pub fn post(
        &self,
        body: String,
        mut waiting: impl FnMut(Duration, &str),
    ) -> Result<UploadAnswer, UploadError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(&self.url)
                .bearer_auth(&self.token)
                .header("Content-Type", "application/x-ndjson")
                .body(body.clone())
                .send();
            let (why, hinted) = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let hinted = retry_after(
                        response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()),
                    );
                    match (status, response.text()) {
                        (202, Ok(text)) => {
                            return serde_json::from_str(&text)
                                .map_err(|e| UploadError::BadAnswer(format!("{e}: {text}")))
                        }
                        (429 | 500..=599, Ok(text)) => {
                            (format!("{status}: {}", text.trim()), hinted)
                        }
                        // An answer cut off where it could be good or retried: sent again.
                        (202 | 429 | 500..=599, Err(error)) => {
                            (format!("{status} with an unreadable body: {error}"), hinted)
                        }
                        (_, text) => {
                            return Err(UploadError::Refused {
                                status,
                                body: text.map_or_else(
                                    |_| "<unreadable>".to_string(),
                                    |text| text.trim().to_string(),
                                ),
                            })
                        }
                    }
                }
                Err(error) => (network_error(&error), None),
            };
            self.wait(attempt, &why, hinted, &mut waiting)?;
        }
    }

    /// Waits before the next attempt, or gives up when the retries are spent.
    fn wait(
        &self,
        attempt: u32,
        why: &str,
        hinted: Option<Duration>,
        waiting: &mut impl FnMut(Duration, &str),
    ) -> Result<(), UploadError> {
        if attempt > self.policy.retries {
            return Err(UploadError::GaveUp {
                attempts: attempt,
                last: why.to_string(),
            });
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap_or_default();
        let random = (u64::from_le_bytes(random) >> 11) as f64 / (1u64 << 53) as f64;
        let pause = hinted.unwrap_or_else(|| self.policy.backoff(attempt, random));
        waiting(pause, why);
        std::thread::sleep(pause);
        Ok(())
    }
}

/// A network error with its causes (reqwest's own message is only the outermost), without
/// the URL's query (there is none) or any header.
fn network_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttedge_core::offline::{MAX_UPLOAD_BYTES, MAX_UPLOAD_EVENTS};

    #[test]
    fn chunks_hold_at_most_the_events_and_bytes() {
        let lines: Vec<String> = (0..2_500).map(|i| format!("{{\"n\":{i}}}")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let by_count = chunks(&lines, MAX_UPLOAD_EVENTS, MAX_UPLOAD_BYTES);
        assert_eq!(by_count, [0..1_000, 1_000..2_000, 2_000..2_500]);

        // Lines of 99 bytes and a line end: 10 fit in 1,000 bytes, the 11th does not.
        let long = "x".repeat(99);
        let lines = vec![long.as_str(); 25];
        assert_eq!(
            chunks(&lines, MAX_UPLOAD_EVENTS, 1_000),
            [0..10, 10..20, 20..25]
        );
        assert_eq!(
            chunks(&lines, MAX_UPLOAD_EVENTS, 999),
            [0..9, 9..18, 18..25]
        );

        // A line over the limit alone, in a chunk of its own.
        let huge = "y".repeat(2_000);
        let lines = vec!["a", huge.as_str(), "b"];
        assert_eq!(chunks(&lines, MAX_UPLOAD_EVENTS, 1_000), [0..1, 1..2, 2..3]);
        assert!(chunks(&[], MAX_UPLOAD_EVENTS, 1_000).is_empty());
    }

    #[test]
    fn chunks_of_real_events_fit_the_worker() {
        // 1 MiB over 1,000 events: rows of 1.2 KiB split on bytes before events.
        let line = format!(
            "{{\"event\":\"CompletePayment\",\"d\":\"{}\"}}",
            "z".repeat(1_200)
        );
        let lines = vec![line.as_str(); 3_000];
        let ranges = chunks(&lines, MAX_UPLOAD_EVENTS, MAX_UPLOAD_BYTES);
        assert_eq!(ranges.len(), 4, "{ranges:?}");
        for range in &ranges {
            let body = lines[range.clone()].join("\n");
            assert!(body.len() <= MAX_UPLOAD_BYTES);
            assert!(range.len() <= MAX_UPLOAD_EVENTS);
        }
        // Full chunks come as close to 1 MiB as a whole line allows.
        let first = lines[ranges[0].clone()].join("\n");
        assert!(first.len() + line.len() + 1 > MAX_UPLOAD_BYTES);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            retries: 8,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(250));
        assert!(policy.backoff(1, 0.999_999) < Duration::from_millis(500));
        assert!(policy.backoff(1, 0.999_999) > Duration::from_micros(499_990));
        assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(1_000));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(1_500));
        assert_eq!(policy.backoff(20, 0.0), Duration::from_secs(15));
        assert_eq!(policy.backoff(40, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_seconds_and_bounded() {
        assert_eq!(retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some("86400")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
