use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::*;
use crate::model::event::{decode, Body, IncidentAction, TicketAction};
use crate::model::time::HOUR;

fn start() -> Millis {
    parse_rfc3339("2026-11-02T00:00:00Z").unwrap()
}

/// The workload of most tests: 12 customers over two days, ~26k events.
fn two_days(seed: u64) -> GenSettings {
    GenSettings::synthetic(seed, 12, 0.15, start(), 2 * DAY)
}

fn collect(settings: GenSettings) -> Vec<GenEvent> {
    Generator::new(settings).collect()
}

#[test]
fn equal_settings_yield_equal_events_and_seeds_differ() {
    let a = collect(two_days(1));
    let b = collect(two_days(1));
    assert_eq!(a, b);
    let c = collect(two_days(2));
    assert_ne!(
        a.iter().map(|e| &e.json).collect::<Vec<_>>(),
        c.iter().map(|e| &e.json).collect::<Vec<_>>()
    );
    // Ids of different runs never collide.
    let ids = |v: &[GenEvent]| -> HashSet<String> {
        v.iter()
            .map(|e| decode(e.json.as_bytes()).unwrap().event_id.into_owned())
            .collect()
    };
    assert!(ids(&a).is_disjoint(&ids(&c)));
}

#[test]
fn every_event_decodes_and_matches_its_envelope() {
    let settings = two_days(42);
    let end = settings.start + settings.duration;
    let events = collect(settings);
    assert!(events.len() >= 20_000, "{}", events.len());
    let mut ids = HashSet::new();
    for e in &events {
        let ev = decode(e.json.as_bytes()).unwrap_or_else(|err| panic!("{err:?}: {}", e.json));
        assert_eq!(ev.occurred_at, e.at, "{}", e.json);
        assert!(e.at >= start() && e.at < end, "{}", e.json);
        assert!(
            ids.insert(ev.event_id.to_string()),
            "duplicate event_id: {}",
            e.json
        );
        let (kind, key) = match &ev.body {
            Body::Ticket(t) => ("ticket", t.ticket_id.to_string()),
            Body::Incident(i) => ("incident", i.incident_id.to_string()),
            Body::Probe(_) => ("probe", ev.customer_id.as_deref().unwrap().to_string()),
        };
        assert_eq!((kind, key.as_str()), (e.kind, e.key.as_str()));
    }
}

#[test]
fn events_are_ordered_and_every_kind_and_action_occurs() {
    let events = collect(two_days(42));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    let mut actions = BTreeSet::new();
    let mut planned = 0;
    let mut severity_changes = 0;
    let mut scope_changes = 0;
    for e in &events {
        match decode(e.json.as_bytes()).unwrap().body {
            Body::Ticket(t) => {
                actions.insert(t.action.as_str());
            }
            Body::Incident(i) => {
                actions.insert(i.action.as_str());
                planned += i.planned as usize;
                if i.action != IncidentAction::Opened {
                    severity_changes += i.severity.is_some() as usize;
                    scope_changes += i.customer_ids.is_some() as usize;
                }
            }
            Body::Probe(_) => {}
        }
    }
    for kind in ["probe", "ticket", "incident"] {
        assert!(events.iter().any(|e| e.kind == kind), "no {kind}");
    }
    for action in [
        "opened",
        "responded",
        "paused",
        "resumed",
        "resolved",
        "reopened",
        "priority_changed",
        "canceled",
        "acknowledged",
        "mitigated",
    ] {
        assert!(actions.contains(action), "no {action}: {actions:?}");
    }
    assert!(planned >= 1);
    assert!(severity_changes + scope_changes >= 1);
}

