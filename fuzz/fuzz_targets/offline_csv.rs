//! `offline_csv`: see `offline_csv_check` in fuzz/checks.rs, which the replay test runs too.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(
    init: checks::tolerate_known_bugs(),
    |data: &[u8]| checks::offline_csv_check(data)
);
