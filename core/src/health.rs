//! Delivery health: hourly buckets of a Dispatcher's counters, call latencies and match
//! quality, and the report built from them for the last hour, 24 hours and 7 days.
//!
//! The Dispatcher keeps one [`HourBucket`] per hour (by the hour's start in epoch
//! milliseconds) for 7 days; [`report`] turns a set of buckets into totals, rates,
//! percentiles, the match-quality summary and the recovery figures. Time is passed in.
//!
//! **Windows are whole hour buckets.** A window of `N` hours holds every bucket that
//! overlaps the last `N` hours: the current, partial hour and the `N` hours before it
//! (see [`in_window`]). `last_hour` therefore never reads zero just after the hour turns;
//! each window covers between `N` and `N + 1` hours. Match quality and recovery are reported
//! over the 7-day window.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::delivery::Metric;
use crate::event::PixelStatus;
use crate::latency::LatencyHistogram;
use crate::quality::{MissingFactor, QualitySummary};

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 60 * 60 * 1_000;

/// How long buckets are kept: a bucket is dropped once it ends before the last 7 days.
pub const HISTORY_HOURS: u64 = 7 * 24;

/// TikTok event names that always count as conversions.
pub const CONVERSIONS: [&str; 3] = ["CompletePayment", "PlaceAnOrder", "Purchase"];

/// Whether the TikTok event `name` is a conversion: one of [`CONVERSIONS`] or one of the
/// destination's `extra` names. Names are compared exactly, as TikTok does.
pub fn is_conversion(name: &str, extra: &[String]) -> bool {
    CONVERSIONS.contains(&name) || extra.iter().any(|e| e == name)
}

/// Whether the page reported that its TikTok pixel could not have seen the event
/// (`context.pixel` `blocked` or `absent`).
pub fn unseen_by_pixel(pixel: Option<PixelStatus>) -> bool {
    matches!(pixel, Some(PixelStatus::Blocked | PixelStatus::Absent))
}

/// The start of the hour that `ms` falls in.
pub const fn hour_of(ms: u64) -> u64 {
    ms / HOUR_MS * HOUR_MS
}

/// Whether the bucket starting at `hour_ms` belongs to the window of the last `hours` hours
/// at `now_ms`: it overlaps `(now − hours, now]`. Buckets from the future (a clock that went
/// back) count as current.
pub fn in_window(hour_ms: u64, now_ms: u64, hours: u64) -> bool {
    hour_ms.saturating_add(HOUR_MS) > now_ms.saturating_sub(hours.saturating_mul(HOUR_MS))
}

/// The oldest hour start still kept at `now_ms` (older buckets can be deleted).
pub fn oldest_kept_hour(now_ms: u64) -> u64 {
    hour_of(now_ms).saturating_sub(HISTORY_HOURS * HOUR_MS)
}

/// An hour's event and call counts: one field per [`Metric`], named as the metric is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Events stored for delivery (duplicates not counted).
    pub received: u64,
    /// Events put in a request to TikTok (each attempt counts).
    pub sent: u64,
    /// Events TikTok accepted.
    pub delivered: u64,
    /// Event retries scheduled after a retryable failure.
    pub retried: u64,
    /// Events parked (not delivered after every retry, or refused).
    pub parked: u64,
    /// Parked events put back in the queue by the operator.
    pub replayed: u64,
    /// Events held back by consent.
    pub held: u64,
    /// Events skipped (internal events, custom events off).
    pub skipped: u64,
    /// Events rejected before queueing.
    pub rejected: u64,
    /// Events accepted while the destination is not live: scored and counted, not sent.
    pub not_live: u64,
    /// Requests sent to TikTok.
    pub requests: u64,
    /// Calls to TikTok that came back (with an answer, an error or a time-out).
    pub calls: u64,
    /// Calls that failed: retried or refused (a partial success is not a failure).
    pub failed_calls: u64,
    /// Conversions delivered.
    pub conversions: u64,
    /// Conversions delivered whose page reported the pixel blocked or absent.
    pub conversions_unseen: u64,
    /// Events stored whose page reported the pixel blocked or absent.
    pub pixel_missing: u64,
    /// Cash-on-delivery orders confirmed (paid or delivered).
    pub cod_confirmed: u64,
    /// Cash-on-delivery orders cancelled.
    pub cod_cancelled: u64,
    /// Events that received a stored email, phone or external id.
    pub enriched: u64,
    /// Score points enriched events gained, in hundredths.
    pub enrichment_gain: u64,
}

