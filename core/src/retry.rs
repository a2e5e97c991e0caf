//! The retry schedule: 500, 1,000 and 2,000 ms, then give up and park.
//!
//! Three retries keep a gateway hiccup from losing events, while a real outage reaches the
//! parked list (and the operator) within a few seconds instead of hiding in a queue.

/// Delays before the first, second and third retry, in milliseconds.
pub const BACKOFF_MS: [u64; 3] = [500, 1_000, 2_000];

/// What to do after an attempt failed in a retryable way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again after this many milliseconds.
    RetryAfter(u64),
    /// Retries are used up: park the events.
    Park,
}

/// The step after `failed_attempts` attempts (counting the first send) have failed.
pub fn after_failure(failed_attempts: u32) -> NextStep {
    match failed_attempts
        .checked_sub(1)
        .and_then(|retry| BACKOFF_MS.get(retry as usize))
    {
        Some(&delay) => NextStep::RetryAfter(delay),
        None => NextStep::Park,
    }
}

/// The most attempts one event gets: the first send and each retry.
pub const MAX_ATTEMPTS: u32 = BACKOFF_MS.len() as u32 + 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        assert_eq!(after_failure(1), NextStep::RetryAfter(500));
        assert_eq!(after_failure(2), NextStep::RetryAfter(1_000));
        assert_eq!(after_failure(3), NextStep::RetryAfter(2_000));
        assert_eq!(after_failure(4), NextStep::Park);
        assert_eq!(after_failure(u32::MAX), NextStep::Park);
        assert_eq!(MAX_ATTEMPTS, 4);
    }

    #[test]
    fn zero_failures_is_not_a_retry() {
        // Nothing has failed yet: no schedule applies; callers never ask, but it must not panic.
        assert_eq!(after_failure(0), NextStep::Park);
    }
}
