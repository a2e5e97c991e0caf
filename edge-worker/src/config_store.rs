//! The Config Durable Object: one destination per site host, for every shop this Worker
//! serves, and the failed admin logins per IP that slow down guessing.
//!
//! There is a single instance (named [`INSTANCE`]): destinations change rarely and are read
//! through each isolate's short cache (`config::for_host`), so one object is never busy.
//! Access tokens arrive here already sealed under `MASTER_KEY` by the Worker and are only
//! ever handed back sealed: this object never sees a token in clear.

use serde::{Deserialize, Serialize};
use ttedge_core::destination::{Baseline, DestinationSettings};
use ttedge_core::quality::MatchQuality;

use crate::dispatcher::client::TestAnswer;
use ttedge_core::throttle::LoginThrottle;
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, Result, SqlStorage,
    SqlStorageValue, State,
};

use crate::error::ApiError;
use crate::runtime::{self, now_ms};

/// Binding name in wrangler.toml.
const BINDING: &str = "CONFIG";
/// The one object's name.
const INSTANCE: &str = "destinations";
/// Baselines kept per destination, newest last.
const MAX_BASELINES: usize = 24;

const SCHEMA: &[&str] = &[
    // `record` is a `StoredDestination` as JSON: one read gives everything `/collect` needs.
    "CREATE TABLE IF NOT EXISTS destinations (
        host   TEXT PRIMARY KEY,
        record TEXT NOT NULL
    )",
    // Dashboard sessions ended by a logout, until they would have expired anyway.
    "CREATE TABLE IF NOT EXISTS ended_sessions (
        id         TEXT PRIMARY KEY,
        expires_ms INTEGER NOT NULL
    )",
    // A core `LoginThrottle` per client IP, as JSON; deleted once stale.
    "CREATE TABLE IF NOT EXISTS login_failures (
        ip       TEXT PRIMARY KEY,
        state    TEXT NOT NULL,
        stale_ms INTEGER NOT NULL
    )",
];

/// One destination as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDestination {
    /// The site host `/collect` is served on, lower-case.
    pub host: String,
    /// Everything but the token (`settings.access_token` is always `None` here).
    pub settings: DestinationSettings,
    /// The access token sealed under `MASTER_KEY` with `host` as associated data.
    pub sealed_token: String,
    /// The token as answers show it: its last 4 characters.
    pub token_mask: String,
    /// Pixel conversion counts imported from Ads Manager, oldest first.
    #[serde(default)]
    pub baselines: Vec<Baseline>,
    /// When the settings last changed, epoch ms.
    pub updated_ms: u64,
    /// The last connection test's result, shown on the dashboard's card until the next one.
    #[serde(default)]
    pub last_test: Option<LastTest>,
    /// When a connection test last passed, epoch ms; `None` when none has since the pixel
    /// or the token last changed. The dashboard asks before turning such a destination live.
    #[serde(default)]
    pub test_passed_ms: Option<u64>,
    /// The order webhook's secret sealed under `MASTER_KEY` (with
    /// [`crate::config::webhook_seal_data`]); `None`: the webhook is off.
    #[serde(default)]
    pub sealed_webhook_secret: Option<String>,
}

/// A connection test's result as the destination keeps it: TikTok's answer and the test
/// event's match quality (never the token, nor the event's data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastTest {
    /// When it ran, epoch ms.
    pub at_ms: u64,
    /// TikTok's answer, as the Dispatcher gave it (its fields sit at this level in JSON).
    #[serde(flatten)]
    pub answer: TestAnswer,
    /// The test event's match quality, with its coaching.
    pub emq: Option<MatchQuality>,
}

