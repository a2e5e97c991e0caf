//! The Dispatcher Durable Object: one per access token, named by the token's SHA-256.
//!
//! It stores every ready event in SQLite before the Worker answers the browser, then sends
//! them from its alarm: batches of up to 1,000 events per pixel and test code, within the
//! token's sliding-window rate limit, retried after 500, 1,000 and 2,000 ms, split on a
//! 40002, and parked with TikTok's code, message and hint when nothing more can be done.
//!
//! Alarms are at-least-once, so every step is idempotent: a row leaves the queue only by
//! being marked delivered or parked, in the same synchronous SQL block that reads the
//! answer, and an alarm that runs again finds nothing left to send.
//!
//! Delivery health lives here too, per Dispatcher (that is, per destination's token):
//! hourly `counters`, and per hour in `health` a latency histogram of the TikTok calls and a
//! match-quality summary of the events received, both core types stored as JSON and merged
//! on write. The admin API lists parked events (`GET /parked`), puts them back in the queue
//! (`POST /parked/replay`) and sends the connection test (`POST /test`) at once, within the
//! same rate window as the send loop. `GET /health` turns the last 7 days of buckets into core's
//! [`HealthReport`](ttedge_core::health::HealthReport) plus the current state.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ttedge_core::connection;
use ttedge_core::destination::day_of;
use ttedge_core::event::PixelStatus;
use ttedge_core::health::{self, HourBucket};
use ttedge_core::latency::LatencyHistogram;
use ttedge_core::quality::QualitySummary;
use ttedge_core::ratelimit::{SlidingWindow, DEFAULT_LIMIT_PER_MINUTE, MINUTE_MS};
use ttedge_core::retry::{after_failure, NextStep};
use ttedge_core::tiktok::{plan_requests, request_body, Failure, RequestKey, Verdict};
use worker::wasm_bindgen::JsValue;
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, Result, SqlStorage,
    SqlStorageValue, State,
};

use crate::config::{self, SiteConfig, Source};
use crate::error::ApiError;
use crate::runtime::{self, now_ms};
use crate::tiktok_client::{post_track, CallOutcome};

/// Binding name in wrangler.toml.
const BINDING: &str = "DISPATCHER";
/// New events wait this long so that events arriving together leave together.
const BATCH_WINDOW_MS: u64 = 200;
/// Requests one alarm run may send before it hands over to the next alarm.
const MAX_REQUESTS_PER_ALARM: usize = 25;
/// `wrangler dev` can forget an alarm across restarts while still reporting it; an alarm
/// this far overdue is set again.
const STALE_ALARM_MS: u64 = 30_000;
/// Delivered rows are kept this long to refuse resent duplicates.
const DEDUPE_WINDOW_MS: u64 = 48 * 60 * 60 * 1_000;
/// Call records are kept for a week (hourly buckets: see `health::oldest_kept_hour`).
const HISTORY_MS: u64 = 7 * 24 * 60 * 60 * 1_000;
/// Failed calls listed by `GET /health`.
const LAST_ERRORS: i64 = 20;
/// Daily conversion counts are kept this long, for baselines imported from Ads Manager.
const CONVERSION_DAYS_KEPT: u32 = 400;
/// When configuration is broken, look again after this long.
const CONFIG_RETRY_MS: u64 = 60_000;

/// Created on every start of the object; `IF NOT EXISTS` makes that idempotent.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS queue (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT    NOT NULL,
        event_name      TEXT    NOT NULL,
        pixel_code      TEXT    NOT NULL,
        test_event_code TEXT,
        pixel_status    TEXT,
        score           INTEGER,
        element         TEXT    NOT NULL,
        received_ms     INTEGER NOT NULL,
        state           TEXT    NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        batch_limit     INTEGER NOT NULL DEFAULT 1000,
        done_ms         INTEGER,
        http_status     INTEGER,
        tiktok_code     INTEGER,
        message         TEXT,
        hint            TEXT,
        conversion      INTEGER NOT NULL DEFAULT 0
    )",
    // One copy of an event per pixel, name and test code: a resent event is not queued twice.
    "CREATE UNIQUE INDEX IF NOT EXISTS queue_event
        ON queue (pixel_code, event_name, event_id, IFNULL(test_event_code, ''))",
    "CREATE INDEX IF NOT EXISTS queue_due ON queue (state, next_attempt_ms)",
    // Send times of the current rate window.
    "CREATE TABLE IF NOT EXISTS sends (at_ms INTEGER NOT NULL)",
    // Hourly counters: received, sent, delivered, retried, parked, held, skipped, rejected,
    // requests, calls, failed_calls, conversions, conversions_unseen (core `health::Counts`),
    // and replayed (parked events put back in the queue by the admin API).
    "CREATE TABLE IF NOT EXISTS counters (
        hour   INTEGER NOT NULL,
        metric TEXT    NOT NULL,
        value  INTEGER NOT NULL,
        PRIMARY KEY (hour, metric)
    )",
    // Every call to TikTok: latency and outcome.
    "CREATE TABLE IF NOT EXISTS calls (
        at_ms       INTEGER NOT NULL,
        latency_ms  INTEGER NOT NULL,
        events      INTEGER NOT NULL,
        verdict     TEXT    NOT NULL,
        http_status INTEGER NOT NULL,
        tiktok_code INTEGER,
        message     TEXT,
        hint        TEXT
    )",
    // Per hour: core `LatencyHistogram` of the calls and `QualitySummary` of the events
    // received, as JSON, merged on write.
    "CREATE TABLE IF NOT EXISTS health (
        hour    INTEGER PRIMARY KEY,
        latency TEXT,
        quality TEXT
    )",
    // Conversions delivered per UTC day and pixel, for the recovery against a baseline.
    "CREATE TABLE IF NOT EXISTS conversions_daily (
        day        INTEGER NOT NULL,
        pixel_code TEXT    NOT NULL,
        delivered  INTEGER NOT NULL,
        PRIMARY KEY (day, pixel_code)
    )",
    // How to reach TikTok for this token, as the Worker last said (see `Credentials`).
    "CREATE TABLE IF NOT EXISTS credentials (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        host         TEXT,
        sealed_token TEXT,
        rate_limit   INTEGER NOT NULL
    )",
];

