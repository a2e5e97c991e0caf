//! The soak run: many events from concurrent clients through `wrangler dev`, a TikTok that
//! fails a third of its calls, and `kill -9`s of the whole Worker in the middle of it. Then it
//! drains the queue, replays what was parked, drains again, and counts what TikTok received.
//!
//! `tests/tests/soak.rs` runs it with the small defaults of [`SoakConfig`] in `make test`;
//! `make soak` (`scripts/soak.sh`) raises it with `SOAK_*` environment variables.
//!
//! What is counted as delivered, on the mock's side: the events of a request answered with
//! code 0, and of a request the mock held longer than the Worker's time-out before answering
//! code 0 (TikTok may keep the events of a call whose answer the client never saw). An
//! event's second delivered copy is a duplicate, classified by what happened between the
//! two copies:
//!
//! - `hang`: the earlier copy was in a request the Worker timed out on (it resent what TikTok
//!   had kept);
//! - `crash`: the Worker was killed between the earlier copy's arrival and the resend (TikTok
//!   answered, the Worker died before it recorded the answer);
//! - anything else is unexplained, and the test fails on it.
//!
//! The mock keeps only a lean log of each request (arrival, answer, event ids) and forgets
//! the bodies every few seconds, so a run of 100,000 events does not hold gigabytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::mock::{tiktok_body, MockResponse, MockTikTok, RecordedRequest, SeededRng};
use crate::worker::{http_client, WranglerDev, WranglerDevOptions};

/// The admin token the soak's Worker is started with.
pub const ADMIN_TOKEN: &str = "soak-admin-token-0123456789abcdef";
/// The default destination's access token.
pub const ACCESS_TOKEN: &str = "soak-access-token-0123456789abcdef";
/// The default destination's pixel.
pub const PIXEL_ID: &str = "C4SOAK00000000000000";
/// `MASTER_KEY` (unused by the default destination, set as in production).
pub const MASTER_KEY: &str = "3a7c1e5f9b2d4068ace13579bdf02468a1c3e5f7092b4d6f8e0a2c4e6b8d0f13";
/// The site host of the admin routes (no stored destination: it resolves to the default).
pub const HOST: &str = "t.soak.example";
/// Mixed into the seed for TikTok's answers, so they do not follow the load's batch sizes.
pub const ANSWER_SALT: u64 = 0x0071_170C;
/// The most events the collect API takes in one request.
pub const MAX_BATCH: u64 = 100;

/// Give up on one `/collect` request after this many tries (a restart takes seconds, and
/// the client waits at most a second between tries).
const MAX_ATTEMPTS: u32 = 600;
/// ... or after this long.
const POST_DEADLINE: Duration = Duration::from_secs(600);

/// How big the run is, and how TikTok and the Worker are set up.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Events posted in all (`SOAK_EVENTS`).
    pub events: usize,
    /// SIGKILLs of the whole `wrangler dev` process group during the load (`SOAK_KILLS`).
    pub kills: usize,
    /// Concurrent clients (`SOAK_CLIENTS`).
    pub clients: usize,
    /// Seed of the load's batch sizes and of TikTok's answers (`SOAK_SEED`).
    pub seed: u64,
    /// The Worker's `RATE_LIMIT_PER_MINUTE` (`SOAK_RATE_LIMIT`). Below the rate the
    /// Dispatcher would send at, so that the window binds: it makes about 200 requests a
    /// minute under this load, and the small run about 30 in all. `make soak` sets 120.
    pub rate_limit_per_minute: u32,
    /// The Worker's `TIKTOK_TIMEOUT_MS` (`SOAK_TIMEOUT_MS`).
    pub timeout_ms: u64,
    /// How long a hung TikTok call is held before it answers success (`SOAK_HANG_MS`); longer
    /// than the time-out.
    pub hang_ms: u64,
    /// Share of the requests, in percent, that carry one bare event instead of a batch.
    pub single_percent: u64,
}

impl Default for SoakConfig {
    /// The small run of `make test`: 5,000 events, one kill.
    fn default() -> Self {
        SoakConfig {
            events: 5_000,
            kills: 1,
            clients: 8,
            seed: 20_260_501,
            rate_limit_per_minute: 20,
            timeout_ms: 2_000,
            hang_ms: 3_000,
            single_percent: 30,
        }
    }
}

