//! Tools of the hostile-input suite (`tests/tests/hostile.rs`): a raw HTTP/1.1 client and a
//! strict reader of the Worker's `Set-Cookie` headers.
//!
//! reqwest (through the `http` crate) refuses much of what a hostile client sends: unknown
//! methods are fine, but raw non-ASCII or control bytes in header values, a `Host` that is
//! not a host, a chunked body that stalls before its last chunk, or a `Content-Length` that
//! lies are not. [`send`] writes exactly the bytes it is given over a plain `TcpStream`, on a
//! blocking thread, and reads the answer while it is still writing, so an answer that comes
//! before the body has ended (a server that stops reading at its limit) is seen as such.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// One request, byte for byte.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// Any token: `POST`, `PROPFIND`, …
    pub method: String,
    /// The request target as written on the request line (`/collect?x=1`).
    pub target: String,
    /// Header lines in order, values as raw bytes (`Host` included by the caller).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: RawBody,
}

/// A request body and its framing.
#[derive(Clone, Debug, Default)]
pub struct RawBody {
    /// `Content-Length: n` or `Transfer-Encoding: chunked`, added after the other headers.
    pub framing: Vec<(String, String)>,
    /// Written right after the head.
    pub wire: Vec<u8>,
    /// Written after `wire`: once [`SendOptions::stall`] has passed or the answer has begun,
    /// whichever comes first (at once without a stall). For a chunked body: the last chunk
    /// (`0\r\n\r\n`).
    pub tail: Vec<u8>,
}

impl RawBody {
    /// No body and no framing header.
    pub fn none() -> Self {
        RawBody::default()
    }

    /// `Content-Length` with the body's length.
    pub fn fixed(bytes: Vec<u8>) -> Self {
        RawBody {
            framing: vec![("Content-Length".into(), bytes.len().to_string())],
            wire: bytes,
            tail: Vec::new(),
        }
    }

    /// `Content-Length: declared`, but `bytes` on the wire (a lying length).
    pub fn declared(declared: usize, bytes: Vec<u8>) -> Self {
        RawBody {
            framing: vec![("Content-Length".into(), declared.to_string())],
            wire: bytes,
            tail: Vec::new(),
        }
    }

    /// `Content-Length` of the whole body, of which only `head` bytes are sent before the
    /// stall and the rest after it.
    pub fn fixed_split(bytes: Vec<u8>, head: usize) -> Self {
        let head = head.min(bytes.len());
        RawBody {
            framing: vec![("Content-Length".into(), bytes.len().to_string())],
            wire: bytes[..head].to_vec(),
            tail: bytes[head..].to_vec(),
        }
    }

    /// `Transfer-Encoding: chunked`, no `Content-Length`: `bytes` cut into chunks of
    /// `chunk_size` (at least 1); the last chunk is the tail.
    pub fn chunked(bytes: &[u8], chunk_size: usize) -> Self {
        let mut wire = Vec::with_capacity(bytes.len() + bytes.len() / chunk_size.max(1) * 8);
        for chunk in bytes.chunks(chunk_size.max(1)) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        RawBody {
            framing: vec![("Transfer-Encoding".into(), "chunked".into())],
            wire,
            tail: b"0\r\n\r\n".to_vec(),
        }
    }

    /// A chunked body whose chunks are written as given (sizes, extensions, trailers: the
    /// caller's), with no tail.
    pub fn chunked_raw(wire: Vec<u8>) -> Self {
        RawBody {
            framing: vec![("Transfer-Encoding".into(), "chunked".into())],
            wire,
            tail: Vec::new(),
        }
    }

    /// Both headers at once (request smuggling's classic): `Content-Length: declared` and
    /// `Transfer-Encoding: chunked`, with `wire` as written.
    pub fn both(declared: usize, wire: Vec<u8>) -> Self {
        RawBody {
            framing: vec![
                ("Content-Length".into(), declared.to_string()),
                ("Transfer-Encoding".into(), "chunked".into()),
            ],
            wire,
            tail: Vec::new(),
        }
    }

