//! Hand-computed cases for SPEC §3 Definition versions and Time to
//! exhaustion: each unit judged by the terms in force for it.

use std::path::Path;

use super::query::{month_window, Scope};
use super::{Applied, Engine};
use crate::config;
use crate::model::event::decode;
use crate::model::time::{parse_rfc3339, Millis, DAY, HOUR, MINUTE};

/// Every clock runs 24x7 so elapsed times are plain differences. The terms
/// change at 2026-11-15T00:00Z.
const CONFIG: &str = r#"
[ingest]
max_lateness = "400d"

[alerting]
forecast_horizon = "3d"

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "UTC"

[[customers]]
id = "globex"
segment = "standard"
timezone = "UTC"

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
segment_objectives = { enterprise = 0.95 }
window = "month"
clock = "24x7"
targets = { P1 = "1h", P2 = "4h" }
segment_targets = { enterprise = { P1 = "30m" } }
[[slos.history]]
until = "2026-11-15T00:00:00Z"
objective = 0.8
segment_objectives = { enterprise = 0.85 }
targets = { P1 = "2h", P2 = "8h" }
segment_targets = { enterprise = { P1 = "1h" } }
change = "CR-1: tightened after the review"

[[slos]]
name = "latency"
indicator = "probe_latency"
threshold_ms = 300
objective = 0.9
window = "30d"
[[slos.history]]
until = "2026-11-15T00:00:00Z"
threshold_ms = 500
change = "CR-2"

[[slos]]
name = "ack"
indicator = "incident_ack"
objective = 0.99
window = "30d"
targets = { SEV1 = "15m" }
[[slos.history]]
until = "2026-11-15T00:00:00Z"
targets = { SEV1 = "30m" }
change = "CR-3"

[[slos]]
name = "api"
indicator = "probe_availability"
objective = 0.9
window = "30d"
filter = { service = "api" }

[[credits]]
slo = "response"
tiers = [ { below = 0.9, percent = 10 }, { below = 0.5, percent = 50 } ]
"#;

fn t(s: &str) -> Millis {
    parse_rfc3339(s).expect("test timestamp")
}

fn change() -> Millis {
    t("2026-11-15T00:00:00Z")
}

fn late_now() -> Millis {
    t("2027-01-20T00:00:00Z")
}

