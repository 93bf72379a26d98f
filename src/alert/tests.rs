//! The alert book: episodes, what each target is owed, resends, resolution.

use std::collections::BTreeMap;

use super::*;
use crate::model::time::MINUTE;

fn firing(names: &[&str]) -> BTreeMap<String, Firing> {
    names
        .iter()
        .map(|n| {
            let labels = labels(&[("alertname", "TicketSLABreached"), ("ticket_id", n)]);
            (
                fingerprint(&labels),
                Firing {
                    labels,
                    annotations: Labels::new(),
                },
            )
        })
        .collect()
}

fn targets() -> Vec<String> {
    vec![
        "alertmanager:http://am".to_string(),
        "webhook:http://hook".to_string(),
    ]
}

#[test]
fn fingerprints_depend_on_labels_only() {
    let a = labels(&[("a", "1"), ("b", "2")]);
    let b = labels(&[("b", "2"), ("a", "1")]);
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_ne!(
        fingerprint(&a),
        fingerprint(&labels(&[("a", "1"), ("b", "3")]))
    );
    assert_eq!(fingerprint(&a).len(), 16);
}

#[test]
fn an_episode_fires_once_resends_to_alertmanager_and_resolves() {
    let mut book = Book::default();
    let t = targets();
    let f = firing(&["T-1"]);
    let fp = f.keys().next().cloned().expect("one");
    let changed = book.update(f.clone(), 0, &t, 5 * MINUTE);
    assert!(changed.contains(&fp));
    assert_eq!(book.episodes[&fp].pending.len(), 2);
    assert!(book.delivered(&fp, &t[0], 1_000));
    assert!(book.delivered(&fp, &t[1], 1_000));
    // Still firing a minute later: nothing owed, same episode.
    assert!(book.update(f.clone(), MINUTE, &t, 5 * MINUTE).is_empty());
    assert_eq!(book.episodes[&fp].starts_at, 0);
    // After the resend interval, Alertmanager (only) is owed the firing again.
    book.update(f.clone(), 5 * MINUTE + 1_000, &t, 5 * MINUTE);
    let owed: Vec<&String> = book.episodes[&fp].pending.iter().collect();
    assert_eq!(owed, vec![&t[0]]);
    book.delivered(&fp, &t[0], 5 * MINUTE + 2_000);
    // Gone: resolved, every target owed the resolution, then pruned.
    book.update(BTreeMap::new(), 6 * MINUTE, &t, 5 * MINUTE);
    let e = &book.episodes[&fp];
    assert_eq!(e.ends_at, Some(6 * MINUTE));
    assert_eq!(e.status(), "resolved");
    assert_eq!(e.pending.len(), 2);
    assert!(book.prune().is_empty(), "not pruned while owed");
    book.delivered(&fp, &t[0], 6 * MINUTE);
    book.delivered(&fp, &t[1], 6 * MINUTE);
    assert_eq!(book.prune(), vec![fp.clone()]);
    assert!(book.episodes.is_empty());
}

#[test]
fn a_restored_book_does_not_fire_again() {
    let mut book = Book::default();
    let t = targets();
    let f = firing(&["T-2"]);
    book.update(f.clone(), 0, &t, 5 * MINUTE);
    // What a restart restores is the book itself; the same alert firing
    // again is the same episode with the same start and what it still owes.
    let mut restored = book.clone();
    assert!(restored.update(f, 1_000, &t, 5 * MINUTE).is_empty());
    assert_eq!(restored, book);
}

#[test]
fn firing_counts_are_per_alertname_and_severity() {
    let mut book = Book::default();
    let mut f = BTreeMap::new();
    for (n, sev) in [("a", "page"), ("b", "page"), ("c", "warning")] {
        let l = labels(&[("alertname", "X"), ("severity", sev), ("id", n)]);
        f.insert(
            fingerprint(&l),
            Firing {
                labels: l,
                annotations: Labels::new(),
            },
        );
    }
    book.update(f, 0, &[], MINUTE);
    let c = book.firing_counts();
    assert_eq!(c[&("X".to_string(), "page".to_string())], 2);
    assert_eq!(c[&("X".to_string(), "warning".to_string())], 1);
}

mod rules {
    //! `evaluate` on an injected instant: ticket alerts fire on time with no
    //! new event, and resolve when the clock stops.

    use std::path::Path;

    use crate::alert::evaluate;
    use crate::config;
    use crate::engine::Engine;
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, Millis, MINUTE};

    const CONFIG: &str = r#"
[alerting]
warn_at = 0.75

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
window = "month"
clock = "24x7"
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }
"#;

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("timestamp")
    }

    /// Ticket alerts only: a breached ticket is also a bad event of the SLO,
    /// so burn-rate alerts may fire beside them.
    fn names(e: &Engine, cfg: &config::Config, now: Millis) -> Vec<(String, String)> {
        evaluate(e, now, &cfg.alerting, "http://x")
            .values()
            .filter(|f| f.labels["alertname"].starts_with("Ticket"))
            .map(|f| (f.labels["alertname"].clone(), f.labels["severity"].clone()))
            .collect()
    }

    #[test]
    fn ticket_alerts_fire_on_time_and_resolve_when_the_clock_stops() {
        let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("valid");
        let mut e = Engine::new(&cfg);
        let opened = t("2026-11-16T10:00:00Z");
        let ev = r#"{"event_id":"1","kind":"ticket","occurred_at":"2026-11-16T10:00:00Z","customer_id":"acme","ticket_id":"T","action":"opened","priority":"P1"}"#;
        e.apply(&decode(ev.as_bytes()).expect("event"), opened);
        assert!(names(&e, &cfg, opened + 44 * MINUTE).is_empty());
        // 45 minutes = 0.75 × 1 h: at risk, with no new event.
        assert_eq!(
            names(&e, &cfg, opened + 45 * MINUTE),
            vec![("TicketSLAAtRisk".to_string(), "warning".to_string())]
        );
        assert_eq!(
            names(&e, &cfg, opened + 60 * MINUTE + 1),
            vec![("TicketSLABreached".to_string(), "page".to_string())]
        );
        let f = evaluate(&e, opened + 61 * MINUTE, &cfg.alerting, "http://x");
        let labels = &f
            .values()
            .find(|f| f.labels["alertname"] == "TicketSLABreached")
            .expect("breached")
            .labels;
        assert_eq!(labels["ticket_id"], "T");
        assert_eq!(labels["priority"], "P1");
        assert_eq!(labels["customer"], "acme");
        assert_eq!(labels["timezone"], "Europe/Berlin");
        let ev = r#"{"event_id":"2","kind":"ticket","occurred_at":"2026-11-16T11:10:00Z","customer_id":"acme","ticket_id":"T","action":"responded"}"#;
        e.apply(&decode(ev.as_bytes()).expect("event"), opened + 70 * MINUTE);
        assert!(
            names(&e, &cfg, opened + 71 * MINUTE).is_empty(),
            "resolved once answered"
        );
    }
}
