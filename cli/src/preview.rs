//! `ttedge preview`: one JSON line per input event, in input order.
//!
//! The line's keys (`index`, `event_id`, `status`, `reason`, `tiktok`, `emq`) are a contract:
//! other tools read this output.

use std::io::{BufWriter, Write};

use serde::Serialize;
use ttedge_core::pipeline::{Destination, Status};
use ttedge_core::tiktok::plan_requests;

use crate::{Outcome, Prepared, RuleArgs};

/// The line for an event that could not be read: the same keys, in the same order.
#[derive(Serialize)]
struct UnreadableLine {
    index: usize,
    event_id: Option<String>,
    status: Status,
    reason: String,
    tiktok: Option<()>,
    emq: Option<()>,
}

/// Prints every event; a bad one is reported with its line number and the rest still run.
pub fn run(rules: &RuleArgs, destination: &Destination) -> anyhow::Result<Outcome> {
    let prepared = rules.prepare(destination)?;
    print(&prepared, destination)
}

/// Prints prepared events, one JSON line each, then the request summary on stderr.
pub fn print(prepared: &[Prepared], destination: &Destination) -> anyhow::Result<Outcome> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut any_rejected = false;
    for event in prepared {
        match event {
            Ok(event) => {
                any_rejected |= event.status == Status::Rejected;
                serde_json::to_writer(&mut out, event)?;
            }
            Err(bad) => {
                any_rejected = true;
                let reason = bad.to_string();
                eprintln!("ttedge: {reason}");
                serde_json::to_writer(
                    &mut out,
                    &UnreadableLine {
                        index: bad.index,
                        event_id: None,
                        status: Status::Rejected,
                        reason,
                        tiktok: None,
                        emq: None,
                    },
                )?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;

    let ready: Vec<_> = prepared
        .iter()
        .flatten()
        .filter_map(|e| e.tiktok.as_ref())
        .collect();
    let requests = plan_requests(&ready, |_| destination.request_key());
    let test_note = match &destination.test_event_code {
        Some(code) => format!(" as test events (test_event_code {code})"),
        None => String::new(),
    };
    eprintln!(
        "ttedge: {} of {} events ready; {} request(s) to pixel {}{}",
        ready.len(),
        prepared.len(),
        requests.len(),
        destination.pixel_id,
        test_note
    );
    Ok(Outcome { any_rejected })
}
