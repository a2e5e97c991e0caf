//! Replays the checked-in fuzz corpus on the stable toolchain, as part of `make test`.
//!
//! `make fuzz` (nightly, cargo-fuzz) grows and minimises `fuzz/corpus/<target>/`; this test
//! runs every file there through the same check the fuzz target runs (`fuzz/checks.rs`),
//! so a reproducer saved into the corpus keeps failing here until the bug is fixed. A
//! missing or empty corpus directory fails: nothing is skipped silently.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The files of one target's corpus, sorted; fails when there are none.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {} is missing: {error}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a corpus entry reads").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

#[test]
fn every_corpus_file_passes_its_check() {
    // Each failing file is reported by name; the panics' own messages say what broke.
    let mut failures = Vec::new();
    let mut replayed = 0;
    let started = Instant::now();
    for (target, check) in checks::TARGETS {
        for file in corpus_files(target) {
            let data = fs::read(&file).expect("a corpus file reads");
            if panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(format!("{target}: {}", file.display()));
            }
            replayed += 1;
        }
    }
    eprintln!(
        "replayed {replayed} corpus files in {:.2?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} corpus file(s) fail their check:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_dir_belongs_to_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for entry in fs::read_dir(&root).expect("fuzz/corpus exists") {
        let name = entry.expect("an entry reads").file_name();
        let name = name.to_string_lossy();
        assert!(
            checks::TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz/corpus/{name} has no target in fuzz/checks.rs"
        );
    }
}

#[test]
fn set_cookie_grammar_check_refuses_what_it_should() {
    let good = "_ttp=abc; Domain=shop.com; Path=/; Max-Age=34128000; Secure; SameSite=Lax";
    assert_eq!(checks::check_set_cookie(good, Some("shop.com")), Ok(()));
    for (bad, domain) in [
        ("_ttp=a;b; Path=/; Max-Age=1; Secure; SameSite=Lax", None),
        ("_ttp=a b; Path=/; Max-Age=1; Secure; SameSite=Lax", None),
        ("_ttp=\"a\"; Path=/; Max-Age=1; Secure; SameSite=Lax", None),
        ("_ttp=; Path=/; Max-Age=1; Secure; SameSite=Lax", None),
        (
            "_ttp=a\r\nX: y; Path=/; Max-Age=1; Secure; SameSite=Lax",
            None,
        ),
        ("_ttp=a; Path=/; Max-Age=01; Secure; SameSite=Lax", None),
        (
            "_ttp=a; Domain=shop.com; Path=/; Max-Age=1; Secure; SameSite=Lax",
            None,
        ),
        (
            "_ttp=a; Domain=a;b; Path=/; Max-Age=1; Secure; SameSite=Lax",
            Some("a;b"),
        ),
        (
            "_ttp=a; Domain=-a.com; Path=/; Max-Age=1; Secure; SameSite=Lax",
            Some("-a.com"),
        ),
        ("t tp=a; Path=/; Max-Age=1; Secure; SameSite=Lax", None),
        ("_ttp=é; Path=/; Max-Age=1; Secure; SameSite=Lax", None),
    ] {
        assert!(
            checks::check_set_cookie(bad, domain).is_err(),
            "{bad:?} passed"
        );
    }
}
