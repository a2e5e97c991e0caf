# ttedge: `make dev` runs it, `make test` tests everything. Both install what is missing.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo

.PHONY: help dev test toolchain build lint unit wasm-core e2e bench bench-send figures fuzz soak

help:
	@echo "make dev   - wrangler dev on 127.0.0.1:8787 with a local TikTok sandbox (or TikTok, with .dev.vars)"
	@echo "make test  - formatting, lints, unit/property/fixture/command tests, wasm32 core, end-to-end tests"
	@echo "make bench - criterion benchmarks: the core pipeline (10,000 events, RUNS=3 times), then offline CSV rows"
	@echo "make bench-send - rows/s of ttedge send: reading alone, and end to end to wrangler dev (100,000 rows)"
	@echo "make fuzz  - cargo-fuzz, every target FUZZ_SECONDS (600) each; installs cargo-fuzz when missing"
	@echo "make soak  - 100,000 events through wrangler dev, a failing TikTok and 3 kill -9s"

# Rust components and target, worker-build, wasm-bindgen-cli, npm packages: each skipped when present.
toolchain:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@bash scripts/ensure-toolchain.sh

# The Worker into edge-worker/build (what wrangler.toml points at); skipped when up to date.
build: toolchain
	@bash scripts/build-worker.sh

dev: build
	@bash scripts/dev.sh

test: toolchain lint unit wasm-core e2e

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ttedge-worker --target wasm32-unknown-unknown -- -D warnings

unit:
	$(CARGO) test --workspace --exclude ttedge-e2e --no-fail-fast

wasm-core:
	$(CARGO) build -p ttedge-core --target wasm32-unknown-unknown --release

# Starts the mock TikTok and `wrangler dev` per test; needs the built Worker. Every test
# binary runs even after a failure, so one run reports every failing test.
e2e: build
	$(CARGO) test -p ttedge-e2e --no-fail-fast

bench:
	@bash scripts/bench.sh

# `ttedge send` on 100,000 rows: --dry-run alone, then uploads to wrangler dev.
bench-send: build
	@bash scripts/bench-send.sh

# Worker size (gzipped) and the median /collect round trip under wrangler dev.
figures: build
	@bash scripts/figures.sh

# Not part of `make test` (it needs the nightly toolchain); `make test` replays the corpus.
fuzz:
	@bash scripts/fuzz.sh

# The full load-and-fault run; `make test` runs a small one (tests/tests/soak.rs).
soak: build
	@bash scripts/soak.sh
