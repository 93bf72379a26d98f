//! Settled tickets leave memory.
//!
//! A ticket is settled once none of its clocks runs and its last event lies
//! behind the hot window. Its events, with what each clock SLO counted for
//! it, then go to the store as one record (indexed by customer, by last
//! event and by breach instant, for the breaches list), and it leaves memory
//! once the commit holding that record is durable. What it counted stays in
//! the series, which the store keeps for clock SLOs too, so nothing is
//! re-derived from it.
//!
//! A settled ticket can still change: an event can name it at any time (a
//! reopen), a run-time exclusion can cover one of its clocks, its customer
//! can move to another group, and retention drops it. It then comes back
//! into memory with what the store counted for it (so the change withdraws
//! exactly that) and is stored as events again until it settles anew.

use serde::{Deserialize, Serialize};

use super::clock::{Outcome, TicketEv};
use super::customers::CustomerIdx;
use super::{Contrib, Engine, ItemIdx, ItemOp};
use crate::config::Config;
use crate::model::slo::{Exclusion, Level};
use crate::model::time::Millis;

/// The stored record of a settled ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettledTicket {
    /// Its events, in SPEC §3 order.
    pub events: Vec<TicketEv>,
    /// What each clock SLO counts for it.
    pub counted: Vec<Counted>,
}

/// What one clock SLO counts for a ticket: its level and, per customer
/// (by id), the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub slo: String,
    pub level: Level,
    pub list: Vec<(String, Outcome)>,
}

impl SettledTicket {
    /// The customers its events name.
    pub fn customers(&self) -> std::collections::BTreeSet<&str> {
        self.events
            .iter()
            .filter_map(|e| e.customer.as_deref())
            .collect()
    }

    /// The instant of its last event.
    pub fn last_at(&self) -> Millis {
        self.events
            .iter()
            .map(|e| e.at)
            .max()
            .unwrap_or(Millis::MIN)
    }

    /// (slo, breached_at, customer, stopped_at) of each clock it stopped
    /// late.
    pub fn breaches(&self) -> Vec<(&str, Millis, &str, Millis)> {
        let mut out = Vec::new();
        for c in &self.counted {
            for (customer, o) in &c.list {
                if let Outcome::Stopped {
                    at,
                    good: false,
                    breach_at,
                } = *o
                {
                    out.push((
                        c.slo.as_str(),
                        breach_at.unwrap_or(at),
                        customer.as_str(),
                        at,
                    ));
                }
            }
        }
        out
    }
}

/// FNV-1a, stable across builds and platforms.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A hash of what the configuration judges clocks by: the registry, the
/// calendars, the SLO definitions and the configured exclusions.
pub(crate) fn config_print(cfg: &Config) -> u64 {
    let text = format!(
        "{:?}\u{1}{:?}\u{1}{:?}\u{1}{:?}",
        cfg.customers, cfg.calendars, cfg.slos, cfg.exclusions
    );
    fnv(FNV_START, text.as_bytes())
}

impl Engine {
    /// A hash of everything stored clock outcomes are derived under: the
    /// configuration's part (`config_print`) and the run-time exclusions.
    /// A state restored under another one re-derives every clock.
    pub fn fingerprint(&self) -> u64 {
        let mut h = fnv(FNV_START, &self.config_print.to_be_bytes());
        for r in &self.runtime_exclusions {
            h = fnv(h, format!("{:?}\u{1}", r.exclusion).as_bytes());
        }
        h
    }

    /// The record of ticket `i` as it stands.
    pub fn settled_record(&self, i: ItemIdx) -> SettledTicket {
        let mut counted = Vec::new();
        for &s in &self.ticket_slos {
            if let Some(c) = self.slos[s].contribs.get(&i) {
                counted.push(Counted {
                    slo: self.settings.slos[s].name.clone(),
                    level: c.level,
                    list: c
                        .list
                        .iter()
                        .map(|(x, o)| (self.customers.get(*x).id.to_string(), *o))
                        .collect(),
                });
            }
        }
        SettledTicket {
            events: self.tickets.list[i as usize].events.clone(),
            counted,
        }
    }

