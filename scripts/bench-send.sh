#!/usr/bin/env bash
# `make bench-send`: rows per second of `ttedge send` (release build) on a file of ROWS rows
# (default 100,000; order id, email, phone, value, currency, local time), two ways:
#
# 1. reading alone: `ttedge send --dry-run --json` (CSV parsing, hashing, the pipeline and
#    the match-quality summary; nothing sent), best of RUNS runs (default 3);
# 2. end to end: `ttedge send` to `wrangler dev` with a local TikTok sandbox, from the start
#    of the command until the Worker confirmed the last chunk (1,000 rows each, stored
#    durably in the Dispatcher before each answer), best of RUNS runs, each to a fresh
#    Worker.
#
# On these shared VMs other tenants only ever add time, hence the best run (see bench.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
ROWS=${ROWS:-100000}
RUNS=${RUNS:-3}
port=18807
sandbox_port=18808
admin=bench-send-admin-token-0123456789
site=t.bench-send.test
work=$(mktemp -d)
wrangler=""
sandbox=""
persist=""
stop_worker() {
  if [[ -n $wrangler ]]; then kill -- -"$wrangler" 2>/dev/null || true; fi
  wrangler=""
}
cleanup() {
  stop_worker
  if [[ -n $sandbox ]]; then kill "$sandbox" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --release -p ttedge-cli --bin ttedge
cargo build --quiet -p ttedge-e2e --bin tiktok-sandbox
ttedge=target/release/ttedge

# Rows timed an hour ago, local time in UTC, within the 28 days TikTok accepts.
at=$(date -u -d '1 hour ago' '+%Y-%m-%d %H:%M:%S')
file="$work/orders.csv"
awk -v n="$ROWS" -v at="$at" 'BEGIN {
  print "Order ID,Email,Phone,Total,Currency,Created At"
  for (i = 0; i < n; i++)
    printf "B-%d,Buyer.%d@Example.com,+1 555 %03d %04d,%d.%02d,usd,%s\n", i, i, i % 1000, i % 10000, i % 200, i % 100, at
}' >"$file"

rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
seconds() { date +%s.%N; }

best_read=""
for run in $(seq "$RUNS"); do
  start=$(seconds)
  "$ttedge" send "$file" --dry-run --json >"$work/dry.json"
  took=$(awk -v a="$start" -v b="$(seconds)" 'BEGIN { print b - a }')
  echo "reading run $run of $RUNS: $ROWS rows in ${took}s, $(rate "$took") rows/s"
  if [[ -z $best_read ]] || awk -v t="$took" -v b="$best_read" 'BEGIN { exit !(t < b) }'; then best_read=$took; fi
done
grep -q "\"ready\": $ROWS" "$work/dry.json" || { echo "not every row was ready" >&2; exit 1; }

target/debug/tiktok-sandbox --port "$sandbox_port" >/dev/null &
sandbox=$!
start_worker() {
  persist="$work/persist-$1"
  mkdir -p "$persist"
  setsid node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$persist" \
    --var "TIKTOK_API_BASE:http://127.0.0.1:$sandbox_port" --var TIKTOK_ACCESS_TOKEN:bench-token \
    --var TIKTOK_PIXEL_ID:BENCHPIXEL --var "ADMIN_TOKEN:$admin" \
    --var "MASTER_KEY:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" \
    >"$persist/wrangler.log" 2>&1 &
  wrangler=$!
  up=""
  for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && up=1 && break; sleep 0.5; done
  [[ -n $up ]] || { echo "wrangler dev did not start; see $persist/wrangler.log" >&2; tail -20 "$persist/wrangler.log" >&2; exit 1; }
  curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$port/admin/api/destinations/$site" \
    --data '{"pixel_id":"BENCHPIXEL","access_token":"bench-token","live":true,"site_origins":["https://bench-send.test"]}'
}

best_send=""
for run in $(seq "$RUNS"); do
  start_worker "$run"
  rm -f "$file.ttedge-journal"
  start=$(seconds)
  NO_PROXY=127.0.0.1 TTEDGE_ADMIN_TOKEN=$admin "$ttedge" send "$file" --endpoint "http://127.0.0.1:$port" --site "$site" --json \
    >"$work/sent.json" 2>"$work/sent.err"
  took=$(awk -v a="$start" -v b="$(seconds)" 'BEGIN { print b - a }')
  grep -q "\"accepted\": $ROWS" "$work/sent.json" || { cat "$work/sent.err" "$work/sent.json" >&2; exit 1; }
  echo "end-to-end run $run of $RUNS: $ROWS rows in ${took}s, $(rate "$took") rows/s"
  if [[ -z $best_send ]] || awk -v t="$took" -v b="$best_send" 'BEGIN { exit !(t < b) }'; then best_send=$took; fi
  stop_worker
done

echo
echo "ttedge send, reading alone (CSV, hashing, pipeline, summary): $(rate "$best_read") rows/s (best of $RUNS, $ROWS rows)"
echo "ttedge send, end to end to wrangler dev: $(rate "$best_send") rows/s (best of $RUNS, $ROWS rows)"