#[test]
fn lifecycles_are_in_order_and_some_tickets_stay_open() {
    let events = collect(two_days(42));
    let mut tickets: BTreeMap<String, Vec<TicketAction>> = BTreeMap::new();
    let mut incidents: BTreeMap<String, Vec<IncidentAction>> = BTreeMap::new();
    for e in &events {
        match decode(e.json.as_bytes()).unwrap().body {
            Body::Ticket(t) => tickets
                .entry(t.ticket_id.into_owned())
                .or_default()
                .push(t.action),
            Body::Incident(i) => incidents
                .entry(i.incident_id.into_owned())
                .or_default()
                .push(i.action),
            Body::Probe(_) => {}
        }
    }
    for (id, actions) in &tickets {
        assert_eq!(actions[0], TicketAction::Opened, "{id}: {actions:?}");
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == TicketAction::Opened)
                .count(),
            1
        );
        let cancel = actions.iter().position(|a| *a == TicketAction::Canceled);
        assert!(
            cancel.is_none_or(|i| i == actions.len() - 1),
            "{id}: {actions:?}"
        );
    }
    let open = tickets
        .values()
        .filter(|a| {
            !matches!(
                a.last(),
                Some(TicketAction::Resolved | TicketAction::Canceled)
            )
        })
        .count();
    assert!(open >= 1, "no ticket left open");
    for (id, actions) in &incidents {
        assert_eq!(actions[0], IncidentAction::Opened, "{id}: {actions:?}");
    }
    // "A few per simulated day", plus the burn's own incident.
    assert!((3..=20).contains(&incidents.len()), "{}", incidents.len());
}

#[test]
fn event_count_follows_the_rate_and_tickets_are_a_few_percent() {
    for settings in [
        two_days(3),
        GenSettings::synthetic(3, 12, 20.0, start(), 3 * HOUR),
    ] {
        let expected = settings.rate * (settings.duration / SECOND) as f64;
        let events = collect(settings);
        let n = events.len() as f64;
        assert!(
            (n - expected).abs() <= 0.2 * expected,
            "{n} events, expected {expected}"
        );
        let tickets = events.iter().filter(|e| e.kind == "ticket").count() as f64;
        assert!(
            (0.015..=0.05).contains(&(tickets / n)),
            "ticket share {}",
            tickets / n
        );
    }
}

#[test]
fn synthetic_customers_carry_consistent_segment_and_zone() {
    let events = collect(two_days(5));
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in &events {
        let ev = decode(e.json.as_bytes()).unwrap();
        let Some(c) = ev.customer_id else { continue };
        let tags = (
            ev.segment.unwrap().into_owned(),
            ev.timezone.unwrap().into_owned(),
        );
        assert_eq!(
            seen.entry(c.into_owned()).or_insert_with(|| tags.clone()),
            &tags
        );
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.keys().next().map(String::as_str), Some("cust-001"));
    let segments: BTreeSet<_> = seen.values().map(|(s, _)| s.as_str()).collect();
    let zones: BTreeSet<_> = seen.values().map(|(_, z)| z.as_str()).collect();
    assert_eq!(
        segments,
        BTreeSet::from(["business", "enterprise", "standard"])
    );
    assert!(zones.len() >= 5, "{zones:?}");
}

#[test]
fn the_burning_service_fails_in_the_second_half_only() {
    let settings = GenSettings::synthetic(9, 12, 10.0, start(), 4 * HOUR);
    let mid = settings.start + settings.duration / 2;
    let mut stats: BTreeMap<(String, bool), (u32, u32, Vec<f64>)> = BTreeMap::new();
    for e in Generator::new(settings) {
        let ev = decode(e.json.as_bytes()).unwrap();
        if let Body::Probe(p) = ev.body {
            assert_eq!(
                p.probe_id,
                format!("probe-{}-{}", p.service, p.region.as_deref().unwrap())
            );
            let s = stats
                .entry((p.service.into_owned(), e.at >= mid))
                .or_default();
            s.0 += 1;
            s.1 += !p.success as u32;
            if p.success {
                s.2.push(p.latency_ms);
            }
        }
    }
    for ((service, second_half), (n, failed, mut latencies)) in stats {
        let failure = failed as f64 / n as f64;
        if service == "api" && second_half {
            assert!((0.04..=0.11).contains(&failure), "{service}: {failure}");
        } else {
            assert!(
                failure < 0.01,
                "{service} second_half={second_half}: {failure}"
            );
        }
        latencies.sort_by(f64::total_cmp);
        let median = latencies[latencies.len() / 2];
        let p99 = latencies[latencies.len() * 99 / 100];
        assert!(
            (70.0..=250.0).contains(&median),
            "{service}: median {median}"
        );
        assert!(p99 > 1.5 * median, "{service}: no tail ({median} / {p99})");
    }
}

