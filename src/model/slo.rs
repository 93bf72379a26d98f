//! Validated SLO, customer, calendar, exclusion and credit definitions: the
//! plain types the engine reads. `config` builds them; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::time::Millis;

/// Ticket priority (`P1`..`P4`) or incident severity (`SEV1`..`SEV4`), as the
/// index 0..=3. Which one it is follows from the indicator.
pub type Level = u8;

pub fn parse_priority(s: &str) -> Option<Level> {
    match s {
        "P1" => Some(0),
        "P2" => Some(1),
        "P3" => Some(2),
        "P4" => Some(3),
        _ => None,
    }
}

pub fn parse_severity(s: &str) -> Option<Level> {
    match s {
        "SEV1" => Some(0),
        "SEV2" => Some(1),
        "SEV3" => Some(2),
        "SEV4" => Some(3),
        _ => None,
    }
}

pub const PRIORITIES: [&str; 4] = ["P1", "P2", "P3", "P4"];
pub const SEVERITIES: [&str; 4] = ["SEV1", "SEV2", "SEV3", "SEV4"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    ProbeAvailability,
    ProbeLatency,
    TicketResponse,
    TicketResolution,
    IncidentAck,
    IncidentResolution,
    IncidentAvailability,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::ProbeAvailability => "probe_availability",
            Indicator::ProbeLatency => "probe_latency",
            Indicator::TicketResponse => "ticket_response",
            Indicator::TicketResolution => "ticket_resolution",
            Indicator::IncidentAck => "incident_ack",
            Indicator::IncidentResolution => "incident_resolution",
            Indicator::IncidentAvailability => "incident_availability",
        }
    }

    pub fn parse(s: &str) -> Option<Indicator> {
        Some(match s {
            "probe_availability" => Indicator::ProbeAvailability,
            "probe_latency" => Indicator::ProbeLatency,
            "ticket_response" => Indicator::TicketResponse,
            "ticket_resolution" => Indicator::TicketResolution,
            "incident_ack" => Indicator::IncidentAck,
            "incident_resolution" => Indicator::IncidentResolution,
            "incident_availability" => Indicator::IncidentAvailability,
            _ => return None,
        })
    }

    /// The `unit` of the compliance API.
    pub fn unit(self) -> &'static str {
        match self {
            Indicator::ProbeAvailability | Indicator::ProbeLatency => "events",
            Indicator::TicketResponse | Indicator::TicketResolution => "tickets",
            Indicator::IncidentAck | Indicator::IncidentResolution => "incident_customers",
            Indicator::IncidentAvailability => "seconds",
        }
    }

    pub fn is_ticket(self) -> bool {
        matches!(
            self,
            Indicator::TicketResponse | Indicator::TicketResolution
        )
    }

    pub fn is_incident_clock(self) -> bool {
        matches!(self, Indicator::IncidentAck | Indicator::IncidentResolution)
    }

    pub fn is_probe(self) -> bool {
        matches!(self, Indicator::ProbeAvailability | Indicator::ProbeLatency)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SloWindow {
    /// Rolling window of this length ending at now.
    Rolling(Millis),
    /// The calendar month containing now, in the customer's zone.
    Month,
}

impl SloWindow {
    /// The label value used in metrics: `30d`-style or `month`.
    pub fn label(self) -> String {
        match self {
            SloWindow::Rolling(ms) => super::time::format_duration(ms),
            SloWindow::Month => "month".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClockKind {
    Business,
    AllDay,
}

/// Targets per priority / severity level; `None` = no target, the ticket or
/// incident is not counted by this SLO.
pub type Targets = [Option<Millis>; 4];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloDef {
    pub name: String,
    pub description: String,
    pub indicator: Indicator,
    pub objective: f64,
    pub window: SloWindow,
    /// Equality filters on event fields (`service`, `region`, `priority`, `severity`).
    pub filter: BTreeMap<String, String>,
    pub segment_objectives: BTreeMap<String, f64>,
    /// `probe_latency` only.
    pub threshold_ms: Option<f64>,
    pub clock: ClockKind,
    pub pausable: bool,
    pub targets: Targets,
    pub segment_targets: BTreeMap<String, Targets>,
    /// `incident_availability` only; as level indices.
    pub severities: BTreeSet<Level>,
    /// Earlier versions of the terms, oldest first, `until` strictly
    /// increasing (SPEC §2.3). The fields above are the newest version, in
    /// force from the last `until` on (from the beginning when empty).
    #[serde(default)]
    pub history: Vec<SloVersion>,
}

/// The part of an SLO a definition history can change (SPEC §2.3); every
/// other field of [`SloDef`] is the same in every version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloTerms {
    pub objective: f64,
    pub segment_objectives: BTreeMap<String, f64>,
    pub threshold_ms: Option<f64>,
    pub targets: Targets,
    pub segment_targets: BTreeMap<String, Targets>,
}

impl SloTerms {
    pub fn objective_for(&self, segment: &str) -> f64 {
        self.segment_objectives
            .get(segment)
            .copied()
            .unwrap_or(self.objective)
    }

    pub fn target_for(&self, segment: &str, level: Level) -> Option<Millis> {
        self.segment_targets
            .get(segment)
            .and_then(|t| t[level as usize])
            .or(self.targets[level as usize])
    }
}

/// An earlier version of an SLO: `terms` applied before `until`, from the
/// previous version's `until` on. Keys the configuration omitted are
/// already filled in from the next newer version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloVersion {
    pub until: Millis,
    /// Why the terms changed at `until` (a change request, a review).
    pub change: String,
    pub terms: SloTerms,
}

/// Which version of an SLO is in force at an instant: an index into
/// `history`, or the newest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAt {
    History(usize),
    Newest,
}

impl SloDef {
    /// The newest version's terms (the top-level keys of the configuration).
    pub fn newest_terms(&self) -> SloTerms {
        SloTerms {
            objective: self.objective,
            segment_objectives: self.segment_objectives.clone(),
            threshold_ms: self.threshold_ms,
            targets: self.targets,
            segment_targets: self.segment_targets.clone(),
        }
    }

    /// The version in force at instant `t`: the first whose `until` is
    /// after `t`.
    pub fn version_at(&self, t: Millis) -> VersionAt {
        match self.history.iter().position(|v| t < v.until) {
            Some(i) => VersionAt::History(i),
            None => VersionAt::Newest,
        }
    }

    /// [from, until) of each version, oldest first (`None` = unbounded).
    pub fn version_spans(&self) -> Vec<(Option<Millis>, Option<Millis>)> {
        let mut out = Vec::with_capacity(self.history.len() + 1);
        let mut from = None;
        for v in &self.history {
            out.push((from, Some(v.until)));
            from = Some(v.until);
        }
        out.push((from, None));
        out
    }

    /// The objective for a customer segment in force at `t`.
    pub fn objective_at(&self, segment: Option<&str>, t: Millis) -> f64 {
        match self.version_at(t) {
            VersionAt::History(i) => {
                let terms = &self.history[i].terms;
                segment.map_or(terms.objective, |s| terms.objective_for(s))
            }
            VersionAt::Newest => segment.map_or(self.objective, |s| self.objective_for(s)),
        }
    }

    /// The target for a segment and level in force at `t` (a clock opened at `t`).
    pub fn target_at(&self, segment: &str, level: Level, t: Millis) -> Option<Millis> {
        match self.version_at(t) {
            VersionAt::History(i) => self.history[i].terms.target_for(segment, level),
            VersionAt::Newest => self.target_for(segment, level),
        }
    }

    /// `threshold_ms` in force at `t` (a probe that occurred at `t`).
    pub fn threshold_at(&self, t: Millis) -> Option<f64> {
        match self.version_at(t) {
            VersionAt::History(i) => self.history[i].terms.threshold_ms,
            VersionAt::Newest => self.threshold_ms,
        }
    }

    /// The terms in force at `t`.
    pub fn terms_at(&self, t: Millis) -> SloTerms {
        match self.version_at(t) {
            VersionAt::History(i) => self.history[i].terms.clone(),
            VersionAt::Newest => self.newest_terms(),
        }
    }

    pub fn objective_for(&self, segment: &str) -> f64 {
        self.segment_objectives
            .get(segment)
            .copied()
            .unwrap_or(self.objective)
    }

    pub fn target_for(&self, segment: &str, level: Level) -> Option<Millis> {
        self.segment_targets
            .get(segment)
            .and_then(|t| t[level as usize])
            .or(self.targets[level as usize])
    }
}

/// A weekly business calendar as written in the configuration. Interval bounds
/// are minutes after local midnight, `0..=1440`, start < end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarDef {
    pub name: String,
    /// IANA zone; `None` = the customer's zone.
    pub timezone: Option<String>,
    /// Index 0 = Monday .. 6 = Sunday.
    pub week: [Vec<(u16, u16)>; 7],
    /// Local dates (closed all day), as `YYYY-MM-DD`.
    pub holidays: BTreeSet<jiff::civil::Date>,
}