/// Columns added after the first release; `ALTER TABLE` fails harmlessly once they exist.
const MIGRATIONS: &[&str] = &["ALTER TABLE queue ADD COLUMN conversion INTEGER NOT NULL DEFAULT 0"];

/// Header that carries [`Credentials`] on every call from the Worker.
const CREDENTIALS_HEADER: &str = "Ttedge-Credentials";

/// How the Dispatcher reaches TikTok when its alarm fires with no request at hand: the
/// Worker sends these with every call and the object keeps the latest. A stored
/// destination's token travels and rests only sealed (with its site host as associated
/// data); the `wrangler.toml` default's token is read from the secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// The site host whose sealed token this is; `None` for the default destination.
    pub host: Option<String>,
    /// The token sealed under `MASTER_KEY`; `None` for the default destination.
    pub sealed_token: Option<String>,
    /// Requests per sliding minute.
    pub rate_limit_per_minute: u32,
}

impl Credentials {
    fn of(site: &SiteConfig) -> Credentials {
        let (host, sealed_token) = match &site.source {
            Source::Vars => (None, None),
            Source::Stored { host, sealed_token } => {
                (Some(host.clone()), Some(sealed_token.clone()))
            }
        };
        Credentials {
            host,
            sealed_token,
            rate_limit_per_minute: site.rate_limit_per_minute,
        }
    }
}

/// What one send needs: where, with which token, how fast.
struct Delivery {
    api_base: String,
    access_token: String,
    timeout_ms: u32,
    rate_limit_per_minute: u32,
}

impl Delivery {
    /// One call to TikTok's track endpoint with this token.
    async fn post(&self, body: String) -> CallOutcome {
        post_track(&self.api_base, &self.access_token, body, self.timeout_ms).await
    }
}

/// What the Worker hands over for one collect request.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Intake {
    /// Ready events.
    pub events: Vec<IntakeEvent>,
    /// Held back by consent.
    pub held: u32,
    /// Skipped (internal events, custom events off).
    pub skipped: u32,
    /// Rejected before queueing.
    pub rejected: u32,
    /// Match quality of the request's scored events (ready and held), merged into the hour.
    #[serde(default)]
    pub quality: QualitySummary,
    /// Off: the destination is being set up; the events are counted, never stored or sent.
    pub live: bool,
}

/// One ready event.
#[derive(Debug, Serialize, Deserialize)]
pub struct IntakeEvent {
    /// TikTok's deduplication key.
    pub event_id: String,
    /// The TikTok event name.
    pub event_name: String,
    /// `event_source_id`.
    pub pixel_code: String,
    /// Test events go in requests of their own.
    pub test_event_code: Option<String>,
    /// The page's pixel status, for recovery figures.
    pub pixel_status: Option<PixelStatus>,
    /// Match quality in hundredths.
    pub score: Option<u32>,
    /// Whether the destination counts this event as a conversion.
    pub conversion: bool,
    /// The serialised `data[]` element.
    pub element: String,
}

/// The Dispatcher's answer to an intake.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IntakeAnswer {
    /// Events stored.
    pub queued: u32,
    /// Event ids already stored before (not queued again).
    pub duplicates: Vec<String>,
}

/// Hands events to the site's Dispatcher; returns once they are stored.
pub async fn enqueue(
    env: &Env,
    site: &SiteConfig,
    intake: &Intake,
) -> std::result::Result<IntakeAnswer, ApiError> {
    let answer = call(env, site, Method::Post, "/enqueue", Some(intake)).await;
    match answer {
        Ok(mut response) if response.status_code() == 200 => Ok(response.json().await?),
        Ok(mut response) => {
            let detail = response.text().await.unwrap_or_default();
            worker::console_error!("dispatcher refused an intake: {detail:?}");
            Err(queue_unavailable())
        }
        Err(error) => {
            worker::console_error!("dispatcher unreachable: {:?}", error.to_string());
            Err(queue_unavailable())
        }
    }
}

/// The Dispatcher's delivery health: core's report for the last hour, 24 hours and 7 days,
/// and the current state (last errors, queue, rate window). Per Dispatcher, so per
/// destination's access token.
pub async fn health(env: &Env, site: &SiteConfig) -> Result<serde_json::Value> {
    call(env, site, Method::Get, "/health", None::<&()>)
        .await?
        .json()
        .await
}

/// The Dispatcher's queue state (and a wake-up for a forgotten alarm).
pub async fn state(env: &Env, site: &SiteConfig) -> Result<serde_json::Value> {
    call(env, site, Method::Get, "/state", None::<&()>)
        .await?
        .json()
        .await
}

/// A page of parked events: at most `limit` rows after sequence number `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedPage {
    /// 1 to [`ParkedPage::MAX_LIMIT`]; [`ParkedPage::DEFAULT_LIMIT`] when absent.
    pub limit: u32,
    /// The `next_after` of the previous page; 0 (from the start) when absent.
    pub after: u64,
}

impl ParkedPage {
    /// Rows per page unless `limit` says otherwise.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page.
    pub const MAX_LIMIT: u32 = 500;

    /// Reads `limit` and `after` from a query string's values; the error names the field.
    pub fn parse(
        limit: Option<String>,
        after: Option<String>,
    ) -> std::result::Result<ParkedPage, ApiError> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if (1..=Self::MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_field(
                        "limit",
                        format!("limit must be a whole number from 1 to {}", Self::MAX_LIMIT),
                    ))
                }
            },
        };
        let after = match after {
            None => 0,
            Some(text) => text.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid_field(
                    "after",
                    "after must be a whole number: the next_after of the previous page",
                )
            })?,
        };
        Ok(ParkedPage { limit, after })
    }
}

