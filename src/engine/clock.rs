//! SLA clocks (SPEC §3 "Ticket clocks", "Incidents"): from the sorted events of
//! one ticket or incident to the spans in which each clock runs, its stop, the
//! priority or severity whose target applies, and from there the elapsed
//! business time, the breach instant and the outcome. Pure functions.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::model::calendar::BusinessCalendar;
use crate::model::event::{IncidentAction, TicketAction};
use crate::model::interval::{instant_exceeding, Span, SpanSet};
use crate::model::slo::Level;
use crate::model::time::{Millis, DAY};

/// Stands for "still running": the end of an open span.
pub const OPEN_END: Millis = i64::MAX / 4;

/// How far ahead a running clock is followed to find its breach instant (a
/// calendar with no business time at all never breaches).
pub const BREACH_HORIZON: Millis = 3 * 366 * DAY;

/// One stored ticket event (only what the clocks need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEv {
    pub at: Millis,
    pub action: TicketAction,
    pub event_id: String,
    pub priority: Option<Level>,
    /// Customer, service and region are read from `opened` only.
    pub customer: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
}

impl TicketEv {
    pub fn sort_key(&self) -> (Millis, u8, &str) {
        (self.at, self.action.rank(), &self.event_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentEv {
    pub at: Millis,
    pub action: IncidentAction,
    pub event_id: String,
    pub severity: Option<Level>,
    pub customer_ids: Option<Vec<String>>,
    pub service: Option<String>,
    pub planned: bool,
}

impl IncidentEv {
    pub fn sort_key(&self) -> (Millis, u8, &str) {
        (self.at, self.action.rank(), &self.event_id)
    }
}

/// Where one clock stands: the spans in which it runs (before calendar,
/// pauses and exclusions), its stop, and the level whose target applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockRun {
    pub start: Millis,
    pub running: SpanSet,
    pub stop: Option<Millis>,
    pub level: Level,
}

impl ClockRun {
    /// A clock running from `start` until its first stop (when there is one);
    /// `level` applies at that stop, `current` while it still runs.
    fn until_stop(start: Millis, stop: Option<(Millis, Level)>, current: Level) -> ClockRun {
        match stop {
            Some((at, level)) => ClockRun {
                start,
                running: SpanSet::from_spans([(start, at)]),
                stop: Some(at),
                level,
            },
            None => ClockRun {
                start,
                running: SpanSet::from_spans([(start, OPEN_END)]),
                stop: None,
                level: current,
            },
        }
    }
}

/// A ticket's clocks as of all its processed events.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketTimeline {
    pub opened: Millis,
    pub customer: String,
    pub service: Option<String>,
    pub region: Option<String>,
    pub response: ClockRun,
    pub resolution: ClockRun,
    /// [`paused`, next `resumed` or `resolved`).
    pub pauses: SpanSet,
}

/// Derives a ticket's clocks from its events sorted by `TicketEv::sort_key`.
/// `None` when the ticket has no `opened` or was canceled (it leaves every SLA).
pub fn ticket_timeline(events: &[TicketEv]) -> Option<TicketTimeline> {
    let first = events
        .iter()
        .position(|e| e.action == TicketAction::Opened)?;
    let open = &events[first];
    let opened = open.at;
    let mut priority = open.priority?;
    let mut response: Option<(Millis, Level)> = None;
    let mut running_since: Option<Millis> = Some(opened);
    let mut running = SpanSet::new();
    let mut resolved: Option<(Millis, Level)> = None;
    let mut paused_since: Option<Millis> = None;
    let mut pauses = SpanSet::new();

    for e in &events[first + 1..] {
        match e.action {
            TicketAction::Opened => {}
            TicketAction::PriorityChanged => {
                if let Some(p) = e.priority {
                    priority = p;
                }
            }
            TicketAction::Responded => {
                if response.is_none() {
                    response = Some((e.at, priority));
                }
            }
            TicketAction::Paused => {
                // SPEC §3: a pause lasts until the next `resumed` or
                // `resolved`, whenever it was set (even while resolved).
                if paused_since.is_none() {
                    paused_since = Some(e.at);
                }
            }
            TicketAction::Resumed => {
                if let Some(p) = paused_since.take() {
                    pauses.insert((p, e.at));
                }
            }
            TicketAction::Resolved => {
                if response.is_none() {
                    response = Some((e.at, priority));
                }
                if let Some(p) = paused_since.take() {
                    pauses.insert((p, e.at));
                }
                if let Some(s) = running_since.take() {
                    running.insert((s, e.at));
                    resolved = Some((e.at, priority));
                }
            }
            TicketAction::Reopened => {
                if running_since.is_none() {
                    running_since = Some(e.at);
                    resolved = None;
                }
            }
            TicketAction::Canceled => return None,
        }
    }
    if let Some(s) = running_since {
        running.insert((s, OPEN_END));
    }
    if let Some(p) = paused_since {
        pauses.insert((p, OPEN_END));
    }
    let response = ClockRun::until_stop(opened, response, priority);
    let resolution = ClockRun {
        start: opened,
        running,
        stop: resolved.map(|(at, _)| at),
        level: resolved.map(|(_, l)| l).unwrap_or(priority),
    };
    Some(TicketTimeline {
        opened,
        customer: open.customer.clone().unwrap_or_default(),
        service: open.service.clone(),
        region: open.region.clone(),
        response,
        resolution,
        pauses,
    })
}

/// An incident's clocks and open periods as of all its processed events.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentTimeline {
    pub opened: Millis,
    pub planned: bool,
    pub service: Option<String>,
    /// Every customer the incident ever listed, in first-listed order.
    pub customers: Vec<String>,
    pub ack: ClockRun,
    pub resolution: ClockRun,
    /// Pieces of the open period [`opened`, first `mitigated`/`resolved`) with
    /// the severity and customer list in force.
    pub open_pieces: Vec<OpenPiece>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenPiece {
    pub span: Span,
    pub severity: Level,
    pub customers: Vec<String>,
}

/// Derives an incident's clocks from its events sorted by `IncidentEv::sort_key`.
pub fn incident_timeline(events: &[IncidentEv]) -> Option<IncidentTimeline> {
    let first = events
        .iter()
        .position(|e| e.action == IncidentAction::Opened)?;
    let open = &events[first];
    let opened = open.at;
    let mut severity = open.severity?;
    let mut listed: Vec<String> = open.customer_ids.clone().unwrap_or_default();
    // `ever` keeps first-listed order; `seen` makes each membership test
    // O(1), so an incident naming K customers derives in O(K) per event.
    let mut ever: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for c in open.customer_ids.as_deref().unwrap_or_default() {
        if seen.insert(c.as_str()) {
            ever.push(c.clone());
        }
    }
    let mut ack: Option<(Millis, Level)> = None;
    let mut resolved: Option<(Millis, Level)> = None;
    let mut closed: Option<Millis> = None;
    let mut pieces: Vec<OpenPiece> = Vec::new();
    let mut piece_start = opened;

    for e in &events[first + 1..] {
        // Fields take effect at the event's instant, before its action.
        let changes = e.severity.is_some_and(|s| s != severity)
            || e.customer_ids.as_ref().is_some_and(|c| *c != listed);
        if changes && closed.is_none() && e.at > piece_start {
            pieces.push(OpenPiece {
                span: (piece_start, e.at),
                severity,
                customers: listed.clone(),
            });
            piece_start = e.at;
        }
        if let Some(s) = e.severity {
            severity = s;
        }
        if let Some(c) = &e.customer_ids {
            listed = c.clone();
            for c in c {
                if seen.insert(c.as_str()) {
                    ever.push(c.clone());
                }
            }
        }
        match e.action {
            IncidentAction::Opened => {}
            IncidentAction::Acknowledged => {
                if ack.is_none() {
                    ack = Some((e.at, severity));
                }
            }
            IncidentAction::Mitigated | IncidentAction::Resolved => {
                if ack.is_none() {
                    ack = Some((e.at, severity));
                }
                if closed.is_none() {
                    closed = Some(e.at);
                    if e.at > piece_start {
                        pieces.push(OpenPiece {
                            span: (piece_start, e.at),
                            severity,
                            customers: listed.clone(),
                        });
                    }
                }
                if e.action == IncidentAction::Resolved && resolved.is_none() {
                    resolved = Some((e.at, severity));
                }
            }
        }
    }
    if closed.is_none() {
        pieces.push(OpenPiece {
            span: (piece_start, OPEN_END),
            severity,
            customers: listed.clone(),
        });
    }
    let clock = |stop: Option<(Millis, Level)>| ClockRun::until_stop(opened, stop, severity);
    Some(IncidentTimeline {
        opened,
        planned: open.planned,
        service: open.service.clone(),
        customers: ever,
        ack: clock(ack),
        resolution: clock(resolved),
        open_pieces: pieces,
    })
}

/// What one clock contributes to its SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Stopped: counted at the stop instant.
    Stopped {
        at: Millis,
        good: bool,
        breach_at: Option<Millis>,
    },
    /// Running: counted bad at `breach_at` once now has passed it.
    Running { breach_at: Option<Millis> },
}

