#!/usr/bin/env bash
# `make soak`: the load-and-fault run of tests/tests/soak.rs at full size. 100,000 events from
# 8 concurrent clients through `wrangler dev`, a mock TikTok that fails 40 % of the calls
# (seeded), and 3 SIGKILLs of the whole wrangler process group during the load; then drain,
# replay what was parked, drain again, and count. `make test` runs the same test with 5,000
# events and 1 kill.
#
# Every SOAK_* variable may be set from outside: SOAK_EVENTS, SOAK_KILLS, SOAK_CLIENTS,
# SOAK_SEED, SOAK_RATE_LIMIT, SOAK_TIMEOUT_MS, SOAK_HANG_MS (see tests/src/soak.rs).
# The output, with its summary line (`soak: events=…`), is kept in target/e2e-logs/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

export SOAK_EVENTS="${SOAK_EVENTS:-100000}"
export SOAK_KILLS="${SOAK_KILLS:-3}"
# Below the Dispatcher's natural rate under this load (about 200 requests a minute), so the
# sliding window binds; the small run of `make test` uses 20.
export SOAK_RATE_LIMIT="${SOAK_RATE_LIMIT:-120}"

mkdir -p target/e2e-logs
log="target/e2e-logs/soak-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "soak: $SOAK_EVENTS events, $SOAK_KILLS kills; output in $log"
"${CARGO:-cargo}" test -p ttedge-e2e --test soak -- --nocapture 2>&1 | tee "$log"
echo
grep '^soak: events=' "$log" | tail -n 1
