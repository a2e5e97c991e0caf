#!/usr/bin/env bash
# The README's Worker figures: gzipped size of the built Worker, and the median time of a
# /collect round trip under `wrangler dev` (loopback, local TikTok sandbox, 200 requests
# after 20 warm-up requests, one at a time).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

wasm=$(gzip -9 -c edge-worker/build/index_bg.wasm | wc -c)
js=$(gzip -9 -c edge-worker/build/index.js | wc -c)
awk -v w="$wasm" -v j="$js" 'BEGIN { printf "worker size, gzip -9: wasm %d B + js %d B = %.1f KB\n", w, j, (w + j) / 1000 }'

port=18787
sandbox_port=18788
persist=$(mktemp -d)
cargo build --quiet -p ttedge-e2e --bin tiktok-sandbox
target/debug/tiktok-sandbox --port "$sandbox_port" >/dev/null &
sandbox=$!
setsid node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$persist" \
  --var "TIKTOK_API_BASE:http://127.0.0.1:$sandbox_port" --var TIKTOK_ACCESS_TOKEN:figures-token \
  --var TIKTOK_PIXEL_ID:FIGURESPIXEL >"$persist/wrangler.log" 2>&1 &
wrangler=$!
cleanup() { kill -- -"$wrangler" 2>/dev/null || true; kill "$sandbox" 2>/dev/null || true; rm -rf "$persist"; }
trap cleanup EXIT
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done

body='{"event":"purchase","url":"https://shop.com/thanks?ttclid=E.C.P.x","user_data":{"email":"a@b.com","phone":"+1 555 123 4567"},"properties":{"value":10,"currency":"usd","items":[{"product_id":"sku-1","price":10}]},"consent":{"sendable_to_ads":true,"ad_storage":"granted","ad_user_data":"granted"}}'
post() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$port/collect" \
    -H 'Content-Type: application/json' -H 'CF-Connecting-IP: 203.0.113.7' --data "$body"
}
for _ in $(seq 1 20); do post >/dev/null; done
times=$(for _ in $(seq 1 200); do post; done)
if grep -qv '^202 ' <<<"$times"; then echo "a /collect answer was not 202" >&2; exit 1; fi
awk '{print $2 * 1000}' <<<"$times" | sort -n | awk '{a[NR]=$1} END {
  printf "collect round trip over %d requests: median %.2f ms, p90 %.2f ms, min %.2f ms\n", NR, (a[int((NR+1)/2)] + a[int(NR/2)+1]) / 2, a[int(NR*0.9)], a[1] }'
