//! [`MockTikTok`]: a scriptable stand-in for TikTok's Events API on 127.0.0.1.
//!
//! The Worker under test is started with `TIKTOK_API_BASE` pointing at [`MockTikTok::base_url`].
//! The mock records every request it receives (so a test can check exactly what TikTok would have
//! seen, and when) and answers from a script, so a test can make TikTok fail, time out, reject
//! one bad event of a batch, or vanish altogether ([`MockTikTok::stop`]) and come back on the
//! same port ([`MockTikTok::start`]).
//!
//! It runs in-process on the caller's tokio runtime: the accept loop and connections are tokio
//! tasks. With `#[tokio::test]`'s default current-thread runtime the mock only makes progress
//! while the test is awaiting something, which is what tests do anyway (never block the thread
//! with `std::thread::sleep`); `#[tokio::test(flavor = "multi_thread")]` also works.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How the mock answers one request.
#[derive(Clone, Debug, PartialEq)]
pub enum MockResponse {
    /// Answer with this HTTP status and body, after `delay` (to test slow answers and
    /// time-outs that still get an answer eventually).
    Reply {
        /// HTTP status code.
        status: u16,
        /// Response body, sent as is.
        body: String,
        /// `Content-Type` of the body: `application/json`, or `text/html` for a gateway error
        /// page (TikTok's 5xx answers are often HTML).
        content_type: String,
        /// Wait this long before answering.
        delay: Duration,
    },
    /// Read the request, wait `delay`, then close the connection without answering: the
    /// client sees a network error (connection reset / incomplete message).
    Drop {
        /// Wait this long before closing.
        delay: Duration,
    },
    /// Read the request and never answer (until the mock is stopped or dropped): the client
    /// sees its own time-out.
    Hang,
}

