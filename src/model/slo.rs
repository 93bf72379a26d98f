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
}

impl SloDef {
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
