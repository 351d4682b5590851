#!/usr/bin/env bash
# Spin deployment check (issue #8), without a Spin binary (none installs
# from the registries here):
#   1. builds the booking component (scripts/build-components.sh) and the
#      Spin adapter component (components/spin-adapters), twice: the full
#      Spin adapter and its `http-only` variant;
#   2. composes booking + adapter with `wac plug`, as Spin composes
#      `[component.booking.dependencies]`;
#   3. checks the composition against Spin's platform world, taken from
#      the WIT inside the spin-sdk crate: every import must be one Spin
#      provides. Fails loudly on any mismatch, and also if the bare booking
#      component passes (the check would then prove nothing);
#   4. composes booking + the http-only adapter (seats, users, payments
#      over plain wasi:http), which needs no Spin to run.
# Tools are installed once, pinned: wasm-tools and wac-cli from crates.io.
# Output in target/spin/.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

WASM_TOOLS_VERSION=1.263.0
WAC_VERSION=0.12.0
SPIN_SDK_VERSION=5.2.0
SPIN_WORLD="spin:up/platform@3.6.0"

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fail() { echo "spin-check: FAILED: $*" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-target}"
# `--no-default-features`: only what we use (component subcommands; plug).
# Debug builds in one target dir of their own: the two CLIs share most of
# their crates, and an unoptimised build compiles in a fraction of the time
# while still checking these few-MiB components in about a second.
tool() { cargo install --locked --debug --target-dir "$target/tools" "$@"; }
if [ "$(wasm-tools --version 2>/dev/null | awk '{print $2}')" != "$WASM_TOOLS_VERSION" ]; then
    tool --version "$WASM_TOOLS_VERSION" wasm-tools --no-default-features \
        --features component,validate,print,parse
fi
if [ "$(wac --version 2>/dev/null | awk '{print $2}')" != "$WAC_VERSION" ]; then
    tool --version "$WAC_VERSION" wac-cli --no-default-features
fi

out="$target/spin"
mkdir -p "$out"

scripts/build-components.sh >/dev/null
booking="$target/wasm32-wasip2/guest/booking_component.wasm"

# The full adapters build beside the booking component (their crates are
# shared), the http-only variant with the other second variants (a shared
# directory would relink each variant over the other on every run).
guest() { cargo build --locked --profile guest --target wasm32-wasip2 -p spin-adapters "$@"; }
guest
CARGO_TARGET_DIR="$target/guest-variants" guest --no-default-features --features http-only
cp "$target/wasm32-wasip2/guest/spin_adapters.wasm" "$out/spin_adapters.wasm"
cp "$target/guest-variants/wasm32-wasip2/guest/spin_adapters.wasm" "$out/spin_adapters_http_only.wasm"

# Spin's platform world ships inside the spin-sdk crate.
sdk_manifest=$(cargo metadata --locked --format-version 1 --filter-platform wasm32-wasip2 |
    python3 -c "import json,sys; print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name']=='spin-sdk' and p['version']=='$SPIN_SDK_VERSION'))")
spin_wit="$(dirname "$sdk_manifest")/wit"
[ -f "$spin_wit/world.wit" ] || fail "no WIT in the spin-sdk crate at $spin_wit"

wac plug "$booking" --plug "$out/spin_adapters.wasm" -o "$out/booking_spin_composed.wasm"
wasm-tools validate "$out/booking_spin_composed.wasm"
if wasm-tools component wit "$out/booking_spin_composed.wasm" | grep -E '^\s*import cinema:'; then
    fail "the composition still imports cinema:booking interfaces (above)"
fi
# --semver-compatible: Spin links WASI 0.2.x imports by semver track
# (0.2.0–0.2.12), while its SDK's WIT names wasi@0.2.6.
wasm-tools component targets --semver-compatible -w "$SPIN_WORLD" "$spin_wit" \
    "$out/booking_spin_composed.wasm" ||
    fail "booking + adapters import something Spin's $SPIN_WORLD does not provide"
if wasm-tools component targets --semver-compatible -w "$SPIN_WORLD" "$spin_wit" "$booking" 2>/dev/null; then
    fail "the bare booking component passed the check: the check proves nothing"
fi
# The composition must still be the service: HTTP handler + timer export.
exports=$(wasm-tools component wit "$out/booking_spin_composed.wasm" | grep -E '^\s*export ')
for want in "wasi:http/incoming-handler@0.2" "cinema:booking/maintenance@"; do
    grep -q "$want" <<<"$exports" || fail "the composition does not export $want"
done

wac plug "$booking" --plug "$out/spin_adapters_http_only.wasm" -o "$out/booking_http_adapters.wasm"
wasm-tools validate "$out/booking_http_adapters.wasm"

ls -l "$out"/*.wasm
echo "spin-check: OK: booking + adapters target $SPIN_WORLD ($((SECONDS - start)) s)"
