#!/usr/bin/env bash
# Installs what building and testing the Worker needs, skipping whatever is already there.
# Every step is idempotent so `make dev` and `make test` can call it on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130
GECKODRIVER_VERSION=0.37.1
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

say() { printf '==> %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding Rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

installed_version() { "$1" --version 2>/dev/null | awk '{print $NF}'; }

if [[ "$(installed_version "$CARGO_BIN/worker-build")" != "$WORKER_BUILD_VERSION" ]]; then
  say "installing worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

if [[ "$(installed_version "$CARGO_BIN/wasm-bindgen")" != "$WASM_BINDGEN_VERSION" ]]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lock file pins a webpki-roots release the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [[ -f package.json ]]; then
  if [[ ! -x node_modules/.bin/wrangler || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "installing npm dev dependencies"
    if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  fi
fi

# Headless Chromium and its WebDriver for the browser tests (tests/src/browser.rs), and Firefox
# ESR for the dashboard set-up test in Firefox, from Debian; fonts-liberation so screenshots look
# the same everywhere; openssl makes the tests' local TLS certificates.
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver || ! -x /usr/bin/openssl \
      || ! -x /usr/bin/firefox-esr ]]; then
  say "installing chromium, chromium-driver, firefox-esr, fonts-liberation and openssl"
  SUDO=()
  if [[ "$(id -u)" -ne 0 ]]; then SUDO=(sudo); fi
  apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends chromium chromium-driver firefox-esr \
      fonts-liberation openssl
  }
  # Refresh the package lists first only when there are none, or when the install fails
  # (stale lists name versions the mirror no longer has).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  fi
  if ! apt_install; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_install
  fi
fi

# Firefox's WebDriver: Debian has no package, so it is built from crates.io (about 5 minutes on
# two cores, once).
if [[ "$(installed_version "$CARGO_BIN/geckodriver" | head -1)" != "$GECKODRIVER_VERSION" ]]; then
  say "installing geckodriver $GECKODRIVER_VERSION"
  cargo install geckodriver --version "$GECKODRIVER_VERSION" --locked
fi