/// A `PUT`: new settings, and a newly sealed token unless the stored one is kept.
#[derive(Debug, Serialize, Deserialize)]
pub struct Put {
    /// The site host.
    pub host: String,
    /// The validated settings (without the token).
    pub settings: DestinationSettings,
    /// `(sealed token, mask)` when a token was given.
    pub token: Option<(String, String)>,
    /// The sealed webhook secret when one was given; `None` keeps the stored one.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

/// What a `PUT` did.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutAnswer {
    /// The destination as now stored.
    pub stored: StoredDestination,
    /// Whether it is new.
    pub created: bool,
}

/// The stored destination of `host`, if any. Hosts are checked site hosts (letters, digits,
/// dots, hyphens), so they go in the path as they are.
pub async fn get(
    env: &Env,
    host: &str,
) -> std::result::Result<Option<StoredDestination>, ApiError> {
    let path = format!("/get/{host}");
    let mut response = call(env, Method::Get, &path, None::<&()>).await?;
    match response.status_code() {
        200 => Ok(Some(response.json().await?)),
        404 => Ok(None),
        _ => Err(relay(&mut response).await),
    }
}

/// Every stored destination, by host.
pub async fn list(env: &Env) -> std::result::Result<Vec<StoredDestination>, ApiError> {
    let mut response = call(env, Method::Get, "/list", None::<&()>).await?;
    ok_json(&mut response).await
}

/// Creates or replaces a destination (baselines are kept). A new destination needs a token.
pub async fn put(env: &Env, put: &Put) -> std::result::Result<PutAnswer, ApiError> {
    let mut response = call(env, Method::Put, "/put", Some(put)).await?;
    let answer: Option<PutAnswer> = ok_json(&mut response).await?;
    answer.ok_or_else(|| {
        ApiError::invalid_field(
            "access_token",
            "access_token is required for a new destination",
        )
    })
}

/// Keeps a connection test's result on the destination (its settings and `updated_ms` are
/// left as they are); `None` when there is no such destination.
pub async fn record_test(
    env: &Env,
    host: &str,
    test: &LastTest,
) -> std::result::Result<Option<StoredDestination>, ApiError> {
    let body = TestRecord {
        host: host.to_string(),
        test: test.clone(),
    };
    let mut response = call(env, Method::Post, "/tested", Some(&body)).await?;
    optional_json(&mut response).await
}

/// Deletes a destination; `false` when there was none.
pub async fn delete(env: &Env, host: &str) -> std::result::Result<bool, ApiError> {
    let path = format!("/delete/{host}");
    let mut response = call(env, Method::Delete, &path, None::<&()>).await?;
    match response.status_code() {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(relay(&mut response).await),
    }
}

/// Turns a destination's `live` switch; `None` when there is no such destination.
pub async fn set_live(
    env: &Env,
    host: &str,
    live: bool,
) -> std::result::Result<Option<StoredDestination>, ApiError> {
    let body = LiveSwitch {
        host: host.to_string(),
        live,
    };
    let mut response = call(env, Method::Post, "/live", Some(&body)).await?;
    optional_json(&mut response).await
}

/// Adds a baseline (replacing one of the same period); `None` when there is no such
/// destination.
pub async fn add_baseline(
    env: &Env,
    host: &str,
    baseline: &Baseline,
) -> std::result::Result<Option<StoredDestination>, ApiError> {
    let body = BaselineAdd {
        host: host.to_string(),
        baseline: baseline.clone(),
    };
    let mut response = call(env, Method::Post, "/baseline", Some(&body)).await?;
    optional_json(&mut response).await
}

/// Milliseconds until `ip` may try to log in again; `None` when it may now.
pub async fn login_locked(env: &Env, ip: &str) -> std::result::Result<Option<u64>, ApiError> {
    login(env, "/login/check", ip).await
}

/// Records a failed login from `ip`; answers how long it is now locked out, if at all.
pub async fn login_failed(env: &Env, ip: &str) -> std::result::Result<Option<u64>, ApiError> {
    login(env, "/login/failed", ip).await
}