#[test]
fn registry_customers_and_probe_services_come_from_the_config() {
    let text = r#"
[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"

[[customers]]
id = "globex \"intl\""
segment = "standard"
timezone = "Asia/Tokyo"

[[slos]]
name = "checkout-availability"
indicator = "probe_availability"
objective = 0.999
window = "30d"
filter = { service = "checkout" }

[[slos]]
name = "search-latency"
indicator = "probe_latency"
threshold_ms = 300
objective = 0.99
window = "30d"
filter = { service = "search" }
"#;
    let cfg = crate::config::parse(text, &[], std::path::Path::new(".")).expect("valid config");
    let settings = GenSettings::from_config(&cfg, 1, 99, 2.0, start(), DAY);
    assert_eq!(settings.services, ["checkout", "search"]);
    assert_eq!(settings.burning, ["checkout"]);
    let mut customers = BTreeSet::new();
    let mut services = BTreeSet::new();
    for e in Generator::new(settings) {
        let ev = decode(e.json.as_bytes()).unwrap_or_else(|err| panic!("{err:?}: {}", e.json));
        assert_eq!((ev.segment, ev.timezone), (None, None), "{}", e.json);
        if let Some(c) = ev.customer_id {
            customers.insert(c.into_owned());
        }
        if let Body::Probe(p) = ev.body {
            services.insert(p.service.into_owned());
        }
    }
    assert_eq!(
        customers,
        BTreeSet::from(["acme".to_string(), "globex \"intl\"".to_string()])
    );
    assert_eq!(
        services,
        BTreeSet::from(["checkout".to_string(), "search".to_string()])
    );
}

#[test]
fn memory_stays_bounded_by_streams_and_open_lifecycles() {
    let mut g = Generator::new(GenSettings::synthetic(4, 12, 50.0, start(), 12 * HOUR));
    let mut n = 0u64;
    let mut max_heap = 0;
    while g.next().is_some() {
        n += 1;
        if n % 1024 == 0 {
            max_heap = max_heap.max(g.heap.len());
        }
    }
    assert!(n > 1_500_000);
    // 36 probe streams, 2 arrival processes, and the tickets and incidents
    // still open: at most the ~0.4 tickets/s opened in 12 h, not the events.
    assert!(max_heap < 25_000, "{max_heap}");
}

#[test]
fn nothing_to_generate_is_an_empty_stream() {
    assert_eq!(
        Generator::new(GenSettings::synthetic(1, 0, 10.0, start(), DAY)).count(),
        0
    );
    assert_eq!(
        Generator::new(GenSettings::synthetic(1, 3, 0.0, start(), DAY)).count(),
        0
    );
    assert_eq!(
        Generator::new(GenSettings::synthetic(1, 3, f64::NAN, start(), DAY)).count(),
        0
    );
    assert_eq!(
        Generator::new(GenSettings::synthetic(1, 3, 10.0, start(), 0)).count(),
        0
    );
}

#[test]
fn run_cli_rejects_bad_arguments() {
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();
    assert!(err(run_cli(None, 1.0, 3, 1, "1w", None, None)).contains("--duration"));
    assert!(err(run_cli(None, -1.0, 3, 1, "1h", None, None)).contains("--rate"));
    assert!(err(run_cli(None, 1.0, 3, 1, "1h", Some("yesterday"), None)).contains("--start"));
    assert!(err(run_cli(None, 1.0, 0, 1, "1h", None, None)).contains("--customers"));
}

/// Throughput of the NDJSON path (`cargo test --release --lib generate:: -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn ndjson_throughput() {
    let g = Generator::new(GenSettings::synthetic(1, 12, 50.0, start(), DAY));
    let t = std::time::Instant::now();
    let lines = write_ndjson(g, io::sink()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{lines} lines in {secs:.2}s: {:.0} lines/s",
        lines as f64 / secs
    );
}
