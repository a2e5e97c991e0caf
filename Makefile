# ttedge: `make dev` runs it, `make test` tests everything. Both install what is missing.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo

.PHONY: help dev test toolchain rust-components lint unit wasm-core bench

help:
	@echo "make dev   - run ttedge on the shipped example events"
	@echo "make test  - formatting, lints, unit/property/fixture tests, wasm32 build of core"
	@echo "make bench - criterion benchmark of the core pipeline (10,000 events)"

rust-components:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

dev: rust-components
	@# The examples include one rejected event on purpose: exit status 1 is expected.
	$(CARGO) run --quiet -p ttedge-cli -- preview examples/events.jsonl || [ $$? -eq 1 ]
	$(CARGO) run --quiet -p ttedge-cli -- score examples/events.jsonl || [ $$? -eq 1 ]

test: rust-components lint unit wasm-core

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

wasm-core:
	$(CARGO) build -p ttedge-core --target wasm32-unknown-unknown --release

bench:
	$(CARGO) bench -p ttedge-core --bench pipeline
