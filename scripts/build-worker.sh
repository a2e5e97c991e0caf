#!/usr/bin/env bash
# Builds the Worker (edge-worker/build/index.js + index_bg.wasm) with worker-build, using the
# locally installed wasm-bindgen and the npm packages' wasm-opt and esbuild, so nothing is
# downloaded. Run by `wrangler dev` / `wrangler deploy` through `[build]` in wrangler.toml.
# Assumes scripts/ensure-toolchain.sh has run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

# worker-build 0.8.7 looks for `<NAME>_BIN` (WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN) and
# resolves it with `which`; only without it does it use its cache or download (GitHub for
# wasm-bindgen and wasm-opt). Absolute paths, since it runs from edge-worker/.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$cargo_bin/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"

for tool in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [[ -x "$tool" ]] || { echo "build-worker: missing $tool (run scripts/ensure-toolchain.sh)" >&2; exit 1; }
done

cd "$root/edge-worker"
exec "$cargo_bin/worker-build" --release "$@"
