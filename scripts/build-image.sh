#!/usr/bin/env bash
# Builds the container image `booking-service` from the Dockerfile without
# a Docker daemon and without pulling a base image, then runs it and asks
# it the questions a deployment would. What CI runs (scripts/test.sh).
#
# The Dockerfile's final stage is built by buildah as written; only its
# `build` stage (which needs the rust base image) is replaced, through
# `--build-context build=…`, by the root filesystem scripts/image-rootfs.sh
# assembles here from what CI has already built: target/release/booking-host
# (BOOKING_HOST) and the pre-initialized
# target/wasm32-wasip2/guest/booking_component.wasm.
#
# Then, with podman: the image is run as `docker run -e
# REFERENCE_PEERS=true` would run it (the embedded demo), and must answer
# GET /health/ready, POST /graphql `{ logicVersion }` and its own
# HEALTHCHECK, run as uid 65532, and exit 0 on SIGTERM. If podman cannot
# run a container on this machine, that is said loudly and the same
# checks run against the root filesystem under chroot as uid 65532
# (same binary, libraries, files and environment; no image, no
# namespaces) — unless BOOKING_IMAGE_REQUIRE_PODMAN=true, then it fails.
# BOOKING_IMAGE_RUN=chroot runs the fallback without trying podman.
#
# Installs buildah, podman and runc (Debian's) if missing. Idempotent: the
# image is rebuilt under the same tag (the old one removed), the test
# container replaced. Storage: vfs under $BOOKING_IMAGE_STORAGE (default
# /var/tmp/booking-image), apart from any other containers on the machine;
# the script prints the podman command line that uses it.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=localhost/booking-service:latest
CONTAINER=booking-image-test
# Loopback ports the test container is published on (not the defaults, so
# a `scripts/run.sh` on this machine does not collide).
PORT=${BOOKING_IMAGE_TEST_PORT:-18080}
METRICS_PORT=$((PORT + 1))
state=${BOOKING_IMAGE_STORAGE:-/var/tmp/booking-image}
target="${CARGO_TARGET_DIR:-target}"
context="$target/image"

say() { echo "build-image: $*"; }
loud() {
    echo "build-image: ################################################################" >&2
    echo "build-image: $*" >&2
    echo "build-image: ################################################################" >&2
}

if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    say "installing buildah, podman and runc (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc >/dev/null
fi

