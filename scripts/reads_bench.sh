#!/usr/bin/env bash
# Threshold benchmark of the reads: generates two days of events for 10,000
# customers (ending now), replays them into a fresh state, serves that state
# and times `/metrics` and the monthly report READS_BENCH_RUNS times each.
# Fails (exit 1, naming the figure and its bound) when a median exceeds its
# bound: /metrics 250 ms, the report 1 s (README "Performance").
#
#   scripts/reads_bench.sh [BIN]        BIN defaults to $CARGO_TARGET_DIR/release/slastream
#
# Knobs (environment): READS_BENCH_CUSTOMERS (10000), READS_BENCH_DAYS (2),
# READS_BENCH_RATE (events/s, 20), READS_BENCH_RUNS (5), READS_BENCH_PORT
# (9483), READS_BENCH_METRICS_MS (250), READS_BENCH_REPORT_MS (1000).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$HOME/.cache/slastream/target}"
bin="${1:-$target/release/slastream}"
customers="${READS_BENCH_CUSTOMERS:-10000}"
days="${READS_BENCH_DAYS:-2}"
rate="${READS_BENCH_RATE:-20}"
runs="${READS_BENCH_RUNS:-5}"
port="${READS_BENCH_PORT:-9483}"
metrics_bound_ms="${READS_BENCH_METRICS_MS:-250}"
report_bound_ms="${READS_BENCH_REPORT_MS:-1000}"

if [ ! -x "$bin" ]; then
    echo "reads_bench: no slastream binary at $bin (build it with cargo build --release --bin slastream)" >&2
    exit 2
fi

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export SLASTREAM__STATE__PATH="$work/state"
export SLASTREAM__HTTP__LISTEN="127.0.0.1:$port"
base="http://127.0.0.1:$port"
# The month holding the first generated day.
month="$(date -u -d "-${days} days" +%Y-%m)"

echo "reads_bench: $customers customers, ${days}d at $rate events/s, replaying"
started=$(date +%s)
# Straight from the generator into the replay: no file of a GB on disk.
"$bin" generate --customers "$customers" --rate "$rate" --seed 5 --duration "${days}d" \
    | "$bin" replay --config config/slastream.toml --input /dev/stdin >"$work/replay.log" 2>&1 \
    || { tail -5 "$work/replay.log" >&2; echo "reads_bench: replay failed" >&2; exit 2; }
grep -a 'replay done' "$work/replay.log" || true
echo "reads_bench: replayed in $(( $(date +%s) - started )) s; serving"

"$bin" replay --config config/slastream.toml --input /dev/null --then-serve >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 1200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ]; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        tail -5 "$work/serve.log" >&2
        echo "reads_bench: the server exited before it was ready" >&2
        exit 2
    fi
    sleep 0.1
done
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" != 200 ]; then
    echo "reads_bench: the server was not ready within 120 s" >&2
    exit 2
fi

# The median of `runs` answers of URL, in milliseconds (each answer read whole).
median_ms() {
    local url=$1 i
    for i in $(seq 1 "$runs"); do
        curl -sf -o /dev/null -w '%{time_total}\n' "$url" \
            || { echo "reads_bench: $url failed" >&2; return 1; }
    done | sort -n | awk '{ t[NR] = $1 } END { printf "%d\n", t[int((NR + 1) / 2)] * 1000 }'
}

metrics_ms=$(median_ms "$base/metrics")
report_ms=$(median_ms "$base/api/v1/report?month=$month")
csv_ms=$(median_ms "$base/api/v1/report?month=$month&format=csv")
breaches_ms=$(median_ms "$base/api/v1/breaches?limit=1000")
echo "reads_bench: median of $runs: /metrics $metrics_ms ms (bound $metrics_bound_ms ms)," \
    "report $report_ms ms (bound $report_bound_ms ms), report csv $csv_ms ms," \
    "breaches?limit=1000 $breaches_ms ms"

status=0
if [ "$metrics_ms" -gt "$metrics_bound_ms" ]; then
    echo "reads_bench: FAIL: median /metrics $metrics_ms ms exceeds its bound of $metrics_bound_ms ms" >&2
    status=1
fi
if [ "$report_ms" -gt "$report_bound_ms" ]; then
    echo "reads_bench: FAIL: median /api/v1/report $report_ms ms exceeds its bound of $report_bound_ms ms" >&2
    status=1
fi
if [ "$csv_ms" -gt "$report_bound_ms" ]; then
    echo "reads_bench: FAIL: median /api/v1/report (csv) $csv_ms ms exceeds its bound of $report_bound_ms ms" >&2
    status=1
fi
[ "$status" = 0 ] && echo "reads_bench: ok"
exit "$status"
