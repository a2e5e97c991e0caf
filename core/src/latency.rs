//! Latency of TikTok calls as a mergeable histogram, for the delivery-health percentiles.
//!
//! The Dispatcher keeps one histogram per hour for 7 days and shows p50, p95 and p99 for the
//! last hour, 24 hours and 7 days. Percentiles of hours cannot be combined into the
//! percentile of a day, and keeping every call's time would grow without bound; counts per
//! fixed bucket can simply be added. So each hour stores counts in the same fixed
//! log-spaced buckets, and any span of hours is answered by merging them.
//!
//! Bucket upper bounds grow by a factor of at most 1.25, from 1 ms to 120,501 ms
//! ([`BOUNDS`]), with an overflow bucket above. A percentile is answered with the upper
//! bound of the bucket holding it (or the largest value seen, if smaller), so it is never
//! below the true value and at most 25 % above it; values up to 8 ms are exact. A
//! percentile that falls in the overflow bucket is answered with the largest value seen,
//! the only value kept above two minutes.
//!
//! Arithmetic is in integers (and one float product for the rank), so it needs no float
//! maths library under `no_std`; counts saturate instead of overflowing, so even corrupt
//! stored counts cannot make it panic.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The largest upper bound: two minutes and a little, above any sensible request time-out.
const LAST_BOUND: u64 = 120_000;

/// The number of bounded buckets; one overflow bucket follows them.
const BOUND_COUNT: usize = bound_count();

/// The inclusive upper bound of each bucket, in milliseconds.
///
/// Bucket 0 holds 0 and 1 ms; bucket `i` holds `BOUNDS[i - 1] + 1 ..= BOUNDS[i]`; anything
/// above the last bound goes to the overflow bucket. Each bound is the previous one × 1.25
/// rounded down, or one more than the previous where that is larger, which bounds the
/// relative error by 25 %.
///
/// The bounds are part of the stored form: histograms saved as JSON are merged with new ones
/// by position, so they must never change. A different bucketing needs a new field name.
pub const BOUNDS: [u64; BOUND_COUNT] = bounds();

/// Buckets including the overflow bucket.
const SLOTS: usize = BOUND_COUNT + 1;

const fn next_bound(bound: u64) -> u64 {
    let grown = bound * 5 / 4;
    if grown > bound + 1 {
        grown
    } else {
        bound + 1
    }
}

const fn bound_count() -> usize {
    let mut bound = 1;
    let mut count = 1;
    while bound < LAST_BOUND {
        bound = next_bound(bound);
        count += 1;
    }
    count
}

const fn bounds() -> [u64; BOUND_COUNT] {
    let mut bounds = [0; BOUND_COUNT];
    let mut bound = 1;
    let mut i = 0;
    while i < BOUND_COUNT {
        bounds[i] = bound;
        bound = next_bound(bound);
        i += 1;
    }
    bounds
}

/// The bucket a value falls in; [`BOUND_COUNT`] is the overflow bucket.
fn bucket_of(ms: u64) -> usize {
    BOUNDS.partition_point(|&bound| bound < ms)
}

