#!/usr/bin/env bash
# Publishes the Spin application as an OCI artifact, for SpinKube (a
# SpinApp's `image`) or `spin up --from-registry`: builds and checks it
# (scripts/spin-check.sh), then `spin registry push`, which composes the
# adapter into the booking component first, so the artifact runs on hosts
# that do not compose dependencies themselves.
#
#   spin registry login ghcr.io -u USER --password-stdin   # once
#   scripts/spin-push.sh ghcr.io/OWNER/booking-service:0.1.0
#
# The Spin CLI is SPIN_BIN, else `spin` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 1 ]; then
    echo "usage: $0 REGISTRY/REPOSITORY:TAG" >&2
    exit 2
fi
spin=${SPIN_BIN:-spin}
scripts/spin-check.sh
"$spin" registry push --from spin.toml "$1"