    /// The ticket `id` names, in memory and stored as events (a settled
    /// one comes back).
    pub(crate) fn ticket_item(&mut self, id: &str) -> ItemIdx {
        if let Some(&i) = self.tickets.index.get(id) {
            if self.tickets.list[i as usize].settled {
                self.revive(i, None);
            }
            return i;
        }
        if let Some(rec) = self.load_settled(id) {
            return self.fault_in(id, rec);
        }
        self.tickets.get_or_insert(id)
    }

    fn load_settled(&self, id: &str) -> Option<SettledTicket> {
        let cold = self.cold.as_ref()?;
        match cold.history.settled_ticket(id) {
            Ok(r) => r,
            Err(e) => {
                // As for stored buckets: an answer without it would be wrong,
                // so the process fails (and restarts) instead.
                panic!("reading settled ticket {id} from the state store: {e}")
            }
        }
    }

    /// Brings settled ticket `id` back into memory with what the store
    /// counted for it, stored as events again.
    fn fault_in(&mut self, id: &str, rec: SettledTicket) -> ItemIdx {
        let i = self.tickets.get_or_insert(id);
        {
            let it = &mut self.tickets.list[i as usize];
            it.events = rec.events.clone();
            it.settled = true;
            it.stored = 0;
        }
        for c in &rec.counted {
            let Some(s) = self.slo_index(&c.slo) else {
                continue;
            };
            let list: Vec<(CustomerIdx, Outcome)> = c
                .list
                .iter()
                .filter_map(|(x, o)| Some((self.customers.lookup(x)?, *o)))
                .collect();
            let contrib = Contrib {
                level: c.level,
                list,
            };
            let st = &mut self.slos[s];
            st.clock_index.entries(i, &contrib, true);
            st.contribs.insert(i, contrib);
        }
        self.revive(i, Some(rec));
        i
    }

    /// Settled ticket `i`, in memory, is stored as events again: its record
    /// (`old`, or as it stands) leaves the store, and its clocks stopped
    /// late count in the index again.
    pub(crate) fn revive(&mut self, i: ItemIdx, old: Option<SettledTicket>) {
        let old = match old {
            Some(o) => o,
            None => self.settled_record(i),
        };
        self.settling.remove(&i);
        for k in 0..self.ticket_slos.len() {
            let s = self.ticket_slos[k];
            self.move_settled_bad(s, i, -1);
        }
        let it = &mut self.tickets.list[i as usize];
        it.settled = false;
        it.stored = it.events.len() as u32;
        if self.track_dirty {
            self.dirty.tickets.push(ItemOp::Revive {
                item: i,
                events: it.events.clone(),
                old: Box::new(old),
            });
        }
        self.settle_due = true;
    }

    /// Moves the clocks of ticket `i` for SLO `s` stopped late into the
    /// settled counts (`sign` 1) or back into the index (-1).
    fn move_settled_bad(&mut self, s: usize, i: ItemIdx, sign: i64) {
        let st = &mut self.slos[s];
        let Some(c) = st.contribs.get(&i) else {
            return;
        };
        for (x, o) in &c.list {
            if matches!(o, Outcome::Stopped { good: false, .. }) {
                let k = (*x, c.level);
                let n = st.settled_bad.entry(k).or_default();
                *n = n.saturating_add_signed(sign);
                if *n == 0 {
                    st.settled_bad.remove(&k);
                }
                if self.track_dirty {
                    self.dirty.settled_bad.insert((s as u32, *x, c.level));
                }
            }
        }
        st.clock_index.count(c, -sign);
    }

