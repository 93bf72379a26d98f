//! The SLA engine: applies decoded events to windowed state and answers every
//! number of SPEC §3. Synchronous: "now" and the wall clock are arguments;
//! the only I/O is reading per-customer history behind the hot window
//! through `History` (final, durable data). The state is plain data (`Series`,
//! ticket/incident event lists, customers, dedup hashes, watermark) that the
//! store persists; derived data (clock contributions, downtime) is rebuilt
//! from it by `Engine::rebuild_derived`.

pub mod buckets;
pub mod clock;
pub mod customers;
pub mod dedup;
pub mod latency;
pub mod query;
pub mod settled;
pub mod versions;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};

use crate::config::{Config, LimitsConfig};
use crate::model::calendar::BusinessCalendar;
use crate::model::event::{Body, Event, IncidentBody, ProbeBody, TicketBody};
use crate::model::interval::SpanSet;
use crate::model::slo::{
    ClockKind, CreditPolicy, Exclusion, Indicator, Level, SloDef, PRIORITIES, SEVERITIES,
};
use crate::model::time::{floor_minute, format_duration, Millis};

use buckets::{Counts, Series};
use clock::{
    evaluate, incident_timeline, ticket_timeline, ClockRun, IncidentEv, Outcome, TicketEv,
};
use customers::{CustomerIdx, Customers, GroupIdx, LimitHit, LimitRejections, Named};
use dedup::Dedup;

pub type ItemIdx = u32;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Accepted,
    Duplicate,
    Late,
    Invalid(String),
    /// A probe of a customer another task owns (cluster mode): only the
    /// watermark moves.
    Elsewhere,
}

impl Applied {
    pub fn result_label(&self) -> &'static str {
        match self {
            Applied::Accepted => "accepted",
            Applied::Elsewhere => "elsewhere",
            Applied::Duplicate => "duplicate",
            Applied::Late => "late",
            Applied::Invalid(_) => "invalid",
        }
    }
}

/// The SLO-independent settings the engine needs.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub slos: Vec<SloDef>,
    pub exclusions: Vec<Exclusion>,
    pub credits: Vec<CreditPolicy>,
    pub max_lateness: Millis,
    pub max_future_skew: Millis,
    pub limits: LimitsConfig,
}

impl EngineSettings {
    pub fn from_config(cfg: &Config) -> EngineSettings {
        EngineSettings {
            slos: cfg.slos.clone(),
            exclusions: cfg.exclusions.clone(),
            credits: cfg.credits.clone(),
            max_lateness: cfg.ingest.max_lateness,
            max_future_skew: cfg.ingest.max_future_skew,
            limits: cfg.limits,
        }
    }
}

/// Minute buckets are kept this far behind the watermark (at least 35 days,
/// so two whole calendar months stay at minute resolution).
pub const FINE_RETENTION: Millis = 62 * crate::model::time::DAY;
/// Quarter-hour buckets, tickets and incidents are kept this far (13 months).
pub const COARSE_RETENTION: Millis = 400 * crate::model::time::DAY;

/// (fine horizon, retention horizon) at watermark `w`: minute buckets
/// before the first are folded into quarter hours, anything before the
/// second is dropped. Both are UTC midnights, so they move once a day (a
/// fold moves every newer bucket of a series once) and depend on the
/// watermark alone: a restarted state folds exactly what the running one
/// had.
pub fn horizons(w: Millis) -> (Millis, Millis) {
    let day = crate::model::time::DAY;
    let floor = |t: Millis| t.div_euclid(day) * day;
    (floor(w - FINE_RETENTION), floor(w - COARSE_RETENTION))
}

/// The start of the local day (in `zone`) holding instant `t`.
pub fn day_start(zone: &jiff::tz::TimeZone, t: Millis) -> Millis {
    let Ok(ts) = jiff::Timestamp::from_millisecond(t) else {
        return t;
    };
    let date = zone.to_datetime(ts).date();
    midnight(zone, date).unwrap_or(t)
}

/// The start of the first local day (in `zone`) starting at or after `t`.
pub fn next_day_start(zone: &jiff::tz::TimeZone, t: Millis) -> Millis {
    let start = day_start(zone, t);
    if start >= t {
        return start;
    }
    jiff::Timestamp::from_millisecond(t)
        .ok()
        .and_then(|ts| zone.to_datetime(ts).date().tomorrow().ok())
        .and_then(|d| midnight(zone, d))
        .unwrap_or(t)
}

/// Local midnight of `date` (a midnight a zone skips resolves to the
/// instant after the gap).
pub(crate) fn midnight(zone: &jiff::tz::TimeZone, date: jiff::civil::Date) -> Option<Millis> {
    zone.to_zoned_datetime(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// Finds the local day of bucket starts walked in order, converting only
/// when a start leaves the day found last.
pub(crate) struct DayFolder {
    zone: jiff::tz::TimeZone,
    day: (Millis, Millis),
}

impl DayFolder {
    pub(crate) fn new(zone: &jiff::tz::TimeZone) -> DayFolder {
        DayFolder {
            zone: zone.clone(),
            day: (Millis::MAX, Millis::MIN),
        }
    }

    /// The start of the local day holding `t`.
    pub(crate) fn day_of(&mut self, t: Millis) -> Millis {
        if !(self.day.0 <= t && t < self.day.1) {
            let start = day_start(&self.zone, t);
            let end = next_day_start(&self.zone, t.saturating_add(1)).max(t.saturating_add(1));
            self.day = (start, end);
        }
        self.day.0
    }
}

/// The stored probe buckets of customers, read back once they left memory
/// (`store::state::StoreHistory` in production).
pub trait History: Send + Sync {
    /// Calls `f` with each stored bucket (start, counts) of `customer` for
    /// SLO `slo` whose start lies in [from, to), in start order.
    fn buckets(
        &self,
        slo: &str,
        customer: &str,
        from: Millis,
        to: Millis,
        f: &mut dyn FnMut(Millis, Counts),
    ) -> Result<(), String>;

    /// The record of settled ticket `id`, if it left memory.
    fn settled_ticket(&self, id: &str) -> Result<Option<settled::SettledTicket>, String>;

    /// The ids of the settled tickets of `customer` whose last event is at
    /// or after `from`.
    fn settled_tickets_of(&self, customer: &str, from: Millis) -> Result<Vec<String>, String>;

    /// The ids of the settled tickets whose last event is before `before`.
    fn settled_tickets_before(&self, before: Millis) -> Result<Vec<String>, String>;

    /// Calls `f(breached_at, ticket id, customer, stopped_at)` for each clock
    /// of SLO `slo` stopped late by a settled ticket, with `breached_at` in
    /// [from, to), in (breached_at, id, customer) order, until `f` returns
    /// false.
    fn settled_breaches(
        &self,
        slo: &str,
        from: Millis,
        to: Millis,
        f: &mut dyn FnMut(Millis, &str, &str, Millis) -> bool,
    ) -> Result<(), String>;
}

/// Per-customer probe buckets behind the hot window live in the store only.
///
/// No accepted event can change a bucket older than watermark -
/// `max_lateness`, and the hot window is at least that long, so a bucket
/// that left memory is final. It leaves only once the commit holding its
/// last change is durable: a commit records the boundary of its moment
/// (`Batch::durable`), the store raises `durable` to it once written, and
/// the next commit forgets what lies below.
pub struct Cold {
    history: Arc<dyn History>,
    /// How far behind the watermark buckets stay in memory.
    hot: Millis,
    /// The boundary forgotten below (that of a durable commit).
    below: Millis,
    /// Per customer, where its probe buckets in memory start: the start of
    /// its local day holding `below`, so that whole local days are either
    /// in memory or in the day sums and a month never reads the store.
    hot_from: Vec<Millis>,
    /// The number of the latest durable commit.
    durable: Arc<std::sync::atomic::AtomicI64>,
    /// The number the next commit gets.
    next_commit: i64,
    /// Commits built, not yet seen durable: (number, hot boundary then).
    commits: std::collections::VecDeque<(i64, Millis)>,
}

/// A run-time exclusion added through the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeExclusion {
    pub id: u64,
    pub exclusion: Exclusion,
    pub author: String,
    pub created_at: Millis,
}

/// One change to the run-time exclusions (SPEC §4 audit log).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: Millis,
    pub who: String,
    /// `add` or `delete`.
    pub action: String,
    pub exclusion_id: u64,
    pub before: Option<RuntimeExclusion>,
    pub after: Option<RuntimeExclusion>,
}

/// The events of one ticket or incident, sorted by their SPEC §3 order.
#[derive(Debug, Clone)]
pub struct Item<E> {
    pub id: String,
    pub events: Vec<E>,
    /// Events of this item under their own keys in the store (appended in
    /// arrival order, numbered from 0).
    pub stored: u32,
    /// The store holds it as a settled ticket (one record, see
    /// `settled`), not as events: it leaves memory once that is durable.
    pub settled: bool,
}