/// The spans in which a clock counts: its running spans minus `removed`
/// (pauses and exclusions), on the calendar, cut at `until`.
pub fn counted_spans<'a>(
    run: &'a SpanSet,
    removed: &SpanSet,
    calendar: &'a BusinessCalendar,
    until: Millis,
) -> impl Iterator<Item = Span> + 'a {
    let base = run.subtract(removed).clip(Millis::MIN / 4, until);
    let spans: Vec<Span> = base.spans().to_vec();
    spans
        .into_iter()
        .flat_map(move |(s, e)| calendar.spans(s, e))
}

/// Elapsed counted time of a clock at instant `t` ([start, min(t, stop))).
pub fn elapsed_at(
    run: &ClockRun,
    removed: &SpanSet,
    calendar: &BusinessCalendar,
    t: Millis,
) -> Millis {
    let until = t.min(run.stop.unwrap_or(OPEN_END));
    counted_spans(&run.running, removed, calendar, until)
        .map(|(s, e)| e - s)
        .sum()
}

/// Evaluates a clock against `target`.
pub fn evaluate(
    run: &ClockRun,
    removed: &SpanSet,
    calendar: &BusinessCalendar,
    target: Millis,
) -> Outcome {
    let horizon = run
        .stop
        .unwrap_or_else(|| run.start.saturating_add(BREACH_HORIZON));
    let breach_at = instant_exceeding(
        counted_spans(&run.running, removed, calendar, horizon),
        target,
    );
    match run.stop {
        Some(stop) => {
            // elapsed(stop) > target  <=>  the breach instant lies before the stop.
            let good = breach_at.is_none_or(|b| b >= stop);
            Outcome::Stopped {
                at: stop,
                good,
                breach_at: if good { None } else { breach_at },
            }
        }
        None => Outcome::Running { breach_at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::slo::CalendarDef;
    use crate::model::time::{parse_rfc3339, HOUR, MINUTE};

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("test timestamp")
    }

    fn ev(at: &str, action: TicketAction, id: &str, priority: Option<Level>) -> TicketEv {
        TicketEv {
            at: t(at),
            action,
            event_id: id.to_string(),
            priority,
            customer: Some("acme".into()),
            service: None,
            region: None,
        }
    }

    fn sorted(mut v: Vec<TicketEv>) -> Vec<TicketEv> {
        v.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        v
    }

    fn nine_to_five(zone: &str) -> BusinessCalendar {
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            d.push((9 * 60, 17 * 60));
        }
        let def = CalendarDef {
            name: "b".into(),
            timezone: None,
            week,
            holidays: Default::default(),
        };
        BusinessCalendar::new(&def, jiff::tz::TimeZone::get(zone).expect("zone"))
    }

    #[test]
    fn response_target_used_up_at_close_breaches_next_morning() {
        // Opened Friday 2026-11-06 16:00 Berlin (15:00Z), P1 target 1h: the hour
        // is used up exactly at 17:00 local, so the breach instant is Monday 09:00.
        let cal = nine_to_five("Europe/Berlin");
        let events = sorted(vec![ev(
            "2026-11-06T15:00:00Z",
            TicketAction::Opened,
            "a",
            Some(0),
        )]);
        let tl = ticket_timeline(&events).expect("opened");
        let out = evaluate(&tl.response, &SpanSet::new(), &cal, HOUR);
        assert_eq!(
            out,
            Outcome::Running {
                breach_at: Some(t("2026-11-09T08:00:00Z"))
            }
        );
        // A response at 18:00 local the same day is on time.
        let events = sorted(vec![
            ev("2026-11-06T15:00:00Z", TicketAction::Opened, "a", Some(0)),
            ev("2026-11-06T17:00:00Z", TicketAction::Responded, "b", None),
        ]);
        let tl = ticket_timeline(&events).expect("opened");
        let out = evaluate(&tl.response, &SpanSet::new(), &cal, HOUR);
        assert_eq!(
            out,
            Outcome::Stopped {
                at: t("2026-11-06T17:00:00Z"),
                good: true,
                breach_at: None
            }
        );
    }

    #[test]
    fn reopen_counts_time_before_first_resolve_but_not_between() {
        let cal = BusinessCalendar::always();
        let events = sorted(vec![
            ev("2026-11-02T10:00:00Z", TicketAction::Opened, "1", Some(1)),
            ev("2026-11-02T12:00:00Z", TicketAction::Resolved, "2", None),
            ev("2026-11-03T12:00:00Z", TicketAction::Reopened, "3", None),
            ev("2026-11-03T13:30:00Z", TicketAction::Resolved, "4", None),
        ]);
        let tl = ticket_timeline(&events).expect("opened");
        assert_eq!(
            elapsed_at(&tl.resolution, &SpanSet::new(), &cal, OPEN_END),
            210 * MINUTE
        );
        assert_eq!(
            evaluate(&tl.resolution, &SpanSet::new(), &cal, 4 * HOUR),
            Outcome::Stopped {
                at: t("2026-11-03T13:30:00Z"),
                good: true,
                breach_at: None
            }
        );
        // 3h target: exceeded one hour after the reopen.
        assert_eq!(
            evaluate(&tl.resolution, &SpanSet::new(), &cal, 3 * HOUR),
            Outcome::Stopped {
                at: t("2026-11-03T13:30:00Z"),
                good: false,
                breach_at: Some(t("2026-11-03T13:00:00Z"))
            }
        );
        // Response clock stopped at the first resolve (no response).
        assert_eq!(tl.response.stop, Some(t("2026-11-02T12:00:00Z")));
    }

    #[test]
    fn priority_change_applies_at_stop_and_not_after() {
        let events = sorted(vec![
            ev("2026-11-02T10:00:00Z", TicketAction::Opened, "1", Some(2)),
            ev(
                "2026-11-02T12:00:00Z",
                TicketAction::PriorityChanged,
                "2",
                Some(0),
            ),
            ev("2026-11-02T13:00:00Z", TicketAction::Responded, "3", None),
            ev(
                "2026-11-02T14:00:00Z",
                TicketAction::PriorityChanged,
                "4",
                Some(3),
            ),
        ]);
        let tl = ticket_timeline(&events).expect("opened");
        assert_eq!(
            tl.response.level, 0,
            "P1 in force when the response clock stopped"
        );
        assert_eq!(
            tl.resolution.level, 3,
            "resolution clock still running: current priority"
        );
    }

    #[test]
    fn pause_until_resolve_and_cancel() {
        let events = sorted(vec![
            ev("2026-11-02T10:00:00Z", TicketAction::Opened, "1", Some(1)),
            ev("2026-11-02T11:00:00Z", TicketAction::Paused, "2", None),
            ev("2026-11-02T15:00:00Z", TicketAction::Resolved, "3", None),
        ]);
        let tl = ticket_timeline(&events).expect("opened");
        assert_eq!(
            tl.pauses.spans(),
            &[(t("2026-11-02T11:00:00Z"), t("2026-11-02T15:00:00Z"))]
        );
        let mut with_cancel = events.clone();
        with_cancel.push(ev(
            "2026-11-03T10:00:00Z",
            TicketAction::Canceled,
            "4",
            None,
        ));
        assert!(ticket_timeline(&sorted(with_cancel)).is_none());
    }

    #[test]
    fn events_before_opened_are_ignored() {
        let events = sorted(vec![
            ev("2026-11-02T09:00:00Z", TicketAction::Responded, "0", None),
            ev("2026-11-02T10:00:00Z", TicketAction::Opened, "1", Some(1)),
        ]);
        let tl = ticket_timeline(&events).expect("opened");
        assert_eq!(tl.response.stop, None);
    }

    fn iev(
        at: &str,
        action: IncidentAction,
        id: &str,
        sev: Option<Level>,
        customers: Option<&[&str]>,
    ) -> IncidentEv {
        IncidentEv {
            at: t(at),
            action,
            event_id: id.into(),
            severity: sev,
            customer_ids: customers.map(|c| c.iter().map(|s| s.to_string()).collect()),
            service: None,
            planned: false,
        }
    }

    #[test]
    fn incident_pieces_follow_severity_and_customer_changes() {
        let events = vec![
            iev(
                "2026-11-02T10:00:00Z",
                IncidentAction::Opened,
                "1",
                Some(2),
                Some(&["a"]),
            ),
            iev(
                "2026-11-02T10:10:00Z",
                IncidentAction::Acknowledged,
                "2",
                Some(0),
                Some(&["a", "b"]),
            ),
            iev(
                "2026-11-02T11:00:00Z",
                IncidentAction::Mitigated,
                "3",
                None,
                None,
            ),
            iev(
                "2026-11-02T12:00:00Z",
                IncidentAction::Resolved,
                "4",
                None,
                Some(&["c"]),
            ),
        ];
        let tl = incident_timeline(&events).expect("opened");
        assert_eq!(tl.customers, vec!["a", "b", "c"]);
        assert_eq!(tl.ack.stop, Some(t("2026-11-02T10:10:00Z")));
        assert_eq!(tl.ack.level, 0, "severity carried by the ack applies to it");
        assert_eq!(tl.resolution.stop, Some(t("2026-11-02T12:00:00Z")));
        assert_eq!(tl.open_pieces.len(), 2);
        assert_eq!(
            tl.open_pieces[0].span,
            (t("2026-11-02T10:00:00Z"), t("2026-11-02T10:10:00Z"))
        );
        assert_eq!(tl.open_pieces[0].severity, 2);
        assert_eq!(
            tl.open_pieces[1].span,
            (t("2026-11-02T10:10:00Z"), t("2026-11-02T11:00:00Z"))
        );
        assert_eq!(tl.open_pieces[1].customers, vec!["a", "b"]);
    }
}