/// Forgets `ip`'s failures after a successful login.
pub async fn login_succeeded(env: &Env, ip: &str) -> std::result::Result<(), ApiError> {
    login(env, "/login/succeeded", ip).await.map(|_| ())
}

/// `POST /live`: a destination's live switch.
#[derive(Debug, Serialize, Deserialize)]
struct LiveSwitch {
    host: String,
    live: bool,
}

/// `POST /baseline`: a baseline for a destination.
#[derive(Debug, Serialize, Deserialize)]
struct BaselineAdd {
    host: String,
    baseline: Baseline,
}

/// `POST /tested`: a connection test's result for a destination.
#[derive(Debug, Serialize, Deserialize)]
struct TestRecord {
    host: String,
    test: LastTest,
}

/// `POST /login/...`: the client IP a login attempt came from.
#[derive(Debug, Serialize, Deserialize)]
struct LoginFrom {
    ip: String,
}

/// A dashboard session, by its id (`session::id`).
#[derive(Debug, Serialize, Deserialize)]
struct SessionRef {
    id: String,
    expires_ms: u64,
}

/// Ends the session `id` (expiring at `expires_ms`) on the server: a copy of its cookie is
/// refused from now on.
pub async fn end_session(
    env: &Env,
    id: &str,
    expires_ms: u64,
) -> std::result::Result<(), ApiError> {
    let session = SessionRef {
        id: id.to_string(),
        expires_ms,
    };
    let mut response = call(env, Method::Post, "/session/end", Some(&session)).await?;
    ok_json(&mut response).await
}

/// Whether a logout ended the session `id`.
pub async fn session_ended(env: &Env, id: &str) -> std::result::Result<bool, ApiError> {
    let session = SessionRef {
        id: id.to_string(),
        expires_ms: 0,
    };
    let mut response = call(env, Method::Post, "/session/ended", Some(&session)).await?;
    ok_json(&mut response).await
}

async fn login(env: &Env, path: &str, ip: &str) -> std::result::Result<Option<u64>, ApiError> {
    let body = LoginFrom { ip: ip.to_string() };
    let mut response = call(env, Method::Post, path, Some(&body)).await?;
    ok_json(&mut response).await
}

async fn ok_json<T: serde::de::DeserializeOwned>(
    response: &mut Response,
) -> std::result::Result<T, ApiError> {
    if response.status_code() == 200 {
        Ok(response.json().await?)
    } else {
        Err(relay(response).await)
    }
}

async fn optional_json<T: serde::de::DeserializeOwned>(
    response: &mut Response,
) -> std::result::Result<Option<T>, ApiError> {
    match response.status_code() {
        404 => Ok(None),
        _ => ok_json(response).await.map(Some),
    }
}

/// An unexpected answer of the object, logged, as a 503.
async fn relay(response: &mut Response) -> ApiError {
    let detail = response.text().await.unwrap_or_default();
    worker::console_error!(
        "config object answered {}: {detail:?}",
        response.status_code()
    );
    ApiError::new(
        503,
        "config_unavailable",
        "the destination store is unavailable; try again",
    )
}

async fn call(
    env: &Env,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
) -> Result<Response> {
    runtime::call_object(env, BINDING, INSTANCE, method, path, Headers::new(), body).await
}

/// The Config Durable Object.
#[durable_object]
pub struct Config {
    state: State,
}