#[derive(Debug, Clone)]
pub struct Items<E> {
    pub list: Vec<Item<E>>,
    pub index: HashMap<String, ItemIdx>,
    /// Slots of `list` whose item left memory, for reuse.
    free: Vec<ItemIdx>,
}

impl<E> Default for Items<E> {
    fn default() -> Self {
        Items {
            list: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
        }
    }
}

impl<E> Items<E> {
    pub(crate) fn get_or_insert(&mut self, id: &str) -> ItemIdx {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        let item = Item {
            id: id.to_string(),
            events: Vec::new(),
            stored: 0,
            settled: false,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.list[i as usize] = item;
                i
            }
            None => {
                self.list.push(item);
                (self.list.len() - 1) as ItemIdx
            }
        };
        self.index.insert(id.to_string(), i);
        i
    }

    /// Lets item `i` leave memory; its slot is reused.
    pub(crate) fn free(&mut self, i: ItemIdx) {
        let it = &mut self.list[i as usize];
        self.index.remove(&it.id);
        *it = Item {
            id: String::new(),
            events: Vec::new(),
            stored: 0,
            settled: false,
        };
        self.free.push(i);
    }

    /// The items in memory.
    pub fn len(&self) -> usize {
        self.list.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one ticket or incident contributes to a clock SLO: one outcome per
/// customer, all under the level (priority or severity) whose target applies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contrib {
    pub level: Level,
    pub list: Vec<(CustomerIdx, Outcome)>,
}

/// Whether a clock outcome is a breach at instant `t` (the breaches list).
pub fn breached_at(o: &Outcome, t: Millis) -> bool {
    match *o {
        Outcome::Stopped { good, .. } => !good,
        Outcome::Running { breach_at } => breach_at.is_some_and(|b| b < t),
    }
}

/// Whether a clock outcome is a breach whatever the instant: stopped late.
fn stopped_bad(o: &Outcome) -> bool {
    matches!(o, Outcome::Stopped { good: false, .. })
}

/// `slastream_ticket_sla_breaches_total` as exported so far, per (slo,
/// group, level): see `Engine::breaches_total`.
#[derive(Debug, Default)]
pub struct BreachExport {
    /// The latest instant the breaches were counted at.
    pub now: Millis,
    /// (count at the last export, counter).
    pub series: BTreeMap<(usize, GroupIdx, Level), (u64, u64)>,
}

/// Per-SLO state.
#[derive(Debug, Clone, Default)]
pub struct SloState {
    /// Counted outcomes per customer (probe events, or clocks at their
    /// evaluation instant when stopped).
    pub by_customer: Vec<Series>,
    /// The same, summed per (segment, timezone) group.
    pub by_group: Vec<Series>,
    /// Per customer, the counts that left memory (behind the hot window),
    /// per local day of the customer's zone, keyed by the day's start: a
    /// month or a run of whole days is read from here, not the store.
    pub cold_days: Vec<Series>,
    /// Clock SLOs: what each ticket/incident currently contributes.
    pub contribs: HashMap<ItemIdx, Contrib>,
    /// What reads need of `contribs` (running clocks, late stops), kept
    /// with it.
    pub clock_index: query::ClockIndex,
    /// Running clocks with a breach instant: (breach_at, item, customer).
    pub pending: BTreeSet<(Millis, ItemIdx, CustomerIdx)>,
    /// The same per customer, so a one-customer query does not walk them all.
    pub pending_by_customer: HashMap<CustomerIdx, BTreeSet<(Millis, ItemIdx)>>,
    /// Counters of SPEC §5 never decrease while the process runs: what a
    /// later event takes away from a group's counts (an outcome withdrawn
    /// by a cancel, reopen, priority change or exclusion, or a customer
    /// moved to another group) is kept here, per group, and added back when
    /// `slastream_slo_events_total` is exported. A correction is thus
    /// counted as a new event and never subtracted: the counter equals its
    /// value at start plus the positive part of every change since.
    pub withdrawn: Vec<Counts>,
    /// The same for clocks stopped late (breaches whatever the instant)
    /// that a later event withdrew or moved, per (group, level), for
    /// `slastream_ticket_sla_breaches_total`.
    pub breaches_withdrawn: HashMap<(GroupIdx, Level), u64>,
    /// `incident_availability`: downtime per customer, per incident.
    pub downtime: HashMap<CustomerIdx, BTreeMap<ItemIdx, SpanSet>>,
    pub downtime_by_item: HashMap<ItemIdx, Vec<CustomerIdx>>,
    /// Clocks stopped late by settled tickets (whose record is in the
    /// store), per (customer, level): counted here, not in `clock_index`.
    pub settled_bad: HashMap<(CustomerIdx, Level), u64>,
}

impl SloState {
    pub(crate) fn customer_series(&mut self, c: CustomerIdx) -> &mut Series {
        let i = c as usize;
        if self.by_customer.len() <= i {
            self.by_customer.resize_with(i + 1, Series::default);
        }
        &mut self.by_customer[i]
    }

    pub(crate) fn cold_days(&mut self, c: CustomerIdx) -> &mut Series {
        let i = c as usize;
        if self.cold_days.len() <= i {
            self.cold_days.resize_with(i + 1, Series::default);
        }
        &mut self.cold_days[i]
    }

    pub(crate) fn group_series(&mut self, g: u32) -> &mut Series {
        let i = g as usize;
        if self.by_group.len() <= i {
            self.by_group.resize_with(i + 1, Series::default);
        }
        &mut self.by_group[i]
    }

    /// Records that `c` was taken away from group `g`'s counts.
    fn withdraw(&mut self, g: GroupIdx, c: Counts) {
        let i = g as usize;
        if self.withdrawn.len() <= i {
            self.withdrawn.resize_with(i + 1, Counts::default);
        }
        self.withdrawn[i].add(c);
    }

    /// `slastream_slo_events_total` of group `g`: every count it holds
    /// (retired by retention included) plus every count withdrawn from it.
    pub fn events_total(&self, g: GroupIdx) -> Counts {
        let mut c = self
            .by_group
            .get(g as usize)
            .map(Series::all_time)
            .unwrap_or_default();
        if let Some(w) = self.withdrawn.get(g as usize) {
            c.add(*w);
        }
        c
    }
}

/// What the engine holds, with estimated heap bytes per part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub customers: u64,
    pub dedup_ids: u64,
    pub dedup_bytes: u64,
    pub buckets: u64,
    pub bucket_bytes: u64,
    pub items: u64,
    pub item_events: u64,
    pub item_bytes: u64,
}

impl Footprint {
    /// Logs the footprint at `info`.
    pub fn log(&self, what: &str) {
        let mb = |b: u64| b / (1 << 20);
        tracing::info!(
            customers = self.customers,
            dedup_ids = self.dedup_ids,
            dedup_mib = mb(self.dedup_bytes),
            buckets = self.buckets,
            bucket_mib = mb(self.bucket_bytes),
            tickets_and_incidents = self.items,
            their_events = self.item_events,
            item_mib = mb(self.item_bytes),
            "{what}: state in memory"
        );
    }
}

/// Ingest counters by kind and result, for the progress line and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub accepted: u64,
    pub duplicate: u64,
    pub late: u64,
    pub invalid: u64,
}

impl IngestCounts {
    pub fn record(&mut self, a: &Applied) {
        match a {
            Applied::Accepted => self.accepted += 1,
            Applied::Duplicate => self.duplicate += 1,
            Applied::Late => self.late += 1,
            Applied::Invalid(_) => self.invalid += 1,
            // Counted by the task that owns it.
            Applied::Elsewhere => {}
        }
    }
}

/// A hasher for keys made of small integers the engine itself assigns
/// (indices, minutes), marked once per applied probe: a multiply and a
/// rotate per word instead of SipHash.
#[derive(Default)]
pub struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A change of a ticket's or incident's stored events, in the order they
/// happened (the store applies them in that order).
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOp<E> {
    /// Event number `n` of the item, appended.
    Append { item: ItemIdx, n: u32, ev: E },
    /// The item dropped by retention: its `stored` events are deleted.
    Gone { item: ItemIdx, stored: u32 },
    /// The settled ticket's events (`stored` of them) give way to one
    /// record of it (`settled`).
    Settle { item: ItemIdx, stored: u32 },
    /// The settled ticket whose record was `old` is stored as its events
    /// again (`events`, numbered from 0).
    Revive {
        item: ItemIdx,
        events: Vec<E>,
        old: Box<settled::SettledTicket>,
    },
}

