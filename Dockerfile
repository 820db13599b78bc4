# Multi-stage build of every rushline binary. The same image runs the API or a worker; compose
# picks the program with `command`.
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY migrations migrations
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home rushline
COPY --from=build /src/target/release/rushline-api /src/target/release/rushline-worker /usr/local/bin/
USER rushline
ENV RUST_LOG=info RUSHLINE_LOG_FORMAT=json
CMD ["rushline-api"]
