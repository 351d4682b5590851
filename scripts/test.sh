#!/usr/bin/env bash
# Runs every test: builds the guest components and checks the Spin
# composition, then the native workspace tests (unit, adapter integration,
# end to end) in release mode, so the wasmtime build is shared with
# `scripts/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-components.sh
scripts/spin-check.sh            # Spin adapters: build, compose, check against Spin's world
cargo test --release --locked -p spin-adapters-core
source scripts/test-services.sh  # RabbitMQ and nx-27017 for the real-backend tests
cargo test --release --locked "$@"
