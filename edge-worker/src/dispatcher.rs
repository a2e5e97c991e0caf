//! The Dispatcher Durable Object: one per access token. It stores events durably in its SQLite
//! storage before answering, then sends them to TikTok from its alarm.
//!
//! Skeleton: batching, the sliding-window rate limit, retry classification and parking are
//! still to come (from `ttedge-core`); the storage, alarm and outbound-fetch plumbing is real.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::wasm_bindgen::JsValue;
use worker::{
    durable_object, AbortSignal, Date, DurableObject, Env, Fetch, Headers, Method, Request,
    RequestInit, Response, Result, ScheduledTime, SqlStorage, SqlStorageValue, State,
};

use crate::{json_error, Config};

/// Created on every start of the object; `IF NOT EXISTS` makes that idempotent.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS pending (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        body        TEXT    NOT NULL,
        received_ms INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS deliveries (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms       INTEGER NOT NULL,
        events      INTEGER NOT NULL,
        http_status INTEGER,
        code        INTEGER,
        outcome     TEXT    NOT NULL,
        detail      TEXT    NOT NULL
    )",
];

/// Events sent per TikTok request (TikTok allows 1,000).
const BATCH_LIMIT: i64 = 1000;
/// How long an alarm waits after the first event of a batch, to let a batch fill.
const FLUSH_DELAY_MS: i64 = 1000;
/// An alarm this far past due is taken as lost and set again.
const STALE_ALARM_MS: i64 = 30_000;
/// Attempts before the skeleton stops re-arming the alarm for a failing batch.
const MAX_ATTEMPTS: i64 = 4;

// `alarm` generates the `fetch` and `alarm` exports only (no WebSocket or connect glue).
#[durable_object(alarm)]
pub struct Dispatcher {
    state: State,
    env: Env,
}

impl DurableObject for Dispatcher {
    fn new(state: State, env: Env) -> Self {
        // `exec` is synchronous, so the schema exists before any event is delivered.
        let sql = state.storage().sql();
        for statement in SCHEMA {
            if let Err(err) = sql.exec(statement, None) {
                worker::console_error!("dispatcher schema: {err}");
            }
        }
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/enqueue") => self.enqueue(req).await,
            (Method::Get, "/status") => self.status().await,
            _ => json_error(404, "no such dispatcher route"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // An `Err` here makes the runtime retry the alarm (with back-off); storage errors only.
        self.flush().await?;
        Response::ok("flushed")
    }
}

/// A row of `pending`, read back through serde. SQLite integers arrive as JS numbers.
#[derive(Debug, Deserialize)]
struct PendingRow {
    id: i64,
    body: String,
    attempts: i64,
}

/// A row of `deliveries`; nullable columns are `Option`s.
#[derive(Debug, Deserialize, Serialize)]
struct DeliveryRow {
    id: i64,
    at_ms: i64,
    events: i64,
    http_status: Option<i64>,
    code: Option<i64>,
    outcome: String,
    detail: String,
}

#[derive(Deserialize)]
struct IdRow {
    id: i64,
}

#[derive(Deserialize)]
struct CountRow {
    n: i64,
}

/// What one request to TikTok came to.
struct Delivery {
    http_status: Option<u16>,
    code: Option<i64>,
    outcome: &'static str,
    detail: String,
}

impl Dispatcher {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// `POST /enqueue`: store the element, make sure an alarm will send it, answer.
    async fn enqueue(&self, mut req: Request) -> Result<Response> {
        let body = req.text().await?;
        let now = now_ms();
        let inserted: IdRow = self
            .sql()
            .exec(
                "INSERT INTO pending (body, received_ms) VALUES (?, ?) RETURNING id",
                vec![body.into(), now.into()],
            )?
            .one()?;

        let storage = self.state.storage();
        let alarm_at = match storage.get_alarm().await? {
            // Re-arm an alarm long past due: `wrangler dev` forgets scheduled alarms when it
            // restarts or reloads while `get_alarm` still reports them (workerd#3566).
            Some(at) if at > now - STALE_ALARM_MS => at,
            _ => {
                let at = now + FLUSH_DELAY_MS;
                storage.set_alarm(at_epoch_ms(at)).await?;
                at
            }
        };
        Response::from_json(&json!({
            "accepted": 1,
            "id": inserted.id,
            "pending": self.pending_count()?,
            "alarm_at": alarm_at,
        }))
    }

    /// `GET /status`: pending count, next alarm and the latest deliveries.
    async fn status(&self) -> Result<Response> {
        let deliveries: Vec<DeliveryRow> = self
            .sql()
            .exec(
                "SELECT id, at_ms, events, http_status, code, outcome, detail
                 FROM deliveries ORDER BY id DESC LIMIT 20",
                None,
            )?
            .to_array()?;
        Response::from_json(&json!({
            "dispatcher": self.state.id().to_string(),
            "name": self.state.id().name(),
            "pending": self.pending_count()?,
            "alarm_at": self.state.storage().get_alarm().await?,
            "deliveries": deliveries,
        }))
    }

