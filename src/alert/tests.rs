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
    let changed = book.update(f.clone(), 0, &t, 5 * MINUTE, true);
    assert!(changed.contains(&fp));
    assert_eq!(book.episodes[&fp].pending.len(), 2);
    let rev = book.episodes[&fp].revision();
    assert!(book.delivered(&fp, &t[0], rev, 1_000));
    assert!(book.delivered(&fp, &t[1], rev, 1_000));
    // Still firing a minute later: nothing owed, same episode.
    assert!(book
        .update(f.clone(), MINUTE, &t, 5 * MINUTE, true)
        .is_empty());
    assert_eq!(book.episodes[&fp].starts_at, 0);
    // After the resend interval, Alertmanager (only) is owed the firing again.
    book.update(f.clone(), 5 * MINUTE + 1_000, &t, 5 * MINUTE, true);
    let owed: Vec<&String> = book.episodes[&fp].pending.iter().collect();
    assert_eq!(owed, vec![&t[0]]);
    book.delivered(&fp, &t[0], rev, 5 * MINUTE + 2_000);
    // Gone: resolved, every target owed the resolution, then pruned.
    book.update(BTreeMap::new(), 6 * MINUTE, &t, 5 * MINUTE, true);
    let e = &book.episodes[&fp];
    assert_eq!(e.ends_at, Some(6 * MINUTE));
    assert_eq!(e.status(), "resolved");
    assert_eq!(e.pending.len(), 2);
    assert!(book.prune().is_empty(), "not pruned while owed");
    let rev = book.episodes[&fp].revision();
    book.delivered(&fp, &t[0], rev, 6 * MINUTE);
    book.delivered(&fp, &t[1], rev, 6 * MINUTE);
    assert_eq!(book.prune(), vec![fp.clone()]);
    assert!(book.episodes.is_empty());
}

#[test]
fn a_restored_book_does_not_fire_again() {
    let mut book = Book::default();
    let t = targets();
    let f = firing(&["T-2"]);
    book.update(f.clone(), 0, &t, 5 * MINUTE, true);
    // What a restart restores is the book itself; the same alert firing
    // again is the same episode with the same start and what it still owes.
    let mut restored = book.clone();
    assert!(restored.update(f, 1_000, &t, 5 * MINUTE, true).is_empty());
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
    book.update(f, 0, &[], MINUTE, true);
    let c = book.firing_counts();
    assert_eq!(c[&("X".to_string(), "page".to_string())], 2);
    assert_eq!(c[&("X".to_string(), "warning".to_string())], 1);
}

#[test]
fn a_delivery_of_a_status_that_changed_meanwhile_leaves_the_new_one_owed() {
    let mut book = Book::default();
    let t = targets();
    let f = firing(&["T-3"]);
    let fp = f.keys().next().cloned().expect("one");
    book.update(f, 0, &t, 5 * MINUTE, true);
    // The webhook is sent the firing status; before it answers, the alert
    // resolves.
    let sent = book.episodes[&fp].revision();
    book.update(BTreeMap::new(), MINUTE, &t, 5 * MINUTE, true);
    assert!(!book.delivered(&fp, &t[1], sent, MINUTE + 1));
    assert!(
        book.episodes[&fp].pending.contains(&t[1]),
        "resolution still owed"
    );
    let resolved = book.episodes[&fp].revision();
    assert!(book.delivered(&fp, &t[1], resolved, MINUTE + 2));
    assert!(!book.episodes[&fp].pending.contains(&t[1]));
}

#[test]
fn a_book_behind_its_input_holds_but_keeps_resending_what_fires() {
    let mut book = Book::default();
    let t = targets();
    let a = firing(&["A"]);
    let fa = a.keys().next().cloned().expect("one");
    book.update(a.clone(), 0, &t, MINUTE, true);
    let rev = book.episodes[&fa].revision();
    book.delivered(&fa, &t[0], rev, 0);
    book.delivered(&fa, &t[1], rev, 0);
    // Behind: A vanished and B appeared in what the engine holds, but the
    // missing events may say otherwise. Nothing starts, nothing resolves.
    let b = firing(&["B"]);
    let changed = book.update(b.clone(), 30_000, &t, MINUTE, false);
    assert!(changed.is_empty());
    assert_eq!(book.episodes.len(), 1);
    assert_eq!(book.episodes[&fa].ends_at, None);
    // A keeps being re-sent to Alertmanager while held.
    let changed = book.update(b.clone(), MINUTE, &t, MINUTE, false);
    assert_eq!(changed.into_iter().collect::<Vec<_>>(), vec![fa.clone()]);
    let owed: Vec<&String> = book.episodes[&fa].pending.iter().collect();
    assert_eq!(owed, vec![&t[0]]);
    // Caught up: A resolves, B starts.
    let changed = book.update(b, MINUTE + 5_000, &t, MINUTE, true);
    assert_eq!(changed.len(), 2);
    assert_eq!(book.episodes[&fa].ends_at, Some(MINUTE + 5_000));
    assert_eq!(book.firing_counts().values().sum::<i64>(), 1);
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

mod alerter {
    //! The alert loop's evaluation on an injected clock: clock alerts wait
    //! until the engine has caught up with its input.

    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, RwLock};

    use crate::alert::deliver::Alerter;
    use crate::alert::Book;
    use crate::config;
    use crate::engine::Engine;
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, ManualClock, Millis, MINUTE};
    use crate::store::MemStore;

    const CONFIG: &str = r#"
