//! Reading the engine: windows (rolling, calendar month in a zone), the
//! numbers of SPEC §3 for a scope, burn rates, breaches and the monthly report.

use serde::Serialize;

use std::collections::BTreeMap;

use super::buckets::Counts;
use super::clock::{elapsed_at, incident_timeline, ticket_timeline, ClockRun, Outcome};
use super::customers::{CustomerIdx, GroupIdx};
use super::{breached_at, Contrib, Engine, ItemIdx};
use crate::model::interval::SpanSet;
use crate::model::slo::{Indicator, Level, SloDef, SloWindow, PRIORITIES, SEVERITIES};
use crate::model::time::{floor_minute, Millis, MINUTE};

/// Which customers a query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Customer(CustomerIdx),
    /// Aggregated: customers matching both filters (`None` = any).
    Filter {
        segment: Option<String>,
        timezone: Option<String>,
    },
}

/// The calendar month `year-month` in `zone`: [first local midnight, next one).
pub fn month_window(year: i16, month: i8, zone: &jiff::tz::TimeZone) -> Option<(Millis, Millis)> {
    let first = jiff::civil::Date::new(year, month, 1).ok()?;
    let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
    let start = zone
        .to_zoned_datetime(first.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    let end = zone
        .to_zoned_datetime(next.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some((
        start.timestamp().as_millisecond(),
        end.timestamp().as_millisecond(),
    ))
}

/// Parses `YYYY-MM`.
pub fn parse_month(s: &str) -> Option<(i16, i8)> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: i16 = y.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    (1..=12).contains(&m).then_some((y, m))
}

/// The SPEC §3 numbers for one scope and window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Numbers {
    pub objective: f64,
    pub total: f64,
    pub good: f64,
    pub bad: f64,
    pub attainment: Option<f64>,
    pub allowed_bad: f64,
    pub budget_consumed: Option<f64>,
    pub budget_remaining: Option<f64>,
    pub status: &'static str,
    pub excluded_seconds: f64,
}

impl Numbers {
    pub fn compute(objective: f64, total: f64, good: f64, excluded_seconds: f64) -> Numbers {
        let bad = total - good;
        let attainment = (total > 0.0).then(|| good / total);
        let allowed_bad = (1.0 - objective) * total;
        let budget_consumed = if bad == 0.0 {
            Some(0.0)
        } else if allowed_bad == 0.0 {
            None
        } else {
            Some(bad / allowed_bad)
        };
        let status = match attainment {
            None => "no_data",
            Some(a) if a >= objective => "met",
            Some(_) => "breached",
        };
        Numbers {
            objective,
            total,
            good,
            bad,
            attainment,
            allowed_bad,
            budget_consumed,
            budget_remaining: budget_consumed.map(|c| 1.0 - c),
            status,
            excluded_seconds,
        }
    }
}

/// The state of a running clock (SPEC §5 `slastream_tickets_open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClockState {
    OnTrack,
    AtRisk,
    Breached,
    Paused,
}

impl ClockState {
    pub const ALL: [ClockState; 4] = [
        ClockState::OnTrack,
        ClockState::AtRisk,
        ClockState::Breached,
        ClockState::Paused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClockState::OnTrack => "on_track",
            ClockState::AtRisk => "at_risk",
            ClockState::Breached => "breached",
            ClockState::Paused => "paused",
        }
    }
}

/// A running ticket or incident clock.
#[derive(Debug, Clone)]
pub struct OpenClock {
    pub slo: usize,
    pub kind: &'static str,
    pub id: String,
    pub customer: CustomerIdx,
    /// Priority (`P1`..) for tickets, severity (`SEV1`..) for incidents.
    pub level: &'static str,
    pub state: ClockState,
    pub elapsed: Millis,
    pub target: Millis,
    pub started_at: Millis,
    pub breach_at: Option<Millis>,
}

/// What every clock of one ticket or incident under one SLO shares: derived
/// once per item per query, then evaluated per customer.
struct ItemClock<'a> {
    kind: &'static str,
    id: &'a str,
    run: ClockRun,
    /// The item's pauses, when the SLO is pausable.
    pauses: Option<SpanSet>,
}

/// One customer's clock of an `ItemClock`.
struct ClockView {
    target: Millis,
    removed: SpanSet,
}

/// One entry of the breaches list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    pub slo: String,
    pub kind: &'static str,
    pub id: String,
    pub customer: String,
    pub segment: String,
    pub timezone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<&'static str>,
    pub target_seconds: f64,
    pub elapsed_seconds: f64,
    pub breached_at: Millis,
    pub stopped_at: Option<Millis>,
}