fn engine() -> Engine {
    let cfg = config::parse(CONFIG, &[], Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(&cfg)
}

fn feed(e: &mut Engine, lines: &[String]) {
    for l in lines {
        let ev = decode(l.as_bytes()).unwrap_or_else(|err| panic!("{l}: {err}"));
        assert_eq!(e.apply(&ev, late_now()), Applied::Accepted, "{l}");
    }
}

fn ticket(id: &str, customer: &str, action: &str, at: &str, priority: Option<&str>) -> String {
    let p = priority.map_or(String::new(), |p| format!(r#","priority":"{p}""#));
    format!(
        r#"{{"event_id":"{id}-{action}-{at}","kind":"ticket","occurred_at":"{at}","customer_id":"{customer}","ticket_id":"{id}","action":"{action}"{p}}}"#
    )
}

/// A ticket opened at `opened` (P1) and responded at `responded`.
fn answered(id: &str, customer: &str, opened: &str, responded: &str) -> Vec<String> {
    vec![
        ticket(id, customer, "opened", opened, Some("P1")),
        ticket(id, customer, "responded", responded, None),
    ]
}

fn probe(id: &str, customer: &str, at: &str, success: bool, latency: f64, service: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{at}","customer_id":"{customer}","probe_id":"p","service":"{service}","success":{success},"latency_ms":{latency}}}"#
    )
}

fn customer(e: &Engine, id: &str) -> Scope {
    Scope::Customer(e.customers().lookup(id).expect("known customer"))
}

/// (good, bad) of `slo` for a customer over [from, to) as of `now`.
fn counts(e: &Engine, slo: &str, who: &str, from: Millis, to: Millis, now: Millis) -> (f64, f64) {
    let n = e.numbers(e.slo_index(slo).unwrap(), &customer(e, who), from, to, now);
    (n.good, n.bad)
}

#[test]
fn a_probe_on_each_side_of_until_is_judged_by_its_own_threshold() {
    let mut e = engine();
    feed(
        &mut e,
        &[
            // 400 ms: within the old 500 ms, over the new 300 ms.
            probe(
                "p1",
                "globex",
                "2026-11-14T23:59:59.999Z",
                true,
                400.0,
                "web",
            ),
            probe("p2", "globex", "2026-11-15T00:00:00Z", true, 400.0, "web"),
            probe("p3", "globex", "2026-11-15T00:01:00Z", true, 250.0, "web"),
        ],
    );
    let day = |d: &str| t(d);
    assert_eq!(
        counts(
            &e,
            "latency",
            "globex",
            day("2026-11-14T00:00:00Z"),
            change(),
            late_now()
        ),
        (1.0, 0.0)
    );
    assert_eq!(
        counts(
            &e,
            "latency",
            "globex",
            change(),
            day("2026-11-16T00:00:00Z"),
            late_now()
        ),
        (1.0, 1.0)
    );
}

#[test]
fn a_ticket_on_each_side_of_until_gets_the_targets_it_was_opened_under() {
    let mut e = engine();
    let mut lines = Vec::new();
    // 90 minutes to respond: good under the old 2h, bad under the new 1h.
    lines.extend(answered(
        "old",
        "globex",
        "2026-11-14T20:00:00Z",
        "2026-11-14T21:30:00Z",
    ));
    lines.extend(answered(
        "new",
        "globex",
        "2026-11-15T20:00:00Z",
        "2026-11-15T21:30:00Z",
    ));
    // Opened under the old terms, stopped under the new ones: 1h45 elapsed,
    // judged by the old 2h target.
    lines.extend(answered(
        "across",
        "globex",
        "2026-11-14T23:00:00Z",
        "2026-11-15T00:45:00Z",
    ));
    // segment_targets in history: enterprise P1 was 1h, is 30m; 50 minutes.
    lines.extend(answered(
        "ent-old",
        "acme",
        "2026-11-14T10:00:00Z",
        "2026-11-14T10:50:00Z",
    ));
    lines.extend(answered(
        "ent-new",
        "acme",
        "2026-11-15T10:00:00Z",
        "2026-11-15T10:50:00Z",
    ));
    feed(&mut e, &lines);
    let (nov1, dec1) = month_window(2026, 11, &jiff::tz::TimeZone::UTC).unwrap();
    assert_eq!(
        counts(&e, "response", "globex", nov1, change(), late_now()),
        (1.0, 0.0)
    );
    // `across` counts at its stop, after the change, as good.
    assert_eq!(
        counts(&e, "response", "globex", change(), dec1, late_now()),
        (1.0, 1.0)
    );
    assert_eq!(
        counts(&e, "response", "acme", nov1, change(), late_now()),
        (1.0, 0.0)
    );
    assert_eq!(
        counts(&e, "response", "acme", change(), dec1, late_now()),
        (0.0, 1.0)
    );
    let breaches = e.breaches(e.slo_index("response"), None, late_now());
    let list: Vec<(&str, f64)> = breaches
        .iter()
        .map(|b| (b.id.as_str(), b.target_seconds))
        .collect();
    assert_eq!(list, [("ent-new", 1800.0), ("new", 3600.0)]);
}

#[test]
fn a_running_clock_breaches_by_the_target_it_was_opened_under() {
    let mut e = engine();
    // Enterprise P1 opened at 23:30 under the old 1h: breach at 00:30, not
    // at 00:00 as the new 30m would say.
    feed(
        &mut e,
        &[ticket(
            "run",
            "acme",
            "opened",
            "2026-11-14T23:30:00Z",
            Some("P1"),
        )],
    );
    let s = e.slo_index("response").unwrap();
    let now = t("2026-11-15T00:20:00Z");
    assert!(e.breaches(Some(s), None, now).is_empty());
    let later = t("2026-11-15T00:31:00Z");
    let b = e.breaches(Some(s), None, later);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].breached_at, t("2026-11-15T00:30:00Z"));
    assert_eq!(b[0].target_seconds, 3600.0);
    let open = e.open_clocks(now, 0.75);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].target, HOUR);
    // 50 of 60 minutes: at risk, not breached.
    assert_eq!(open[0].state, super::query::ClockState::AtRisk);
}