impl SoakConfig {
    /// The defaults, with each `SOAK_*` variable that is set taking its place.
    pub fn from_env() -> anyhow::Result<Self> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => text
                    .trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{name}={text:?}: {e}")),
                _ => Ok(default),
            }
        }
        let d = SoakConfig::default();
        let cfg = SoakConfig {
            events: var("SOAK_EVENTS", d.events)?,
            kills: var("SOAK_KILLS", d.kills)?,
            clients: var("SOAK_CLIENTS", d.clients)?,
            seed: var("SOAK_SEED", d.seed)?,
            rate_limit_per_minute: var("SOAK_RATE_LIMIT", d.rate_limit_per_minute)?,
            timeout_ms: var("SOAK_TIMEOUT_MS", d.timeout_ms)?,
            hang_ms: var("SOAK_HANG_MS", d.hang_ms)?,
            single_percent: d.single_percent,
        };
        if cfg.events == 0 || cfg.clients == 0 || cfg.rate_limit_per_minute == 0 {
            bail!("SOAK_EVENTS, SOAK_CLIENTS and SOAK_RATE_LIMIT must be positive: {cfg:?}");
        }
        if cfg.hang_ms <= cfg.timeout_ms {
            bail!("SOAK_HANG_MS must be longer than SOAK_TIMEOUT_MS: {cfg:?}");
        }
        Ok(cfg)
    }

    /// How long each drain may take. The rate limit bounds delivery: at 1,000 events per
    /// request and 40 % of the calls failing, about one request per 600 events. This allows
    /// three times that, and 3 minutes more: a bound for a wedged queue, not a target.
    pub fn drain_timeout(&self) -> Duration {
        let requests = self.events as f64 / 600.0;
        let minutes = requests / f64::from(self.rate_limit_per_minute);
        Duration::from_secs(180) + Duration::from_secs_f64(3.0 * minutes * 60.0)
    }
}

/// TikTok's answers and their weights (of 100): 40 % of the calls fail. Every failure is one
/// the Worker retries, so an event is parked only after four failed calls in a row.
pub fn tiktok_answers(hang: Duration) -> Vec<(u32, MockResponse)> {
    vec![
        (60, MockResponse::ok()),
        // Gateway pages in HTML.
        (6, MockResponse::failure(502)),
        (4, MockResponse::failure(503)),
        // A 5xx with TikTok's JSON envelope.
        (
            5,
            MockResponse::json(500, &tiktok_body(50000, "Internal error (mock)")),
        ),
        // HTTP 429 with code 40100.
        (6, MockResponse::failure(429)),
        // HTTP 200 with an error code.
        (6, MockResponse::tiktok(40100, "Too many requests (mock)")),
        (6, MockResponse::tiktok(50000, "System error (mock)")),
        // Longer than the Worker's time-out, then success: TikTok kept the events.
        (7, MockResponse::ok().with_delay(hang)),
    ]
}

/// What the mock answered one request, as the soak counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// Code 0 within the time-out: delivered.
    Ok,
    /// Code 0 after the Worker's time-out: delivered too (TikTok kept the events), but the
    /// Worker saw a time-out and sends them again.
    Kept,
    /// HTTP 5xx with an HTML page.
    Html5xx,
    /// HTTP 5xx with a JSON body.
    Json5xx,
    /// HTTP 429.
    Http429,
    /// HTTP 200 with code 40100.
    Code40100,
    /// HTTP 200 with code 50000.
    Code50000,
    /// Anything else (a dropped connection, another code).
    Other,
}

impl Answer {
    /// Classifies the mock's answer, given the Worker's time-out.
    pub fn of(answer: &MockResponse, timeout: Duration) -> Answer {
        match answer {
            MockResponse::Reply {
                status,
                body,
                content_type,
                delay,
            } => {
                if answer.is_success() {
                    return if *delay >= timeout {
                        Answer::Kept
                    } else {
                        Answer::Ok
                    };
                }
                let code = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(Value::as_i64));
                match (*status, code) {
                    (500..=599, _) if content_type.contains("html") => Answer::Html5xx,
                    (500..=599, _) => Answer::Json5xx,
                    (429, _) => Answer::Http429,
                    (200, Some(40100)) => Answer::Code40100,
                    (200, Some(50000)) => Answer::Code50000,
                    _ => Answer::Other,
                }
            }
            _ => Answer::Other,
        }
    }

    /// Whether the mock counts the request's events as received by TikTok.
    pub fn delivered(self) -> bool {
        matches!(self, Answer::Ok | Answer::Kept)
    }

    /// Whether the Worker sees the call as failed (and retries it).
    pub fn failed(self) -> bool {
        self != Answer::Ok
    }

    /// A short name for summaries.
    pub fn label(self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::Kept => "hang then ok",
            Answer::Html5xx => "5xx html",
            Answer::Json5xx => "5xx json",
            Answer::Http429 => "429",
            Answer::Code40100 => "200 code 40100",
            Answer::Code50000 => "200 code 50000",
            Answer::Other => "other",
        }
    }
}

/// One request as the soak remembers it.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When it reached the mock.
    pub at: Instant,
    /// What the mock answered.
    pub answer: Answer,
    /// The event ids of its `data[]`.
    pub event_ids: Vec<String>,
}

/// One planned `POST /collect`.
#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    /// One bare event (`{"event": …}`) rather than `{"batch": [...]}`.
    pub single: bool,
    /// The event ids, all distinct across the run.
    pub event_ids: Vec<String>,
}