impl Counts {
    /// The counter of `metric`. The match is exhaustive: a new metric needs a field here.
    pub fn get_mut(&mut self, metric: Metric) -> &mut u64 {
        match metric {
            Metric::Received => &mut self.received,
            Metric::Sent => &mut self.sent,
            Metric::Delivered => &mut self.delivered,
            Metric::Retried => &mut self.retried,
            Metric::Parked => &mut self.parked,
            Metric::Replayed => &mut self.replayed,
            Metric::Held => &mut self.held,
            Metric::Skipped => &mut self.skipped,
            Metric::Rejected => &mut self.rejected,
            Metric::NotLive => &mut self.not_live,
            Metric::Requests => &mut self.requests,
            Metric::Calls => &mut self.calls,
            Metric::FailedCalls => &mut self.failed_calls,
            Metric::Conversions => &mut self.conversions,
            Metric::ConversionsUnseen => &mut self.conversions_unseen,
            Metric::PixelMissing => &mut self.pixel_missing,
            Metric::CodConfirmed => &mut self.cod_confirmed,
            Metric::CodCancelled => &mut self.cod_cancelled,
            Metric::Enriched => &mut self.enriched,
            Metric::EnrichmentGain => &mut self.enrichment_gain,
        }
    }

    /// Adds `value` to `metric`.
    pub fn add(&mut self, metric: Metric, value: u64) {
        let slot = self.get_mut(metric);
        *slot = slot.saturating_add(value);
    }

    /// Adds another hour's counts.
    pub fn merge(&mut self, other: &Counts) {
        let mut other = *other;
        for metric in Metric::ALL {
            self.add(metric, *other.get_mut(metric));
        }
    }
}

/// Everything kept about one hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HourBucket {
    /// Start of the hour, epoch milliseconds.
    pub hour_ms: u64,
    /// Event and call counts.
    pub counts: Counts,
    /// Latency of the hour's TikTok calls.
    pub latency: LatencyHistogram,
    /// Match quality of the hour's scored events (ready and held).
    pub quality: QualitySummary,
}

impl HourBucket {
    /// An empty bucket for the hour starting at `hour_ms`.
    pub fn new(hour_ms: u64) -> Self {
        HourBucket {
            hour_ms,
            ..HourBucket::default()
        }
    }

    /// Adds another bucket's contents (the hour is kept).
    pub fn merge(&mut self, other: &HourBucket) {
        self.counts.merge(&other.counts);
        self.latency.merge(&other.latency);
        self.quality.merge(&other.quality);
    }
}

/// Totals of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowTotals {
    /// The window's summed counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// delivered / (delivered + parked); `None` when both are 0.
    pub success_rate: Option<f64>,
    /// failed calls / calls; `None` without calls.
    pub error_rate: Option<f64>,
    /// Cash on delivery: confirmed / (confirmed + cancelled); `None` when both are 0.
    pub cod_confirmation_rate: Option<f64>,
    /// Median call latency, ms; `None` without calls.
    pub p50: Option<u64>,
    /// 95th percentile call latency, ms.
    pub p95: Option<u64>,
    /// 99th percentile call latency, ms.
    pub p99: Option<u64>,
    /// Slowest call, ms.
    pub max: Option<u64>,
}