impl MockResponse {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &Value) -> Self {
        MockResponse::Reply {
            status,
            body: body.to_string(),
            content_type: "application/json".to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// HTTP 200 with TikTok's envelope `{"code", "message", "request_id": "mock", "data": {}}`.
    /// `code` 0 is success; TikTok reports most errors this way, with HTTP 200.
    pub fn tiktok(code: i64, message: &str) -> Self {
        Self::json(200, &tiktok_body(code, message))
    }

    /// The default answer: HTTP 200, `{"code":0,"message":"OK","request_id":"mock","data":{}}`.
    pub fn ok() -> Self {
        Self::tiktok(0, "OK")
    }

    /// `status` with an HTML body, like the gateway error pages in front of TikTok's API.
    pub fn html(status: u16, body: &str) -> Self {
        MockResponse::Reply {
            status,
            body: body.to_owned(),
            content_type: "text/html".to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// A failure with HTTP `status`, shaped like TikTok's: 5xx get an HTML gateway page, 429
    /// gets code 40100 (too many requests), 200 gets code 50000 (the body carries the error),
    /// any other status gets code 40000 in a JSON body.
    pub fn failure(status: u16) -> Self {
        match status {
            500..=599 => Self::html(
                status,
                &format!("<html><body><h1>{status} Bad Gateway</h1>mock</body></html>"),
            ),
            429 => Self::json(429, &tiktok_body(40100, "Too many requests (mock)")),
            200 => Self::tiktok(50000, "System error (mock)"),
            _ => Self::json(status, &tiktok_body(40000, "mock failure")),
        }
    }

    /// Close the connection without answering.
    pub fn drop_connection() -> Self {
        MockResponse::Drop {
            delay: Duration::ZERO,
        }
    }

    /// Never answer.
    pub fn hang() -> Self {
        MockResponse::Hang
    }

    /// The same answer, given after `delay`. No effect on [`MockResponse::Hang`].
    pub fn with_delay(mut self, delay: Duration) -> Self {
        match &mut self {
            MockResponse::Reply { delay: d, .. } | MockResponse::Drop { delay: d } => *d = delay,
            MockResponse::Hang => {}
        }
        self
    }

    /// Whether this answer means "delivered" to a client that follows the design: HTTP 2xx
    /// and a JSON body whose `code` is 0 (20001, partial success, does not count).
    pub fn is_success(&self) -> bool {
        match self {
            MockResponse::Reply { status, body, .. } => {
                (200..300).contains(status)
                    && serde_json::from_str::<Value>(body)
                        .ok()
                        .and_then(|v| v.get("code").and_then(Value::as_i64))
                        == Some(0)
            }
            _ => false,
        }
    }
}

/// TikTok's response envelope with `code` and `message`.
pub fn tiktok_body(code: i64, message: &str) -> Value {
    json!({"code": code, "message": message, "request_id": "mock", "data": {}})
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Position in [`MockTikTok::requests`] (0-based; restarts after [`MockTikTok::clear`]).
    pub index: usize,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query string, e.g. `/open_api/v1.3/event/track/`.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// When the request (with its whole body) arrived.
    pub received_at: Instant,
    /// The same moment in Unix epoch milliseconds (to compare with timestamps in logs/bodies).
    pub received_at_ms: u64,
    /// What the mock answered (or will answer, for a delayed reply).
    pub answer: MockResponse,
}

impl RecordedRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data[]` elements of a TikTok track request (empty when there are none).
    pub fn data(&self) -> &[Value] {
        self.json
            .as_ref()
            .and_then(|j| j.get("data"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The `event_id` of each `data[]` element, in order (elements without one are skipped).
    pub fn event_ids(&self) -> Vec<String> {
        self.data()
            .iter()
            .filter_map(|e| e.get("event_id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    /// A string field at the top level of the JSON body (e.g. `event_source_id`,
    /// `test_event_code`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.json.as_ref()?.get(name)?.as_str()
    }
}

/// One `data[]` element of a received request.
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    /// Index of the request that carried it, into [`MockTikTok::requests`].
    pub request_index: usize,
    /// When that request arrived.
    pub received_at: Instant,
    /// Whether the mock answered that request with success (see [`MockResponse::is_success`]).
    pub accepted: bool,
    /// The element as sent.
    pub event: Value,
}

impl RecordedEvent {
    /// The element's `event_id`, if it has one.
    pub fn event_id(&self) -> Option<&str> {
        self.event.get("event_id").and_then(Value::as_str)
    }

    /// The element's `event` (TikTok event name), if it has one.
    pub fn event_name(&self) -> Option<&str> {
        self.event.get("event").and_then(Value::as_str)
    }
}

/// A rule that chooses the answer from the request; `None` falls through to the default.
pub type Responder = dyn Fn(&RecordedRequest) -> Option<MockResponse> + Send + Sync;
/// Called with every request as soon as it is recorded (the sandbox prints with it).
pub type Observer = dyn Fn(&RecordedRequest) + Send + Sync;

#[derive(Default)]
struct Counts {
    requests: usize,
    events: usize,
}

struct State {
    requests: Vec<RecordedRequest>,
    script: VecDeque<MockResponse>,
    responder: Option<Arc<Responder>>,
    observer: Option<Arc<Observer>>,
    default: MockResponse,
}

struct Shared {
    state: Mutex<State>,
    counts: watch::Sender<Counts>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking observer/responder must not wedge every later assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A mock of TikTok's Events API on `127.0.0.1:<port>`, see the [module docs](self).
///
/// Answers, in this order of precedence: the next scripted response (queued with
/// [`respond_next`](Self::respond_next), [`fail_next_n`](Self::fail_next_n), …), else the
/// [`respond_with`](Self::respond_with) rule if it returns `Some`, else the default answer
/// (HTTP 200, `{"code":0,"message":"OK","request_id":"mock","data":{}}`, see
/// [`set_default`](Self::set_default)).
pub struct MockTikTok {
    shared: Arc<Shared>,
    port: u16,
    running: Mutex<Option<Running>>,
}

impl fmt::Debug for MockTikTok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockTikTok")
            .field("port", &self.port)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl MockTikTok {
    /// Starts the mock on a free port of 127.0.0.1. Must be called inside a tokio runtime.
    pub async fn start_new() -> anyhow::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts the mock on `port` of 127.0.0.1 (0: a free port).
    pub async fn start_on(port: u16) -> anyhow::Result<Self> {
        let listener = bind(port).await?;
        let port = listener.local_addr()?.port();
        let mock = MockTikTok {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    requests: Vec::new(),
                    script: VecDeque::new(),
                    responder: None,
                    observer: None,
                    default: MockResponse::ok(),
                }),
                counts: watch::Sender::new(Counts::default()),
            }),
            port,
            running: Mutex::new(None),
        };
        mock.serve(listener);
        Ok(mock)
    }

    /// The port it listens on (kept across [`stop`](Self::stop)/[`start`](Self::start)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, the value for the Worker's `TIKTOK_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `<base_url>/open_api/v1.3/event/track/`, where the Worker posts events.
    pub fn track_url(&self) -> String {
        format!("{}/open_api/v1.3/event/track/", self.base_url())
    }

    /// Whether it is accepting connections.
    pub fn is_running(&self) -> bool {
        self.running_guard().is_some()
    }

    /// Stops listening and closes every open connection (also those hanging on
    /// [`MockResponse::Hang`]), so that connecting fails with "connection refused", as when
    /// TikTok is unreachable. Recorded requests and the script are kept. No-op when stopped.
    pub async fn stop(&self) {
        let running = self.running_guard().take();
        if let Some(Running { shutdown, task }) = running {
            let _ = shutdown.send(());
            // The accept loop returns after closing the listener and every connection.
            let _ = task.await;
        }
    }

    /// Listens again on the same port after [`stop`](Self::stop). No-op when running.
    pub async fn start(&self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let listener = bind(self.port).await?;
        self.serve(listener);
        Ok(())
    }

    /// Queues one answer (consumed in order, before the rule and the default).
    pub fn push_response(&self, response: MockResponse) {
        self.shared.lock().script.push_back(response);
    }

    /// Queues an answer with HTTP `status` and JSON `body`.
    pub fn respond_next(&self, status: u16, body: Value) {
        self.push_response(MockResponse::json(status, &body));
    }

    /// Queues `n` failures with HTTP `status`, shaped as [`MockResponse::failure`] describes.
    pub fn fail_next_n(&self, n: usize, status: u16) {
        for _ in 0..n {
            self.push_response(MockResponse::failure(status));
        }
    }

    /// Queues `n` answers HTTP 200 with TikTok error `code` (e.g. 40001 bad token, 40100 rate
    /// limited, 50002).
    pub fn reject_next_n(&self, n: usize, code: i64, message: &str) {
        for _ in 0..n {
            self.push_response(MockResponse::tiktok(code, message));
        }
    }

    /// Replaces the answer given when the script is empty and the rule has no opinion.
    pub fn set_default(&self, response: MockResponse) {
        self.shared.lock().default = response;
    }

    /// Sets the rule consulted when the script is empty: it sees the recorded request and
    /// returns the answer, or `None` for the default. Replaces any earlier rule.
    pub fn respond_with(
        &self,
        rule: impl Fn(&RecordedRequest) -> Option<MockResponse> + Send + Sync + 'static,
    ) {
        self.shared.lock().responder = Some(Arc::new(rule));
    }

    /// A rule for batch-splitting tests: a request whose `data[]` holds an element with one
    /// of `event_ids` gets HTTP 200 with TikTok `code` (typically 40002, bad parameter) and
    /// `message`; every other request gets the default (success).
    pub fn reject_batches_containing(&self, event_ids: &[&str], code: i64, message: &str) {
        let ids: Vec<String> = event_ids.iter().map(|s| (*s).to_owned()).collect();
        let message = message.to_owned();
        self.respond_with(move |req| {
            req.event_ids()
                .iter()
                .any(|id| ids.contains(id))
                .then(|| MockResponse::tiktok(code, &message))
        });
    }

    /// A rule that answers each request with one of `choices`, picked in proportion to its
    /// weight by a [`SeededRng`] seeded with `seed`: the same seed gives the same sequence of
    /// answers to the same sequence of requests. Weights of 0 are never picked; when every
    /// weight is 0 the rule has no opinion (the default answers). Replaces any earlier rule.
    pub fn respond_at_random(&self, seed: u64, choices: Vec<(u32, MockResponse)>) {
        let total: u64 = choices.iter().map(|(w, _)| u64::from(*w)).sum();
        let rng = Mutex::new(SeededRng::new(seed));
        self.respond_with(move |_| {
            if total == 0 {
                return None;
            }
            let mut pick = rng.lock().unwrap_or_else(|e| e.into_inner()).below(total);
            for (weight, answer) in &choices {
                let weight = u64::from(*weight);
                if pick < weight {
                    return Some(answer.clone());
                }
                pick -= weight;
            }
            None
        });
    }

    /// Removes the rule set with [`respond_with`](Self::respond_with).
    pub fn clear_responder(&self) {
        self.shared.lock().responder = None;
    }

    /// Calls `observer` with every request as soon as it is recorded, before answering.
    pub fn on_request(&self, observer: impl Fn(&RecordedRequest) + Send + Sync + 'static) {
        self.shared.lock().observer = Some(Arc::new(observer));
    }

    /// Every request received since the start (or the last [`clear`](Self::clear)).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every `data[]` element received, in arrival order, including those of requests that
    /// were answered with an error (a retried event appears once per attempt). Use
    /// [`accepted_events`](Self::accepted_events) for what counts as delivered.
    pub fn events(&self) -> Vec<RecordedEvent> {
        events_of(&self.shared.lock().requests)
    }

    /// The `event_id` of every `data[]` element received, in arrival order (as
    /// [`events`](Self::events)).
    pub fn event_ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e.event_id().map(str::to_owned))
            .collect()
    }

