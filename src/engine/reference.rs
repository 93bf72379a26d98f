//! Property test: the engine against a deliberately naive reference model of
//! SPEC §3. The model steps every clock and every availability minute one
//! minute at a time, deciding each minute from the events in force and from
//! the literal business-time rule of SPEC §2.2 (local wall-clock time in the
//! calendar's zone, weekday intervals, holidays). It shares none of the SLA
//! code: no `BusinessCalendar`, no `SpanSet`, no clock timelines, no buckets.
//! A second engine gets the same events shuffled, with duplicates, and must
//! agree with the first (SPEC §3: within the lateness bound, arrival order
//! does not matter). Several SLOs have a definition history changing inside
//! the event range (targets, segment targets, objectives, segment
//! objectives, a latency threshold), restated whole in the model, so each
//! probe, clock and window is checked against the version in force for it.
//!
//! Every event time, target, exclusion bound and window bound is a whole
//! minute and every zone offset involved is a whole hour, so a minute is
//! either wholly counted or wholly not, and the minute-stepping model is
//! exact. The range 2026-10-22 .. 2026-11-03 holds both the European (Oct 25)
//! and the US (Nov 1) fall-back days.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{subsequence, Index};

use super::query::Scope;
use super::{Applied, Engine};
use crate::config;
use crate::model::event::decode;
use crate::model::time::{format_rfc3339, parse_rfc3339, Millis, DAY, HOUR, MINUTE};

/// The engine under test. The model below restates this file by hand.
const CONFIG: &str = r#"
[ingest]
max_lateness = "30d"

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"
calendar = "eu"

[[customers]]
id = "globex"
segment = "standard"
timezone = "UTC"
calendar = "allday"

[[customers]]
id = "initech"
segment = "standard"
timezone = "America/New_York"
calendar = "us"

# Sunday night intervals hold the repeated hour of each fall-back day
# (Berlin 2026-10-25 02:00-03:00, New York 2026-11-01 01:00-02:00).
[calendars.eu]
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
sun = ["01:30-03:30"]
holidays = ["2026-10-27"]

[calendars.us]
mon = ["09:00-12:00", "13:00-17:00"]
tue = ["09:00-12:00", "13:00-17:00"]
wed = ["09:00-12:00", "13:00-17:00"]
thu = ["09:00-12:00", "13:00-17:00"]
fri = ["09:00-12:00", "13:00-17:00"]
sun = ["00:30-03:30"]
holidays = ["2026-10-30"]

[calendars.allday]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
window = "month"
clock = "business"
pausable = false
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }
segment_targets = { enterprise = { P1 = "30m", P2 = "2h" } }
[[slos.history]]
until = "2026-10-28T00:00:00Z"
targets = { P1 = "2h", P2 = "8h", P3 = "1d", P4 = "2d" }
segment_targets = { enterprise = { P1 = "1h" } }
change = "CR-1: tightened"

[[slos]]
name = "resolution"
indicator = "ticket_resolution"
objective = 0.9
window = "month"
clock = "business"
pausable = true
targets = { P1 = "4h", P2 = "1d", P3 = "2d", P4 = "3d" }

[[slos]]
name = "resolution_247"
indicator = "ticket_resolution"
objective = 0.9
window = "30d"
clock = "24x7"
pausable = false
targets = { P1 = "2h", P2 = "8h", P3 = "1d", P4 = "2d" }

[[slos]]
name = "ack"
indicator = "incident_ack"
objective = 0.99
window = "30d"
targets = { SEV1 = "15m", SEV2 = "30m", SEV3 = "4h", SEV4 = "1d" }
[[slos.history]]
until = "2026-10-29T12:00:00Z"
targets = { SEV1 = "30m", SEV2 = "1h", SEV3 = "8h", SEV4 = "2d" }
change = "CR-2"

[[slos]]
name = "inc_resolution"
indicator = "incident_resolution"
objective = 0.99
window = "30d"
clock = "business"
targets = { SEV1 = "2h", SEV2 = "4h", SEV3 = "1d", SEV4 = "3d" }

[[slos]]
name = "avail"
indicator = "incident_availability"
severities = ["SEV1", "SEV2"]
objective = 0.999
window = "month"

[[slos]]
name = "api"
indicator = "probe_availability"
objective = 0.99
segment_objectives = { enterprise = 0.995 }
window = "30d"
filter = { service = "api" }
[[slos.history]]
until = "2026-10-28T00:00:00Z"
objective = 0.95
segment_objectives = { enterprise = 0.97 }
change = "CR-3"

[[slos]]
name = "api_latency"
indicator = "probe_latency"
threshold_ms = 300
objective = 0.99
window = "30d"
filter = { service = "api" }
[[slos.history]]
until = "2026-10-28T00:00:00Z"
threshold_ms = 100
change = "CR-4"

[[exclusions]]
name = "acme maintenance"
from = "2026-10-26T10:00:00Z"
to = "2026-10-27T14:00:00Z"
slos = ["resolution", "avail", "api"]
customers = ["acme"]

[[exclusions]]
name = "standard freeze"
from = "2026-10-28T06:00:00Z"
to = "2026-10-28T09:30:00Z"
slos = ["ack", "api", "resolution_247"]
segments = ["standard"]
"#;

// ---------------------------------------------------------------------------
// The model's own restatement of CONFIG.

/// A weekly calendar: intervals in minutes after local midnight, Monday first.
struct CalM {
    zone: &'static str,
    week: [&'static [(i64, i64)]; 7],
    holidays: &'static [(i16, i8, i8)],
}

const NINE_FIVE: &[(i64, i64)] = &[(540, 1020)];
const SPLIT_DAY: &[(i64, i64)] = &[(540, 720), (780, 1020)];
const WHOLE_DAY: &[(i64, i64)] = &[(0, 1440)];

const EU: CalM = CalM {
    zone: "Europe/Berlin",
    week: [
        NINE_FIVE,
        NINE_FIVE,
        NINE_FIVE,
        NINE_FIVE,
        NINE_FIVE,
        &[],
        &[(90, 210)],
    ],
    holidays: &[(2026, 10, 27)],
};
const US: CalM = CalM {
    zone: "America/New_York",
    week: [
        SPLIT_DAY,
        SPLIT_DAY,
        SPLIT_DAY,
        SPLIT_DAY,
        SPLIT_DAY,
        &[],
        &[(30, 210)],
    ],
    holidays: &[(2026, 10, 30)],
};
const ALLDAY: CalM = CalM {
    zone: "UTC",
    week: [WHOLE_DAY; 7],
    holidays: &[],
};

/// Registry customers: id, segment, zone, calendar.
const REGISTRY: [(&str, &str, &str, usize); 3] = [
    ("acme", "enterprise", "Europe/Berlin", 0),
    ("globex", "standard", "UTC", 2),
    ("initech", "standard", "America/New_York", 1),
];
const CALENDARS: [&CalM; 3] = [&EU, &US, &ALLDAY];

/// Customers the events name; `zeta` is not in the registry.
const NAMES: [&str; 4] = ["acme", "globex", "initech", "zeta"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Response,
    Resolution,
    Ack,
    IncResolution,
    Avail,
    Probe,
    Latency,
}

struct SloM {
    name: &'static str,
    kind: Kind,
    business: bool,
    pausable: bool,
    /// Minutes per level (P1/SEV1 first).
    targets: [i64; 4],
    segment_targets: &'static [(&'static str, [Option<i64>; 4])],
    objective: f64,
    segment_objectives: &'static [(&'static str, f64)],
    /// `probe_latency`: milliseconds.
    threshold: f64,
    /// Earlier versions, restated whole (inherited keys spelled out).
    history: &'static [HistM],
}