    /// Looks for settled tickets once the hot boundary moved (or tickets
    /// came back): each ticket none of whose clocks runs and whose last
    /// event lies behind the boundary is written as a record by the commit
    /// being built (`ItemOp::Settle`) and leaves memory once that commit is
    /// durable. Only with history in the store.
    pub fn settle_pass(&mut self) {
        let (Some(boundary), Some(commit)) = (self.hot_boundary(), self.next_commit()) else {
            return;
        };
        if !self.track_dirty || (!self.settle_due && boundary <= self.settled_below) {
            return;
        }
        self.settle_due = false;
        self.settled_below = boundary;
        for i in 0..self.tickets.list.len() as ItemIdx {
            let it = &self.tickets.list[i as usize];
            if it.settled || it.events.last().is_none_or(|e| e.at >= boundary) {
                continue;
            }
            let running = self.ticket_slos.iter().any(|&s| {
                self.slos[s].contribs.get(&i).is_some_and(|c| {
                    c.list
                        .iter()
                        .any(|(_, o)| matches!(o, Outcome::Running { .. }))
                })
            });
            if running {
                continue;
            }
            for k in 0..self.ticket_slos.len() {
                let s = self.ticket_slos[k];
                self.move_settled_bad(s, i, 1);
            }
            let it = &mut self.tickets.list[i as usize];
            let stored = it.stored;
            it.settled = true;
            it.stored = 0;
            self.dirty.tickets.push(ItemOp::Settle { item: i, stored });
            self.settling.insert(i, commit);
        }
    }

    /// Settled tickets whose record is in a durable commit (numbered
    /// `done` or before) leave memory.
    pub(crate) fn forget_settled(&mut self, done: i64) {
        if self.settling.is_empty() {
            return;
        }
        let ready: Vec<ItemIdx> = self
            .settling
            .iter()
            .filter(|(_, n)| **n <= done)
            .map(|(i, _)| *i)
            .collect();
        for i in ready {
            self.settling.remove(&i);
            for k in 0..self.ticket_slos.len() {
                let s = self.ticket_slos[k];
                let st = &mut self.slos[s];
                if let Some(c) = st.contribs.remove(&i) {
                    st.clock_index.entries(i, &c, false);
                }
            }
            self.tickets.free(i);
        }
    }

    /// Brings back the settled tickets of customer `c` whose last event is
    /// at or after `from`.
    pub(crate) fn fault_in_customer(&mut self, c: CustomerIdx, from: Millis) {
        let Some(cold) = self.cold.as_ref() else {
            return;
        };
        let id = self.customers.get(c).id.to_string();
        let ids = match cold.history.settled_tickets_of(&id, from) {
            Ok(ids) => ids,
            Err(e) => {
                panic!("reading the settled tickets of {id} from the state store: {e}")
            }
        };
        self.fault_in_ids(ids);
    }

    fn fault_in_ids(&mut self, ids: Vec<String>) {
        for t in ids {
            if self.tickets.index.contains_key(&t) {
                continue;
            }
            if let Some(rec) = self.load_settled(&t) {
                self.fault_in(&t, rec);
            }
        }
    }

    /// Brings back the settled tickets a run-time exclusion `x` (added or
    /// withdrawn) can change: those of the customers it covers for a
    /// ticket SLO whose last event is not before it starts (a clock that
    /// stopped before `x.from` keeps its outcome).
    pub(crate) fn fault_in_excluded(&mut self, x: &Exclusion) {
        if self.cold.is_none() {
            return;
        }
        let covered: Vec<CustomerIdx> = self
            .customers
            .iter()
            .filter(|(_, c)| {
                self.ticket_slos
                    .iter()
                    .any(|&s| x.covers(&self.settings.slos[s].name, &c.id, &c.segment))
            })
            .map(|(i, _)| i)
            .collect();
        for c in covered {
            self.fault_in_customer(c, x.from);
        }
    }

    /// Brings back the settled tickets whose last event is before `before`
    /// (retention drops them).
    pub(crate) fn fault_in_past(&mut self, before: Millis) {
        let Some(cold) = self.cold.as_ref() else {
            return;
        };
        match cold.history.settled_tickets_before(before) {
            Ok(ids) => self.fault_in_ids(ids),
            Err(e) => panic!("reading settled tickets from the state store: {e}"),
        }
    }

    /// Tickets in memory and settled in the store.
    pub fn settled_in_memory(&self) -> usize {
        self.settling.len()
    }
}

#[cfg(test)]
mod tests {
    //! An engine whose settled tickets leave memory answers what an engine
    //! holding everything answers, through reopens, exclusions, restarts
    //! (with the same and with another configuration) and retention.

    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::engine::query::Scope;
    use crate::engine::Applied;
    use crate::model::event::decode;
    use crate::model::slo::Exclusion;
    use crate::model::time::parse_rfc3339;
    use crate::store::state::{dirty_batch, restore_at, StoreHistory};
    use crate::store::{MemStore, Store};

