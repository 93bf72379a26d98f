//! Synthetic workload (SPEC §7 `slastream generate`): a deterministic, lazy
//! stream of valid SPEC §1 events for a set of customers — steady probes per
//! customer × service (one service burning its budget in the second half),
//! ticket lifecycles arriving mostly in the customers' business hours, and a
//! few incidents per simulated day.
//!
//! Every source schedules its next event in one `BinaryHeap`; the iterator
//! pops the earliest, so events come out in non-decreasing time order while
//! memory stays bounded by the open lifecycles and the probe streams.

mod json;
mod plan;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::{self, Write};

use anyhow::{anyhow, bail, Context as _};
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::slo::{CustomerDef, PRIORITIES, SEVERITIES};
use crate::model::time::{
    floor_minute, parse_duration, parse_rfc3339, Millis, DAY, MINUTE, SECOND,
};

use plan::{IncidentSeed, IncidentStep, TicketStep};

/// Probe services when neither the settings nor a configuration name any.
pub const DEFAULT_SERVICES: [&str; 3] = ["api", "web", "auth"];
/// Regions probes run from (`probe_id` = `probe-<service>-<region>`).
pub const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// Segments of synthetic customers, cycled by index (so any three customers
/// cover all three; enterprise is the rarest).
const SEGMENT_CYCLE: [&str; 5] = ["enterprise", "business", "standard", "business", "standard"];
/// Zones of synthetic customers, cycled by index; 7 is coprime to the
/// segment cycle, so segments × zones mix. Includes a :45 and a :30 offset
/// and a southern-hemisphere DST zone.
const ZONE_CYCLE: [&str; 7] = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "UTC",
    "America/Los_Angeles",
];

/// Share of all events that belong to tickets.
const TICKET_SHARE: f64 = 0.03;
/// Unplanned and planned incidents per simulated day, whatever the rate.
const INCIDENTS_PER_DAY: f64 = 4.0;
/// Every fifth incident is planned maintenance, starting with the first.
const PLANNED_EVERY: u64 = 5;
/// Bounds `customer_ids` well below the 64 KiB event limit.
const MAX_INCIDENT_CUSTOMERS: usize = 200;
/// Probe failure rate outside a burn.
const BASE_FAILURE: f64 = 0.001;
/// Per-stream failure rate of a burning service in the second half.
const BURN_FAILURE: (f64, f64) = (0.05, 0.10);
/// Latency of a probe that timed out.
const TIMEOUT_MS: f64 = 10_000.0;

/// Settings of a synthetic workload.
#[derive(Debug, Clone)]
pub struct GenSettings {
    pub seed: u64,
    /// Number of synthetic customers (ignored when `registry` is non-empty).
    pub customers: usize,
    /// Customers from a config; empty = synthesize `customers` of them.
    pub registry: Vec<CustomerDef>,
    /// Total events per second of simulated time (probes dominate).
    pub rate: f64,
    /// First event time.
    pub start: Millis,
    /// Simulated span: every event is in [start, start + duration).
    pub duration: Millis,
    /// Probe services (also named by incidents); empty = [`DEFAULT_SERVICES`].
    pub services: Vec<String>,
    /// Services whose probes fail heavily during the second half (so an SLO
    /// visibly burns). Default: the first service.
    pub burning: Vec<String>,
}

impl GenSettings {
    /// `customers` synthetic customers probed on [`DEFAULT_SERVICES`], the
    /// first of which burns.
    pub fn synthetic(
        seed: u64,
        customers: usize,
        rate: f64,
        start: Millis,
        duration: Millis,
    ) -> GenSettings {
        let services: Vec<String> = DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect();
        GenSettings {
            seed,
            customers,
            registry: Vec::new(),
            rate,
            start,
            duration,
            burning: services[..1].to_vec(),
            services,
        }
    }