/// An earlier version of an SLO: in force before `until`.
struct HistM {
    until: &'static str,
    targets: [i64; 4],
    segment_targets: &'static [(&'static str, [Option<i64>; 4])],
    objective: f64,
    segment_objectives: &'static [(&'static str, f64)],
    threshold: f64,
}

const SLOS: [SloM; 8] = [
    SloM {
        name: "response",
        kind: Kind::Response,
        business: true,
        pausable: false,
        targets: [60, 240, 480, 960],
        segment_targets: &[("enterprise", [Some(30), Some(120), None, None])],
        objective: 0.9,
        segment_objectives: &[],
        threshold: 0.0,
        history: &[HistM {
            until: "2026-10-28T00:00:00Z",
            targets: [120, 480, 1440, 2 * 1440],
            // The whole table is replaced: no P2 entry for enterprise.
            segment_targets: &[("enterprise", [Some(60), None, None, None])],
            objective: 0.9,
            segment_objectives: &[],
            threshold: 0.0,
        }],
    },
    SloM {
        name: "resolution",
        kind: Kind::Resolution,
        business: true,
        pausable: true,
        targets: [240, 1440, 2 * 1440, 3 * 1440],
        segment_targets: &[],
        objective: 0.9,
        segment_objectives: &[],
        threshold: 0.0,
        history: &[],
    },
    SloM {
        name: "resolution_247",
        kind: Kind::Resolution,
        business: false,
        pausable: false,
        targets: [120, 480, 1440, 2 * 1440],
        segment_targets: &[],
        objective: 0.9,
        segment_objectives: &[],
        threshold: 0.0,
        history: &[],
    },
    SloM {
        name: "ack",
        kind: Kind::Ack,
        business: false,
        pausable: false,
        targets: [15, 30, 240, 1440],
        segment_targets: &[],
        objective: 0.99,
        segment_objectives: &[],
        threshold: 0.0,
        history: &[HistM {
            until: "2026-10-29T12:00:00Z",
            targets: [30, 60, 480, 2 * 1440],
            segment_targets: &[],
            objective: 0.99,
            segment_objectives: &[],
            threshold: 0.0,
        }],
    },
    SloM {
        name: "inc_resolution",
        kind: Kind::IncResolution,
        business: true,
        pausable: false,
        targets: [120, 240, 1440, 3 * 1440],
        segment_targets: &[],
        objective: 0.99,
        segment_objectives: &[],
        threshold: 0.0,
        history: &[],
    },
    SloM {
        name: "avail",
        kind: Kind::Avail,
        business: false,
        pausable: false,
        targets: [0; 4],
        segment_targets: &[],
        objective: 0.999,
        segment_objectives: &[],
        threshold: 0.0,
        history: &[],
    },
    SloM {
        name: "api",
        kind: Kind::Probe,
        business: false,
        pausable: false,
        targets: [0; 4],
        segment_targets: &[],
        objective: 0.99,
        segment_objectives: &[("enterprise", 0.995)],
        threshold: 0.0,
        history: &[HistM {
            until: "2026-10-28T00:00:00Z",
            targets: [0; 4],
            segment_targets: &[],
            objective: 0.95,
            segment_objectives: &[("enterprise", 0.97)],
            threshold: 0.0,
        }],
    },
    SloM {
        name: "api_latency",
        kind: Kind::Latency,
        business: false,
        pausable: false,
        targets: [0; 4],
        segment_targets: &[],
        objective: 0.99,
        segment_objectives: &[],
        threshold: 300.0,
        history: &[HistM {
            until: "2026-10-28T00:00:00Z",
            targets: [0; 4],
            segment_targets: &[],
            objective: 0.99,
            segment_objectives: &[],
            threshold: 100.0,
        }],
    },
];

/// The version in force at `at`: (targets, segment targets, objective,
/// segment objectives, threshold).
type TermsM = (
    [i64; 4],
    &'static [(&'static str, [Option<i64>; 4])],
    f64,
    &'static [(&'static str, f64)],
    f64,
);

impl SloM {
    fn terms(&self, at: Millis) -> TermsM {
        match self.history.iter().find(|h| at < t(h.until)) {
            Some(h) => (
                h.targets,
                h.segment_targets,
                h.objective,
                h.segment_objectives,
                h.threshold,
            ),
            None => (
                self.targets,
                self.segment_targets,
                self.objective,
                self.segment_objectives,
                self.threshold,
            ),
        }
    }

    /// The target of a clock opened at `opened`.
    fn target(&self, segment: &str, level: u8, opened: Millis) -> i64 {
        let (targets, segment_targets, ..) = self.terms(opened);
        segment_targets
            .iter()
            .find(|(s, _)| *s == segment)
            .and_then(|(_, t)| t[level as usize])
            .unwrap_or(targets[level as usize])
    }

    /// The objective in force at `at` for a segment (`None`: the default).
    fn objective(&self, segment: Option<&str>, at: Millis) -> f64 {
        let (_, _, objective, segment_objectives, _) = self.terms(at);
        segment
            .and_then(|s| segment_objectives.iter().find(|(x, _)| *x == s))
            .map_or(objective, |(_, o)| *o)
    }
}

struct ExclM {
    from: &'static str,
    to: &'static str,
    slos: &'static [&'static str],
    customers: &'static [&'static str],
    segments: &'static [&'static str],
}

const EXCLUSIONS: [ExclM; 2] = [
    ExclM {
        from: "2026-10-26T10:00:00Z",
        to: "2026-10-27T14:00:00Z",
        slos: &["resolution", "avail", "api"],
        customers: &["acme"],
        segments: &[],
    },
    ExclM {
        from: "2026-10-28T06:00:00Z",
        to: "2026-10-28T09:30:00Z",
        slos: &["ack", "api", "resolution_247"],
        customers: &[],
        segments: &["standard"],
    },
];

fn t(s: &str) -> Millis {
    parse_rfc3339(s).expect("test timestamp")
}

/// Start of the event range.
fn r0() -> Millis {
    t("2026-10-22T00:00:00Z")
}

/// Minutes in the event range (12 days, up to 2026-11-03).
const RANGE_MIN: i64 = 12 * 1440;

fn r1() -> Millis {
    r0() + RANGE_MIN * MINUTE
}

/// End of the minute grid the model steps over; `now` is always before it.
fn grid_end() -> Millis {
    r1() + 3 * DAY
}

/// The wall clock handed to `apply`: after every event, so none is invalid.
fn wall_now() -> Millis {
    grid_end() + DAY
}

