#!/usr/bin/env bash
# Builds the Worker (edge-worker/build/index.js + index_bg.wasm) with worker-build, using the
# locally installed wasm-bindgen and the npm packages' wasm-opt and esbuild, so nothing is
# downloaded. Run by `wrangler dev` / `wrangler deploy` through `[build]` in wrangler.toml.
# Assumes scripts/ensure-toolchain.sh has run.
#
# Skips the build when the inputs' contents are those of the last build: `wrangler dev` runs
# the build command twice on start (once for the entry, once when its file watcher is
# ready), and wasm-opt alone takes about 10 s here. Contents, not modification times: a
# checkout or a clock that steps back must not leave a stale Worker. TTEDGE_FORCE_BUILD=1
# always builds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
build="$root/edge-worker/build"
stamp="$build/.inputs.sha256"

# One build at a time: `wrangler dev` runs this script on every start, and tests start several
# at once. The others wait, then find the build up to date.
mkdir -p "$root/target"
exec 9>"$root/target/build-worker.lock"
flock 9

# Paths relative to the root, so the hash is the same however the script was called.
cd "$root"
inputs=(edge-worker/src edge-worker/sdk edge-worker/Cargo.toml Cargo.lock core/src core/data
  core/Cargo.toml scripts/build-worker.sh)
inputs_hash=$(find "${inputs[@]}" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [[ "${TTEDGE_FORCE_BUILD:-}" != 1 && -f "$build/index.js" && -f "$build/index_bg.wasm" &&
  "$(cat "$stamp" 2>/dev/null)" == "$inputs_hash" ]]; then
  echo "build-worker: edge-worker/build is up to date"
  exit 0
fi

# worker-build 0.8.7 looks for `<NAME>_BIN` (WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN) and
# resolves it with `which`; only without it does it use its cache or download (GitHub for
# wasm-bindgen and wasm-opt, registry.npmjs.org for esbuild). Absolute paths: it runs from
# edge-worker/.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$cargo_bin/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"

for tool in "$cargo_bin/worker-build" "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [[ -x "$tool" ]] || { echo "build-worker: missing $tool (run scripts/ensure-toolchain.sh)" >&2; exit 1; }
done

# Size over speed for the Worker: opt-level "z" (opt-level 3 adds about 15 KB gzipped).
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z

cd "$root/edge-worker"
"$cargo_bin/worker-build" --release "$@"

# wasm-opt for size, without the names section (edge-worker/Cargo.toml turns worker-build's
# run off). The features are those worker-build enables: rustc's wasm32 defaults plus the
# exception handling of wasm-bindgen's catch wrappers.
features=()
for feature in mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue \
  reference-types exception-handling; do
  features+=("--enable-$feature")
done
"$WASM_OPT_BIN" "$build/index_bg.wasm" -Oz "${features[@]}" -o "$build/index_bg.opt.wasm"
mv "$build/index_bg.opt.wasm" "$build/index_bg.wasm"
echo "$inputs_hash" >"$stamp"