    /// The customers of `cfg`'s registry (synthetic ones when it has none),
    /// probed on the `service` values its probe SLOs filter on (the defaults
    /// when none do); the first service burns.
    pub fn from_config(
        cfg: &crate::config::Config,
        seed: u64,
        customers: usize,
        rate: f64,
        start: Millis,
        duration: Millis,
    ) -> GenSettings {
        let mut settings = GenSettings::synthetic(seed, customers, rate, start, duration);
        settings.registry = cfg.customers.clone();
        let mut services: Vec<String> = Vec::new();
        for slo in cfg.slos.iter().filter(|s| s.indicator.is_probe()) {
            if let Some(s) = slo.filter.get("service") {
                if !services.contains(s) {
                    services.push(s.clone());
                }
            }
        }
        if !services.is_empty() {
            settings.burning = services[..1].to_vec();
            settings.services = services;
        }
        settings
    }
}

/// One generated message.
#[derive(Debug, Clone, PartialEq)]
pub struct GenEvent {
    pub at: Millis,
    /// `"ticket"`, `"incident"` or `"probe"`.
    pub kind: &'static str,
    /// The Kafka key: `ticket_id`, `incident_id` or `customer_id`.
    pub key: String,
    /// The message value: one JSON object, no trailing newline.
    pub json: String,
}

#[derive(Debug)]
struct Customer {
    id: String,
    segment: String,
    zone: TimeZone,
    /// `"customer_id":…` plus, for synthetic customers, `segment` and `timezone`.
    fields: String,
}

#[derive(Debug)]
struct ProbeStream {
    customer: u32,
    service: u32,
    /// Ticks emitted so far; tick k is due at `phase + k * interval` (+ jitter).
    tick: u64,
    phase: f64,
    median_ms: f64,
    /// Failure rate while burning.
    burn_failure: f64,
}

