//! Event Match Quality: how well TikTok can tie an event to a person, from 0 to 100.
//!
//! Five factors, each worth up to 10 points, weighted email 30 %, phone 25 %, external id
//! 20 %, browser data 15 % and event data 10 %; score = 10 × Σ weight × points.
//! Browser data counts `ttp` 4, `ttclid` 3, IP 1.5 and user agent 1.5 points; event data
//! counts value 3, currency 2, contents 3 and a content id 2.
//!
//! Arithmetic is in whole hundredths of a score point so it is exact and needs no float
//! maths library under `no_std`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use serde::{Deserialize, Serialize, Serializer};

use crate::event::Source;

/// What an event carries that TikTok can match on, after consent is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchSignals {
    /// A hashed email.
    pub email: bool,
    /// A hashed phone.
    pub phone: bool,
    /// A hashed external id.
    pub external_id: bool,
    /// The `_ttp` cookie value.
    pub ttp: bool,
    /// The TikTok click id.
    pub ttclid: bool,
    /// The IP address.
    pub ip: bool,
    /// The user agent.
    pub user_agent: bool,
    /// A value.
    pub value: bool,
    /// A currency.
    pub currency: bool,
    /// At least one content (line item).
    pub contents: bool,
    /// A content with a product id.
    pub content_id: bool,
}

/// The five factors of the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// Hashed email, 30 %.
    Email,
    /// Hashed phone, 25 %.
    Phone,
    /// Hashed external id, 20 %.
    ExternalId,
    /// `ttp`, `ttclid`, IP and user agent, 15 %.
    Browser,
    /// Value, currency, contents and content id, 10 %.
    Event,
}

impl Factor {
    /// All factors, in order of weight.
    pub const ALL: [Factor; 5] = [
        Factor::Email,
        Factor::Phone,
        Factor::ExternalId,
        Factor::Browser,
        Factor::Event,
    ];

    /// The factor's weight in percent.
    pub const fn weight_percent(self) -> u32 {
        match self {
            Factor::Email => 30,
            Factor::Phone => 25,
            Factor::ExternalId => 20,
            Factor::Browser => 15,
            Factor::Event => 10,
        }
    }

    /// The factor's name as it appears in answers.
    pub const fn name(self) -> &'static str {
        match self {
            Factor::Email => "email",
            Factor::Phone => "phone",
            Factor::ExternalId => "external_id",
            Factor::Browser => "browser",
            Factor::Event => "event",
        }
    }
}

/// One part of a factor, in tenths of a point, with the advice for when it is missing.
struct Part {
    present: bool,
    tenths: u32,
    advice: &'static str,
}

/// The parts of a factor; a fixed array because this runs for every event.
fn parts(factor: Factor, s: &MatchSignals) -> ([Part; 4], usize) {
    let part = |present, tenths, advice| Part {
        present,
        tenths,
        advice,
    };
    let unused = || part(true, 0, "");
    match factor {
        Factor::Email => (
            [
                part(s.email, 100, "send the customer's email (ttedge hashes it)"),
                unused(),
                unused(),
                unused(),
            ],
            1,
        ),
        Factor::Phone => (
            [
                part(
                    s.phone,
                    100,
                    "send the customer's phone number (ttedge hashes it)",
                ),
                unused(),
                unused(),
                unused(),
            ],
            1,
        ),
        Factor::ExternalId => (
            [
                part(s.external_id, 100, "send your customer id as external_id"),
                unused(),
                unused(),
                unused(),
            ],
            1,
        ),
        Factor::Browser => (
            [
                part(
                    s.ttp,
                    40,
                    "keep the _ttp cookie (collect from the shop's own subdomain)",
                ),
                part(s.ttclid, 30, "pass the page URL so its ttclid is kept"),
                part(s.ip, 15, "send the visitor's IP address"),
                part(s.user_agent, 15, "send the visitor's user agent"),
            ],
            4,
        ),
        Factor::Event => (
            [
                part(s.value, 30, "send the value"),
                part(s.currency, 20, "send the currency"),
                part(s.contents, 30, "send the line items"),
                part(s.content_id, 20, "give each line item a product id"),
            ],
            4,
        ),
    }
}

/// A score in hundredths of a point (0 to 10 000), serialised as a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Points(pub u32);