/// Call latencies in fixed log-spaced buckets: cheap to record, exact to merge.
///
/// It serialises as `{"counts": [...], "max": ms}`, with the counts in [`BOUNDS`] order and
/// trailing empty buckets left out, so an hour of fast calls is a few dozen bytes of JSON in
/// SQLite. Deserialising refuses counts longer than the buckets known here and a `max` that
/// does not fall in the highest non-empty bucket, so a merged histogram is always coherent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Stored", try_from = "Stored")]
pub struct LatencyHistogram {
    counts: [u64; SLOTS],
    max: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: [0; SLOTS],
            max: 0,
        }
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one call that took `ms` milliseconds.
    pub fn record(&mut self, ms: u64) {
        let slot = &mut self.counts[bucket_of(ms)];
        *slot = slot.saturating_add(1);
        self.max = self.max.max(ms);
    }

    /// Adds another histogram's counts (another hour, another Dispatcher). Merging is
    /// commutative and associative, and equals recording both sets of values into one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.saturating_add(theirs);
        }
        self.max = self.max.max(other.max);
    }

    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// Whether no call is counted.
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&count| count == 0)
    }

    /// The slowest call counted, exactly; `None` when empty.
    pub fn max(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.max)
    }

    /// The `p`-th percentile (`p` from 0 to 100) of the calls counted; `None` when empty.
    ///
    /// It is the nearest-rank percentile, the value at rank ⌈p / 100 × count⌉ (at least 1) of
    /// the sorted calls, rounded up to its bucket's upper bound and capped at [`max`]: never
    /// below the true value and at most 25 % above it (exact up to 8 ms). In the overflow
    /// bucket, above [`BOUNDS`]' last 120,501 ms, it is the largest value seen. A `p` outside
    /// 0 to 100 is taken as the nearer end; NaN gives `None`.
    ///
    /// [`max`]: LatencyHistogram::max
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if p.is_nan() {
            return None;
        }
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = rank(p, count);
        let mut seen = 0u64;
        for (slot, &bucket) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(bucket);
            if seen >= rank {
                let upper = BOUNDS.get(slot).copied().unwrap_or(u64::MAX);
                return Some(upper.min(self.max));
            }
        }
        // Not reached: the counts add up to `count` ≥ `rank`.
        Some(self.max)
    }
}

/// The 1-based nearest rank of the `p`-th percentile among `count` values.
fn rank(p: f64, count: u64) -> u64 {
    let p = p.clamp(0.0, 100.0);
    let exact = p / 100.0 * count as f64;
    // `as` saturates; add one where the float was not a whole number (a ceiling without
    // a maths library).
    let whole = exact as u64;
    let ceiling = if (whole as f64) < exact {
        whole.saturating_add(1)
    } else {
        whole
    };
    ceiling.clamp(1, count)
}

/// The stored form: counts without trailing empty buckets, and the exact maximum.
#[derive(Serialize, Deserialize)]
struct Stored {
    counts: Vec<u64>,
    #[serde(default)]
    max: u64,
}

impl From<LatencyHistogram> for Stored {
    fn from(histogram: LatencyHistogram) -> Self {
        let used = histogram
            .counts
            .iter()
            .rposition(|&count| count > 0)
            .map_or(0, |last| last + 1);
        Stored {
            counts: histogram.counts[..used].to_vec(),
            max: histogram.max,
        }
    }
}

impl TryFrom<Stored> for LatencyHistogram {
    type Error = &'static str;

    fn try_from(stored: Stored) -> Result<Self, Self::Error> {
        if stored.counts.len() > SLOTS {
            return Err("latency histogram: more buckets than this version knows");
        }
        let mut histogram = LatencyHistogram::default();
        histogram.counts[..stored.counts.len()].copy_from_slice(&stored.counts);
        match histogram.counts.iter().rposition(|&count| count > 0) {
            Some(last) if bucket_of(stored.max) != last => {
                Err("latency histogram: max is not in the highest non-empty bucket")
            }
            _ => {
                histogram.max = stored.max;
                Ok(histogram)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn of(values: &[u64]) -> LatencyHistogram {
        let mut histogram = LatencyHistogram::new();
        for &value in values {
            histogram.record(value);
        }
        histogram
    }

    /// The nearest-rank percentile of `values`, worked out by sorting them.
    fn true_percentile(values: &[u64], p: f64) -> u64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let rank = (p / 100.0 * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank.min(sorted.len()) - 1]
    }

    #[test]
    fn bounds_grow_by_at_most_a_quarter_up_to_two_minutes() {
        assert_eq!(BOUNDS.len(), 52);
        assert_eq!(BOUNDS[..10], [1, 2, 3, 4, 5, 6, 7, 8, 10, 12]);
        assert_eq!(BOUNDS[BOUNDS.len() - 1], 120_501);
        for pair in BOUNDS.windows(2) {
            let (low, high) = (pair[0], pair[1]);
            assert!(high > low);
            // Every value of the bucket, the smallest being low + 1, is within 25 %.
            assert!(
                high * 4 <= (low + 1) * 5 || high == low + 1,
                "{low} → {high}"
            );
        }
    }

    #[test]
    fn empty_has_no_percentiles() {
        let empty = LatencyHistogram::new();
        assert_eq!(empty.count(), 0);
        assert!(empty.is_empty());
        assert_eq!(empty.percentile(50.0), None);
        assert_eq!(empty.max(), None);
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"counts":[],"max":0}"#
        );
    }

