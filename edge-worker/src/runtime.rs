//! What core may not do itself: the clock, randomness, request headers and bodies, and
//! calls to Durable Objects.

use futures_util::StreamExt;
use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::{Date, Env, Headers, Method, Request, RequestInit, Response, Result, SqlStorage};

/// Milliseconds since the epoch. In workerd the clock only advances across I/O.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// `N` bytes from `crypto.getRandomValues` (getrandom's `wasm_js` backend).
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|error| worker::Error::RustError(format!("no randomness: {error}")))?;
    Ok(bytes)
}

/// Runs a Durable Object's `CREATE ... IF NOT EXISTS` statements when the object starts.
/// `exec` is synchronous, so the schema exists before the first request; a failure is
/// logged (the first query will then say what is missing) rather than panicking.
pub fn create_schema(sql: &SqlStorage, statements: &[&str], object: &str) {
    for statement in statements {
        if let Err(error) = sql.exec(statement, None) {
            worker::console_error!("{object} schema: {error}");
        }
    }
}

/// Calls the Durable Object `name` of `binding` at `path` with `headers`, and `body` as JSON
/// when there is one.
pub async fn call_object(
    env: &Env,
    binding: &str,
    name: &str,
    method: Method,
    path: &str,
    headers: Headers,
    body: Option<&impl Serialize>,
) -> Result<Response> {
    let stub = env
        .durable_object(binding)?
        .id_from_name(name)?
        .get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        headers.set("Content-Type", "application/json")?;
        init.with_body(Some(JsValue::from_str(&serde_json::to_string(body)?)));
    }
    init.with_headers(headers);
    // A stub ignores the host; only the path matters.
    let request = Request::new_with_init(&format!("https://object{path}"), &init)?;
    stub.fetch_with_request(request).await
}

/// A request header's value without the optional whitespace around it (RFC 9110, 5.5), so
/// `"203.0.113.9 "` and `"203.0.113.9"` are one address; `None` when absent.
pub fn header(req: &Request, name: &str) -> Result<Option<String>> {
    Ok(req
        .headers()
        .get(name)?
        .map(|value| value.trim_matches([' ', '\t']).to_string()))
}

/// The request body, or `None` once it holds more than `limit` bytes. Reading stops there:
/// a body without `Content-Length` (chunked) is never buffered past the limit.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Option<Vec<u8>>> {
    let declared: Option<usize> =
        header(req, "Content-Length")?.and_then(|length| length.parse().ok());
    if declared.is_some_and(|length| length > limit) {
        return Ok(None);
    }
    // A request without a body (a GET, or an empty POST) has no stream.
    let Ok(mut stream) = req.stream() else {
        return Ok(Some(Vec::new()));
    };
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The first value of query parameter `name` in `url`.
pub fn query(url: &worker::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
