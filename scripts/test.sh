#!/usr/bin/env bash
# Runs every test: builds the guest components, then the native workspace
# tests (unit, adapter integration, end to end) in release mode, so the
# wasmtime build is shared with `scripts/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-components.sh
cargo test --release --locked "$@"