/// The requests of client `client`: its share of the events, in batches of 2 to 100 events
/// or, `single_percent` of the time, one bare event. The same config gives the same plan.
pub fn plan(cfg: &SoakConfig, client: usize) -> Vec<Post> {
    let share = cfg.events / cfg.clients + usize::from(client < cfg.events % cfg.clients);
    let mut rng = SeededRng::new(cfg.seed ^ (0xC11E_4700 + client as u64));
    let mut posts = Vec::new();
    let mut n = 0;
    while n < share {
        let single = rng.percent(cfg.single_percent);
        let size = if single {
            1
        } else {
            rng.between(2, MAX_BATCH) as usize
        };
        let size = size.min(share - n);
        let event_ids = (n..n + size)
            .map(|i| format!("soak-{}-{client}-{i:06}", cfg.seed))
            .collect();
        posts.push(Post { single, event_ids });
        n += size;
    }
    posts
}

/// The body of a planned request, as a shop's server would send it.
pub fn body(post: &Post) -> String {
    let events: Vec<Value> = post
        .event_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "event": "purchase",
                "event_id": id,
                "user_data": {"email": format!("{id}@example.com")},
                "properties": {"value": 1 + (i % 50), "currency": "USD"},
                "consent": {"sendable_to_ads": true, "ad_storage": "granted", "ad_user_data": "granted"}
            })
        })
        .collect();
    match (post.single, events.as_slice()) {
        (true, [event]) => event.to_string(),
        _ => json!({ "batch": events }).to_string(),
    }
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientTally {
    /// Requests answered 202.
    pub answered: usize,
    /// POSTs sent, retries included.
    pub attempts: usize,
    /// Tries that got no answer (connection refused or reset, time-out).
    pub network_errors: usize,
    /// Tries answered 5xx by the Worker (or by wrangler while it restarted).
    pub worker_5xx: usize,
    /// Events answered `ready`.
    pub ready: Vec<String>,
    /// Events answered `duplicate` on a resend: an earlier try stored them, and its answer was
    /// lost (the Worker was killed before it could answer).
    pub resent_duplicates: Vec<String>,
    /// Events with any other answer (`event_id: status`), or `duplicate` on a first try.
    pub unexpected: Vec<String>,
    /// Requests refused (4xx) or never answered, with why.
    pub failed: Vec<String>,
}

impl ClientTally {
    fn merge(&mut self, other: ClientTally) {
        self.answered += other.answered;
        self.attempts += other.attempts;
        self.network_errors += other.network_errors;
        self.worker_5xx += other.worker_5xx;
        self.ready.extend(other.ready);
        self.resent_duplicates.extend(other.resent_duplicates);
        self.unexpected.extend(other.unexpected);
        self.failed.extend(other.failed);
    }
}

/// Posts `posts` in order, each until it is answered: a try without an answer, or with a
/// 5xx, is sent again with the same event ids (the Worker deduplicates by event id).
async fn run_client(
    url: String,
    posts: Vec<Post>,
    progress: Arc<AtomicUsize>,
    abort: Arc<AtomicBool>,
) -> ClientTally {
    let client = http_client();
    let mut tally = ClientTally::default();
    for post in posts {
        if abort.load(Ordering::Relaxed) {
            tally.failed.push("aborted".into());
            break;
        }
        let text = body(&post);
        let started = Instant::now();
        let mut attempt = 0u32;
        let answer = loop {
            attempt += 1;
            tally.attempts += 1;
            let sent = client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("User-Agent", "Mozilla/5.0 (ttedge soak)")
                .header("CF-Connecting-IP", "203.0.113.50")
                .body(text.clone())
                .send()
                .await;
            let why = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.text().await {
                        Ok(text) if status == 202 => match serde_json::from_str::<Value>(&text) {
                            Ok(json) => break Ok(json),
                            Err(e) => break Err(format!("202 with a body that is not JSON: {e}")),
                        },
                        Ok(text) if status >= 500 => {
                            tally.worker_5xx += 1;
                            format!("{status}: {}", text.chars().take(200).collect::<String>())
                        }
                        Ok(text) => break Err(format!("{status}: {text}")),
                        Err(e) => {
                            tally.network_errors += 1;
                            format!("{status}, body lost: {e}")
                        }
                    }
                }
                Err(e) => {
                    tally.network_errors += 1;
                    format!("no answer: {e}")
                }
            };
            if attempt >= MAX_ATTEMPTS
                || started.elapsed() >= POST_DEADLINE
                || abort.load(Ordering::Relaxed)
            {
                break Err(format!("gave up after {attempt} tries, last: {why}"));
            }
            let backoff = Duration::from_millis(50 << attempt.min(5)).min(Duration::from_secs(1));
            tokio::time::sleep(backoff).await;
        };
        match answer {
            Ok(json) => {
                tally.answered += 1;
                let events = json["events"].as_array().cloned().unwrap_or_default();
                if events.len() != post.event_ids.len() {
                    tally.failed.push(format!(
                        "{} events posted, {} answered: {json}",
                        post.event_ids.len(),
                        events.len()
                    ));
                }
                for event in &events {
                    let id = event["event_id"].as_str().unwrap_or_default().to_string();
                    match event["status"].as_str() {
                        Some("ready") => tally.ready.push(id),
                        Some("duplicate") if attempt > 1 => tally.resent_duplicates.push(id),
                        other => tally
                            .unexpected
                            .push(format!("{id}: {} (try {attempt})", other.unwrap_or("?"))),
                    }
                }
                progress.fetch_add(post.event_ids.len(), Ordering::Relaxed);
            }
            Err(why) => tally
                .failed
                .push(format!("{:?}: {why}", post.event_ids.first())),
        }
    }
    tally
}