impl Points {
    /// As a float, for display and JSON.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// As the score reads: `94`, `2.5`, `0.25`. The same text as the `f64`'s `Display`, written
/// from the integer, so the Worker carries no float formatting code for it.
impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        match hundredths {
            0 => write!(f, "{whole}"),
            _ if hundredths % 10 == 0 => write!(f, "{whole}.{}", hundredths / 10),
            _ => write!(f, "{whole}.{hundredths:02}"),
        }
    }
}

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_u32(self.0 / 100)
        } else {
            serializer.serialize_f64(self.as_f64())
        }
    }
}

/// Read back from what [`Serialize`] writes: points, rounded to the hundredth.
impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let points = f64::deserialize(deserializer)?;
        if !(0.0..=100.0).contains(&points) {
            return Err(serde::de::Error::custom("points must be from 0 to 100"));
        }
        // no_std has no `round`: adding a half and truncating is the same for these.
        Ok(Points((points * 100.0 + 0.5) as u32))
    }
}

/// How a score compares with its source's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// 85 or more.
    Excellent,
    /// At or above the threshold (browser 70, offline 50).
    Good,
    /// Below the threshold.
    NeedsImprovement,
}

/// What a factor that is not full would add, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coaching {
    /// The factor.
    pub factor: Factor,
    /// Score points it would add when full.
    pub gain: Points,
    /// What to send.
    pub advice: String,
}

/// The score of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchQuality {
    /// 0 to 100.
    pub score: Points,
    /// The grade for the event's source.
    pub grade: Grade,
    /// One entry per factor that is not full, heaviest gain first.
    pub coaching: Vec<Coaching>,
}

/// Score at or above which an event is excellent.
pub const EXCELLENT: Points = Points(8_500);

/// The threshold an event of `source` should reach.
pub const fn threshold(source: Source) -> Points {
    match source {
        Source::Browser => Points(7_000),
        Source::Offline => Points(5_000),
    }
}

impl MatchQuality {
    /// Whether the score is under the source's threshold.
    pub fn below_threshold(&self) -> bool {
        self.grade == Grade::NeedsImprovement
    }
}

/// Scores an event's signals for its source.
pub fn score(signals: &MatchSignals, source: Source) -> MatchQuality {
    let mut total = 0;
    let mut coaching = Vec::new();
    for factor in Factor::ALL {
        let weight = factor.weight_percent();
        let mut missing_advice = String::new();
        let mut missing_tenths = 0;
        let (parts, count) = parts(factor, signals);
        for part in &parts[..count] {
            if part.present {
                total += weight * part.tenths;
            } else {
                missing_tenths += part.tenths;
                let gain = Points(weight * part.tenths);
                if !missing_advice.is_empty() {
                    missing_advice.push_str("; ");
                }
                // Writing to a String cannot fail.
                let _ = write!(missing_advice, "{} (+{gain})", part.advice);
            }
        }
        if missing_tenths > 0 {
            coaching.push(Coaching {
                factor,
                gain: Points(weight * missing_tenths),
                advice: missing_advice,
            });
        }
    }
    coaching.sort_by(|a, b| b.gain.cmp(&a.gain).then(a.factor.cmp(&b.factor)));
    let score = Points(total);
    let grade = if score >= EXCELLENT {
        Grade::Excellent
    } else if score >= threshold(source) {
        Grade::Good
    } else {
        Grade::NeedsImprovement
    };
    MatchQuality {
        score,
        grade,
        coaching,
    }
}

/// Match quality of many events, mergeable: the CLI's `score` and the health page use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct QualitySummary {
    /// Events scored.
    pub events: u64,
    /// Sum of scores, in hundredths.
    pub score_sum: u64,
    /// Events under their source's threshold.
    pub below_threshold: u64,
    /// Events per 10-point bin: 0–9.99, 10–19.99, …, 90–100.
    pub histogram: [u64; 10],
    /// Per factor (in [`Factor::ALL`] order): events where it was not full.
    pub missing: [u64; 5],
    /// Per factor: summed gains, in hundredths, over the events where it was not full.
    pub missing_gain_sum: [u64; 5],
}

/// One factor's line in a summary: how often it was missing and what it would add.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MissingFactor {
    /// The factor.
    pub factor: Factor,
    /// Events where it was not full.
    pub events: u64,
    /// Share of scored events, 0 to 1.
    pub share: f64,
    /// Mean score points it would add to those events.
    pub mean_gain: f64,
}

