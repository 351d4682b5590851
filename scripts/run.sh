#!/usr/bin/env bash
# Runs the booking service on embedded defaults (SQLite store and event
# log in ./data) at http://localhost:8000/graphql, with the in-process
# reference peers asked for by name (`--reference-peers`) for every
# service whose URL is unset. Any variable of .env.example switches a part
# to a real server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-components.sh
# A fixed port for the in-process User service, so clients know where to
# log in (README: "Authentication").
export REFERENCE_USERS_LISTEN="${REFERENCE_USERS_LISTEN:-127.0.0.1:8001}"
exec cargo run --release --locked -p booking-host -- --reference-peers "$@"