    const CONFIG: &str = r#"
[ingest]
max_lateness = "7d"

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"

[[customers]]
id = "globex"
segment = "standard"
timezone = "America/New_York"

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
window = "30d"
clock = "24x7"
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }

[[slos]]
name = "resolution"
indicator = "ticket_resolution"
objective = 0.9
window = "30d"
clock = "24x7"
targets = { P1 = "4h", P2 = "1d", P3 = "3d", P4 = "5d" }
"#;

    fn cfg(text: &str) -> Config {
        crate::config::parse(text, &[], Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("test instant")
    }

    fn ticket(n: usize, at: &str, customer: &str, id: &str, action: &str, p: &str) -> String {
        format!(
            r#"{{"event_id":"e{n}","kind":"ticket","occurred_at":"{at}","customer_id":"{customer}","ticket_id":"{id}","action":"{action}"{p}}}"#
        )
    }

    /// An engine holding everything, and one whose settled tickets leave
    /// memory into `store`, committing after every event.
    struct Pair {
        full: Engine,
        cold: Engine,
        store: MemStore,
        lines: Vec<String>,
        exclusions: Vec<Exclusion>,
    }

    const WALL: &str = "2030-01-01T00:00:00Z";

    impl Pair {
        fn new(text: &str) -> Pair {
            let cfg = cfg(text);
            let store = MemStore::default();
            let mut cold = restore_at(&cfg, &store, t(WALL), None).expect("empty store");
            let shared: Arc<dyn Store> = Arc::new(store.clone());
            cold.keep_history_unchecked(Arc::new(StoreHistory(shared)), 0);
            Pair {
                full: Engine::new(&cfg),
                cold,
                store,
                lines: Vec::new(),
                exclusions: Vec::new(),
            }
        }

        fn commit(&mut self) {
            self.cold.maybe_compact();
            self.store
                .write(dirty_batch(&mut self.cold))
                .expect("memory store");
        }

        fn feed(&mut self, at: &str, customer: &str, id: &str, action: &str, p: &str) {
            let line = ticket(self.lines.len(), at, customer, id, action, p);
            let ev = decode(line.as_bytes()).expect("test event");
            assert_eq!(self.full.apply(&ev, t(WALL)), Applied::Accepted, "{line}");
            assert_eq!(self.cold.apply(&ev, t(WALL)), Applied::Accepted, "{line}");
            self.full.maybe_compact();
            self.lines.push(line);
            self.commit();
            // A second commit lets what the first settled leave memory.
            self.commit();
        }

        fn exclude(&mut self, x: Exclusion, now: Millis) {
            self.full.add_exclusion(x.clone(), "ops".into(), now);
            self.cold.add_exclusion(x.clone(), "ops".into(), now);
            self.exclusions.push(x);
            self.commit();
            self.commit();
        }

        /// Restarts the cold engine from the store under configuration
        /// `text`; the full one is built anew from every event.
        fn restart(&mut self, text: &str, now: Millis) {
            let cfg = cfg(text);
            let shared: Arc<dyn Store> = Arc::new(self.store.clone());
            let history: Arc<dyn crate::engine::History> = Arc::new(StoreHistory(shared));
            self.cold = restore_at(&cfg, &self.store, t(WALL), Some(history)).expect("restore");
            if let Some(c) = self.cold.cold.as_mut() {
                c.hot = 0;
            }
            self.commit();
            self.commit();
            self.full = Engine::new(&cfg);
            for x in &self.exclusions {
                self.full.add_exclusion(x.clone(), "ops".into(), now);
            }
            for line in &self.lines {
                let ev = decode(line.as_bytes()).expect("test event");
                self.full.apply(&ev, t(WALL));
            }
        }
    }

    /// Every answer that tickets feed, at `now`.
    fn observe(e: &Engine, now: Millis) -> Vec<String> {
        let mut out = Vec::new();
        for slo in ["response", "resolution"] {
            let s = e.slo_index(slo).expect("slo");
            let mut scopes = vec![Scope::Filter {
                segment: None,
                timezone: None,
            }];
            for c in ["acme", "globex"] {
                if let Some(c) = e.customers().lookup(c) {
                    scopes.push(Scope::Customer(c));
                }
            }
            for scope in &scopes {
                for (from, to) in [
                    (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z")),
                    (t("2026-11-02T10:00:00Z"), t("2026-11-03T00:00:00Z")),
                ] {
                    let n = e.numbers(s, scope, from, to, now);
                    out.push(format!(
                        "{slo} {scope:?} {from}: {} {} {}",
                        n.total, n.good, n.bad
                    ));
                }
            }
            for b in e.breaches(Some(s), None, now) {
                out.push(format!(
                    "breach {} {} {} {} {:?} {} {}",
                    b.slo,
                    b.id,
                    b.customer,
                    b.breached_at,
                    b.stopped_at,
                    b.elapsed_seconds,
                    b.target_seconds
                ));
            }
        }
        // Groups by name: their indices depend on the order they were met.
        for ((s, g, level), n) in e.breach_counts(now) {
            let g = e.customers().group(g);
            out.push(format!("{s} {} {} {level}: {n}", g.segment, g.timezone));
        }
        out.sort();
        out
    }

    fn same(p: &Pair, now: Millis) {
        assert_eq!(observe(&p.cold, now), observe(&p.full, now));
    }

    /// A run-time exclusion is persisted on its own before it is answered;
    /// a crash before the next commit leaves the stored clock counts
    /// derived without it. The fingerprint says so, and the restart judges
    /// every clock again, settled tickets included.
    #[test]
    fn a_crash_between_an_exclusion_and_the_next_commit_is_judged_again() {
        let mut p = Pair::new(CONFIG);
        let now = t("2026-11-20T00:00:00Z");
        p.feed(
            "2026-11-02T10:00:00Z",
            "acme",
            "T1",
            "opened",
            r#","priority":"P1""#,
        );
        p.feed("2026-11-02T12:00:00Z", "acme", "T1", "responded", "");
        p.feed("2026-11-02T13:00:00Z", "acme", "T1", "resolved", "");
        p.feed(
            "2026-11-05T09:00:00Z",
            "globex",
            "T3",
            "opened",
            r#","priority":"P3""#,
        );
        assert!(!p.cold.tickets.index.contains_key("T1"), "T1 settled");
        let x = Exclusion {
            name: "maintenance".into(),
            from: t("2026-11-02T10:00:00Z"),
            to: t("2026-11-02T11:30:00Z"),
            slos: None,
            customers: Some(vec!["acme".into()]),
            segments: None,
            reason: "maintenance".into(),
        };
        p.full.add_exclusion(x.clone(), "ops".into(), now);
        p.cold.add_exclusion(x.clone(), "ops".into(), now);
        p.exclusions.push(x);
        // Only the exclusion reaches the store.
        p.store
            .write(crate::store::state::exclusions_batch(&mut p.cold))
            .expect("memory store");
        p.restart(CONFIG, now);
        same(&p, now);
        // And the next start takes the counts as stored.
        p.restart(CONFIG, now);
        same(&p, now);
    }

    #[test]
    fn settled_tickets_leave_memory_and_every_answer_stays() {
        let mut p = Pair::new(CONFIG);
        let now = t("2026-11-20T00:00:00Z");
        // T1: response late (2h for a 1h target), resolved in time.
        p.feed(
            "2026-11-02T10:00:00Z",
            "acme",
            "T1",
            "opened",
            r#","priority":"P1""#,
        );
        p.feed("2026-11-02T12:00:00Z", "acme", "T1", "responded", "");
        p.feed("2026-11-02T13:00:00Z", "acme", "T1", "resolved", "");
        // T2: on time.
        p.feed(
            "2026-11-02T10:00:00Z",
            "globex",
            "T2",
            "opened",
            r#","priority":"P2""#,
        );
        p.feed("2026-11-02T10:30:00Z", "globex", "T2", "responded", "");
        p.feed("2026-11-02T11:00:00Z", "globex", "T2", "resolved", "");
        // Days later, T3 opens: T1 and T2 are behind the window.
        p.feed(
            "2026-11-05T09:00:00Z",
            "globex",
            "T3",
            "opened",
            r#","priority":"P3""#,
        );
        assert_eq!(p.cold.tickets.len(), 1, "only the running ticket stays");
        assert_eq!(p.full.tickets.len(), 3);
        assert!(p.store.get(b"TT1").unwrap().is_some());
        let seen = observe(&p.full, now);
        assert!(
            seen.iter().any(|l| l.starts_with("breach response T1")),
            "{seen:?}"
        );
        same(&p, now);

        // A reopen brings T1 back; late resolution breaches it.
        p.feed("2026-11-05T10:00:00Z", "acme", "T1", "reopened", "");
        assert!(p.cold.tickets.index.contains_key("T1"));
        same(&p, now);
        p.feed("2026-11-05T14:00:00Z", "acme", "T1", "resolved", "");
        p.feed(
            "2026-11-07T09:00:00Z",
            "globex",
            "T4",
            "opened",
            r#","priority":"P4""#,
        );
        assert!(!p.cold.tickets.index.contains_key("T1"), "settled again");
        same(&p, now);

        // A run-time exclusion over T1's first response clears its breach.
        let x = Exclusion {
            name: "maintenance".into(),
            from: t("2026-11-02T10:00:00Z"),
            to: t("2026-11-02T11:30:00Z"),
            slos: None,
            customers: Some(vec!["acme".into()]),
            segments: None,
            reason: "maintenance".into(),
        };
        let before = observe(&p.full, now);
        p.exclude(x, now);
        assert_ne!(observe(&p.full, now), before, "the exclusion changes T1");
        same(&p, now);

        // A customer's settled tickets come back when an earlier-dated
        // event moves it to another group.
        let p1 = r#","priority":"P1","segment":"standard","timezone":"Europe/Berlin""#;
        p.feed("2026-11-05T11:00:00Z", "initech", "T8", "opened", p1);
        p.feed("2026-11-05T13:00:00Z", "initech", "T8", "responded", "");
        p.feed("2026-11-05T14:00:00Z", "initech", "T8", "resolved", "");
        p.feed(
            "2026-11-08T10:00:00Z",
            "globex",
            "T9",
            "opened",
            r#","priority":"P4""#,
        );
        assert!(!p.cold.tickets.index.contains_key("T8"), "T8 settled");
        let moved = r#","priority":"P4","segment":"enterprise","timezone":"Asia/Tokyo""#;
        let before = observe(&p.full, now);
        p.feed("2026-11-04T09:00:00Z", "initech", "T10", "opened", moved);
        assert_ne!(observe(&p.full, now), before, "initech moved");
        same(&p, now);

        // A restart takes what settled tickets count from the store.
        p.restart(CONFIG, now);
        assert_eq!(p.cold.tickets.len(), 4, "T3, T4, T9 and T10 run");
        same(&p, now);

        // Another configuration re-derives every clock, settled ones too.
        let before = observe(&p.full, now);
        let other = CONFIG.replace(r#"P1 = "4h""#, r#"P1 = "3h""#);
        p.restart(&other, now);
        assert_ne!(observe(&p.full, now), before, "the target changed");
        same(&p, now);
        // And once more, now counted under it.
        p.restart(&other, now);
        same(&p, now);
        p.feed("2026-11-09T09:00:00Z", "acme", "T1", "reopened", "");
        same(&p, now);
        p.feed("2026-11-09T10:00:00Z", "acme", "T1", "resolved", "");
        p.feed(
            "2026-11-12T10:00:00Z",
            "acme",
            "T5",
            "opened",
            r#","priority":"P2""#,
        );
        assert!(p.store.get(b"TT1").unwrap().is_some());

        // Past retention every one of them leaves memory and the store.
        let later = t("2027-12-20T00:00:00Z");
        p.feed(
            "2027-12-19T10:00:00Z",
            "globex",
            "T6",
            "opened",
            r#","priority":"P2""#,
        );
        same(&p, later);
        assert_eq!(p.full.tickets.len(), 1);
        assert_eq!(p.cold.tickets.len(), 1);
        for table in [b"T", b"S", b"R", b"B"] {
            assert_eq!(p.store.scan(table).unwrap(), Vec::new(), "{table:?}");
        }
        assert_eq!(p.store.scan(b"t").unwrap().len(), 1, "T6's event");
    }
}