/// One SIGKILL of the Worker.
#[derive(Clone, Debug)]
pub struct Kill {
    /// When it was killed.
    pub at: Instant,
    /// Events answered 202 by then.
    pub progress: usize,
    /// From the kill to `/healthz` answering again.
    pub down_for: Duration,
    /// When it struck: right after TikTok accepted a request (before the Worker could record
    /// the answer), or whenever the load reached its share.
    pub moment: KillMoment,
}

/// When a kill strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillMoment {
    /// Right after the mock answered a request with success: the Worker cannot have
    /// recorded that answer, so it sends those events again after the restart.
    AfterTikTokAccepted,
    /// As soon as the load reached the kill's share of the events (wherever the Worker is).
    AtLoadShare,
    /// Meant to follow an accepted request, but none came within 10 s (the rate window was
    /// full), so at that moment.
    NoSendWithin10s,
}

impl KillMoment {
    /// For summaries.
    pub fn label(self) -> &'static str {
        match self {
            KillMoment::AfterTikTokAccepted => "right after TikTok accepted a request",
            KillMoment::AtLoadShare => "when the load reached its share",
            KillMoment::NoSendWithin10s => "no TikTok request within 10 s",
        }
    }
}

/// What TikTok received, counted against what the Worker accepted.
#[derive(Debug, Default)]
pub struct Accounting {
    /// TikTok requests.
    pub requests: usize,
    /// Requests by answer.
    pub by_answer: BTreeMap<Answer, usize>,
    /// `data[]` elements received, every attempt counted.
    pub events_received: usize,
    /// Elements of delivered requests (copies).
    pub delivered_copies: usize,
    /// Distinct event ids delivered.
    pub delivered_distinct: usize,
    /// Accepted by the Worker, never delivered.
    pub undelivered: Vec<String>,
    /// Delivered, but never accepted by the Worker (or never posted).
    pub unknown: Vec<String>,
    /// Extra copies after a hang (time-out) of the earlier copy's request.
    pub duplicates_hang: usize,
    /// Extra copies with a kill between the earlier copy and the resend.
    pub duplicates_crash: usize,
    /// The same, per kill (the last kill between the two copies).
    pub duplicates_by_kill: Vec<usize>,
    /// Extra copies with neither: `event id` of each.
    pub duplicates_unexplained: Vec<String>,
    /// Distinct events delivered more than once.
    pub duplicated_events: usize,
    /// The most requests in any window of `window` (from a request's arrival, that one
    /// included, up to but not including `window` later).
    pub max_window: usize,
}

impl Accounting {
    /// Extra copies in all.
    pub fn duplicates(&self) -> usize {
        self.duplicates_hang + self.duplicates_crash + self.duplicates_unexplained.len()
    }
}

/// Counts `arrivals` against the events the Worker `accepted`, with the `kills` for
/// classifying duplicates and the rate limit's `window`.
pub fn account(
    arrivals: &[Arrival],
    accepted: &HashSet<String>,
    kills: &[Instant],
    window: Duration,
) -> Accounting {
    let mut sorted: Vec<&Arrival> = arrivals.iter().collect();
    sorted.sort_by_key(|a| a.at);
    let mut acc = Accounting {
        requests: sorted.len(),
        duplicates_by_kill: vec![0; kills.len()],
        ..Accounting::default()
    };
    // Per event id: the arrival and answer of its last delivered copy, and its copies.
    let mut last: HashMap<&str, (Instant, Answer, usize)> = HashMap::new();
    for arrival in &sorted {
        *acc.by_answer.entry(arrival.answer).or_default() += 1;
        acc.events_received += arrival.event_ids.len();
        if !arrival.answer.delivered() {
            continue;
        }
        for id in &arrival.event_ids {
            acc.delivered_copies += 1;
            match last.get_mut(id.as_str()) {
                None => {
                    last.insert(id, (arrival.at, arrival.answer, 1));
                }
                Some(entry) => {
                    let (before, answer, copies) = *entry;
                    let kill = kills.iter().rposition(|&k| before <= k && k < arrival.at);
                    if answer == Answer::Kept {
                        acc.duplicates_hang += 1;
                    } else if let Some(kill) = kill {
                        acc.duplicates_crash += 1;
                        acc.duplicates_by_kill[kill] += 1;
                    } else {
                        acc.duplicates_unexplained.push(id.clone());
                    }
                    if copies == 1 {
                        acc.duplicated_events += 1;
                    }
                    *entry = (arrival.at, arrival.answer, copies + 1);
                }
            }
        }
    }
    acc.delivered_distinct = last.len();
    acc.undelivered = accepted
        .iter()
        .filter(|id| !last.contains_key(id.as_str()))
        .cloned()
        .collect();
    acc.undelivered.sort();
    acc.unknown = last
        .keys()
        .filter(|id| !accepted.contains(**id))
        .map(|id| id.to_string())
        .collect();
    acc.unknown.sort();
    let times: Vec<Instant> = sorted.iter().map(|a| a.at).collect();
    acc.max_window = max_in_window(&times, window);
    acc
}

