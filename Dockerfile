# Multi-stage build of slastream: compile with the Rust toolchain and
# libclang (RocksDB's bindgen), run on a slim Debian with the binary and the
# example configuration.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin slastream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 slastream \
 && mkdir /data && chown slastream /data
COPY --from=build /src/target/release/slastream /usr/local/bin/slastream
COPY config /etc/slastream
USER slastream
ENV SLASTREAM__HTTP__LISTEN=0.0.0.0:9464 \
    SLASTREAM__STATE__PATH=/data
VOLUME /data
EXPOSE 9464
ENTRYPOINT ["slastream"]
CMD ["run", "--config", "/etc/slastream/slastream.toml"]
