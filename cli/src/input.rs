//! Reading collect-API events from a file or standard input.
//!
//! Two layouts are accepted: JSON Lines (one event, or one batch document, per line) and a
//! single JSON document (one event or `{"batch": [...]}`, pretty-printed or not). A bad
//! event does not stop the others: it comes back as an error with its line number.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use ttedge_core::event::{parse_collect, CollectEvent, InputError};

/// One input event, or why it could not be read.
pub struct InputEvent<'a> {
    /// 1-based line where the event starts.
    pub line: usize,
    /// The parsed event, or the error that names what is wrong.
    pub event: Result<CollectEvent<'a>, InputError>,
}

/// Reads `path` (`-` or none for standard input).
pub fn read(path: Option<&Path>) -> anyhow::Result<String> {
    let mut text = String::new();
    match path {
        None => std::io::stdin().read_to_string(&mut text).map(|_| ())?,
        Some(path) if path == Path::new("-") => {
            std::io::stdin().read_to_string(&mut text).map(|_| ())?
        }
        Some(path) => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        }
    }
    Ok(text)
}

#[derive(Deserialize)]
struct BatchDocument<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
}

/// Splits the input into events, keeping each one's line number.
pub fn events(text: &str) -> Vec<InputEvent<'_>> {
    let is_one_document = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if is_one_document {
        if let Ok(document) = serde_json::from_str::<BatchDocument>(text) {
            return document
                .batch
                .iter()
                .map(|raw| InputEvent {
                    line: line_of(text, raw.get()),
                    event: parse_one(raw.get().as_bytes()),
                })
                .collect();
        }
        return vec![InputEvent {
            line: line_of(text, text.trim_start()),
            event: parse_one(text.as_bytes()),
        }];
    }
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_collect(line.as_bytes(), usize::MAX) {
            Ok(events) => out.extend(events.into_iter().map(|event| InputEvent {
                line: number + 1,
                event: Ok(event),
            })),
            Err(error) => out.push(InputEvent {
                line: number + 1,
                event: Err(error),
            }),
        }
    }
    out
}

fn parse_one(json: &[u8]) -> Result<CollectEvent<'_>, InputError> {
    parse_collect(json, 1).and_then(|mut events| events.pop().ok_or(InputError::EmptyBatch))
}

/// The 1-based line of `part`, a slice of `text`.
fn line_of(text: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_line_numbers() {
        let text =
            "{\"event\":\"a\"}\n\n{\"event\":\n{\"batch\":[{\"event\":\"b\"},{\"event\":\"c\"}]}\n";
        let events = events(text);
        let lines: Vec<_> = events.iter().map(|e| (e.line, e.event.is_ok())).collect();
        assert_eq!(lines, [(1, true), (3, false), (4, true), (4, true)]);
    }

    #[test]
    fn pretty_batch_document_reports_each_event() {
        let text = "{\n  \"batch\": [\n    {\"event\": \"a\"},\n    {\"event\": 5}\n  ]\n}\n";
        let events = events(text);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].line, 4);
        let error = events[1].event.as_ref().unwrap_err();
        assert_eq!(error.path(), Some("event"));
    }

    #[test]
    fn pretty_single_event() {
        let events = events("{\n \"event\": \"purchase\"\n}\n");
        assert_eq!(events.len(), 1);
        assert!(events[0].event.is_ok());
    }
}