/// What changed since the last `take_dirty`, for the store.
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    pub tickets: Vec<ItemOp<TicketEv>>,
    pub incidents: Vec<ItemOp<IncidentEv>>,
    pub customers: HashSet<CustomerIdx>,
    /// (slo index, customer, bucket start) of probe-SLO buckets.
    pub buckets: HashSet<(u32, CustomerIdx, Millis), BuildHasherDefault<IntHasher>>,
    pub watermark: bool,
    pub exclusions: bool,
    /// Stored per-customer probe buckets that left memory and starting
    /// before this are past retention: deleted from the store.
    pub history_dropped_before: Option<Millis>,
    /// (slo index, customer) of the series with such buckets: those whose
    /// day sums reach behind retention.
    pub history_dropped: Vec<(u32, CustomerIdx)>,
    /// (slo index, group, bucket start) of group buckets.
    pub groups: HashSet<(u32, GroupIdx, Millis), BuildHasherDefault<IntHasher>>,
    /// (slo index, customer, day start) of changed day sums.
    pub days: HashSet<(u32, CustomerIdx, Millis)>,
    /// Customers whose day sums are rewritten whole (their zone changed).
    pub days_all: HashSet<CustomerIdx>,
    /// Customers whose `hot_from` moved.
    pub hot_from: HashSet<CustomerIdx>,
    /// The state gets group series, day sums and `hot_from` whole (it was
    /// of a layout without them).
    pub layout: bool,
    /// (slo, customer, level) of changed `SloState::settled_bad` counts.
    pub settled_bad: HashSet<(u32, CustomerIdx, Level)>,
    /// What the stored clock outcomes were derived under changed (see
    /// `Engine::fingerprint`).
    pub fingerprint: bool,
}

pub struct Engine {
    pub(crate) settings: Arc<EngineSettings>,
    pub(crate) customers: Customers,
    pub(crate) watermark: Option<Millis>,
    pub(crate) dedup: Dedup,
    pub(crate) tickets: Items<TicketEv>,
    pub(crate) incidents: Items<IncidentEv>,
    pub(crate) slos: Vec<SloState>,
    pub(crate) runtime_exclusions: Vec<RuntimeExclusion>,
    pub(crate) next_exclusion_id: u64,
    pub(crate) audit: Vec<AuditEntry>,
    /// SLO definition changes found at starts (SPEC §3 Definition
    /// versions): the other part of the audit log, numbered with it.
    pub(crate) definition_changes: Vec<versions::DefinitionChange>,
    /// Minute buckets below this were folded by the last `compact`.
    compacted_below: Millis,
    pub(crate) always: BusinessCalendar,
    /// Indices of SLOs by indicator family, for the hot path.
    probe_slos: Vec<usize>,
    ticket_slos: Vec<usize>,
    incident_slos: Vec<usize>,
    pub counts: HashMap<&'static str, IngestCounts>,
    /// Events rejected by a `[limits]` bound (also counted as invalid).
    pub limit_rejections: LimitRejections,
    pub latency: latency::RecentLatency,
    pub(crate) dirty: Dirty,
    track_dirty: bool,
    /// What `/metrics` exported of the breaches counter (a scrape holds
    /// the engine for reading only).
    pub(crate) breach_export: Mutex<BreachExport>,
    /// Where per-customer probe history behind the hot window is read.
    pub(crate) cold: Option<Cold>,
    /// (fine horizon, retention horizon) of the last `compact`: stored
    /// buckets are read as if folded and dropped by it.
    pub(crate) compacted: (Millis, Millis),
    /// Settled tickets written to the store as records, by the number of
    /// the commit holding them: they leave memory once it is durable.
    pub(crate) settling: HashMap<ItemIdx, i64>,
    /// The hot boundary of the last look for settled tickets.
    pub(crate) settled_below: Millis,
    /// Settled tickets came back into memory since that look.
    pub(crate) settle_due: bool,
    /// Clock outcomes are being taken as the store counted them: what
    /// they count is already in the series.
    pub(crate) adopting: bool,
    /// A hash of the configuration clocks are judged by.
    config_print: u64,
    /// (tickets, incidents) retention emptied, freed after the next commit
    /// is built.
    retired: (Vec<ItemIdx>, Vec<ItemIdx>),
    /// In cluster mode, (this task, the number of tasks): the engine counts
    /// only the customers whose `task_of` is this task.
    owner: Option<(u32, u32)>,
}

impl Engine {
    /// An empty engine with the registry customers of `cfg`.
    pub fn new(cfg: &Config) -> Engine {
        Engine::for_task(cfg, None)
    }

    /// An engine of one task of `owner` = (task, tasks) (cluster mode): it
    /// counts only the customers the task owns (`cluster::partition::
    /// task_of`), registry ones included. Every task applies every ticket
    /// and incident, whatever its customers (so any keying of the inputs
    /// gives the same answers), and lets probes of other customers move
    /// only its watermark, so its lateness is that of one engine fed
    /// everything. Aggregated answers are the sums of the tasks' counts.
    pub fn for_task(cfg: &Config, owner: Option<(u32, u32)>) -> Engine {
        let settings = EngineSettings::from_config(cfg);
        let mut customers = Customers::default();
        let owns = |id: &str| {
            owner.is_none_or(|(task, tasks)| crate::cluster::partition::task_of(id, tasks) == task)
        };
        for c in cfg.customers.iter().filter(|c| owns(&c.id)) {
            let cal = cfg
                .calendars
                .get(&c.calendar)
                .cloned()
                .unwrap_or_else(crate::model::slo::CalendarDef::always);
            customers.register(&c.id, &c.segment, &c.timezone, &cal);
        }
        let family = |f: fn(Indicator) -> bool| -> Vec<usize> {
            settings
                .slos
                .iter()
                .enumerate()
                .filter(|(_, s)| f(s.indicator))
                .map(|(i, _)| i)
                .collect()
        };
        let probe_slos = family(Indicator::is_probe);
        let ticket_slos = family(Indicator::is_ticket);
        let incident_slos =
            family(|i| i.is_incident_clock() || i == Indicator::IncidentAvailability);
        Engine {
            slos: vec![SloState::default(); settings.slos.len()],
            settings: Arc::new(settings),
            customers,
            watermark: None,
            dedup: Dedup::default(),
            tickets: Items::default(),
            incidents: Items::default(),
            runtime_exclusions: Vec::new(),
            next_exclusion_id: 1,
            audit: Vec::new(),
            definition_changes: Vec::new(),
            compacted_below: Millis::MIN,
            always: BusinessCalendar::always(),
            probe_slos,
            ticket_slos,
            incident_slos,
            counts: HashMap::new(),
            limit_rejections: LimitRejections::default(),
            latency: latency::RecentLatency::default(),
            dirty: Dirty::default(),
            track_dirty: false,
            breach_export: Mutex::new(BreachExport {
                now: Millis::MIN,
                series: BTreeMap::new(),
            }),
            cold: None,
            compacted: (Millis::MIN, Millis::MIN),
            settling: HashMap::new(),
            settled_below: Millis::MIN,
            settle_due: false,
            adopting: false,
            config_print: settled::config_print(cfg),
            retired: (Vec::new(), Vec::new()),
            owner,
        }
    }

    /// Keeps per-customer probe buckets in memory only for `hot_window`
    /// behind the watermark (at least `max_lateness`, so nothing that left
    /// memory can change again), reading older ones from `history`. A
    /// window too long to stay below the fine horizon keeps everything in
    /// memory.
    pub fn keep_history_in(&mut self, history: Arc<dyn History>, hot_window: Millis) {
        let hot = hot_window.max(self.settings.max_lateness);
        if hot >= FINE_RETENTION - crate::model::time::DAY {
            return;
        }
        self.keep_history_unchecked(history, hot);
    }

    /// `keep_history_in` without the lateness bound: only for inputs in
    /// event-time order (tests forcing a tiny window).
    pub(crate) fn keep_history_unchecked(&mut self, history: Arc<dyn History>, hot: Millis) {
        self.cold = Some(Cold {
            history,
            hot,
            below: Millis::MIN,
            hot_from: Vec::new(),
            durable: Arc::new(std::sync::atomic::AtomicI64::new(Millis::MIN)),
            next_commit: 0,
            commits: std::collections::VecDeque::new(),
        });
    }

    /// The hot window's lower bound now: per-customer probe buckets below
    /// it are final.
    pub(crate) fn hot_boundary(&self) -> Option<Millis> {
        let cold = self.cold.as_ref()?;
        let w = self.watermark?;
        let day = crate::model::time::DAY;
        Some(w.saturating_sub(cold.hot).div_euclid(day) * day)
    }