/// Whether the minute starting at `m` is inside calendar `cal`, by SPEC §2.2:
/// its local wall-clock time falls in an interval of its local weekday and its
/// local date is not a holiday. Tabulated once over the grid.
fn in_calendar(cal: usize, m: Millis) -> bool {
    static TABLES: OnceLock<Vec<Vec<bool>>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        CALENDARS
            .iter()
            .map(|c| {
                let zone = jiff::tz::TimeZone::get(c.zone).expect("zone");
                (0..(grid_end() - r0()) / MINUTE)
                    .map(|i| {
                        let ts =
                            jiff::Timestamp::from_millisecond(r0() + i * MINUTE).expect("instant");
                        let local = ts.to_zoned_datetime(zone.clone()).datetime();
                        let day = local.date();
                        let tod = local.hour() as i64 * 60 + local.minute() as i64;
                        let holiday = c.holidays.contains(&(day.year(), day.month(), day.day()));
                        let weekday = local.weekday().to_monday_zero_offset() as usize;
                        !holiday && c.week[weekday].iter().any(|(s, e)| *s <= tod && tod < *e)
                    })
                    .collect()
            })
            .collect()
    });
    assert!(
        r0() <= m && m < grid_end() && (m - r0()) % MINUTE == 0,
        "minute {m} outside the model grid"
    );
    tables[cal][((m - r0()) / MINUTE) as usize]
}

// ---------------------------------------------------------------------------
// Events.

#[derive(Debug, Clone, PartialEq)]
enum What {
    Ticket {
        ticket: String,
        customer: &'static str,
        action: &'static str,
        priority: Option<u8>,
        segment: Option<&'static str>,
        timezone: Option<&'static str>,
    },
    Incident {
        incident: String,
        action: &'static str,
        severity: Option<u8>,
        customers: Option<Vec<&'static str>>,
        planned: bool,
    },
    Probe {
        customer: &'static str,
        success: bool,
        service: &'static str,
        latency: i64,
        segment: Option<&'static str>,
        timezone: Option<&'static str>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    id: String,
    at: Millis,
    what: What,
}

/// SPEC §3 tie-break order for events of one ticket or incident.
fn rank(action: &str) -> u8 {
    match action {
        "opened" => 0,
        "priority_changed" => 1,
        "responded" => 2,
        "acknowledged" => 3,
        "paused" => 4,
        "resumed" => 5,
        "mitigated" => 6,
        "resolved" => 7,
        "reopened" => 8,
        "canceled" => 9,
        other => panic!("no rank for {other}"),
    }
}

impl Ev {
    fn action(&self) -> &'static str {
        match &self.what {
            What::Ticket { action, .. } | What::Incident { action, .. } => action,
            What::Probe { .. } => "opened",
        }
    }

    fn sort_key(&self) -> (Millis, u8, &str) {
        (self.at, rank(self.action()), &self.id)
    }

    fn line(&self) -> String {
        use serde_json::{json, Value};
        let mut o = serde_json::Map::new();
        o.insert("event_id".into(), json!(self.id));
        o.insert("occurred_at".into(), json!(format_rfc3339(self.at)));
        let attrs =
            |o: &mut serde_json::Map<String, Value>, seg: &Option<&str>, tz: &Option<&str>| {
                if let Some(s) = seg {
                    o.insert("segment".into(), json!(s));
                }
                if let Some(z) = tz {
                    o.insert("timezone".into(), json!(z));
                }
            };
        match &self.what {
            What::Ticket {
                ticket,
                customer,
                action,
                priority,
                segment,
                timezone,
            } => {
                o.insert("kind".into(), json!("ticket"));
                o.insert("customer_id".into(), json!(customer));
                o.insert("ticket_id".into(), json!(ticket));
                o.insert("action".into(), json!(action));
                if let Some(p) = priority {
                    o.insert("priority".into(), json!(format!("P{}", p + 1)));
                }
                attrs(&mut o, segment, timezone);
            }
            What::Incident {
                incident,
                action,
                severity,
                customers,
                planned,
            } => {
                o.insert("kind".into(), json!("incident"));
                o.insert("incident_id".into(), json!(incident));
                o.insert("action".into(), json!(action));
                if let Some(s) = severity {
                    o.insert("severity".into(), json!(format!("SEV{}", s + 1)));
                }
                if let Some(c) = customers {
                    o.insert("customer_ids".into(), json!(c));
                }
                if *planned {
                    o.insert("planned".into(), json!(true));
                }
            }
            What::Probe {
                customer,
                success,
                service,
                latency,
                segment,
                timezone,
            } => {
                o.insert("kind".into(), json!("probe"));
                o.insert("customer_id".into(), json!(customer));
                o.insert("probe_id".into(), json!("p1"));
                o.insert("service".into(), json!(service));
                o.insert("success".into(), json!(success));
                o.insert("latency_ms".into(), json!(latency));
                attrs(&mut o, segment, timezone);
            }
        }
        Value::Object(o).to_string()
    }
}

// ---------------------------------------------------------------------------
// The reference model.

/// A known customer as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CustM {
    segment: String,
    timezone: String,
    /// Index into `CALENDARS`; `None` = 24x7 (customers seen in events).
    calendar: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct BreachM {
    id: String,
    customer: String,
    breached_at: Millis,
    stopped_at: Option<Millis>,
}