# vfs and chroot need neither overlayfs nor a user namespace of their own;
# cgroupfs and the file event log need no systemd.
storage=(--root "$state/storage" --runroot "$state/run" --storage-driver vfs)
buildah=(buildah "${storage[@]}")
# runc, not Debian's default crun: crun 1.8 refuses hybrid cgroup v1/v2
# hosts such as this sandbox.
podman=(podman "${storage[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file)
# podman, its complaints in a log: without systemd it logs an error at
# every container start and stop about the healthcheck timer it cannot
# make. The log is shown when podman fails.
mkdir -p "$state"
log="$state/podman.log"
: >"$log"
pm() { "${podman[@]}" "$@" 2>>"$log"; }

scripts/image-rootfs.sh "$context/rootfs"

# The layer's file times and the image's creation time are the commit's,
# so the same inputs give the same layer digest.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
old=$("${buildah[@]}" images --quiet --noheading "$IMAGE" 2>/dev/null || true)
# --format docker: the OCI image format has no HEALTHCHECK.
"${buildah[@]}" build --quiet --isolation chroot --format docker --timestamp "$epoch" \
    --build-context build="$context" -f Dockerfile -t "$IMAGE" "$context" >/dev/null
new=$("${buildah[@]}" images --quiet --noheading "$IMAGE")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
    pm rm --force --ignore --volumes "$CONTAINER" >/dev/null
    "${buildah[@]}" rmi "$old" >/dev/null 2>&1 || true
fi

# What the image says about itself, and its files' owners.
config=$(pm image inspect --format \
    '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}|{{json .Config.ExposedPorts}}' "$IMAGE")
expected='65532:65532|["/usr/local/bin/booking-host"]|["CMD","/usr/local/bin/booking-host","probe"]|{"8000/tcp":{},"9000/tcp":{},"9464/tcp":{}}'
[ "$config" = "$expected" ] || { say "image config is $config, expected $expected" >&2; exit 1; }
mount=$("${buildah[@]}" from --quiet --pull-never "$IMAGE")
root=$("${buildah[@]}" mount "$mount")
owners=$(stat -c '%n %u:%g %a' "$root/data" "$root/usr/local/bin/booking-host" "$root/usr/share/booking/booking_component.wasm" | sed "s|$root||")
"${buildah[@]}" umount "$mount" >/dev/null
"${buildah[@]}" rm "$mount" >/dev/null
[ "$owners" = "/data 65532:65532 700
/usr/local/bin/booking-host 0:0 755
/usr/share/booking/booking_component.wasm 0:0 644" ] || { say "unexpected owners in the image: $owners" >&2; exit 1; }
size=$(pm image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE ($new): $((size / 1000000)) MB; user 65532, entrypoint booking-host, HEALTHCHECK booking-host probe"

# The checks, against http://127.0.0.1:$PORT (the public listener) and
# $METRICS_PORT (metrics); $1 names what runs.
check_service() {
    local what=$1 ready answer
    for _ in $(seq 150); do
        curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
        sleep 0.2
    done
    ready=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/health/ready") || return 1
    say "$what: GET /health/ready → $ready"
    [ "$ready" = '{"status":"ready"}' ] || return 1
    answer=$(curl -sS --max-time 5 -H 'Content-Type: application/json' \
        -d '{"query":"{ logicVersion }"}' "http://127.0.0.1:$PORT/graphql") || return 1
    say "$what: POST /graphql { logicVersion } → $answer"
    [[ "$answer" == '{"data":{"logicVersion":'* ]] || return 1
    curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" | grep -q '^booking_logic_version{' || {
        say "$what: GET /metrics has no booking_logic_version" >&2
        return 1
    }
    say "$what: GET /metrics → booking_logic_version present"
}

# podman's own limits are the container's ceiling: without
# CAP_SYS_RESOURCE (this sandbox) it cannot raise them to its defaults
# (nofile 1048576), and it lowers its nproc to 32768 at start.
limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=32768:32768)

# 0: ran and passed; 1: ran and failed a check; 2: podman could not run it.
run_with_podman() {
    pm rm --force --ignore --volumes "$CONTAINER" >/dev/null
    # No healthcheck timer (podman schedules it with systemd, absent here):
    # the HEALTHCHECK is run by hand below.
    pm run --detach --name "$CONTAINER" "${limits[@]}" --health-interval disable \
        -p "127.0.0.1:$PORT:8000" -p "127.0.0.1:$METRICS_PORT:9464" \
        -e REFERENCE_PEERS=true "$IMAGE" >/dev/null || { tail -n 5 "$log" >&2; return 2; }
    local user versions code
    if ! check_service "podman run"; then
        "${podman[@]}" logs "$CONTAINER" >&2 2>&1 || true
        return 1
    fi
    user=$(pm top "$CONTAINER" huser,args | tail -n +2)
    say "podman run: process (uid, command): $user"
    [[ "$user" == "65532 "* ]] || { say "the host does not run as uid 65532" >&2; return 1; }
    # The image's HEALTHCHECK command (booking-host probe, in the container).
    pm healthcheck run "$CONTAINER" || { say "the HEALTHCHECK failed" >&2; return 1; }
    say "podman run: HEALTHCHECK (booking-host probe) → healthy"
    # The admin CLI in the image, with the token the host generated in /data.
    versions=$(pm exec "$CONTAINER" /usr/local/bin/booking-host admin list) || return 1
    say "podman run: booking-host admin list → $(echo "$versions" | tr -s ' \n' ' ' | cut -c1-160)"
    pm stop --time 25 "$CONTAINER" >/dev/null
    code=$(pm inspect --format '{{.State.ExitCode}}' "$CONTAINER")
    say "podman run: exit code after SIGTERM: $code"
    pm rm --force --ignore --volumes "$CONTAINER" >/dev/null
    [ "$code" = 0 ]
}

# The fallback: the image's files and user, without a container.
fs="$state/chroot"
unmount_chroot() {
    local mnt
    for mnt in "$fs/proc" "$fs/dev"; do
        if mountpoint -q "$mnt"; then umount "$mnt"; fi
    done
}
chroot_pid=
run_in_chroot() {
    local code
    unmount_chroot
    # Never delete through a mount.
    if grep -q " $fs/" /proc/mounts; then say "something is still mounted under $fs" >&2; return 1; fi
    rm -rf "$fs"
    cp -a "$context/rootfs" "$fs"
    mkdir -p "$fs/proc" "$fs/dev"
    mount -t proc proc "$fs/proc"
    # The devices a container gets, on a tmpfs of its own.
    mount -t tmpfs -o mode=755 tmpfs "$fs/dev"
    mknod -m 666 "$fs/dev/null" c 1 3
    mknod -m 666 "$fs/dev/zero" c 1 5
    mknod -m 666 "$fs/dev/random" c 1 8
    mknod -m 666 "$fs/dev/urandom" c 1 9
    # The image's environment, on the test ports.
    local image_env=(PATH=/usr/local/bin REFERENCE_PEERS=true BOOKING_LISTEN="127.0.0.1:$PORT"
        ADMIN_LISTEN=127.0.0.1:0 METRICS_LISTEN="127.0.0.1:$METRICS_PORT" BOOKING_DATA_DIR=/data
        BOOKING_COMPONENT=/usr/share/booking/booking_component.wasm)
    env -i "${image_env[@]}" "$(command -v chroot)" --userspec=65532:65532 "$fs" \
        /usr/local/bin/booking-host >"$state/chroot.log" 2>&1 &
    chroot_pid=$!
    if ! check_service "chroot"; then
        cat "$state/chroot.log" >&2
        return 1
    fi
    env -i "${image_env[@]}" "$(command -v chroot)" --userspec=65532:65532 "$fs" \
        /usr/local/bin/booking-host probe
    say "chroot: the HEALTHCHECK command (booking-host probe) → 0"
    kill -TERM "$chroot_pid"
    code=0
    wait "$chroot_pid" || code=$?
    chroot_pid=
    say "chroot: exit code after SIGTERM: $code"
    [ "$code" = 0 ]
}

cleanup() {
    pm rm --force --ignore --volumes "$CONTAINER" >/dev/null || true
    if [ -n "$chroot_pid" ]; then kill "$chroot_pid" 2>/dev/null || true; wait "$chroot_pid" 2>/dev/null || true; fi
    unmount_chroot 2>/dev/null || true
}
trap cleanup EXIT

code=0
if [ "${BOOKING_IMAGE_RUN:-podman}" = chroot ]; then code=2; else run_with_podman || code=$?; fi
case $code in
    0)
        say "OK: the image ran under podman and answered"
        say "run it: ${podman[*]} run --rm ${limits[*]} -p 8000:8000 -e REFERENCE_PEERS=true $IMAGE"
        ;;
    2)
        loud "podman could not run a container here: the image was built and inspected, NOT run"
        [ "${BOOKING_IMAGE_REQUIRE_PODMAN:-false}" = true ] && exit 1
        run_in_chroot
        loud "checked instead: the image's root filesystem under chroot as uid 65532, without a container"
        ;;
    *) say "the image ran under podman but failed a check" >&2; exit 1 ;;
esac