    /// What a commit built now lets leave memory once it is durable: the
    /// store raises the mark to the commit's number.
    pub fn durable_mark(&mut self) -> Option<crate::store::DurableMark> {
        let boundary = self.hot_boundary().unwrap_or(Millis::MIN);
        let cold = self.cold.as_mut()?;
        let n = cold.next_commit;
        cold.next_commit += 1;
        cold.commits.push_back((n, boundary));
        Some(crate::store::DurableMark {
            mark: cold.durable.clone(),
            value: n,
        })
    }

    /// The number the next commit gets (see `durable_mark`).
    pub(crate) fn next_commit(&self) -> Option<i64> {
        self.cold.as_ref().map(|c| c.next_commit)
    }

    /// Forgets the per-customer probe buckets below the boundary of the
    /// latest durable commit (called once the next commit's changes are
    /// taken, so nothing forgotten is waiting to be written).
    pub fn forget_durable(&mut self) {
        let Some(cold) = self.cold.as_mut() else {
            return;
        };
        let done = cold.durable.load(std::sync::atomic::Ordering::SeqCst);
        let mut to = cold.below;
        while let Some(&(n, boundary)) = cold.commits.front() {
            if n > done {
                break;
            }
            to = to.max(boundary);
            cold.commits.pop_front();
        }
        self.forget_settled(done);
        let Some(cold) = self.cold.as_mut() else {
            return;
        };
        if to <= cold.below {
            return;
        }
        cold.below = to;
        let customers = self
            .slos
            .iter()
            .map(|s| s.by_customer.len())
            .max()
            .unwrap_or(0);
        if cold.hot_from.len() < customers {
            cold.hot_from.resize(customers, Millis::MIN);
        }
        for c in 0..customers {
            let zone = &self.customers.get(c as CustomerIdx).zone;
            let to_c = day_start(zone, to);
            if to_c <= cold.hot_from[c] {
                continue;
            }
            cold.hot_from[c] = to_c;
            if self.track_dirty {
                self.dirty.hot_from.insert(c as CustomerIdx);
            }
            for &s in &self.probe_slos {
                let st = &mut self.slos[s];
                let Some(series) = st.by_customer.get(c) else {
                    continue;
                };
                let leaving: Vec<(Millis, Counts)> =
                    series.iter().take_while(|(k, _)| *k < to_c).collect();
                if leaving.is_empty() {
                    continue;
                }
                let mut days = DayFolder::new(zone);
                let sums = st.cold_days(c as CustomerIdx);
                for (k, v) in leaving {
                    let day = days.day_of(k);
                    sums.add_bucket(day, v);
                    if self.track_dirty {
                        self.dirty.days.insert((s as u32, c as CustomerIdx, day));
                    }
                }
                st.by_customer[c].forget_below(to_c);
            }
        }
    }

    /// Where customer `c`'s probe buckets in memory start.
    pub(crate) fn hot_from(&self, c: CustomerIdx) -> Millis {
        self.cold
            .as_ref()
            .and_then(|x| x.hot_from.get(c as usize).copied())
            .unwrap_or(Millis::MIN)
    }

    /// Sets where customer `c`'s probe buckets in memory start after a
    /// restore, and returns it.
    pub(crate) fn restored_hot_from(&mut self, c: CustomerIdx) -> Millis {
        let Some(cold) = self.cold.as_mut() else {
            return Millis::MIN;
        };
        if cold.below == Millis::MIN {
            return Millis::MIN;
        }
        let i = c as usize;
        if cold.hot_from.len() <= i {
            cold.hot_from.resize(i + 1, Millis::MIN);
        }
        let b = day_start(&self.customers.get(c).zone, cold.below);
        cold.hot_from[i] = b;
        b
    }

    /// Splits customer `c`'s probe history anew between memory and its
    /// day sums after its zone changed: its local days are other days.
    fn rebuild_cold_days(&mut self, c: CustomerIdx) {
        let Some(below) = self.cold.as_ref().map(|x| x.below) else {
            return;
        };
        if below == Millis::MIN
            || (c as usize) >= self.cold.as_ref().map_or(0, |x| x.hot_from.len())
        {
            // Nothing of this customer left memory yet.
            return;
        }
        let zone = self.customers.get(c).zone.clone();
        let new_from = day_start(&zone, below);
        for k in 0..self.probe_slos.len() {
            let s = self.probe_slos[k];
            let all = self.customer_buckets(s, c);
            let mut days = DayFolder::new(&zone);
            let mut sums = Series::default();
            let mut hot = Series::default();
            for (t, v) in all {
                if t < new_from {
                    sums.add_bucket(days.day_of(t), v);
                } else {
                    hot.add_bucket(t, v);
                }
            }
            let st = &mut self.slos[s];
            *st.cold_days(c) = sums;
            *st.customer_series(c) = hot;
        }
        if let Some(cold) = self.cold.as_mut() {
            cold.hot_from[c as usize] = new_from;
        }
        if self.track_dirty {
            self.dirty.days_all.insert(c);
            self.dirty.hot_from.insert(c);
        }
    }

    /// Sets where memory starts after a restore (everything stored is
    /// durable).
    pub(crate) fn restored_below(&mut self) -> Option<Millis> {
        let b = self.hot_boundary()?;
        let cold = self.cold.as_mut()?;
        cold.below = b;
        Some(b)
    }

    /// Sets where each customer's probe buckets in memory start after a
    /// restore (none: from the first).
    pub(crate) fn restore_hot_from(&mut self, from: &HashMap<CustomerIdx, Millis>) {
        let customers = self.customers.len();
        let Some(cold) = self.cold.as_mut() else {
            return;
        };
        cold.hot_from = (0..customers as CustomerIdx)
            .map(|c| from.get(&c).copied().unwrap_or(Millis::MIN))
            .collect();
    }

    /// Where customer `c`'s probe buckets in memory start, for the store.
    pub fn hot_from_of(&self, c: CustomerIdx) -> Option<Millis> {
        let cold = self.cold.as_ref()?;
        cold.hot_from.get(c as usize).copied()
    }

    /// Whether SLO `slo` counts probes.
    pub(crate) fn is_probe_slo(&self, slo: usize) -> bool {
        self.probe_slos.contains(&slo)
    }

    /// Whether SLO `slo` keeps per-customer history in the store.
    pub(crate) fn is_cold_slo(&self, slo: usize) -> bool {
        self.cold.is_some() && self.probe_slos.contains(&slo)
    }

    /// A stored bucket start as the memory would hold it: folded into its
    /// quarter hour behind the fine horizon, `None` behind retention.
    fn as_compacted(&self, k: Millis) -> Option<Millis> {
        let (fine, drop) = self.compacted;
        let k = if k < fine {
            k.div_euclid(buckets::COARSE) * buckets::COARSE
        } else {
            k
        };
        (k >= drop).then_some(k)
    }

    /// Counts of customer `c` for SLO `slo` in buckets starting in
    /// [from, to): memory, and the store below the hot window.
    pub(crate) fn customer_sum(
        &self,
        slo: usize,
        c: CustomerIdx,
        from: Millis,
        to: Millis,
    ) -> Counts {
        let mut sum = self.slos[slo]
            .by_customer
            .get(c as usize)
            .map(|s| s.sum(from, to))
            .unwrap_or_default();
        if let Some(cold) = self.cold.as_ref().filter(|_| self.is_cold_slo(slo)) {
            let upto = to.min(self.hot_from(c));
            if from < upto {
                // Whole local days from their sums; the partial days at
                // either end (none for a month) from the stored buckets.
                let zone = &self.customers.get(c).zone;
                let lo = next_day_start(zone, from.max(self.compacted.1));
                let hi = day_start(zone, upto);
                match self.slos[slo].cold_days.get(c as usize) {
                    Some(days) if lo < hi => {
                        sum.add(days.sum(lo, hi));
                        sum.add(self.stored_sum(cold, slo, c, from, lo));
                        sum.add(self.stored_sum(cold, slo, c, hi, upto));
                    }
                    _ => sum.add(self.stored_sum(cold, slo, c, from, upto)),
                }
            }
        }
        sum
    }

    /// Counts of customer `c` for SLO `slo` in stored buckets starting in
    /// [from, to), read as the memory would hold them.
    fn stored_sum(
        &self,
        cold: &Cold,
        slo: usize,
        c: CustomerIdx,
        from: Millis,
        to: Millis,
    ) -> Counts {
        let mut sum = Counts::default();
        if from >= to {
            return sum;
        }
        let name = &self.settings.slos[slo].name;
        let id = &self.customers.get(c).id;
        // A minute folds into a quarter hour that may start up to 15
        // minutes before it: read that much further.
        let read_to = to.saturating_add(buckets::COARSE);
        cold.history
            .buckets(name, id, from, read_to, &mut |k, v| {
                if self.as_compacted(k).is_some_and(|k| from <= k && k < to) {
                    sum.add(v);
                }
            })
            .unwrap_or_else(|e| panic!("reading stored buckets of {id}: {e}"));
        sum
    }

