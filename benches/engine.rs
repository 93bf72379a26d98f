//! Hot path: decode + `Engine::apply` for probe and ticket events, one core.
//! `cargo bench --bench engine`; the figure is in elements (events) per second.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use slastream::config;
use slastream::engine::Engine;
use slastream::model::event::decode;
use slastream::model::time::{format_rfc3339, parse_rfc3339};

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

const N: usize = 100_000;

fn probe_lines() -> Vec<String> {
    let start = parse_rfc3339("2026-11-02T00:00:00Z").expect("start");
    (0..N)
        .map(|i| {
            let at = format_rfc3339(start + (i as i64) * 250);
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
    (0..N)
        .map(|i| {
            let ticket = i / actions.len();
            let action = actions[i % actions.len()];
            let at = format_rfc3339(start + (ticket as i64) * 60_000 + (i % actions.len()) as i64 * 1_800_000);
            let priority = if action == "opened" { r#","priority":"P3""# } else { "" };
            format!(
                r#"{{"event_id":"t-{i}","kind":"ticket","occurred_at":"{at}","customer_id":"acme","ticket_id":"T{ticket}","action":"{action}"{priority}}}"#
            )
        })
        .collect()
}

fn engine() -> Engine {
    let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("bench config");
    Engine::new(&cfg)
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