impl WindowTotals {
    /// Totals of merged counts and latencies.
    pub fn from_parts(counts: &Counts, latency: &LatencyHistogram) -> Self {
        WindowTotals {
            counts: *counts,
            success_rate: ratio(counts.delivered, counts.delivered + counts.parked),
            error_rate: ratio(counts.failed_calls, counts.calls),
            cod_confirmation_rate: ratio(
                counts.cod_confirmed,
                counts.cod_confirmed + counts.cod_cancelled,
            ),
            p50: latency.percentile(50.0),
            p95: latency.percentile(95.0),
            p99: latency.percentile(99.0),
            max: latency.max(),
        }
    }
}

/// The three windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    /// The current hour and the one before it.
    pub last_hour: WindowTotals,
    /// The current hour and the 24 before it.
    pub last_24h: WindowTotals,
    /// The current hour and the 168 before it (everything kept).
    pub last_7d: WindowTotals,
}

/// Match quality over the 7-day window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmqReport {
    /// Events scored (ready and held).
    pub events: u64,
    /// Mean score, 0 to 100; `None` before any event.
    pub mean: Option<f64>,
    /// Events per 10-point bin: 0–9.99, …, 90–100.
    pub histogram: [u64; 10],
    /// Share of events under their source's threshold.
    pub below_threshold_share: Option<f64>,
    /// Factors that were not full, most often missing first.
    pub most_missing: Vec<MissingFactor>,
}

impl EmqReport {
    /// The report of a merged summary.
    pub fn from_summary(summary: &QualitySummary) -> Self {
        EmqReport {
            events: summary.events,
            mean: summary.mean(),
            histogram: summary.histogram,
            below_threshold_share: summary.below_threshold_share(),
            most_missing: summary.most_missing(),
        }
    }
}

/// Conversions the server delivered, and those the browser pixel could not have seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Conversions delivered in the 7-day window.
    pub conversions_delivered: u64,
    /// Among those, conversions whose page reported the pixel `blocked` or `absent`.
    pub unseen_by_pixel: u64,
    /// unseen / delivered; `None` without conversions.
    pub unseen_share: Option<f64>,
    /// Events stored in the 7-day window.
    pub events_received: u64,
    /// Among those, events whose page reported the pixel `blocked` or `absent`.
    pub pixel_missing: u64,
    /// pixel_missing / received; `None` without events.
    pub pixel_missing_share: Option<f64>,
}

/// One hour of the hourly chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourPoint {
    /// Start of the hour, epoch milliseconds.
    pub hour_ms: u64,
    /// Events stored for delivery.
    pub received: u64,
    /// Events TikTok accepted.
    pub delivered: u64,
    /// Event retries scheduled.
    pub retried: u64,
    /// Events parked.
    pub parked: u64,
    /// Calls to TikTok that failed.
    pub failed_calls: u64,
    /// Calls to TikTok that came back.
    pub calls: u64,
    /// Median call latency, ms; `None` without calls.
    pub p50: Option<u64>,
    /// 95th percentile call latency, ms.
    pub p95: Option<u64>,
    /// 99th percentile call latency, ms.
    pub p99: Option<u64>,
}

impl HourPoint {
    fn from_parts(hour_ms: u64, counts: &Counts, latency: &LatencyHistogram) -> Self {
        HourPoint {
            hour_ms,
            received: counts.received,
            delivered: counts.delivered,
            retried: counts.retried,
            parked: counts.parked,
            failed_calls: counts.failed_calls,
            calls: counts.calls,
            p50: latency.percentile(50.0),
            p95: latency.percentile(95.0),
            p99: latency.percentile(99.0),
        }
    }
}

/// Points in [`HealthReport::hourly`]: the 24 hours before the current one, and it.
pub const HOURLY_POINTS: usize = 25;

/// The health of one Dispatcher (one destination's access token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Totals per window.
    pub windows: Windows,
    /// Hour by hour, oldest first: the 24 hours before the current hour and the current,
    /// partial hour, with empty hours as zeros so a chart's axis is continuous. Buckets
    /// from the future (a clock that went back) count as the current hour, as in
    /// [`in_window`]. Within the first day after the epoch there are fewer points.
    pub hourly: Vec<HourPoint>,
    /// Match quality over the last 7 days.
    pub emq: EmqReport,
    /// Recovery over the last 7 days.
    pub recovery: Recovery,
    /// Identity resolution over the last 7 days.
    pub identity: IdentityReport,
}

