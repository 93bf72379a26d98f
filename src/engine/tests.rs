//! Hand-computed cases for every rule of SPEC §3, through the engine's public
//! surface: events in, numbers out.

use std::path::Path;

use super::query::{month_window, Scope};
use super::{Applied, Engine};
use crate::config;
use crate::model::event::decode;
use crate::model::time::{parse_rfc3339, Millis};

const CONFIG: &str = r#"
[ingest]
max_lateness = "7d"

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"
calendar = "eu"

[[customers]]
id = "globex"
segment = "standard"
timezone = "Europe/Berlin"
calendar = "allday"

[[customers]]
id = "initech"
segment = "standard"
timezone = "America/New_York"
calendar = "eu"

[[customers]]
id = "nightco"
segment = "standard"
timezone = "Europe/Berlin"
calendar = "night"

[[customers]]
id = "kolkata"
segment = "business"
timezone = "Asia/Kolkata"

[[customers]]
id = "kathmandu"
segment = "business"
timezone = "Asia/Kathmandu"

[[customers]]
id = "sydney"
segment = "business"
timezone = "Australia/Sydney"
calendar = "allday"

[calendars.eu]
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
holidays = ["2026-12-24", "2026-12-25"]

[calendars.allday]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]

[calendars.night]
mon = ["22:00-24:00"]
tue = ["00:00-06:00"]

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
window = "month"
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }

[[slos]]
name = "resolution"
indicator = "ticket_resolution"
objective = 0.9
window = "month"
targets = { P1 = "4h", P2 = "1d", P3 = "3d", P4 = "5d" }

[[slos]]
name = "avail"
indicator = "incident_availability"
objective = 0.999
window = "month"

[[slos]]
name = "ack"
indicator = "incident_ack"
objective = 0.99
window = "30d"
targets = { SEV1 = "15m", SEV2 = "30m", SEV3 = "4h", SEV4 = "1d" }

[[slos]]
name = "api"
indicator = "probe_availability"
objective = 0.99
window = "30d"
filter = { service = "api" }

[[exclusions]]
name = "maintenance"
from = "2026-11-16T10:30:00Z"
to = "2026-11-16T11:30:00Z"
slos = ["avail"]
customers = ["acme"]
"#;

fn t(s: &str) -> Millis {
    parse_rfc3339(s).expect("test timestamp")
}

/// Far after every test event: all breach instants have passed.
fn late_now() -> Millis {
    t("2027-06-01T00:00:00Z")
}

fn engine() -> Engine {
    let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("test config is valid");
    Engine::new(&cfg)
}

fn feed(e: &mut Engine, lines: &[String]) -> Vec<Applied> {
    lines
        .iter()
        .map(|l| {
            let ev = decode(l.as_bytes()).unwrap_or_else(|err| panic!("{l}: {err}"));
            e.apply(&ev, late_now())
        })
        .collect()
}

