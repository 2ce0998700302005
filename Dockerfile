# syntax=docker/dockerfile:1
#
# outagewatch container image.
#
#   docker build -t outagewatch .
#   docker run --rm -p 8080:8080 outagewatch
#
# Multi-stage: the Rust toolchain stays in the builder; the runtime image
# carries only the binary, CA certificates (rediss:// TLS) and curl (health check).

############################ builder ############################
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Dependency cache layer: build all dependencies against dummy sources, so
# editing src/ does not recompile the whole dependency tree. This layer is
# only invalidated when Cargo.toml or Cargo.lock change.
# The manifest declares [[bench]] targets (harness = false), so cargo refuses
# to load it unless each benches/<name>.rs exists, even though none is built
# here; the loop below makes one dummy per declared bench.
# gcc (needed by blake3's C/asm via the cc crate) is part of the rust image.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for bench in $(awk '/^\[\[bench\]\]/ {b = 1; next} b && /^name/ {gsub(/"/, "", $3); print $3; b = 0}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$bench.rs"; done \
    && cargo build --release --locked \
    && rm -rf src benches

# Real sources. config/ is needed at compile time: default.toml and
# services.toml are embedded with include_str!; askama.toml tells the page
# templates' derive where src/web/templates is.
COPY src ./src
COPY config ./config
COPY askama.toml ./
COPY benches ./benches
# COPY keeps the files' original mtimes, which can be older than the dummy
# build's artifacts; touch them so cargo sees the sources as changed and
# rebuilds the outagewatch crate instead of reusing the dummy one.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin outagewatch

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to Redis (rediss://). curl: the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# Run as an unprivileged user; a fixed uid lets orchestrators (and
# Kubernetes runAsNonRoot) verify it and keeps file ownership predictable.
RUN groupadd --system --gid 10001 outagewatch \
    && useradd --system --uid 10001 --gid outagewatch \
         --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin outagewatch

COPY --from=builder /src/target/release/outagewatch /usr/local/bin/outagewatch
# The configuration is embedded in the binary; these copies are only there so
# operators can run `outagewatch --config /etc/outagewatch/<file>` or use them
# as a starting point for their own file.
COPY config/ /etc/outagewatch/

USER 10001:10001

# The built-in default binds 127.0.0.1, unreachable from outside a container.
ENV OUTAGEWATCH_HTTP__BIND=0.0.0.0:8080
EXPOSE 8080

# Liveness only (/healthz): the process is up and serving. Readiness (store
# reachable) is /readyz; docker-compose.yml uses that instead. If you change
# the port in OUTAGEWATCH_HTTP__BIND, override this check too.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1

# Exec form: outagewatch is PID 1 and receives SIGTERM from `docker stop`
# directly, so it shuts down gracefully (drains requests, flushes reports).
ENTRYPOINT ["outagewatch"]
CMD ["serve"]
