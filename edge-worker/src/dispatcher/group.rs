//! Group commit: collect requests that reach the object while it is busy are stored
//! together.
//!
//! Each stored request costs one intake row, the largest share of a single-event collect's
//! storage bill. When requests come close together, the first of them waits
//! [`GROUP_WINDOW_MS`] for the others, then one synchronous block stores them all, in one
//! intake row per lane, and every request gets its own answer. Nothing is answered before
//! it is stored: the runtime holds each answer until the block's writes are durable, and a
//! group that dies waiting wrote nothing, so its senders send again.
//!
//! A request waits only when others are likely to come within the window: when the mean
//! gap between arrivals is shorter than the window. One browser's events, or a few sites'
//! sparse traffic, are stored at once and pay no wait; a crowd is grouped.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_channel::oneshot;
use worker::{Delay, Result};

use super::client::{Intake, IntakeAnswer};
use super::intake;
use super::storage::Storage;
use crate::runtime::now_ms;

/// How long the first request of a group waits for others.
pub const GROUP_WINDOW_MS: u64 = 20;
/// The weight of the newest gap in the mean gap between arrivals.
const GAP_WEIGHT: f64 = 0.25;

/// A request waiting for its group to be stored.
struct Waiting {
    intake: Intake,
    answer: oneshot::Sender<std::result::Result<IntakeAnswer, String>>,
}

/// The requests waiting to be stored, and how close together requests come.
#[derive(Default)]
pub struct Groups {
    waiting: RefCell<Vec<Waiting>>,
    last_arrival_ms: Cell<u64>,
    /// The smoothed gap between arrivals, ms; `None` before the second arrival.
    mean_gap_ms: Cell<Option<f64>>,
}

impl Groups {
    /// Stores `intake`, alone or with the requests around it; answers once it is stored.
    pub async fn store(&self, storage: &Storage, intake: Intake) -> Result<IntakeAnswer> {
        let now = now_ms();
        if !self.crowded(now) && self.waiting.borrow().is_empty() {
            let mut answers = intake::enqueue(storage, &[&intake], now)?;
            return answers
                .pop()
                .ok_or_else(|| worker::Error::RustError("no answer for the intake".into()));
        }
        let (sender, receiver) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.borrow_mut();
            waiting.push(Waiting {
                intake,
                answer: sender,
            });
            waiting.len() == 1
        };
        if first {
            // Dropped after the wait, or if this request is cancelled while waiting: the
            // group is stored either way, so the others never wait for an answer that
            // cannot come.
            let _store = StoreOnDrop {
                groups: self,
                storage,
            };
            Delay::from(Duration::from_millis(GROUP_WINDOW_MS)).await;
        }
        match receiver.await {
            Ok(answer) => answer.map_err(worker::Error::RustError),
            Err(_) => Err(worker::Error::RustError(
                "the intake's group ended without an answer".into(),
            )),
        }
    }

    /// Whether requests come close enough together, with this one at `now_ms`, that a
    /// group is worth waiting for.
    fn crowded(&self, now_ms: u64) -> bool {
        let previous = self.last_arrival_ms.replace(now_ms);
        if previous == 0 {
            return false;
        }
        let gap = now_ms.saturating_sub(previous) as f64;
        let mean = self
            .mean_gap_ms
            .get()
            .map_or(gap, |mean| mean + GAP_WEIGHT * (gap - mean));
        self.mean_gap_ms.set(Some(mean));
        mean < GROUP_WINDOW_MS as f64
    }

    /// Stores every waiting request in one synchronous block and hands each its answer.
    fn store_waiting(&self, storage: &Storage) {
        let group = std::mem::take(&mut *self.waiting.borrow_mut());
        let intakes: Vec<&Intake> = group.iter().map(|waiting| &waiting.intake).collect();
        match intake::enqueue(storage, &intakes, now_ms()) {
            Ok(answers) => {
                for (waiting, answer) in group.into_iter().zip(answers) {
                    // A sender that went away (its caller hung up) needs no answer.
                    let _ = waiting.answer.send(Ok(answer));
                }
            }
            Err(error) => {
                for waiting in group {
                    let _ = waiting.answer.send(Err(error.to_string()));
                }
            }
        }
    }
}

/// Stores the waiting group when dropped.
struct StoreOnDrop<'a> {
    groups: &'a Groups,
    storage: &'a Storage,
}

impl Drop for StoreOnDrop<'_> {
    fn drop(&mut self) {
        self.groups.store_waiting(self.storage);
    }
}
