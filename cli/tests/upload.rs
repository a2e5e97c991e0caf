//! `ttedge send` uploading to a local HTTP server that answers as the Worker's upload
//! endpoint does (per-line `ready`/`duplicate`/`rejected`, deduplicated by event_id), or
//! fails as told: the HTTP side of the command (retries, Retry-After, refusals, the token,
//! what the bodies hold) and its journal. The real Worker is in tests/tests/offline_send.rs.
//!
//! Expected SHA-256 values were computed with coreutils, independently of ttedge:
//!   printf '%s' 'buyer@example.com' | sha256sum
//!   printf '%s' '442079460958' | sha256sum

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use serde_json::{json, Value};

const BUYER_EMAIL: &str = "6a6c26195c3682faa816966af789717c3bfa834eee6c599d667d2b3429c27cfd";
const BUYER_PHONE: &str = "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823";
const TOKEN: &str = "admin-token-e2b7-never-printed";
const SITE: &str = "t.shop.test";
const NOW: &str = "2025-12-01T00:00:00Z";

/// What the server does with the next request.
#[derive(Clone)]
enum Reply {
    /// Answers every line as the Worker would.
    Worker,
    /// Answers this status and body, with an optional Retry-After.
    Status(u16, &'static str, Option<&'static str>),
    /// Closes the connection without answering.
    Drop,
    /// Answers as the Worker, but rejects lines whose event_id is this one.
    Reject(&'static str),
}

/// A request the server got.
struct Got {
    path: String,
    authorization: Option<String>,
    body: String,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    /// What to do once the script is used up.
    then: Option<Reply>,
    got: Vec<Got>,
    stored: HashSet<String>,
}

struct Server {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start(script: Vec<Reply>, then: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            then: Some(then),
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        });
        Server { url, state }
    }

    fn set_then(&self, then: Reply) {
        self.state.lock().unwrap().then = Some(then);
    }

    fn bodies(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.got.iter().map(|got| got.body.clone()).collect()
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().got.len()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut length = 0;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or_default();
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "authorization" => authorization = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    let mut state = state.lock().unwrap();
    let reply = match state.script.pop_front() {
        Some(reply) => reply,
        None => state.then.clone().unwrap_or(Reply::Worker),
    };
    state.got.push(Got {
        path,
        authorization,
        body: body.clone(),
    });
    let (status, text, retry_after) = match reply {
        Reply::Drop => return,
        Reply::Status(status, text, retry_after) => (status, text.to_string(), retry_after),
        Reply::Worker => (202, answer(&body, &mut state.stored, None), None),
        Reply::Reject(id) => (202, answer(&body, &mut state.stored, Some(id)), None),
    };
    drop(state);
    let mut stream = reader.into_inner();
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    if let Some(seconds) = retry_after {
        head.push_str(&format!("Retry-After: {seconds}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
}

/// The Worker's answer: per non-blank line, indexed among them, deduplicated by event_id.
fn answer(body: &str, stored: &mut HashSet<String>, reject: Option<&str>) -> String {
    let events: Vec<Value> = body
        .split('\n')
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let event: Value = serde_json::from_str(line).unwrap();
            let id = event["event_id"].as_str().unwrap().to_string();
            if reject == Some(id.as_str()) {
                return json!({"index": index, "event_id": id, "status": "rejected",
                    "reason": "too old: TikTok accepts offline events up to 7 days old"});
            }
            let status = if stored.insert(id.clone()) {
                "ready"
            } else {
                "duplicate"
            };
            json!({"index": index, "event_id": id, "status": status})
        })
        .collect();
    let accepted = events.iter().filter(|e| e["status"] == "ready").count();
    json!({"accepted": accepted, "live": true, "events": events}).to_string()
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("upload");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(journal(&path));
    path
}

fn journal(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.ttedge-journal", path.display()))
}

fn send(path: &Path, server: &Server, extra: &[&str]) -> std::process::Output {
    send_to(path, &server.url, extra)
}

fn send_to(path: &Path, endpoint: &str, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("ttedge")
        .unwrap()
        .arg("send")
        .arg(path)
        .args(["--endpoint", endpoint, "--now", NOW])
        .args(["--retry-base-ms", "1", "--json"])
        .args(if extra.contains(&"--site") {
            &[][..]
        } else {
            &["--site", SITE][..]
        })
        .args(extra)
        .env("TTEDGE_ADMIN_TOKEN", TOKEN)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap()
}

fn summary(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"))
}

/// Five good rows, one bad one (line 4), with clear email and phone.
const ORDERS: &[u8] = b"order_id,email,phone,total,currency,created_at\n\
1,Buyer@Example.com,+44 20 7946 0958,10,GBP,2025-11-25 10:02:00\n\
2,b2@example.com,,11,GBP,2025-11-25 10:02:00\n\
3,,,12,GBP,2025-11-25 10:02:00\n\
4,b4@example.com,,13,GBP,2025-11-25 10:02:00\n\
5,b5@example.com,+1 555 010 9999,14,GBP,2025-11-25 10:02:00\n\
6,b6@example.com,,15,GBP,2025-11-25 10:02:00\n";

fn ids(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .flat_map(|body| body.split('\n'))
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            event["event_id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn uploads_hashes_only_after_retrying_429_5xx_and_a_dropped_connection() {
    let server = Server::start(
        vec![
            Reply::Status(429, r#"{"error":{"code":"rate_limited"}}"#, Some("0")),
            Reply::Status(503, r#"{"error":{"code":"unavailable"}}"#, None),
            Reply::Drop,
        ],
        Reply::Worker,
    );
    let path = write("orders.csv", ORDERS);
    let output = send(&path, &server, &[]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "line 4 is rejected: {output:?}"
    );
    let summary = summary(&output);
    let upload = &summary["upload"];
    assert_eq!(upload["accepted"], 5, "{summary:#}");
    assert_eq!(upload["duplicates"], 0);
    assert_eq!(upload["unsent"], 0);
    assert_eq!(summary["rejected"][0]["line"], 4);

    let state = server.state.lock().unwrap();
    assert_eq!(state.got.len(), 4, "three failures, then the answer");
    for got in &state.got {
        assert_eq!(got.path, format!("/admin/api/destinations/{SITE}/offline"));
        assert_eq!(
            got.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(got.body, state.got[0].body, "the same chunk each time");
    }
    let body = &state.got[3].body;
    let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(first["event_id"], "CompletePayment-1");
    assert_eq!(first["event"], "CompletePayment");
    assert_eq!(first["source"], "offline");
    // date -u -d '2025-11-25 10:02:00' +%s → 1764064920
    assert_eq!(first["timestamp"], 1_764_064_920_000_i64);
    assert_eq!(first["user_data"]["email_hash"], BUYER_EMAIL);
    assert_eq!(first["user_data"]["phone_hash"], BUYER_PHONE);
    assert_eq!(first["properties"]["value"], 10.0);
    assert_eq!(first["properties"]["currency"], "GBP");
    assert_eq!(first["properties"]["order_id"], "1");
    // Nothing personal in clear leaves the machine, and the token is never printed.
    let lower = body.to_lowercase();
    for clear in ["example.com", "7946", "0958", "555 010", "5550109999", "@"] {
        assert!(!lower.contains(clear), "{clear} in {body}");
    }
    let shown = format!("{output:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn chunks_are_journaled_and_a_rerun_sends_only_the_rest() {
    // Two chunks of two answered, then the server fails for good.
    let server = Server::start(
        vec![Reply::Worker, Reply::Worker],
        Reply::Status(503, "{}", None),
    );
    let path = write("resume.csv", ORDERS);
    let output = send(&path, &server, &["--chunk-events", "2", "--retries", "2"]);
    assert_eq!(output.status.code(), Some(3), "gave up: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gave up after 3 attempts"), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let first = summary(&output);
    assert_eq!(first["upload"]["sent_this_run"], 4, "{first:#}");
    assert_eq!(first["upload"]["unsent"], 1);
    assert_eq!(server.requests(), 2 + 3);
    let journal_text = std::fs::read_to_string(journal(&path)).unwrap();
    assert_eq!(journal_text.lines().count(), 3, "a header and two chunks");

    server.set_then(Reply::Worker);
    let output = send(&path, &server, &["--chunk-events", "2"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let second = summary(&output);
    assert_eq!(second["upload"]["resumed"], 4, "{second:#}");
    assert_eq!(second["upload"]["sent_this_run"], 1);
    assert_eq!(second["upload"]["accepted"], 5);
    assert_eq!(second["upload"]["unsent"], 0);
    let bodies = server.bodies();
    assert_eq!(
        ids(&bodies[bodies.len() - 1..]),
        ["CompletePayment-6"],
        "only the rest"
    );

    // Done: a third run sends nothing and says so.
    let before = server.requests();
    let output = send(&path, &server, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(server.requests(), before);
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing to send"));
    assert_eq!(summary(&output)["upload"]["accepted"], 5);
}

#[test]
fn without_its_journal_a_resend_is_answered_duplicate() {
    let server = Server::start(vec![], Reply::Worker);
    let path = write("lost.csv", ORDERS);
    // Everything is stored, then the journal is lost: the rows are sent again.
    let output = send(&path, &server, &["--chunk-events", "2", "--retries", "0"]);
    assert_eq!(output.status.code(), Some(1));
    std::fs::remove_file(journal(&path)).unwrap();
    let output = send(&path, &server, &["--chunk-events", "2"]);
    assert_eq!(output.status.code(), Some(1));
    let summary = summary(&output);
    assert_eq!(summary["upload"]["accepted"], 0, "{summary:#}");
    assert_eq!(summary["upload"]["duplicates"], 5);
}

#[test]
fn worker_rejections_are_reported_with_their_file_lines() {
    let server = Server::start(vec![Reply::Reject("CompletePayment-5")], Reply::Worker);
    let path = write("refused.csv", ORDERS);
    let output = Command::cargo_bin("ttedge")
        .unwrap()
        .arg("send")
        .arg(&path)
        .args(["--endpoint", &server.url, "--site", SITE, "--now", NOW])
        .env("TTEDGE_ADMIN_TOKEN", TOKEN)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("rejected line 4: no identifier"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rejected line 6: refused by the Worker: too old"),
        "{stdout}"
    );
    assert!(
        stdout.contains("4 accepted, 0 answered duplicate by the Worker, 1 rejected by the Worker"),
        "{stdout}"
    );
    assert!(
        stdout.contains("against the offline threshold of 50"),
        "{stdout}"
    );
    // Plain progress lines when stderr is not a terminal.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ttedge: sent 5 of 5 rows"), "{stderr}");
}

#[test]
fn refusals_stop_with_the_workers_error() {
    let server = Server::start(
        vec![Reply::Status(
            401,
            r#"{"error":{"code":"unauthorized","message":"a valid admin token is needed"}}"#,
            None,
        )],
        Reply::Worker,
    );
    let path = write("refusal.csv", ORDERS);
    let output = send(&path, &server, &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused the upload with 401") && stderr.contains("a valid admin token"),
        "{stderr}"
    );
    assert_eq!(server.requests(), 1, "a 401 is not retried");
    // Nothing confirmed: the journal holds its header only.
    let journal_text = std::fs::read_to_string(journal(&path)).unwrap();
    assert_eq!(journal_text.lines().count(), 1);
}

#[test]
fn usage_errors_name_what_is_missing() {
    let path = write("usage-send.csv", ORDERS);
    let server = Server::start(vec![], Reply::Worker);
    let output = Command::cargo_bin("ttedge")
        .unwrap()
        .arg("send")
        .arg(&path)
        .args(["--endpoint", &server.url, "--site", SITE])
        .env_remove("TTEDGE_ADMIN_TOKEN")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TTEDGE_ADMIN_TOKEN is not set"));

    let output = send_to(&path, "t.shop.test", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--endpoint \"t.shop.test\""));
    assert_eq!(server.requests(), 0);
    assert!(
        !journal(&path).exists(),
        "no journal before anything is sent"
    );
}

#[test]
fn a_changed_file_is_not_resumed() {
    let server = Server::start(vec![], Reply::Worker);
    let path = write("changed.csv", ORDERS);
    assert_eq!(send(&path, &server, &[]).status.code(), Some(1));
    let mut changed = ORDERS.to_vec();
    changed.extend_from_slice(b"7,b7@example.com,,16,GBP,2025-11-25 10:02:00\n");
    std::fs::write(&path, changed).unwrap();
    let before = server.requests();
    let output = send(&path, &server, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("belongs to another run: the file's content changed"),
        "{stderr}"
    );
    assert_eq!(server.requests(), before);
    // Another site with the same file: refused as well.
    std::fs::write(&path, ORDERS).unwrap();
    let output = send(&path, &server, &["--site", "u.shop.test"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--site changed"));
}