#[derive(Debug)]
enum Task {
    Probe(u32),
    TicketArrival,
    IncidentArrival,
    /// The incident that goes with the burn of this service.
    BurnIncident(u32),
    /// Remaining steps, last step first.
    Ticket {
        id: String,
        customer: u32,
        steps: Vec<TicketStep>,
    },
    Incident {
        id: String,
        steps: Vec<IncidentStep>,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Millis,
    /// Insertion order: breaks ties, so equal settings pop in equal order.
    seq: u64,
    task: Task,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Deterministic for equal settings; yields events in non-decreasing `at`
/// order. Lazy, so millions of events stream with bounded memory.
#[derive(Debug)]
pub struct Generator {
    rng: SmallRng,
    seed: u64,
    end: Millis,
    /// Instant from which the burning services fail.
    burn_from: Millis,
    /// Distinguishes runs in ids: event ids, ticket and incident ids of two
    /// runs with different settings never collide.
    run: String,
    customers: Vec<Customer>,
    /// Cumulative ticket weights of `customers` (by segment).
    ticket_weights: Vec<f64>,
    services: Vec<String>,
    burning: Vec<bool>,
    /// `"probe_id":…,"service":…,"region":…` per service × region.
    probe_fields: Vec<String>,
    streams: Vec<ProbeStream>,
    start: Millis,
    probe_interval: f64,
    probe_jitter: f64,
    /// Mean gap of the ticket proposal process before business-hours thinning.
    ticket_gap: f64,
    incident_gap: f64,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    events: u64,
    tickets: u64,
    incidents: u64,
    /// Incidents from the arrival process (the burn's incident is extra).
    incident_arrivals: u64,
    timestamps: json::Timestamps,
}

impl Generator {
    pub fn new(settings: GenSettings) -> Generator {
        let GenSettings {
            seed,
            customers,
            registry,
            rate,
            start,
            duration,
            services,
            burning,
        } = settings;
        let end = start.saturating_add(duration.max(0));
        // Incidents name a service, so there is always one.
        let services = if services.is_empty() {
            DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect()
        } else {
            services
        };
        let run = format!(
            "{:06x}",
            run_tag(seed, start, duration, rate, customers, &registry, &services) & 0xff_ffff
        );
        let customers: Vec<Customer> = if registry.is_empty() {
            (0..customers).map(synthetic_customer).collect()
        } else {
            registry.iter().map(registry_customer).collect()
        };
        let mut total = 0.0;
        let ticket_weights = customers
            .iter()
            .map(|c| {
                total += match c.segment.as_str() {
                    "enterprise" => 3.0,
                    "business" => 2.0,
                    _ => 1.0,
                };
                total
            })
            .collect();
        let probe_fields = services
            .iter()
            .flat_map(|s| {
                REGIONS.iter().map(move |r| {
                    let mut f = String::new();
                    json::push_field(&mut f, "probe_id", &format!("probe-{s}-{r}"));
                    f.push(',');
                    json::push_field(&mut f, "service", s);
                    f.push(',');
                    json::push_field(&mut f, "region", r);
                    f
                })
            })
            .collect();
        let burning_flags = services.iter().map(|s| burning.contains(s)).collect();

        // Split the rate: incidents are a fixed few per day, tickets a share,
        // probes the rest.
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        let live = rate > 0.0 && !customers.is_empty() && duration > 0;
        let incident_rate = INCIDENTS_PER_DAY * plan::EVENTS_PER_INCIDENT / (DAY / SECOND) as f64;
        let ticket_rate = TICKET_SHARE * rate;
        let probe_rate = (rate - ticket_rate - incident_rate).max(0.5 * rate);
        let n_streams = customers.len() * services.len();
        let probe_interval = n_streams as f64 / probe_rate * SECOND as f64;
        let ticket_open_rate = if live {
            ticket_rate / ticket_events_within(seed, duration) / mean_business_weight()
        } else {
            0.0
        };

        let mut g = Generator {
            rng: SmallRng::seed_from_u64(seed),
            seed,
            end,
            burn_from: start.saturating_add(duration.max(0) / 2),
            run,
            customers,
            ticket_weights,
            services,
            burning: burning_flags,
            probe_fields,
            streams: Vec::with_capacity(n_streams),
            start,
            probe_interval,
            probe_jitter: (probe_interval * 0.02).min(SECOND as f64),
            ticket_gap: SECOND as f64 / ticket_open_rate,
            incident_gap: DAY as f64 / INCIDENTS_PER_DAY,
            heap: BinaryHeap::new(),
            seq: 0,
            events: 0,
            tickets: 0,
            incidents: 0,
            incident_arrivals: 0,
            timestamps: json::Timestamps::default(),
        };
        if live {
            g.schedule_sources();
        }
        g
    }

    fn schedule_sources(&mut self) {
        for customer in 0..self.customers.len() as u32 {
            for service in 0..self.services.len() as u32 {
                let stream = ProbeStream {
                    customer,
                    service,
                    tick: 0,
                    phase: self.rng.random::<f64>() * self.probe_interval,
                    median_ms: plan::uniform(&mut self.rng, 80.0, 150.0),
                    burn_failure: plan::uniform(&mut self.rng, BURN_FAILURE.0, BURN_FAILURE.1),
                };
                self.streams.push(stream);
                let i = self.streams.len() as u32 - 1;
                let at = self.probe_due(i);
                self.schedule(at, Task::Probe(i));
            }
        }
        let at = self.start + self.exp_gap(self.ticket_gap);
        self.schedule(at, Task::TicketArrival);
        let at = self.start + self.exp_gap(self.incident_gap);
        self.schedule(at, Task::IncidentArrival);
        // The burn shows up as an incident too, a few minutes after the
        // probes start failing.
        if let Some(service) = self.burning.iter().position(|b| *b) {
            let at = self.burn_from + plan::uniform(&mut self.rng, 5.0, 20.0) as Millis * MINUTE;
            self.schedule(at, Task::BurnIncident(service as u32));
        }
    }

    /// Drops what would fall outside the span.
    fn schedule(&mut self, at: Millis, task: Task) {
        if at < self.end {
            self.seq += 1;
            self.heap.push(Scheduled {
                at,
                seq: self.seq,
                task,
            });
        }
    }

    fn exp_gap(&mut self, mean: f64) -> Millis {
        let u = 1.0 - self.rng.random::<f64>();
        (-u.ln() * mean).min(i64::MAX as f64 / 4.0) as Millis
    }

    fn probe_due(&mut self, i: u32) -> Millis {
        let s = &self.streams[i as usize];
        let base = s.phase + s.tick as f64 * self.probe_interval;
        let jitter = self.rng.random::<f64>() * self.probe_jitter;
        self.start + (base + jitter).min(i64::MAX as f64 / 4.0) as Millis
    }

    /// `{"event_id":"<seed>-<run>-<counter>"`, all hex.
    fn next_event_id(&mut self, out: &mut String) {
        self.events += 1;
        out.push_str("{\"event_id\":\"");
        let _ = write!(out, "{:x}-{}-{:x}", self.seed, self.run, self.events);
        out.push('"');
    }

    /// Common fields up to and including `occurred_at`, then the customer.
    fn head(&mut self, kind: &str, at: Millis) -> String {
        let mut out = String::with_capacity(320);
        self.next_event_id(&mut out);
        out.push_str(",\"kind\":\"");
        out.push_str(kind);
        out.push_str("\",\"occurred_at\":\"");
        self.timestamps.push(&mut out, at);
        out.push('"');
        out
    }

    fn probe(&mut self, i: u32, at: Millis) -> GenEvent {
        let (customer, service, tick, median, burn_failure) = {
            let s = &self.streams[i as usize];
            (
                s.customer as usize,
                s.service as usize,
                s.tick,
                s.median_ms,
                s.burn_failure,
            )
        };
        let burning = self.burning[service] && at >= self.burn_from;
        let failure = if burning { burn_failure } else { BASE_FAILURE };
        let success = !self.rng.random_bool(failure);
        let latency = if success {
            let median = if burning { median * 1.6 } else { median };
            let mut l = plan::lognormal(&mut self.rng, median, 0.3);
            if self.rng.random_bool(0.02) {
                l *= plan::uniform(&mut self.rng, 2.0, 8.0); // the tail
            }
            l
        } else if self.rng.random_bool(0.4) {
            TIMEOUT_MS + plan::uniform(&mut self.rng, 0.0, 50.0)
        } else {
            plan::uniform(&mut self.rng, 2.0, 40.0) // fast 5xx
        };
        let region = (customer + tick as usize) % REGIONS.len();

        let mut out = self.head("probe", at);
        let c = &self.customers[customer];
        out.push(',');
        out.push_str(&c.fields);
        out.push(',');
        out.push_str(&self.probe_fields[service * REGIONS.len() + region]);
        out.push_str(if success {
            ",\"success\":true"
        } else {
            ",\"success\":false"
        });
        let _ = write!(out, ",\"latency_ms\":{:.1}}}", latency);
        let key = c.id.clone();

        self.streams[i as usize].tick += 1;
        let next = self.probe_due(i);
        self.schedule(next, Task::Probe(i));
        GenEvent {
            at,
            kind: "probe",
            key,
            json: out,
        }
    }

    /// Proposes a ticket; keeps it with the business-hours weight of the
    /// chosen customer's local time (thinning), so tickets cluster in office
    /// hours without changing the long-run rate.
    fn ticket_arrival(&mut self, at: Millis) {
        let next = at + self.exp_gap(self.ticket_gap).max(1);
        self.schedule(next, Task::TicketArrival);
        let customer = self.pick_ticket_customer();
        let weight = business_weight(&self.customers[customer].zone, at);
        if self.rng.random::<f64>() >= weight {
            return;
        }
        self.tickets += 1;
        let id = format!("tkt-{}-{:05}", self.run, self.tickets);
        let mut steps = plan::ticket(&mut self.rng, at);
        steps.reverse();
        if let Some(first) = steps.last().map(|s| s.at) {
            self.schedule(
                first,
                Task::Ticket {
                    id,
                    customer: customer as u32,
                    steps,
                },
            );
        }
    }

    fn pick_ticket_customer(&mut self) -> usize {
        let total = self.ticket_weights.last().copied().unwrap_or(0.0);
        let x = self.rng.random::<f64>() * total;
        self.ticket_weights
            .partition_point(|w| *w <= x)
            .min(self.customers.len() - 1)
    }

    fn ticket(
        &mut self,
        id: String,
        customer: u32,
        mut steps: Vec<TicketStep>,
        at: Millis,
    ) -> Option<GenEvent> {
        let step = steps.pop()?;
        let mut out = self.head("ticket", at);
        out.push(',');
        out.push_str(&self.customers[customer as usize].fields);
        out.push(',');
        json::push_field(&mut out, "ticket_id", &id);
        out.push_str(",\"action\":\"");
        out.push_str(step.action.as_str());
        out.push('"');
        if let Some(p) = step.priority {
            out.push_str(",\"priority\":\"");
            out.push_str(PRIORITIES[p as usize]);
            out.push('"');
        }
        out.push('}');
        let key = id.clone();
        if let Some(next) = steps.last().map(|s| s.at) {
            self.schedule(
                next,
                Task::Ticket {
                    id,
                    customer,
                    steps,
                },
            );
        }
        Some(GenEvent {
            at,
            kind: "ticket",
            key,
            json: out,
        })
    }

    fn incident_arrival(&mut self, at: Millis) {
        let next = at + self.exp_gap(self.incident_gap).max(1);
        self.schedule(next, Task::IncidentArrival);
        let planned = self.incident_arrivals % PLANNED_EVERY == 0;
        self.incident_arrivals += 1;
        let seed = IncidentSeed {
            severity: plan::severity(&mut self.rng, planned),
            customers: self.affected_customers(),
            service: self.rng.random_range(0..self.services.len().max(1)) as u32,
            planned,
        };
        self.open_incident(at, seed);
    }

    fn open_incident(&mut self, at: Millis, seed: IncidentSeed) {
        self.incidents += 1;
        let id = format!("inc-{}-{:03}", self.run, self.incidents);
        let mut steps = plan::incident(&mut self.rng, at, seed, self.customers.len() as u32);
        steps.reverse();
        if let Some(first) = steps.last().map(|s| s.at) {
            self.schedule(first, Task::Incident { id, steps });
        }
    }

    /// A few customers, all customers of one zone (a regional outage), or
    /// everyone; at most [`MAX_INCIDENT_CUSTOMERS`].
    fn affected_customers(&mut self) -> Vec<u32> {
        let n = self.customers.len() as u32;
        let roll = self.rng.random::<f64>();
        let mut out: Vec<u32> = if roll < 0.55 {
            let mut v = Vec::new();
            for _ in 0..self.rng.random_range(1..=3) {
                let c = self.rng.random_range(0..n);
                if !v.contains(&c) {
                    v.push(c);
                }
            }
            v
        } else if roll < 0.85 {
            let zone = self.customers[self.rng.random_range(0..n) as usize]
                .zone
                .iana_name();
            (0..n)
                .filter(|c| self.customers[*c as usize].zone.iana_name() == zone)
                .collect()
        } else {
            (0..n).collect()
        };
        while out.len() > MAX_INCIDENT_CUSTOMERS {
            out.swap_remove(self.rng.random_range(0..out.len()));
        }
        out.sort_unstable();
        out
    }

    fn incident(
        &mut self,
        id: String,
        mut steps: Vec<IncidentStep>,
        at: Millis,
    ) -> Option<GenEvent> {
        let step = steps.pop()?;
        let mut out = self.head("incident", at);
        out.push(',');
        json::push_field(&mut out, "incident_id", &id);
        out.push_str(",\"action\":\"");
        out.push_str(step.action.as_str());
        out.push('"');
        if let Some(s) = step.severity {
            out.push_str(",\"severity\":\"");
            out.push_str(SEVERITIES[s as usize]);
            out.push('"');
        }
        if let Some(list) = &step.customers {
            out.push_str(",\"customer_ids\":[");
            for (i, c) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::push_str(&mut out, &self.customers[*c as usize].id);
            }
            out.push(']');
        }
        if let Some(s) = step.service {
            out.push(',');
            json::push_field(&mut out, "service", &self.services[s as usize]);
        }
        if step.planned {
            out.push_str(",\"planned\":true");
        }
        out.push('}');
        let key = id.clone();
        if let Some(next) = steps.last().map(|s| s.at) {
            self.schedule(next, Task::Incident { id, steps });
        }
        Some(GenEvent {
            at,
            kind: "incident",
            key,
            json: out,
        })
    }
}

impl Iterator for Generator {
    type Item = GenEvent;