    /// Every bucket of customer `c` for SLO `slo`, memory and store, as
    /// the memory would hold them.
    fn customer_buckets(&self, slo: usize, c: CustomerIdx) -> Vec<(Millis, Counts)> {
        let mut all: Vec<(Millis, Counts)> = Vec::new();
        if let Some(cold) = self.cold.as_ref().filter(|_| self.is_cold_slo(slo)) {
            let name = &self.settings.slos[slo].name;
            let id = &self.customers.get(c).id;
            cold.history
                .buckets(name, id, Millis::MIN, self.hot_from(c), &mut |k, v| {
                    if let Some(k) = self.as_compacted(k) {
                        all.push((k, v));
                    }
                })
                .unwrap_or_else(|e| panic!("reading stored buckets of {id}: {e}"));
            all.sort_by_key(|(k, _)| *k);
        }
        if let Some(s) = self.slos[slo].by_customer.get(c as usize) {
            all.extend(s.iter());
        }
        all
    }

    /// Makes the engine record what changed, for `take_dirty`.
    pub fn track_changes(&mut self, on: bool) {
        self.track_dirty = on;
    }

    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    /// Where the engine's memory goes, estimated from what it holds (the
    /// memory model of ARCHITECTURE.md, logged after a restore and a
    /// replay).
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            dedup_ids: self.dedup.len() as u64,
            dedup_bytes: self.dedup.heap_bytes() as u64,
            ..Footprint::default()
        };
        for st in &self.slos {
            for s in st.by_customer.iter().chain(&st.by_group) {
                f.buckets += s.len() as u64;
                f.bucket_bytes += (s.heap_bytes() + std::mem::size_of::<Series>()) as u64;
            }
        }
        let strings =
            |v: &[Option<&String>]| v.iter().flatten().map(|s| s.capacity()).sum::<usize>();
        for it in &self.tickets.list {
            f.item_events += it.events.len() as u64;
            f.item_bytes += (it.id.capacity() * 2
                + it.events.capacity() * std::mem::size_of::<TicketEv>()
                + it.events
                    .iter()
                    .map(|e| {
                        e.event_id.capacity()
                            + strings(&[e.customer.as_ref(), e.service.as_ref(), e.region.as_ref()])
                    })
                    .sum::<usize>()) as u64;
        }
        for it in &self.incidents.list {
            f.item_events += it.events.len() as u64;
            f.item_bytes += (it.id.capacity() * 2
                + it.events.capacity() * std::mem::size_of::<IncidentEv>()
                + it.events
                    .iter()
                    .map(|e| {
                        e.event_id.capacity()
                            + e.customer_ids
                                .iter()
                                .flatten()
                                .map(|c| c.capacity() + 24)
                                .sum::<usize>()
                    })
                    .sum::<usize>()) as u64;
        }
        f.items = (self.tickets.len() + self.incidents.len()) as u64;
        f.customers = self.customers.len() as u64;
        f
    }

    /// Accepted events whose ids the next state batch will store.
    pub fn unsaved_ids(&self) -> usize {
        self.dedup.unsaved()
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn watermark(&self) -> Option<Millis> {
        self.watermark
    }

    pub fn customers(&self) -> &Customers {
        &self.customers
    }

    pub fn slo_index(&self, name: &str) -> Option<usize> {
        self.settings.slos.iter().position(|s| s.name == name)
    }

    pub fn runtime_exclusions(&self) -> &[RuntimeExclusion] {
        &self.runtime_exclusions
    }

    /// Counts a message that could not be decoded.
    pub fn record_invalid(&mut self, kind: &'static str) {
        self.counts.entry(kind).or_default().invalid += 1;
    }

    /// Applies one decoded event. `wall_now` is the wall clock, used for the
    /// future-skew check only.
    pub fn apply(&mut self, ev: &Event<'_>, wall_now: Millis) -> Applied {
        let result = self.apply_inner(ev, wall_now);
        self.counts
            .entry(ev.kind_str())
            .or_default()
            .record(&result);
        result
    }

    fn apply_inner(&mut self, ev: &Event<'_>, wall_now: Millis) -> Applied {
        if ev.occurred_at > wall_now.saturating_add(self.settings.max_future_skew) {
            return Applied::Invalid(format!(
                "occurred_at is more than {} ahead of the wall clock",
                format_duration(self.settings.max_future_skew)
            ));
        }
        let h = dedup::hash_id(&ev.event_id);
        if self.dedup.contains(h) {
            return Applied::Duplicate;
        }
        if let Some(w) = self.watermark {
            if ev.occurred_at < w.saturating_sub(self.settings.max_lateness) {
                return Applied::Late;
            }
        }
        if let Body::Probe(_) = &ev.body {
            if ev.customer_id.as_deref().is_some_and(|c| !self.owns(c)) {
                self.advance_watermark(ev.occurred_at);
                return Applied::Elsewhere;
            }
        }
        // Before any change: an event past a bound changes nothing.
        if let Err(hit) = self.check_limits(ev) {
            self.limit_rejections.record(&hit);
            return Applied::Invalid(hit.to_string());
        }
        // The ids not yet stored are the dedup set's own: `take_unsaved`.
        self.dedup.insert(h, ev.occurred_at);
        self.advance_watermark(ev.occurred_at);
        match &ev.body {
            Body::Probe(p) => self.apply_probe(ev, p),
            Body::Ticket(t) => self.apply_ticket(ev, t),
            Body::Incident(i) => self.apply_incident(ev, i),
        }
        Applied::Accepted
    }

    /// Forgets the ids of events far enough behind the watermark that they
    /// could never be applied again (they are late).
    pub(crate) fn prune_dedup(&mut self) {
        if let Some(w) = self.watermark {
            self.dedup
                .prune(w.saturating_sub(self.settings.max_lateness.saturating_mul(2)));
        }
    }

    /// Moves the watermark to `at` if that is later.
    fn advance_watermark(&mut self, at: Millis) {
        if self.watermark.is_none_or(|w| at > w) {
            self.watermark = Some(at);
            self.dirty.watermark = true;
            self.prune_dedup();
        }
    }

    /// Whether this engine counts customer `id` (always, but in cluster
    /// mode).
    pub fn owns(&self, id: &str) -> bool {
        self.owner
            .is_none_or(|(task, tasks)| crate::cluster::partition::task_of(id, tasks) == task)
    }

    /// Whether applying `ev` would create customers, groups or probe
    /// services beyond the `[limits]` bounds (SPEC §2.1).
    fn check_limits(&self, ev: &Event<'_>) -> Result<(), LimitHit> {
        let limits = &self.settings.limits;
        let (at, id) = (ev.occurred_at, &*ev.event_id);
        let (segment, timezone) = (ev.segment.as_deref(), ev.timezone.as_deref());
        match &ev.body {
            Body::Incident(i) => self.customers.check_naming(
                i.customer_ids
                    .iter()
                    .flatten()
                    .filter(|c| self.owns(c))
                    .map(|c| (&**c, None, None)),
                at,
                id,
                limits.max_customers,
                limits.max_groups,
            )?,
            Body::Ticket(_) | Body::Probe(_) => self.customers.check_naming(
                ev.customer_id
                    .as_deref()
                    .filter(|c| self.owns(c))
                    .map(|c| (c, segment, timezone)),
                at,
                id,
                limits.max_customers,
                limits.max_groups,
            )?,
        }
        if let Body::Probe(p) = &ev.body {
            let w = self.watermark.map_or(at, |w| w.max(at));
            if self.latency.would_add_service(&p.service, at, w)
                && self.latency.live_services(w) >= limits.max_services
            {
                return Err(LimitHit::Services {
                    max: limits.max_services,
                    service: p.service.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Names a customer; moves its group sums and re-evaluates its clocks
    /// when an earlier event changed its segment or zone.
    fn name_customer(
        &mut self,
        id: &str,
        segment: Option<&str>,
        timezone: Option<&str>,
        at: Millis,
        event_id: &str,
    ) -> CustomerIdx {
        let named = self.customers.name(id, segment, timezone, at, event_id);
        let idx = named.idx();
        match named {
            Named::Known(_) => {}
            Named::New(_) => {
                if self.track_dirty {
                    self.dirty.customers.insert(idx);
                }
            }
            Named::Moved { idx, from_group } => {
                if self.track_dirty {
                    self.dirty.customers.insert(idx);
                }
                // Its settled tickets are judged anew below; back in
                // memory first, so what they counted moves with it.
                self.fault_in_customer(idx, Millis::MIN);
                self.withdraw_moved(idx, from_group);
                let to_group = self.customers.get(idx).group;
                for s in 0..self.slos.len() {
                    let series = self.customer_buckets(s, idx);
                    let st = &mut self.slos[s];
                    for (k, v) in series {
                        st.group_series(from_group).add_bucket(
                            k,
                            Counts {
                                good: -v.good,
                                bad: -v.bad,
                            },
                        );
                        st.group_series(to_group).add_bucket(k, v);
                        if self.track_dirty {
                            self.dirty.groups.insert((s as u32, from_group, k));
                            self.dirty.groups.insert((s as u32, to_group, k));
                        }
                    }
                }
                // Its zone may have changed: its days are other days.
                self.rebuild_cold_days(idx);
                self.recompute_items_of(idx);
            }
        }
        idx
    }

    /// Customer `c` leaves group `from`: its counts and breaches there are
    /// withdrawn (they are counted again in its new group).
    fn withdraw_moved(&mut self, c: CustomerIdx, from: GroupIdx) {
        for s in 0..self.slos.len() {
            let total = self.customer_sum(s, c, Millis::MIN, Millis::MAX);
            let st = &mut self.slos[s];
            if !total.is_zero() {
                st.withdraw(from, total);
            }
            let mut gone: HashMap<Level, u64> = HashMap::new();
            for contrib in st.contribs.values() {
                for (x, o) in &contrib.list {
                    if *x == c && stopped_bad(o) {
                        *gone.entry(contrib.level).or_default() += 1;
                    }
                }
            }
            for (level, n) in gone {
                *st.breaches_withdrawn.entry((from, level)).or_default() += n;
            }
        }
    }

    fn recompute_items_of(&mut self, c: CustomerIdx) {
        let id = self.customers.get(c).id.clone();
        let tickets: Vec<ItemIdx> = (0..self.tickets.list.len() as ItemIdx)
            .filter(|t| {
                self.tickets.list[*t as usize]
                    .events
                    .iter()
                    .any(|e| e.customer.as_deref() == Some(&*id))
            })
            .collect();
        for t in tickets {
            self.recompute_ticket(t);
        }
        let incidents: Vec<ItemIdx> = (0..self.incidents.list.len() as ItemIdx)
            .filter(|i| {
                self.incidents.list[*i as usize].events.iter().any(|e| {
                    e.customer_ids
                        .as_ref()
                        .is_some_and(|l| l.iter().any(|x| *x == *id))
                })
            })
            .collect();
        for i in incidents {
            self.recompute_incident(i);
        }
    }

    fn apply_probe(&mut self, ev: &Event<'_>, p: &ProbeBody<'_>) {
        let Some(cid) = ev.customer_id.as_deref() else {
            return;
        };
        let c = self.name_customer(
            cid,
            ev.segment.as_deref(),
            ev.timezone.as_deref(),
            ev.occurred_at,
            &ev.event_id,
        );
        let cust = self.customers.get(c);
        let group = cust.group;
        // Borrowed, not cloned: a clone is an atomic increment on a cache
        // line of its own, per event.
        self.latency.record(
            &p.service,
            &cust.segment,
            ev.occurred_at,
            p.latency_ms,
            self.watermark.unwrap_or(ev.occurred_at),
        );
        for k in 0..self.probe_slos.len() {
            let s = self.probe_slos[k];
            let slo = &self.settings.slos[s];
            if !probe_matches(slo, p) {
                continue;
            }
            if self.config_excluded(s, c, ev.occurred_at) {
                continue;
            }
            // Judged by the version in force at the probe's instant (SPEC §3
            // Definition versions); the bucket keeps only the verdict.
            let good = match slo.indicator {
                Indicator::ProbeLatency => {
                    p.success
                        && p.latency_ms <= slo.threshold_at(ev.occurred_at).unwrap_or(f64::INFINITY)
                }
                _ => p.success,
            };
            let st = &mut self.slos[s];
            let delta = Counts::one(good);
            st.customer_series(c).add(ev.occurred_at, delta);
            st.group_series(group).add(ev.occurred_at, delta);
            if self.track_dirty {
                let minute = floor_minute(ev.occurred_at);
                self.dirty.buckets.insert((s as u32, c, minute));
                self.dirty.groups.insert((s as u32, group, minute));
            }
        }
    }

    /// Whether a configured exclusion that is not bounded by whole minutes
    /// removes instant `t` for this SLO and customer. Exclusions bounded by
    /// whole minutes are applied to the minute buckets at query time instead,
    /// so they follow the customer's segment whenever it is settled.
    fn config_excluded(&self, slo: usize, c: CustomerIdx, t: Millis) -> bool {
        if self.settings.exclusions.is_empty() {
            return false;
        }
        let name = &self.settings.slos[slo].name;
        let cust = self.customers.get(c);
        self.settings
            .exclusions
            .iter()
            .filter(|x| !minute_bounded(x))
            .any(|x| x.from <= t && t < x.to && x.covers(name, &cust.id, &cust.segment))
    }

    /// Whether any exclusion is applied to probe buckets at query time.
    pub fn has_query_time_exclusions(&self) -> bool {
        !self.runtime_exclusions.is_empty() || self.settings.exclusions.iter().any(minute_bounded)
    }

    /// Every exclusion (configured and run-time) covering this SLO and customer.
    pub fn exclusion_spans(&self, slo: usize, c: CustomerIdx) -> SpanSet {
        let name = &self.settings.slos[slo].name;
        let cust = self.customers.get(c);
        SpanSet::from_spans(
            self.settings
                .exclusions
                .iter()
                .chain(self.runtime_exclusions.iter().map(|r| &r.exclusion))
                .filter(|x| x.covers(name, &cust.id, &cust.segment))
                .map(|x| (x.from, x.to)),
        )
    }

    /// The exclusions applied to probe buckets at query time: run-time ones
    /// and configured ones bounded by whole minutes.
    pub fn query_time_exclusion_spans(&self, slo: usize, c: CustomerIdx) -> SpanSet {
        let name = &self.settings.slos[slo].name;
        let cust = self.customers.get(c);
        SpanSet::from_spans(
            self.settings
                .exclusions
                .iter()
                .filter(|x| minute_bounded(x))
                .chain(self.runtime_exclusions.iter().map(|r| &r.exclusion))
                .filter(|x| x.covers(name, &cust.id, &cust.segment))
                .map(|x| (x.from, x.to)),
        )
    }

    fn apply_ticket(&mut self, ev: &Event<'_>, t: &TicketBody<'_>) {
        if let Some(cid) = ev.customer_id.as_deref().filter(|c| self.owns(c)) {
            self.name_customer(
                cid,
                ev.segment.as_deref(),
                ev.timezone.as_deref(),
                ev.occurred_at,
                &ev.event_id,
            );
        }
        let item = self.ticket_item(&t.ticket_id);
        let opened = t.action == crate::model::event::TicketAction::Opened;
        let stored = TicketEv {
            at: ev.occurred_at,
            action: t.action,
            event_id: ev.event_id.to_string(),
            priority: t.priority,
            customer: if opened {
                ev.customer_id.as_deref().map(str::to_string)
            } else {
                None
            },
            service: if opened {
                t.service.as_deref().map(str::to_string)
            } else {
                None
            },
            region: if opened {
                t.region.as_deref().map(str::to_string)
            } else {
                None
            },
        };
        let it = &mut self.tickets.list[item as usize];
        if self.track_dirty {
            self.dirty.tickets.push(ItemOp::Append {
                item,
                n: it.stored,
                ev: stored.clone(),
            });
            it.stored += 1;
        }
        let pos = it
            .events
            .partition_point(|e| e.sort_key() < stored.sort_key());
        it.events.insert(pos, stored);
        self.recompute_ticket(item);
    }

    fn apply_incident(&mut self, ev: &Event<'_>, i: &IncidentBody<'_>) {
        if let Some(list) = &i.customer_ids {
            for cid in list {
                if self.owns(cid) {
                    self.name_customer(cid, None, None, ev.occurred_at, &ev.event_id);
                }
            }
        }
        let item = self.incidents.get_or_insert(&i.incident_id);
        let opened = i.action == crate::model::event::IncidentAction::Opened;
        let stored = IncidentEv {
            at: ev.occurred_at,
            action: i.action,
            event_id: ev.event_id.to_string(),
            severity: i.severity,
            customer_ids: i
                .customer_ids
                .as_ref()
                .map(|l| l.iter().map(|c| c.to_string()).collect()),
            service: if opened {
                i.service.as_deref().map(str::to_string)
            } else {
                None
            },
            planned: opened && i.planned,
        };
        let it = &mut self.incidents.list[item as usize];
        if self.track_dirty {
            self.dirty.incidents.push(ItemOp::Append {
                item,
                n: it.stored,
                ev: stored.clone(),
            });
            it.stored += 1;
        }
        let pos = it
            .events
            .partition_point(|e| e.sort_key() < stored.sort_key());
        it.events.insert(pos, stored);
        self.recompute_incident(item);
    }

    /// Replaces what clock SLO `s` counts for `item` with `new`. What the
    /// change takes away from a group's counts or breaches is recorded as
    /// withdrawn (see `SloState::withdrawn`). Linear in the customers of
    /// the item.
    fn set_contribs(&mut self, s: usize, item: ItemIdx, new: Contrib) {
        let st = &mut self.slos[s];
        let old = st.contribs.remove(&item).unwrap_or_default();
        if old == new {
            if !new.list.is_empty() {
                st.contribs.insert(item, new);
            }
            return;
        }
        st.clock_index.replace(item, &old, &new);
        let adopting = self.adopting;
        let track = self.track_dirty;
        // Net change per group and per (group, level); only its negative
        // part is withdrawn, so an outcome that merely moves in time (or is
        // re-derived unchanged) withdraws nothing.
        let mut events: HashMap<GroupIdx, Counts> = HashMap::new();
        let mut breaches: HashMap<(GroupIdx, Level), i64> = HashMap::new();
        for (c, o) in &old.list {
            let g = self.customers.get(*c).group;
            match *o {
                Outcome::Stopped { at, good, .. } if !adopting => {
                    st.customer_series(*c).sub(at, Counts::one(good));
                    st.group_series(g).sub(at, Counts::one(good));
                    events.entry(g).or_default().sub(Counts::one(good));
                    if track {
                        self.dirty.buckets.insert((s as u32, *c, floor_minute(at)));
                        self.dirty.groups.insert((s as u32, g, floor_minute(at)));
                    }
                }
                Outcome::Stopped { .. } => {}
                Outcome::Running { breach_at: Some(b) } => {
                    st.pending.remove(&(b, item, *c));
                    if let Some(p) = st.pending_by_customer.get_mut(c) {
                        p.remove(&(b, item));
                        if p.is_empty() {
                            st.pending_by_customer.remove(c);
                        }
                    }
                }
                Outcome::Running { breach_at: None } => {}
            }
            if stopped_bad(o) && !adopting {
                *breaches.entry((g, old.level)).or_default() -= 1;
            }
        }
        for (c, o) in &new.list {
            let g = self.customers.get(*c).group;
            match *o {
                Outcome::Stopped { at, good, .. } if !adopting => {
                    st.customer_series(*c).add(at, Counts::one(good));
                    st.group_series(g).add(at, Counts::one(good));
                    events.entry(g).or_default().add(Counts::one(good));
                    if track {
                        self.dirty.buckets.insert((s as u32, *c, floor_minute(at)));
                        self.dirty.groups.insert((s as u32, g, floor_minute(at)));
                    }
                }
                Outcome::Stopped { .. } => {}
                Outcome::Running { breach_at: Some(b) } => {
                    st.pending.insert((b, item, *c));
                    st.pending_by_customer
                        .entry(*c)
                        .or_default()
                        .insert((b, item));
                }
                Outcome::Running { breach_at: None } => {}
            }
            if stopped_bad(o) && !adopting {
                *breaches.entry((g, new.level)).or_default() += 1;
            }
        }
        for (g, d) in events {
            let gone = Counts {
                good: (-d.good).max(0),
                bad: (-d.bad).max(0),
            };
            if !gone.is_zero() {
                st.withdraw(g, gone);
            }
        }
        for (key, d) in breaches {
            if d < 0 {
                *st.breaches_withdrawn.entry(key).or_default() += d.unsigned_abs();
            }
        }
        if !new.list.is_empty() {
            st.contribs.insert(item, new);
        }
    }

    /// The calendar a clock of SLO `slo` runs on for customer `c`.
    fn clock_calendar(&self, slo: &SloDef, c: CustomerIdx) -> &BusinessCalendar {
        match slo.clock {
            ClockKind::Business => &self.customers.get(c).calendar,
            ClockKind::AllDay => &self.always,
        }
    }

    /// Evaluates one clock of SLO `s` for customer `c`: `None` when the SLO
    /// does not count it (no target for its level, or a filter excludes it).
    pub(crate) fn clock_outcome(
        &self,
        s: usize,
        c: CustomerIdx,
        run: &ClockRun,
        pauses: Option<&SpanSet>,
    ) -> Option<Outcome> {
        let slo = &self.settings.slos[s];
        let cust = self.customers.get(c);
        // The terms the clock was opened under (SPEC §3 Definition versions).
        let target = slo.target_at(&cust.segment, run.level, run.start)?;
        let removed = self.removed_spans(s, c, pauses);
        Some(evaluate(run, &removed, self.clock_calendar(slo, c), target))
    }

    /// What a clock of SLO `s` for customer `c` does not count: its
    /// exclusions, and its pauses when the SLO is pausable.
    pub(crate) fn removed_spans(
        &self,
        s: usize,
        c: CustomerIdx,
        pauses: Option<&SpanSet>,
    ) -> SpanSet {
        let removed = self.exclusion_spans(s, c);
        match pauses {
            Some(p) => removed.union(p),
            None => removed,
        }
    }

    pub(crate) fn recompute_ticket(&mut self, item: ItemIdx) {
        if self.tickets.list[item as usize].settled {
            // Its record would no longer say what it counts.
            self.revive(item, None);
        }
        let tl = ticket_timeline(&self.tickets.list[item as usize].events);
        for k in 0..self.ticket_slos.len() {
            let s = self.ticket_slos[k];
            let slo = &self.settings.slos[s];
            let mut new = Contrib::default();
            if let Some(tl) = &tl {
                if let Some(c) = self.customers.lookup(&tl.customer) {
                    let run = if slo.indicator == Indicator::TicketResponse {
                        &tl.response
                    } else {
                        &tl.resolution
                    };
                    let fields = |key: &str| -> Option<&str> {
                        match key {
                            "priority" => Some(PRIORITIES[run.level as usize]),
                            "service" => tl.service.as_deref(),
                            "region" => tl.region.as_deref(),
                            _ => None,
                        }
                    };
                    if filter_matches(slo, fields) {
                        let pauses = slo.pausable.then_some(&tl.pauses);
                        if let Some(o) = self.clock_outcome(s, c, run, pauses) {
                            new.level = run.level;
                            new.list.push((c, o));
                        }
                    }
                }
            }
            self.set_contribs(s, item, new);
        }
    }

    pub(crate) fn recompute_incident(&mut self, item: ItemIdx) {
        let tl = incident_timeline(&self.incidents.list[item as usize].events);
        for k in 0..self.incident_slos.len() {
            let s = self.incident_slos[k];
            let slo = &self.settings.slos[s];
            let counted = tl.as_ref().filter(|tl| !tl.planned);
            if slo.indicator == Indicator::IncidentAvailability {
                let mut per_customer: BTreeMap<CustomerIdx, SpanSet> = BTreeMap::new();
                if let Some(tl) = counted {
                    for piece in &tl.open_pieces {
                        let fields = |key: &str| -> Option<&str> {
                            match key {
                                "severity" => Some(SEVERITIES[piece.severity as usize]),
                                "service" => tl.service.as_deref(),
                                _ => None,
                            }
                        };
                        if !slo.severities.contains(&piece.severity) || !filter_matches(slo, fields)
                        {
                            continue;
                        }
                        for cid in &piece.customers {
                            if let Some(c) = self.customers.lookup(cid) {
                                per_customer.entry(c).or_default().insert(piece.span);
                            }
                        }
                    }
                }
                self.set_downtime(s, item, per_customer);
                continue;
            }
            let mut new = Contrib::default();
            if let Some(tl) = counted {
                let run = if slo.indicator == Indicator::IncidentAck {
                    &tl.ack
                } else {
                    &tl.resolution
                };
                let fields = |key: &str| -> Option<&str> {
                    match key {
                        "severity" => Some(SEVERITIES[run.level as usize]),
                        "service" => tl.service.as_deref(),
                        _ => None,
                    }
                };
                if filter_matches(slo, fields) {
                    new.level = run.level;
                    for cid in &tl.customers {
                        if let Some(c) = self.customers.lookup(cid) {
                            if let Some(o) = self.clock_outcome(s, c, run, None) {
                                new.list.push((c, o));
                            }
                        }
                    }
                }
            }
            self.set_contribs(s, item, new);
        }
    }

    fn set_downtime(
        &mut self,
        s: usize,
        item: ItemIdx,
        per_customer: BTreeMap<CustomerIdx, SpanSet>,
    ) {
        let st = &mut self.slos[s];
        if let Some(old) = st.downtime_by_item.remove(&item) {
            for c in old {
                if let Some(m) = st.downtime.get_mut(&c) {
                    m.remove(&item);
                }
            }
        }
        if per_customer.is_empty() {
            return;
        }
        let mut customers = Vec::with_capacity(per_customer.len());
        for (c, spans) in per_customer {
            customers.push(c);
            st.downtime.entry(c).or_default().insert(item, spans);
        }
        st.downtime_by_item.insert(item, customers);
    }

    /// Applies retention relative to the watermark: minute buckets older than
    /// `FINE_RETENTION` fold into quarter hours, anything older than
    /// `COARSE_RETENTION` is dropped (buckets, stopped tickets and incidents).
    pub fn compact(&mut self) {
        let Some(w) = self.watermark else { return };
        let (fine_before, drop_before) = horizons(w);
        self.compacted = (fine_before, drop_before);
        if self.cold.is_some() && self.track_dirty {
            self.dirty.history_dropped_before = Some(drop_before);
        }
        // Days ending before retention are never read (a read starts at
        // the first day starting at or after it). A series has stored
        // buckets behind retention when its day sums reach there (what
        // left memory is in both).
        for (s, st) in self.slos.iter_mut().enumerate() {
            for (c, days) in st.cold_days.iter_mut().enumerate() {
                if days.iter().next().is_some_and(|(k, _)| k < drop_before) {
                    if self.cold.is_some() && self.track_dirty {
                        self.dirty
                            .history_dropped
                            .push((s as u32, c as CustomerIdx));
                    }
                    days.forget_below(drop_before - 2 * crate::model::time::DAY);
                }
            }
        }
        let since = self.compacted_below;
        self.compacted_below = fine_before;
        for k in 0..self.probe_slos.len() {
            let s = self.probe_slos[k];
            let st = &mut self.slos[s];
            for (c, series) in st.by_customer.iter_mut().enumerate() {
                for key in series.compact(since, fine_before, drop_before) {
                    if self.track_dirty {
                        self.dirty.buckets.insert((s as u32, c as CustomerIdx, key));
                    }
                }
            }
            for (g, series) in st.by_group.iter_mut().enumerate() {
                for key in series.compact(since, fine_before, drop_before) {
                    if self.track_dirty {
                        self.dirty.groups.insert((s as u32, g as GroupIdx, key));
                    }
                }
            }
        }
        // Items whose every event is older than the coarse horizon are gone
        // from every window we keep; they leave memory with the commit that
        // deletes their events (`free_retired`).
        let old_ticket = |events: &[TicketEv]| events.last().is_some_and(|e| e.at < drop_before);
        self.fault_in_past(drop_before);
        for t in 0..self.tickets.list.len() {
            if old_ticket(&self.tickets.list[t].events) {
                if self.tickets.list[t].settled {
                    self.revive(t as ItemIdx, None);
                }
                self.tickets.list[t].events.clear();
                self.recompute_ticket(t as ItemIdx);
                let it = &mut self.tickets.list[t];
                if self.track_dirty && it.stored > 0 {
                    self.dirty.tickets.push(ItemOp::Gone {
                        item: t as ItemIdx,
                        stored: it.stored,
                    });
                    it.stored = 0;
                }
                self.retired.0.push(t as ItemIdx);
            }
        }
        for i in 0..self.incidents.list.len() {
            let old = self.incidents.list[i]
                .events
                .last()
                .is_some_and(|e| e.at < drop_before);
            if old {
                self.incidents.list[i].events.clear();
                self.recompute_incident(i as ItemIdx);
                let it = &mut self.incidents.list[i];
                if self.track_dirty && it.stored > 0 {
                    self.dirty.incidents.push(ItemOp::Gone {
                        item: i as ItemIdx,
                        stored: it.stored,
                    });
                    it.stored = 0;
                }
                self.retired.1.push(i as ItemIdx);
            }
        }
        if !self.track_dirty {
            self.free_retired();
        }
    }

    /// Items retention emptied leave memory (once the commit deleting
    /// their events is built: its operations name them by slot). One an
    /// event named again since stays.
    pub fn free_retired(&mut self) {
        let (tickets, incidents) = std::mem::take(&mut self.retired);
        for t in tickets {
            let it = &self.tickets.list[t as usize];
            if it.events.is_empty() && !it.settled && !it.id.is_empty() {
                self.tickets.free(t);
            }
        }
        for i in incidents {
            let it = &self.incidents.list[i as usize];
            if it.events.is_empty() && !it.id.is_empty() {
                self.incidents.free(i);
            }
        }
    }

    /// Runs `compact` when the watermark moved the fine horizon to the next
    /// day.
    pub fn maybe_compact(&mut self) {
        if let Some(w) = self.watermark {
            if horizons(w).0 > self.compacted_below {
                self.compact();
            }
        }
    }

    /// Re-evaluates every clock (after the set of exclusions changed).
    pub fn recompute_all(&mut self) {
        for t in 0..self.tickets.list.len() as ItemIdx {
            self.recompute_ticket(t);
        }
        for i in 0..self.incidents.list.len() as ItemIdx {
            self.recompute_incident(i);
        }
    }

    /// Adds a run-time exclusion, applies it retroactively and audits it.
    pub fn add_exclusion(
        &mut self,
        exclusion: Exclusion,
        author: String,
        now: Millis,
    ) -> RuntimeExclusion {
        self.add_exclusion_by(exclusion, author.clone(), author, now)
    }

    /// `add_exclusion` audited with `who` (the authenticated name) apart
    /// from the `author` the request gave.
    pub fn add_exclusion_by(
        &mut self,
        exclusion: Exclusion,
        author: String,
        who: String,
        now: Millis,
    ) -> RuntimeExclusion {
        let r = RuntimeExclusion {
            id: self.next_exclusion_id,
            exclusion,
            author,
            created_at: now,
        };
        self.next_exclusion_id += 1;
        self.fault_in_excluded(&r.exclusion);
        self.runtime_exclusions.push(r.clone());
        self.push_audit(now, who, "add", r.id, None, Some(r.clone()));
        self.recompute_all();
        self.dirty.fingerprint = true;
        r
    }

    /// Withdraws a run-time exclusion and audits it; `None` if unknown.
    pub fn remove_exclusion(
        &mut self,
        id: u64,
        who: String,
        now: Millis,
    ) -> Option<RuntimeExclusion> {
        let pos = self.runtime_exclusions.iter().position(|r| r.id == id)?;
        self.fault_in_excluded(&self.runtime_exclusions[pos].exclusion.clone());
        let r = self.runtime_exclusions.remove(pos);
        self.push_audit(now, who, "delete", id, Some(r.clone()), None);
        self.recompute_all();
        self.dirty.fingerprint = true;
        Some(r)
    }

    fn push_audit(
        &mut self,
        at: Millis,
        who: String,
        action: &str,
        id: u64,
        before: Option<RuntimeExclusion>,
        after: Option<RuntimeExclusion>,
    ) {
        let seq = self.next_audit_seq();
        self.audit.push(AuditEntry {
            seq,
            at,
            who,
            action: action.to_string(),
            exclusion_id: id,
            before,
            after,
        });
        self.dirty.exclusions = true;
    }

    pub fn audit(&self) -> &[AuditEntry] {
        &self.audit
    }

    /// The sequence number of the next audit entry, whichever its kind.
    pub fn next_audit_seq(&self) -> u64 {
        let last = |a: Option<u64>, b: Option<u64>| a.max(b).unwrap_or(0);
        last(
            self.audit.last().map(|a| a.seq),
            self.definition_changes.last().map(|d| d.seq),
        ) + 1
    }

    /// The SLO definition changes found at starts, oldest first.
    pub fn definition_changes(&self) -> &[versions::DefinitionChange] {
        &self.definition_changes
    }
}

fn minute_bounded(x: &Exclusion) -> bool {
    x.from.rem_euclid(crate::model::time::MINUTE) == 0
        && x.to.rem_euclid(crate::model::time::MINUTE) == 0
}

/// A `filter` matches when every key names a field the event has, with an
/// equal value (SPEC §2.3, §3 "Probes").
fn filter_matches<'a>(slo: &SloDef, field: impl Fn(&str) -> Option<&'a str>) -> bool {
    slo.filter.iter().all(|(k, v)| field(k) == Some(v.as_str()))
}

fn probe_matches(slo: &SloDef, p: &ProbeBody<'_>) -> bool {
    if slo.filter.is_empty() {
        return true;
    }
    filter_matches(slo, |k| match k {
        "service" => Some(&*p.service),
        "region" => p.region.as_deref(),
        "probe_id" => Some(&*p.probe_id),
        _ => None,
    })
}
#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