impl DurableObject for Config {
    fn new(state: State, _env: Env) -> Self {
        runtime::create_schema(&state.storage().sql(), SCHEMA, "config");
        Config { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Get, "/list") => Response::from_json(&self.all()?),
            (Method::Get, path) if path.starts_with("/get/") => found(self.find(&path[5..])?),
            (Method::Put, "/put") => Response::from_json(&self.put(req.json().await?)?),
            (Method::Delete, path) if path.starts_with("/delete/") => {
                let host = &path["/delete/".len()..];
                let deleted = self.find(host)?.is_some();
                self.sql()
                    .exec("DELETE FROM destinations WHERE host = ?", vec![host.into()])?;
                found(deleted.then_some(()))
            }
            (Method::Post, "/live") => {
                let LiveSwitch { host, live } = req.json().await?;
                found(self.update(&host, |stored| stored.settings.live = live)?)
            }
            (Method::Post, "/baseline") => {
                let BaselineAdd { host, baseline } = req.json().await?;
                found(self.update(&host, |stored| {
                    let kept = &mut stored.baselines;
                    kept.retain(|b| (&b.from, &b.to) != (&baseline.from, &baseline.to));
                    kept.push(baseline);
                    let excess = kept.len().saturating_sub(MAX_BASELINES);
                    kept.drain(..excess);
                })?)
            }
            (Method::Post, "/tested") => {
                let TestRecord { host, test } = req.json().await?;
                found(self.record_test(&host, test)?)
            }
            (Method::Post, "/session/end") => {
                Response::from_json(&self.end_session(req.json().await?)?)
            }
            (Method::Post, "/session/ended") => {
                let SessionRef { id, .. } = req.json().await?;
                Response::from_json(&self.session_ended(&id)?)
            }
            (Method::Post, path) if path.starts_with("/login/") => {
                let LoginFrom { ip } = req.json().await?;
                Response::from_json(&self.login(&path["/login/".len()..], &ip)?)
            }
            _ => ApiError::new(404, "not_found", "no such config route").into_response(),
        }
    }
}

/// 200 with the value, or 404 when there is none.
fn found<T: Serialize>(value: Option<T>) -> Result<Response> {
    match value {
        Some(value) => Response::from_json(&value),
        None => ApiError::new(404, "unknown_destination", "no such destination").into_response(),
    }
}

#[derive(Deserialize)]
struct RecordRow {
    record: String,
}

impl Config {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn all(&self) -> Result<Vec<StoredDestination>> {
        let rows: Vec<RecordRow> = self
            .sql()
            .exec("SELECT record FROM destinations ORDER BY host", None)?
            .to_array()?;
        rows.iter()
            .map(|row| Ok(serde_json::from_str(&row.record)?))
            .collect()
    }

    fn find(&self, host: &str) -> Result<Option<StoredDestination>> {
        let rows: Vec<RecordRow> = self
            .sql()
            .exec(
                "SELECT record FROM destinations WHERE host = ?",
                vec![host.into()],
            )?
            .to_array()?;
        match rows.first() {
            Some(row) => Ok(Some(serde_json::from_str(&row.record)?)),
            None => Ok(None),
        }
    }

    fn save(&self, stored: &StoredDestination) -> Result<()> {
        self.sql().exec(
            "INSERT INTO destinations (host, record) VALUES (?, ?)
             ON CONFLICT (host) DO UPDATE SET record = excluded.record",
            vec![
                stored.host.clone().into(),
                serde_json::to_string(stored)?.into(),
            ],
        )?;
        Ok(())
    }

    /// Replaces the settings; `None` (nothing stored) for a new destination without a token.
    fn put(&self, put: Put) -> Result<Option<PutAnswer>> {
        let existing = self.find(&put.host)?;
        let created = existing.is_none();
        // A test that passed speaks for the same pixel and token only.
        let (last_test, test_passed_ms) = match &existing {
            Some(e) if put.token.is_none() && e.settings.pixel_id == put.settings.pixel_id => {
                (e.last_test.clone(), e.test_passed_ms)
            }
            _ => (None, None),
        };
        let sealed_webhook_secret = match (put.webhook_secret, &existing) {
            (Some(sealed), _) => Some(sealed),
            (None, Some(existing)) => existing.sealed_webhook_secret.clone(),
            (None, None) => None,
        };
        let (sealed_token, token_mask, baselines) = match (put.token, existing) {
            (Some((sealed, mask)), existing) => (
                sealed,
                mask,
                existing.map(|e| e.baselines).unwrap_or_default(),
            ),
            (None, Some(existing)) => (
                existing.sealed_token,
                existing.token_mask,
                existing.baselines,
            ),
            (None, None) => return Ok(None),
        };
        let stored = StoredDestination {
            sealed_webhook_secret,
            host: put.host,
            settings: put.settings,
            sealed_token,
            token_mask,
            baselines,
            updated_ms: now_ms(),
            last_test,
            test_passed_ms,
        };
        self.save(&stored)?;
        Ok(Some(PutAnswer { stored, created }))
    }