    fn next(&mut self) -> Option<GenEvent> {
        loop {
            let Scheduled { at, task, .. } = self.heap.pop()?;
            let event = match task {
                Task::Probe(i) => Some(self.probe(i, at)),
                Task::TicketArrival => {
                    self.ticket_arrival(at);
                    None
                }
                Task::IncidentArrival => {
                    self.incident_arrival(at);
                    None
                }
                Task::BurnIncident(service) => {
                    let customers = self.affected_customers();
                    self.open_incident(
                        at,
                        IncidentSeed {
                            severity: 1,
                            customers,
                            service,
                            planned: false,
                        },
                    );
                    None
                }
                Task::Ticket {
                    id,
                    customer,
                    steps,
                } => self.ticket(id, customer, steps, at),
                Task::Incident { id, steps } => self.incident(id, steps, at),
            };
            if event.is_some() {
                return event;
            }
        }
    }
}

fn synthetic_customer(i: usize) -> Customer {
    let id = format!("cust-{:03}", i + 1);
    let segment = SEGMENT_CYCLE[i % SEGMENT_CYCLE.len()];
    let zone = ZONE_CYCLE[i % ZONE_CYCLE.len()];
    let mut fields = String::new();
    json::push_field(&mut fields, "customer_id", &id);
    fields.push(',');
    json::push_field(&mut fields, "segment", segment);
    fields.push(',');
    json::push_field(&mut fields, "timezone", zone);
    Customer {
        id,
        segment: segment.to_string(),
        zone: TimeZone::get(zone).unwrap_or(TimeZone::UTC),
        fields,
    }
}

/// Registry customers: the pipeline knows their segment and zone already.
fn registry_customer(c: &CustomerDef) -> Customer {
    let mut fields = String::new();
    json::push_field(&mut fields, "customer_id", &c.id);
    Customer {
        id: c.id.clone(),
        segment: c.segment.clone(),
        zone: TimeZone::get(&c.timezone).unwrap_or(TimeZone::UTC),
        fields,
    }
}

/// Relative ticket intensity at a local weekday and hour: office hours full,
/// evenings and weekends quieter.
fn weight_at(weekday: Weekday, hour: i8) -> f64 {
    match weekday {
        Weekday::Saturday | Weekday::Sunday => 0.15,
        _ if (8..18).contains(&hour) => 1.0,
        _ => 0.25,
    }
}

fn business_weight(zone: &TimeZone, at: Millis) -> f64 {
    match Timestamp::from_millisecond(at) {
        Ok(ts) => {
            let local = zone.to_datetime(ts);
            weight_at(local.weekday(), local.hour())
        }
        Err(_) => 1.0,
    }
}

/// The mean of [`weight_at`] over a week: the share of proposals kept.
fn mean_business_weight() -> f64 {
    let days = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    let sum: f64 = days
        .iter()
        .flat_map(|d| (0..24).map(move |h| weight_at(*d, h)))
        .sum();
    sum / (7.0 * 24.0)
}

/// Expected ticket events inside a span of `duration` per ticket opened in
/// it (at a uniform instant): short spans cut lifecycles off, so they need
/// more tickets to keep the ticket share of the events. Estimated by
/// sampling with its own generator, leaving the workload's sequence alone.
fn ticket_events_within(seed: u64, duration: Millis) -> f64 {
    const SAMPLES: u32 = 2_000;
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_7ac4_e75a_3b1e);
    let mut events = 0usize;
    for _ in 0..SAMPLES {
        let left = ((1.0 - rng.random::<f64>()) * duration as f64) as Millis;
        events += plan::ticket(&mut rng, 0)
            .iter()
            .filter(|s| s.at < left)
            .count()
            .max(1);
    }
    events as f64 / SAMPLES as f64
}