    /// Every byte of the body as sent (wire and tail).
    pub fn bytes(&self) -> Vec<u8> {
        let mut all = self.wire.clone();
        all.extend_from_slice(&self.tail);
        all
    }
}

/// How to send.
#[derive(Clone, Copy, Debug)]
pub struct SendOptions {
    /// Give up on the answer after this long.
    pub timeout: Duration,
    /// Hold the body's tail back this long, or until the answer starts; then send it, so
    /// that a server which finishes its answer only after the request has ended (workerd
    /// does, for a streamed answer) can finish.
    pub stall: Option<Duration>,
    /// After the answer, keep reading (and dropping) until the server closes the
    /// connection, for at most this long, before closing it: a client that hangs up at once
    /// on a server that has not read the whole body leaves `wrangler dev` stalling the next
    /// request. `None`: close at once.
    pub linger: Option<Duration>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            timeout: Duration::from_secs(15),
            stall: None,
            linger: None,
        }
    }
}

/// One answer.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// The final status (interim `100 Continue` answers are skipped).
    pub status: u16,
    /// Headers in order, names lower-cased, values lossy UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The answer's head arrived before the body's tail was written (always `false` for a
    /// request without a tail).
    pub answered_before_body_end: bool,
    /// From the first byte written to the last byte read.
    pub elapsed: Duration,
}

impl RawResponse {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name` (lower-case), such as each `set-cookie`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` to `addr` and reads the answer (on a blocking thread, so the caller's tokio
/// runtime, and the mock TikTok on it, keep running).
pub async fn send(
    addr: SocketAddr,
    req: RawRequest,
    opts: SendOptions,
) -> anyhow::Result<RawResponse> {
    tokio::task::spawn_blocking(move || send_blocking(addr, &req, opts))
        .await
        .context("the raw HTTP task panicked")?
}

/// The bytes of the request head (request line, headers, framing, blank line).
pub fn head_bytes(req: &RawRequest) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(format!("{} {} HTTP/1.1\r\n", req.method, req.target).as_bytes());
    for (name, value) in &req.headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in &req.body.framing {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn send_blocking(
    addr: SocketAddr,
    req: &RawRequest,
    opts: SendOptions,
) -> anyhow::Result<RawResponse> {
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true).ok();
    stream.set_write_timeout(Some(opts.timeout)).ok();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let mut writer = stream.try_clone().context("cloning the socket")?;
    let tail_written = Arc::new(AtomicBool::new(false));
    let (answered_tx, answered_rx) = mpsc::channel::<()>();

    let head = head_bytes(req);
    let wire = req.body.wire.clone();
    let tail = req.body.tail.clone();
    let stall = opts.stall;
    let tail_flag = Arc::clone(&tail_written);
    let write_thread = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&head)?;
        for piece in wire.chunks(64 * 1024) {
            writer.write_all(piece)?;
        }
        if let Some(stall) = stall {
            if answered_rx.recv_timeout(stall).is_ok() {
                // Answered before the end (already recorded): the tail goes now, and a
                // server that has stopped listening may refuse it.
                let _ = writer.write_all(&tail).and_then(|()| writer.flush());
                tail_flag.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
        writer.write_all(&tail)?;
        writer.flush()?;
        tail_flag.store(true, Ordering::SeqCst);
        Ok(())
    });

    let has_tail = !req.body.tail.is_empty();
    let result = read_response(&stream, &req.method, started + opts.timeout, || {
        let early = has_tail && !tail_written.load(Ordering::SeqCst);
        let _ = answered_tx.send(());
        early
    });
    if let (Ok(_), Some(linger)) = (&result, opts.linger) {
        let until = Instant::now() + linger;
        let mut sink = [0u8; 16 * 1024];
        while Instant::now() < until {
            match (&stream).read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
            }
        }
    }
    // Unblocks a writer stuck on a full socket buffer (a server that stopped reading).
    let _ = stream.shutdown(Shutdown::Both);
    let _ = write_thread.join();
    let (status, headers, body, early) = result?;
    Ok(RawResponse {
        status,
        headers,
        body,
        answered_before_body_end: early,
        elapsed: started.elapsed(),
    })
}