struct Model {
    customers: BTreeMap<String, CustM>,
    /// Counted units per (SLO, customer): (evaluation instant, good).
    counted: BTreeMap<(&'static str, String), Vec<(Millis, bool)>>,
    /// Running clocks' breaches per (SLO, customer), counted once now > instant.
    pending: BTreeMap<(&'static str, String), Vec<Millis>>,
    /// `avail`: downtime minutes per customer.
    down: BTreeMap<String, BTreeSet<Millis>>,
    /// Every breach, running ones included whatever now is.
    breaches: BTreeMap<&'static str, BTreeSet<BreachM>>,
}

fn excluded(slo: &str, customer: &str, c: &CustM, m: Millis) -> bool {
    static BOUNDS: OnceLock<Vec<(Millis, Millis)>> = OnceLock::new();
    let bounds = BOUNDS.get_or_init(|| EXCLUSIONS.iter().map(|x| (t(x.from), t(x.to))).collect());
    EXCLUSIONS.iter().zip(bounds).any(|(x, (from, to))| {
        *from <= m
            && m < *to
            && x.slos.contains(&slo)
            && (x.customers.contains(&customer) || x.segments.contains(&c.segment.as_str()))
    })
}

fn business(slo: &SloM, c: &CustM, m: Millis) -> bool {
    match (slo.business, c.calendar) {
        (true, Some(cal)) => in_calendar(cal, m),
        _ => true,
    }
}

/// Minutes of the grid from `start`.
fn minutes_from(start: Millis) -> impl Iterator<Item = Millis> {
    (start..grid_end()).step_by(MINUTE as usize)
}

/// Where a stepped clock ended: the counted minutes (in order), and the stop
/// instant with the level in force then, or the current level when running.
struct Stepped {
    /// The clock's `opened`: its targets are those in force then.
    opened: Millis,
    counted: Vec<Millis>,
    stop: Option<Millis>,
    level: u8,
}

impl Model {
    fn new(events: &[Ev]) -> Model {
        let mut model = Model {
            customers: BTreeMap::new(),
            counted: BTreeMap::new(),
            pending: BTreeMap::new(),
            down: BTreeMap::new(),
            breaches: SLOS.iter().map(|s| (s.name, BTreeSet::new())).collect(),
        };
        model.learn_customers(events);
        let mut tickets: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
        let mut incidents: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
        for e in events {
            match &e.what {
                What::Ticket { ticket, .. } => tickets.entry(ticket).or_default().push(e),
                What::Incident { incident, .. } => incidents.entry(incident).or_default().push(e),
                What::Probe {
                    customer,
                    success,
                    service,
                    latency,
                    ..
                } => {
                    let c = &model.customers[*customer];
                    if *service == "api" && !excluded("api", customer, c, e.at) {
                        model
                            .counted
                            .entry(("api", customer.to_string()))
                            .or_default()
                            .push((e.at, *success));
                    }
                    // Judged by the threshold in force at the probe's instant.
                    if *service == "api" {
                        let threshold = SLOS[7].terms(e.at).4;
                        model
                            .counted
                            .entry(("api_latency", customer.to_string()))
                            .or_default()
                            .push((e.at, *success && (*latency as f64) <= threshold));
                    }
                }
            }
        }
        for (id, mut evs) in tickets {
            evs.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            model.ticket(id, &evs);
        }
        for (id, mut evs) in incidents {
            evs.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            model.incident(id, &evs);
        }
        model
    }

    /// Registry customers, plus every customer an event names; a seen
    /// customer takes segment and zone from the first event naming it (by
    /// occurred_at, then event_id), `unassigned`/`UTC` for what it lacks.
    fn learn_customers(&mut self, events: &[Ev]) {
        for (id, segment, zone, cal) in REGISTRY {
            self.customers.insert(
                id.into(),
                CustM {
                    segment: segment.into(),
                    timezone: zone.into(),
                    calendar: Some(cal),
                },
            );
        }
        let mut by_time: Vec<&Ev> = events.iter().collect();
        by_time.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        for e in by_time {
            let named: Vec<(&str, Option<&str>, Option<&str>)> = match &e.what {
                What::Ticket {
                    customer,
                    segment,
                    timezone,
                    ..
                }
                | What::Probe {
                    customer,
                    segment,
                    timezone,
                    ..
                } => {
                    vec![(customer, *segment, *timezone)]
                }
                What::Incident { customers, .. } => customers
                    .iter()
                    .flatten()
                    .map(|c| (*c, None, None))
                    .collect(),
            };
            for (id, segment, zone) in named {
                self.customers
                    .entry(id.to_string())
                    .or_insert_with(|| CustM {
                        segment: segment.unwrap_or("unassigned").into(),
                        timezone: zone.unwrap_or("UTC").into(),
                        calendar: None,
                    });
            }
        }
    }

    /// Records a clock's outcome: counted at its stop, good iff elapsed at
    /// stop <= target; a running clock is bad at its breach instant (the
    /// start of the counted minute in which elapsed would exceed the target)
    /// once now has passed it (see `numbers` and `breaches`).
    fn record(&mut self, slo: &SloM, id: &str, customer: &str, run: &Stepped) {
        let c = &self.customers[customer];
        let target = slo.target(&c.segment, run.level, run.opened) as usize;
        let breach = run.counted.get(target).copied();
        let key = (slo.name, customer.to_string());
        match run.stop {
            Some(stop) => {
                let good = run.counted.len() <= target;
                self.counted.entry(key).or_default().push((stop, good));
                if let (false, Some(b)) = (good, breach) {
                    self.breaches
                        .get_mut(slo.name)
                        .expect("slo")
                        .insert(BreachM {
                            id: id.into(),
                            customer: customer.into(),
                            breached_at: b,
                            stopped_at: Some(stop),
                        });
                }
            }
            None => {
                if let Some(b) = breach {
                    self.pending.entry(key).or_default().push(b);
                    self.breaches
                        .get_mut(slo.name)
                        .expect("slo")
                        .insert(BreachM {
                            id: id.into(),
                            customer: customer.into(),
                            breached_at: b,
                            stopped_at: None,
                        });
                }
            }
        }
    }

    fn ticket(&mut self, id: &str, evs: &[&Ev]) {
        // Events before `opened` are ignored; a cancel voids the ticket.
        let Some(first) = evs.iter().position(|e| e.action() == "opened") else {
            return;
        };
        let evs = &evs[first..];
        if evs.iter().any(|e| e.action() == "canceled") {
            return;
        }
        let What::Ticket {
            customer,
            priority: Some(opened_priority),
            ..
        } = &evs[0].what
        else {
            panic!("opened without priority")
        };
        for slo in SLOS
            .iter()
            .filter(|s| matches!(s.kind, Kind::Response | Kind::Resolution))
        {
            let c = self.customers[*customer].clone();
            let mut priority = *opened_priority;
            let mut running = true;
            let mut paused = false;
            let mut stop: Option<(Millis, u8)> = None;
            let mut counted = Vec::new();
            let mut next = 0;
            for m in minutes_from(evs[0].at) {
                while next < evs.len() && evs[next].at == m {
                    let e = evs[next];
                    next += 1;
                    let What::Ticket {
                        action,
                        priority: p,
                        ..
                    } = &e.what
                    else {
                        unreachable!()
                    };
                    match (slo.kind, *action) {
                        (_, "priority_changed") => {
                            priority = p.expect("priority_changed carries a priority")
                        }
                        (Kind::Response, "responded" | "resolved") if running => {
                            running = false;
                            stop = Some((m, priority));
                        }
                        (Kind::Resolution, "resolved") => {
                            paused = false;
                            if running {
                                running = false;
                                stop = Some((m, priority));
                            }
                        }
                        (Kind::Resolution, "reopened") if !running => {
                            running = true;
                            stop = None;
                        }
                        // [paused, next resumed or resolved), taken literally.
                        (Kind::Resolution, "paused") => paused = true,
                        (Kind::Resolution, "resumed") => paused = false,
                        _ => {}
                    }
                }
                if running
                    && !(slo.pausable && paused)
                    && !excluded(slo.name, customer, &c, m)
                    && business(slo, &c, m)
                {
                    counted.push(m);
                }
            }
            let run = Stepped {
                opened: evs[0].at,
                counted,
                stop: stop.map(|s| s.0),
                level: stop.map_or(priority, |s| s.1),
            };
            self.record(slo, id, customer, &run);
        }
    }

    fn incident(&mut self, id: &str, evs: &[&Ev]) {
        let Some(first) = evs.iter().position(|e| e.action() == "opened") else {
            return;
        };
        let evs = &evs[first..];
        let What::Incident {
            severity: Some(opened_severity),
            customers: Some(opened_customers),
            planned,
            ..
        } = &evs[0].what
        else {
            panic!("opened without severity or customers")
        };
        if *planned {
            return;
        }
        let mut ever: Vec<&str> = Vec::new();
        for e in evs {
            let What::Incident { customers, .. } = &e.what else {
                unreachable!()
            };
            for c in customers.iter().flatten() {
                if !ever.contains(c) {
                    ever.push(c);
                }
            }
        }
        // Clocks, once per customer ever listed.
        for slo in SLOS
            .iter()
            .filter(|s| matches!(s.kind, Kind::Ack | Kind::IncResolution))
        {
            for customer in &ever {
                let c = self.customers[*customer].clone();
                let mut severity = *opened_severity;
                let mut stop: Option<(Millis, u8)> = None;
                let mut counted = Vec::new();
                let mut next = 0;
                for m in minutes_from(evs[0].at) {
                    while next < evs.len() && evs[next].at == m {
                        let What::Incident {
                            action,
                            severity: s,
                            ..
                        } = &evs[next].what
                        else {
                            unreachable!()
                        };
                        next += 1;
                        if let Some(s) = s {
                            severity = *s;
                        }
                        let stops = match slo.kind {
                            Kind::Ack => {
                                matches!(*action, "acknowledged" | "mitigated" | "resolved")
                            }
                            _ => *action == "resolved",
                        };
                        if stops && stop.is_none() {
                            stop = Some((m, severity));
                        }
                    }
                    if stop.is_none()
                        && !excluded(slo.name, customer, &c, m)
                        && business(slo, &c, m)
                    {
                        counted.push(m);
                    }
                }
                let run = Stepped {
                    opened: evs[0].at,
                    counted,
                    stop: stop.map(|s| s.0),
                    level: stop.map_or(severity, |s| s.1),
                };
                self.record(slo, id, customer, &run);
            }
        }
        // Availability: open from `opened` to the first mitigated/resolved,
        // down for the customers listed, at a qualifying severity, minute by minute.
        let mut severity = *opened_severity;
        let mut listed: Vec<&str> = opened_customers.clone();
        let mut next = 0;
        for m in minutes_from(evs[0].at) {
            let mut closed = false;
            while next < evs.len() && evs[next].at == m {
                let What::Incident {
                    action,
                    severity: s,
                    customers,
                    ..
                } = &evs[next].what
                else {
                    unreachable!()
                };
                next += 1;
                if let Some(s) = s {
                    severity = *s;
                }
                if let Some(l) = customers {
                    listed = l.clone();
                }
                closed |= matches!(*action, "mitigated" | "resolved");
            }
            if closed {
                break;
            }
            if severity <= 1 {
                for c in &listed {
                    self.down.entry(c.to_string()).or_default().insert(m);
                }
            }
        }
    }

    fn in_scope(&self, scope: &ScopeM, customer: &str) -> bool {
        let c = &self.customers[customer];
        match scope {
            ScopeM::Customer(x) => x == customer,
            ScopeM::All => true,
            ScopeM::Segment(s) => *s == c.segment,
            ScopeM::Zone(z) => *z == c.timezone,
        }
    }

    /// (total, good, bad, excluded): units, or seconds for `avail`.
    fn numbers(
        &self,
        slo: &SloM,
        scope: &ScopeM,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> [i64; 4] {
        let mut n = [0i64; 4];
        for (customer, c) in &self.customers {
            if !self.in_scope(scope, customer) {
                continue;
            }
            if slo.kind == Kind::Avail {
                let down = self.down.get(customer);
                let mut m = from;
                while m < to.min(now) {
                    if excluded(slo.name, customer, c, m) {
                        n[3] += 60;
                    } else {
                        n[0] += 60;
                        if down.is_some_and(|d| d.contains(&m)) {
                            n[2] += 60;
                        } else {
                            n[1] += 60;
                        }
                    }
                    m += MINUTE;
                }
            } else if let Some(units) = self.counted.get(&(slo.name, customer.clone())) {
                for (at, good) in units {
                    if from <= *at && *at < to {
                        n[0] += 1;
                        n[if *good { 1 } else { 2 }] += 1;
                    }
                }
            }
            for at in self
                .pending
                .get(&(slo.name, customer.clone()))
                .into_iter()
                .flatten()
            {
                if from <= *at && *at < to && *at < now {
                    n[0] += 1;
                    n[2] += 1;
                }
            }
        }
        n
    }

    /// The breaches listed as of `now`: stopped ones, and running ones past
    /// their breach instant.
    fn breaches(&self, now: Millis) -> BTreeMap<&'static str, BTreeSet<BreachM>> {
        self.breaches
            .iter()
            .map(|(slo, list)| {
                (
                    *slo,
                    list.iter()
                        .filter(|b| b.stopped_at.is_some() || b.breached_at < now)
                        .cloned()
                        .collect(),
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Observing the engine and the model the same way.

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ScopeM {
    Customer(String),
    All,
    Segment(String),
    Zone(String),
}

/// Everything compared: customers, numbers per (SLO, scope, window), breaches.
#[derive(Debug, Clone, PartialEq, Default)]
struct Obs {
    customers: BTreeMap<String, (String, String)>,
    numbers: BTreeMap<(&'static str, String, String), [i64; 4]>,
    /// The objective of each window (version at its last counted instant).
    objectives: BTreeMap<(&'static str, String, String), f64>,
    breaches: BTreeMap<&'static str, BTreeSet<BreachM>>,
}

fn scopes(model: &Model) -> Vec<ScopeM> {
    let mut out: BTreeSet<ScopeM> = BTreeSet::new();
    out.insert(ScopeM::All);
    for (id, c) in &model.customers {
        out.insert(ScopeM::Customer(id.clone()));
        out.insert(ScopeM::Segment(c.segment.clone()));
        out.insert(ScopeM::Zone(c.timezone.clone()));
    }
    out.into_iter().collect()
}

fn windows(now: Millis, day: i64) -> Vec<(String, Millis, Millis)> {
    let d = r0() + day * DAY;
    vec![
        ("whole".into(), r0() - DAY, grid_end()),
        (format!("day {}", format_rfc3339(d)), d, d + DAY),
        // Local day of the Berlin fall-back: 25 hours.
        (
            "berlin 2026-10-25".into(),
            t("2026-10-24T22:00:00Z"),
            t("2026-10-25T23:00:00Z"),
        ),
        ("around now".into(), now - 36 * HOUR, now + 12 * HOUR),
    ]
}

fn observe_model(model: &Model, now: Millis, day: i64) -> Obs {
    let mut obs = Obs {
        customers: model
            .customers
            .iter()
            .map(|(id, c)| (id.clone(), (c.segment.clone(), c.timezone.clone())))
            .collect(),
        breaches: model.breaches(now),
        ..Obs::default()
    };
    for slo in &SLOS {
        for scope in scopes(model) {
            for (w, from, to) in windows(now, day) {
                let segment = match &scope {
                    ScopeM::Customer(id) => Some(model.customers[id].segment.as_str()),
                    ScopeM::Segment(s) => Some(s.as_str()),
                    ScopeM::All | ScopeM::Zone(_) => None,
                };
                obs.objectives.insert(
                    (slo.name, format!("{scope:?}"), w.clone()),
                    slo.objective(segment, to.min(now) - 1),
                );
                obs.numbers.insert(
                    (slo.name, format!("{scope:?}"), w),
                    model.numbers(slo, &scope, from, to, now),
                );
            }
        }
    }
    obs
}

fn observe_engine(e: &Engine, model: &Model, now: Millis, day: i64) -> Obs {
    let mut obs = Obs {
        customers: e
            .customers()
            .iter()
            .map(|(_, c)| {
                (
                    c.id.to_string(),
                    (c.segment.to_string(), c.timezone.to_string()),
                )
            })
            .collect(),
        ..Obs::default()
    };
    let whole = |x: f64| -> i64 {
        assert_eq!(x.fract(), 0.0, "whole units expected, got {x}");
        x as i64
    };
    for slo in &SLOS {
        let s = e.slo_index(slo.name).expect("slo in config");
        for scope in scopes(model) {
            let es = match &scope {
                ScopeM::Customer(id) => e.customers().lookup(id).map(Scope::Customer),
                ScopeM::All => Some(Scope::Filter {
                    segment: None,
                    timezone: None,
                }),
                ScopeM::Segment(x) => Some(Scope::Filter {
                    segment: Some(x.clone()),
                    timezone: None,
                }),
                ScopeM::Zone(z) => Some(Scope::Filter {
                    segment: None,
                    timezone: Some(z.clone()),
                }),
            };
            for (w, from, to) in windows(now, day) {
                let value = match &es {
                    Some(es) => {
                        let n = e.numbers(s, es, from, to, now);
                        obs.objectives
                            .insert((slo.name, format!("{scope:?}"), w.clone()), n.objective);
                        [
                            whole(n.total),
                            whole(n.good),
                            whole(n.bad),
                            whole(n.excluded_seconds),
                        ]
                    }
                    None => [-1; 4],
                };
                obs.numbers
                    .insert((slo.name, format!("{scope:?}"), w), value);
            }
        }
        let list = e
            .breaches(Some(s), None, now)
            .into_iter()
            .map(|b| BreachM {
                id: b.id,
                customer: b.customer,
                breached_at: b.breached_at,
                stopped_at: b.stopped_at,
            })
            .collect();
        obs.breaches.insert(slo.name, list);
    }
    obs
}

/// The differences between two observations, one line each (empty = equal).
fn diff(left: &str, a: &Obs, right: &str, b: &Obs) -> Vec<String> {
    let mut out = Vec::new();
    if a.customers != b.customers {
        out.push(format!(
            "customers: {left} {:?} / {right} {:?}",
            a.customers, b.customers
        ));
    }
    for (k, va) in &a.objectives {
        let vb = b.objectives.get(k);
        if vb != Some(va) {
            out.push(format!("{k:?} objective: {left} {va:?} / {right} {vb:?}"));
        }
    }
    for (k, va) in &a.numbers {
        let vb = b.numbers.get(k);
        if vb != Some(va) {
            out.push(format!(
                "{k:?} [total, good, bad, excluded]: {left} {va:?} / {right} {vb:?}"
            ));
        }
    }
    let at = |m: Millis| format_rfc3339(m);
    for (slo, la) in &a.breaches {
        let empty = BTreeSet::new();
        let lb = b.breaches.get(slo).unwrap_or(&empty);
        for x in la.symmetric_difference(lb) {
            let side = if la.contains(x) { left } else { right };
            out.push(format!(
                "{slo} breach only in {side}: {} {} breached_at {} stopped_at {:?}",
                x.id,
                x.customer,
                at(x.breached_at),
                x.stopped_at.map(at)
            ));
        }
    }
    out
}

fn engine() -> Engine {
    let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("test config is valid");
    Engine::new(&cfg)
}

fn feed(e: &mut Engine, events: &[Ev]) -> Vec<Applied> {
    events
        .iter()
        .map(|ev| {
            let line = ev.line();
            let decoded = decode(line.as_bytes()).unwrap_or_else(|err| panic!("{line}: {err}"));
            e.apply(&decoded, wall_now())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Random event sets.

/// A generated event before ids and instants are assigned.
#[derive(Debug, Clone)]
struct Gen {
    /// Minutes after the item's base minute.
    delta: i64,
    /// Take the previous event's instant instead (ties between actions).
    tie: bool,
    action: &'static str,
    level: Option<u8>,
    customers: Option<Vec<&'static str>>,
    flag: bool,
    salt: u16,
    segment: Option<&'static str>,
    timezone: Option<&'static str>,
}

/// Generated items: customer index or base minute, opening priority or
/// severity (and customers, planned), id salt, and the later events.
type TicketGen = (usize, i64, Option<u8>, u16, Vec<Gen>);
type IncidentGen = (i64, u8, Vec<&'static str>, bool, u16, Vec<Gen>);
type ProbeGen = (
    usize,
    i64,
    bool,
    bool,
    u16,
    (Option<&'static str>, Option<&'static str>),
    i64,
);

/// Offsets from an item's base minute: often equal (ties), mostly close,
/// sometimes days later, sometimes before `opened`.
fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![2 => Just(0i64), 4 => 0i64..240, 3 => 0i64..(3 * 1440), 1 => -240i64..0]
}

fn tie() -> impl Strategy<Value = bool> {
    proptest::bool::weighted(0.2)
}

/// Segment and zone a non-registry customer may take from an event.
fn attrs() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>)> {
    (
        proptest::option::weighted(0.3, prop::sample::select(vec!["enterprise", "standard"])),
        proptest::option::weighted(
            0.3,
            prop::sample::select(vec!["Europe/Berlin", "America/New_York", "UTC"]),
        ),
    )
}

fn ticket_action() -> impl Strategy<Value = (&'static str, Option<u8>)> {
    let plain = |a: &'static str| Just((a, None::<u8>));
    prop_oneof![
        3 => plain("responded"),
        2 => plain("paused"),
        2 => plain("resumed"),
        3 => plain("resolved"),
        2 => plain("reopened"),
        2 => (0u8..4).prop_map(|p| ("priority_changed", Some(p))),
        1 => plain("canceled"),
    ]
}

fn gen_ticket() -> impl Strategy<Value = TicketGen> {
    let action = (
        delta(),
        ticket_action(),
        proptest::option::weighted(0.1, 0u8..4),
        any::<u16>(),
        attrs(),
        tie(),
    )
        .prop_map(
            |(delta, (action, level), junk, salt, (segment, timezone), tie)| Gen {
                delta,
                tie,
                action,
                // A priority on another action is carried but must not count.
                level: level.or(junk),
                customers: None,
                flag: false,
                salt,
                segment,
                timezone,
            },
        );
    (
        0..NAMES.len(),
        0..RANGE_MIN,
        proptest::option::weighted(0.9, 0u8..4),
        any::<u16>(),
        vec(action, 0..9),
    )
}

fn customer_list(min: usize) -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(NAMES.to_vec(), min..=3)
}

fn gen_incident() -> impl Strategy<Value = IncidentGen> {
    let action = (
        delta(),
        prop::sample::select(vec!["acknowledged", "mitigated", "resolved"]),
        proptest::option::weighted(0.3, 0u8..4),
        proptest::option::weighted(0.3, customer_list(0)),
        proptest::bool::weighted(0.1),
        any::<u16>(),
        tie(),
    )
        .prop_map(|(delta, action, level, customers, flag, salt, tie)| Gen {
            delta,
            tie,
            action,
            level,
            customers,
            // `planned` on a later event must not count.
            flag,
            salt,
            segment: None,
            timezone: None,
        });
    (
        0..RANGE_MIN,
        0u8..4,
        customer_list(1),
        proptest::bool::weighted(0.15),
        any::<u16>(),
        vec(action, 0..6),
    )
}

fn gen_probe() -> impl Strategy<Value = ProbeGen> {
    (
        0..NAMES.len(),
        0..RANGE_MIN,
        proptest::bool::weighted(0.8),
        proptest::bool::weighted(0.85),
        any::<u16>(),
        attrs(),
        // Within both thresholds, within the newer one only, within none.
        prop::sample::select(vec![20i64, 100, 101, 200, 300, 301, 400]),
    )
}

fn at_minute(base: i64, delta: i64) -> Millis {
    r0() + (base + delta).clamp(0, RANGE_MIN - 1) * MINUTE
}

/// Unique events. Ids start with a random salt so that events tied on
/// (occurred_at, action) come in no fixed order.
fn build(tickets: Vec<TicketGen>, incidents: Vec<IncidentGen>, probes: Vec<ProbeGen>) -> Vec<Ev> {
    let mut out = Vec::new();
    for (n, (cust, base, opened, salt, actions)) in tickets.into_iter().enumerate() {
        let ticket = format!("T{n}");
        let customer = NAMES[cust];
        if let Some(p) = opened {
            out.push(Ev {
                id: format!("{salt:04x}-{ticket}-0"),
                at: at_minute(base, 0),
                what: What::Ticket {
                    ticket: ticket.clone(),
                    customer,
                    action: "opened",
                    priority: Some(p),
                    segment: None,
                    timezone: None,
                },
            });
        }
        let mut prev = 0;
        for (k, g) in actions.into_iter().enumerate() {
            prev = if g.tie { prev } else { g.delta };
            out.push(Ev {
                id: format!("{:04x}-{ticket}-{}", g.salt, k + 1),
                at: at_minute(base, prev),
                what: What::Ticket {
                    ticket: ticket.clone(),
                    customer,
                    action: g.action,
                    priority: g.level,
                    segment: g.segment,
                    timezone: g.timezone,
                },
            });
        }
    }
    for (n, (base, severity, customers, planned, salt, actions)) in
        incidents.into_iter().enumerate()
    {
        let incident = format!("I{n}");
        out.push(Ev {
            id: format!("{salt:04x}-{incident}-0"),
            at: at_minute(base, 0),
            what: What::Incident {
                incident: incident.clone(),
                action: "opened",
                severity: Some(severity),
                customers: Some(customers),
                planned,
            },
        });
        let mut prev = 0;
        for (k, g) in actions.into_iter().enumerate() {
            prev = if g.tie { prev } else { g.delta };
            out.push(Ev {
                id: format!("{:04x}-{incident}-{}", g.salt, k + 1),
                at: at_minute(base, prev),
                what: What::Incident {
                    incident: incident.clone(),
                    action: g.action,
                    severity: g.level,
                    customers: g.customers,
                    planned: g.flag,
                },
            });
        }
    }
    for (n, (cust, minute, success, api, salt, (segment, timezone), latency)) in
        probes.into_iter().enumerate()
    {
        out.push(Ev {
            id: format!("{salt:04x}-P{n}"),
            at: at_minute(minute, 0),
            what: What::Probe {
                customer: NAMES[cust],
                success,
                service: if api { "api" } else { "web" },
                latency,
                segment,
                timezone,
            },
        });
    }
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}

struct Scenario {
    /// Unique events in SPEC order.
    events: Vec<Ev>,
    /// The same events plus duplicates (same id, same content), shuffled.
    shuffled: Vec<Ev>,
    now: Millis,
    day: i64,
    /// Which running breach to check both sides of.
    pick: Index,
}

/// Prints the events as the JSON lines fed to the engine, so a failing case
/// can be pasted into a plain test.
impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "now = {}, day = {}", format_rfc3339(self.now), self.day)?;
        for e in &self.events {
            writeln!(f, "  {}", e.line())?;
        }
        let order: Vec<&str> = self.shuffled.iter().map(|e| e.id.as_str()).collect();
        writeln!(f, "shuffled feed: {order:?}")
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let now = prop_oneof![
        Just(r1() + 2 * DAY),
        (1440..RANGE_MIN).prop_map(|m| r0() + m * MINUTE)
    ];
    let items = (
        vec(gen_ticket(), 0..10),
        vec(gen_incident(), 0..5),
        vec(gen_probe(), 0..20),
    );
    (
        items,
        now,
        0i64..12,
        vec(any::<Index>(), 0..6),
        any::<Index>(),
    )
        .prop_flat_map(|((tickets, incidents, probes), now, day, dups, pick)| {
            let events = build(tickets, incidents, probes);
            let mut fed = events.clone();
            if !events.is_empty() {
                fed.extend(dups.iter().map(|d| events[d.index(events.len())].clone()));
            }
            (
                Just(events),
                Just(fed).prop_shuffle(),
                Just((now, day, pick)),
            )
        })
        .prop_map(|(events, shuffled, (now, day, pick))| Scenario {
            events,
            shuffled,
            now,
            day,
            pick,
        })
}

/// The instants the results are checked at: the scenario's now, and both
/// sides of one running clock's breach instant (not yet counted at exactly
/// that instant, counted one minute later).
fn nows(sc: &Scenario, model: &Model) -> Vec<Millis> {
    let running: Vec<Millis> = model
        .breaches
        .values()
        .flatten()
        .filter(|b| b.stopped_at.is_none())
        .map(|b| b.breached_at)
        .collect();
    let mut out = vec![sc.now];
    if !running.is_empty() {
        let b = running[sc.pick.index(running.len())];
        out.extend([b, b + MINUTE]);
    }
    out
}

fn check(sc: &Scenario) -> Result<(), TestCaseError> {
    let model = Model::new(&sc.events);

    let mut sorted = engine();
    let applied = feed(&mut sorted, &sc.events);
    prop_assert!(
        applied.iter().all(|a| *a == Applied::Accepted),
        "sorted feed: {applied:?}"
    );
    let mut shuffled = engine();
    let applied = feed(&mut shuffled, &sc.shuffled);
    let accepted = applied.iter().filter(|a| **a == Applied::Accepted).count();
    let duplicate = applied.iter().filter(|a| **a == Applied::Duplicate).count();
    prop_assert_eq!(
        (accepted, duplicate),
        (sc.events.len(), sc.shuffled.len() - sc.events.len())
    );

    // The same events with per-customer probe history leaving memory at
    // every commit (a hot window of nothing but the current day), read
    // back from the store.
    let store = crate::store::MemStore::default();
    let cfg = config::parse(CONFIG, &[], Path::new(".")).expect("test config is valid");
    let mut cold =
        crate::store::state::restore_at(&cfg, &store, wall_now(), None).expect("empty store");
    let shared: std::sync::Arc<dyn crate::store::Store> = std::sync::Arc::new(store.clone());
    cold.keep_history_unchecked(
        std::sync::Arc::new(crate::store::state::StoreHistory(shared)),
        0,
    );
    for chunk in sc.events.chunks(5) {
        feed(&mut cold, chunk);
        cold.maybe_compact();
        crate::store::Store::write(&store, crate::store::state::dirty_batch(&mut cold))
            .expect("memory store");
    }
    crate::store::Store::write(&store, crate::store::state::dirty_batch(&mut cold))
        .expect("memory store");
    let in_memory: usize = cold
        .slos
        .iter()
        .flat_map(|s| &s.by_customer)
        .map(|s| s.len())
        .sum();
    let everywhere: usize = sorted
        .slos
        .iter()
        .flat_map(|s| &s.by_customer)
        .map(|s| s.len())
        .sum();
    prop_assert!(in_memory <= everywhere);
    prop_assert!(cold.tickets.len() <= sorted.tickets.len());
    // The same state restored (what settled tickets count read from the
    // store), with the configured hot window.
    let shared: std::sync::Arc<dyn crate::store::Store> = std::sync::Arc::new(store.clone());
    let restored = crate::store::state::restore_at(
        &cfg,
        &store,
        wall_now(),
        Some(std::sync::Arc::new(crate::store::state::StoreHistory(
            shared,
        ))),
    )
    .expect("restore");

    for now in nows(sc, &model) {
        let expected = observe_model(&model, now, sc.day);
        let got = observe_engine(&sorted, &model, now, sc.day);
        let got_cold = observe_engine(&cold, &model, now, sc.day);
        let got_restored = observe_engine(&restored, &model, now, sc.day);
        let d = diff("restored", &got_restored, "sorted", &got);
        prop_assert!(
            d.is_empty(),
            "now = {}: the restored state differs:\n{}",
            format_rfc3339(now),
            d.join("\n")
        );
        let d = diff("cold", &got_cold, "sorted", &got);
        prop_assert!(
            d.is_empty(),
            "now = {}: history read back from the store differs:\n{}",
            format_rfc3339(now),
            d.join("\n")
        );
        let d = diff("engine", &got, "model", &expected);
        prop_assert!(
            d.is_empty(),
            "now = {}: sorted feed differs from the model:\n{}",
            format_rfc3339(now),
            d.join("\n")
        );
        let got_shuffled = observe_engine(&shuffled, &model, now, sc.day);
        let d = diff("shuffled", &got_shuffled, "sorted", &got);
        prop_assert!(
            d.is_empty(),
            "now = {}: shuffled feed differs from the sorted feed:\n{}",
            format_rfc3339(now),
            d.join("\n")
        );
    }
    Ok(())
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise; no regression files
    // (a failing case prints its JSON lines; pin it as a plain test).
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_minute_model(sc in scenario()) {
        check(&sc)?;
    }
}

// ---------------------------------------------------------------------------
// The model itself, checked on hand-computed cases.

fn tev(
    id: &str,
    at: &str,
    ticket: &str,
    customer: &'static str,
    action: &'static str,
    priority: Option<u8>,
) -> Ev {
    Ev {
        id: id.into(),
        at: t(at),
        what: What::Ticket {
            ticket: ticket.into(),
            customer,
            action,
            priority,
            segment: None,
            timezone: None,
        },
    }
}

#[test]
fn model_calendar_counts_the_repeated_hours() {
    // acme Sunday 01:30-03:30 Berlin on 2026-10-25: 23:30Z .. 02:30Z = 3 h.
    let acme = 0;
    let count = |cal: usize, from: &str, to: &str| {
        (t(from)..t(to))
            .step_by(MINUTE as usize)
            .filter(|m| in_calendar(cal, *m))
            .count()
    };
    assert_eq!(
        count(acme, "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"),
        180
    );
    // initech Sunday 00:30-03:30 New York on 2026-11-01: 04:30Z .. 08:30Z = 4 h.
    assert_eq!(
        count(1, "2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z"),
        240
    );
    // Holidays: acme Tue 2026-10-27, initech Fri 2026-10-30.
    assert_eq!(
        count(acme, "2026-10-27T00:00:00Z", "2026-10-28T00:00:00Z"),
        0
    );
    assert_eq!(count(1, "2026-10-30T00:00:00Z", "2026-10-31T00:00:00Z"), 0);
    assert_eq!(
        count(1, "2026-10-29T00:00:00Z", "2026-10-30T00:00:00Z"),
        7 * 60
    );
}

#[test]
fn model_breach_instant_on_a_business_calendar() {
    // acme, enterprise P1 response = 1h under the terms before 2026-10-28,
    // opened Fri 2026-10-23 16:45 CEST (14:45Z): 15 min Friday, then Sunday
    // 01:30 CEST (Oct 24 23:30Z) + 45 min.
    let now = grid_end() - HOUR;
    let events = vec![tev(
        "1",
        "2026-10-23T14:45:00Z",
        "T",
        "acme",
        "opened",
        Some(0),
    )];
    let model = Model::new(&events);
    let b: Vec<_> = model.breaches(now)["response"]
        .iter()
        .map(|b| (b.breached_at, b.stopped_at))
        .collect();
    assert_eq!(b, vec![(t("2026-10-25T00:15:00Z"), None)]);
}

// ---------------------------------------------------------------------------
// Minimal cases of the discrepancies the property test found. Each asserts
// SPEC §3 (and checks that the model says the same).

fn zeta_probe(id: &str, at: &str, segment: Option<&'static str>) -> Ev {
    Ev {
        id: id.into(),
        at: t(at),
        what: What::Probe {
            customer: "zeta",
            success: true,
            service: "api",
            latency: 20,
            segment,
            timezone: None,
        },
    }
}

#[test]
fn probe_exclusion_follows_a_segment_set_by_an_earlier_dated_event() {
    // zeta (not in the registry) is first seen through a probe at 08:36Z on
    // 2026-10-28, inside the `standard freeze` exclusion [06:00Z, 09:30Z) of
    // segment `standard` for `api`; that probe names no segment. An
    // earlier-dated probe, arriving later, names zeta `standard`: zeta is
    // `standard` from its first event on, so the 08:36 probe is excluded,
    // whatever the arrival order (SPEC §3 "Customers", "Late ... events").
    let inside = zeta_probe("a", "2026-10-28T08:36:00Z", None);
    let earlier = zeta_probe("b", "2026-10-27T03:54:00Z", Some("standard"));
    let model = Model::new(&[earlier.clone(), inside.clone()]);
    let api = &SLOS[6];
    let zeta = ScopeM::Customer("zeta".into());
    assert_eq!(
        model.numbers(api, &zeta, r0(), grid_end(), wall_now()),
        [1, 1, 0, 0]
    );
    for (label, order) in [
        ("in time order", vec![earlier.clone(), inside.clone()]),
        ("out of order", vec![inside, earlier]),
    ] {
        let mut e = engine();
        feed(&mut e, &order);
        let c = e.customers().lookup("zeta").expect("zeta is known");
        assert_eq!(&*e.customers().get(c).segment, "standard", "{label}");
        let n = e.numbers(
            e.slo_index("api").expect("slo"),
            &Scope::Customer(c),
            r0(),
            grid_end(),
            wall_now(),
        );
        assert_eq!(
            (n.total, n.good),
            (1.0, 1.0),
            "{label}: the probe inside the exclusion is still counted"
        );
    }
}

#[test]
fn pause_set_while_resolved_holds_after_the_reopen() {
    // globex (all-day calendar), `resolution` P1 = 4h, pausable. Resolved
    // after 30 min, `paused` at 01:00 while resolved, reopened at 02:00, never
    // resumed. Pause intervals are [paused, next resumed or resolved) (SPEC
    // §3), so the reopened clock is paused: 30 min used, no breach, nothing
    // counted yet.
    let events = vec![
        tev(
            "1",
            "2026-10-22T00:00:00Z",
            "T",
            "globex",
            "opened",
            Some(0),
        ),
        tev("2", "2026-10-22T00:30:00Z", "T", "globex", "resolved", None),
        tev("3", "2026-10-22T01:00:00Z", "T", "globex", "paused", None),
        tev("4", "2026-10-22T02:00:00Z", "T", "globex", "reopened", None),
    ];
    let now = grid_end() - HOUR;
    let model = Model::new(&events);
    assert!(model.breaches(now)["resolution"].is_empty());
    let mut e = engine();
    feed(&mut e, &events);
    let s = e.slo_index("resolution").expect("slo");
    let breaches: Vec<_> = e
        .breaches(Some(s), None, now)
        .into_iter()
        .map(|b| format_rfc3339(b.breached_at))
        .collect();
    assert_eq!(
        breaches,
        Vec::<String>::new(),
        "the engine ignores the pause and breaches 3.5 h after the reopen"
    );
    let globex = Scope::Customer(e.customers().lookup("globex").expect("registry"));
    assert_eq!(e.numbers(s, &globex, r0(), grid_end(), now).total, 0.0);
}
