//! Reading the engine: windows (rolling, calendar month in a zone), the
//! numbers of SPEC §3 for a scope, burn rates, breaches and the monthly report.

use serde::Serialize;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::buckets::Counts;
use super::clock::{elapsed_at, incident_timeline, ticket_timeline, ClockRun, Outcome, TicketEv};
use super::customers::{CustomerIdx, GroupIdx};
use super::{Contrib, Engine, ItemIdx};
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
    Some((super::midnight(zone, first)?, super::midnight(zone, next)?))
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

/// The additive part of a scope's numbers (see `Engine::partial`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Partial {
    pub total: f64,
    pub good: f64,
    /// `excluded_seconds` (availability only).
    pub excluded: f64,
}

impl Partial {
    pub fn add(&mut self, other: Partial) {
        self.total += other.total;
        self.good += other.good;
        self.excluded += other.excluded;
    }
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

/// The clock contributions reads need, kept up to date wherever a
/// contribution changes (`Engine::set_contribs`), so that a scrape, an alert
/// evaluation or a page of breaches costs the running clocks and the
/// breaches it shows, not every item of the 400 days kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockIndex {
    /// Items with at least one running clock.
    running: BTreeSet<ItemIdx>,
    /// Clocks stopped late: (breached_at, item, customer) → stop instant.
    stopped_bad: BTreeMap<(Millis, ItemIdx, CustomerIdx), Millis>,
    /// The number of clocks stopped late per (customer, level). Keyed by
    /// customer, not group: a customer's group can change after the fact.
    stopped_bad_count: HashMap<(CustomerIdx, Level), u64>,
}

impl ClockIndex {
    /// Replaces what `item` contributes (`old`) with `new`.
    pub(crate) fn replace(&mut self, item: ItemIdx, old: &Contrib, new: &Contrib) {
        self.entries(item, old, false);
        self.count(old, -1);
        self.entries(item, new, true);
        self.count(new, 1);
    }

    /// Adds (or removes) the entries of what `item` contributes: whether it
    /// runs, and its clocks stopped late.
    pub(crate) fn entries(&mut self, item: ItemIdx, contrib: &Contrib, add: bool) {
        if !add {
            self.running.remove(&item);
        }
        for (c, o) in &contrib.list {
            match *o {
                Outcome::Running { .. } => {
                    if add {
                        self.running.insert(item);
                    }
                }
                Outcome::Stopped {
                    at,
                    good: false,
                    breach_at,
                } => {
                    let k = (breach_at.unwrap_or(at), item, *c);
                    if add {
                        self.stopped_bad.insert(k, at);
                    } else {
                        self.stopped_bad.remove(&k);
                    }
                }
                Outcome::Stopped { good: true, .. } => {}
            }
        }
    }

    /// Adds `sign` times the clocks of `contrib` stopped late to the counts.
    pub(crate) fn count(&mut self, contrib: &Contrib, sign: i64) {
        for (c, o) in &contrib.list {
            if matches!(o, Outcome::Stopped { good: false, .. }) {
                let k = (*c, contrib.level);
                let n = self.stopped_bad_count.entry(k).or_default();
                *n = n.saturating_add_signed(sign);
                if *n == 0 {
                    self.stopped_bad_count.remove(&k);
                }
            }
        }
    }

    /// The index of `contribs` built from scratch (what `replace` maintains).
    #[cfg(test)]
    pub(crate) fn build(contribs: &std::collections::HashMap<ItemIdx, Contrib>) -> ClockIndex {
        let mut index = ClockIndex::default();
        for (item, c) in contribs {
            index.replace(*item, &Contrib::default(), c);
        }
        index
    }
}

/// Where an entry sits in the breaches list, whose order is (breached_at,
/// slo, id, customer): the cursor of a page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct BreachKey {
    pub breached_at: Millis,
    pub slo: String,
    pub id: String,
    pub customer: String,
}

impl BreachKey {
    pub fn of(b: &Breach) -> BreachKey {
        BreachKey {
            breached_at: b.breached_at,
            slo: b.slo.clone(),
            id: b.id.clone(),
            customer: b.customer.clone(),
        }
    }
}

