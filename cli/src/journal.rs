//! The journal of `ttedge send`: what the Worker confirmed, kept beside the input file
//! (`FILE.ttedge-journal`) so that a run stopped by Ctrl-C, a crash or a lost network
//! continues where it stopped.
//!
//! JSON Lines. The first line names what the journal belongs to: the SHA-256 of the file's
//! text, the endpoint, the site and the options that change events; it also keeps the clock
//! of the first run, which a resumed run judges rows by (see [`started_ms`]). Every later
//! line is one confirmed chunk, appended and fsynced once the Worker answered it. A chunk
//! whose answer was lost is not in the journal and is sent again; the Worker answers its
//! events `duplicate` (event_id deduplication), so nothing is counted twice.
//!
//! A journal that belongs to something else (another content, endpoint, site or options) is
//! refused rather than resumed wrongly; so is one damaged anywhere but its last line. A last
//! line without its line end is a write a kill cut short: it is dropped, and its chunk sent
//! again.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ttedge_core::answer::AnswerStatus;

/// The format version written in the first line.
const VERSION: u32 = 1;

/// What a journal belongs to: a run with another identity must not resume it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// SHA-256 of the input's text.
    pub file_sha256: String,
    /// The Worker's base URL.
    pub endpoint: String,
    /// The site (destination host) uploaded to.
    pub site: String,
    /// `--map` values, in their order (the first column of a field wins).
    pub map: Vec<String>,
    /// `--timezone`.
    pub timezone: String,
    /// `--no-custom-events`.
    pub no_custom_events: bool,
}

impl Identity {
    /// The names of the parts that differ from `other`.
    fn differences(&self, other: &Identity) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.file_sha256 != other.file_sha256 {
            differ.push("the file's content");
        }
        if self.endpoint != other.endpoint {
            differ.push("--endpoint");
        }
        if self.site != other.site {
            differ.push("--site");
        }
        if self.map != other.map {
            differ.push("--map");
        }
        if self.timezone != other.timezone {
            differ.push("--timezone");
        }
        if self.no_custom_events != other.no_custom_events {
            differ.push("--no-custom-events");
        }
        differ
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    ttedge_journal: u32,
    #[serde(flatten)]
    identity: Identity,
    /// The first run's clock, epoch ms (absent from journals written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_ms: Option<i64>,
}

/// The clock of the run that started the journal at `path`, when there is one that says:
/// a resumed run judges rows by it, so that a row the Worker accepted in the first run is
/// not called too old (28 days) by a run a day later. Anything unreadable is `None` here
/// and refused by [`Journal::open`].
pub fn started_ms(path: &Path) -> Option<i64> {
    let text = std::fs::read(path).ok()?;
    let end = text.iter().position(|&b| b == b'\n')?;
    serde_json::from_slice::<Header>(&text[..end])
        .ok()?
        .started_ms
}

/// One event the Worker answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confirmed {
    /// The event's id.
    pub id: String,
    /// The Worker's answer (core's, as the Worker wrote it).
    pub status: AnswerStatus,
    /// Why it was not stored to be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ChunkRecord {
    confirmed: Vec<Confirmed>,
}

/// Why a journal cannot be used.
#[derive(Debug)]
pub enum JournalError {
    /// Reading or writing it failed.
    Io { path: PathBuf, source: io::Error },
    /// A line other than the last could not be read.
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// It belongs to another file content, endpoint, site or options.
    Mismatch {
        path: PathBuf,
        differ: Vec<&'static str>,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const START_OVER: &str = "delete it to send the file from the start (events the \
             Worker already has are answered as duplicates, not counted twice)";
        match self {
            JournalError::Io { path, source } => {
                write!(f, "journal {}: {source}", path.display())
            }
            JournalError::Damaged { path, line, reason } => write!(
                f,
                "journal {} is damaged at line {line} ({reason}); {START_OVER}",
                path.display()
            ),
            JournalError::Mismatch { path, differ } => write!(
                f,
                "journal {} belongs to another run: {} changed since it was written; \
                 it is not resumed; {START_OVER}",
                path.display(),
                differ.join(", ")
            ),
        }
    }
}

impl std::error::Error for JournalError {}