fn ticket(
    id: &str,
    at: &str,
    ticket: &str,
    customer: &str,
    action: &str,
    priority: Option<&str>,
) -> String {
    let p = priority
        .map(|p| format!(r#","priority":"{p}""#))
        .unwrap_or_default();
    format!(
        r#"{{"event_id":"{id}","kind":"ticket","occurred_at":"{at}","customer_id":"{customer}","ticket_id":"{ticket}","action":"{action}"{p}}}"#
    )
}

fn incident(id: &str, at: &str, incident: &str, action: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","kind":"incident","occurred_at":"{at}","incident_id":"{incident}","action":"{action}"{extra}}}"#
    )
}

fn probe(id: &str, at: &str, customer: &str, success: bool) -> String {
    format!(
        r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{at}","customer_id":"{customer}","probe_id":"p","service":"api","success":{success},"latency_ms":12}}"#
    )
}

fn customer(e: &Engine, id: &str) -> Scope {
    Scope::Customer(e.customers().lookup(id).expect("known customer"))
}

/// (total, good) of `slo` for `scope` over [from, to) at `late_now`.
fn counts(e: &Engine, slo: &str, scope: &Scope, from: &str, to: &str) -> (f64, f64) {
    let n = e.numbers(
        e.slo_index(slo).expect("slo"),
        scope,
        t(from),
        t(to),
        late_now(),
    );
    (n.total, n.good)
}

fn breach_of(e: &Engine, slo: &str, id: &str) -> Option<(Millis, Option<Millis>)> {
    e.breaches(e.slo_index(slo), None, late_now())
        .into_iter()
        .find(|b| b.id == id)
        .map(|b| (b.breached_at, b.stopped_at))
}

#[test]
fn ticket_across_a_weekend_on_nine_to_five() {
    // Opened Friday 15:00 Berlin (14:00Z), P2 = 4h: Fri 15-17 (2h) + Mon 9-11 (2h).
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-06T14:00:00Z",
                "T1",
                "acme",
                "opened",
                Some("P2"),
            ),
            ticket("2", "2026-11-09T10:00:00Z", "T1", "acme", "responded", None),
            ticket(
                "3",
                "2026-11-06T14:00:00Z",
                "T2",
                "acme",
                "opened",
                Some("P2"),
            ),
            ticket(
                "4",
                "2026-11-09T10:00:00.001Z",
                "T2",
                "acme",
                "responded",
                None,
            ),
        ],
    );
    let acme = customer(&e, "acme");
    assert_eq!(
        counts(
            &e,
            "response",
            &acme,
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z"
        ),
        (2.0, 1.0)
    );
    // T2 used 4h plus 1 ms: it breached when the 4h ran out, Monday 11:00 local.
    assert_eq!(
        breach_of(&e, "response", "T2"),
        Some((
            t("2026-11-09T10:00:00Z"),
            Some(t("2026-11-09T10:00:00.001Z"))
        ))
    );
    assert_eq!(breach_of(&e, "response", "T1"), None);
}

#[test]
fn target_used_up_at_closing_time_breaches_next_business_morning() {
    // P1 = 1h from Friday 16:00 local: used up exactly at 17:00, so the breach
    // instant is Monday 09:00 local; a response at 18:00 Friday is on time.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-06T15:00:00Z",
                "T1",
                "acme",
                "opened",
                Some("P1"),
            ),
            ticket("2", "2026-11-06T17:00:00Z", "T1", "acme", "responded", None),
            ticket(
                "3",
                "2026-11-06T15:00:00Z",
                "T2",
                "acme",
                "opened",
                Some("P1"),
            ),
        ],
    );
    let acme = customer(&e, "acme");
    assert_eq!(
        counts(
            &e,
            "response",
            &acme,
            "2026-11-06T00:00:00Z",
            "2026-11-07T00:00:00Z"
        ),
        (1.0, 1.0)
    );
    assert_eq!(
        breach_of(&e, "response", "T2"),
        Some((t("2026-11-09T08:00:00Z"), None))
    );
    // The running ticket counts as bad at its breach instant once now passed it.
    assert_eq!(
        counts(
            &e,
            "response",
            &acme,
            "2026-11-09T08:00:00Z",
            "2026-11-09T08:01:00Z"
        ),
        (1.0, 0.0)
    );
    let s = e.slo_index("response").expect("slo");
    let before = e.numbers(
        s,
        &acme,
        t("2026-11-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
        t("2026-11-09T08:00:00Z"),
    );
    assert_eq!(
        before.total, 1.0,
        "not yet counted at exactly the breach instant"
    );
}

#[test]
fn eu_spring_forward_and_fall_back_days_on_an_all_day_calendar() {
    // Local midnight to local midnight: 23 h on 2026-03-29, 25 h on 2026-10-25.
    // Resolution P2 = 1d.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-03-28T23:00:00Z",
                "S",
                "globex",
                "opened",
                Some("P2"),
            ),
            ticket("2", "2026-03-29T22:00:00Z", "S", "globex", "resolved", None),
            ticket(
                "3",
                "2026-10-24T22:00:00Z",
                "F",
                "globex",
                "opened",
                Some("P2"),
            ),
            ticket("4", "2026-10-25T23:00:00Z", "F", "globex", "resolved", None),
        ],
    );
    let g = customer(&e, "globex");
    assert_eq!(
        counts(
            &e,
            "resolution",
            &g,
            "2026-03-01T00:00:00Z",
            "2026-04-01T00:00:00Z"
        ),
        (1.0, 1.0)
    );
    assert_eq!(
        counts(
            &e,
            "resolution",
            &g,
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z"
        ),
        (1.0, 0.0)
    );
    // 24 h of business time after local midnight of the 25-hour day: 23:00 local CET.
    assert_eq!(
        breach_of(&e, "resolution", "F"),
        Some((t("2026-10-25T22:00:00Z"), Some(t("2026-10-25T23:00:00Z"))))
    );
}