[alerting]
alertmanager_urls = ["http://127.0.0.1:9"]
resend_interval = "1m"

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

    fn apply(e: &RwLock<Engine>, json: &str, now: Millis) {
        let mut e = e.write().expect("engine");
        e.apply(&decode(json.as_bytes()).expect("event"), now);
    }

    fn ticket(id: &str, action: &str, at: &str) -> String {
        format!(
            r#"{{"event_id":"{id}-{action}","kind":"ticket","occurred_at":"{at}","customer_id":"c","ticket_id":"{id}","action":"{action}","priority":"P1"}}"#
        )
    }

    /// (alertname, ticket_id, firing) of every ticket episode.
    fn tickets(book: &Book) -> Vec<(String, String, bool)> {
        book.episodes
            .values()
            .filter(|e| e.labels["alertname"].starts_with("Ticket"))
            .map(|e| {
                (
                    e.labels["alertname"].clone(),
                    e.labels["ticket_id"].clone(),
                    e.ends_at.is_none(),
                )
            })
            .collect()
    }

    #[test]
    fn clock_alerts_wait_until_the_engine_has_caught_up() {
        let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("valid");
        let engine = Arc::new(RwLock::new(Engine::new(&cfg)));
        let now = t("2026-11-16T11:01:00Z");
        let clock = Arc::new(ManualClock::new(now));
        apply(&engine, &ticket("A", "opened", "2026-11-16T10:00:00Z"), now);
        let caught_up = Arc::new(AtomicBool::new(false));
        let alerter = Alerter::open(
            &cfg,
            engine.clone(),
            Arc::new(MemStore::default()),
            clock.clone(),
            None,
            false,
            caught_up.clone(),
        )
        .expect("alerter");

        // After a start the engine has not seen the answer at 10:50 yet: A
        // looks breached, but nothing starts.
        alerter.evaluate().expect("evaluate");
        assert!(tickets(&alerter.book()).is_empty(), "paged while behind");
        apply(
            &engine,
            &ticket("A", "responded", "2026-11-16T10:50:00Z"),
            now,
        );
        caught_up.store(true, Ordering::SeqCst);
        clock.set(now + 5_000);
        alerter.evaluate().expect("evaluate");
        assert!(
            tickets(&alerter.book()).is_empty(),
            "an answered ticket paged"
        );

        // B breaches while the engine is caught up: it fires.
        apply(&engine, &ticket("B", "opened", "2026-11-16T10:00:30Z"), now);
        clock.set(now + MINUTE);
        alerter.evaluate().expect("evaluate");
        let fires = vec![("TicketSLABreached".to_string(), "B".to_string(), true)];
        assert_eq!(tickets(&alerter.book()), fires);
        let fp = alerter
            .book()
            .episodes
            .iter()
            .find(|(_, e)| e.labels.get("ticket_id").is_some_and(|id| id == "B"))
            .map(|(fp, _)| fp.clone())
            .expect("B");

        // The consumer falls behind (a broker outage). B is answered and C
        // opened meanwhile; the engine sees B's answer but, behind, neither
        // does B resolve nor does C's risk start; B keeps being re-sent.
        caught_up.store(false, Ordering::SeqCst);
        apply(
            &engine,
            &ticket("B", "responded", "2026-11-16T11:01:30Z"),
            now,
        );
        apply(&engine, &ticket("C", "opened", "2026-11-16T10:15:00Z"), now);
        clock.set(now + 3 * MINUTE);
        alerter.evaluate().expect("evaluate");
        let book = alerter.book();
        assert_eq!(tickets(&book), fires, "held while behind");
        assert!(
            book.episodes[&fp]
                .pending
                .contains("alertmanager:http://127.0.0.1:9"),
            "a firing episode is still owed to Alertmanager"
        );

        // Caught up again: B resolves, C's risk starts.
        caught_up.store(true, Ordering::SeqCst);
        clock.set(now + 3 * MINUTE + 5_000);
        alerter.evaluate().expect("evaluate");
        let mut got = tickets(&alerter.book());
        got.sort();
        assert_eq!(
            got,
            vec![
                ("TicketSLAAtRisk".to_string(), "C".to_string(), true),
                ("TicketSLABreached".to_string(), "B".to_string(), false),
            ]
        );
    }
}

