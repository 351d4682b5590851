# The booking service as a container image:
#
#   docker build -t booking-service .
#   docker run -p 8000:8000 -e REFERENCE_PEERS=true booking-service   # the embedded demo
#
# Two stages: `build` compiles the host and the pre-initialized booking
# component and assembles the final root filesystem with
# scripts/image-rootfs.sh; the final stage is that filesystem alone (FROM
# scratch: the stripped host, the C libraries it links, the component,
# /etc/passwd, a CA bundle, /data), running as uid 65532. CI has no base
# image to pull: scripts/build-image.sh builds this file with the `build`
# stage replaced (`--build-context build=…`) by the same script's output
# from CI's own binaries.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# build-components.sh adds the wasm32-wasip2 target, builds the guests and
# the host (for its `preinit`) and pre-initializes the component.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-components.sh \
    && scripts/image-rootfs.sh /rootfs

FROM scratch
# Ownership is kept (COPY --from does): root's files, nonroot's /data.
COPY --from=build /rootfs/ /
# The image's settings; every other one has the host's default (README,
# "Configuration"). The listeners are the container's: publish a port to
# reach one. The admin API always requires its token (generated into
# /data/admin-token at first start and printed once in the log, unless
# ADMIN_TOKEN is set). No service URL is set: the host refuses to start
# until they are, or REFERENCE_PEERS=true for the demo.
ENV BOOKING_LISTEN=0.0.0.0:8000 \
    ADMIN_LISTEN=0.0.0.0:9000 \
    METRICS_LISTEN=0.0.0.0:9464 \
    BOOKING_DATA_DIR=/data \
    BOOKING_COMPONENT=/usr/share/booking/booking_component.wasm
# nonroot, as scripts/image-rootfs.sh writes it into /etc/passwd; numeric
# so Kubernetes' runAsNonRoot can check it.
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8000 9000 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/booking-host", "probe"]
# The host handles SIGTERM itself (drains within SHUTDOWN_GRACE_SECONDS,
# 20 s: give `docker stop` -t 25).
ENTRYPOINT ["/usr/local/bin/booking-host"]
