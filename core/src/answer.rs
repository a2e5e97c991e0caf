//! What `/collect` and the offline upload answer, event by event: the Worker writes it and
//! `ttedge send` reads it back, with these same types, so neither side can drop or rename a
//! field without the other failing to compile.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::pipeline::Status;
use crate::quality::MatchQuality;

/// The fate of one event, as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStatus {
    /// Stored, to be sent to TikTok.
    Ready,
    /// Already received with this event_id (or earlier in the same request): not stored
    /// again.
    Duplicate,
    /// Never sent: an internal event, or custom events are off.
    Skipped,
    /// Held back by consent.
    Held,
    /// Refused; the reason says why.
    Rejected,
}

impl AnswerStatus {
    /// The answer for an event the pipeline gave `status`: a ready one already received is a
    /// duplicate.
    pub fn of(status: Status, duplicate: bool) -> AnswerStatus {
        match status {
            Status::Ready if duplicate => AnswerStatus::Duplicate,
            Status::Ready => AnswerStatus::Ready,
            Status::Skipped => AnswerStatus::Skipped,
            Status::Held => AnswerStatus::Held,
            Status::Rejected => AnswerStatus::Rejected,
        }
    }

    /// The name the answer uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerStatus::Ready => "ready",
            AnswerStatus::Duplicate => "duplicate",
            AnswerStatus::Skipped => "skipped",
            AnswerStatus::Held => "held",
            AnswerStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for AnswerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventAnswer<'a> {
    /// Its place in the request: in a batch, or among an upload's non-blank lines or rows.
    pub index: usize,
    /// The file line of an offline upload's CSV row; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `None` only for an offline upload's line that could not be read.
    pub event_id: Option<Cow<'a, str>>,
    /// What became of it.
    pub status: AnswerStatus,
    /// The TikTok event name.
    pub event: Option<Cow<'a, str>>,
    /// Why it is not ready.
    pub reason: Option<Cow<'a, str>>,
    /// Its match quality as sent: after identity resolution, when that added to it.
    pub emq: Option<Cow<'a, MatchQuality>>,
}

impl<'a> EventAnswer<'a> {
    /// A line or row refused before the pipeline (unreadable, undated, too old).
    pub fn refused(index: usize, reason: Cow<'a, str>) -> EventAnswer<'a> {
        EventAnswer {
            index,
            line: None,
            event_id: None,
            status: AnswerStatus::Rejected,
            event: None,
            reason: Some(reason),
            emq: None,
        }
    }
}

/// The whole answer (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectAnswer<'a> {
    /// Events stored to be sent.
    pub accepted: usize,
    /// `false` while the destination is being set up: events are scored and counted, not
    /// sent.
    pub live: bool,
    /// One per event, in order.
    pub events: Vec<EventAnswer<'a>>,
}

impl<'a> CollectAnswer<'a> {
    /// The answer holding `events`, its `accepted` counted from them.
    pub fn new(live: bool, events: Vec<EventAnswer<'a>>) -> CollectAnswer<'a> {
        CollectAnswer {
            accepted: events
                .iter()
                .filter(|event| event.status == AnswerStatus::Ready)
                .count(),
            live,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_reads_back_as_it_was_written() {
        let answer = CollectAnswer::new(
            true,
            alloc::vec![
                EventAnswer {
                    index: 0,
                    line: Some(2),
                    event_id: Some(Cow::Borrowed("CompletePayment-1")),
                    status: AnswerStatus::of(Status::Ready, false),
                    event: Some(Cow::Borrowed("CompletePayment")),
                    reason: None,
                    emq: None,
                },
                EventAnswer {
                    status: AnswerStatus::of(Status::Ready, true),
                    ..EventAnswer::refused(1, Cow::Borrowed("x"))
                },
                EventAnswer::refused(2, Cow::Borrowed("dated in the future")),
            ],
        );
        assert_eq!(answer.accepted, 1);
        let text = serde_json::to_string(&answer).unwrap_or_default();
        assert!(text.contains(r#""status":"duplicate""#), "{text}");
        assert!(text.contains(r#""line":2"#) && !text.contains(r#""line":null"#));
        let back: CollectAnswer<'static> = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, answer);
    }
}
