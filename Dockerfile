# Multi-stage build: the builder compiles the binary with the `dist` profile of Cargo.toml (release
# with fat LTO; seeds and catalogue are embedded),
# the runtime image holds only the stripped binary and an empty data folder.
#
# Base images are pinned by digest (the tags rust:1.95-bookworm and debian:bookworm-slim as a
# 2026 build resolved them). To move to newer images, resolve the tags again on a machine that
# reaches the registry (`docker buildx imagetools inspect rust:1.95-bookworm`) and change both
# lines, or pass --build-arg RUST_IMAGE=... / RUNTIME_IMAGE=....
ARG RUST_IMAGE=rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependency layer, cached apart from the sources: the manifests with empty targets build every
# dependency; the layer is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/core.rs \
    && cargo build --profile dist --locked \
    && rm -rf src benches
# The sources (touched: their checkout dates may be older than the empty targets just built).
COPY src src
COPY catalog catalog
COPY seeds seeds
# (declared in Cargo.toml: cargo refuses a manifest whose bench target is missing)
COPY benches benches
RUN touch src/main.rs src/lib.rs \
    && cargo build --profile dist --locked \
    && strip target/dist/voisinage

FROM ${RUNTIME_IMAGE}
# A numeric, unprivileged user (Kubernetes' runAsNonRoot checks the number).
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home voisinage \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /src/target/dist/voisinage /usr/local/bin/voisinage
USER 10001:10001
ENV VOISINAGE_DATA_DIR=/data \
    VOISINAGE_BIND=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
VOLUME ["/data"]
# `voisinage health` asks GET /health/ready on VOISINAGE_BIND's port: the store must take a
# write and a sync. The start period covers a national store's start.
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 CMD ["voisinage", "health", "--timeout", "10"]
ENTRYPOINT ["voisinage"]
# Real data: an empty store that your communes fill. The demo is `docker run ... serve --demo`.
CMD ["serve"]