type Parsed = (u16, Vec<(String, String)>, Vec<u8>, bool);

/// Reads one answer. `on_head` runs once, when the final head has arrived, and says whether
/// that was before the body's end.
fn read_response(
    mut stream: &TcpStream,
    method: &str,
    deadline: Instant,
    on_head: impl FnOnce() -> bool,
) -> anyhow::Result<Parsed> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut eof = false;
    let mut fill = |buf: &mut Vec<u8>, eof: &mut bool| -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if Instant::now() >= deadline {
                bail!("no complete answer before the time-out");
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    *eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::Interrupted) => continue,
                Err(e) => {
                    // A reset after the answer was sent: what was read is what there is.
                    *eof = true;
                    if buf.is_empty() {
                        return Err(anyhow!("reading the answer: {e}"));
                    }
                    return Ok(());
                }
            }
        }
    };
    // The head, skipping interim 1xx answers.
    let (status, headers) = loop {
        let end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            if eof {
                bail!(
                    "the connection closed before an answer's head ({} bytes: {:?})",
                    buf.len(),
                    String::from_utf8_lossy(&buf[..buf.len().min(200)])
                );
            }
            fill(&mut buf, &mut eof)?;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not a status line: {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if (100..200).contains(&status) {
            continue;
        }
        break (status, headers);
    };
    let early = on_head();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let no_body = method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304;
    let body = if no_body {
        Vec::new()
    } else if header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(&buf, b"\r\n") {
                    break pos;
                }
                if eof {
                    bail!("the chunked answer ended early");
                }
                fill(&mut buf, &mut eof)?;
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size {size_text:?} in the answer"))?;
            buf.drain(..line_end + 2);
            if size == 0 {
                break;
            }
            while buf.len() < size + 2 {
                if eof {
                    bail!("the chunked answer ended inside a chunk");
                }
                fill(&mut buf, &mut eof)?;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
        body
    } else if let Some(len) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        while buf.len() < len {
            if eof {
                bail!("the answer ended after {} of {len} bytes", buf.len());
            }
            fill(&mut buf, &mut eof)?;
        }
        buf.truncate(len);
        buf
    } else {
        while !eof {
            fill(&mut buf, &mut eof)?;
        }
        buf
    };
    Ok((status, headers, body, early))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One `Set-Cookie` of `/collect`, read strictly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectCookie {
    /// `_ttp` or `ttclid`.
    pub name: String,
    /// The value: cookie-octets only.
    pub value: String,
    /// The `Domain` attribute, if any.
    pub domain: Option<String>,
    /// The `Max-Age` attribute.
    pub max_age: u64,
}

/// Reads a `Set-Cookie` value of `/collect`, which must be exactly
/// `name=value[; Domain=d]; Path=/; Max-Age=n; Secure; SameSite=Lax` with `name` `_ttp` or
/// `ttclid`, a non-empty value of RFC 6265 cookie-octets, and a lower-case domain without a
/// leading or trailing dot. The error says what is wrong.
pub fn parse_collect_cookie(header: &str) -> Result<CollectCookie, String> {
    let mut parts = header.split("; ");
    let pair = parts.next().unwrap_or_default();
    let (name, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("no name=value in {header:?}"))?;
    if name != "_ttp" && name != "ttclid" {
        return Err(format!("unexpected cookie name {name:?} in {header:?}"));
    }
    if value.is_empty() {
        return Err(format!("empty value in {header:?}"));
    }
    if let Some(bad) = value.chars().find(|&c| !is_cookie_octet(c)) {
        return Err(format!(
            "value holds {bad:?}, not a cookie-octet, in {header:?}"
        ));
    }
    let rest: Vec<&str> = parts.collect();
    let (domain, rest) = match rest.first().and_then(|p| p.strip_prefix("Domain=")) {
        Some(domain) => (Some(domain.to_string()), &rest[1..]),
        None => (None, &rest[..]),
    };
    if let Some(domain) = &domain {
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if domain.len() > 253 || !domain.split('.').all(valid_label) {
            return Err(format!("Domain {domain:?} is not a domain in {header:?}"));
        }
    }
    let max_age = match rest {
        [path, max_age, secure, same_site]
            if *path == "Path=/" && *secure == "Secure" && *same_site == "SameSite=Lax" =>
        {
            max_age
                .strip_prefix("Max-Age=")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| format!("bad Max-Age {max_age:?} in {header:?}"))?
        }
        _ => {
            return Err(format!(
                "attributes are not `[Domain=…; ]Path=/; Max-Age=…; Secure; SameSite=Lax` in {header:?}"
            ))
        }
    };
    Ok(CollectCookie {
        name: name.to_string(),
        value: value.to_string(),
        domain,
        max_age,
    })
}