/// `POST .../parked/replay`: every parked event (`event_ids` absent), or those listed.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Event ids to replay; every parked row with one of them goes back to the queue.
    #[serde(default)]
    pub event_ids: Option<Vec<String>>,
}

/// The connection test's event, handed to the Dispatcher of the destination's token.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestCall {
    /// `event_source_id`.
    pub pixel_code: String,
    /// The destination's test event code, when set.
    pub test_event_code: Option<String>,
    /// The serialised `data[]` element.
    pub element: String,
}

/// Lists parked events, `{events, next_after, total}`; never their elements (hashed PII).
pub async fn parked(env: &Env, site: &SiteConfig, page: ParkedPage) -> Result<Response> {
    let path = format!("/parked?limit={}&after={}", page.limit, page.after);
    call(env, site, Method::Get, &path, None::<&()>).await
}

/// Moves parked events back to the queue; answers `{replayed, not_found}`.
pub async fn replay(env: &Env, site: &SiteConfig, replay: &Replay) -> Result<Response> {
    call(env, site, Method::Post, "/parked/replay", Some(replay)).await
}

/// Sends the connection test's event at once, within the token's rate limit.
pub async fn test(env: &Env, site: &SiteConfig, test: &TestCall) -> Result<Response> {
    call(env, site, Method::Post, "/test", Some(test)).await
}

/// Conversions delivered for a pixel per inclusive range of UTC days (days since the
/// epoch), in the order asked.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConversionQuery {
    /// `event_source_id`.
    pub pixel_code: String,
    /// `(first day, last day)` pairs.
    pub ranges: Vec<(u32, u32)>,
}

/// Conversions delivered in each range of `query`.
pub async fn conversions(
    env: &Env,
    site: &SiteConfig,
    query: &ConversionQuery,
) -> Result<Vec<u64>> {
    call(env, site, Method::Post, "/conversions", Some(query))
        .await?
        .json()
        .await
}

fn queue_unavailable() -> ApiError {
    ApiError::new(
        503,
        "queue_unavailable",
        "events could not be stored; nothing was accepted, send them again",
    )
}

async fn call(
    env: &Env,
    site: &SiteConfig,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
) -> Result<Response> {
    let headers = Headers::new();
    headers.set(
        CREDENTIALS_HEADER,
        &serde_json::to_string(&Credentials::of(site))?,
    )?;
    let name = site.dispatcher_name();
    runtime::call_object(env, BINDING, &name, method, path, headers, body).await
}

#[durable_object(alarm)]
pub struct Dispatcher {
    state: State,
    env: Env,
}

impl DurableObject for Dispatcher {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        runtime::create_schema(&sql, SCHEMA, "dispatcher");
        for statement in MIGRATIONS {
            // Fails with "duplicate column" on every start but the first: nothing to do.
            let _ = sql.exec(statement, None);
        }
        Dispatcher { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Some(header) = req.headers().get(CREDENTIALS_HEADER)? {
            self.remember(&serde_json::from_str(&header)?)?;
        }
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/enqueue") => {
                let intake: Intake = req.json().await?;
                Response::from_json(&self.enqueue(intake).await?)
            }
            (Method::Get, "/state") => {
                let now = now_ms();
                self.ensure_alarm(self.next_due()?.unwrap_or(now)).await?;
                Response::from_json(&self.queue_state().await?)
            }
            (Method::Get, "/health") => Response::from_json(&self.health()?),
            (Method::Get, "/parked") => {
                let url = req.url()?;
                let query = |name: &str| {
                    url.query_pairs()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.into_owned())
                };
                let page = match ParkedPage::parse(query("limit"), query("after")) {
                    Ok(page) => page,
                    Err(error) => return error.into_response(),
                };
                Response::from_json(&self.parked(page)?)
            }
            (Method::Post, "/parked/replay") => {
                let replay: Replay = req.json().await?;
                Response::from_json(&self.replay(replay).await?)
            }
            (Method::Post, "/test") => {
                let test: TestCall = req.json().await?;
                self.connection_test(test).await
            }
            (Method::Post, "/conversions") => {
                let query: ConversionQuery = req.json().await?;
                Response::from_json(&self.conversions(&query)?)
            }
            _ => ApiError::new(404, "not_found", "no such dispatcher route").into_response(),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.deliver().await?;
        Response::ok("delivered")
    }
}

/// A queued row, as the send loop needs it.
#[derive(Deserialize)]
struct QueuedRow {
    seq: i64,
    pixel_status: Option<String>,
    pixel_code: String,
    test_event_code: Option<String>,
    element: String,
    attempts: u32,
    batch_limit: usize,
    conversion: i64,
}

#[derive(Deserialize)]
struct At {
    at_ms: Option<f64>,
}