impl QualitySummary {
    /// Counts one event's score.
    pub fn add(&mut self, quality: &MatchQuality) {
        self.events += 1;
        self.score_sum += u64::from(quality.score.0);
        self.below_threshold += u64::from(quality.below_threshold());
        let bin = (quality.score.0 / 1_000).min(9) as usize;
        self.histogram[bin] += 1;
        for coaching in &quality.coaching {
            let slot = Factor::ALL
                .iter()
                .position(|f| *f == coaching.factor)
                .unwrap_or(0);
            self.missing[slot] += 1;
            self.missing_gain_sum[slot] += u64::from(coaching.gain.0);
        }
    }

    /// Takes one event's score out again: an event rescored after identity resolution
    /// counts with the score it is sent with.
    pub fn remove(&mut self, quality: &MatchQuality) {
        self.events = self.events.saturating_sub(1);
        self.score_sum = self.score_sum.saturating_sub(u64::from(quality.score.0));
        self.below_threshold = self
            .below_threshold
            .saturating_sub(u64::from(quality.below_threshold()));
        let bin = (quality.score.0 / 1_000).min(9) as usize;
        self.histogram[bin] = self.histogram[bin].saturating_sub(1);
        for coaching in &quality.coaching {
            let slot = Factor::ALL
                .iter()
                .position(|f| *f == coaching.factor)
                .unwrap_or(0);
            self.missing[slot] = self.missing[slot].saturating_sub(1);
            self.missing_gain_sum[slot] =
                self.missing_gain_sum[slot].saturating_sub(u64::from(coaching.gain.0));
        }
    }

    /// Counts `after` in place of `before`.
    pub fn rescore(&mut self, before: &MatchQuality, after: &MatchQuality) {
        self.remove(before);
        self.add(after);
    }

    /// Adds another summary's counts (another hour, another shard).
    pub fn merge(&mut self, other: &QualitySummary) {
        self.events += other.events;
        self.score_sum += other.score_sum;
        self.below_threshold += other.below_threshold;
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine += theirs;
        }
        for slot in 0..Factor::ALL.len() {
            self.missing[slot] += other.missing[slot];
            self.missing_gain_sum[slot] += other.missing_gain_sum[slot];
        }
    }

    /// Mean score, 0 to 100; `None` before any event.
    pub fn mean(&self) -> Option<f64> {
        (self.events > 0).then(|| self.score_sum as f64 / self.events as f64 / 100.0)
    }

    /// Share of events under their threshold, 0 to 1.
    pub fn below_threshold_share(&self) -> Option<f64> {
        (self.events > 0).then(|| self.below_threshold as f64 / self.events as f64)
    }

    /// Factors that were not full, most often missing first.
    pub fn most_missing(&self) -> Vec<MissingFactor> {
        let mut factors: Vec<MissingFactor> = Factor::ALL
            .iter()
            .enumerate()
            .filter(|(slot, _)| self.missing[*slot] > 0)
            .map(|(slot, factor)| MissingFactor {
                factor: *factor,
                events: self.missing[slot],
                share: self.missing[slot] as f64 / self.events as f64,
                mean_gain: self.missing_gain_sum[slot] as f64 / self.missing[slot] as f64 / 100.0,
            })
            .collect();
        factors.sort_by(|a, b| b.events.cmp(&a.events).then(a.factor.cmp(&b.factor)));
        factors
    }
}

