//! A sliding-window rate limiter with the clock injected.
//!
//! TikTok limits requests per access token per minute. A fixed window would allow twice the
//! limit across a window boundary, so this keeps the send times of the last window and
//! allows a send only while fewer than `limit` of them are less than `window_ms` old. The
//! caller passes the time in, which makes it testable and lets a Durable Object persist the
//! send times and restore them after an eviction.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// TikTok's default: 1,000 requests per minute per access token.
pub const DEFAULT_LIMIT_PER_MINUTE: u32 = 1_000;

/// One minute, in milliseconds.
pub const MINUTE_MS: u64 = 60_000;

/// Sends of the last window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    limit: u32,
    window_ms: u64,
    sends: VecDeque<u64>,
}

impl SlidingWindow {
    /// A limiter allowing `limit` sends in any `window_ms`. A limit of 0 is taken as 1 so the
    /// queue always drains.
    pub fn new(limit: u32, window_ms: u64) -> Self {
        SlidingWindow {
            limit: limit.max(1),
            window_ms,
            sends: VecDeque::new(),
        }
    }

    /// A per-minute limiter.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, MINUTE_MS)
    }

    /// Restores persisted send times (any order).
    pub fn with_sends(mut self, sends: impl IntoIterator<Item = u64>) -> Self {
        let mut sends: Vec<u64> = sends.into_iter().collect();
        sends.sort_unstable();
        self.sends = sends.into();
        self
    }

    /// The configured limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Sends that still count at `now_ms`.
    pub fn used(&mut self, now_ms: u64) -> u32 {
        self.expire(now_ms);
        self.sends.len() as u32
    }

    /// The send times that still count, oldest first, for persisting.
    pub fn sends(&self) -> impl Iterator<Item = u64> + '_ {
        self.sends.iter().copied()
    }

    /// Takes a send at `now_ms` if the window allows it; otherwise says when it will.
    pub fn try_acquire(&mut self, now_ms: u64) -> Result<(), u64> {
        self.check(now_ms)?;
        self.record(now_ms);
        Ok(())
    }

    /// Whether a send at `now_ms` would fit, without counting it; `Err` says when one will.
    ///
    /// A caller whose request takes a while uses this before sending and [`record`]s the
    /// time the answer came back: the latest moment the receiver can have counted it, so
    /// the receiver never sees more than `limit` in any window, however long the request
    /// was in flight.
    ///
    /// [`record`]: SlidingWindow::record
    pub fn check(&mut self, now_ms: u64) -> Result<(), u64> {
        // A clock that steps back must not let a send slip in before older ones.
        let now_ms = now_ms.max(self.sends.back().copied().unwrap_or(0));
        self.expire(now_ms);
        if (self.sends.len() as u32) < self.limit {
            Ok(())
        } else {
            Err(self.next_free_at())
        }
    }

    /// Counts a send at `at_ms` (kept in order even if the clock stepped back).
    pub fn record(&mut self, at_ms: u64) {
        let at_ms = at_ms.max(self.sends.back().copied().unwrap_or(0));
        self.sends.push_back(at_ms);
    }

    /// When the oldest counted send leaves the window.
    fn next_free_at(&self) -> u64 {
        let oldest = self.sends.front().copied().unwrap_or(0);
        oldest.saturating_add(self.window_ms)
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(&oldest) = self.sends.front() {
            if oldest.saturating_add(self.window_ms) <= now_ms {
                self.sends.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allows_limit_then_waits_for_the_oldest() {
        let mut window = SlidingWindow::per_minute(3);
        assert_eq!(window.try_acquire(1_000), Ok(()));
        assert_eq!(window.try_acquire(2_000), Ok(()));
        assert_eq!(window.try_acquire(3_000), Ok(()));
        assert_eq!(window.try_acquire(4_000), Err(61_000));
        assert_eq!(window.try_acquire(60_999), Err(61_000));
        assert_eq!(window.try_acquire(61_000), Ok(()));
        assert_eq!(window.used(61_000), 3);
    }

    #[test]
    fn restores_persisted_sends() {
        let mut window = SlidingWindow::per_minute(2).with_sends([50_000, 10_000]);
        assert_eq!(window.try_acquire(55_000), Err(70_000));
        assert_eq!(window.try_acquire(70_000), Ok(()));
        assert_eq!(window.sends().collect::<Vec<_>>(), [50_000, 70_000]);
    }

    #[test]
    fn clock_stepping_back_is_harmless() {
        let mut window = SlidingWindow::per_minute(1);
        assert_eq!(window.try_acquire(100_000), Ok(()));
        assert!(window.try_acquire(10).is_err());
    }

    proptest! {
        /// Whatever the request times, no 60-second window ever holds more than `limit`
        /// granted sends, and a refusal always names a later time.
        #[test]
        fn never_more_than_limit_in_any_window(
            limit in 1u32..20,
            gaps in proptest::collection::vec(0u64..15_000, 1..400),
        ) {
            let mut window = SlidingWindow::per_minute(limit);
            let mut now = 0u64;
            let mut granted = Vec::new();
            for gap in gaps {
                now += gap;
                match window.try_acquire(now) {
                    Ok(()) => granted.push(now),
                    Err(at) => prop_assert!(at > now),
                }
            }
            for (i, &start) in granted.iter().enumerate() {
                let in_window = granted[i..].iter().take_while(|&&t| t < start + MINUTE_MS).count();
                prop_assert!(in_window as u32 <= limit, "{} sends from {}", in_window, start);
            }
        }

        /// Checking before a request and recording when its answer came back keeps every
        /// window within the limit as the receiver sees it: arrivals fall between the two.
        #[test]
        fn receiver_never_sees_more_than_limit(
            limit in 1u32..8,
            calls in proptest::collection::vec((0u64..3_000, 0u64..5_000), 1..120),
        ) {
            let mut window = SlidingWindow::per_minute(limit);
            let mut now = 0u64;
            let mut calls_made = Vec::new();
            for (wait, duration) in calls {
                now += wait;
                if let Err(free_at) = window.check(now) {
                    now = free_at;
                    prop_assert_eq!(window.check(now), Ok(()));
                }
                let started = now;
                now += duration;
                window.record(now);
                calls_made.push((started, now));
            }
            // A request arrives at any moment while in flight. Worst case for the window
            // opened by request i: it arrives last (at its end), later ones arrive first.
            for (i, &(_, end)) in calls_made.iter().enumerate() {
                let in_window = calls_made[i..]
                    .iter()
                    .take_while(|&&(start, _)| start < end + MINUTE_MS)
                    .count();
                prop_assert!(in_window as u32 <= limit, "{} arrivals within a minute of {}", in_window, end);
            }
        }

        /// When a send is refused, waiting until the named time always succeeds.
        #[test]
        fn waiting_until_the_named_time_succeeds(limit in 1u32..10, burst in 1usize..40) {
            let mut window = SlidingWindow::per_minute(limit);
            let mut now = 0;
            for _ in 0..burst {
                if let Err(at) = window.try_acquire(now) {
                    now = at;
                    prop_assert_eq!(window.try_acquire(now), Ok(()));
                }
            }
        }
    }
}