#[derive(Deserialize)]
struct RowId {
    id: i64,
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

/// A parked event as `GET /parked` lists it.
#[derive(Serialize, Deserialize)]
struct ParkedListed {
    seq: i64,
    event_id: String,
    event_name: String,
    http_status: Option<i64>,
    tiktok_code: Option<i64>,
    message: Option<String>,
    hint: Option<String>,
    attempts: i64,
    #[serde(rename(serialize = "parked_at_ms"))]
    done_ms: Option<f64>,
}

/// The answer of `GET /parked`.
#[derive(Serialize)]
struct ParkedList {
    events: Vec<ParkedListed>,
    /// `after` for the next page; `null` on the last page.
    next_after: Option<i64>,
    /// Parked events in all.
    total: i64,
}

/// The answer of `POST /parked/replay`.
#[derive(Serialize)]
struct ReplayAnswer {
    replayed: u64,
    not_found: Vec<String>,
}

/// The Dispatcher's part of the connection test's answer.
#[derive(Serialize)]
struct TestAnswer {
    ok: bool,
    latency_ms: u64,
    http_status: u16,
    tiktok_code: Option<i64>,
    message: String,
    hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CallRow {
    at_ms: f64,
    latency_ms: i64,
    events: i64,
    verdict: String,
    http_status: i64,
    tiktok_code: Option<i64>,
    message: Option<String>,
    hint: Option<String>,
}

/// One `counters` row of the health window.
#[derive(Deserialize)]
struct MetricRow {
    hour: f64,
    metric: String,
    value: f64,
}

/// One `health` row.
#[derive(Deserialize)]
struct HealthRow {
    hour: f64,
    latency: Option<String>,
    quality: Option<String>,
}

/// A failed call, as stored in `calls`.
#[derive(Deserialize)]
struct ErrorRow {
    at_ms: f64,
    verdict: String,
    events: f64,
    http_status: f64,
    tiktok_code: Option<f64>,
    message: Option<String>,
    hint: Option<String>,
}

/// A failed call, as `GET /health` lists it.
#[derive(Serialize)]
struct LastError {
    at_ms: u64,
    /// `retry` (tried again) or `reject` (parked).
    verdict: String,
    events: u64,
    /// 0 when no answer came (network error, time-out).
    http_status: u64,
    tiktok_code: Option<i64>,
    message: Option<String>,
    hint: Option<String>,
}

/// What is going on now.
#[derive(Serialize)]
struct Current {
    last_errors: Vec<LastError>,
    queue_depth: i64,
    parked: i64,
    oldest_queued_age_ms: Option<u64>,
    rate_window: RateWindow,
}

#[derive(Serialize)]
struct RateWindow {
    used: u32,
    limit: u32,
}

/// The answer of `GET /health`.
#[derive(Serialize)]
struct Health {
    now_ms: u64,
    windows: health::Windows,
    current: Current,
    emq: health::EmqReport,
    recovery: health::Recovery,
}

#[derive(Serialize, Deserialize)]
struct CounterRow {
    metric: String,
    total: i64,
}

impl Dispatcher {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Stores the events (skipping duplicates), counts, and makes sure an alarm will send.
    async fn enqueue(&self, intake: Intake) -> Result<IntakeAnswer> {
        let now = now_ms();
        let sql = self.sql();
        let mut answer = IntakeAnswer::default();
        self.count(now, "held", u64::from(intake.held))?;
        self.count(now, "skipped", u64::from(intake.skipped))?;
        self.count(now, "rejected", u64::from(intake.rejected))?;
        if intake.quality.events > 0 {
            self.merge_health(now, None, Some(&intake.quality))?;
        }
        if !intake.live {
            return self
                .count(now, "not_live", intake.events.len() as u64)
                .map(|()| answer);
        }
        for event in &intake.events {
            let inserted: Vec<serde::de::IgnoredAny> = sql
                .exec(
                    "INSERT OR IGNORE INTO queue (event_id, event_name, pixel_code,
                        test_event_code, pixel_status, score, element, received_ms,
                        next_attempt_ms, conversion)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                    vec![
                        event.event_id.clone().into(),
                        event.event_name.clone().into(),
                        event.pixel_code.clone().into(),
                        optional_text(event.test_event_code.clone()),
                        optional_text(event.pixel_status.map(|status| status.as_str().to_string())),
                        event
                            .score
                            .map_or(SqlStorageValue::Null, |s| i64::from(s).into()),
                        event.element.clone().into(),
                        int(now),
                        int(now),
                        i64::from(event.conversion).into(),
                    ],
                )?
                .to_array()?;
            if inserted.is_empty() {
                answer.duplicates.push(event.event_id.clone());
            } else {
                answer.queued += 1;
            }
        }
        self.count(now, "received", u64::from(answer.queued))?;
        if answer.queued > 0 {
            self.ensure_alarm(now + BATCH_WINDOW_MS).await?;
        }
        Ok(answer)
    }

    /// Makes sure an alarm fires by `at` while events are queued; re-arms a forgotten one.
    async fn ensure_alarm(&self, at: u64) -> Result<()> {
        if self.next_due()?.is_none() {
            return Ok(());
        }
        let now = now_ms();
        let storage = self.state.storage();
        match storage.get_alarm().await? {
            Some(current) if current as u64 <= at && current as u64 + STALE_ALARM_MS > now => {
                Ok(())
            }
            _ => storage.set_alarm(at_epoch_ms(at.max(now))).await,
        }
    }