/// Every signal present: the full score, for tests here and in `health`.
#[cfg(test)]
pub(crate) const ALL_SIGNALS: MatchSignals = MatchSignals {
    email: true,
    phone: true,
    external_id: true,
    ttp: true,
    ttclid: true,
    ip: true,
    user_agent: true,
    value: true,
    currency: true,
    contents: true,
    content_id: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    use super::ALL_SIGNALS as FULL;

    #[test]
    fn a_rescored_event_counts_once_with_its_new_score() {
        let weak = score(&MatchSignals::default(), Source::Browser);
        let strong = score(&FULL, Source::Browser);
        let mut summary = QualitySummary::default();
        summary.add(&weak);
        summary.rescore(&weak, &strong);
        let mut expected = QualitySummary::default();
        expected.add(&strong);
        assert_eq!(summary, expected);
    }

    #[test]
    fn everything_scores_100() {
        let quality = score(&FULL, Source::Browser);
        assert_eq!(quality.score, Points(10_000));
        assert_eq!(quality.grade, Grade::Excellent);
        assert!(quality.coaching.is_empty());
    }

    #[test]
    fn nothing_scores_0_with_five_coachings() {
        let quality = score(&MatchSignals::default(), Source::Browser);
        assert_eq!(quality.score, Points(0));
        assert_eq!(quality.grade, Grade::NeedsImprovement);
        let gains: Vec<_> = quality
            .coaching
            .iter()
            .map(|c| (c.factor, c.gain.0))
            .collect();
        assert_eq!(
            gains,
            [
                (Factor::Email, 3_000),
                (Factor::Phone, 2_500),
                (Factor::ExternalId, 2_000),
                (Factor::Browser, 1_500),
                (Factor::Event, 1_000)
            ]
        );
    }

    #[test]
    fn missing_phone_costs_25() {
        let signals = MatchSignals {
            phone: false,
            ..FULL
        };
        let quality = score(&signals, Source::Browser);
        assert_eq!(quality.score, Points(7_500));
        assert_eq!(quality.grade, Grade::Good);
        assert_eq!(quality.coaching.len(), 1);
        assert_eq!(quality.coaching[0].gain, Points(2_500));
        assert!(quality.coaching[0].advice.contains("phone"));
    }

    #[test]
    fn browser_parts_are_weighted() {
        let signals = MatchSignals {
            ttp: false,
            ip: false,
            ..FULL
        };
        let quality = score(&signals, Source::Browser);
        // ttp 4 × 1.5 = 6, IP 1.5 × 1.5 = 2.25
        assert_eq!(quality.score, Points(10_000 - 600 - 225));
        assert_eq!(quality.coaching[0].gain, Points(825));
        assert!(quality.coaching[0].advice.contains("own subdomain) (+6)"));
        assert!(quality.coaching[0].advice.contains("IP address (+2.25)"));
    }

    #[test]
    fn thresholds_depend_on_source() {
        // email + phone = 55: under browser's 70, over offline's 50.
        let signals = MatchSignals {
            email: true,
            phone: true,
            ..MatchSignals::default()
        };
        assert_eq!(
            score(&signals, Source::Browser).grade,
            Grade::NeedsImprovement
        );
        assert_eq!(score(&signals, Source::Offline).grade, Grade::Good);
        // Exactly at the threshold is good: email 30 + phone 25 + full browser data 15 = 70.
        let at_70 = MatchSignals {
            email: true,
            phone: true,
            ttp: true,
            ttclid: true,
            ip: true,
            user_agent: true,
            ..MatchSignals::default()
        };
        let quality = score(&at_70, Source::Browser);
        assert_eq!((quality.score, quality.grade), (Points(7_000), Grade::Good));
    }

    #[test]
    fn scores_serialise_as_plain_numbers() {
        let quality = score(
            &MatchSignals {
                ip: true,
                ..MatchSignals::default()
            },
            Source::Browser,
        );
        let json = serde_json::to_string(&quality).unwrap();
        assert!(json.starts_with(r#"{"score":2.25,"grade":"needs_improvement","coaching":[{"factor":"email","gain":30,"#), "{json}");
    }

    #[test]
    fn summaries_count_and_merge() {
        let full = score(&FULL, Source::Browser);
        let no_phone = score(
            &MatchSignals {
                phone: false,
                ..FULL
            },
            Source::Browser,
        );
        let nothing = score(&MatchSignals::default(), Source::Browser);
        let mut a = QualitySummary::default();
        a.add(&full);
        a.add(&no_phone);
        let mut b = QualitySummary::default();
        b.add(&nothing);
        a.merge(&b);
        assert_eq!(a.events, 3);
        assert!((a.mean().unwrap() - 175.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.below_threshold, 1);
        assert_eq!(a.histogram, [1, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
        let missing = a.most_missing();
        assert_eq!(missing[0].factor, Factor::Phone);
        assert_eq!((missing[0].events, missing[0].mean_gain), (2, 25.0));
        assert_eq!(missing.len(), 5);
        assert_eq!(QualitySummary::default().mean(), None);
    }

    #[test]
    fn points_read_as_their_float_does() {
        use alloc::format;
        for hundredths in 0..=10_000 {
            let points = Points(hundredths);
            assert_eq!(format!("{points}"), format!("{}", points.as_f64()));
        }
    }
}
