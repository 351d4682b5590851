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
# v2 builds in a target directory for second feature variants (the
# http-only Spin adapters build there too, scripts/spin-check.sh): in one
# directory the two variants' outputs would have one file name, so each
# build would relink (LTO, ~30 s) over the other's.
CARGO_TARGET_DIR="$target/guest-variants" build -p booking-component --features booking-fee
cp "$target/guest-variants/wasm32-wasip2/guest/booking_component.wasm" "$out/booking_component_v2.wasm"

# The host, for its `preinit`. A caller that has just built it with other
# features (scripts/test.sh: the tests' build) names it in BOOKING_HOST, so
# it is not compiled a second time.
host="${BOOKING_HOST:-}"
if [ -z "$host" ]; then
    cargo build --release --locked -p booking-host
    host="$target/release/booking-host"
fi
# Cargo puts its own output back on every build, so each run starts from
# the component as compiled.
for logic in booking_component booking_component_v2; do
    "$host" preinit "$out/$logic.wasm" "$out/$logic.wasm"
done

ls -l "$out"/*.wasm
