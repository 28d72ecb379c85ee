# hubspoke: one image, every subcommand (topology, nb, sb, up, tail, …).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# librdkafka is built from source by the rdkafka crate: it needs a C toolchain, make and cmake.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
RUN cargo build --release --locked --bin hubspoke

FROM debian:bookworm-slim
# curl: the compose file's health checks ask `/ready` with it.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/hubspoke /usr/local/bin/hubspoke
ENTRYPOINT ["hubspoke"]
