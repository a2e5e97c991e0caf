//! Slowing down repeated failed admin logins from one address, with the clock injected.
//!
//! `ADMIN_TOKEN` should be long and random, so this is not what keeps it secret; it keeps a
//! script from trying thousands of guesses a minute, and keeps a mistyped token harmless.
//! The [`LOCKING_FAILURE`]th failure in a window locks the address out for 2 s, and each
//! further one for twice as long as the one before (4 s, 8 s, …, at most [`MAX_LOCK_MS`]):
//! after 5 failures, the next attempt waits, whatever token it brings. The window restarts [`WINDOW_MS`] after its first failure, once the
//! address is not locked, so someone who mistyped a few times is not punished an hour
//! later. The caller keeps one [`LoginThrottle`] per address (in a Durable Object, say),
//! refuses logins while [`LoginThrottle::retry_after_ms`] is `Some`, and deletes it once
//! [`LoginThrottle::is_stale`].

use serde::{Deserialize, Serialize};

/// The failure of a window that first locks the address: the 5th.
pub const LOCKING_FAILURE: u32 = 5;

/// How long a window of failures lasts from its first failure: 15 minutes.
pub const WINDOW_MS: u64 = 15 * 60 * 1000;

/// The longest lock: 15 minutes.
pub const MAX_LOCK_MS: u64 = 15 * 60 * 1000;

/// Failed logins of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginThrottle {
    /// Failures in the current window.
    pub failures: u32,
    /// When the current window's first failure happened, epoch milliseconds.
    pub window_start_ms: u64,
    /// No login is tried before this time, epoch milliseconds (0: not locked).
    pub locked_until_ms: u64,
}

/// How long the `failures`-th failure of a window locks: nothing before the
/// [`LOCKING_FAILURE`], then 2^(failures − LOCKING_FAILURE + 1) seconds, capped at
/// [`MAX_LOCK_MS`].
fn lock_ms(failures: u32) -> u64 {
    match failures.checked_sub(LOCKING_FAILURE) {
        None => 0,
        // 2^20 s is far above the cap; stopping there keeps the shift in range.
        Some(exponent) => (2_000u64 << exponent.min(20)).min(MAX_LOCK_MS),
    }
}

impl LoginThrottle {
    /// How long until a login may be tried, while locked; `None` when one may be tried now.
    /// Never more than [`MAX_LOCK_MS`], even after the clock stepped back.
    pub fn retry_after_ms(&self, now_ms: u64) -> Option<u64> {
        (self.locked_until_ms > now_ms).then(|| (self.locked_until_ms - now_ms).min(MAX_LOCK_MS))
    }

    /// Counts a failed login at `now_ms`, starting a new window when the last one is over
    /// and the address is not locked, and locks once the free failures are used up.
    pub fn record_failure(&mut self, now_ms: u64) {
        let locked = self.retry_after_ms(now_ms).is_some();
        let window_over = now_ms >= self.window_start_ms.saturating_add(WINDOW_MS);
        if self.failures == 0 || (window_over && !locked) {
            self.failures = 0;
            self.window_start_ms = now_ms;
        }
        self.failures = self.failures.saturating_add(1);
        let lock = lock_ms(self.failures);
        if lock > 0 {
            // A failure while locked (a caller that checked late) never shortens the lock.
            self.locked_until_ms = self.locked_until_ms.max(now_ms.saturating_add(lock));
        }
    }

    /// A successful login forgets every failure.
    pub fn record_success(&mut self) {
        *self = LoginThrottle::default();
    }

