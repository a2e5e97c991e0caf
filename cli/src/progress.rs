//! Progress of `ttedge send`: a bar with rows, rate and ETA when stderr is a terminal, else
//! plain lines (at most one every few seconds, and the last), which logs keep readable.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The shortest time between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Progress of the rows to send.
pub enum Progress {
    /// On a terminal.
    Bar(ProgressBar),
    /// Elsewhere: plain lines on stderr.
    Lines {
        total: u64,
        done: u64,
        /// Rows already confirmed before this run (not counted in the rate).
        resumed: u64,
        start: Instant,
        last: Instant,
    },
}

impl Progress {
    /// Progress towards `total` rows, `done` of them already confirmed by an earlier run.
    pub fn new(total: u64, done: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(done);
            bar.reset_eta();
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines {
                total,
                done,
                resumed: done,
                start: now,
                // The first line comes after the first chunk.
                last: now.checked_sub(LINE_EVERY).unwrap_or(now),
            }
        }
    }

    /// `rows` more were confirmed.
    pub fn advance(&mut self, rows: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_message("");
                bar.inc(rows);
            }
            Progress::Lines { done, last, .. } => {
                *done += rows;
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    self.print_line();
                }
            }
        }
    }

    /// A wait before a retry, and why.
    pub fn waiting(&self, pause: Duration, why: &str) {
        let note = format!("retrying in {:.1}s after {why}", pause.as_secs_f64());
        match self {
            Progress::Bar(bar) => bar.set_message(note),
            Progress::Lines { .. } => eprintln!("ttedge: {note}"),
        }
    }

    /// The upload ended (done or not).
    pub fn finish(&mut self) {
        match self {
            // The bar stays, without a retry note that may wrap over several lines; its
            // line is ended, so what follows starts on a line of its own.
            Progress::Bar(bar) => {
                bar.abandon_with_message("");
                eprintln!();
            }
            Progress::Lines { .. } => self.print_line(),
        }
    }

    fn print_line(&self) {
        let Progress::Lines {
            total,
            done,
            resumed,
            start,
            ..
        } = self
        else {
            return;
        };
        let seconds = start.elapsed().as_secs_f64();
        let sent = done.saturating_sub(*resumed) as f64;
        let rate = if seconds > 0.0 { sent / seconds } else { 0.0 };
        let eta = if rate > 0.0 {
            format!(", ETA {:.0}s", total.saturating_sub(*done) as f64 / rate)
        } else {
            String::new()
        };
        eprintln!("ttedge: sent {done} of {total} rows ({rate:.0} rows/s{eta})");
    }
}