#[test]
fn an_incident_clock_gets_the_targets_of_its_opening() {
    let mut e = engine();
    let inc = |id: &str, action: &str, at: &str, extra: &str| {
        format!(
            r#"{{"event_id":"{id}-{action}","kind":"incident","occurred_at":"{at}","incident_id":"{id}","action":"{action}"{extra}}}"#
        )
    };
    let open = r#","severity":"SEV1","customer_ids":["globex"]"#;
    feed(
        &mut e,
        &[
            // 20 minutes: within the old 30m, over the new 15m.
            inc("i-old", "opened", "2026-11-14T23:50:00Z", open),
            inc("i-old", "acknowledged", "2026-11-15T00:10:00Z", ""),
            inc("i-new", "opened", "2026-11-15T01:00:00Z", open),
            inc("i-new", "acknowledged", "2026-11-15T01:20:00Z", ""),
        ],
    );
    assert_eq!(
        counts(
            &e,
            "ack",
            "globex",
            change(),
            t("2026-11-16T00:00:00Z"),
            late_now()
        ),
        (1.0, 1.0)
    );
}

#[test]
fn a_month_is_judged_by_the_objective_in_force_at_its_last_counted_instant() {
    let e = engine();
    let s = e.slo_index("response").unwrap();
    let (nov1, dec1) = month_window(2026, 11, &jiff::tz::TimeZone::UTC).unwrap();
    let all = Scope::Filter {
        segment: None,
        timezone: None,
    };
    let ent = Scope::Filter {
        segment: Some("enterprise".into()),
        timezone: None,
    };
    // November as of the 14th: its last counted instant is under the old terms.
    let mid = t("2026-11-14T12:00:00Z");
    assert_eq!(e.numbers(s, &all, nov1, dec1, mid).objective, 0.8);
    assert_eq!(e.numbers(s, &ent, nov1, dec1, mid).objective, 0.85);
    // As of the 15th at 00:00 exactly, the last counted instant is the 14th's last millisecond.
    assert_eq!(e.numbers(s, &all, nov1, dec1, change()).objective, 0.8);
    assert_eq!(e.numbers(s, &all, nov1, dec1, change() + 1).objective, 0.9);
    // The whole month, read later: the terms of its end.
    assert_eq!(e.numbers(s, &ent, nov1, dec1, late_now()).objective, 0.95);
    // A window ending at the change stays under the old terms.
    assert_eq!(
        e.numbers(s, &all, nov1, change(), late_now()).objective,
        0.8
    );
    // Burn rates use the objective in force at now.
    assert_eq!(e.objective_at(s, &all, mid), 0.8);
    assert_eq!(e.objective_at(s, &all, change()), 0.9);
}

#[test]
fn report_months_before_and_after_a_change_keep_their_own_terms() {
    let mut e = engine();
    let mut lines = Vec::new();
    // October and December alike: 8 of 10 answered within 30 minutes, 2
    // after 3 hours (bad under either P1 target).
    for (month, day) in [("10", "05"), ("12", "07")] {
        for i in 0..10 {
            let opened = format!("2026-{month}-{day}T{:02}:00:00Z", i + 1);
            let late = if i < 8 { "00:30" } else { "03:00" };
            let (h, m) = late.split_once(':').unwrap();
            let responded = format!(
                "2026-{month}-{day}T{:02}:{m}:00Z",
                i + 1 + h.parse::<usize>().unwrap()
            );
            lines.extend(answered(
                &format!("{month}-{i}"),
                "globex",
                &opened,
                &responded,
            ));
        }
    }
    feed(&mut e, &lines);
    let s = e.slo_index("response").unwrap();
    let scope = customer(&e, "globex");
    let utc = jiff::tz::TimeZone::UTC;
    let (o1, o2) = month_window(2026, 10, &utc).unwrap();
    let oct = e.numbers(s, &scope, o1, o2, late_now());
    assert_eq!(
        (oct.total, oct.good, oct.attainment),
        (10.0, 8.0, Some(0.8))
    );
    assert_eq!((oct.objective, oct.status), (0.8, "met"));
    assert!((oct.allowed_bad - 2.0).abs() < 1e-9, "{}", oct.allowed_bad);
    assert_eq!(e.credit_percent(s, oct.attainment), 10.0);
    let (d1, d2) = month_window(2026, 12, &utc).unwrap();
    let dec = e.numbers(s, &scope, d1, d2, late_now());
    assert_eq!(
        (dec.total, dec.good, dec.attainment),
        (10.0, 8.0, Some(0.8))
    );
    assert_eq!((dec.objective, dec.status), (0.9, "breached"));
    assert!((dec.allowed_bad - 1.0).abs() < 1e-9);
    assert!((dec.budget_remaining.unwrap() + 1.0).abs() < 1e-9);
    assert_eq!(e.credit_percent(s, dec.attainment), 10.0);
}

