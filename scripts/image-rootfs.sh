#!/usr/bin/env bash
# Assembles the container image's root filesystem (the final `FROM
# scratch` stage of the Dockerfile copies it whole) from a built host and
# the pre-initialized booking component:
#
#   /usr/local/bin/booking-host                 the host, stripped
#   /usr/share/booking/booking_component.wasm   the logic (wizer pre-initialized)
#   the shared libraries the host links (as `ldd` names them) and the loader
#   /etc/passwd, /etc/group                     root, and nonroot (65532)
#   /etc/nsswitch.conf                          hosts: files dns
#   /etc/ssl/certs/ca-certificates.crt          the system's CA bundle (Mozilla's)
#   /data                                       the data directory, nonroot's, 0700
#   /tmp                                        1777
#
# Nothing else: no shell, no package manager. The Dockerfile's build stage
# runs it on what it built; scripts/build-image.sh on what CI built.
#
# Usage: scripts/image-rootfs.sh [OUT_DIR]   (default target/image/rootfs;
# emptied first). BOOKING_HOST and BOOKING_COMPONENT_WASM name the inputs
# (default: target/release/booking-host and
# target/wasm32-wasip2/guest/booking_component.wasm). Run it as root so
# /data can be given to nonroot; otherwise it stays this user's, with a
# warning.
set -euo pipefail
cd "$(dirname "$0")/.."

# The image's non-root user. The Dockerfile's `USER` names the same
# number (numeric, so Kubernetes' runAsNonRoot can check it).
NONROOT_UID=65532

target="${CARGO_TARGET_DIR:-target}"
host="${BOOKING_HOST:-$target/release/booking-host}"
component="${BOOKING_COMPONENT_WASM:-$target/wasm32-wasip2/guest/booking_component.wasm}"
out="${1:-$target/image/rootfs}"

for input in "$host" "$component"; do
    [ -f "$input" ] || { echo "image-rootfs: $input is missing (build it first: scripts/build-components.sh)" >&2; exit 1; }
done
case "$out" in
    "" | / | /usr | /etc) echo "image-rootfs: refusing to empty $out" >&2; exit 1 ;;
esac

rm -rf "$out"
mkdir -p "$out"/{usr/local/bin,usr/share/booking,etc,data,tmp}

# The binary without its symbols and debug info (~320 MB → ~55 MB);
# target/ keeps the unstripped one.
objcopy --strip-all "$host" "$out/usr/local/bin/booking-host"
chmod 0755 "$out/usr/local/bin/booking-host"
install -m 0644 "$component" "$out/usr/share/booking/booking_component.wasm"

# Every library the dynamic loader would map, at the path it would find
# it (symlinks resolved), and the loader itself at its absolute path.
libs=$(ldd "$host" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "image-rootfs: ldd named no library for $host (a static build needs none; adjust this script)" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
done

cat >"$out/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:$NONROOT_UID:$NONROOT_UID:nonroot:/data:/sbin/nologin
EOF
cat >"$out/etc/group" <<EOF
root:x:0:
nonroot:x:$NONROOT_UID:
EOF
# glibc resolves names through NSS; files and dns are built into its libc.
echo 'hosts: files dns' >"$out/etc/nsswitch.conf"
# The backends' clients trust the roots compiled into the host
# (booking_adapters::tls), but reqwest's default clients — the OTLP
# exporter's, `booking-host admin`'s — read the system's and refuse to be
# built without one.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || { echo "image-rootfs: $ca_bundle is missing (apt-get install ca-certificates)" >&2; exit 1; }
mkdir -p "$out/etc/ssl/certs"
install -m 0644 "$ca_bundle" "$out/etc/ssl/certs/ca-certificates.crt"

chmod 1777 "$out/tmp"
chmod 0700 "$out/data"
if [ "$(id -u)" = 0 ]; then
    chown "$NONROOT_UID:$NONROOT_UID" "$out/data"
else
    echo "image-rootfs: not root, so /data stays uid $(id -u)'s: the image's user $NONROOT_UID could not write it" >&2
fi

du -sh "$out" | awk '{ print "image-rootfs: " $2 " is " $1 }'
