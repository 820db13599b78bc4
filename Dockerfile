# Multi-stage build of rushline's programs: rushline-api, rushline-worker and the operator CLI
# `rushline`. The same image runs the API or a worker (compose picks the program with `command`)
# and carries the CLI (`docker-compose exec api rushline recover`).
#
# Checked twice: scripts/docker-context-check (run by scripts/test, no Docker needed) rebuilds the
# build stage's tree from the COPY lines below and .dockerignore and checks that cargo finds
# everything there; the `docker` job in .github/workflows/ci.yml builds the image for real.
#
# rust:1.88 is the workspace's rust-version (Cargo.toml), so the image is built by the oldest
# toolchain rushline supports: using anything newer fails here first. Raise both together.
FROM rust:1.88-bookworm AS build
WORKDIR /src
# Cargo loads every workspace member's manifest before building any, so the whole workspace is
# copied, loadtest/ included (the image does not ship it).
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY loadtest loadtest
COPY migrations migrations
RUN cargo build --release --locked -p rushline-api -p rushline-worker -p rushline-cli --bins

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home rushline
COPY --from=build /src/target/release/rushline-api /src/target/release/rushline-worker /src/target/release/rushline /usr/local/bin/
USER rushline
ENV RUST_LOG=info RUSHLINE_LOG_FORMAT=json
CMD ["rushline-api"]