    /// Keeps a test's result; the settings and `updated_ms` stay as they are.
    fn record_test(&self, host: &str, test: LastTest) -> Result<Option<StoredDestination>> {
        let Some(mut stored) = self.find(host)? else {
            return Ok(None);
        };
        if test.answer.ok {
            stored.test_passed_ms = Some(test.at_ms);
        }
        stored.last_test = Some(test);
        self.save(&stored)?;
        Ok(Some(stored))
    }

    fn update(
        &self,
        host: &str,
        change: impl FnOnce(&mut StoredDestination),
    ) -> Result<Option<StoredDestination>> {
        let Some(mut stored) = self.find(host)? else {
            return Ok(None);
        };
        change(&mut stored);
        stored.updated_ms = now_ms();
        self.save(&stored)?;
        Ok(Some(stored))
    }

    /// Records a logout; sessions past their expiry are forgotten (their cookies fail anyway).
    fn end_session(&self, session: SessionRef) -> Result<()> {
        let sql = self.sql();
        sql.exec(
            "INSERT OR REPLACE INTO ended_sessions (id, expires_ms) VALUES (?, ?)",
            vec![
                session.id.into(),
                SqlStorageValue::Integer(session.expires_ms as i64),
            ],
        )?;
        sql.exec(
            "DELETE FROM ended_sessions WHERE expires_ms <= ?",
            vec![SqlStorageValue::Integer(now_ms() as i64)],
        )?;
        Ok(())
    }

    fn session_ended(&self, id: &str) -> Result<bool> {
        let rows: Vec<serde::de::IgnoredAny> = self
            .sql()
            .exec("SELECT 1 FROM ended_sessions WHERE id = ?", vec![id.into()])?
            .to_array()?;
        Ok(!rows.is_empty())
    }

    /// `check`, `failed` or `succeeded` for one IP; answers the lock-out left, if any.
    fn login(&self, action: &str, ip: &str) -> Result<Option<u64>> {
        let now = now_ms();
        let sql = self.sql();
        #[derive(Deserialize)]
        struct StateRow {
            state: String,
        }
        let rows: Vec<StateRow> = sql
            .exec(
                "SELECT state FROM login_failures WHERE ip = ?",
                vec![ip.into()],
            )?
            .to_array()?;
        let mut throttle: LoginThrottle = rows
            .first()
            .and_then(|row| serde_json::from_str(&row.state).ok())
            .unwrap_or_default();
        match action {
            "failed" => throttle.record_failure(now),
            "succeeded" => throttle.record_success(),
            _ => return Ok(throttle.retry_after_ms(now)),
        }
        sql.exec(
            "INSERT INTO login_failures (ip, state, stale_ms) VALUES (?, ?, ?)
             ON CONFLICT (ip) DO UPDATE SET state = excluded.state, stale_ms = excluded.stale_ms",
            vec![
                ip.into(),
                serde_json::to_string(&throttle)?.into(),
                SqlStorageValue::Integer(throttle.stale_from_ms() as i64),
            ],
        )?;
        // Stale entries, this IP's after a success included, go: the table stays small.
        sql.exec(
            "DELETE FROM login_failures WHERE stale_ms <= ?",
            vec![SqlStorageValue::Integer(now as i64)],
        )?;
        Ok(throttle.retry_after_ms(now))
    }
}