/// The most of the sorted `times` in any `[t, t + window)` that starts at one of them.
pub fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut end = 0;
    for (start, &t) in times.iter().enumerate() {
        end = end.max(start);
        while end < times.len() && times[end].duration_since(t) < window {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

/// Everything a soak run measured.
#[derive(Debug)]
pub struct SoakReport {
    /// The run's settings.
    pub config: SoakConfig,
    /// What the clients saw, all together.
    pub clients: ClientTally,
    /// Events accepted by the Worker: answered `ready`, or `duplicate` on a resend.
    pub accepted: HashSet<String>,
    /// The kills.
    pub kills: Vec<Kill>,
    /// From the first POST to the last client's last answer.
    pub load: Duration,
    /// From the first POST to the end of the last drain.
    pub duration: Duration,
    /// Parked after the first drain.
    pub parked_before_replay: u64,
    /// What the replay answered.
    pub replay: Value,
    /// `GET /admin/api/status` at the end.
    pub final_status: Value,
    /// TikTok requests that came after the final drain (in a 3 s wait).
    pub requests_after_drain: usize,
    /// Requests before the mock was switched to always succeed, by answer.
    pub answers_under_faults: BTreeMap<Answer, usize>,
    /// The count against what TikTok received.
    pub accounting: Accounting,
    /// The Worker's log file.
    pub log_path: std::path::PathBuf,
}

impl SoakReport {
    /// The one summary line.
    pub fn summary_line(&self) -> String {
        let a = &self.accounting;
        format!(
            "soak: events={} accepted={} undelivered={} duplicates={} (hang {}, crash {}, unexplained {}) \
             requests_per_100={:.2} events_per_s={:.0} max_window_60s={}/{} kills={} duration_s={:.0}",
            self.config.events,
            self.accepted.len(),
            a.undelivered.len(),
            a.duplicates(),
            a.duplicates_hang,
            a.duplicates_crash,
            a.duplicates_unexplained.len(),
            self.requests_per_100(),
            self.events_per_s(),
            a.max_window,
            self.config.rate_limit_per_minute,
            self.kills.len(),
            self.duration.as_secs_f64(),
        )
    }

    /// TikTok requests per 100 accepted events.
    pub fn requests_per_100(&self) -> f64 {
        100.0 * self.accounting.requests as f64 / self.accepted.len().max(1) as f64
    }

    /// Accepted events per second of load.
    pub fn events_per_s(&self) -> f64 {
        self.accepted.len() as f64 / self.load.as_secs_f64().max(0.001)
    }

    /// Share of the calls under faults that the Worker saw fail, in percent.
    pub fn failure_percent(&self) -> f64 {
        let total: usize = self.answers_under_faults.values().sum();
        let failed: usize = self
            .answers_under_faults
            .iter()
            .filter(|(a, _)| a.failed())
            .map(|(_, n)| n)
            .sum();
        100.0 * failed as f64 / total.max(1) as f64
    }

    /// The details under the summary line.
    pub fn details(&self) -> String {
        let c = &self.clients;
        let a = &self.accounting;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "soak: clients: {} requests answered 202 after {} POSTs ({} without an answer, {} 5xx); \
             {} events ready, {} duplicate on a resend (stored before the kill, answer lost)",
            c.answered,
            c.attempts,
            c.network_errors,
            c.worker_5xx,
            c.ready.len(),
            c.resent_duplicates.len()
        );
        let mix: Vec<String> = self
            .answers_under_faults
            .iter()
            .map(|(answer, n)| format!("{} {n}", answer.label()))
            .collect();
        let _ = writeln!(
            out,
            "soak: TikTok under faults: {} ({:.1} % failed)",
            mix.join(", "),
            self.failure_percent()
        );
        let _ = writeln!(
            out,
            "soak: TikTok in all: {} requests, {} elements received, {} delivered copies of {} \
             events ({} events delivered more than once)",
            a.requests,
            a.events_received,
            a.delivered_copies,
            a.delivered_distinct,
            a.duplicated_events
        );
        for (i, kill) in self.kills.iter().enumerate() {
            let _ = writeln!(
                out,
                "soak: kill {} at {} events answered, {}; back after {:.1} s; {} events resent after it",
                i + 1,
                kill.progress,
                kill.moment.label(),
                kill.down_for.as_secs_f64(),
                a.duplicates_by_kill.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "soak: load {:.1} s; parked after the first drain {}, replay {}; after the drain {} requests; \
             counters {}",
            self.load.as_secs_f64(),
            self.parked_before_replay,
            self.replay,
            self.requests_after_drain,
            self.final_status["counters"]
        );
        let _ = write!(out, "soak: Worker log {}", self.log_path.display());
        out
    }
}

/// Shared lean log of the mock's requests.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Arrival>>>);

impl Arrivals {
    fn lock(&self) -> MutexGuard<'_, Vec<Arrival>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The Worker's `GET /admin/api/status`.
async fn status(client: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    let resp = client
        .get(format!("{base}/admin/api/status"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    let code = resp.status();
    let text = resp.text().await?;
    if code != 200 {
        bail!("GET /admin/api/status answered {code}: {text}");
    }
    serde_json::from_str(&text).context("the status is not JSON")
}

/// Polls the status (which also wakes a Dispatcher whose alarm was lost) every 500 ms until
/// `done`; fails after `timeout` with the last status.
async fn wait_status(
    client: &reqwest::Client,
    base: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let last = match status(client, base).await {
            Ok(s) if done(&s) => return Ok(s),
            Ok(s) => s,
            Err(e) => json!({ "error": e.to_string() }),
        };
        if started.elapsed() >= timeout {
            bail!("the Worker never showed {what} within {timeout:?}; last status: {last:#}");
        }
        if last_print.elapsed() >= Duration::from_secs(15) {
            last_print = Instant::now();
            eprintln!(
                "soak: waiting for {what} ({:.0} s): queued {}, parked {}, rate window {}",
                started.elapsed().as_secs_f64(),
                last["queued"],
                last["parked"],
                last["rate_window"]
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the soak: load with kills, drain, replay, drain, count. Fails only when the run
/// itself could not be carried out (the Worker did not start, a drain never ended); what
/// it measured is in the report, for the caller to judge.
pub async fn run(cfg: &SoakConfig) -> anyhow::Result<SoakReport> {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let hang = Duration::from_millis(cfg.hang_ms);
    let tiktok = Arc::new(MockTikTok::start_new().await?);
    let arrivals = Arrivals::default();
    // Counts the requests answered with success, for the kills that follow one.
    let accepted_calls = Arc::new(tokio::sync::watch::Sender::new(0usize));
    {
        let (arrivals, accepted_calls) = (arrivals.clone(), Arc::clone(&accepted_calls));
        tiktok.on_request(move |req: &RecordedRequest| {
            let answer = Answer::of(&req.answer, timeout);
            arrivals.lock().push(Arrival {
                at: req.received_at,
                answer,
                event_ids: req.event_ids(),
            });
            if answer == Answer::Ok {
                accepted_calls.send_modify(|n| *n += 1);
            }
        });
    }
    tiktok.respond_at_random(cfg.seed ^ ANSWER_SALT, tiktok_answers(hang));
    // The lean log has what the soak needs: the mock may forget the bodies.
    let _forget = {
        let tiktok = Arc::clone(&tiktok);
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                tiktok.clear();
            }
        }))
    };

    let mut opts = WranglerDevOptions::new()
        .var("TIKTOK_API_BASE", tiktok.base_url())
        .var("TIKTOK_PIXEL_ID", PIXEL_ID)
        .var("TIKTOK_ACCESS_TOKEN", ACCESS_TOKEN)
        .var("ADMIN_TOKEN", ADMIN_TOKEN)
        .var("MASTER_KEY", MASTER_KEY)
        .var("TIKTOK_TIMEOUT_MS", cfg.timeout_ms.to_string())
        .var(
            "RATE_LIMIT_PER_MINUTE",
            cfg.rate_limit_per_minute.to_string(),
        );
    // Another session may rebuild the Worker while a restart's `wrangler dev` runs the build
    // command: give it time rather than fail the run.
    opts.ready_timeout = Duration::from_secs(600);
    let mut worker = WranglerDev::start(opts).await?;
    let base = worker.base_url();
    let log_path = worker.log_path().to_path_buf();
    eprintln!(
        "soak: {cfg:?}\nsoak: wrangler dev ready in {:.1?} on {base} (log {})",
        worker.startup_time(),
        log_path.display()
    );
    let admin = http_client();

    // Load, with the kills.
    let progress = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let abort = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for client in 0..cfg.clients {
        let (url, posts) = (format!("{base}/collect"), plan(cfg, client));
        let (progress, finished, abort) = (progress.clone(), finished.clone(), abort.clone());
        clients.spawn(async move {
            let tally = run_client(url, posts, progress, abort).await;
            finished.fetch_add(1, Ordering::Relaxed);
            tally
        });
    }
    let _reporter = {
        let (progress, arrivals, events) = (progress.clone(), arrivals.clone(), cfg.events);
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                eprintln!(
                    "soak: +{:.0} s: {} of {events} events answered, {} TikTok requests",
                    started.elapsed().as_secs_f64(),
                    progress.load(Ordering::Relaxed),
                    arrivals.lock().len()
                );
            }
        }))
    };
    let killer = async {
        let mut kills = Vec::new();
        for k in 1..=cfg.kills {
            let threshold = cfg.events * k / (cfg.kills + 1);
            while progress.load(Ordering::Relaxed) < threshold {
                if finished.load(Ordering::Relaxed) == cfg.clients {
                    return Ok(kills);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Odd kills wait for TikTok to accept a request and strike at once, in the gap
            // between TikTok's answer and the Worker's record of it; even ones strike now.
            let moment = if k % 2 == 1 {
                let mut rx = accepted_calls.subscribe();
                rx.borrow_and_update();
                match tokio::time::timeout(Duration::from_secs(10), rx.changed()).await {
                    Ok(_) => KillMoment::AfterTikTokAccepted,
                    Err(_) => KillMoment::NoSendWithin10s,
                }
            } else {
                KillMoment::AtLoadShare
            };
            let at = Instant::now();
            let done = progress.load(Ordering::Relaxed);
            tokio::task::block_in_place(|| worker.kill());
            eprintln!(
                "soak: killed wrangler dev (kill -9 of its process group) at {done} events answered, {}",
                moment.label()
            );
            if let Err(e) = worker.restart().await {
                abort.store(true, Ordering::Relaxed);
                return Err(e.context(format!("restarting after kill {k}")));
            }
            let down_for = at.elapsed();
            eprintln!("soak: back after {:.1} s", down_for.as_secs_f64());
            kills.push(Kill {
                at,
                progress: done,
                down_for,
                moment,
            });
        }
        Ok::<_, anyhow::Error>(kills)
    };
    let gather = async {
        let mut all = ClientTally::default();
        while let Some(tally) = clients.join_next().await {
            all.merge(tally.context("a client panicked")?);
        }
        Ok::<_, anyhow::Error>(all)
    };
    let (kills, tally) = tokio::join!(killer, gather);
    let (kills, tally) = (kills?, tally?);
    let load = started.elapsed();
    eprintln!(
        "soak: load done in {:.1} s: {} requests answered, {} TikTok requests so far",
        load.as_secs_f64(),
        tally.answered,
        arrivals.lock().len()
    );

    // Drain, replay what was parked (TikTok now always succeeds), drain again.
    let drained = wait_status(&admin, &base, "an empty queue", cfg.drain_timeout(), |s| {
        s["queued"] == 0
    })
    .await?;
    let parked_before_replay = drained["parked"].as_u64().unwrap_or(0);
    eprintln!(
        "soak: drained at +{:.1} s, {parked_before_replay} parked",
        started.elapsed().as_secs_f64()
    );
    let switched_at = Instant::now();
    tiktok.clear_responder();
    tiktok.set_default(MockResponse::ok());
    let resp = admin
        .post(format!(
            "{base}/admin/api/destinations/{HOST}/parked/replay"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await?;
    let code = resp.status();
    let replay: Value = serde_json::from_str(&resp.text().await?).context("replay answer")?;
    if code != 200 {
        bail!("POST /parked/replay answered {code}: {replay}");
    }
    wait_status(
        &admin,
        &base,
        "an empty queue and nothing parked",
        cfg.drain_timeout(),
        |s| s["queued"] == 0 && s["parked"] == 0,
    )
    .await?;
    let duration = started.elapsed();
    let before = arrivals.lock().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let final_status = status(&admin, &base).await?;
    let arrivals = arrivals.lock().clone();
    let requests_after_drain = arrivals.len() - before;
    worker.shutdown();

    let mut accepted: HashSet<String> = tally.ready.iter().cloned().collect();
    accepted.extend(tally.resent_duplicates.iter().cloned());
    let kill_times: Vec<Instant> = kills.iter().map(|k| k.at).collect();
    let accounting = account(&arrivals, &accepted, &kill_times, Duration::from_secs(60));
    let mut answers_under_faults = BTreeMap::new();
    for a in arrivals.iter().filter(|a| a.at < switched_at) {
        *answers_under_faults.entry(a.answer).or_default() += 1;
    }
    Ok(SoakReport {
        config: cfg.clone(),
        clients: tally,
        accepted,
        kills,
        load,
        duration,
        parked_before_replay,
        replay,
        final_status,
        requests_after_drain,
        answers_under_faults,
        accounting,
        log_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(at: Instant, ms: u64, answer: Answer, ids: &[&str]) -> Arrival {
        Arrival {
            at: at + Duration::from_millis(ms),
            answer,
            event_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_plan_covers_every_event_once_in_batches_of_at_most_100() {
        let cfg = SoakConfig {
            events: 10_007,
            clients: 3,
            ..SoakConfig::default()
        };
        let mut ids = HashSet::new();
        let mut singles = 0;
        for client in 0..cfg.clients {
            let posts = plan(&cfg, client);
            assert_eq!(posts, plan(&cfg, client), "the same seed, the same plan");
            for post in &posts {
                assert!((1..=100).contains(&post.event_ids.len()));
                if post.single {
                    singles += 1;
                    assert_eq!(post.event_ids.len(), 1);
                    assert!(!body(post).contains("\"batch\""));
                } else {
                    assert!(body(post).contains("\"batch\""));
                }
                ids.extend(post.event_ids.iter().cloned());
            }
        }
        assert_eq!(ids.len(), cfg.events);
        assert!(singles > 10, "some single events: {singles}");
        let parsed: Value = serde_json::from_str(&body(&plan(&cfg, 0)[0])).unwrap();
        assert!(parsed.is_object());
    }

    #[test]
    fn answers_are_classified() {
        let t = Duration::from_secs(2);
        let hang = Duration::from_secs(3);
        let kinds: Vec<Answer> = tiktok_answers(hang)
            .iter()
            .map(|(_, a)| Answer::of(a, t))
            .collect();
        assert_eq!(
            kinds,
            [
                Answer::Ok,
                Answer::Html5xx,
                Answer::Html5xx,
                Answer::Json5xx,
                Answer::Http429,
                Answer::Code40100,
                Answer::Code50000,
                Answer::Kept
            ]
        );
        let failed: u32 = tiktok_answers(hang)
            .iter()
            .filter(|(_, a)| Answer::of(a, t).failed())
            .map(|(w, _)| w)
            .sum();
        assert!(failed >= 30, "at least 30 % of the calls fail: {failed}");
        assert_eq!(Answer::of(&MockResponse::hang(), t), Answer::Other);
        assert_eq!(
            Answer::of(&MockResponse::ok().with_delay(Duration::from_millis(10)), t),
            Answer::Ok
        );
    }

    /// The mock picks as `MockTikTok::respond_at_random` does: with the default seed, every
    /// run of 20 calls or more from the start fails at least 30 % of them, however many
    /// requests a run happens to make.
    #[test]
    fn the_default_seed_fails_at_least_30_percent_from_the_start() {
        let cfg = SoakConfig::default();
        let t = Duration::from_millis(cfg.timeout_ms);
        let choices = tiktok_answers(Duration::from_millis(cfg.hang_ms));
        let total: u64 = choices.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut rng = SeededRng::new(cfg.seed ^ ANSWER_SALT);
        let mut failed = 0;
        for n in 1..=2_000 {
            let mut pick = rng.below(total);
            let answer = choices
                .iter()
                .find(|(w, _)| {
                    let hit = pick < u64::from(*w);
                    pick = pick.saturating_sub(u64::from(*w));
                    hit
                })
                .map(|(_, a)| Answer::of(a, t))
                .unwrap();
            failed += usize::from(answer.failed());
            if n >= 20 {
                assert!(
                    failed * 100 >= n * 30,
                    "{failed} of the first {n} calls fail"
                );
            }
        }
    }

    #[test]
    fn the_window_counts_requests_less_than_60_s_apart() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let w = Duration::from_secs(60);
        assert_eq!(max_in_window(&[], w), 0);
        assert_eq!(max_in_window(&[at(0)], w), 1);
        assert_eq!(max_in_window(&[at(0), at(60), at(120)], w), 1);
        assert_eq!(max_in_window(&[at(0), at(59), at(60), at(61)], w), 3);
        assert_eq!(max_in_window(&[at(0), at(1), at(2), at(100)], w), 3);
    }

    #[test]
    fn duplicates_are_classified_and_losses_found() {
        let t = Instant::now();
        let kill = t + Duration::from_millis(1_500);
        let arrivals = vec![
            arrival(t, 0, Answer::Kept, &["a", "b"]),
            arrival(t, 100, Answer::Html5xx, &["c"]),
            arrival(t, 1_000, Answer::Ok, &["c", "d"]),
            arrival(t, 2_000, Answer::Ok, &["a", "b", "d"]),
            arrival(t, 3_000, Answer::Ok, &["b", "x"]),
        ];
        let accepted: HashSet<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let acc = account(&arrivals, &accepted, &[kill], Duration::from_secs(60));
        assert_eq!(acc.requests, 5);
        assert_eq!(acc.events_received, 10);
        assert_eq!(acc.delivered_copies, 9);
        assert_eq!(acc.delivered_distinct, 5);
        // a, b after the hang; d across the kill; b's third copy has neither.
        assert_eq!(acc.duplicates_hang, 2);
        assert_eq!(acc.duplicates_crash, 1);
        assert_eq!(acc.duplicates_by_kill, [1]);
        assert_eq!(acc.duplicates_unexplained, ["b"]);
        assert_eq!(acc.duplicates(), 4);
        assert_eq!(acc.duplicated_events, 3);
        assert_eq!(acc.undelivered, ["e"]);
        assert_eq!(acc.unknown, ["x"]);
        assert_eq!(acc.max_window, 5);
        assert_eq!(acc.by_answer[&Answer::Ok], 3);
    }
}
