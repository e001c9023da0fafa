# syntax=docker/dockerfile:1
# One image with wagate's three binaries: control-plane, edge-gateway and the
# reference worker wagate-worker (plus the all-in-one `wagate`).
#
#   docker build -t wagate:dev .
#   docker run --rm -p 50051:50051 wagate:dev                       # control plane
#   docker run --rm -p 8080:8080 wagate:dev edge-gateway            # edge
#
# The whole toolchain stays on ring/rustls (no OpenSSL, no aws-lc), and
# SQLite is bundled: the runtime image needs only libc and CA certificates.

ARG RUST_VERSION=1.94

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The registry and target caches survive between builds (BuildKit cache mounts).
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin control-plane --bin edge-gateway --bin wagate-worker --bin wagate \
    && mkdir -p /out \
    && cp target/release/control-plane target/release/edge-gateway \
          target/release/wagate-worker target/release/wagate /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/wagate --create-home wagate
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/wagate
ENV RUST_LOG=info \
    WAGATE_GRPC_LISTEN=0.0.0.0:50051 \
    WAGATE_EDGE_LISTEN=0.0.0.0:8080 \
    WAGATE_METRICS_LISTEN=0.0.0.0:9090
EXPOSE 50051 8080 9090
# The control plane answers grpc.health.v1 "liveness"; the edge /health.
# `wagate-worker --health-check`-style probes are not needed: Kubernetes uses
# its own gRPC/HTTP probes (see helm/), this one serves `docker run`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/control-plane", "--health-check"]
ENTRYPOINT []
CMD ["/usr/local/bin/control-plane"]