#[test]
fn eu_business_calendar_across_the_offset_change() {
    // Friday 2026-03-27 16:00 CET (15:00Z) to Monday 2026-03-30 10:00 CEST (08:00Z): 1h + 1h.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-03-27T15:00:00Z",
                "T",
                "acme",
                "opened",
                Some("P2"),
            ),
            ticket("2", "2026-03-30T08:00:00Z", "T", "acme", "resolved", None),
        ],
    );
    let s = e.slo_index("resolution").expect("slo");
    let tl = super::clock::ticket_timeline(&e.tickets.list[0].events).expect("opened");
    let c = e.customers().lookup("acme").expect("acme");
    let elapsed = super::clock::elapsed_at(
        &tl.resolution,
        &e.exclusion_spans(s, c),
        &e.customers().get(c).calendar,
        late_now(),
    );
    assert_eq!(elapsed, 2 * crate::model::time::HOUR);
}

#[test]
fn us_dst_change_moves_the_breach_instant() {
    // initech: 9-17 New York. Opened Fri 2026-03-06 16:00 EST (21:00Z), P2 = 4h:
    // 1h on Friday, 3h on Monday 2026-03-09 from 09:00 EDT (13:00Z) -> 12:00 EDT = 16:00Z.
    let mut e = engine();
    feed(
        &mut e,
        &[ticket(
            "1",
            "2026-03-06T21:00:00Z",
            "T",
            "initech",
            "opened",
            Some("P2"),
        )],
    );
    assert_eq!(
        breach_of(&e, "response", "T"),
        Some((t("2026-03-09T16:00:00Z"), None))
    );
}

#[test]
fn australian_fall_back_day_has_25_hours() {
    // Sydney local 2026-04-05 00:00 AEDT (04-04T13:00Z) to 2026-04-06 00:00 AEST (04-05T14:00Z).
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-04-04T13:00:00Z",
                "T",
                "sydney",
                "opened",
                Some("P2"),
            ),
            ticket("2", "2026-04-05T14:00:00Z", "T", "sydney", "resolved", None),
        ],
    );
    assert_eq!(
        breach_of(&e, "resolution", "T"),
        Some((t("2026-04-05T13:00:00Z"), Some(t("2026-04-05T14:00:00Z"))))
    );
}

#[test]
fn overnight_shift_as_two_intervals() {
    // nightco: Mon 22-24 + Tue 00-06 Berlin. Opened Mon 2026-11-02 23:00 local (22:00Z),
    // P1 = 1h runs out at Tue 00:00 local (23:00Z) without a gap at midnight.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-02T22:00:00Z",
                "T",
                "nightco",
                "opened",
                Some("P1"),
            ),
            ticket(
                "2",
                "2026-11-02T23:30:00Z",
                "T",
                "nightco",
                "responded",
                None,
            ),
        ],
    );
    assert_eq!(
        breach_of(&e, "response", "T"),
        Some((t("2026-11-02T23:00:00Z"), Some(t("2026-11-02T23:30:00Z"))))
    );
}

#[test]
fn ticket_opened_on_a_holiday() {
    // Thu 2026-12-24 and Fri 12-25 are holidays: P1 = 1h runs Mon 12-28 09:00-10:00 local.
    let mut e = engine();
    feed(
        &mut e,
        &[ticket(
            "1",
            "2026-12-24T09:00:00Z",
            "T",
            "acme",
            "opened",
            Some("P1"),
        )],
    );
    assert_eq!(
        breach_of(&e, "response", "T"),
        Some((t("2026-12-28T09:00:00Z"), None))
    );
    let acme = customer(&e, "acme");
    assert_eq!(
        counts(
            &e,
            "response",
            &acme,
            "2026-12-28T09:00:00Z",
            "2026-12-28T09:01:00Z"
        ),
        (1.0, 0.0)
    );
}