/// Which breaches to list.
#[derive(Debug, Clone, Default)]
pub struct BreachQuery {
    pub slo: Option<usize>,
    pub customer: Option<CustomerIdx>,
    /// `breached_at` in [from, to).
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    /// Only entries after this one in the list's order.
    pub after: Option<BreachKey>,
    /// At most this many entries (`None`: all).
    pub limit: Option<usize>,
}

/// A page of the breaches list.
#[derive(Debug, Clone, PartialEq)]
pub struct BreachPage {
    pub breaches: Vec<Breach>,
    /// Where the next page starts, when entries remain after this one.
    pub next: Option<BreachKey>,
}

/// A breach found in an index, before its entry is derived.
struct Candidate<'a> {
    breached_at: Millis,
    slo: usize,
    /// The item in memory, or `None` for a settled ticket read from the
    /// store.
    item: Option<ItemIdx>,
    customer: CustomerIdx,
    stopped_at: Option<Millis>,
    key: (&'a str, std::borrow::Cow<'a, str>, &'a str),
}

impl Candidate<'_> {
    fn key(&self) -> (Millis, &str, &str, &str) {
        (self.breached_at, self.key.0, &self.key.1, self.key.2)
    }

    fn to_key(&self) -> BreachKey {
        BreachKey {
            breached_at: self.breached_at,
            slo: self.key.0.to_string(),
            id: self.key.1.to_string(),
            customer: self.key.2.to_string(),
        }
    }
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
            Scope::Filter { segment, timezone } => {
                // Names compared once per group, not once per customer.
                let groups: Vec<bool> = self
                    .customers
                    .groups()
                    .iter()
                    .map(|g| {
                        segment.as_deref().is_none_or(|s| s == &*g.segment)
                            && timezone.as_deref().is_none_or(|z| z == &*g.timezone)
                    })
                    .collect();
                Box::new(
                    self.customers
                        .iter()
                        .filter(move |(_, c)| groups.get(c.group as usize) == Some(&true))
                        .map(|(c, _)| c),
                )
            }
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
        // Most windows meet no exclusion at all: then no customer's spans
        // need to be gathered.
        let any_exclusion = self
            .settings
            .exclusions
            .iter()
            .chain(self.runtime_exclusions.iter().map(|r| &r.exclusion))
            .any(|x| x.from < to && from < x.to);
        let (mut total, mut bad, mut excluded) = (0i64, 0i64, 0i64);
        for c in self.scope_customers(scope) {
            let excl = if any_exclusion {
                self.exclusion_spans(slo, c).clip(from, to)
            } else {
                SpanSet::new()
            };
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
        let p = self.partial(slo, scope, from, to, now);
        Numbers::compute(objective, p.total, p.good, p.excluded)
    }

    /// What `numbers` is computed from: counts (or seconds) of the scope's
    /// customers this engine holds. In cluster mode an aggregated answer is
    /// the sum of every task's partial, never a mean of their ratios.
    pub fn partial(
        &self,
        slo: usize,
        scope: &Scope,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Partial {
        if self.slo(slo).indicator == Indicator::IncidentAvailability {
            let (total, good, excluded) = self.availability(slo, scope, from, to, now);
            Partial {
                total,
                good,
                excluded,
            }
        } else {
            let c = self.counts(slo, scope, from, to, now);
            Partial {
                total: c.total() as f64,
                good: c.good as f64,
                excluded: 0.0,
            }
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

    /// Every ticket / incident clock whose current outcome is a breach, in
    /// the order (breached_at, slo, id, customer).
    pub fn breaches(
        &self,
        slo_filter: Option<usize>,
        customer: Option<CustomerIdx>,
        now: Millis,
    ) -> Vec<Breach> {
        let q = BreachQuery {
            slo: slo_filter,
            customer,
            ..BreachQuery::default()
        };
        self.breaches_page(&q, now).breaches
    }

    /// A page of the breaches list (see `breaches`). The candidates come
    /// from the indexes of clocks stopped late and of running clocks past
    /// their breach instant, walked over the `breached_at` range asked for
    /// only; entries are derived for the page alone, each item's timeline
    /// once whatever the number of its customers.
    pub fn breaches_page(&self, q: &BreachQuery, now: Millis) -> BreachPage {
        let (mut cands, mut more) = self.breach_candidates_of(q, &|_| true, now);
        if let Some(limit) = q.limit {
            if cands.len() > limit {
                more = true;
                cands.truncate(limit);
            }
        }
        let next = if more {
            cands.last().map(Candidate::to_key)
        } else {
            None
        };
        BreachPage {
            breaches: self.breach_entries(&cands, now),
            next,
        }
    }

    /// The breaches `q` selects whose customer `keep` accepts, newest first:
    /// how many there are, and entries `skip..skip + take` of them (a page
    /// of a list; only the page's entries are derived). `q.after` and
    /// `q.limit` are not used.
    pub fn breaches_newest_first(
        &self,
        q: &BreachQuery,
        keep: &dyn Fn(CustomerIdx) -> bool,
        skip: usize,
        take: usize,
        now: Millis,
    ) -> (usize, Vec<Breach>) {
        let q = BreachQuery {
            after: None,
            limit: None,
            ..q.clone()
        };
        let (cands, _) = self.breach_candidates_of(&q, keep, now);
        let total = cands.len();
        let page: Vec<Candidate> = cands.into_iter().rev().skip(skip).take(take).collect();
        (total, self.breach_entries(&page, now))
    }

    /// The breaches `q` selects (and `keep` accepts) in the list's order,
    /// before their entries are derived; with a limit, at least the first
    /// `limit` of them, and whether more may follow.
    fn breach_candidates_of(
        &self,
        q: &BreachQuery,
        keep: &dyn Fn(CustomerIdx) -> bool,
        now: Millis,
    ) -> (Vec<Candidate<'_>>, bool) {
        let lo = match (&q.after, q.from) {
            (Some(a), Some(f)) => a.breached_at.max(f),
            (Some(a), None) => a.breached_at,
            (None, Some(f)) => f,
            (None, None) => Millis::MIN,
        };
        let hi = q.to.unwrap_or(Millis::MAX);
        let mut cands = Vec::new();
        let mut more = false;
        for (s, st) in self.slos.iter().enumerate() {
            let def = self.slo(s);
            if q.slo.is_some_and(|f| f != s)
                || !(def.indicator.is_ticket() || def.indicator.is_incident_clock())
            {
                continue;
            }
            let stopped = st
                .clock_index
                .stopped_bad
                .range((lo, 0, 0)..)
                .take_while(|((b, _, _), _)| *b < hi)
                .map(|(&(b, item, c), &at)| (b, item, c, Some(at)));
            more |= self.breach_candidates(s, stopped, q, keep, &mut cands);
            let running = st
                .pending
                .range((lo, 0, 0)..)
                .take_while(|(b, _, _)| *b < hi.min(now))
                .map(|&(b, item, c)| (b, item, c, None));
            more |= self.breach_candidates(s, running, q, keep, &mut cands);
            if def.indicator.is_ticket() {
                more |= self.settled_breach_candidates(s, (lo, hi), q, keep, &mut cands);
            }
        }
        cands.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
        (cands, more)
    }

    /// The entries of `cands`, each item's timeline derived once.
    fn breach_entries(&self, cands: &[Candidate<'_>], now: Millis) -> Vec<Breach> {
        // Settled tickets' events, read once each.
        let mut settled: HashMap<&str, Option<Vec<TicketEv>>> = HashMap::new();
        for c in cands.iter().filter(|c| c.item.is_none()) {
            settled
                .entry(&c.key.1)
                .or_insert_with(|| self.settled_events(&c.key.1));
        }
        let mut clocks: HashMap<(usize, &str), Option<ItemClock>> = HashMap::new();
        let mut breaches = Vec::with_capacity(cands.len());
        for c in cands {
            let def = self.slo(c.slo);
            let ic = clocks
                .entry((c.slo, &c.key.1))
                .or_insert_with(|| match c.item {
                    Some(item) => self.item_clock(def, item),
                    None => settled
                        .get(&*c.key.1)
                        .and_then(|e| e.as_deref())
                        .and_then(|events| ticket_clock(def, &c.key.1, events)),
                });
            let Some(ic) = ic else { continue };
            if let Some(b) =
                self.breach_entry(c.slo, def, ic, c.customer, c.breached_at, c.stopped_at, now)
            {
                breaches.push(b);
            }
        }
        breaches
    }

    /// Adds the breaches of SLO `s` that pass `q` from one index range, in
    /// `breached_at` order. With a limit, it stops once it holds `limit` of
    /// them and the next is strictly later: no later entry of the range can
    /// be on the page, since `breached_at` leads the list's order. Returns
    /// whether it stopped early.
    fn breach_candidates<'a>(
        &'a self,
        s: usize,
        range: impl Iterator<Item = (Millis, ItemIdx, CustomerIdx, Option<Millis>)>,
        q: &BreachQuery,
        keep: &dyn Fn(CustomerIdx) -> bool,
        out: &mut Vec<Candidate<'a>>,
    ) -> bool {
        let def = self.slo(s);
        let ticket = def.indicator.is_ticket();
        let after = q.after.as_ref().map(|a| {
            (
                a.breached_at,
                a.slo.as_str(),
                a.id.as_str(),
                a.customer.as_str(),
            )
        });
        let (mut taken, mut last) = (0usize, Millis::MIN);
        for (breached_at, item, customer, stopped_at) in range {
            if q.customer.is_some_and(|x| x != customer) || !keep(customer) {
                continue;
            }
            if q.limit.is_some_and(|l| taken >= l) && breached_at > last {
                return true;
            }
            let id = if ticket {
                &self.tickets.list[item as usize].id
            } else {
                &self.incidents.list[item as usize].id
            };
            let cand = Candidate {
                breached_at,
                slo: s,
                item: Some(item),
                customer,
                stopped_at,
                key: (
                    def.name.as_str(),
                    std::borrow::Cow::Borrowed(id.as_str()),
                    &*self.customers.get(customer).id,
                ),
            };
            if after.is_some_and(|a| cand.key() <= a) {
                continue;
            }
            taken += 1;
            last = breached_at;
            out.push(cand);
        }
        false
    }

    /// `breach_candidates` for the clocks stopped late by settled tickets
    /// (read from the store) with `breached_at` in `range`; a ticket in
    /// memory is listed from there.
    fn settled_breach_candidates<'a>(
        &'a self,
        s: usize,
        range: (Millis, Millis),
        q: &BreachQuery,
        keep: &dyn Fn(CustomerIdx) -> bool,
        out: &mut Vec<Candidate<'a>>,
    ) -> bool {
        let Some(cold) = self.cold.as_ref() else {
            return false;
        };
        let def = self.slo(s);
        let after = q.after.as_ref().map(|a| {
            (
                a.breached_at,
                a.slo.as_str(),
                a.id.as_str(),
                a.customer.as_str(),
            )
        });
        let (mut taken, mut last, mut more) = (0usize, Millis::MIN, false);
        let r = cold.history.settled_breaches(
            &def.name,
            range.0,
            range.1,
            &mut |breached_at, id, customer, stopped_at| {
                if self.tickets.index.contains_key(id) {
                    return true;
                }
                let Some(c) = self.customers.lookup(customer) else {
                    return true;
                };
                if q.customer.is_some_and(|x| x != c) || !keep(c) {
                    return true;
                }
                if q.limit.is_some_and(|l| taken >= l) && breached_at > last {
                    more = true;
                    return false;
                }
                let cand = Candidate {
                    breached_at,
                    slo: s,
                    item: None,
                    customer: c,
                    stopped_at: Some(stopped_at),
                    key: (
                        def.name.as_str(),
                        std::borrow::Cow::Owned(id.to_string()),
                        &*self.customers.get(c).id,
                    ),
                };
                if after.is_some_and(|a| cand.key() <= a) {
                    return true;
                }
                taken += 1;
                last = breached_at;
                out.push(cand);
                true
            },
        );
        if let Err(e) = r {
            panic!("reading settled tickets' breaches from the state store: {e}");
        }
        more
    }

    /// The events of settled ticket `id`, read from the store.
    fn settled_events(&self, id: &str) -> Option<Vec<TicketEv>> {
        let cold = self.cold.as_ref()?;
        match cold.history.settled_ticket(id) {
            Ok(r) => r.map(|r| r.events),
            Err(e) => {
                // As for stored buckets: an answer without it would be wrong,
                // so the process fails (and restarts) instead.
                panic!("reading settled ticket {id} from the state store: {e}")
            }
        }
    }

    /// The number of entries of `breaches(None, None, now)` per (slo, group,
    /// level), without building them: what `/metrics` exports. It costs the
    /// customers with a late stop and the running clocks past their breach
    /// instant, not the history.
    pub fn breach_counts(&self, now: Millis) -> BTreeMap<(usize, GroupIdx, Level), u64> {
        let mut out = BTreeMap::new();
        for (s, st) in self.slos.iter().enumerate() {
            let stopped = st.clock_index.stopped_bad_count.iter();
            for ((c, level), n) in stopped.chain(&st.settled_bad) {
                let g = self.customers.get(*c).group;
                *out.entry((s, g, *level)).or_default() += n;
            }
            for (_, item, c) in st.pending.range(..(now, 0, 0)) {
                if let Some(contrib) = st.contribs.get(item) {
                    let g = self.customers.get(*c).group;
                    *out.entry((s, g, contrib.level)).or_default() += 1;
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
    /// customers; only items with a running clock are visited.
    pub fn open_clocks(&self, now: Millis, warn_at: f64) -> Vec<OpenClock> {
        let mut out = Vec::new();
        for (s, st) in self.slos.iter().enumerate() {
            let def = self.slo(s);
            if !(def.indicator.is_ticket() || def.indicator.is_incident_clock()) {
                continue;
            }
            let running = st
                .clock_index
                .running
                .iter()
                .filter_map(|i| Some((*i, st.contribs.get(i)?)));
            for (item, contrib) in running {
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
            ticket_clock(def, &it.id, &it.events)
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

/// The clock of ticket SLO `def` that ticket `id` with `events` runs.
fn ticket_clock<'a>(def: &SloDef, id: &'a str, events: &[TicketEv]) -> Option<ItemClock<'a>> {
    let tl = ticket_timeline(events)?;
    let run = if def.indicator == Indicator::TicketResponse {
        tl.response
    } else {
        tl.resolution
    };
    Some(ItemClock {
        kind: "ticket",
        id,
        run,
        pauses: def.pausable.then_some(tl.pauses),
    })
}

/// `P1`.. for a ticket, `SEV1`.. for an incident.
fn level_name(ic: &ItemClock<'_>, level: Level) -> &'static str {
    if ic.kind == "ticket" {
        PRIORITIES[level as usize]
    } else {
        SEVERITIES[level as usize]
    }
}

#[cfg(test)]
mod task_tests {
    //! Engines of P tasks (cluster mode), each fed every event, answer
    //! together what one engine answers: each customer from its owner, and
    //! every aggregated scope as the sum of the tasks' partials.

    use super::*;
    use crate::engine::Applied;
    use crate::generate::{GenSettings, Generator};
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, DAY};

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("test timestamp")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * a.abs().max(1.0)
    }

    #[test]
    fn tasks_together_answer_what_one_engine_answers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slastream.toml");
        let cfg = crate::config::load(&path).expect("shipped config");
        let tasks = 4;
        let mut one = Engine::new(&cfg);
        let mut parts: Vec<Engine> = (0..tasks)
            .map(|p| Engine::for_task(&cfg, Some((p, tasks))))
            .collect();
        let settings =
            GenSettings::from_config(&cfg, 7, 80, 2.0, t("2026-11-01T00:00:00Z"), 4 * DAY);
        let wall = Millis::MAX / 2;
        for g in Generator::new(settings) {
            let ev = decode(g.json.as_bytes()).expect("generated events decode");
            let want = one.apply(&ev, wall);
            let got: Vec<Applied> = parts.iter_mut().map(|e| e.apply(&ev, wall)).collect();
            if matches!(ev.body, crate::model::event::Body::Probe(_)) {
                // Applied by its owner alone.
                let owners = got.iter().filter(|a| **a != Applied::Elsewhere).count();
                assert_eq!(owners, 1, "{}", g.json);
                assert!(got.contains(&want), "{}: {want:?} / {got:?}", g.json);
            } else {
                assert!(got.iter().all(|a| *a == want), "{}", g.json);
            }
        }
        for e in &parts {
            assert_eq!(e.watermark(), one.watermark());
        }
        let held: usize = parts.iter().map(|e| e.customers().len()).sum();
        assert_eq!(held, one.customers().len(), "each customer in one task");

        let now = one.watermark().expect("events applied") + 3_600_000;
        let windows = [
            (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z")),
            (t("2026-11-02T00:00:00Z"), t("2026-11-03T00:00:00Z")),
            (now - 30 * DAY, now),
        ];
        let mut scopes = vec![Scope::Filter {
            segment: None,
            timezone: None,
        }];
        for g in one.customers().groups() {
            scopes.push(Scope::Filter {
                segment: Some(g.segment.to_string()),
                timezone: None,
            });
            scopes.push(Scope::Filter {
                segment: None,
                timezone: Some(g.timezone.to_string()),
            });
        }
        let mut compared = 0;
        for s in 0..one.settings.slos.len() {
            for scope in &scopes {
                for &(from, to) in &windows {
                    let want = one.partial(s, scope, from, to, now);
                    let mut sum = Partial::default();
                    for e in &parts {
                        sum.add(e.partial(s, scope, from, to, now));
                    }
                    assert!(
                        close(sum.total, want.total)
                            && close(sum.good, want.good)
                            && close(sum.excluded, want.excluded),
                        "slo {s} {scope:?} {from}..{to}: {sum:?} / {want:?}"
                    );
                    compared += usize::from(want.total > 0.0);
                }
            }
            for (c, cust) in one.customers().iter() {
                let owner = parts.iter().find(|e| e.owns(&cust.id)).expect("an owner");
                let oc = owner.customers().lookup(&cust.id).expect("owned and known");
                for &(from, to) in &windows {
                    let want = one.numbers(s, &Scope::Customer(c), from, to, now);
                    let got = owner.numbers(s, &Scope::Customer(oc), from, to, now);
                    assert!(
                        close(got.total, want.total) && close(got.good, want.good),
                        "slo {s} customer {} {from}..{to}",
                        cust.id
                    );
                }
            }
            let key = |b: &Breach| {
                (
                    b.id.clone(),
                    b.customer.clone(),
                    b.breached_at,
                    b.stopped_at,
                )
            };
            let mut want: Vec<_> = one.breaches(Some(s), None, now).iter().map(key).collect();
            let mut got: Vec<_> = parts
                .iter()
                .flat_map(|e| e.breaches(Some(s), None, now))
                .map(|b| key(&b))
                .collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "breaches of slo {s}");
        }
        assert!(compared > 20, "the workload fills the windows ({compared})");
    }
}

#[cfg(test)]
mod index_tests {
    //! The indexes reads go through answer what a walk over every
    //! contribution answers, and pages of breaches put end to end are the
    //! whole list, on a generated workload with reopens, cancels, priority
    //! changes and incidents of many customers.

    use super::*;
    use crate::generate::{GenSettings, Generator};
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, DAY, HOUR};

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("test timestamp")
    }

    /// 60 customers over four days of the shipped configuration.
    fn engine() -> Engine {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slastream.toml");
        let cfg = crate::config::load(&path).expect("shipped config");
        let mut e = Engine::new(&cfg);
        let settings =
            GenSettings::from_config(&cfg, 11, 60, 2.0, t("2026-11-01T00:00:00Z"), 4 * DAY);
        for g in Generator::new(settings) {
            let ev = decode(g.json.as_bytes()).expect("generated events decode");
            e.apply(&ev, Millis::MAX / 2);
        }
        e
    }

    /// `breach_counts` by a walk over every contribution.
    fn counts_by_walk(e: &Engine, now: Millis) -> BTreeMap<(usize, GroupIdx, Level), u64> {
        let mut out = BTreeMap::new();
        for (s, st) in e.slos.iter().enumerate() {
            for contrib in st.contribs.values() {
                for (c, o) in &contrib.list {
                    if super::super::breached_at(o, now) {
                        let g = e.customers.get(*c).group;
                        *out.entry((s, g, contrib.level)).or_default() += 1;
                    }
                }
            }
        }
        out
    }

    /// Running clocks by a walk over every contribution: (slo, item id,
    /// customer).
    fn running_by_walk(e: &Engine) -> Vec<(usize, ItemIdx, CustomerIdx)> {
        let mut out = Vec::new();
        for (s, st) in e.slos.iter().enumerate() {
            for (item, contrib) in &st.contribs {
                for (c, o) in &contrib.list {
                    if matches!(o, Outcome::Running { .. }) {
                        out.push((s, *item, *c));
                    }
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_maintained_index_equals_one_built_from_scratch_and_reads_agree_with_a_walk() {
        let mut e = engine();
        let check = |e: &Engine| {
            for st in &e.slos {
                assert_eq!(st.clock_index, ClockIndex::build(&st.contribs));
            }
            for now in [t("2026-11-03T12:00:00Z"), t("2026-11-05T00:00:00Z")] {
                assert_eq!(e.breach_counts(now), counts_by_walk(e, now));
            }
            let now = t("2026-11-05T00:00:00Z");
            let mut open: Vec<_> = e
                .open_clocks(now, 0.75)
                .iter()
                .map(|o| {
                    let item = if o.kind == "ticket" {
                        e.tickets.index[&o.id]
                    } else {
                        e.incidents.index[&o.id]
                    };
                    (o.slo, item, o.customer)
                })
                .collect();
            open.sort();
            assert_eq!(open, running_by_walk(e));
        };
        check(&e);
        assert!(e.breaches(None, None, t("2026-11-05T00:00:00Z")).len() > 20);
        assert!(!e.open_clocks(t("2026-11-05T00:00:00Z"), 0.75).is_empty());
        // Everything re-derived (an exclusion added and withdrawn), and
        // retention dropping every item: the index follows.
        let x = crate::model::slo::Exclusion {
            name: "x".into(),
            from: t("2026-11-02T00:00:00Z"),
            to: t("2026-11-03T00:00:00Z"),
            slos: None,
            customers: None,
            segments: None,
            reason: String::new(),
        };
        let r = e.add_exclusion(x, "t".into(), 0);
        check(&e);
        e.remove_exclusion(r.id, "t".into(), 0);
        check(&e);
        e.watermark = Some(t("2026-11-05T00:00:00Z") + super::super::COARSE_RETENTION);
        e.compact();
        check(&e);
        assert!(e.breaches(None, None, Millis::MAX).is_empty());
        assert!(e.open_clocks(Millis::MAX / 2, 0.75).is_empty());
    }

    #[test]
    fn pages_of_breaches_put_end_to_end_are_the_whole_list() {
        let e = engine();
        let now = t("2026-11-05T00:00:00Z");
        let (from, to) = (t("2026-11-02T00:00:00Z"), t("2026-11-04T00:00:00Z"));
        let all = e.breaches(None, None, now);
        assert!(all.len() > 20, "{}", all.len());
        let mut sorted = all.clone();
        sorted.sort_by_key(BreachKey::of);
        assert_eq!(all, sorted, "the list is in key order");
        let customer = e.customers.lookup(&all[all.len() / 2].customer);
        for (slo, customer, from, to) in [
            (None, None, None, None),
            (e.slo_index("resolution"), None, None, None),
            (None, customer, None, None),
            (None, None, Some(from), Some(to)),
        ] {
            let q = BreachQuery {
                slo,
                customer,
                from,
                to,
                ..BreachQuery::default()
            };
            let whole = e.breaches_page(&q, now);
            assert_eq!(whole.next, None);
            let want: Vec<_> = all
                .iter()
                .filter(|b| {
                    slo.is_none_or(|s| e.slo(s).name == b.slo)
                        && customer.is_none_or(|c| *e.customers.get(c).id == *b.customer)
                        && from.is_none_or(|f| b.breached_at >= f)
                        && to.is_none_or(|t| b.breached_at < t)
                })
                .cloned()
                .collect();
            assert_eq!(whole.breaches, want);
            for limit in [1, 2, 3, 7, want.len(), want.len() + 1] {
                let mut got = Vec::new();
                let mut after = None;
                loop {
                    let page = e.breaches_page(
                        &BreachQuery {
                            after: after.clone(),
                            limit: Some(limit),
                            ..q.clone()
                        },
                        now,
                    );
                    assert!(page.breaches.len() <= limit);
                    got.extend(page.breaches);
                    match page.next {
                        Some(k) => after = Some(k),
                        None => break,
                    }
                    assert!(got.len() <= want.len(), "pages never end");
                }
                assert_eq!(got, want, "limit {limit}");
            }
        }
    }

    #[test]
    fn newest_first_pages_are_slices_of_the_reversed_list() {
        let e = engine();
        let now = t("2026-11-05T00:00:00Z");
        let all = e.breaches(None, None, now);
        let segment = all[0].segment.clone();
        let keep = |c: CustomerIdx| *e.customers.get(c).segment == *segment;
        let want: Vec<_> = all
            .iter()
            .rev()
            .filter(|b| b.segment == segment)
            .cloned()
            .collect();
        assert!(want.len() > 10 && want.len() < all.len(), "{}", want.len());
        for (skip, take) in [(0, 5), (5, 5), (want.len() - 3, 5), (want.len() + 10, 5)] {
            let (total, page) =
                e.breaches_newest_first(&BreachQuery::default(), &keep, skip, take, now);
            assert_eq!(total, want.len());
            let slice: Vec<_> = want.iter().skip(skip).take(take).cloned().collect();
            assert_eq!(page, slice, "skip {skip}");
        }
    }

    #[test]
    fn equal_breach_instants_are_paged_by_the_rest_of_the_key() {
        // One incident naming many customers stopped late: every entry has
        // the same breached_at, so pages split a tie.
        let mut e = engine();
        let ids: Vec<String> = (0..30).map(|i| format!("tie-{i:02}")).collect();
        let opened = t("2026-11-04T00:00:00Z");
        for (n, (action, at)) in [("opened", opened), ("acknowledged", opened + 2 * HOUR)]
            .into_iter()
            .enumerate()
        {
            let line = serde_json::json!({
                "event_id": format!("tie-ev-{n}"), "kind": "incident",
                "occurred_at": crate::model::time::format_rfc3339(at),
                "incident_id": "INC-TIE", "action": action, "severity": "SEV1",
                "customer_ids": ids,
            })
            .to_string();
            let ev = decode(line.as_bytes()).expect("decodes");
            assert_eq!(
                e.apply(&ev, Millis::MAX / 2),
                super::super::Applied::Accepted
            );
        }
        let now = t("2026-11-05T00:00:00Z");
        let q = BreachQuery {
            slo: e.slo_index("incident-ack"),
            ..BreachQuery::default()
        };
        let want = e.breaches_page(&q, now).breaches;
        let tied = want.iter().filter(|b| b.id == "INC-TIE").count();
        assert_eq!(tied, 30);
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = e.breaches_page(
                &BreachQuery {
                    after,
                    limit: Some(4),
                    ..q.clone()
                },
                now,
            );
            got.extend(page.breaches);
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(got, want);
    }
}
