#!/usr/bin/env bash
# The end-to-end replay figure: `slastream replay` of the generated 5-day set
# (1,734,922 events) into an empty state directory, with its events/s and peak
# RSS. Set SLASTREAM_BIN to time another binary, BENCH_INPUT to keep the set.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin slastream
bin="${SLASTREAM_BIN:-${CARGO_TARGET_DIR:-target}/release/slastream}"
input="${BENCH_INPUT:-${TMPDIR:-/tmp}/slastream-gen5d.ndjson}"
if [ ! -s "$input" ]; then
  "$bin" generate --config config/slastream.toml --rate 4 --seed 3 --duration 5d \
    --start 2026-10-20T00:00:00Z >"$input"
fi
state="$(mktemp -d)"
trap 'rm -rf "$state"' EXIT
SLASTREAM__STATE__PATH="$state" /usr/bin/time -f 'peak RSS %M KiB, wall %e s' \
  "$bin" replay --config config/slastream.toml --input "$input" 2>&1 |
  grep -E '^replay done|^peak RSS'