#[test]
fn month_boundaries_of_half_and_quarter_hour_zones() {
    // Asia/Kolkata (+05:30): November starts at 2026-10-31T18:30Z.
    // Asia/Kathmandu (+05:45): at 2026-10-31T18:15Z.
    let kolkata = jiff::tz::TimeZone::get("Asia/Kolkata").expect("zone");
    let kathmandu = jiff::tz::TimeZone::get("Asia/Kathmandu").expect("zone");
    assert_eq!(
        month_window(2026, 11, &kolkata),
        Some((t("2026-10-31T18:30:00Z"), t("2026-11-30T18:30:00Z")))
    );
    assert_eq!(
        month_window(2026, 11, &kathmandu),
        Some((t("2026-10-31T18:15:00Z"), t("2026-11-30T18:15:00Z")))
    );
    let mut e = engine();
    feed(
        &mut e,
        &[
            probe("1", "2026-10-31T18:29:59.999Z", "kolkata", true),
            probe("2", "2026-10-31T18:30:00Z", "kolkata", false),
            probe("3", "2026-10-31T18:14:59.999Z", "kathmandu", true),
            probe("4", "2026-10-31T18:15:00Z", "kathmandu", false),
        ],
    );
    let (from, to) = month_window(2026, 11, &kolkata).expect("month");
    let s = e.slo_index("api").expect("slo");
    let n = e.numbers(s, &customer(&e, "kolkata"), from, to, late_now());
    assert_eq!((n.total, n.good), (1.0, 0.0));
    let (from, to) = month_window(2026, 11, &kathmandu).expect("month");
    let n = e.numbers(s, &customer(&e, "kathmandu"), from, to, late_now());
    assert_eq!((n.total, n.good), (1.0, 0.0));
}

#[test]
fn pause_spanning_a_weekend() {
    // Resolution P1 = 4h, pausable. Fri 14-16 local runs (2h), paused until
    // Mon 10:00, Mon 10-12 runs (2h): exactly 4h, on time. Without the pause
    // it would be 3h + 3h.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-06T13:00:00Z",
                "T",
                "acme",
                "opened",
                Some("P1"),
            ),
            ticket("2", "2026-11-06T15:00:00Z", "T", "acme", "paused", None),
            ticket("3", "2026-11-09T09:00:00Z", "T", "acme", "resumed", None),
            ticket("4", "2026-11-09T11:00:00Z", "T", "acme", "resolved", None),
        ],
    );
    let acme = customer(&e, "acme");
    assert_eq!(
        counts(
            &e,
            "resolution",
            &acme,
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z"
        ),
        (1.0, 1.0)
    );
}

#[test]
fn reopen_moves_the_outcome_to_the_final_resolve() {
    let mut e = engine();
    let acme_day = |e: &Engine, from: &str, to: &str| {
        counts(e, "resolution", &customer(e, "globex"), from, to)
    };
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-02T10:00:00Z",
                "T",
                "globex",
                "opened",
                Some("P3"),
            ),
            ticket("2", "2026-11-02T12:00:00Z", "T", "globex", "resolved", None),
        ],
    );
    assert_eq!(
        acme_day(&e, "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"),
        (1.0, 1.0)
    );
    feed(
        &mut e,
        &[ticket(
            "3",
            "2026-11-04T12:00:00Z",
            "T",
            "globex",
            "reopened",
            None,
        )],
    );
    // Withdrawn; running with 2h used of 3d: breach at 11-07T10:00Z, counted bad there.
    assert_eq!(
        acme_day(&e, "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"),
        (0.0, 0.0)
    );
    assert_eq!(
        breach_of(&e, "resolution", "T"),
        Some((t("2026-11-07T10:00:00Z"), None))
    );
    feed(
        &mut e,
        &[ticket(
            "4",
            "2026-11-05T12:00:00Z",
            "T",
            "globex",
            "resolved",
            None,
        )],
    );
    // 2h + 24h = 26h <= 3d: good, counted at the final resolve.
    assert_eq!(
        acme_day(&e, "2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z"),
        (1.0, 1.0)
    );
    assert_eq!(
        acme_day(&e, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        (1.0, 1.0)
    );
    assert_eq!(breach_of(&e, "resolution", "T"), None);
}

