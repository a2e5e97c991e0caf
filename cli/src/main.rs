//! `ttedge`: try ttedge's rules on your own events without deploying anything.
//!
//! `ttedge preview` prints what TikTok would receive for each event, and `ttedge score`
//! summarises the match quality of a whole export. Both run the same code as the Worker.
//! `ttedge send` uploads offline conversions from CSV or JSON Lines to the Worker,
//! resumably.

mod input;
mod journal;
mod preview;
mod progress;
mod rows;
mod score;
mod send;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ttedge_core::event::{InputError, Source};
use ttedge_core::mapping::NameRules;
use ttedge_core::pipeline::{prepare_request, Destination, PreparedEvent, RequestContext};

#[derive(Parser)]
#[command(
    name = "ttedge",
    version,
    about = "ttedge: server-side TikTok Events API connector tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print, for each collect-API event, its status, TikTok data[] element and match quality
    /// (one JSON line per event).
    Preview(PreviewArgs),
    /// Summarise the match quality of a whole export.
    Score(ScoreArgs),
    /// Offline conversions from a CSV or JSON Lines file: hashed here, scored against the
    /// offline threshold of 50, and uploaded to the Worker in chunks, resumably.
    #[command(after_help = send::AFTER_HELP)]
    Send(send::SendArgs),
}

/// Options shared by every command that runs events through the rules.
#[derive(Args)]
struct RuleArgs {
    /// Events: JSON Lines or one JSON document; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Source of events that do not say (decides the match-quality threshold).
    #[arg(long, value_enum, default_value_t = SourceArg::Browser)]
    source: SourceArg,
    /// Treat non-standard event names as skipped rather than custom events.
    #[arg(long)]
    no_custom_events: bool,
}

#[derive(Args)]
struct PreviewArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// The TikTok pixel code the events would go to.
    #[arg(long, default_value = "PREVIEW")]
    pixel_id: String,
    /// Preview as test events under this code (shown in the request summary on stderr).
    #[arg(long)]
    test_event_code: Option<String>,
}

#[derive(Args)]
struct ScoreArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum SourceArg {
    Browser,
    Offline,
}

impl From<SourceArg> for Source {
    fn from(arg: SourceArg) -> Self {
        match arg {
            SourceArg::Browser => Source::Browser,
            SourceArg::Offline => Source::Offline,
        }
    }
}

impl RuleArgs {
    fn destination(&self, pixel_id: String, test_event_code: Option<String>) -> Destination {
        Destination {
            pixel_id,
            test_event_code,
            names: {
                let mut names = NameRules::default();
                names.custom_events = !self.no_custom_events;
                names
            },
        }
    }

    /// Reads the input and runs every event through the rules, in order.
    fn prepare(&self, destination: &Destination) -> anyhow::Result<Vec<Prepared>> {
        let text = input::read(self.file.as_deref())?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let prepared = input::events(&text)
            .into_iter()
            .enumerate()
            .map(|(index, input)| {
                let mut event = input.event.map_err(|error| BadInput {
                    index,
                    line: input.line,
                    error: Problem::Input(error),
                })?;
                event.source.get_or_insert(self.source.into());
                // Each event is a request of its own, as it would be for an export; fresh
                // random bytes keep generated event ids unique across them.
                let mut id_random = [0u8; 16];
                getrandom::fill(&mut id_random).unwrap_or_default();
                let ctx = RequestContext {
                    now_ms,
                    id_random,
                    ..RequestContext::default()
                };
                let mut request = prepare_request(vec![event], &ctx, destination);
                let mut prepared = request.events.remove(0);
                prepared.index = index;
                Ok(prepared)
            })
            .collect();
        Ok(prepared)
    }
}

/// An input event that could not be read, with where it was.
pub struct BadInput {
    /// Position among all input events.
    pub index: usize,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub error: Problem,
}

/// What is wrong with an input event.
pub enum Problem {
    /// The collect-API JSON could not be read.
    Input(InputError),
    /// An offline row could not become an event (`ttedge send`); the reason says why.
    Row(String),
}

impl std::fmt::Display for BadInput {
    /// `line L: …`, with the column for JSON syntax errors, counted in the whole input.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Problem::Input(InputError::MalformedJson {
                message,
                line,
                column,
            }) => write!(
                f,
                "line {}, column {column}: malformed JSON: {message}",
                self.line + line - 1
            ),
            Problem::Input(other) => write!(f, "line {}: {other}", self.line),
            Problem::Row(reason) => write!(f, "line {}: {reason}", self.line),
        }
    }
}

/// One input event after the rules, or why it could not be read.
pub type Prepared = Result<PreparedEvent<'static>, BadInput>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Preview(args) => {
            let destination = args.rules.destination(args.pixel_id, args.test_event_code);
            preview::run(&args.rules, &destination)
        }
        Command::Score(args) => {
            let destination = args.rules.destination(String::from("SCORE"), None);
            score::run(&args.rules, &destination, args.json)
        }
        Command::Send(args) => send::run(&args),
    };
    match result {
        Ok(outcome) if outcome.any_rejected => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ttedge: {error:#}");
            // `send` gave up after its retries: not a usage error, and worth another run.
            let gave_up = matches!(
                error.downcast_ref::<upload::UploadError>(),
                Some(upload::UploadError::GaveUp { .. })
            );
            ExitCode::from(if gave_up { 3 } else { 2 })
        }
    }
}

/// What a run tells the exit status.
pub struct Outcome {
    /// Some event or line was rejected.
    pub any_rejected: bool,
}
