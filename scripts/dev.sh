#!/usr/bin/env bash
# `make dev`: the Worker under `wrangler dev` on 127.0.0.1:8787.
#
# With a real token in .dev.vars (TIKTOK_ACCESS_TOKEN=..., TIKTOK_PIXEL_ID=...), it talks to
# TikTok. Without one, it starts the local TikTok sandbox on 127.0.0.1:8788, which prints
# every request TikTok would receive, and points TIKTOK_API_BASE at it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

port=8787
sandbox_port=8788
args=(dev --ip 127.0.0.1 --port "$port")

if grep -Eq '^[[:space:]]*TIKTOK_ACCESS_TOKEN[[:space:]]*=[[:space:]]*[^[:space:]]' .dev.vars 2>/dev/null; then
  echo "==> .dev.vars holds an access token: events go to TikTok (TIKTOK_API_BASE from wrangler.toml or .dev.vars)."
  mode=tiktok
else
  echo "==> no token in .dev.vars: starting the TikTok sandbox on 127.0.0.1:$sandbox_port"
  cargo build --quiet -p ttedge-e2e --bin tiktok-sandbox
  target/debug/tiktok-sandbox --port "$sandbox_port" &
  sandbox_pid=$!
  trap 'kill "$sandbox_pid" 2>/dev/null || true' EXIT INT TERM
  args+=(
    --var "TIKTOK_API_BASE:http://127.0.0.1:$sandbox_port"
    --var "TIKTOK_ACCESS_TOKEN:sandbox-access-token"
    --var "TIKTOK_PIXEL_ID:SANDBOXPIXEL1"
    --var "SITE_ORIGINS:http://localhost:$port,http://127.0.0.1:$port"
    --var "ADMIN_TOKEN:dev-admin-token"
    # A fixed key for local use only: production keys come from `openssl rand -hex 32`.
    --var "MASTER_KEY:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
  )
  mode=sandbox
fi

# Print the newcomer's first request once the Worker answers.
(
  for _ in $(seq 1 120); do
    if health=$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null); then
      if grep -q '"configured":false' <<<"$health"; then
        echo "==> ttedge is running but NOT configured: $health" >&2
        echo "    Set the missing values in wrangler.toml [vars] or .dev.vars, then restart." >&2
        exit 0
      fi
      cat <<MSG

==> ttedge is running on http://127.0.0.1:$port ($mode). Send an event:

curl -i http://127.0.0.1:$port/collect -H 'Content-Type: application/json' -H 'CF-Connecting-IP: 203.0.113.7' --data '{"event":"purchase","event_id":"order-1001","url":"https://shop.com/thanks?ttclid=E.C.P.demo","user_data":{"email":" User@Example.com ","phone":"+1 (555) 123-4567"},"properties":{"value":59.9,"currency":"usd","items":[{"product_id":"sku-1","quantity":2,"price":29.95}]},"consent":{"sendable_to_ads":true,"ad_storage":"granted","ad_user_data":"granted"}}'

MSG
      if [[ $mode == sandbox ]]; then
        cat <<MSG
    The sandbox above prints what TikTok receives.
    Dashboard: http://localhost:$port/admin (admin token: dev-admin-token)
    Add a second site, served when /collect is called on t.shop.test:
      curl -X PUT http://127.0.0.1:$port/admin/api/destinations/t.shop.test -H 'Authorization: Bearer dev-admin-token' --data '{"pixel_id":"SANDBOXPIXEL2","access_token":"sandbox-token-2","live":true,"site_origins":["https://shop.test"]}'
MSG
      fi
      exit 0
    fi
    sleep 1
  done
  echo "==> wrangler dev did not answer on :$port within 120 s" >&2
) &

node_modules/.bin/wrangler "${args[@]}"