    /// Whether there is nothing left to remember at `now_ms`: not locked, and the next
    /// failure would start a new window. A stale throttle acts exactly like a new one, so
    /// it may be deleted.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        self.retry_after_ms(now_ms).is_none()
            && (self.failures == 0 || now_ms >= self.window_start_ms.saturating_add(WINDOW_MS))
    }

    /// A moment from which the throttle is surely stale, so a store can delete old entries
    /// in bulk without reading them: the end of the lock or of the window, whichever is later.
    pub fn stale_from_ms(&self) -> u64 {
        let window_end = match self.failures {
            0 => 0,
            _ => self.window_start_ms.saturating_add(WINDOW_MS),
        };
        window_end.max(self.locked_until_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const T0: u64 = 1_764_064_800_000;

    #[test]
    fn stale_from_is_when_is_stale_turns_true() {
        let mut throttle = LoginThrottle::default();
        assert!(throttle.is_stale(throttle.stale_from_ms()));
        for i in 0..(LOCKING_FAILURE + 3) {
            throttle.record_failure(T0 + u64::from(i));
            let from = throttle.stale_from_ms();
            assert!(throttle.is_stale(from), "after {} failures", i + 1);
            assert!(!throttle.is_stale(from - 1), "after {} failures", i + 1);
        }
    }

    /// Most failures one window can hold: those up to the first locking one at once, then
    /// each as soon as the previous lock ends, while the window lasts.
    fn per_window() -> usize {
        let mut failures = LOCKING_FAILURE;
        let mut at = 0;
        loop {
            let next = at + lock_ms(failures);
            if next >= WINDOW_MS {
                return failures as usize;
            }
            at = next;
            failures += 1;
        }
    }

    /// The most attempts in any `WINDOW_MS` of sorted attempt times.
    fn busiest(attempts: &[u64]) -> usize {
        attempts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                attempts[i..]
                    .iter()
                    .take_while(|&&t| t < start + WINDOW_MS)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// An attacker who tries again the moment each lock ends, for `duration_ms`.
    fn greedy(start: u64, duration_ms: u64) -> Vec<u64> {
        let mut throttle = LoginThrottle::default();
        let mut now = start;
        let mut attempts = Vec::new();
        while now < start + duration_ms {
            if let Some(wait) = throttle.retry_after_ms(now) {
                now += wait;
                continue;
            }
            throttle.record_failure(now);
            attempts.push(now);
        }
        attempts
    }

    #[test]
    fn the_fifth_failure_locks_and_locks_double() {
        let mut throttle = LoginThrottle::default();
        for _ in 1..LOCKING_FAILURE {
            throttle.record_failure(T0);
            assert_eq!(throttle.retry_after_ms(T0), None);
        }
        let mut now = T0;
        for expected_s in [2, 4, 8, 16, 32, 64, 128, 256, 512] {
            throttle.record_failure(now);
            assert_eq!(throttle.retry_after_ms(now), Some(expected_s * 1_000));
            assert_eq!(
                throttle.retry_after_ms(now + expected_s * 1_000 - 1),
                Some(1)
            );
            now += expected_s * 1_000;
            assert_eq!(throttle.retry_after_ms(now), None);
        }
        assert_eq!(
            lock_ms(LOCKING_FAILURE + 9),
            MAX_LOCK_MS,
            "1,024 s is capped"
        );
        assert_eq!(lock_ms(u32::MAX), MAX_LOCK_MS);
        assert_eq!(lock_ms(0), 0);
    }

    #[test]
    fn the_window_restarts_once_over_and_unlocked() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..3 {
            throttle.record_failure(T0);
        }
        assert!(!throttle.is_stale(T0 + WINDOW_MS - 1));
        assert!(throttle.is_stale(T0 + WINDOW_MS));
        throttle.record_failure(T0 + WINDOW_MS);
        assert_eq!(throttle.failures, 1, "a new window");
        assert_eq!(throttle.window_start_ms, T0 + WINDOW_MS);

        // Locked past the window's end: the window carries on until the lock ends.
        let mut throttle = LoginThrottle {
            failures: LOCKING_FAILURE + 5,
            window_start_ms: T0,
            locked_until_ms: T0 + WINDOW_MS + 10_000,
        };
        assert!(!throttle.is_stale(T0 + WINDOW_MS + 9_999));
        throttle.record_failure(T0 + WINDOW_MS + 5_000);
        assert_eq!(throttle.failures, LOCKING_FAILURE + 6);
        assert!(throttle.is_stale(throttle.locked_until_ms));
    }

    #[test]
    fn success_resets() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..LOCKING_FAILURE + 3 {
            throttle.record_failure(T0);
        }
        assert!(throttle.retry_after_ms(T0).is_some());
        throttle.record_success();
        assert_eq!(throttle, LoginThrottle::default());
        assert!(throttle.is_stale(T0));
        assert!(LoginThrottle::default().is_stale(0));
    }

    #[test]
    fn a_clock_stepping_back_never_lengthens_the_lock() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..LOCKING_FAILURE + 9 {
            throttle.record_failure(T0);
        }
        assert_eq!(throttle.retry_after_ms(T0 - 3_600_000), Some(MAX_LOCK_MS));
        let json = serde_json::to_string(&throttle).unwrap();
        let back: LoginThrottle = serde_json::from_str(&json).unwrap();
        assert_eq!(back, throttle);
    }

    #[test]
    fn the_greedy_bound_is_reached() {
        // 4 at once, then one after each lock of 2, 4, … 512 s (1,022 s in all).
        assert_eq!(per_window(), 13);
        assert_eq!(busiest(&greedy(T0, 4 * 3_600_000)), per_window());
    }

    proptest! {
        /// Trying again the moment each lock ends, an attacker never gets more than one
        /// window's worth of attempts into any 15 minutes.
        #[test]
        fn greedy_attacker_is_bounded(start in 0u64..T0, hours in 1u64..6) {
            let attempts = greedy(start, hours * 3_600_000);
            prop_assert!(busiest(&attempts) <= per_window());
        }

        /// Whatever the pauses, attempts of one window fall within its first 15 minutes and
        /// windows start at least 15 minutes apart, so any 15 minutes touch two windows.
        #[test]
        fn any_attacker_is_bounded(
            start in 0u64..T0,
            pauses in proptest::collection::vec(
                prop_oneof![Just(0u64), 0u64..10_000, 0u64..2 * WINDOW_MS],
                1..400,
            ),
        ) {
            let mut throttle = LoginThrottle::default();
            let mut now = start;
            let mut attempts = Vec::new();
            for pause in pauses {
                now += pause;
                if let Some(wait) = throttle.retry_after_ms(now) {
                    now += wait;
                }
                throttle.record_failure(now);
                attempts.push(now);
            }
            prop_assert!(busiest(&attempts) <= 2 * per_window());
        }

        /// Failures at any times, even while locked and with the clock going back: no lock
        /// is longer than the cap, and a success clears everything.
        #[test]
        fn locks_are_capped_and_success_clears(
            start in 0u64..T0,
            steps in proptest::collection::vec((-60_000i64..600_000, any::<bool>()), 1..200),
        ) {
            let mut throttle = LoginThrottle::default();
            let (mut now, mut latest) = (start, start);
            for (step, fail) in steps {
                now = now.saturating_add_signed(step);
                latest = latest.max(now);
                if fail {
                    throttle.record_failure(now);
                    prop_assert!(throttle.locked_until_ms <= latest + MAX_LOCK_MS);
                } else if throttle.retry_after_ms(now).is_none() {
                    throttle.record_success();
                    prop_assert_eq!(throttle.retry_after_ms(now), None);
                    prop_assert!(throttle.is_stale(now));
                }
                if let Some(wait) = throttle.retry_after_ms(now) {
                    prop_assert!(wait <= MAX_LOCK_MS);
                }
            }
        }
    }
}
