#!/usr/bin/env bash
# Builds the guest components for wasm32-wasip2 (installing the target if
# needed). Output in target/wasm32-wasip2/guest/:
#   booking_component.wasm     the booking logic (v1)
#   booking_component_v2.wasm  the same logic with the `booking-fee` rule,
#                              for hot-swap tests and demos
#   misbehaving_guest.wasm     loops/traps/hoards memory, for sandbox tests
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

out="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/guest"
build() { cargo build --locked --profile guest --target wasm32-wasip2 "$@"; }

# Both feature sets stay cached, so rebuilding either is only a relink.
build -p booking-component --features booking-fee
cp "$out/booking_component.wasm" "$out/booking_component_v2.wasm"
build -p booking-component -p misbehaving-guest

ls -l "$out"/*.wasm