/// Identity resolution over the 7-day window: what the stored identities added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentityReport {
    /// Events that received a stored email, phone or external id.
    pub enriched: u64,
    /// Mean score points those events gained; `None` before any.
    pub mean_gain: Option<f64>,
}

impl IdentityReport {
    /// The report of summed counts.
    pub fn from_counts(counts: &Counts) -> Self {
        IdentityReport {
            enriched: counts.enriched,
            mean_gain: (counts.enriched > 0)
                .then(|| counts.enrichment_gain as f64 / counts.enriched as f64 / 100.0),
        }
    }
}

/// Builds the report at `now_ms` from the kept buckets (in any order; several buckets of the
/// same hour simply add up).
pub fn report(buckets: &[HourBucket], now_ms: u64) -> HealthReport {
    let merged = |hours: u64| {
        let mut total = HourBucket::new(hour_of(now_ms));
        for bucket in buckets
            .iter()
            .filter(|b| in_window(b.hour_ms, now_ms, hours))
        {
            total.merge(bucket);
        }
        total
    };
    let (hour, day, week) = (merged(1), merged(24), merged(HISTORY_HOURS));
    let totals = |b: &HourBucket| WindowTotals::from_parts(&b.counts, &b.latency);
    HealthReport {
        hourly: hourly(buckets, now_ms),
        windows: Windows {
            last_hour: totals(&hour),
            last_24h: totals(&day),
            last_7d: totals(&week),
        },
        emq: EmqReport::from_summary(&week.quality),
        recovery: Recovery {
            conversions_delivered: week.counts.conversions,
            unseen_by_pixel: week.counts.conversions_unseen,
            unseen_share: ratio(week.counts.conversions_unseen, week.counts.conversions),
            events_received: week.counts.received,
            pixel_missing: week.counts.pixel_missing,
            pixel_missing_share: ratio(week.counts.pixel_missing, week.counts.received),
        },
        identity: IdentityReport::from_counts(&week.counts),
    }
}