fn run_tag(
    seed: u64,
    start: Millis,
    duration: Millis,
    rate: f64,
    customers: usize,
    registry: &[CustomerDef],
    services: &[String],
) -> u64 {
    // SplitMix64 steps over the settings: stable across builds, unlike
    // `std`'s hasher.
    fn mix(h: u64, v: u64) -> u64 {
        let mut z = (h ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut h = mix(0, seed);
    for v in [
        start as u64,
        duration as u64,
        rate.to_bits(),
        customers as u64,
    ] {
        h = mix(h, v);
    }
    for s in registry.iter().map(|c| &c.id).chain(services) {
        for b in s.bytes() {
            h = mix(h, b as u64);
        }
        h = mix(h, 0xff);
    }
    h
}

/// Writes every event of `generator` as NDJSON; returns the number of lines.
pub fn write_ndjson<W: Write>(generator: Generator, out: W) -> io::Result<u64> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut lines = 0;
    for event in generator {
        out.write_all(event.json.as_bytes())?;
        out.write_all(b"\n")?;
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

/// `slastream generate` without `--kafka`: NDJSON to stdout.
/// `duration`: `<n><unit>`; `start`: RFC 3339, or `None` = now - duration
/// rounded down to a whole minute.
pub fn run_cli(
    cfg: Option<crate::config::Config>,
    rate: f64,
    customers: usize,
    seed: u64,
    duration: &str,
    start: Option<&str>,
    kafka: Option<&str>,
) -> anyhow::Result<()> {
    let span = parse_duration(duration).filter(|d| *d > 0).ok_or_else(|| {
        anyhow!("invalid --duration {duration:?}: expected a positive <n><unit> such as 1h or 7d")
    })?;
    if !(rate.is_finite() && rate > 0.0) {
        bail!("invalid --rate {rate}: expected a positive number of events per second");
    }
    let start = match start {
        Some(s) => parse_rfc3339(s).ok_or_else(|| {
            anyhow!("invalid --start {s:?}: expected an RFC 3339 timestamp such as 2026-11-02T09:30:00Z")
        })?,
        None => floor_minute(Timestamp::now().as_millisecond() - span),
    };
    let settings = match &cfg {
        Some(cfg) => GenSettings::from_config(cfg, seed, customers, rate, start, span),
        None => GenSettings::synthetic(seed, customers, rate, start, span),
    };
    if settings.registry.is_empty() && settings.customers == 0 {
        bail!("invalid --customers 0: nothing to generate");
    }
    if let Some(brokers) = kafka {
        let mut k = cfg
            .as_ref()
            .map(|c| c.kafka.clone())
            .unwrap_or_else(|| crate::config::Config::default().kafka);
        k.brokers = brokers.to_string();
        let mut p = crate::ingest::produce::EventProducer::new(&k)?;
        for ev in Generator::new(settings) {
            let topic = p.topic_for(ev.kind).to_string();
            p.send(&topic, Some(ev.key.as_bytes()), ev.json.as_bytes())?;
        }
        let sent = p.finish(std::time::Duration::from_secs(120))?;
        tracing::info!(events = sent, brokers, "published");
        return Ok(());
    }
    let written = match write_ndjson(Generator::new(settings), io::stdout().lock()) {
        Ok(n) => n,
        // `generate | head` is a normal way to look at a sample.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e).context("writing events to stdout"),
    };
    tracing::info!(events = written, "generated");
    Ok(())
}

#[cfg(test)]
mod tests;
