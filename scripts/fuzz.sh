#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (600) each, one at a time,
# then the corpus minimised (`cargo fuzz cmin`), then a table of executions, time and
# findings per target. Needs the nightly toolchain; installs cargo-fuzz when missing.
#
#   FUZZ_SECONDS=60 make fuzz                    # a short run
#   FUZZ_TARGETS="cookie destination" make fuzz  # some targets only
#
# Builds with debug assertions and overflow checks (-a) and without AddressSanitizer: the core
# crate forbids unsafe code, so ASan would find nothing and costs about half the executions.
# A finding is kept in fuzz/artifacts/<target>/ (ignored by git); to keep it, minimise it
# (`cargo +nightly fuzz tmin <target> <file>`) and copy it into fuzz/corpus/<target>/ as
# `repro-<what>`, which `make test` replays (core/tests/fuzz_corpus.rs) and the minimising
# here always keeps. Exits 1 when a target found something.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-600}
TARGETS=${FUZZ_TARGETS:-"parse_collect prepare cookie destination offline_csv"}
FLAGS=(--sanitizer none --debug-assertions)
LOGS=$ROOT/fuzz/target/logs

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

mkdir -p "$LOGS"
cd fuzz
echo "== building the targets"
cargo +nightly fuzz build "${FLAGS[@]}"

count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

declare -A RUNS TIME FINDINGS FILES
status=0
for target in $TARGETS; do
  corpus=$ROOT/fuzz/corpus/$target
  artifacts=$ROOT/fuzz/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  before=$(count_files "$artifacts")
  log_dir=$LOGS/$target
  rm -rf "$log_dir" && mkdir -p "$log_dir"
  echo "== $target: ${SECONDS_EACH}s"
  touch "$log_dir/.start"
  start=$(date +%s)
  # -jobs=1 runs the fuzzer in one child process that writes fuzz-0.log in the working
  # directory, so each target runs in its own log directory.
  (cd "$log_dir" && cargo +nightly fuzz run --fuzz-dir "$ROOT/fuzz" "${FLAGS[@]}" "$target" "$corpus" -- \
    -max_total_time="$SECONDS_EACH" -jobs=1 -print_final_stats=1 >"$log_dir/run.txt" 2>&1) || true
  elapsed=$(($(date +%s) - start))
  log=$log_dir/fuzz-0.log
  [[ -f $log ]] || log=$log_dir/run.txt
  # libFuzzer's closing lines: "Done N runs in S second(s)" and the stat:: block (printed
  # on a crash too, where there is no "Done" line).
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
  if [[ -z $runs && -n $done_line ]]; then
    runs=$(awk '{print $2}' <<<"$done_line")
  fi
  if [[ -n $done_line ]]; then
    elapsed=$(awk '{print $5}' <<<"$done_line")
  fi
  found=$(($(count_files "$artifacts") - before))
  if ((found > 0)); then
    status=1
    echo "   FOUND $found: $(find "$artifacts" -maxdepth 1 -type f -newer "$log_dir/.start" | tr '\n' ' ')"
    grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" || true
  fi
  RUNS[$target]=${runs:-0}
  TIME[$target]=$elapsed
  FINDINGS[$target]=$found
  echo "   ${runs:-0} runs in ${elapsed}s, log $log"
done

# Set cover over plain edges (no hit counters): a few hundred files per target rather than
# thousands, and every edge the run reached is still reached by the checked-in corpus.
echo "== minimising the corpus"
for target in $TARGETS; do
  # cmin drops inputs that crash and inputs that add no edge: reproducers are put back.
  keep=$LOGS/$target/repro
  rm -rf "$keep" && mkdir -p "$keep"
  find "$ROOT/fuzz/corpus/$target" -maxdepth 1 -type f -name 'repro-*' -exec cp {} "$keep" \;
  (cd "$LOGS/$target" && cargo +nightly fuzz cmin --fuzz-dir "$ROOT/fuzz" "${FLAGS[@]}" "$target" \
    "$ROOT/fuzz/corpus/$target" -- -set_cover_merge=1 -use_counters=0 >"$LOGS/$target/cmin.txt" 2>&1) ||
    { echo "   cmin of $target failed, see $LOGS/$target/cmin.txt"; status=1; }
  cp -r "$keep"/. "$ROOT/fuzz/corpus/$target/"
  FILES[$target]=$(count_files "$ROOT/fuzz/corpus/$target")
done

echo
printf '%-14s %8s %12s %8s %13s %9s\n' target seconds executions exec/s "corpus files" findings
for target in $TARGETS; do
  secs=${TIME[$target]}
  rate=$((RUNS[$target] / (secs > 0 ? secs : 1)))
  printf '%-14s %8s %12s %8s %13s %9s\n' "$target" "$secs" "${RUNS[$target]}" "$rate" \
    "${FILES[$target]}" "${FINDINGS[$target]}"
done
echo "corpus: $(du -sh "$ROOT/fuzz/corpus" | cut -f1) in $(find "$ROOT/fuzz/corpus" -type f | wc -l) files"
exit "$status"