/// The [`HOURLY_POINTS`] hours up to the current one, oldest first.
fn hourly(buckets: &[HourBucket], now_ms: u64) -> Vec<HourPoint> {
    let current = hour_of(now_ms);
    let mut hours: Vec<(u64, Counts, LatencyHistogram)> = (0..HOURLY_POINTS as u64)
        .rev()
        .filter_map(|back| current.checked_sub(back * HOUR_MS))
        .map(|hour_ms| (hour_ms, Counts::default(), LatencyHistogram::new()))
        .collect();
    let oldest = hours.first().map_or(current, |(hour_ms, _, _)| *hour_ms);
    for bucket in buckets {
        let hour_ms = hour_of(bucket.hour_ms).min(current);
        if hour_ms < oldest {
            continue;
        }
        let index = ((hour_ms - oldest) / HOUR_MS) as usize;
        if let Some((_, counts, latency)) = hours.get_mut(index) {
            counts.merge(&bucket.counts);
            latency.merge(&bucket.latency);
        }
    }
    hours
        .iter()
        .map(|(hour_ms, counts, latency)| HourPoint::from_parts(*hour_ms, counts, latency))
        .collect()
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use crate::quality::{score, Factor, MatchSignals};
    use alloc::string::ToString;
    use alloc::vec;

    const NOW: u64 = 1_764_064_800_000 + 25 * 60 * 1_000; // 25 minutes into an hour
    const H: u64 = hour_of(NOW);

    fn bucket(hour_ms: u64, metrics: &[(Metric, u64)], latencies: &[u64]) -> HourBucket {
        let mut b = HourBucket::new(hour_ms);
        for &(metric, value) in metrics {
            b.counts.add(metric, value);
        }
        for &ms in latencies {
            b.latency.record(ms);
        }
        b
    }

    #[test]
    fn conversions_are_the_three_names_and_the_extras() {
        for name in CONVERSIONS {
            assert!(is_conversion(name, &[]));
        }
        assert!(!is_conversion("ViewContent", &[]));
        assert!(!is_conversion("completepayment", &[]));
        let extra = vec!["Subscribe".to_string()];
        assert!(is_conversion("Subscribe", &extra));
        assert!(!is_conversion("Lead", &extra));
    }

    #[test]
    fn unseen_means_blocked_or_absent() {
        assert!(unseen_by_pixel(Some(PixelStatus::Blocked)));
        assert!(unseen_by_pixel(Some(PixelStatus::Absent)));
        assert!(!unseen_by_pixel(Some(PixelStatus::Loaded)));
        assert!(!unseen_by_pixel(None));
    }

    #[test]
    fn windows_hold_the_overlapping_buckets() {
        assert!(in_window(H, NOW, 1));
        assert!(in_window(H - HOUR_MS, NOW, 1));
        assert!(!in_window(H - 2 * HOUR_MS, NOW, 1));
        assert!(in_window(H - 24 * HOUR_MS, NOW, 24));
        assert!(!in_window(H - 25 * HOUR_MS, NOW, 24));
        assert!(in_window(H - 168 * HOUR_MS, NOW, 168));
        assert!(!in_window(H - 169 * HOUR_MS, NOW, 168));
        assert!(in_window(H + HOUR_MS, NOW, 1), "a future bucket is current");
        assert_eq!(oldest_kept_hour(NOW), H - 168 * HOUR_MS);
        // Exactly on the hour, the previous hour is still wholly inside the last hour.
        assert!(in_window(H - HOUR_MS, H, 1));
        assert!(!in_window(H - 2 * HOUR_MS, H, 1));
    }

    #[test]
    fn not_live_is_a_metric_that_merges() {
        let mut a = Counts::default();
        a.add(Metric::NotLive, 3);
        let mut b = Counts::default();
        b.add(Metric::NotLive, 4);
        a.merge(&b);
        assert_eq!(a.not_live, 7);
        let r = report(&[bucket(H, &[(Metric::NotLive, 2)], &[])], NOW);
        assert_eq!(r.windows.last_hour.counts.not_live, 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["windows"]["last_7d"]["not_live"], 2);
        // Counts stored before the field existed still read.
        let old: Counts = serde_json::from_str(
            r#"{"received":1,"delivered":1,"retried":0,"parked":0,"held":0,"skipped":0,
                "rejected":0,"requests":1,"calls":1,"failed_calls":0,"conversions":0,
                "conversions_unseen":0}"#,
        )
        .unwrap();
        assert_eq!((old.received, old.not_live), (1, 0));
    }

    #[test]
    fn hourly_has_25_points_oldest_first_with_empty_hours() {
        let r = report(&[], NOW);
        assert_eq!(r.hourly.len(), HOURLY_POINTS);
        for (i, point) in r.hourly.iter().enumerate() {
            assert_eq!(point.hour_ms, H - (24 - i as u64) * HOUR_MS);
            assert_eq!(
                *point,
                HourPoint {
                    hour_ms: point.hour_ms,
                    ..HourPoint::default()
                }
            );
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["hourly"].as_array().unwrap().len(), 25);
        assert!(json["hourly"][0]["p50"].is_null());
        assert_eq!(json["hourly"][24]["hour_ms"], H);
        // Exactly on the hour, the new hour is the last point.
        let on_the_hour = report(&[], H);
        assert_eq!(on_the_hour.hourly[24].hour_ms, H);
        assert_eq!(on_the_hour.hourly[0].hour_ms, H - 24 * HOUR_MS);
    }

    #[test]
    fn hourly_places_each_bucket_in_its_hour() {
        let buckets = [
            bucket(
                H,
                &[
                    (Metric::Received, 5),
                    (Metric::Delivered, 4),
                    (Metric::Calls, 2),
                ],
                &[10, 30],
            ),
            bucket(H, &[(Metric::Received, 1)], &[]),
            bucket(
                H - HOUR_MS,
                &[
                    (Metric::Parked, 2),
                    (Metric::Retried, 3),
                    (Metric::FailedCalls, 1),
                    (Metric::Calls, 1),
                ],
                &[900],
            ),
            bucket(H - 24 * HOUR_MS, &[(Metric::Delivered, 7)], &[]),
            bucket(H - 25 * HOUR_MS, &[(Metric::Delivered, 1_000)], &[]),
            // A clock that went back: counted in the current hour.
            bucket(H + 2 * HOUR_MS, &[(Metric::Received, 10)], &[]),
            // Not on the hour: its hour.
            bucket(H - 3 * HOUR_MS + 5 * 60_000, &[(Metric::Received, 3)], &[]),
        ];
        let r = report(&buckets, NOW);
        let points = &r.hourly;
        assert_eq!(points.len(), 25);
        let now = &points[24];
        assert_eq!(
            (now.hour_ms, now.received, now.delivered, now.calls),
            (H, 16, 4, 2)
        );
        assert_eq!((now.p50, now.p99), (Some(10), Some(30)));
        let before = &points[23];
        assert_eq!(
            (
                before.parked,
                before.retried,
                before.failed_calls,
                before.calls
            ),
            (2, 3, 1, 1)
        );
        assert_eq!(
            (before.p50, before.p95, before.p99),
            (Some(900), Some(900), Some(900))
        );
        assert_eq!(points[21].received, 3);
        assert_eq!(points[0].delivered, 7, "24 hours back is the first point");
        let total: u64 = points.iter().map(|p| p.delivered).sum();
        assert_eq!(total, 11, "25 hours back is outside");
        assert!(points
            .windows(2)
            .all(|w| w[1].hour_ms == w[0].hour_ms + HOUR_MS));
    }

    #[test]
    fn hourly_near_the_epoch_has_no_negative_hours() {
        let r = report(&[bucket(0, &[(Metric::Received, 1)], &[])], 2 * HOUR_MS + 5);
        assert_eq!(r.hourly.len(), 3);
        assert_eq!(r.hourly[0].hour_ms, 0);
        assert_eq!(r.hourly[0].received, 1);
    }

    #[test]
    fn every_metric_has_its_own_counter_named_as_it() {
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            let mut counts = Counts::default();
            counts.add(metric, i as u64 + 1);
            let json = serde_json::to_value(counts).unwrap();
            let name = serde_json::to_value(metric).unwrap();
            let name = name.as_str().unwrap();
            assert_eq!(json[name], i as u64 + 1, "{name}");
            let total: u64 = json
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(total, i as u64 + 1, "{name} touches one counter only");
        }
    }

    #[test]
    fn cod_confirmation_rate_is_confirmed_over_confirmed_and_cancelled() {
        let buckets = [
            bucket(
                H,
                &[(Metric::CodConfirmed, 3), (Metric::CodCancelled, 1)],
                &[],
            ),
            bucket(H - 30 * HOUR_MS, &[(Metric::CodCancelled, 4)], &[]),
        ];
        let report = report(&buckets, NOW);
        let (hour, week) = (&report.windows.last_hour, &report.windows.last_7d);
        assert_eq!(
            (hour.counts.cod_confirmed, hour.counts.cod_cancelled),
            (3, 1)
        );
        assert_eq!(hour.cod_confirmation_rate, Some(0.75));
        assert_eq!(
            (week.counts.cod_confirmed, week.counts.cod_cancelled),
            (3, 5)
        );
        assert_eq!(week.cod_confirmation_rate, Some(0.375));
        let only_cancelled = report_of_one(Metric::CodCancelled);
        assert_eq!(only_cancelled, Some(0.0));
    }

    fn report_of_one(metric: Metric) -> Option<f64> {
        report(&[bucket(H, &[(metric, 2)], &[])], NOW)
            .windows
            .last_hour
            .cod_confirmation_rate
    }

    #[test]
    fn empty_report_has_nulls_not_zeros() {
        let report = report(&[], NOW);
        let w = &report.windows.last_7d;
        assert_eq!(
            (w.counts.received, w.counts.delivered, w.counts.calls),
            (0, 0, 0)
        );
        assert_eq!((w.success_rate, w.error_rate), (None, None));
        assert_eq!(w.cod_confirmation_rate, None);
        assert_eq!((w.p50, w.p95, w.p99, w.max), (None, None, None, None));
        assert_eq!(report.emq.mean, None);
        assert_eq!(report.emq.below_threshold_share, None);
        assert!(report.emq.most_missing.is_empty());
        assert_eq!(report.recovery.unseen_share, None);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["windows"]["last_hour"]["success_rate"].is_null());
        assert!(json["windows"]["last_24h"]["p99"].is_null());
        assert_eq!(json["emq"]["histogram"].as_array().unwrap().len(), 10);
    }

    #[test]
    fn totals_and_rates_merge_across_windows() {
        let buckets = [
            // current hour
            bucket(
                H,
                &[
                    (Metric::Received, 10),
                    (Metric::Delivered, 8),
                    (Metric::Parked, 2),
                    (Metric::Requests, 4),
                    (Metric::Calls, 4),
                    (Metric::FailedCalls, 1),
                    (Metric::Retried, 3),
                ],
                &[121, 121, 121, 900],
            ),
            // previous hour: still in last_hour
            bucket(
                H - HOUR_MS,
                &[
                    (Metric::Delivered, 2),
                    (Metric::Calls, 1),
                    (Metric::Requests, 1),
                    (Metric::Held, 1),
                ],
                &[50],
            ),
            // 10 hours ago: in 24 h and 7 d
            bucket(
                H - 10 * HOUR_MS,
                &[
                    (Metric::Received, 5),
                    (Metric::Delivered, 0),
                    (Metric::Parked, 5),
                    (Metric::Calls, 5),
                    (Metric::FailedCalls, 5),
                    (Metric::Skipped, 2),
                ],
                &[2_000; 5],
            ),
            // 3 days ago: in 7 d only
            bucket(
                H - 72 * HOUR_MS,
                &[
                    (Metric::Delivered, 30),
                    (Metric::Calls, 10),
                    (Metric::Rejected, 1),
                ],
                &[10; 10],
            ),
            // 8 days ago: outside every window
            bucket(H - 192 * HOUR_MS, &[(Metric::Delivered, 1_000)], &[99_999]),
        ];
        let r = report(&buckets, NOW);

        let hour = &r.windows.last_hour;
        assert_eq!(
            (
                hour.counts.received,
                hour.counts.delivered,
                hour.counts.parked,
                hour.counts.held
            ),
            (10, 10, 2, 1)
        );
        assert_eq!(
            (
                hour.counts.requests,
                hour.counts.calls,
                hour.counts.failed_calls
            ),
            (5, 5, 1)
        );
        assert_eq!(hour.counts.retried, 3);
        assert_eq!(hour.success_rate, Some(10.0 / 12.0));
        assert_eq!(hour.error_rate, Some(0.2));
        // 50, 121, 121, 121, 900 (121 is a bucket bound): p50 is the 3rd, p99 the 5th.
        assert_eq!(hour.p50, Some(121));
        assert_eq!(hour.p99, Some(900));
        assert_eq!(hour.max, Some(900));

        let day = &r.windows.last_24h;
        assert_eq!(
            (day.counts.received, day.counts.delivered, day.counts.parked),
            (15, 10, 7)
        );
        assert_eq!(
            (
                day.counts.calls,
                day.counts.failed_calls,
                day.counts.skipped
            ),
            (10, 6, 2)
        );
        assert_eq!(day.success_rate, Some(10.0 / 17.0));
        assert_eq!(day.error_rate, Some(0.6));
        assert_eq!(day.p95, Some(2_000));

        let week = &r.windows.last_7d;
        assert_eq!(
            (
                week.counts.delivered,
                week.counts.calls,
                week.counts.rejected
            ),
            (40, 20, 1)
        );
        assert_eq!(week.success_rate, Some(40.0 / 47.0));
        assert_eq!(week.error_rate, Some(0.3));
        assert_eq!(week.max, Some(2_000), "the 8-day-old call is outside");
        // 20 calls: 10 × 10 ms, 1 × 50, 3 × 121, 1 × 900, 5 × 2,000 → p50 is the 10th.
        assert_eq!(week.p50, Some(10));
    }

    #[test]
    fn same_hour_buckets_add_up() {
        let a = bucket(H, &[(Metric::Delivered, 1), (Metric::Calls, 1)], &[5]);
        let b = bucket(H, &[(Metric::Delivered, 2), (Metric::Calls, 1)], &[7]);
        let r = report(&[a, b], NOW);
        assert_eq!(r.windows.last_hour.counts.delivered, 3);
        assert_eq!(r.windows.last_hour.p99, Some(7));
        assert_eq!(r.windows.last_hour.p50, Some(5));
    }

    #[test]
    fn emq_and_recovery_cover_the_week() {
        let full = crate::quality::ALL_SIGNALS;
        let no_phone = MatchSignals {
            phone: false,
            ..full
        };
        let bare = MatchSignals {
            ip: true,
            user_agent: true,
            ..MatchSignals::default()
        };
        let mut now_hour = bucket(
            H,
            &[
                (Metric::Conversions, 3),
                (Metric::ConversionsUnseen, 2),
                (Metric::Received, 8),
                (Metric::PixelMissing, 2),
                (Metric::Enriched, 2),
                (Metric::EnrichmentGain, 5_500),
            ],
            &[],
        );
        now_hour.quality.add(&score(&full, Source::Browser)); // 100
        now_hour.quality.add(&score(&no_phone, Source::Browser)); // 75
        let mut old = bucket(
            H - 100 * HOUR_MS,
            &[(Metric::Conversions, 1), (Metric::ConversionsUnseen, 0)],
            &[],
        );
        old.quality.add(&score(&bare, Source::Browser)); // 3 × 1.5 = 4.5
        let mut too_old = bucket(H - 200 * HOUR_MS, &[(Metric::Conversions, 9)], &[]);
        too_old.quality.add(&score(&full, Source::Browser));

        let r = report(&[now_hour, old, too_old], NOW);
        assert_eq!(r.identity.enriched, 2);
        assert_eq!(r.identity.mean_gain, Some(27.5), "(30 + 25) / 2 points");
        assert_eq!(r.emq.events, 3);
        let mean = r.emq.mean.unwrap();
        assert!((mean - (100.0 + 75.0 + 4.5) / 3.0).abs() < 1e-9, "{mean}");
        assert_eq!(r.emq.histogram, [1, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(r.emq.below_threshold_share, Some(1.0 / 3.0));
        let missing: Vec<(Factor, u64)> = r
            .emq
            .most_missing
            .iter()
            .map(|m| (m.factor, m.events))
            .collect();
        // phone is missing twice; email, external id, browser and event data once.
        assert_eq!(missing[0], (Factor::Phone, 2));
        assert_eq!(missing.len(), 5);
        assert_eq!(r.emq.most_missing[0].share, 2.0 / 3.0);
        assert_eq!(r.emq.most_missing[0].mean_gain, 25.0);

        assert_eq!(r.recovery.conversions_delivered, 4);
        assert_eq!(r.recovery.unseen_by_pixel, 2);
        assert_eq!(r.recovery.unseen_share, Some(0.5));
        assert_eq!(r.recovery.events_received, 8);
        assert_eq!(r.recovery.pixel_missing, 2);
        assert_eq!(r.recovery.pixel_missing_share, Some(0.25));
    }
}