#[test]
fn priority_raised_after_the_new_target_already_passed() {
    // P3 opened 10:00Z (24x7-like calendar), raised to P1 at 12:00Z: P1's 1h
    // target applies retroactively from opened, so it breached at 11:00Z.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-02T10:00:00Z",
                "T",
                "globex",
                "opened",
                Some("P3"),
            ),
            ticket(
                "2",
                "2026-11-02T12:00:00Z",
                "T",
                "globex",
                "priority_changed",
                Some("P1"),
            ),
            ticket(
                "3",
                "2026-11-02T13:00:00Z",
                "T",
                "globex",
                "responded",
                None,
            ),
        ],
    );
    assert_eq!(
        breach_of(&e, "response", "T"),
        Some((t("2026-11-02T11:00:00Z"), Some(t("2026-11-02T13:00:00Z"))))
    );
    let b = e.breaches(e.slo_index("response"), None, late_now());
    assert_eq!(b[0].priority, Some("P1"));
    assert_eq!(b[0].elapsed_seconds, 3.0 * 3600.0);
}

#[test]
fn priority_lowered_after_a_breach_clears_it() {
    // P1 opened 10:00Z breaches at 11:00Z; lowered to P3 (8h) at 12:00Z while
    // running: re-evaluated against 8h, the 13:00Z response is on time.
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-02T10:00:00Z",
                "T",
                "globex",
                "opened",
                Some("P1"),
            ),
            ticket(
                "2",
                "2026-11-02T12:00:00Z",
                "T",
                "globex",
                "priority_changed",
                Some("P3"),
            ),
        ],
    );
    assert_eq!(
        breach_of(&e, "response", "T"),
        Some((t("2026-11-02T18:00:00Z"), None))
    );
    feed(
        &mut e,
        &[ticket(
            "3",
            "2026-11-02T13:00:00Z",
            "T",
            "globex",
            "responded",
            None,
        )],
    );
    assert_eq!(breach_of(&e, "response", "T"), None);
    // A change after the stop does not touch the stopped clock.
    feed(
        &mut e,
        &[ticket(
            "4",
            "2026-11-02T14:00:00Z",
            "T",
            "globex",
            "priority_changed",
            Some("P1"),
        )],
    );
    assert_eq!(breach_of(&e, "response", "T"), None);
}

#[test]
fn cancel_withdraws_the_ticket_from_every_window() {
    let mut e = engine();
    feed(
        &mut e,
        &[
            ticket(
                "1",
                "2026-11-02T10:00:00Z",
                "T",
                "globex",
                "opened",
                Some("P1"),
            ),
            ticket(
                "2",
                "2026-11-02T13:00:00Z",
                "T",
                "globex",
                "responded",
                None,
            ),
        ],
    );
    assert!(breach_of(&e, "response", "T").is_some());
    feed(
        &mut e,
        &[
            ticket("3", "2026-11-03T10:00:00Z", "T", "globex", "canceled", None),
            // Events after the cancel are ignored.
            ticket("4", "2026-11-03T11:00:00Z", "T", "globex", "reopened", None),
        ],
    );
    assert!(breach_of(&e, "response", "T").is_none());
    assert_eq!(
        counts(
            &e,
            "response",
            &customer(&e, "globex"),
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z"
        ),
        (0.0, 0.0)
    );
}