mod links {
    //! Every link an annotation carries answers 200 through the router, with
    //! every query value percent-encoded.

    use std::path::Path;
    use std::sync::{Arc, RwLock};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::alert::evaluate;
    use crate::api::{self, AppState};
    use crate::config;
    use crate::engine::Engine;
    use crate::model::event::decode;
    use crate::model::time::{format_rfc3339, parse_rfc3339, ManualClock, MINUTE};

    const CONFIG: &str = r#"
[alerting]
per_customer_burn_alerts = true

[[slos]]
name = "avail"
indicator = "probe_availability"
objective = 0.999
window = "30d"

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
window = "month"
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }

[[slos]]
name = "ack"
indicator = "incident_ack"
objective = 0.99
window = "30d"
targets = { SEV1 = "15m", SEV2 = "30m", SEV3 = "4h", SEV4 = "1d" }
"#;

    #[tokio::test]
    async fn every_annotation_link_answers_and_its_values_are_encoded() {
        let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("valid");
        let now = parse_rfc3339("2026-11-16T12:00:00Z").expect("now");
        let mut e = Engine::new(&cfg);
        let at = |m: i64| format_rfc3339(now - m * MINUTE);
        let mut events = vec![
            format!(
                r#"{{"event_id":"t","kind":"ticket","occurred_at":"{}","customer_id":"a b/c","segment":"gold & co","timezone":"America/Argentina/Buenos_Aires","ticket_id":"T #1","action":"opened","priority":"P1"}}"#,
                at(120)
            ),
            format!(
                r#"{{"event_id":"i","kind":"incident","occurred_at":"{}","incident_id":"INC?1","action":"opened","severity":"SEV1","customer_ids":["50%off"]}}"#,
                at(120)
            ),
        ];
        for m in 1..=70 {
            events.push(format!(
                r#"{{"event_id":"p{m}","kind":"probe","occurred_at":"{}","customer_id":"a b/c","probe_id":"p","service":"api","success":false,"latency_ms":5}}"#,
                at(m)
            ));
        }
        for ev in &events {
            e.apply(&decode(ev.as_bytes()).expect("event"), now);
        }
        let base = "http://127.0.0.1:9464";
        let firing = evaluate(&e, now, &cfg.alerting, base);
        let names: std::collections::BTreeSet<&str> = firing
            .values()
            .map(|f| f.labels["alertname"].as_str())
            .collect();
        assert!(names.contains("SLOErrorBudgetBurn"), "{names:?}");
        assert!(names.contains("TicketSLABreached"), "{names:?}");
        let links: Vec<String> = firing
            .values()
            .map(|f| f.annotations.get("api").cloned().expect("a link"))
            .collect();
        assert!(
            links.iter().any(|l| l.contains("customer=50%25off")),
            "{links:?}"
        );
        assert!(
            links.iter().any(|l| l.contains("customer=a+b%2Fc")),
            "{links:?}"
        );
        assert!(
            links.iter().any(|l| l.contains("segment=gold+%26+co")),
            "{links:?}"
        );

        let router = api::router(AppState::with_state(
            Arc::new(RwLock::new(e)),
            Arc::new(crate::store::MemStore::default()),
            Arc::new(ManualClock::new(now)),
            String::new(),
            Arc::new(|_: &Engine, _| String::new()),
        ));
        for (f, link) in firing.values().zip(&links) {
            let uri = link.strip_prefix(base).expect("the API base");
            let resp = router
                .clone()
                .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
                .await
                .expect("router answers");
            let status = resp.status();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(status, StatusCode::OK, "{link}: {body:?}");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            // A breach link leads to the breach it announces.
            if f.labels["alertname"] == "TicketSLABreached" {
                let id = f
                    .labels
                    .get("ticket_id")
                    .or(f.labels.get("incident_id"))
                    .expect("an id");
                let list = v["breaches"].as_array().expect("breaches");
                assert!(list.iter().any(|b| b["id"] == id.as_str()), "{link}: {v}");
            }
        }
    }
}
