#!/usr/bin/env bash
# Runs every test: builds the native workspace and the guest components,
# checks the Spin composition, then runs the native workspace tests (unit,
# adapter integration, end to end) in release mode, so the wasmtime build
# is shared with `scripts/run.sh`. Formatting and clippy (warnings are
# errors, also for the wasm32-only guest crates) come first: they fail
# in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
scripts/check-manifests.sh       # Kubernetes + SpinKube manifests: render, validate offline (schemas, policy)
# Every platform's crates: the architecture test reads the whole locked
# graph with `cargo metadata --offline`, and a build downloads only this
# platform's (a fresh machine has no others).
cargo fetch --locked
# Every native crate (the workspace but the wasm32-only guests).
cargo clippy --release --locked --all-targets --workspace \
    --exclude booking-component --exclude misbehaving-guest --exclude spin-adapters -- -D warnings

# One native build of everything: the tests with their dev-dependencies'
# features, and the host binary with the same ones, which the component
# build below uses for `preinit` (built alone, with fewer features, it
# would compile half the tree again); `cargo test` then compiles nothing.
cargo build --release --locked --all-targets
export BOOKING_HOST="${CARGO_TARGET_DIR:-target}/release/booking-host"

scripts/build-components.sh      # also installs the wasm32-wasip2 target
cargo clippy --release --locked --target wasm32-wasip2 \
    -p booking-component -p misbehaving-guest -p spin-adapters -- -D warnings
scripts/spin-check.sh            # Spin adapters: build, compose, check against Spin's world
scripts/build-image.sh           # container image from these binaries (buildah), run and checked under podman
source scripts/test-services.sh  # RabbitMQ and nx-27017 for the real-backend tests
cargo test --release --locked "$@"
