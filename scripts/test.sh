#!/usr/bin/env bash
# Runs every test of slastream on a fresh machine: installs what is missing,
# builds once into a reused target directory, runs unit, property and
# integration tests, and compiles the benches.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/slastream/target}"
export SLASTREAM_TOOLS="${SLASTREAM_TOOLS:-$HOME/.cache/slastream/tools}"
mkdir -p "$CARGO_TARGET_DIR" "$SLASTREAM_TOOLS"

scripts/setup.sh --test

# A real Kafka-protocol broker for the integration tests: tansu, built once
# into the tools directory (about 15 minutes on 2 cores the first time).
if [ ! -x "$SLASTREAM_TOOLS/bin/tansu" ]; then
    echo "installing tansu 0.6.0 into $SLASTREAM_TOOLS (first run only)"
    cargo install --locked tansu --version 0.6.0 --features dynostore,libsql --root "$SLASTREAM_TOOLS" \
        || cargo install tansu --version 0.6.0 --features dynostore,libsql --root "$SLASTREAM_TOOLS"
fi

# One optimised profile for tests, benches and binaries: RocksDB and
# librdkafka compile once.
cargo build --release --all-targets
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
# Read latency bounds at 10,000 customers (README "Performance").
scripts/reads_bench.sh "$CARGO_TARGET_DIR/release/slastream" || status=1
exit "$status"
