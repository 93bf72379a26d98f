//! Event decoding (SPEC §1), the first step of every message on the hot path:
//! realistic probe and ticket events, with and without JSON escapes (escapes
//! force owned copies of the strings that hold them). Before measuring, it
//! checks that an event without escapes decodes without a heap allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use slastream::model::event::decode;

const PROBE: &str = r#"{"event_id":"3f2b9c1e-7a4d-4e8b-9c6f-1d2e3f4a5b6c","kind":"probe","occurred_at":"2026-11-02T09:30:00.123Z","customer_id":"acme-corp","segment":"enterprise","timezone":"Europe/Berlin","probe_id":"api-health-eu-west-1","service":"api","region":"eu-west-1","success":true,"latency_ms":87.4}"#;

const PROBE_ESCAPED: &str = r#"{"event_id":"3f2b9c1e-7a4d-4e8b-9c6f-1d2e3f4a5b6c","kind":"probe","occurred_at":"2026-11-02T09:30:00.123Z","customer_id":"acme\u002dcorp","segment":"enterprise","timezone":"Europe\/Berlin","probe_id":"api-health-eu-west-1","service":"api\/v2","region":"eu-west-1","success":true,"latency_ms":87.4}"#;

/// Identifiers at the 128-character limit and a 12-digit fraction: the
/// checks of SPEC §1 at their most expensive, still without escapes.
const PROBE_LONG: &str = r#"{"event_id":"3f2b9c1e-7a4d-4e8b-9c6f-1d2e3f4a5b6c-3f2b9c1e-7a4d-4e8b-9c6f-1d2e3f4a5b6c-3f2b9c1e-7a4d-4e8b-9c6f-1d2e3f4a5b6c-0123456789abcdefg","kind":"probe","occurred_at":"2026-11-02T10:30:00.123456789012+01:00","customer_id":"acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-corp-acme-cor","segment":"enterprise","timezone":"Europe/Berlin","probe_id":"api-health-eu-west-1","service":"api","region":"eu-west-1","success":true,"latency_ms":87.4}"#;

const TICKET: &str = r#"{"event_id":"zd-104233-3","kind":"ticket","occurred_at":"2026-11-02T18:30:00+09:00","customer_id":"globex","segment":"standard","timezone":"Asia/Tokyo","ticket_id":"ZD-104233","action":"opened","priority":"P2","service":"billing","subject":"Invoice totals do not match the contract","channel":"email","tags":["billing","invoice"]}"#;

const TICKET_ESCAPED: &str = r#"{"event_id":"zd-104233-3","kind":"ticket","occurred_at":"2026-11-02T18:30:00+09:00","customer_id":"globex","segment":"standard","timezone":"Asia/Tokyo","ticket_id":"ZD\u002d104233","action":"opened","priority":"P2","service":"billing\/eu","subject":"Invoice \"totals\" do not match\nthe contract","channel":"email","tags":["billing","invoice"]}"#;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Panics unless decoding `doc` allocates nothing, once the zone cache is
/// warm (the first call fills it, the second its last-zone buffer).
fn assert_no_allocation(name: &str, doc: &str) {
    let _ = decode(doc.as_bytes());
    let _ = decode(doc.as_bytes());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let ok = decode(black_box(doc.as_bytes())).is_ok();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(ok, "{name} decodes");
    assert_eq!(allocations, 0, "{name}: decoding allocated");
}

fn bench_decode(c: &mut Criterion) {
    assert_no_allocation("probe", PROBE);
    assert_no_allocation("probe_long", PROBE_LONG);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, doc) in [
        ("probe", PROBE),
        ("probe_long", PROBE_LONG),
        ("probe_escaped", PROBE_ESCAPED),
        ("ticket", TICKET),
        ("ticket_escaped", TICKET_ESCAPED),
    ] {
        // A bench of an event that fails to decode would measure the error path.
        if let Err(e) = decode(doc.as_bytes()) {
            panic!("{name}: {e}");
        }
        group.bench_function(name, |b| {
            b.iter(|| decode(black_box(doc.as_bytes())).is_ok())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
