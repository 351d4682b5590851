#!/usr/bin/env bash
# Builds the guest components for wasm32-wasip2 (installing the target if
# needed) and pre-initializes the booking logic with the host's `preinit`
# (its GraphQL schema is built once here, not per request), building the
# host too. Output in target/wasm32-wasip2/guest/:
#   booking_component.wasm     the booking logic (v1)
#   booking_component_v2.wasm  the same logic with the `booking-fee` rule,
#                              for hot-swap tests and demos
#   misbehaving_guest.wasm     loops/traps/hoards memory, for sandbox tests
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

target="${CARGO_TARGET_DIR:-target}"
out="$target/wasm32-wasip2/guest"
build() { cargo build --locked --profile guest --target wasm32-wasip2 "$@"; }

build -p booking-component -p misbehaving-guest
# v2 builds in its own target directory: sharing one would relink (LTO,
# ~30 s) each variant on every run, as the feature set flips.
CARGO_TARGET_DIR="$target/guest-v2" build -p booking-component --features booking-fee
cp "$target/guest-v2/wasm32-wasip2/guest/booking_component.wasm" "$out/booking_component_v2.wasm"

# Cargo puts its own output back on every build, so each run starts from
# the component as compiled.
cargo build --release --locked -p booking-host
for logic in booking_component booking_component_v2; do
    "$target/release/booking-host" preinit "$out/$logic.wasm" "$out/$logic.wasm"
done

ls -l "$out"/*.wasm