    #[test]
    fn one_value_is_every_percentile() {
        let one = of(&[42]);
        assert_eq!(one.count(), 1);
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(one.percentile(p), Some(42));
        }
        assert_eq!(one.max(), Some(42));
        assert_eq!(of(&[0]).percentile(50.0), Some(0));
    }

    #[test]
    fn percentiles_of_1_to_1000() {
        let values: Vec<u64> = (1..=1000).collect();
        let histogram = of(&values);
        assert_eq!(histogram.count(), 1000);
        // 950 and 990 fall in the bucket 892..=1,113, capped at the largest value, 1,000.
        for (p, truth, answer) in [(50.0, 500, 571), (95.0, 950, 1_000), (99.0, 990, 1_000)] {
            assert_eq!(true_percentile(&values, p), truth);
            let got = histogram.percentile(p).unwrap();
            assert_eq!(got, answer, "p{p}");
            assert!(got >= truth && got * 4 <= truth * 5, "p{p}: {got}");
        }
        assert_eq!(histogram.percentile(100.0), Some(1000));
        assert_eq!(histogram.percentile(0.0), Some(1));
        assert_eq!(histogram.max(), Some(1000));
    }

    #[test]
    fn out_of_range_p_is_clamped_and_nan_is_none() {
        let histogram = of(&[5, 50, 500]);
        assert_eq!(histogram.percentile(-3.0), Some(5));
        assert_eq!(histogram.percentile(250.0), Some(500));
        assert_eq!(histogram.percentile(f64::INFINITY), Some(500));
        assert_eq!(histogram.percentile(f64::NAN), None);
    }

    #[test]
    fn overflow_answers_the_largest_value() {
        let histogram = of(&[100, 200_000, 3_600_000]);
        assert_eq!(histogram.percentile(50.0), Some(3_600_000));
        assert_eq!(histogram.percentile(10.0), Some(121));
        assert_eq!(of(&[u64::MAX]).percentile(50.0), Some(u64::MAX));
    }

    #[test]
    fn merging_equals_recording_everything_into_one() {
        let hours = [
            vec![120, 340, 95],
            vec![],
            vec![2_000, 15, 15, 61_000],
            vec![7],
        ];
        let mut merged = LatencyHistogram::new();
        for hour in &hours {
            merged.merge(&of(hour));
        }
        let everything: Vec<u64> = hours.concat();
        assert_eq!(merged, of(&everything));
        assert_eq!(merged.count(), 8);
        assert_eq!(merged.max(), Some(61_000));
    }

    #[test]
    fn stored_form_is_compact_and_round_trips() {
        let histogram = of(&[0, 1, 3, 3, 9]);
        let json = serde_json::to_string(&histogram).unwrap();
        assert_eq!(json, r#"{"counts":[2,0,2,0,0,0,0,0,1],"max":9}"#);
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, histogram);
        let wide = of(&[1, 250_000]);
        let json = serde_json::to_string(&wide).unwrap();
        assert_eq!(
            serde_json::from_str::<LatencyHistogram>(&json).unwrap(),
            wide
        );
    }

    #[test]
    fn incoherent_stored_forms_are_refused() {
        let too_long = serde_json::to_string(&Stored {
            counts: vec![1; SLOTS + 1],
            max: 1,
        })
        .unwrap();
        for json in [
            too_long.as_str(),
            r#"{"counts":[0,0,1],"max":1}"#,
            r#"{"counts":[0,0,1]}"#,
            r#"{"counts":[1],"max":9}"#,
            r#"{"counts":[-1]}"#,
            r#"{"max":3}"#,
        ] {
            assert!(
                serde_json::from_str::<LatencyHistogram>(json).is_err(),
                "{json}"
            );
        }
        let empty: LatencyHistogram = serde_json::from_str(r#"{"counts":[0,0]}"#).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn huge_stored_counts_saturate_instead_of_panicking() {
        let json = alloc::format!(r#"{{"counts":[{}],"max":1}}"#, u64::MAX);
        let mut histogram: LatencyHistogram = serde_json::from_str(&json).unwrap();
        histogram.merge(&histogram.clone());
        histogram.record(1);
        assert_eq!(histogram.count(), u64::MAX);
        assert_eq!(histogram.percentile(99.0), Some(1));
    }

    /// Latencies spread over every scale, from 0 ms to past the last bound.
    fn latency() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..20,
            0u64..1_000,
            0u64..30_000,
            0u64..=LAST_BOUND + 1_000
        ]
    }

    proptest! {
        /// The answer is never below the true percentile and at most 25 % (+1 ms) above it.
        #[test]
        fn percentile_is_within_a_quarter_above_the_truth(
            values in proptest::collection::vec(latency(), 1..300),
            p in 0.0f64..=100.0,
        ) {
            let got = of(&values).percentile(p).unwrap();
            let truth = true_percentile(&values, p);
            prop_assert!(got >= truth, "{} < {}", got, truth);
            prop_assert!(got as f64 <= truth as f64 * 1.25 + 1.0, "{} ≫ {}", got, truth);
        }

        /// Past the last bound the answer is still at least the truth and at most the max.
        #[test]
        fn overflow_stays_between_truth_and_max(
            values in proptest::collection::vec(0u64..10_000_000, 1..100),
            p in 0.0f64..=100.0,
        ) {
            let histogram = of(&values);
            let got = histogram.percentile(p).unwrap();
            prop_assert!(got >= true_percentile(&values, p));
            prop_assert!(Some(got) <= histogram.max());
            prop_assert_eq!(histogram.max(), values.iter().copied().max());
        }

        /// A higher percentile is never smaller.
        #[test]
        fn percentiles_rise_with_p(
            values in proptest::collection::vec(latency(), 1..300),
            mut ps in proptest::collection::vec(0.0f64..=100.0, 2..20),
        ) {
            let histogram = of(&values);
            ps.sort_by(f64::total_cmp);
            let answers: Vec<u64> = ps.iter().map(|&p| histogram.percentile(p).unwrap()).collect();
            prop_assert!(answers.windows(2).all(|pair| pair[0] <= pair[1]), "{:?} at {:?}", answers, ps);
        }

        /// Merging is commutative and associative, equals recording everything into one,
        /// and survives the stored form.
        #[test]
        fn merging_is_order_free(
            a in proptest::collection::vec(latency(), 0..100),
            b in proptest::collection::vec(latency(), 0..100),
            c in proptest::collection::vec(latency(), 0..100),
        ) {
            let (ha, hb, hc) = (of(&a), of(&b), of(&c));
            let mut ab = ha.clone();
            ab.merge(&hb);
            let mut ba = hb.clone();
            ba.merge(&ha);
            prop_assert_eq!(&ab, &ba);
            let mut ab_c = ab.clone();
            ab_c.merge(&hc);
            let mut bc = hb.clone();
            bc.merge(&hc);
            let mut a_bc = ha.clone();
            a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);
            prop_assert_eq!(&ab_c, &of(&[a, b, c].concat()));
            let json = serde_json::to_string(&ab_c).unwrap();
            prop_assert_eq!(serde_json::from_str::<LatencyHistogram>(&json).unwrap(), ab_c);
        }
    }
}