/// 900 good probes ten days before `m`, then 100 in minute `m` of which
/// `bad` fail.
fn burning(e: &mut Engine, m: Millis, bad: usize) {
    let at = |x: Millis| crate::model::time::format_rfc3339(x);
    let mut lines = Vec::new();
    for i in 0..900 {
        lines.push(probe(
            &format!("g{i}"),
            "globex",
            &at(m - 10 * DAY),
            true,
            10.0,
            "api",
        ));
    }
    for i in 0..100 {
        lines.push(probe(
            &format!("b{i}"),
            "globex",
            &at(m),
            i >= bad,
            10.0,
            "api",
        ));
    }
    feed(e, &lines);
}

#[test]
fn time_to_exhaustion_follows_the_formula() {
    let mut e = engine();
    let m = t("2026-11-20T12:00:00Z");
    burning(&mut e, m, 60);
    let s = e.slo_index("api").unwrap();
    let scope = customer(&e, "globex");
    let utc = jiff::tz::TimeZone::UTC;
    let now = m + HOUR;
    // burn(6h) = (60/100) / 0.1 = 6; budget: 60 bad of 100 allowed, 0.4
    // left; 0.4 * 30 d / 6 = 2 d.
    assert!((e.burn_rate(s, &scope, 6 * HOUR, now) - 6.0).abs() < 1e-9);
    let secs = e.exhaustion_seconds(s, &scope, &utc, now).unwrap();
    assert!((secs - 2.0 * 86_400.0).abs() < 1e-6, "{secs}");
    // The bad minute leaves the 6h lookback: nothing burns, no forecast.
    assert!(e
        .exhaustion_seconds(s, &scope, &utc, m + 6 * HOUR - MINUTE)
        .is_some());
    assert_eq!(e.exhaustion_seconds(s, &scope, &utc, m + 6 * HOUR), None);
    // No data at all: none.
    let other = customer(&e, "acme");
    assert_eq!(e.exhaustion_seconds(s, &other, &utc, now), None);
    // Spent budget: 0.
    let mut spent = engine();
    burning(&mut spent, m, 100);
    let secs = spent
        .exhaustion_seconds(s, &customer(&spent, "globex"), &utc, now)
        .unwrap();
    assert_eq!(secs, 0.0);
}

#[test]
fn a_month_window_forecasts_over_the_length_of_its_month() {
    let mut e = engine();
    let m = t("2026-11-20T12:00:00Z");
    // response is a month SLO: one bad ticket (breached at its stop) and
    // nine good ones in the last 6 hours.
    let mut lines = Vec::new();
    for i in 0..10 {
        let responded = if i == 0 { "11:00" } else { "09:10" };
        lines.extend(answered(
            &format!("f{i}"),
            "globex",
            "2026-11-20T09:00:00Z",
            &format!("2026-11-20T{responded}:00Z"),
        ));
    }
    feed(&mut e, &lines);
    let s = e.slo_index("response").unwrap();
    let scope = customer(&e, "globex");
    let utc = jiff::tz::TimeZone::UTC;
    let now = m;
    // burn(6h) = (1/10)/0.1 = 1; remaining = 1 - 1/1 = 0 → spent.
    assert_eq!(e.exhaustion_seconds(s, &scope, &utc, now), Some(0.0));
    lines = Vec::new();
    for i in 10..20 {
        lines.extend(answered(
            &format!("f{i}"),
            "globex",
            "2026-11-20T09:00:00Z",
            "2026-11-20T09:10:00Z",
        ));
    }
    feed(&mut e, &lines);
    // 20 tickets, 1 bad, allowed 2: remaining 0.5; burn(6h) = (1/20)/0.1 =
    // 0.5; November has 30 days: 0.5 * 30 d / 0.5 = 30 d.
    let secs = e.exhaustion_seconds(s, &scope, &utc, now).unwrap();
    assert!((secs - 30.0 * 86_400.0).abs() < 1e-6, "{secs}");
}
