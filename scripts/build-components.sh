#!/usr/bin/env bash
# Builds the guest components for wasm32-wasip2 (installing the target if
# needed). Output: target/wasm32-wasip2/guest/*.wasm
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

cargo build --profile guest --target wasm32-wasip2 \
    -p booking-component \
    -p misbehaving-guest

ls -l target/wasm32-wasip2/guest/*.wasm
