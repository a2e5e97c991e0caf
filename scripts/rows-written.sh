#!/usr/bin/env bash
# SQLite rows written per event, as the Dispatcher counts them with `SqlCursor::rows_written`
# (the figure Cloudflare bills), over each event's life in the object: intake, sending,
# counters. The later clean-up drops whole tables, which writes no rows.
#
# For each shape (single-event collects, batches of 50) a fresh `wrangler dev` with a local
# TikTok sandbox takes EVENTS events from CLIENTS concurrent clients; once the queue is empty,
# the object's `rows_written` (SQL rows written plus alarms set, each billed as a row)
# divided by the events is the figure. A third shape, a quiet site, sends SPARSE single
# events one at a time, each delivered before the next is sent.
#
# Every event carries an email and a phone with consent granted. Without BROWSERS, each
# request is a new browser (no cookie: the Worker mints a _ttp, which identity resolution
# does not learn under). BROWSERS=N sends each request with the _ttp cookie of one of N
# browsers, so identity resolution stores each browser's identity: N = EVENTS is its worst
# case (every event a browser identified for the first time). IDENTITY_DAYS (default 90)
# is passed to the Worker: 0 turns identity resolution off, for a comparison. SHAPES picks
# the shapes to run (default "1 50 sparse").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
EVENTS=${EVENTS:-2000}
BROWSERS=${BROWSERS:-0}
IDENTITY_DAYS=${IDENTITY_DAYS:-90}
SHAPES=${SHAPES:-1 50 sparse}
SPARSE=${SPARSE:-20}
CLIENTS=${CLIENTS:-8}
port=18797
sandbox_port=18798
admin=rows-admin-token-0123456789

cargo build --quiet -p ttedge-e2e --bin tiktok-sandbox
target/debug/tiktok-sandbox --port "$sandbox_port" >/dev/null &
sandbox=$!
wrangler=""
persist=""
stop_worker() {
  [[ -n $wrangler ]] && kill -- -"$wrangler" 2>/dev/null || true
  [[ -n $persist ]] && rm -rf "$persist"
  wrangler=""
}
trap 'stop_worker; kill "$sandbox" 2>/dev/null || true' EXIT

start_worker() {
  persist=$(mktemp -d)
  setsid node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$persist" \
    --var "TIKTOK_API_BASE:http://127.0.0.1:$sandbox_port" --var TIKTOK_ACCESS_TOKEN:rows-token \
    --var TIKTOK_PIXEL_ID:ROWSPIXEL --var "ADMIN_TOKEN:$admin" \
    --var "IDENTITY_DAYS:$IDENTITY_DAYS" >"$persist/wrangler.log" 2>&1 &
  wrangler=$!
  for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "wrangler dev did not start" >&2
  exit 1
}

event() {
  printf '{"event":"purchase","event_id":"%s","url":"https://shop.com/thanks?ttclid=E.C.P.x","user_data":{"email":"a@b.com","phone":"+1 555 123 4567"},"properties":{"value":10,"currency":"usd","items":[{"product_id":"sku-1","price":10}]},"consent":{"sendable_to_ads":true,"ad_storage":"granted","ad_user_data":"granted"}}' "$1"
}

# Posts request number $2 of shape $1 (1 or 50 events).
post() {
  local size=$1 n=$2 body
  if [[ $size == 1 ]]; then
    body=$(event "single-$n")
  else
    body='{"batch":['
    for i in $(seq 1 "$size"); do
      [[ $i -gt 1 ]] && body+=','
      body+=$(event "batch-$n-$i")
    done
    body+=']}'
  fi
  local cookie=()
  if [[ $BROWSERS -gt 0 ]]; then cookie=(-H "Cookie: _ttp=rows-browser-$((n % BROWSERS))"); fi
  curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/collect" "${cookie[@]}" \
    -H 'Content-Type: application/json' -H 'CF-Connecting-IP: 203.0.113.7' --data "$body"
}
export -f post event
export port BROWSERS

status() { curl -fsS -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/admin/api/status"; }

# Waits until $1 events are delivered and nothing is queued; leaves the state in $state.
drained() {
  for _ in $(seq 1 240); do
    state=$(status)
    if python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s["queued"]==0 and s["counters"]["delivered"]>=int(sys.argv[2]) else 1)' "$state" "$1"; then
      return
    fi
    sleep 0.25
  done
}

# Prints rows written per event of shape $2 for $1 events, from $state.
report() {
  python3 - "$state" "$1" "$2" <<'PY'
import json, sys
s, events, size = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = s["counters"]
assert s["queued"] == 0 and c["delivered"] == events, f"not drained: {s['queued']} queued, {c['delivered']} delivered"
shape = {"1": "single-event collects", "sparse": "a quiet site, one event at a time"}.get(size, f"batches of {size}")
print(f"rows written per event, {shape}: {s['rows_written'] / events:.3f} "
      f"({s['rows_written']} rows for {events} events, {c['requests']} TikTok requests)")
PY
}

measure() {
  local size=$1 requests=$((EVENTS / $1))
  start_worker
  answers=$(seq 1 "$requests" | xargs -P "$CLIENTS" -I{} bash -c "post $size {}")
  if grep -qv '^202$' <<<"$answers"; then echo "a /collect answer was not 202" >&2; exit 1; fi
  drained "$EVENTS"
  report "$EVENTS" "$size"
  stop_worker
}

measure_sparse() {
  start_worker
  for n in $(seq 1 "$SPARSE"); do
    [[ $(post 1 "$n") == 202 ]] || { echo "a /collect answer was not 202" >&2; exit 1; }
    drained "$n"
    sleep 1.2 # past the grouping gap: each event comes to a quiet object
  done
  report "$SPARSE" sparse
  stop_worker
}

for shape in $SHAPES; do
  case $shape in
  sparse) measure_sparse ;;
  *) measure "$shape" ;;
  esac
done