    /// The `data[]` elements of requests answered with success (HTTP 2xx and `code` 0).
    pub fn accepted_events(&self) -> Vec<RecordedEvent> {
        self.events().into_iter().filter(|e| e.accepted).collect()
    }

    /// Forgets recorded requests. The script, rule and default are kept (see
    /// [`reset`](Self::reset)).
    pub fn clear(&self) {
        self.shared.lock().requests.clear();
        self.shared.counts.send_replace(Counts::default());
    }

    /// Forgets recorded requests, the script and the rule, and restores the default answer.
    pub fn reset(&self) {
        {
            let mut state = self.shared.lock();
            state.script.clear();
            state.responder = None;
            state.default = MockResponse::ok();
        }
        self.clear();
    }

    /// Waits until at least `n` `data[]` elements were received in total (see
    /// [`events`](Self::events)), and returns them all. Fails after `timeout` with a message
    /// that says what did arrive.
    pub async fn wait_for_events(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedEvent>> {
        let mut rx = self.shared.counts.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| c.events >= n)).await;
        if waited.is_err() {
            bail!(
                "mock TikTok: expected at least {n} event(s) within {timeout:?}, got {}",
                self.summary()
            );
        }
        Ok(self.events())
    }

    /// Waits until an element with `event_id` was received (answered with success or not),
    /// and returns the first. Fails after `timeout` with a message that says what did arrive.
    pub async fn wait_for_event(
        &self,
        event_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<RecordedEvent> {
        self.wait_for_event_where(event_id, timeout, |_| true).await
    }

    /// Waits until an element with `event_id` was delivered: received in a request answered
    /// with success.
    pub async fn wait_for_accepted_event(
        &self,
        event_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<RecordedEvent> {
        self.wait_for_event_where(event_id, timeout, |e| e.accepted)
            .await
    }

    async fn wait_for_event_where(
        &self,
        event_id: &str,
        timeout: Duration,
        wanted: impl Fn(&RecordedEvent) -> bool,
    ) -> anyhow::Result<RecordedEvent> {
        // Subscribed before looking, so a request recorded in between still wakes the wait.
        let mut rx = self.shared.counts.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self
                .events()
                .into_iter()
                .find(|e| e.event_id() == Some(event_id) && wanted(e));
            if let Some(found) = found {
                return Ok(found);
            }
            if !matches!(
                tokio::time::timeout_at(deadline, rx.changed()).await,
                Ok(Ok(()))
            ) {
                bail!(
                    "mock TikTok: expected {event_id} within {timeout:?}, got {}",
                    self.summary()
                );
            }
        }
    }

    /// Waits until at least `n` requests were received, and returns them all. Fails after
    /// `timeout` with a message that says what did arrive.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedRequest>> {
        let mut rx = self.shared.counts.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| c.requests >= n)).await;
        if waited.is_err() {
            bail!(
                "mock TikTok: expected at least {n} request(s) within {timeout:?}, got {}",
                self.summary()
            );
        }
        Ok(self.requests())
    }

    /// One line per received request (method, path, answer, event ids), for error messages.
    pub fn summary(&self) -> String {
        let state = self.shared.lock();
        let events: usize = state.requests.iter().map(|r| r.data().len()).sum();
        let mut out = format!("{} request(s) with {events} event(s)", state.requests.len());
        for r in &state.requests {
            let answer = match &r.answer {
                MockResponse::Reply { status, body, .. } => {
                    format!("{status} {}", truncate(body, 80))
                }
                MockResponse::Drop { .. } => "dropped".to_owned(),
                MockResponse::Hang => "hung".to_owned(),
            };
            out.push_str(&format!(
                "\n  #{} {} {} -> {answer}; event_ids {:?}",
                r.index,
                r.method,
                r.path,
                r.event_ids()
            ));
        }
        out
    }

    fn running_guard(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&self, listener: TcpListener) {
        let (shutdown, rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&self.shared), rx));
        *self.running_guard() = Some(Running { shutdown, task });
    }
}

