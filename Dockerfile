# Multi-stage build: the builder compiles the release binary (seeds and catalogue are embedded),
# the runtime image holds only the binary and an empty data folder.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY catalog catalog
COPY seeds seeds
# (declared in Cargo.toml: cargo refuses a manifest whose bench target is missing)
COPY benches benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --home /data voisinage && mkdir -p /data && chown voisinage /data
COPY --from=build /src/target/release/voisinage /usr/local/bin/voisinage
USER voisinage
ENV VOISINAGE_DATA_DIR=/data \
    VOISINAGE_BIND=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["voisinage"]
CMD ["serve", "--demo"]
