//! Lifecycles of synthetic tickets and incidents, planned whole when they
//! open: every step with its instant, in strictly increasing time order. The
//! generator then emits each step at its own time.

use rand::rngs::SmallRng;
use rand::Rng;

use crate::model::event::{IncidentAction, TicketAction};
use crate::model::slo::Level;
use crate::model::time::{Millis, DAY, HOUR, MINUTE, SECOND};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct TicketStep {
    pub at: Millis,
    pub action: TicketAction,
    /// On `opened` and `priority_changed`.
    pub priority: Option<Level>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct IncidentStep {
    pub at: Millis,
    pub action: IncidentAction,
    pub severity: Option<Level>,
    /// Indices into the generator's customers; a new list replaces the old one.
    pub customers: Option<Vec<u32>>,
    /// On `opened` only (SPEC §1.2 reads `service` and `planned` from there).
    pub service: Option<u32>,
    pub planned: bool,
}

/// The choices that make an incident before its timeline is drawn.
#[derive(Debug, Clone)]
pub(super) struct IncidentSeed {
    pub severity: Level,
    pub customers: Vec<u32>,
    pub service: u32,
    pub planned: bool,
}

// Weights of P1..P4: most tickets are P3.
const PRIORITY_WEIGHTS: [f64; 4] = [0.05, 0.15, 0.55, 0.25];
// Medians of the first response by priority; with sigma 1 about one ticket in
// six misses a first-response target of ~2.7 medians (1h for P1, 8h for P3).
const RESPONSE_MEDIAN: [Millis; 4] = [20 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR];
const RESOLVE_MEDIAN: [Millis; 4] = [3 * HOUR, 8 * HOUR, 20 * HOUR, 40 * HOUR];
const P_CANCEL: f64 = 0.03;
const P_PAUSE: f64 = 0.25;
/// Of the paused tickets: closed while still waiting on the customer.
const P_RESOLVED_WHILE_PAUSED: f64 = 0.10;
const P_REOPEN: f64 = 0.10;
const P_PRIORITY_CHANGE: f64 = 0.06;

const SEVERITY_WEIGHTS: [f64; 4] = [0.08, 0.22, 0.40, 0.30];
const PLANNED_SEVERITY_WEIGHTS: [f64; 4] = [0.0, 0.30, 0.40, 0.30];
const ACK_MEDIAN: [Millis; 4] = [4 * MINUTE, 8 * MINUTE, 25 * MINUTE, HOUR];
const MITIGATE_MEDIAN: [Millis; 4] = [35 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR];
const RESOLVE_AFTER_MITIGATION_MEDIAN: [Millis; 4] = [HOUR, 90 * MINUTE, 3 * HOUR, 6 * HOUR];
const P_SEVERITY_CHANGE: f64 = 0.20;
const P_SCOPE_CHANGE: f64 = 0.15;
pub(super) const EVENTS_PER_INCIDENT: f64 = 3.8;

pub(super) fn uniform(rng: &mut SmallRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A standard normal draw (Box–Muller).
pub(super) fn normal(rng: &mut SmallRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-normal with the given median: most draws near it, a long right tail.
pub(super) fn lognormal(rng: &mut SmallRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

fn delay(rng: &mut SmallRng, median: Millis, sigma: f64) -> Millis {
    lognormal(rng, median as f64, sigma).min(60.0 * DAY as f64) as Millis
}

pub(super) fn weighted(rng: &mut SmallRng, weights: &[f64]) -> usize {
    let mut x = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn ceil_to(t: Millis, unit: Millis) -> Millis {
    t.div_euclid(unit) * unit + if t.rem_euclid(unit) == 0 { 0 } else { unit }
}

/// Whole seconds, each step at least a second after the previous one, so
/// that no two events of one lifecycle tie (ties would apply in SPEC §3's
/// action order, which need not be the planned order).
fn space_out(times: impl Iterator<Item = Millis>) -> Vec<Millis> {
    let mut out: Vec<Millis> = Vec::new();
    for t in times {
        let t = ceil_to(t, SECOND);
        out.push(match out.last() {
            Some(&prev) if t <= prev => prev + SECOND,
            _ => t,
        });
    }
    out
}

/// One ticket from `opened` at `t0` to its final step.
pub(super) fn ticket(rng: &mut SmallRng, t0: Millis) -> Vec<TicketStep> {
    let p = weighted(rng, &PRIORITY_WEIGHTS) as Level;
    let step = |at, action, priority| TicketStep {
        at,
        action,
        priority,
    };
    let mut steps = vec![step(t0, TicketAction::Opened, Some(p))];
    let responded = t0 + delay(rng, RESPONSE_MEDIAN[p as usize], 1.0);

    if rng.random_bool(P_CANCEL) {
        let canceled = t0 + delay(rng, 45 * MINUTE, 1.0);
        if responded < canceled {
            steps.push(step(responded, TicketAction::Responded, None));
        }
        steps.push(step(canceled, TicketAction::Canceled, None));
        return finish(steps);
    }

    steps.push(step(responded, TicketAction::Responded, None));
    let mut cursor = responded;
    let mut resolved = None;
    if rng.random_bool(P_PAUSE) {
        let paused = cursor + delay(rng, 90 * MINUTE, 1.0);
        steps.push(step(paused, TicketAction::Paused, None));
        if rng.random_bool(P_RESOLVED_WHILE_PAUSED) {
            // The customer never answered: closed while still waiting.
            resolved = Some(paused + delay(rng, 2 * DAY, 0.4));
        } else {
            cursor = paused + delay(rng, 6 * HOUR, 1.0);
            steps.push(step(cursor, TicketAction::Resumed, None));
        }
    }
    let resolved = resolved.unwrap_or_else(|| cursor + delay(rng, RESOLVE_MEDIAN[p as usize], 0.8));
    steps.push(step(resolved, TicketAction::Resolved, None));

    if rng.random_bool(P_PRIORITY_CHANGE) {
        let at = t0 + ((resolved - t0) as f64 * uniform(rng, 0.02, 0.6)) as Millis;
        // Mostly escalations (a P3 that turns out to be an outage), some
        // downgrades.
        let new = if p > 0 && rng.random_bool(0.7) {
            if p >= 2 {
                rng.random_range(0..=1)
            } else {
                p - 1
            }
        } else if p < 3 {
            p + 1
        } else {
            p - 1
        };
        steps.push(step(at, TicketAction::PriorityChanged, Some(new)));
        // Stable: an equal instant keeps the planned order.
        steps.sort_by_key(|s| s.at);
    }

    if rng.random_bool(P_REOPEN) {
        // "Still broken": most customers notice within the day.
        let reopened = resolved + delay(rng, 6 * HOUR, 1.0);
        steps.push(step(reopened, TicketAction::Reopened, None));
        steps.push(step(
            reopened + delay(rng, 5 * HOUR, 0.8),
            TicketAction::Resolved,
            None,
        ));
    }
    finish(steps)
}

fn finish(mut steps: Vec<TicketStep>) -> Vec<TicketStep> {
    let times = space_out(steps.iter().map(|s| s.at));
    for (s, t) in steps.iter_mut().zip(times) {
        s.at = t;
    }
    steps
}

pub(super) fn severity(rng: &mut SmallRng, planned: bool) -> Level {
    weighted(
        rng,
        if planned {
            &PLANNED_SEVERITY_WEIGHTS
        } else {
            &SEVERITY_WEIGHTS
        },
    ) as Level
}

/// One incident from `opened` (at `t0`, or the next quarter hour for planned
/// maintenance) to `resolved`. `n_customers` bounds the customers a changed
/// `customer_ids` list may add.
pub(super) fn incident(
    rng: &mut SmallRng,
    t0: Millis,
    seed: IncidentSeed,
    n_customers: u32,
) -> Vec<IncidentStep> {
    let IncidentSeed {
        severity: sev,
        customers,
        service,
        planned,
    } = seed;
    let step = |at, action| IncidentStep {
        at,
        action,
        severity: None,
        customers: None,
        service: None,
        planned: false,
    };
    let opened = IncidentStep {
        severity: Some(sev),
        customers: Some(customers.clone()),
        service: Some(service),
        planned,
        ..step(t0, IncidentAction::Opened)
    };

    let mut steps = if planned {
        let start = ceil_to(t0, 15 * MINUTE);
        let ack = start + uniform(rng, 1.0, 3.0) as Millis * MINUTE;
        let end = start + ceil_to((uniform(rng, 0.5, 3.0) * HOUR as f64) as Millis, 5 * MINUTE);
        vec![
            IncidentStep {
                at: start,
                ..opened
            },
            step(ack, IncidentAction::Acknowledged),
            step(end, IncidentAction::Resolved),
        ]
    } else {
        let s = sev as usize;
        let ack = t0 + delay(rng, ACK_MEDIAN[s], 0.8);
        let mitigated = ack + delay(rng, MITIGATE_MEDIAN[s], 0.7);
        let resolved = mitigated + delay(rng, RESOLVE_AFTER_MITIGATION_MEDIAN[s], 0.7);
        let mut steps = vec![
            opened,
            step(ack, IncidentAction::Acknowledged),
            step(mitigated, IncidentAction::Mitigated),
            step(resolved, IncidentAction::Resolved),
        ];
        if rng.random_bool(P_SEVERITY_CHANGE) {
            // Reassessed when acknowledged.
            let new = if sev > 0 && rng.random_bool(0.6) {
                sev - 1
            } else if sev < 3 {
                sev + 1
            } else {
                sev - 1
            };
            steps[1].severity = Some(new);
        }
        if rng.random_bool(P_SCOPE_CHANGE) {
            let changed = rescope(rng, &customers, n_customers);
            if changed != customers {
                let at = if rng.random_bool(0.5) { 1 } else { 2 };
                steps[at].customers = Some(changed);
            }
        }
        steps
    };
    let times = space_out(steps.iter().map(|s| s.at));
    for (s, t) in steps.iter_mut().zip(times) {
        s.at = t;
    }
    steps
}

/// The affected customers as understood later: one or two more, or one fewer.
fn rescope(rng: &mut SmallRng, customers: &[u32], n_customers: u32) -> Vec<u32> {
    let mut out = customers.to_vec();
    if out.len() > 1 && rng.random_bool(0.3) {
        out.remove(rng.random_range(0..out.len()));
        return out;
    }
    for _ in 0..rng.random_range(1..=2) {
        let c = rng.random_range(0..n_customers.max(1));
        if !out.contains(&c) && out.len() < super::MAX_INCIDENT_CUSTOMERS {
            out.push(c);
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn ticket_steps_are_strictly_ordered_and_well_formed() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..5_000 {
            let steps = ticket(&mut rng, 1_000_000_000_123);
            assert_eq!(steps[0].action, TicketAction::Opened);
            assert!(steps.windows(2).all(|w| w[0].at < w[1].at), "{steps:?}");
            assert!(steps.iter().all(|s| s.at % SECOND == 0));
            for s in &steps {
                let needs = matches!(
                    s.action,
                    TicketAction::Opened | TicketAction::PriorityChanged
                );
                assert_eq!(s.priority.is_some(), needs, "{steps:?}");
            }
            let cancel = steps
                .iter()
                .position(|s| s.action == TicketAction::Canceled);
            assert!(cancel.is_none_or(|i| i == steps.len() - 1));
        }
    }

    #[test]
    fn incident_steps_are_strictly_ordered() {
        let mut rng = SmallRng::seed_from_u64(7);
        for i in 0..2_000 {
            let planned = i % 5 == 0;
            let seed = IncidentSeed {
                severity: severity(&mut rng, planned),
                customers: vec![1, 4],
                service: 0,
                planned,
            };
            let steps = incident(&mut rng, 1_000_000_000_123, seed, 12);
            assert_eq!(steps[0].action, IncidentAction::Opened);
            assert_eq!(
                steps.last().map(|s| s.action),
                Some(IncidentAction::Resolved)
            );
            assert!(steps.windows(2).all(|w| w[0].at < w[1].at), "{steps:?}");
            assert!(steps[1..]
                .iter()
                .all(|s| s.customers.as_ref().is_none_or(|c| !c.is_empty())));
        }
    }
}