    /// The send loop, run by the alarm.
    async fn deliver(&self) -> Result<()> {
        let delivery = match self.delivery() {
            Ok(delivery) => delivery,
            Err(error) => {
                worker::console_error!("dispatcher cannot send: {}", error.message);
                let retry_at = now_ms() + CONFIG_RETRY_MS;
                return self.state.storage().set_alarm(at_epoch_ms(retry_at)).await;
            }
        };
        for _ in 0..MAX_REQUESTS_PER_ALARM {
            let now = now_ms();
            // Read afresh each time: a connection test may have sent while we awaited.
            let mut window = self.rate_window(delivery.rate_limit_per_minute)?;
            let due: Vec<QueuedRow> = self
                .sql()
                .exec(
                    "SELECT seq, pixel_status, pixel_code, test_event_code, element,
                        attempts, batch_limit, conversion
                     FROM queue WHERE state = 'queued' AND next_attempt_ms <= ?
                     ORDER BY seq LIMIT 1000",
                    vec![int(now)],
                )?
                .to_array()?;
            let Some(batch) = first_batch(&due) else {
                break;
            };
            if let Err(free_at) = window.check(now) {
                return self.state.storage().set_alarm(at_epoch_ms(free_at)).await;
            }
            // Counted from when the answer came back, the latest moment TikTok can have
            // counted the request: a slow request never squeezes the next window.
            let send = self.record_send(now)?;
            let answered_at = self.send(&delivery, &batch).await?;
            self.settle_send(send, answered_at)?;
        }
        self.prune(now_ms())?;
        match self.next_due()? {
            Some(at) => {
                self.state
                    .storage()
                    .set_alarm(at_epoch_ms(at.max(now_ms())))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Sends one batch, records what became of it, and returns when the answer came back.
    async fn send(&self, delivery: &Delivery, batch: &[&QueuedRow]) -> Result<u64> {
        let Some(first) = batch.first() else {
            return Ok(now_ms());
        };
        let raw: Vec<&RawValue> = batch
            .iter()
            .filter_map(|row| serde_json::from_str(&row.element).ok())
            .collect();
        let key = RequestKey {
            pixel_code: &first.pixel_code,
            test_event_code: first.test_event_code.as_deref(),
        };
        let body = request_body(key, &raw);
        let sent_at = now_ms();
        let n = batch.len() as u64;
        self.count(sent_at, "requests", 1)?;
        self.count(sent_at, "sent", n)?;
        let outcome = delivery.post(body).await;

        // Everything below is synchronous SQL: it commits as one unit.
        let now = now_ms();
        self.record_call(
            now,
            outcome.latency_ms,
            n,
            &outcome.verdict,
            outcome.http_status,
        )?;
        let sql = self.sql();
        match &outcome.verdict {
            Verdict::Delivered | Verdict::PartiallyDelivered(_) => {
                for row in batch {
                    sql.exec(
                        "UPDATE queue SET state = 'delivered', done_ms = ?,
                            attempts = attempts + 1 WHERE seq = ? AND state = 'queued'",
                        vec![int(now), row.seq.into()],
                    )?;
                }
                self.count(now, "delivered", n)?;
                let (mut delivered, mut unseen) = (0, 0);
                for row in batch.iter().filter(|row| row.conversion != 0) {
                    delivered += 1;
                    unseen += u64::from(pixel_unseen(row.pixel_status.as_deref()));
                    sql.exec(
                        "INSERT INTO conversions_daily (day, pixel_code, delivered)
                         VALUES (?, ?, 1) ON CONFLICT (day, pixel_code)
                         DO UPDATE SET delivered = delivered + 1",
                        vec![i64::from(day_of(now)).into(), row.pixel_code.clone().into()],
                    )?;
                }
                self.count(now, "conversions", delivered)?;
                self.count(now, "conversions_unseen", unseen)?;
            }
            Verdict::Reject(_) if outcome.verdict.should_split(batch.len()) => {
                // One bad event fails a whole batch: halve until it stands alone.
                let half = batch.len().div_ceil(2) as i64;
                for row in batch {
                    sql.exec(
                        "UPDATE queue SET batch_limit = MIN(batch_limit, ?) WHERE seq = ?",
                        vec![half.into(), row.seq.into()],
                    )?;
                }
            }
            Verdict::Reject(failure) => self.park(now, batch, failure)?,
            Verdict::Retry(failure) => {
                let mut retried = 0;
                for row in batch {
                    match after_failure(row.attempts + 1) {
                        NextStep::RetryAfter(delay) => {
                            retried += 1;
                            sql.exec(
                                "UPDATE queue SET attempts = attempts + 1, next_attempt_ms = ?
                                 WHERE seq = ?",
                                vec![int(now + delay), row.seq.into()],
                            )?;
                        }
                        NextStep::Park => self.park(now, &[row], failure)?,
                    }
                }
                self.count(now, "retried", retried)?;
            }
        }
        Ok(now)
    }

    /// Parks rows with TikTok's answer: kept, listed, replayable, never dropped.
    fn park(&self, now: u64, rows: &[&QueuedRow], failure: &Failure) -> Result<()> {
        for row in rows {
            self.sql().exec(
                "UPDATE queue SET state = 'parked', done_ms = ?, attempts = attempts + 1,
                    http_status = ?, tiktok_code = ?, message = ?, hint = ?
                 WHERE seq = ?",
                vec![
                    int(now),
                    i64::from(failure.http_status).into(),
                    failure.code.map_or(SqlStorageValue::Null, Into::into),
                    failure.message.clone().into(),
                    failure.hint.clone().into(),
                    row.seq.into(),
                ],
            )?;
        }
        self.count(now, "parked", rows.len() as u64)
    }

    /// One page of parked events, oldest first.
    fn parked(&self, page: ParkedPage) -> Result<ParkedList> {
        let mut events: Vec<ParkedListed> = self
            .sql()
            .exec(
                "SELECT seq, event_id, event_name, http_status, tiktok_code, message, hint,
                    attempts, done_ms
                 FROM queue WHERE state = 'parked' AND seq > ? ORDER BY seq LIMIT ?",
                vec![int(page.after), i64::from(page.limit + 1).into()],
            )?
            .to_array()?;
        let more = events.len() > page.limit as usize;
        events.truncate(page.limit as usize);
        Ok(ParkedList {
            next_after: events.last().filter(|_| more).map(|row| row.seq),
            events,
            total: self.count_where("parked")?,
        })
    }

    /// Moves parked rows back to the queue as if new: attempts 0, full batches, due now,
    /// TikTok's answer cleared. The send loop then delivers each once.
    async fn replay(&self, replay: Replay) -> Result<ReplayAnswer> {
        const REQUEUE: &str = "UPDATE queue SET state = 'queued', attempts = 0,
                batch_limit = 1000, next_attempt_ms = ?, done_ms = NULL, http_status = NULL,
                tiktok_code = NULL, message = NULL, hint = NULL
             WHERE state = 'parked'";
        let now = now_ms();
        let sql = self.sql();
        let mut answer = ReplayAnswer {
            replayed: 0,
            not_found: Vec::new(),
        };
        match replay.event_ids {
            None => {
                let rows: Vec<serde::de::IgnoredAny> = sql
                    .exec(&format!("{REQUEUE} RETURNING seq"), vec![int(now)])?
                    .to_array()?;
                answer.replayed = rows.len() as u64;
            }
            Some(ids) => {
                for id in ids {
                    let rows: Vec<serde::de::IgnoredAny> = sql
                        .exec(
                            &format!("{REQUEUE} AND event_id = ? RETURNING seq"),
                            vec![int(now), id.clone().into()],
                        )?
                        .to_array()?;
                    if rows.is_empty() {
                        if !answer.not_found.contains(&id) {
                            answer.not_found.push(id);
                        }
                    } else {
                        answer.replayed += rows.len() as u64;
                    }
                }
            }
        }
        self.count(now, "replayed", answer.replayed)?;
        if answer.replayed > 0 {
            self.ensure_alarm(now).await?;
        }
        Ok(answer)
    }

    /// The connection test: one request at once, within the rate window like the send
    /// loop, recorded in `calls` and health, but never queued nor counted as an event
    /// received, sent or delivered.
    async fn connection_test(&self, test: TestCall) -> Result<Response> {
        let delivery = match self.delivery() {
            Ok(delivery) => delivery,
            Err(error) => return error.into_response(),
        };
        let now = now_ms();
        let mut window = self.rate_window(delivery.rate_limit_per_minute)?;
        if let Err(free_at) = window.check(now) {
            let retry_after_ms = free_at.saturating_sub(now);
            let body = serde_json::json!({
                "error": ApiError::new(
                    429,
                    "rate_limited",
                    "the access token's rate window is full; try again after retry_after_ms",
                ),
                "retry_after_ms": retry_after_ms,
            });
            let response = Response::from_json(&body)?.with_status(429);
            response.headers().set(
                "Retry-After",
                &retry_after_ms.div_ceil(1000).max(1).to_string(),
            )?;
            return Ok(response);
        }
        let element: Box<RawValue> = serde_json::from_str(&test.element)?;
        let key = RequestKey {
            pixel_code: &test.pixel_code,
            test_event_code: test.test_event_code.as_deref(),
        };
        let body = request_body(key, &[&*element]);
        let send = self.record_send(now)?;
        self.count(now, "requests", 1)?;
        let outcome = delivery.post(body).await;
        let answered_at = now_ms();
        self.settle_send(send, answered_at)?;
        self.record_call(
            answered_at,
            outcome.latency_ms,
            1,
            &outcome.verdict,
            outcome.http_status,
        )?;
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

    /// Keeps what the Worker said about reaching TikTok; writes only when it changed.
    fn remember(&self, credentials: &Credentials) -> Result<()> {
        self.sql().exec(
            "INSERT INTO credentials (id, host, sealed_token, rate_limit) VALUES (1, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host,
                sealed_token = excluded.sealed_token, rate_limit = excluded.rate_limit
             WHERE host IS NOT excluded.host OR sealed_token IS NOT excluded.sealed_token
                OR rate_limit IS NOT excluded.rate_limit",
            vec![
                optional_text(credentials.host.clone()),
                optional_text(credentials.sealed_token.clone()),
                i64::from(credentials.rate_limit_per_minute).into(),
            ],
        )?;
        Ok(())
    }

    /// The credentials last remembered; `None` before any call.
    fn credentials(&self) -> Result<Option<Credentials>> {
        #[derive(Deserialize)]
        struct Row {
            host: Option<String>,
            sealed_token: Option<String>,
            rate_limit: f64,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT host, sealed_token, rate_limit FROM credentials",
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|row| Credentials {
            host: row.host,
            sealed_token: row.sealed_token,
            rate_limit_per_minute: row.rate_limit as u32,
        }))
    }

    /// The token and transport for a send: a stored destination's sealed token opened with
    /// `MASTER_KEY`, or the default destination's secret.
    fn delivery(&self) -> std::result::Result<Delivery, ApiError> {
        match self.credentials()? {
            Some(Credentials {
                host: Some(host),
                sealed_token: Some(sealed),
                rate_limit_per_minute,
            }) => {
                let access_token = config::open_token(&self.env, &host, &sealed)?;
                let (api_base, timeout_ms) = config::transport_from_env(&self.env)?;
                Ok(Delivery {
                    api_base,
                    access_token,
                    timeout_ms,
                    rate_limit_per_minute,
                })
            }
            _ => {
                let site = config::load(&self.env)?;
                Ok(Delivery {
                    api_base: site.api_base,
                    access_token: site.access_token,
                    timeout_ms: site.timeout_ms,
                    rate_limit_per_minute: site.rate_limit_per_minute,
                })
            }
        }
    }

    /// Conversions delivered for `query.pixel_code` in each range of days.
    fn conversions(&self, query: &ConversionQuery) -> Result<Vec<u64>> {
        let mut counts = Vec::with_capacity(query.ranges.len());
        for &(first, last) in &query.ranges {
            let rows: Vec<Count> = self
                .sql()
                .exec(
                    "SELECT IFNULL(SUM(delivered), 0) AS n FROM conversions_daily
                     WHERE pixel_code = ? AND day BETWEEN ? AND ?",
                    vec![
                        query.pixel_code.clone().into(),
                        i64::from(first).into(),
                        i64::from(last).into(),
                    ],
                )?
                .to_array()?;
            counts.push(rows.first().map_or(0, |row| row.n as u64));
        }
        Ok(counts)
    }

    fn rate_window(&self, limit: u32) -> Result<SlidingWindow> {
        let sends: Vec<At> = self
            .sql()
            .exec("SELECT at_ms FROM sends", None)?
            .to_array()?;
        Ok(SlidingWindow::per_minute(limit).with_sends(
            sends
                .into_iter()
                .filter_map(|s| s.at_ms)
                .map(|at| at as u64),
        ))
    }

    /// Persists a send before it leaves, so a crash mid-call still counts it.
    fn record_send(&self, now: u64) -> Result<i64> {
        let sql = self.sql();
        sql.exec(
            "DELETE FROM sends WHERE at_ms <= ?",
            vec![int(now.saturating_sub(MINUTE_MS))],
        )?;
        let row: RowId = sql
            .exec(
                "INSERT INTO sends (at_ms) VALUES (?) RETURNING rowid AS id",
                vec![int(now)],
            )?
            .one()?;
        Ok(row.id)
    }

    /// Moves a send to when its answer came back.
    fn settle_send(&self, send: i64, answered_at: u64) -> Result<()> {
        self.sql().exec(
            "UPDATE sends SET at_ms = ? WHERE rowid = ?",
            vec![int(answered_at), send.into()],
        )?;
        Ok(())
    }

    fn record_call(
        &self,
        now: u64,
        latency_ms: u64,
        events: u64,
        verdict: &Verdict,
        http_status: u16,
    ) -> Result<()> {
        let (name, failure) = match verdict {
            Verdict::Delivered => ("delivered", None),
            Verdict::PartiallyDelivered(f) => ("partially_delivered", Some(f)),
            Verdict::Retry(f) => ("retry", Some(f)),
            Verdict::Reject(f) => ("reject", Some(f)),
        };
        self.sql().exec(
            "INSERT INTO calls (at_ms, latency_ms, events, verdict, http_status, tiktok_code,
                message, hint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                int(now),
                int(latency_ms),
                int(events),
                name.into(),
                i64::from(http_status).into(),
                failure
                    .and_then(|f| f.code)
                    .map_or(SqlStorageValue::Null, Into::into),
                optional_text(failure.map(|f| f.message.clone())),
                optional_text(failure.map(|f| f.hint.clone())),
            ],
        )?;
        self.count(now, "calls", 1)?;
        let failed = matches!(verdict, Verdict::Retry(_) | Verdict::Reject(_));
        self.count(now, "failed_calls", u64::from(failed))?;
        self.merge_health(now, Some(latency_ms), None)
    }

    /// Merges a call's latency and/or a match-quality summary into this hour's bucket.
    /// Synchronous SQL: the read and the write cannot interleave with another request.
    fn merge_health(
        &self,
        now: u64,
        latency_ms: Option<u64>,
        quality: Option<&QualitySummary>,
    ) -> Result<()> {
        let hour = health::hour_of(now);
        let sql = self.sql();
        let rows: Vec<HealthRow> = sql
            .exec(
                "SELECT hour, latency, quality FROM health WHERE hour = ?",
                vec![int(hour)],
            )?
            .to_array()?;
        let mut bucket = rows
            .first()
            .map_or_else(|| HourBucket::new(hour), bucket_of);
        if let Some(ms) = latency_ms {
            bucket.latency.record(ms);
        }
        if let Some(quality) = quality {
            bucket.quality.merge(quality);
        }
        sql.exec(
            "INSERT INTO health (hour, latency, quality) VALUES (?, ?, ?)
             ON CONFLICT (hour) DO UPDATE SET latency = excluded.latency,
                quality = excluded.quality",
            vec![
                int(hour),
                serde_json::to_string(&bucket.latency)?.into(),
                serde_json::to_string(&bucket.quality)?.into(),
            ],
        )?;
        Ok(())
    }

    /// Delivery health from the kept hourly buckets, and the current state.
    fn health(&self) -> Result<Health> {
        let now = now_ms();
        let sql = self.sql();
        let since = int(health::oldest_kept_hour(now));
        let metrics: Vec<MetricRow> = sql
            .exec(
                "SELECT hour, metric, value FROM counters WHERE hour >= ?",
                vec![since.clone()],
            )?
            .to_array()?;
        let stored: Vec<HealthRow> = sql
            .exec(
                "SELECT hour, latency, quality FROM health WHERE hour >= ?",
                vec![since],
            )?
            .to_array()?;
        // Buckets of the same hour add up in the report: no need to join them here.
        let mut buckets: Vec<HourBucket> = stored.iter().map(bucket_of).collect();
        for row in metrics {
            let mut bucket = HourBucket::new(row.hour as u64);
            if bucket.counts.add_metric(&row.metric, row.value as u64) {
                buckets.push(bucket);
            }
        }
        let report = health::report(&buckets, now);

        let errors: Vec<ErrorRow> = sql
            .exec(
                "SELECT at_ms, verdict, events, http_status, tiktok_code, message, hint
                 FROM calls WHERE verdict IN ('retry', 'reject')
                 ORDER BY rowid DESC LIMIT ?",
                vec![LAST_ERRORS.into()],
            )?
            .to_array()?;
        Ok(Health {
            now_ms: now,
            windows: report.windows,
            current: Current {
                last_errors: errors
                    .into_iter()
                    .map(|e| LastError {
                        at_ms: e.at_ms as u64,
                        verdict: e.verdict,
                        events: e.events as u64,
                        http_status: e.http_status as u64,
                        tiktok_code: e.tiktok_code.map(|code| code as i64),
                        message: e.message,
                        hint: e.hint,
                    })
                    .collect(),
                queue_depth: self.count_where("queued")?,
                parked: self.count_where("parked")?,
                oldest_queued_age_ms: self.oldest_queued_age_ms(now)?,
                rate_window: self.rate_window_use(now)?,
            },
            emq: report.emq,
            recovery: report.recovery,
        })
    }

    /// How long the oldest queued event has waited.
    fn oldest_queued_age_ms(&self, now: u64) -> Result<Option<u64>> {
        let oldest: Vec<At> = self
            .sql()
            .exec(
                "SELECT MIN(received_ms) AS at_ms FROM queue WHERE state = 'queued'",
                None,
            )?
            .to_array()?;
        Ok(oldest
            .first()
            .and_then(|o| o.at_ms)
            .map(|at| now.saturating_sub(at as u64)))
    }

    /// Sends counted in the current rate window, against the configured limit.
    fn rate_window_use(&self, now: u64) -> Result<RateWindow> {
        let limit = self
            .credentials()?
            .map_or(DEFAULT_LIMIT_PER_MINUTE, |c| c.rate_limit_per_minute);
        let mut window = self.rate_window(limit)?;
        Ok(RateWindow {
            used: window.used(now),
            limit: window.limit(),
        })
    }

    /// Adds `n` to this hour's `metric`.
    fn count(&self, now: u64, metric: &str, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.sql().exec(
            "INSERT INTO counters (hour, metric, value) VALUES (?, ?, ?)
             ON CONFLICT (hour, metric) DO UPDATE SET value = value + excluded.value",
            vec![int(health::hour_of(now)), metric.into(), int(n)],
        )?;
        Ok(())
    }

    /// When the next queued event is due, if any.
    fn next_due(&self) -> Result<Option<u64>> {
        let row: At = self
            .sql()
            .exec(
                "SELECT MIN(next_attempt_ms) AS at_ms FROM queue WHERE state = 'queued'",
                None,
            )?
            .one()?;
        Ok(row.at_ms.map(|at| at as u64))
    }

    fn prune(&self, now: u64) -> Result<()> {
        let sql = self.sql();
        sql.exec(
            "DELETE FROM queue WHERE state = 'delivered' AND done_ms < ?",
            vec![int(now.saturating_sub(DEDUPE_WINDOW_MS))],
        )?;
        sql.exec(
            "DELETE FROM calls WHERE at_ms < ?",
            vec![int(now.saturating_sub(HISTORY_MS))],
        )?;
        // A bucket goes once it ends before the last 7 days.
        let oldest_hour = int(health::oldest_kept_hour(now));
        sql.exec(
            "DELETE FROM counters WHERE hour < ?",
            vec![oldest_hour.clone()],
        )?;
        sql.exec("DELETE FROM health WHERE hour < ?", vec![oldest_hour])?;
        sql.exec(
            "DELETE FROM conversions_daily WHERE day < ?",
            vec![i64::from(day_of(now).saturating_sub(CONVERSION_DAYS_KEPT)).into()],
        )?;
        Ok(())
    }

    fn count_where(&self, state: &str) -> Result<i64> {
        let row: Count = self
            .sql()
            .exec(
                "SELECT COUNT(*) AS n FROM queue WHERE state = ?",
                vec![state.into()],
            )?
            .one()?;
        Ok(row.n)
    }

    /// Queue depth, parked events, counters and recent calls.
    async fn queue_state(&self) -> Result<serde_json::Value> {
        let sql = self.sql();
        let parked = self.parked(ParkedPage {
            limit: ParkedPage::MAX_LIMIT,
            after: 0,
        })?;
        let calls: Vec<CallRow> = sql
            .exec(
                "SELECT at_ms, latency_ms, events, verdict, http_status, tiktok_code, message,
                    hint FROM calls ORDER BY rowid DESC LIMIT 20",
                None,
            )?
            .to_array()?;
        let counters: Vec<CounterRow> = sql
            .exec(
                "SELECT metric, SUM(value) AS total FROM counters GROUP BY metric",
                None,
            )?
            .to_array()?;
        let now = now_ms();
        Ok(serde_json::json!({
            "queued": self.count_where("queued")?,
            "parked": parked.total,
            "oldest_queued_age_ms": self.oldest_queued_age_ms(now)?,
            "alarm_at": self.state.storage().get_alarm().await?,
            "rate_window": self.rate_window_use(now)?,
            "counters": counters
                .iter()
                .map(|c| (c.metric.clone(), c.total.into()))
                .collect::<serde_json::Map<_, _>>(),
            "parked_events": parked.events,
            "recent_calls": calls,
        }))
    }
}

/// The first request's worth of due rows: one pixel and test code, at most the first row's
/// batch limit (halved by earlier 40002 splits).
fn first_batch(due: &[QueuedRow]) -> Option<Vec<&QueuedRow>> {
    let plan = plan_requests(due, |row| RequestKey {
        pixel_code: &row.pixel_code,
        test_event_code: row.test_event_code.as_deref(),
    });
    let (_, indexes) = plan.into_iter().next()?;
    let limit = due[indexes[0]].batch_limit.max(1);
    Some(indexes.into_iter().take(limit).map(|i| &due[i]).collect())
}

/// A stored `health` row as a bucket; a row that does not parse counts as empty (and is
/// logged) rather than failing the whole report.
fn bucket_of(row: &HealthRow) -> HourBucket {
    let mut bucket = HourBucket::new(row.hour as u64);
    bucket.latency = parsed(&row.latency, "latency").unwrap_or_else(LatencyHistogram::new);
    bucket.quality = parsed(&row.quality, "quality").unwrap_or_default();
    bucket
}

fn parsed<T: serde::de::DeserializeOwned>(text: &Option<String>, what: &str) -> Option<T> {
    let text = text.as_deref()?;
    serde_json::from_str(text)
        .map_err(|error| {
            worker::console_error!("health {what} unreadable: {:?}", error.to_string())
        })
        .ok()
}

/// Whether a stored pixel status means the browser pixel could not have seen the event.
fn pixel_unseen(stored: Option<&str>) -> bool {
    health::unseen_by_pixel(stored.and_then(PixelStatus::parse))
}

fn optional_text(value: Option<String>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, SqlStorageValue::String)
}

/// Milliseconds fit a JavaScript number for the next 285,000 years.
fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

/// An absolute alarm time; `set_alarm(i64)` would mean an offset from now.
fn at_epoch_ms(ms: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(worker::js_sys::Date::new(&JsValue::from_f64(ms as f64)))
}