impl Engine {
    pub fn slo(&self, idx: usize) -> &SloDef {
        &self.settings.slos[idx]
    }

    fn in_scope(&self, scope: &Scope, c: CustomerIdx) -> bool {
        match scope {
            Scope::Customer(x) => *x == c,
            Scope::Filter { segment, timezone } => {
                let cust = self.customers.get(c);
                segment.as_deref().is_none_or(|s| s == &*cust.segment)
                    && timezone.as_deref().is_none_or(|z| z == &*cust.timezone)
            }
        }
    }

    /// The customers a scope covers: one customer scope names its customer
    /// directly, without walking every known customer.
    fn scope_customers<'a>(
        &'a self,
        scope: &'a Scope,
    ) -> Box<dyn Iterator<Item = CustomerIdx> + 'a> {
        match scope {
            Scope::Customer(x) => Box::new(
                ((*x as usize) < self.customers.len())
                    .then_some(*x)
                    .into_iter(),
            ),
            Scope::Filter { .. } => Box::new(
                self.customers
                    .iter()
                    .map(|(c, _)| c)
                    .filter(move |c| self.in_scope(scope, *c)),
            ),
        }
    }

    /// The objective for a scope in force at instant `t`: the customer's
    /// segment objective; for an aggregated scope restricted to one segment,
    /// that segment's; else the default.
    pub fn objective_at(&self, slo: usize, scope: &Scope, t: Millis) -> f64 {
        let def = self.slo(slo);
        match scope {
            Scope::Customer(c) => def.objective_at(Some(&self.customers.get(*c).segment), t),
            Scope::Filter {
                segment: Some(s), ..
            } => def.objective_at(Some(s), t),
            Scope::Filter { .. } => def.objective_at(None, t),
        }
    }

    /// Good/bad counts of a counted indicator in [from, to) as of `now`.
    fn counts(&self, slo: usize, scope: &Scope, from: Millis, to: Millis, now: Millis) -> Counts {
        let st = &self.slos[slo];
        let mut c = Counts::default();
        match scope {
            Scope::Customer(x) => c.add(self.customer_sum(slo, *x, from, to)),
            Scope::Filter { segment, timezone } => {
                for (g, group) in self.customers.groups().iter().enumerate() {
                    if segment.as_deref().is_some_and(|s| s != &*group.segment)
                        || timezone.as_deref().is_some_and(|z| z != &*group.timezone)
                    {
                        continue;
                    }
                    if let Some(s) = st.by_group.get(g) {
                        c.add(s.sum(from, to));
                    }
                }
            }
        }
        // Running clocks past their breach instant are already bad.
        let upto = to.min(now);
        if from < upto {
            match scope {
                Scope::Customer(x) => {
                    if let Some(p) = st.pending_by_customer.get(x) {
                        for (b, _) in p.range((from, 0)..(upto, 0)) {
                            if *b < now {
                                c.bad += 1;
                            }
                        }
                    }
                }
                Scope::Filter { .. } => {
                    for (b, _, cust) in st.pending.range((from, 0, 0)..(upto, 0, 0)) {
                        if *b < now && self.in_scope(scope, *cust) {
                            c.bad += 1;
                        }
                    }
                }
            }
        }
        // Exclusions bounded by whole minutes remove probe events at query
        // time (bucket sums are exact for them).
        if self.slo(slo).indicator.is_probe() && self.has_query_time_exclusions() {
            for cust in self.scope_customers(scope) {
                let spans = self.query_time_exclusion_spans(slo, cust);
                if spans.is_empty() {
                    continue;
                }
                for (a, b) in spans.clip(from, to).spans() {
                    c.sub(self.customer_sum(slo, cust, *a, *b));
                }
            }
        }
        c
    }

    /// Availability seconds (total, good, excluded) in [from, to) cut at now.
    fn availability(
        &self,
        slo: usize,
        scope: &Scope,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> (f64, f64, f64) {
        let to = to.min(now);
        if from >= to {
            return (0.0, 0.0, 0.0);
        }
        let st = &self.slos[slo];
        let (mut total, mut bad, mut excluded) = (0i64, 0i64, 0i64);
        for c in self.scope_customers(scope) {
            let excl = self.exclusion_spans(slo, c).clip(from, to);
            let ex = excl.measure();
            total += (to - from) - ex;
            excluded += ex;
            if let Some(items) = st.downtime.get(&c) {
                let mut down = SpanSet::new();
                for spans in items.values() {
                    down = down.union(&spans.clip(from, to));
                }
                bad += down.subtract(&excl).measure();
            }
        }
        let secs = |ms: i64| ms as f64 / 1000.0;
        (secs(total), secs(total - bad), secs(excluded))
    }

    /// The SPEC §3 numbers of SLO `slo` for `scope` over [from, to) as of `now`.
    pub fn numbers(
        &self,
        slo: usize,
        scope: &Scope,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Numbers {
        // The version in force at the window's last counted instant (SPEC §3
        // Definition versions).
        let objective = self.objective_at(slo, scope, to.min(now) - 1);
        if self.slo(slo).indicator == Indicator::IncidentAvailability {
            let (total, good, excluded) = self.availability(slo, scope, from, to, now);
            Numbers::compute(objective, total, good, excluded)
        } else {
            let c = self.counts(slo, scope, from, to, now);
            Numbers::compute(objective, c.total() as f64, c.good as f64, 0.0)
        }
    }

    /// burn_rate(L) = (bad_L / total_L) / (1 - objective) over the lookback
    /// ending now (0 when total_L = 0). Counted indicators use minute buckets:
    /// the lookback is the `L` of whole minutes ending with the current one.
    pub fn burn_rate(&self, slo: usize, scope: &Scope, lookback: Millis, now: Millis) -> f64 {
        let objective = self.objective_at(slo, scope, now);
        let (total, bad) = if self.slo(slo).indicator == Indicator::IncidentAvailability {
            let (t, g, _) = self.availability(slo, scope, now - lookback, now, now);
            (t, t - g)
        } else {
            let end = floor_minute(now) + MINUTE;
            let c = self.counts(slo, scope, end - lookback, end, now);
            (c.total() as f64, c.bad as f64)
        };
        if total <= 0.0 || objective >= 1.0 {
            return 0.0;
        }
        (bad / total) / (1.0 - objective)
    }

    /// SPEC §3 Time to exhaustion of the SLO's own window ending at `now`
    /// (month in `zone` for `month` windows), at the burn rate of the last
    /// 6h: seconds until the remaining budget is spent; 0 once it is spent;
    /// `None` when nothing burns or there is no data.
    pub fn exhaustion_seconds(
        &self,
        slo: usize,
        scope: &Scope,
        zone: &jiff::tz::TimeZone,
        now: Millis,
    ) -> Option<f64> {
        let (from, to) = self.own_window(slo, zone, now);
        let n = self.numbers(slo, scope, from, to, now);
        let burn = self.burn_rate(slo, scope, EXHAUSTION_LOOKBACK, now);
        exhaustion(&n, burn, (to - from) as f64 / 1000.0)
    }

    /// The SLO's own window ending at `now` for a customer (month in its zone)
    /// or an aggregated scope (month in `zone`).
    pub fn own_window(
        &self,
        slo: usize,
        zone: &jiff::tz::TimeZone,
        now: Millis,
    ) -> (Millis, Millis) {
        match self.slo(slo).window {
            SloWindow::Rolling(len) => {
                let end = floor_minute(now) + MINUTE;
                (end - len, end)
            }
            SloWindow::Month => {
                let z = jiff::Timestamp::from_millisecond(now)
                    .map(|t| t.to_zoned_datetime(zone.clone()))
                    .ok();
                z.and_then(|z| month_window(z.year(), z.month(), zone))
                    .unwrap_or((now, now))
            }
        }
    }

    /// Every ticket / incident clock whose current outcome is a breach. Each
    /// item's timeline is derived once, whatever the number of its customers.
    pub fn breaches(
        &self,
        slo_filter: Option<usize>,
        customer: Option<CustomerIdx>,
        now: Millis,
    ) -> Vec<Breach> {
        let mut out = Vec::new();
        for (s, st) in self.slos.iter().enumerate() {
            if slo_filter.is_some_and(|f| f != s) {
                continue;
            }
            let def = self.slo(s);
            for (item, contrib) in sorted_items(&st.contribs) {
                let mut shared: Option<Option<ItemClock>> = None;
                for (c, o) in &contrib.list {
                    if customer.is_some_and(|x| x != *c) {
                        continue;
                    }
                    let (breached_at, stopped_at) = match *o {
                        Outcome::Stopped {
                            at,
                            good: false,
                            breach_at,
                        } => (breach_at.unwrap_or(at), Some(at)),
                        Outcome::Running { breach_at: Some(b) } if b < now => (b, None),
                        _ => continue,
                    };
                    let Some(ic) = shared.get_or_insert_with(|| self.item_clock(def, item)) else {
                        break;
                    };
                    if let Some(b) = self.breach_entry(s, def, ic, *c, breached_at, stopped_at, now)
                    {
                        out.push(b);
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (a.breached_at, &a.slo, &a.id, &a.customer).cmp(&(
                b.breached_at,
                &b.slo,
                &b.id,
                &b.customer,
            ))
        });
        out
    }

    /// The number of entries of `breaches(None, None, now)` per (slo, group,
    /// level), without building them: what `/metrics` exports.
    pub fn breach_counts(&self, now: Millis) -> BTreeMap<(usize, GroupIdx, Level), u64> {
        let mut out = BTreeMap::new();
        for (s, st) in self.slos.iter().enumerate() {
            for contrib in st.contribs.values() {
                for (c, o) in &contrib.list {
                    if breached_at(o, now) {
                        let g = self.customers.get(*c).group;
                        *out.entry((s, g, contrib.level)).or_default() += 1;
                    }
                }
            }
        }
        out
    }

    /// `slastream_ticket_sla_breaches_total` per (slo, group, level) at
    /// `now`: a counter that never decreases while the process runs. Whether
    /// a running clock is breached depends on the instant, so the counter
    /// follows the breaches list from scrape to scrape: it starts at the
    /// list's size and adds every increase of the list (plus the clocks
    /// stopped late that events withdrew or moved since, which stay
    /// counted), never a decrease. A running breached clock withdrawn and
    /// another one breached between two scrapes, under the same labels,
    /// offset each other.
    pub fn breaches_total(&self, now: Millis) -> BTreeMap<(usize, GroupIdx, Level), u64> {
        let mut ex = self.breach_export.lock().unwrap_or_else(|e| e.into_inner());
        // A scrape answered late at an earlier instant must not count the
        // clocks breached in between twice.
        ex.now = ex.now.max(now);
        let mut current = self.breach_counts(ex.now);
        for (s, st) in self.slos.iter().enumerate() {
            for ((g, level), n) in &st.breaches_withdrawn {
                *current.entry((s, *g, *level)).or_default() += n;
            }
        }
        for (key, (last, total)) in ex.series.iter_mut() {
            let v = current.remove(key).unwrap_or(0);
            *total += v.saturating_sub(*last);
            *last = v;
        }
        for (key, v) in current {
            ex.series.insert(key, (v, v));
        }
        ex.series
            .iter()
            .map(|(k, (_, total))| (*k, *total))
            .collect()
    }

    /// Every running ticket / incident clock with its state at `now`:
    /// breached (target passed), paused (a pause or exclusion covers now),
    /// at risk (elapsed ≥ `warn_at` × target) or on track, in that order.
    /// Each item's timeline is derived once, whatever the number of its
    /// customers.
    pub fn open_clocks(&self, now: Millis, warn_at: f64) -> Vec<OpenClock> {
        let mut out = Vec::new();
        for (s, st) in self.slos.iter().enumerate() {
            let def = self.slo(s);
            if !(def.indicator.is_ticket() || def.indicator.is_incident_clock()) {
                continue;
            }
            for (item, contrib) in sorted_items(&st.contribs) {
                let mut shared: Option<Option<ItemClock>> = None;
                for (c, o) in &contrib.list {
                    let Outcome::Running { breach_at } = *o else {
                        continue;
                    };
                    let Some(ic) = shared.get_or_insert_with(|| self.item_clock(def, item)) else {
                        break;
                    };
                    let Some(v) = self.clock_view(s, def, ic, *c) else {
                        continue;
                    };
                    let elapsed =
                        elapsed_at(&ic.run, &v.removed, self.clock_calendar(def, *c), now);
                    let state = if breach_at.is_some_and(|b| b < now) || elapsed > v.target {
                        ClockState::Breached
                    } else if v.removed.contains(now) {
                        ClockState::Paused
                    } else if elapsed as f64 >= warn_at * v.target as f64 {
                        ClockState::AtRisk
                    } else {
                        ClockState::OnTrack
                    };
                    out.push(OpenClock {
                        slo: s,
                        kind: ic.kind,
                        id: ic.id.to_string(),
                        customer: *c,
                        level: level_name(ic, ic.run.level),
                        state,
                        elapsed,
                        target: v.target,
                        started_at: ic.run.start,
                        breach_at,
                    });
                }
            }
        }
        out
    }

    /// The clock of SLO `def` that an item runs (shared by its customers).
    fn item_clock(&self, def: &SloDef, item: ItemIdx) -> Option<ItemClock<'_>> {
        if def.indicator.is_ticket() {
            let it = &self.tickets.list[item as usize];
            let tl = ticket_timeline(&it.events)?;
            let run = if def.indicator == Indicator::TicketResponse {
                tl.response
            } else {
                tl.resolution
            };
            Some(ItemClock {
                kind: "ticket",
                id: &it.id,
                run,
                pauses: def.pausable.then_some(tl.pauses),
            })
        } else {
            let it = &self.incidents.list[item as usize];
            let tl = incident_timeline(&it.events)?;
            let run = if def.indicator == Indicator::IncidentAck {
                tl.ack
            } else {
                tl.resolution
            };
            Some(ItemClock {
                kind: "incident",
                id: &it.id,
                run,
                pauses: None,
            })
        }
    }

    /// A clock's target and removed spans, for an item's clock and a customer.
    fn clock_view(
        &self,
        s: usize,
        def: &SloDef,
        ic: &ItemClock<'_>,
        c: CustomerIdx,
    ) -> Option<ClockView> {
        let cust = self.customers.get(c);
        let target = def.target_at(&cust.segment, ic.run.level, ic.run.start)?;
        let removed = self.removed_spans(s, c, ic.pauses.as_ref());
        Some(ClockView { target, removed })
    }

    #[allow(clippy::too_many_arguments)]
    fn breach_entry(
        &self,
        s: usize,
        def: &SloDef,
        ic: &ItemClock<'_>,
        c: CustomerIdx,
        breached_at: Millis,
        stopped_at: Option<Millis>,
        now: Millis,
    ) -> Option<Breach> {
        let cust = self.customers.get(c);
        let ClockView { target, removed } = self.clock_view(s, def, ic, c)?;
        let elapsed = elapsed_at(
            &ic.run,
            &removed,
            self.clock_calendar(def, c),
            stopped_at.unwrap_or(now),
        );
        let ticket = ic.kind == "ticket";
        Some(Breach {
            slo: def.name.clone(),
            kind: ic.kind,
            id: ic.id.to_string(),
            customer: cust.id.to_string(),
            segment: cust.segment.to_string(),
            timezone: cust.timezone.to_string(),
            priority: ticket.then(|| PRIORITIES[ic.run.level as usize]),
            severity: (!ticket).then(|| SEVERITIES[ic.run.level as usize]),
            target_seconds: target as f64 / 1000.0,
            elapsed_seconds: elapsed as f64 / 1000.0,
            breached_at,
            stopped_at,
        })
    }

    /// The service credit (percent) for an attainment under SLO `slo`.
    pub fn credit_percent(&self, slo: usize, attainment: Option<f64>) -> f64 {
        let name = &self.slo(slo).name;
        self.settings
            .credits
            .iter()
            .filter(|p| &p.slo == name)
            .map(|p| p.credit(attainment))
            .fold(0.0, f64::max)
    }
}

/// The lookback of the burn rate a time to exhaustion is forecast at.
pub const EXHAUSTION_LOOKBACK: Millis = 6 * crate::model::time::HOUR;

/// `max(0, budget_remaining) * window_seconds / burn_rate`: `None` when
/// nothing burns or there is no data, 0 once the budget is spent (also when
/// no bad unit was allowed at all and one happened).
pub fn exhaustion(n: &Numbers, burn_rate: f64, window_seconds: f64) -> Option<f64> {
    if n.status == "no_data" || burn_rate <= 0.0 || !burn_rate.is_finite() {
        return None;
    }
    let remaining = n.budget_remaining.unwrap_or(0.0).max(0.0);
    Some(remaining * window_seconds / burn_rate)
}

/// The items of a clock SLO in item order (a stable output order).
fn sorted_items(
    contribs: &std::collections::HashMap<ItemIdx, Contrib>,
) -> Vec<(ItemIdx, &Contrib)> {
    let mut items: Vec<(ItemIdx, &Contrib)> = contribs.iter().map(|(i, c)| (*i, c)).collect();
    items.sort_unstable_by_key(|(i, _)| *i);
    items
}

/// `P1`.. for a ticket, `SEV1`.. for an incident.
fn level_name(ic: &ItemClock<'_>, level: Level) -> &'static str {
    if ic.kind == "ticket" {
        PRIORITIES[level as usize]
    } else {
        SEVERITIES[level as usize]
    }
}
