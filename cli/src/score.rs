//! `ttedge score`: a person-readable summary of an export's match quality.

use serde::Serialize;
use ttedge_core::pipeline::{Destination, Status};
use ttedge_core::quality::{MissingFactor, QualitySummary};

use crate::{Outcome, Prepared, RuleArgs};

/// Counts by status.
#[derive(Default, Serialize)]
pub struct StatusCounts {
    pub total: u64,
    pub ready: u64,
    pub skipped: u64,
    pub held: u64,
    pub rejected: u64,
}

/// The summary `score` prints.
#[derive(Serialize)]
pub struct Report {
    pub events: StatusCounts,
    pub scored: u64,
    pub mean_score: Option<f64>,
    pub median_score: Option<f64>,
    pub below_threshold_share: Option<f64>,
    pub below_threshold: u64,
    pub histogram: [u64; 10],
    pub most_missing: Vec<MissingFactor>,
}

/// Summarises every event; unreadable lines count as rejected.
pub fn run(rules: &RuleArgs, destination: &Destination, as_json: bool) -> anyhow::Result<Outcome> {
    let prepared = rules.prepare(destination)?;
    for bad in prepared.iter().filter_map(|event| event.as_ref().err()) {
        eprintln!("ttedge: {bad}");
    }
    let report = summarise(&prepared);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(Outcome {
        any_rejected: report.events.rejected > 0,
    })
}

/// Counts and match quality of prepared events; unreadable ones count as rejected.
pub fn summarise(prepared: &[Prepared]) -> Report {
    let mut counts = StatusCounts::default();
    let mut summary = QualitySummary::default();
    let mut scores = Vec::new();
    for event in prepared {
        counts.total += 1;
        let Ok(event) = event else {
            counts.rejected += 1;
            continue;
        };
        *match event.status {
            Status::Ready => &mut counts.ready,
            Status::Skipped => &mut counts.skipped,
            Status::Held => &mut counts.held,
            Status::Rejected => &mut counts.rejected,
        } += 1;
        if let Some(emq) = &event.emq {
            summary.add(emq);
            scores.push(emq.score.0);
        }
    }
    Report {
        scored: summary.events,
        mean_score: summary.mean(),
        median_score: median(&mut scores),
        below_threshold_share: summary.below_threshold_share(),
        below_threshold: summary.below_threshold,
        histogram: summary.histogram,
        most_missing: summary.most_missing(),
        events: counts,
    }
}

/// The factors missing most often, one line each: `score` and `send` print them alike.
pub fn write_most_missing(text: &mut String, missing: &[MissingFactor]) {
    text.push_str("missing most often:\n");
    for factor in missing {
        text.push_str(&format!(
            "  {:<12} missing in {:>6} events ({:>5.1}%), would add {:.2} points each\n",
            factor.factor.name(),
            factor.events,
            factor.share * 100.0,
            factor.mean_gain
        ));
    }
}

/// Median of scores in hundredths, as score points.
fn median(scores: &mut [u32]) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    scores.sort_unstable();
    let mid = scores.len() / 2;
    let hundredths = if scores.len() % 2 == 0 {
        (f64::from(scores[mid - 1]) + f64::from(scores[mid])) / 2.0
    } else {
        f64::from(scores[mid])
    };
    Some(hundredths / 100.0)
}

fn render(report: &Report) -> String {
    let c = &report.events;
    let mut text = format!(
        "events: {} (ready {}, skipped {}, held {}, rejected {})\n",
        c.total, c.ready, c.skipped, c.held, c.rejected
    );
    text.push_str(&render_quality(report));
    text
}

/// The match-quality part of the summary: mean, median, share under threshold, and the
/// factors missing most often.
pub fn render_quality(report: &Report) -> String {
    let mut text = String::new();
    let (Some(mean), Some(median), Some(share)) = (
        report.mean_score,
        report.median_score,
        report.below_threshold_share,
    ) else {
        text.push_str("match quality: no event could be scored\n");
        return text;
    };
    text.push_str(&format!(
        "match quality over {} scored events: mean {mean:.1}, median {median:.1}\n",
        report.scored
    ));
    text.push_str(&format!(
        "under threshold (browser 70, offline 50): {:.1}% ({} events)\n",
        share * 100.0,
        report.below_threshold
    ));
    if report.most_missing.is_empty() {
        text.push_str("nothing is missing: every factor is full\n");
    } else {
        write_most_missing(&mut text, &report.most_missing);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5_000]), Some(50.0));
        assert_eq!(median(&mut [9_000, 1_000, 7_000, 3_000]), Some(50.0));
        assert_eq!(median(&mut [100, 10_000, 2_250]), Some(22.5));
    }
}