/// An open journal, ready for appending.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Every event confirmed so far, by event_id.
    pub confirmed: HashMap<String, Confirmed>,
}

impl Journal {
    /// The journal of `input`: beside it, named `<input>.ttedge-journal`.
    pub fn path_for(input: &Path) -> PathBuf {
        let mut name = input.as_os_str().to_owned();
        name.push(".ttedge-journal");
        PathBuf::from(name)
    }

    /// Opens the journal at `path` for `identity`: a new one started at `now_ms` when there
    /// is none (or only a cut-short first line), else the confirmed events of the one there,
    /// when it belongs to `identity`.
    pub fn open(path: &Path, identity: &Identity, now_ms: i64) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(io(error)),
        };
        // A line is complete only with its line end; anything after the last one is a
        // write cut short by a kill.
        let complete = text
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1);
        let mut confirmed = HashMap::new();
        let mut lines = text[..complete].split(|&b| b == b'\n');
        let damaged = |line: usize, reason: String| JournalError::Damaged {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let fresh = complete == 0;
        if !fresh {
            let first = lines.next().unwrap_or_default();
            let header: Header = serde_json::from_slice(first)
                .map_err(|e| damaged(1, format!("not a ttedge journal header: {e}")))?;
            if header.ttedge_journal != VERSION {
                return Err(damaged(
                    1,
                    format!("format {} is not {VERSION}", header.ttedge_journal),
                ));
            }
            let differ = header.identity.differences(identity);
            if !differ.is_empty() {
                return Err(JournalError::Mismatch {
                    path: path.to_path_buf(),
                    differ,
                });
            }
            for (number, line) in lines.enumerate() {
                if line.is_empty() {
                    continue;
                }
                let record: ChunkRecord =
                    serde_json::from_slice(line).map_err(|e| damaged(number + 2, e.to_string()))?;
                for event in record.confirmed {
                    confirmed.insert(event.id.clone(), event);
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        // Drop a cut-short last line before appending after it.
        file.set_len(complete as u64).map_err(io)?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
            confirmed,
        };
        if fresh {
            let header = Header {
                ttedge_journal: VERSION,
                identity: identity.clone(),
                started_ms: Some(now_ms),
            };
            journal.write_line(&header)?;
        }
        Ok(journal)
    }

    /// Records a chunk the Worker answered, and makes it durable before returning.
    pub fn append(&mut self, chunk: Vec<Confirmed>) -> Result<(), JournalError> {
        let record = ChunkRecord { confirmed: chunk };
        self.write_line(&record)?;
        for event in record.confirmed {
            self.confirmed.insert(event.id.clone(), event);
        }
        Ok(())
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_line(&mut self, value: &impl Serialize) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(value).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        // One write of a whole line, at the end, then fsync: a kill leaves at most a
        // cut-short last line, which `open` drops.
        use std::io::Seek as _;
        self.file.seek(io::SeekFrom::End(0)).map_err(io)?;
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_600_000_000;

    fn identity() -> Identity {
        Identity {
            file_sha256: "ab".repeat(32),
            endpoint: "https://t.shop.com".into(),
            site: "t.shop.com".into(),
            map: vec!["buyer=email".into()],
            timezone: "UTC".into(),
            no_custom_events: false,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "ttedge-journal-{}-{name}.ttedge-journal",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// A journal named `name` that confirmed event "a", with `raw` bytes appended after.
    fn journal_then(name: &str, raw: &[u8]) -> PathBuf {
        let path = temp(name);
        let mut journal = Journal::open(&path, &identity(), NOW).unwrap();
        journal
            .append(vec![confirmed("a", AnswerStatus::Ready)])
            .unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(raw).unwrap();
        path
    }

    fn confirmed(id: &str, status: AnswerStatus) -> Confirmed {
        Confirmed {
            id: id.into(),
            status,
            reason: (status == AnswerStatus::Rejected).then(|| "too old".into()),
        }
    }

    #[test]
    fn path_is_beside_the_input() {
        assert_eq!(
            Journal::path_for(Path::new("/data/orders.csv")),
            Path::new("/data/orders.csv.ttedge-journal")
        );
    }

    #[test]
    fn resumes_what_was_confirmed() {
        let path = temp("resume");
        let mut journal = Journal::open(&path, &identity(), NOW).unwrap();
        assert!(journal.confirmed.is_empty());
        journal
            .append(vec![
                confirmed("a", AnswerStatus::Ready),
                confirmed("b", AnswerStatus::Duplicate),
            ])
            .unwrap();
        journal
            .append(vec![confirmed("c", AnswerStatus::Rejected)])
            .unwrap();
        drop(journal);
        let again = Journal::open(&path, &identity(), NOW).unwrap();
        assert_eq!(again.confirmed.len(), 3);
        assert_eq!(again.confirmed["b"].status, AnswerStatus::Duplicate);
        assert_eq!(again.confirmed["c"].reason.as_deref(), Some("too old"));
        // One header line and two chunk lines.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_resumed_run_keeps_the_first_runs_clock() {
        let path = temp("started");
        assert_eq!(started_ms(&path), None, "no journal yet");
        drop(Journal::open(&path, &identity(), NOW).unwrap());
        assert_eq!(started_ms(&path), Some(NOW));
        // Opened again a day later, it keeps the first clock.
        drop(Journal::open(&path, &identity(), NOW + 86_400_000).unwrap());
        assert_eq!(started_ms(&path), Some(NOW));
        // A journal from before the clock was kept still resumes, without one.
        let old = serde_json::to_string(&Header {
            ttedge_journal: VERSION,
            identity: identity(),
            started_ms: None,
        })
        .unwrap();
        assert!(!old.contains("started_ms"));
        std::fs::write(&path, format!("{old}\n")).unwrap();
        assert_eq!(started_ms(&path), None);
        assert!(Journal::open(&path, &identity(), NOW).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_cut_short_last_line_is_dropped_and_appended_over() {
        let path = journal_then("torn", b"{\"confirmed\":[{\"id\":\"b\",\"sta");
        let mut journal = Journal::open(&path, &identity(), NOW).unwrap();
        assert_eq!(journal.confirmed.len(), 1);
        journal
            .append(vec![confirmed("b", AnswerStatus::Ready)])
            .unwrap();
        drop(journal);
        let again = Journal::open(&path, &identity(), NOW).unwrap();
        assert_eq!(again.confirmed.len(), 2);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok()));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_cut_short_header_starts_a_new_journal() {
        let path = temp("torn-header");
        std::fs::write(&path, b"{\"ttedge_jour").unwrap();
        let journal = Journal::open(&path, &identity(), NOW).unwrap();
        assert!(journal.confirmed.is_empty());
        drop(journal);
        assert!(Journal::open(&path, &identity(), NOW).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn damage_inside_is_refused_with_its_line() {
        let path = journal_then("damaged", b"garbage\n{\"confirmed\":[]}\n");
        let error = Journal::open(&path, &identity(), NOW).err().unwrap();
        assert!(
            matches!(error, JournalError::Damaged { line: 3, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("delete it"), "{error}");

        std::fs::write(&path, b"not json\n").unwrap();
        let error = Journal::open(&path, &identity(), NOW).err().unwrap();
        assert!(
            matches!(error, JournalError::Damaged { line: 1, .. }),
            "{error}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn another_file_or_target_is_refused_naming_what_changed() {
        let path = temp("mismatch");
        drop(Journal::open(&path, &identity(), NOW).unwrap());
        let mut other = identity();
        other.file_sha256 = "cd".repeat(32);
        other.site = "u.shop.com".into();
        let error = Journal::open(&path, &other, NOW).err().unwrap();
        match &error {
            JournalError::Mismatch { differ, .. } => {
                assert_eq!(differ, &["the file's content", "--site"])
            }
            _ => panic!("{error}"),
        }
        let mut zone = identity();
        zone.timezone = "Asia/Jakarta".into();
        let error = Journal::open(&path, &zone, NOW).err().unwrap();
        assert!(error.to_string().contains("--timezone changed"), "{error}");
        // The journal was left as it was.
        assert!(Journal::open(&path, &identity(), NOW).is_ok());
        std::fs::remove_file(&path).unwrap();
    }
}