/// RFC 6265 cookie-octet: `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
pub fn is_cookie_octet(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x2B' | '\x2D'..='\x3A' | '\x3C'..='\x5B' | '\x5D'..='\x7E')
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The hidden fields (name, value) of the HTML form whose `action` is `action`, so a test
/// can submit the form the page shows, whatever it carries (a CSRF token, say).
pub fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let marker = format!("action=\"{action}\"");
    let Some(at) = html.find(&marker) else {
        return Vec::new();
    };
    let start = html[..at].rfind("<form").unwrap_or(at);
    let end = html[at..].find("</form>").map_or(html.len(), |e| at + e);
    let form = &html[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let from = tag.find(&key)? + key.len();
        let to = tag[from..].find('"')? + from;
        Some(
            tag[from..to]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        )
    };
    form.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_cookies_are_read_strictly() {
        let ok = parse_collect_cookie(
            "_ttp=abc.1-2_3; Domain=shop.test; Path=/; Max-Age=34128000; Secure; SameSite=Lax",
        )
        .unwrap();
        assert_eq!(ok.domain.as_deref(), Some("shop.test"));
        assert_eq!(ok.max_age, 34_128_000);
        assert!(parse_collect_cookie(
            "ttclid=E.C.P.x; Path=/; Max-Age=2592000; Secure; SameSite=Lax"
        )
        .is_ok());
        for bad in [
            "_ttp=a b; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=\"q\"; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=a,b; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=caf\u{e9}; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=a; Domain=shop.test.; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=a; Domain=evil.test; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
            "_ttp=a; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax; HttpOnly",
            "_ttp=a; Domain=shop.test; Path=/; Max-Age=x; Secure; SameSite=Lax",
            "evil=1; Domain=shop.test; Path=/; Max-Age=1; Secure; SameSite=Lax",
        ] {
            assert!(parse_collect_cookie(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunked_bodies_end_with_the_last_chunk_as_tail() {
        let body = RawBody::chunked(b"abcde", 2);
        assert_eq!(body.wire, b"2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n");
        assert_eq!(body.tail, b"0\r\n\r\n");
        let split = RawBody::fixed_split(b"abcdef".to_vec(), 4);
        assert_eq!(
            (split.wire.as_slice(), split.tail.as_slice()),
            (&b"abcd"[..], &b"ef"[..])
        );
        assert_eq!(split.framing[0].1, "6");
    }

    #[test]
    fn forms_are_encoded_and_their_fields_found() {
        assert_eq!(
            form_encode(&[("token".into(), "a b&c=d/é".into())]),
            "token=a+b%26c%3Dd%2F%C3%A9"
        );
        let html = r#"<form method="post" action="/admin/login"><input name="token"></form>
            <form method="post" action="/admin/logout"><input type="hidden" name="csrf" value="x&amp;y"><button>Log out</button></form>"#;
        assert_eq!(
            form_fields(html, "/admin/logout"),
            vec![("csrf".to_string(), "x&y".to_string())]
        );
        assert!(form_fields(html, "/nowhere").is_empty());
    }
}