#[test]
fn overlapping_incidents_planned_incident_and_exclusion() {
    // acme: SEV1 [10:00, 11:00) and SEV2 [10:30, 12:00) overlap: 2h down.
    // A SEV3 and a planned SEV1 do not count. Exclusion [10:30, 11:30) for acme.
    let mut e = engine();
    feed(
        &mut e,
        &[
            incident(
                "1",
                "2026-11-16T10:00:00Z",
                "A",
                "opened",
                r#","severity":"SEV1","customer_ids":["acme","globex"]"#,
            ),
            incident("2", "2026-11-16T11:00:00Z", "A", "mitigated", ""),
            incident(
                "3",
                "2026-11-16T10:30:00Z",
                "B",
                "opened",
                r#","severity":"SEV2","customer_ids":["acme"]"#,
            ),
            incident("4", "2026-11-16T12:00:00Z", "B", "resolved", ""),
            incident(
                "5",
                "2026-11-16T12:00:00Z",
                "C",
                "opened",
                r#","severity":"SEV3","customer_ids":["acme"]"#,
            ),
            incident("6", "2026-11-16T13:00:00Z", "C", "resolved", ""),
            incident(
                "7",
                "2026-11-16T13:00:00Z",
                "P",
                "opened",
                r#","severity":"SEV1","customer_ids":["acme"],"planned":true"#,
            ),
            incident("8", "2026-11-16T13:30:00Z", "P", "resolved", ""),
        ],
    );
    let s = e.slo_index("avail").expect("slo");
    let from = t("2026-11-16T10:00:00Z");
    let to = t("2026-11-16T14:00:00Z");
    // acme: total 4h - 1h excluded = 10800 s; down 2h minus the excluded hour = 3600 s.
    let n = e.numbers(s, &customer(&e, "acme"), from, to, late_now());
    assert_eq!(
        (n.total, n.good, n.bad, n.excluded_seconds),
        (10800.0, 7200.0, 3600.0, 3600.0)
    );
    // globex: down [10:00, 11:00) only, no exclusion.
    let n = e.numbers(s, &customer(&e, "globex"), from, to, late_now());
    assert_eq!((n.total, n.bad, n.excluded_seconds), (14400.0, 3600.0, 0.0));
    // All scope: every known customer contributes its whole window.
    let all = Scope::Filter {
        segment: None,
        timezone: None,
    };
    let n = e.numbers(s, &all, from, to, late_now());
    let known = e.customers().len() as f64;
    assert_eq!(n.total, known * 14400.0 - 3600.0);
    assert_eq!(n.bad, 7200.0);
    // Time after now does not count.
    let n = e.numbers(
        s,
        &customer(&e, "globex"),
        from,
        to,
        t("2026-11-16T10:30:00Z"),
    );
    assert_eq!((n.total, n.bad), (1800.0, 1800.0));
    // Ack: A and B are never acknowledged before mitigation/resolution:
    // A stops at 11:00 (60m > 15m), B at 12:00 (90m > 30m); planned P is not counted.
    let ack = e.slo_index("ack").expect("slo");
    let n = e.numbers(ack, &customer(&e, "acme"), from, to, late_now());
    assert_eq!((n.total, n.good), (3.0, 1.0), "A, B bad; C (SEV3, 4h) good");
}

#[test]
fn duplicates_late_and_future_events() {
    let mut e = engine();
    let r = feed(
        &mut e,
        &[
            probe("1", "2026-11-20T10:00:00Z", "acme", true),
            probe("1", "2026-11-20T10:05:00Z", "acme", false),
            probe("2", "2026-11-12T09:59:59.999Z", "acme", true),
            probe("3", "2026-11-13T10:00:00Z", "acme", false),
        ],
    );
    assert_eq!(
        r,
        vec![
            Applied::Accepted,
            Applied::Duplicate,
            Applied::Late,
            Applied::Accepted
        ]
    );
    let line = probe("4", "2026-11-20T10:06:00Z", "acme", true);
    let ev = decode(line.as_bytes()).expect("valid");
    assert!(matches!(
        e.apply(&ev, t("2026-11-20T10:00:00Z")),
        Applied::Invalid(_)
    ));
    let acme = customer(&e, "acme");
    assert_eq!(
        counts(
            &e,
            "api",
            &acme,
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z"
        ),
        (2.0, 1.0)
    );
}

#[test]
fn numbers_follow_the_spec_formulas() {
    use super::query::Numbers;
    let n = Numbers::compute(0.9, 120.0, 111.0, 0.0);
    assert_eq!(n.bad, 9.0);
    assert!((n.allowed_bad - 12.0).abs() < 1e-9);
    assert!((n.budget_consumed.expect("some") - 0.75).abs() < 1e-9);
    assert!((n.budget_remaining.expect("some") - 0.25).abs() < 1e-9);
    assert_eq!(n.status, "met");
    let none = Numbers::compute(0.9, 0.0, 0.0, 0.0);
    assert_eq!(
        (none.attainment, none.budget_consumed, none.status),
        (None, Some(0.0), "no_data")
    );
    let strict = Numbers::compute(1.0, 10.0, 9.0, 0.0);
    assert_eq!(
        (
            strict.budget_consumed,
            strict.budget_remaining,
            strict.status
        ),
        (None, None, "breached")
    );
}
