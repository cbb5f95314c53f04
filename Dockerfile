# syntax=docker/dockerfile:1
#
# postmark-relay as a container image. Build from the repository root:
#
#     docker build -t postmark-relay:0.1.0 .
#
# Stage 1 compiles the relay (release, --locked) with the Rust image; stage 2 copies the one
# binary into a distroless runtime (glibc, libgcc, CA certificates; no shell, no package
# manager) that runs it as the non-root user 65532. Nothing secret is ever part of the image:
# credentials arrive at run time as files named by POSTMARK_*_FILE (Docker/Compose secrets, a
# Kubernetes Secret volume). Running it: deploy/README.md.

# Keep the Rust version in step with rust-toolchain.toml (that file is not sent to the build, see
# .dockerignore, so rustup never downloads anything here). Both images can be overridden with
# --build-arg, e.g. to use a mirror or to pin them by digest. Fully qualified names, so Podman and
# Buildah, which have no default registry, build it as Docker does.
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit or Buildah), so a change to
# the relay recompiles the relay, not its ~300 dependencies. The binary leaves the cache mount
# in the same step. Without debug info it is 12 MB instead of 57 (panics still name functions).
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN --mount=type=cache,id=postmark-relay-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=postmark-relay-target,target=/src/target \
    cargo build --release --locked -p postmark-relay --bin postmark-relay \
    && install -D -m 0755 target/release/postmark-relay /out/postmark-relay \
    && install -d -m 0700 /out/spool

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="postmark-relay" \
      org.opencontainers.image.description="A durable local SMTP relay that forwards mail to Postmark" \
      org.opencontainers.image.source="https://github.com/postmark-rs/postmark-rs" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=build /out/postmark-relay /usr/local/bin/postmark-relay
# The spool's mount point, owned by the runtime user, so a new named volume starts out writable.
COPY --from=build --chown=65532:65532 /out/spool /var/spool/postmark-relay
# Inside a container the relay must listen on all interfaces. It still refuses to start until you
# say who may send: RELAY_ALLOW_UNAUTHENTICATED_FROM=<the private network of your clients>, or
# client AUTH (RELAY_AUTH_USERS) with STARTTLS (RELAY_TLS_CERT, RELAY_TLS_KEY). A sidecar sets
# RELAY_LISTEN=127.0.0.1:2525 instead. The health listener stays on loopback: the HEALTHCHECK
# below runs inside the container.
# MALLOC_ARENA_MAX=1: one glibc malloc arena (see the systemd unit; README, Performance).
ENV RELAY_LISTEN=0.0.0.0:2525 \
    RELAY_SPOOL=/var/spool/postmark-relay \
    RELAY_METRICS=127.0.0.1:9102 \
    RELAY_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=1
USER 65532:65532
VOLUME ["/var/spool/postmark-relay"]
EXPOSE 2525
# `postmark-relay healthcheck` GETs /readyz on RELAY_METRICS: exit 0 when the listener is up and
# the spool writable. No curl in the image, none needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/postmark-relay", "healthcheck"]
# SIGTERM: stop accepting, finish what is in flight, exit within RELAY_SHUTDOWN_TIMEOUT (30 s), so
# give `docker stop` more than that (--time 40, Compose's stop_grace_period). SIGHUP re-reads the
# credential files.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/postmark-relay"]
