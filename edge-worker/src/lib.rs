//! ttedge-worker: the Cloudflare Worker around `ttedge-core`.
//!
//! This is the I/O shell: routing, headers, configuration, the Dispatcher Durable Object and
//! outbound fetch. Every rule of the domain belongs in `ttedge-core`; this crate should read
//! like a list of steps that call it.

mod dispatcher;

use serde::Serialize;
use serde_json::{json, Value};
use worker::wasm_bindgen::JsValue;
use worker::{event, Context, Date, Env, Headers, Method, Request, RequestInit, Response, Result};

pub use dispatcher::Dispatcher;

/// Durable Object binding of the Dispatcher (`[[durable_objects.bindings]]` in wrangler.toml).
const DISPATCHER_BINDING: &str = "DISPATCHER";
/// Largest `/collect` body accepted (DESIGN: 64 KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default TikTok API base when the `TIKTOK_API_BASE` var is unset.
const DEFAULT_API_BASE: &str = "https://business-api.tiktok.com";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let outcome = match (req.method(), req.path().as_str()) {
        (Method::Get, "/healthz") => healthz(&env),
        (Method::Post, "/collect") => collect(req, &env).await,
        // Skeleton-only window onto the Dispatcher's SQLite state; to go behind ADMIN_TOKEN.
        (Method::Get, "/status") => dispatcher_status(&env).await,
        _ => json_error(404, "not found"),
    };
    // Never let an error escape as workerd's bare 500 "Error: ..." page.
    outcome.or_else(|err| {
        worker::console_error!("request failed: {err}");
        json_error(500, "internal error")
    })
}

/// `GET /healthz`: configuration as seen by the Worker, plus proof that randomness works.
fn healthz(env: &Env) -> Result<Response> {
    let config = Config::from_env(env);
    Response::from_json(&json!({
        "ok": true,
        "service": "ttedge",
        "now_ms": Date::now().as_millis(),
        "api_base": config.api_base,
        "rate_limit_per_minute": config.rate_limit_per_minute,
        "site_origins": config.site_origins,
        "has_access_token": config.access_token.is_some(),
        "nonce": hex(&random_bytes::<8>()?),
    }))
}

/// `POST /collect`: read the body and headers, hand the event to the Dispatcher, relay its answer.
async fn collect(mut req: Request, env: &Env) -> Result<Response> {
    let user_agent = req.headers().get("User-Agent")?;
    let ip = req.headers().get("CF-Connecting-IP")?;
    let body = req.bytes().await?;
    if body.len() > MAX_BODY_BYTES {
        return json_error(413, "body larger than 64 KiB");
    }
    // `text/plain` (sendBeacon) and `application/json` bodies are parsed the same way.
    let event: Value = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(err) => return json_error(400, &format!("body is not JSON: {err}")),
    };

    // TODO(core): map, hash, score and build the TikTok `data[]` element here.
    let element = json!({
        "event": event,
        "user": { "user_agent": user_agent, "ip": ip },
    });

    let config = Config::from_env(env);
    let answer = enqueue(env, &config.dispatcher_name(), &element).await?;
    Response::from_json(&answer).map(|response| response.with_status(202))
}

/// Skeleton-only: `GET /status` of the default Dispatcher.
async fn dispatcher_status(env: &Env) -> Result<Response> {
    let name = Config::from_env(env).dispatcher_name();
    let stub = env
        .durable_object(DISPATCHER_BINDING)?
        .id_from_name(&name)?
        .get_stub()?;
    let mut answer = stub
        .fetch_with_request(Request::new("https://dispatcher/status", Method::Get)?)
        .await?;
    let body: Value = answer.json().await?;
    Response::from_json(&body)
}

/// Posts one element to the Dispatcher named `name` and returns its JSON answer.
async fn enqueue(env: &Env, name: &str, element: &impl Serialize) -> Result<Value> {
    let stub = env
        .durable_object(DISPATCHER_BINDING)?
        .id_from_name(name)?
        .get_stub()?;
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&serde_json::to_string(element)?)));
    // The host is ignored by a Durable Object stub; only the path matters.
    let request = Request::new_with_init("https://dispatcher/enqueue", &init)?;
    let mut answer = stub.fetch_with_request(request).await?;
    if answer.status_code() >= 400 {
        let detail = answer.text().await.unwrap_or_default();
        return Err(worker::Error::RustError(format!(
            "dispatcher answered {}: {detail}",
            answer.status_code()
        )));
    }
    answer.json().await
}

/// Configuration from `wrangler.toml` vars and secrets. Nothing here panics when one is missing.
pub(crate) struct Config {
    pub api_base: String,
    pub rate_limit_per_minute: u32,
    pub site_origins: Vec<String>,
    pub pixel_id: Option<String>,
    pub access_token: Option<String>,
    pub fetch_timeout_ms: u32,
}

impl Config {
    pub fn from_env(env: &Env) -> Self {
        Self {
            api_base: var(env, "TIKTOK_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
            rate_limit_per_minute: var(env, "RATE_LIMIT_PER_MINUTE")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1000),
            site_origins: var(env, "SITE_ORIGINS")
                .map(|v| {
                    v.split([',', ' '])
                        .filter(|o| !o.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            pixel_id: var(env, "TIKTOK_PIXEL_ID"),
            access_token: secret(env, "TIKTOK_ACCESS_TOKEN"),
            fetch_timeout_ms: var(env, "TIKTOK_TIMEOUT_MS")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(10_000),
        }
    }

    /// Name of the Dispatcher for this destination: a hex string, never the token itself.
    ///
    /// TODO(core): use the SHA-256 hex of the access token, so one Dispatcher counts one
    /// token's rate limit.
    pub fn dispatcher_name(&self) -> String {
        hex(self.pixel_id.as_deref().unwrap_or("default").as_bytes())
    }
}

/// A `[vars]` value (or `--var`), `None` when unset or empty.
pub(crate) fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A secret (`wrangler secret put`, `.dev.vars` or `--var`), `None` when unset or empty.
pub(crate) fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// `N` random bytes from `crypto.getRandomValues` (getrandom's `wasm_js` backend).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|err| worker::Error::RustError(format!("getrandom: {err}")))?;
    Ok(bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

pub(crate) fn json_error(status: u16, message: &str) -> Result<Response> {
    Response::from_json(&json!({ "error": message })).map(|response| response.with_status(status))
}
