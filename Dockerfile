# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship a distroless runtime (glibc, CA
# certificates, no shell) running as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin rowcast && strip target/release/rowcast

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rowcast /usr/local/bin/rowcast
# No configuration is baked in (the example config points at local test services and would fail
# at start): the manifests mount /etc/rowcast/rowcast.toml and /etc/rowcast/views.
# 65532 is distroless's nonroot user.
USER 65532:65532
# 9187: metrics and probes; the API (9188) listens on loopback unless the config says otherwise.
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/rowcast"]
CMD ["run", "--config", "/etc/rowcast/rowcast.toml"]
