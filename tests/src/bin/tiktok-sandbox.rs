//! `tiktok-sandbox`: a stand-in for TikTok's Events API for local development.
//!
//! Run it, start the Worker with `TIKTOK_API_BASE=http://127.0.0.1:<port>`, and every request
//! the Worker sends to TikTok is printed here, readably: path, the access token masked to its
//! last 4 characters (the full token is never printed), `event_source_id`, `test_event_code`
//! and each `data[]` element pretty-printed. Every request is answered with success.
//!
//! ```text
//! tiktok-sandbox [--port 8788]
//! ```

use std::process::ExitCode;

use serde_json::Value;
use ttedge_e2e::{MockTikTok, RecordedRequest};

const DEFAULT_PORT: u16 = 8788;
const USAGE: &str = "usage: tiktok-sandbox [--port PORT]   (default port 8788)\n\
    A local stand-in for TikTok's Events API: prints each request the Worker sends and answers success.";

fn main() -> ExitCode {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(Some(port)) => port,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tiktok-sandbox: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tiktok-sandbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tiktok-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` means `--help`.
fn parse_port(mut args: impl Iterator<Item = String>) -> Result<Option<u16>, String> {
    let mut port = DEFAULT_PORT;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" | "-p" => args.next().ok_or("--port needs a value")?,
            other => match other.strip_prefix("--port=") {
                Some(v) => v.to_owned(),
                None => return Err(format!("unknown argument {other:?}")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("invalid port {value:?}"))?;
    }
    Ok(Some(port))
}

async fn run(port: u16) -> anyhow::Result<()> {
    let mock = MockTikTok::start_on(port).await?;
    mock.on_request(|req| println!("{}", describe(req)));
    println!(
        "TikTok sandbox listening on {} — start the Worker with TIKTOK_API_BASE={}\n\
         Every request is answered {{\"code\":0,\"message\":\"OK\"}}. Ctrl-C stops.",
        mock.base_url(),
        mock.base_url()
    );
    tokio::signal::ctrl_c().await?;
    mock.stop().await;
    println!(
        "TikTok sandbox stopped after {} request(s).",
        mock.requests().len()
    );
    Ok(())
}

/// What TikTok would have received, for a human.
fn describe(req: &RecordedRequest) -> String {
    let mut out = format!(
        "──── request #{} at {} ms: {} {}{}\n",
        req.index + 1,
        req.received_at_ms,
        req.method,
        req.path,
        req.query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    );
    let token = req
        .header("access-token")
        .map_or_else(|| "(missing)".to_owned(), mask_token);
    out.push_str(&format!("Access-Token:     {token}\n"));
    if let Some(ct) = req.header("content-type") {
        out.push_str(&format!("Content-Type:     {ct}\n"));
    }
    let Some(body) = req.json.as_ref() else {
        out.push_str(&format!(
            "body ({} bytes, not JSON): {}\n",
            req.body.len(),
            truncate(&req.body_text(), 500)
        ));
        return out;
    };
    for field in ["event_source", "event_source_id", "test_event_code"] {
        let value = body.get(field).map_or("(absent)".to_owned(), show);
        out.push_str(&format!("{:<18}{value}\n", format!("{field}:")));
    }
    let data = req.data();
    out.push_str(&format!("data[]:           {} event(s)\n", data.len()));
    for (i, event) in data.iter().enumerate() {
        let pretty = serde_json::to_string_pretty(event).unwrap_or_else(|_| event.to_string());
        out.push_str(&format!("  [{i}] {}\n", pretty.replace('\n', "\n      ")));
    }
    out
}

/// The token's last 4 characters behind a mask; tokens of 8 characters or fewer are masked
/// completely, since their last 4 would give away too much of them.
fn mask_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= 8 {
        format!("****  ({} characters)", chars.len())
    } else {
        let last4: String = chars[chars.len() - 4..].iter().collect();
        format!("****{last4}  ({} characters)", chars.len())
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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
    fn masks_all_but_the_last_four_characters() {
        let masked = mask_token("abcdefghijklmnopWXYZ");
        assert!(masked.starts_with("****WXYZ"), "{masked}");
        assert!(!masked.contains("abcd"), "{masked}");
        assert!(!mask_token("short123").contains("123"));
    }

    #[test]
    fn parses_the_port() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse_port(args(&[]).into_iter()), Ok(Some(8788)));
        assert_eq!(
            parse_port(args(&["--port", "9000"]).into_iter()),
            Ok(Some(9000))
        );
        assert_eq!(
            parse_port(args(&["--port=9001"]).into_iter()),
            Ok(Some(9001))
        );
        assert_eq!(parse_port(args(&["--help"]).into_iter()), Ok(None));
        assert!(parse_port(args(&["--port", "x"]).into_iter()).is_err());
        assert!(parse_port(args(&["--bogus"]).into_iter()).is_err());
    }
}
