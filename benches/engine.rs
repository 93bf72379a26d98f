//! Hot path: decode + `Engine::apply` for probe and ticket events, one core,
//! over 35 days of event time (so dedup pruning, bucket compaction and
//! retention all run), with the engine's change tracking on and the changes
//! encoded and written as the product does: one commit per `COMMIT_EVENTS`
//! into a `MemStore` (`persist-mem`) or a RocksDB in a temporary directory,
//! synced (`persist-rocks`). `decode+apply` alone is kept for comparison.
//! `cargo bench --bench engine` (or `make bench`); the figure is in elements
//! (events) per second.
//!
//! End to end, `slastream replay` of `slastream generate --config
//! config/slastream.toml --rate 4 --seed 3 --duration 5d --start
//! 2026-10-20T00:00:00Z` (1,734,922 events) on an empty state directory is
//! the figure to quote for the whole pipeline (read, decode, apply, commit on
//! three threads); `scripts/replay_bench.sh` (run by `make bench`) times it.
//! On the 2-core development machine, whole process, median of 5 runs
//! alternated with the previous layout: 1.39 s (1.25 million events/s), peak
//! RSS 196 MiB; the previous layout (a dedup key per event, a synced commit
//! per 4,096 events on the applying thread): 5.97 s (291,000 events/s), peak
//! RSS 196 MiB.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use slastream::config::{self, Config};
use slastream::engine::Engine;
use slastream::model::event::decode;
use slastream::model::time::{format_rfc3339, parse_rfc3339, DAY};
use slastream::store::{state, MemStore, RocksStore, Store};

const CONFIG: &str = r#"
[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"
calendar = "eu"

[calendars.eu]
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]

[[slos]]
name = "api-availability"
indicator = "probe_availability"
objective = 0.999
window = "30d"
filter = { service = "api" }

[[slos]]
name = "api-latency"
indicator = "probe_latency"
threshold_ms = 300
objective = 0.99
window = "30d"

[[slos]]
name = "first-response"
indicator = "ticket_response"
objective = 0.95
window = "month"
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }

[[slos]]
name = "resolution"
indicator = "ticket_resolution"
objective = 0.9
window = "month"
targets = { P1 = "4h", P2 = "1d", P3 = "3d", P4 = "5d" }
"#;

const N: usize = 200_000;
/// Event time the events span.
const SPAN_DAYS: i64 = 35;
/// Events between two commits.
const COMMIT_EVENTS: usize = 50_000;

fn probe_lines() -> Vec<String> {
    let start = parse_rfc3339("2026-11-02T00:00:00Z").expect("start");
    let step = SPAN_DAYS * DAY / N as i64;
    (0..N)
        .map(|i| {
            let at = format_rfc3339(start + (i as i64) * step);
            let customer = format!("cust-{:03}", i % 200);
            format!(
                r#"{{"event_id":"p-{i}","kind":"probe","occurred_at":"{at}","customer_id":"{customer}","probe_id":"probe-api-eu","service":"api","region":"eu-west","success":{},"latency_ms":{}}}"#,
                i % 97 != 0,
                40 + i % 400
            )
        })
        .collect()
}

fn ticket_lines() -> Vec<String> {
    let start = parse_rfc3339("2026-11-02T00:00:00Z").expect("start");
    let actions = ["opened", "responded", "paused", "resumed", "resolved"];
    let step = SPAN_DAYS * DAY / (N / actions.len()) as i64;
    (0..N)
        .map(|i| {
            let ticket = i / actions.len();
            let action = actions[i % actions.len()];
            let at = format_rfc3339(start + (ticket as i64) * step + (i % actions.len()) as i64 * 1_800_000);
            let priority = if action == "opened" { r#","priority":"P3""# } else { "" };
            format!(
                r#"{{"event_id":"t-{i}","kind":"ticket","occurred_at":"{at}","customer_id":"acme","ticket_id":"T{ticket}","action":"{action}"{priority}}}"#
            )
        })
        .collect()
}

fn cfg() -> Config {
    config::parse(CONFIG, &[], Path::new(".")).expect("bench config")
}

fn engine() -> Engine {
    Engine::new(&cfg())
}

/// An engine restored from `store` (so it tracks its changes), and the store.
fn tracked<S: Store>(store: S) -> (Engine, S) {
    let e = state::restore(&cfg(), &store).expect("restore");
    (e, store)
}

/// Applies `lines`, committing every `COMMIT_EVENTS` and at the end.
fn apply_and_commit(e: &mut Engine, store: &dyn Store, lines: &[String], now: i64) {
    for chunk in lines.chunks(COMMIT_EVENTS) {
        for l in chunk {
            if let Ok(ev) = decode(l.as_bytes()) {
                e.apply(&ev, now);
            }
        }
        e.maybe_compact();
        store.write(state::dirty_batch(e)).expect("commit");
    }
}

fn bench(c: &mut Criterion) {
    let now = parse_rfc3339("2027-01-01T00:00:00Z").expect("now");
    let mut g = c.benchmark_group("decode+apply");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (name, lines) in [("probe", probe_lines()), ("ticket", ticket_lines())] {
        g.bench_function(name, |b| {
            b.iter_batched(
                engine,
                |mut e| {
                    for l in &lines {
                        if let Ok(ev) = decode(l.as_bytes()) {
                            e.apply(&ev, now);
                        }
                    }
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode+apply+persist");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (name, lines) in [("probe", probe_lines()), ("ticket", ticket_lines())] {
        g.bench_function(format!("{name}/persist-mem"), |b| {
            b.iter_batched(
                || tracked(MemStore::default()),
                |(mut e, store)| {
                    apply_and_commit(&mut e, &store, &lines, now);
                    (e, store)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("{name}/persist-rocks"), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = RocksStore::open(dir.path()).expect("open");
                    let (e, store) = tracked(store);
                    (e, store, dir)
                },
                |(mut e, store, dir)| {
                    apply_and_commit(&mut e, &store, &lines, now);
                    (e, store, dir)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