impl Drop for MockTikTok {
    fn drop(&mut self) {
        if let Some(Running { task, .. }) = self.running_guard().take() {
            // Aborting the accept loop drops its listener and its JoinSet, which aborts every
            // connection task.
            task.abort();
        }
    }
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let socket = TcpSocket::new_v4().context("mock TikTok: creating socket")?;
    // Rebinding the same port right after stop() must not fail on TIME_WAIT connections.
    socket
        .set_reuseaddr(true)
        .context("mock TikTok: SO_REUSEADDR")?;
    socket
        .bind(addr)
        .with_context(|| format!("mock TikTok: binding {addr}"))?;
    socket
        .listen(128)
        .with_context(|| format!("mock TikTok: listening on {addr}"))
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
                    // Errors are the client hanging up or a dropped answer: nothing to report.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// The error returned to hyper to close a connection without answering.
#[derive(Debug)]
struct DroppedOnPurpose;

impl fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the mock's script")
    }
}

impl std::error::Error for DroppedOnPurpose {}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, DroppedOnPurpose> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        // The client went away mid-body: nothing was delivered, nothing to record.
        Err(_) => return Err(DroppedOnPurpose),
    };
    let json = serde_json::from_slice(&body).ok();
    let received_at = Instant::now();
    let received_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);

    let mut recorded = RecordedRequest {
        index: 0,
        method,
        path,
        query,
        headers,
        body,
        json,
        received_at,
        received_at_ms,
        answer: MockResponse::Hang,
    };

    // The rule and the observer run outside the lock, so they may call back into the mock.
    // (With concurrent requests, which of two simultaneous arrivals takes the next scripted
    // answer is up to the scheduler; the Worker's Dispatcher sends one request at a time.)
    let (scripted, responder, default) = {
        let mut state = shared.lock();
        (
            state.script.pop_front(),
            state.responder.clone(),
            state.default.clone(),
        )
    };
    recorded.answer = match scripted {
        Some(answer) => answer,
        None => responder
            .and_then(|rule| rule(&recorded))
            .unwrap_or(default),
    };
    let answer = recorded.answer.clone();
    let observer = {
        let mut state = shared.lock();
        recorded.index = state.requests.len();
        let observer = state.observer.clone();
        state.requests.push(recorded.clone());
        let events = state.requests.iter().map(|r| r.data().len()).sum();
        let requests = state.requests.len();
        shared.counts.send_replace(Counts { requests, events });
        observer
    };
    if let Some(observer) = observer {
        observer(&recorded);
    }

    match answer {
        MockResponse::Reply {
            status,
            body,
            content_type,
            delay,
        } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            if let Ok(value) = content_type.parse() {
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, value);
            }
            Ok(response)
        }
        MockResponse::Drop { delay } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Err(DroppedOnPurpose)
        }
        MockResponse::Hang => {
            std::future::pending::<Infallible>().await;
            unreachable!("pending() never completes")
        }
    }
}