impl CalendarDef {
    /// The `24x7` calendar: every instant is business time.
    pub fn always() -> CalendarDef {
        CalendarDef {
            name: "24x7".to_string(),
            timezone: Some("UTC".to_string()),
            week: std::array::from_fn(|_| vec![(0, 1440)]),
            holidays: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDef {
    pub id: String,
    pub segment: String,
    pub timezone: String,
    /// Name of a calendar in `Config::calendars`, or `24x7`.
    pub calendar: String,
}

/// A maintenance window, force majeure or customer-caused period removed from
/// the SLOs it names. `None` lists mean "all".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub name: String,
    pub from: Millis,
    pub to: Millis,
    pub slos: Option<Vec<String>>,
    pub customers: Option<Vec<String>>,
    pub segments: Option<Vec<String>>,
    pub reason: String,
}

impl Exclusion {
    pub fn covers(&self, slo: &str, customer: &str, segment: &str) -> bool {
        let slo_ok = self
            .slos
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == slo));
        let cust_ok = match (&self.customers, &self.segments) {
            (None, None) => true,
            (c, s) => {
                c.as_ref().is_some_and(|c| c.iter().any(|x| x == customer))
                    || s.as_ref().is_some_and(|s| s.iter().any(|x| x == segment))
            }
        };
        slo_ok && cust_ok
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CreditTier {
    pub below: f64,
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditPolicy {
    pub slo: String,
    pub tiers: Vec<CreditTier>,
}

impl CreditPolicy {
    /// The largest `percent` among the tiers whose `below` exceeds the
    /// attainment; 0 when none applies or there is no data.
    pub fn credit(&self, attainment: Option<f64>) -> f64 {
        let Some(a) = attainment else { return 0.0 };
        self.tiers
            .iter()
            .filter(|t| a < t.below)
            .map(|t| t.percent)
            .fold(0.0, f64::max)
    }
}