    fn pending_count(&self) -> Result<i64> {
        let row: CountRow = self
            .sql()
            .exec("SELECT COUNT(*) AS n FROM pending", None)?
            .one()?;
        Ok(row.n)
    }

    /// Sends the oldest batch to TikTok and records the outcome.
    async fn flush(&self) -> Result<()> {
        let rows: Vec<PendingRow> = self
            .sql()
            .exec(
                "SELECT id, body, attempts FROM pending ORDER BY id LIMIT ?",
                vec![BATCH_LIMIT.into()],
            )?
            .to_array()?;
        let Some(last_id) = rows.last().map(|row| row.id) else {
            return Ok(());
        };
        let attempts = rows.iter().map(|row| row.attempts).max().unwrap_or(0) + 1;

        let config = Config::from_env(&self.env);
        // Each body was serialised by the Worker; a row that no longer parses is sent as null.
        let data: Vec<Value> = rows
            .iter()
            .map(|row| serde_json::from_str(&row.body).unwrap_or(Value::Null))
            .collect();
        let payload = json!({
            "event_source": "web",
            "event_source_id": config.pixel_id.as_deref().unwrap_or_default(),
            "data": data,
        });
        let delivery = send(&config, &payload).await;

        let sql = self.sql();
        sql.exec(
            "INSERT INTO deliveries (at_ms, events, http_status, code, outcome, detail)
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                now_ms().into(),
                SqlStorageValue::Integer(rows.len() as i64),
                delivery.http_status.map(i64::from).into(),
                delivery.code.into(),
                delivery.outcome.into(),
                delivery.detail.into(),
            ],
        )?;

        let storage = self.state.storage();
        if delivery.outcome == "sent" {
            // Ids grow monotonically, so `<= last_id` is exactly this batch, even if events
            // were enqueued while the request was in flight.
            sql.exec("DELETE FROM pending WHERE id <= ?", vec![last_id.into()])?;
            if self.pending_count()? > 0 {
                storage.set_alarm(at_epoch_ms(now_ms())).await?;
            }
        } else {
            sql.exec(
                "UPDATE pending SET attempts = attempts + 1 WHERE id <= ?",
                vec![last_id.into()],
            )?;
            if attempts < MAX_ATTEMPTS {
                // TODO(core): retry classes and the 500 / 1,000 / 2,000 ms schedule.
                storage
                    .set_alarm(at_epoch_ms(now_ms() + (500 << (attempts - 1))))
                    .await?;
            }
        }
        Ok(())
    }
}

/// One `POST {TIKTOK_API_BASE}/open_api/v1.3/event/track/`, bounded by a time-out.
async fn send(config: &Config, payload: &Value) -> Delivery {
    let url = format!(
        "{}/open_api/v1.3/event/track/",
        config.api_base.trim_end_matches('/')
    );
    let request = match track_request(&url, config.access_token.as_deref(), payload) {
        Ok(request) => request,
        Err(err) => return Delivery::failed(None, "bad_request", err.to_string()),
    };
    // `AbortSignal.timeout()` aborts the fetch, including the body read, after the time-out.
    let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(
        config.fetch_timeout_ms,
    ));
    let mut response = match Fetch::Request(request).send_with_signal(&signal).await {
        Ok(response) => response,
        Err(err) if signal.aborted() => return Delivery::failed(None, "timeout", err.to_string()),
        Err(err) => return Delivery::failed(None, "network_error", err.to_string()),
    };
    let status = response.status_code();
    let text = match response.text().await {
        Ok(text) => text,
        Err(err) if signal.aborted() => {
            return Delivery::failed(Some(status), "timeout", err.to_string())
        }
        Err(err) => return Delivery::failed(Some(status), "network_error", err.to_string()),
    };
    // TikTok answers `{"code": 0, "message": "OK", ...}`; errors often come with HTTP 200.
    let body: Option<Value> = serde_json::from_str(&text).ok();
    let code = body.as_ref().and_then(|b| b.get("code")?.as_i64());
    let message = body
        .as_ref()
        .and_then(|b| b.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect());
    let outcome = match (status, code) {
        (200..=299, Some(0)) => "sent",
        _ => "failed",
    };
    Delivery {
        http_status: Some(status),
        code,
        outcome,
        detail: message,
    }
}

fn track_request(url: &str, access_token: Option<&str>, payload: &Value) -> Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Access-Token", access_token.unwrap_or_default())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&serde_json::to_string(payload)?)));
    Request::new_with_init(url, &init)
}

impl Delivery {
    fn failed(http_status: Option<u16>, outcome: &'static str, detail: String) -> Self {
        Self {
            http_status,
            code: None,
            outcome,
            detail,
        }
    }
}

/// Milliseconds since the epoch. (In workerd the clock only advances across I/O.)
fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// An absolute alarm time. `set_alarm(i64)` / `set_alarm(Duration)` mean an offset from now.
fn at_epoch_ms(ms: i64) -> ScheduledTime {
    ScheduledTime::new(worker::js_sys::Date::new(&JsValue::from_f64(ms as f64)))
}