/// A small deterministic pseudo-random generator (SplitMix64): the same seed always gives the
/// same numbers, on every machine, so a test that picks answers or loads at random can be run
/// again exactly. Not for anything that must be unpredictable.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), without modulo bias worth speaking of for the
    /// small `n` of tests (Lemire's multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high` (`low` when `high < low`).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low).saturating_add(1))
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn events_of(requests: &[RecordedRequest]) -> Vec<RecordedEvent> {
    requests
        .iter()
        .flat_map(|r| {
            let accepted = r.answer.is_success();
            r.data().iter().map(move |event| RecordedEvent {
                request_index: r.index,
                received_at: r.received_at,
                accepted,
                event: event.clone(),
            })
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rng_repeats_and_stays_in_range() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.below(7)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.below(7)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| x < 7));
        // Every value of a small range comes up.
        assert!((0..7).all(|v| xs.contains(&v)));
        assert_ne!(SeededRng::new(1).next_u64(), SeededRng::new(2).next_u64());
        let mut c = SeededRng::new(3);
        assert!((0..1000)
            .map(|_| c.between(2, 100))
            .all(|x| (2..=100).contains(&x)));
        assert_eq!(SeededRng::new(5).below(0), 0);
        assert_eq!(SeededRng::new(5).between(9, 3), 9);
    }

    #[tokio::test]
    async fn random_answers_follow_the_weights_and_the_seed() -> anyhow::Result<()> {
        let mock = MockTikTok::start_new().await?;
        let client = crate::http_client();
        let mut runs = Vec::new();
        for _ in 0..2 {
            mock.reset();
            mock.respond_at_random(
                7,
                vec![
                    (1, MockResponse::failure(503)),
                    (0, MockResponse::ok()),
                    (3, MockResponse::tiktok(40100, "slow down")),
                ],
            );
            for _ in 0..40 {
                client.post(mock.track_url()).body("{}").send().await?;
            }
            let answers: Vec<MockResponse> =
                mock.requests().into_iter().map(|r| r.answer).collect();
            assert!(answers.iter().all(|a| !a.is_success()), "{answers:?}");
            assert!(answers.contains(&MockResponse::failure(503)));
            assert!(answers.contains(&MockResponse::tiktok(40100, "slow down")));
            runs.push(answers);
        }
        assert_eq!(runs[0], runs[1], "the same seed gives the same answers");
        Ok(())
    }
}
