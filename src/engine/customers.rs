//! Known customers: the registry from the configuration plus customers first
//! seen in events (SPEC §3 "Customers"). Customers are interned to dense
//! indices; `(segment, timezone)` pairs are interned to group indices so the
//! aggregated scopes can be kept as their own series.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::calendar::BusinessCalendar;
use crate::model::slo::CalendarDef;
use crate::model::time::Millis;

pub type CustomerIdx = u32;
pub type GroupIdx = u32;

pub const UNASSIGNED: &str = "unassigned";
pub const UTC: &str = "UTC";

/// Where a seen customer's segment and zone came from: the first event (by
/// `occurred_at`, then `event_id`) that named it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub at: Millis,
    pub event_id: String,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: Arc<str>,
    pub segment: Arc<str>,
    pub timezone: Arc<str>,
    pub zone: jiff::tz::TimeZone,
    pub calendar: BusinessCalendar,
    pub group: GroupIdx,
    /// `None` for registry customers, whose attributes never change.
    pub origin: Option<Origin>,
}

/// A seen customer as persisted: enough to rebuild `Customer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenCustomer {
    pub id: String,
    pub segment: String,
    pub timezone: String,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub segment: Arc<str>,
    pub timezone: Arc<str>,
}

#[derive(Debug, Clone, Default)]
pub struct Customers {
    list: Vec<Customer>,
    by_id: HashMap<Arc<str>, CustomerIdx>,
    groups: Vec<Group>,
    /// segment -> timezone -> group; nested so a lookup by `&str` allocates
    /// nothing.
    group_by_key: HashMap<Arc<str>, HashMap<Arc<str>, GroupIdx>>,
}

/// A `[limits]` bound (SPEC §2.1) an event would pass; `Display` is the
/// reason the event is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    Customers {
        max: usize,
        /// The new customers the event names, in order (at least one).
        first: String,
        new: usize,
    },
    Groups {
        max: usize,
        segment: String,
        timezone: String,
    },
    Services {
        max: usize,
        service: String,
    },
}

impl LimitHit {
    /// The `limit` label of `slastream_limit_rejections_total`.
    pub fn label(&self) -> &'static str {
        match self {
            LimitHit::Customers { .. } => "customers",
            LimitHit::Groups { .. } => "groups",
            LimitHit::Services { .. } => "services",
        }
    }
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitHit::Customers { max, first, new } if *new <= 1 => write!(
                f,
                "limit: max_customers ({max}) reached; customer {first:?} not created"
            ),
            LimitHit::Customers { max, first, new } => write!(
                f,
                "limit: max_customers ({max}) reached; {new} new customers ({first:?} and {} more) not created",
                new - 1
            ),
            LimitHit::Groups {
                max,
                segment,
                timezone,
            } => write!(
                f,
                "limit: max_groups ({max}) reached; group (segment {segment:?}, timezone {timezone:?}) not created"
            ),
            LimitHit::Services { max, service } => write!(
                f,
                "limit: max_services ({max}) reached; service {service:?} not created"
            ),
        }
    }
}

/// Events rejected by each `[limits]` bound since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitRejections {
    pub customers: u64,
    pub groups: u64,
    pub services: u64,
}

impl LimitRejections {
    pub fn record(&mut self, hit: &LimitHit) {
        match hit {
            LimitHit::Customers { .. } => self.customers += 1,
            LimitHit::Groups { .. } => self.groups += 1,
            LimitHit::Services { .. } => self.services += 1,
        }
    }

    /// (label, count) for each bound.
    pub fn by_label(&self) -> [(&'static str, u64); 3] {
        [
            ("customers", self.customers),
            ("groups", self.groups),
            ("services", self.services),
        ]
    }
}

/// The outcome of naming a customer in an event.
pub enum Named {
    Known(CustomerIdx),
    /// Newly seen.
    New(CustomerIdx),
    /// Seen before, but this event precedes its origin: segment/zone moved
    /// from the old group to the customer's new group.
    Moved {
        idx: CustomerIdx,
        from_group: GroupIdx,
    },
}

impl Named {
    pub fn idx(&self) -> CustomerIdx {
        match self {
            Named::Known(i) | Named::New(i) => *i,
            Named::Moved { idx, .. } => *idx,
        }
    }
}

pub fn zone_of(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC)
}

impl Customers {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, idx: CustomerIdx) -> &Customer {
        &self.list[idx as usize]
    }

    pub fn lookup(&self, id: &str) -> Option<CustomerIdx> {
        self.by_id.get(id).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (CustomerIdx, &Customer)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, c)| (i as CustomerIdx, c))
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn group(&self, idx: GroupIdx) -> &Group {
        &self.groups[idx as usize]
    }

    pub(crate) fn find_group(&self, segment: &str, timezone: &str) -> Option<GroupIdx> {
        self.group_by_key.get(segment)?.get(timezone).copied()
    }

    fn intern_group(&mut self, segment: &Arc<str>, timezone: &Arc<str>) -> GroupIdx {
        if let Some(g) = self.find_group(segment, timezone) {
            return g;
        }
        let g = self.groups.len() as GroupIdx;
        self.groups.push(Group {
            segment: segment.clone(),
            timezone: timezone.clone(),
        });
        self.group_by_key
            .entry(segment.clone())
            .or_default()
            .insert(timezone.clone(), g);
        g
    }

    /// Checks, changing nothing, that naming every `(id, segment, timezone)`
    /// of one event at `(at, event_id)` (as `name` would) creates no more
    /// customers than `max_customers` nor groups than `max_groups` in all.
    /// A customer already known creates nothing, unless this event precedes
    /// its origin and so moves it, maybe to a new group.
    pub fn check_naming<'e>(
        &self,
        names: impl IntoIterator<Item = (&'e str, Option<&'e str>, Option<&'e str>)>,
        at: Millis,
        event_id: &str,
        max_customers: usize,
        max_groups: usize,
    ) -> Result<(), LimitHit> {
        // Allocated only once something new turns up.
        let mut new_ids: Vec<&str> = Vec::new();
        let mut new_id_set: HashSet<&str> = HashSet::new();
        let mut new_groups: Vec<(&str, &str)> = Vec::new();
        for (id, segment, timezone) in names {
            if let Some(idx) = self.lookup(id) {
                let Some(current) = self.list[idx as usize].origin.as_ref() else {
                    continue;
                };
                if (at, event_id) >= (current.at, current.event_id.as_str()) {
                    continue;
                }
            } else if new_id_set.insert(id) {
                new_ids.push(id);
            } else {
                continue;
            }
            let key = (segment.unwrap_or(UNASSIGNED), timezone.unwrap_or(UTC));
            if self.find_group(key.0, key.1).is_none() && !new_groups.contains(&key) {
                new_groups.push(key);
            }
        }
        if !new_ids.is_empty() && self.list.len() + new_ids.len() > max_customers {
            return Err(LimitHit::Customers {
                max: max_customers,
                first: new_ids[0].to_string(),
                new: new_ids.len(),
            });
        }
        if let Some((segment, timezone)) = new_groups.first() {
            if self.groups.len() + new_groups.len() > max_groups {
                return Err(LimitHit::Groups {
                    max: max_groups,
                    segment: segment.to_string(),
                    timezone: timezone.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Adds a registry customer. `calendar` is its calendar definition.
    pub fn register(
        &mut self,
        id: &str,
        segment: &str,
        timezone: &str,
        calendar: &CalendarDef,
    ) -> CustomerIdx {
        let zone = zone_of(timezone);
        let cal_zone = calendar
            .timezone
            .as_deref()
            .map(zone_of)
            .unwrap_or_else(|| zone.clone());
        let cal = if calendar.name == "24x7" {
            BusinessCalendar::always()
        } else {
            BusinessCalendar::new(calendar, cal_zone)
        };
        self.push(id, segment, timezone, zone, cal, None)
    }

    fn push(
        &mut self,
        id: &str,
        segment: &str,
        timezone: &str,
        zone: jiff::tz::TimeZone,
        calendar: BusinessCalendar,
        origin: Option<Origin>,
    ) -> CustomerIdx {
        let id: Arc<str> = Arc::from(id);
        let segment: Arc<str> = Arc::from(segment);
        let timezone: Arc<str> = Arc::from(timezone);
        let group = self.intern_group(&segment, &timezone);
        let idx = self.list.len() as CustomerIdx;
        self.list.push(Customer {
            id: id.clone(),
            segment,
            timezone,
            zone,
            calendar,
            group,
            origin,
        });
        self.by_id.insert(id, idx);
        idx
    }

    /// Records that an event at `origin` named customer `id`, carrying the
    /// given segment and zone (already validated).
    pub fn name(
        &mut self,
        id: &str,
        segment: Option<&str>,
        timezone: Option<&str>,
        at: Millis,
        event_id: &str,
    ) -> Named {
        if let Some(idx) = self.lookup(id) {
            let Some(current) = self.list[idx as usize].origin.as_ref() else {
                return Named::Known(idx);
            };
            // Compared before an `Origin` is built: most events name a
            // customer known from an earlier one, and building one allocates.
            if (at, event_id) >= (current.at, current.event_id.as_str()) {
                return Named::Known(idx);
            }
            let origin = Origin {
                at,
                event_id: event_id.to_string(),
            };
            let from_group = self.list[idx as usize].group;
            let segment: Arc<str> = Arc::from(segment.unwrap_or(UNASSIGNED));
            let timezone: Arc<str> = Arc::from(timezone.unwrap_or(UTC));
            let group = self.intern_group(&segment, &timezone);
            let c = &mut self.list[idx as usize];
            c.zone = zone_of(&timezone);
            c.segment = segment;
            c.timezone = timezone;
            c.group = group;
            c.origin = Some(origin);
            if group == from_group {
                return Named::Known(idx);
            }
            return Named::Moved { idx, from_group };
        }
        let segment = segment.unwrap_or(UNASSIGNED);
        let timezone = timezone.unwrap_or(UTC);
        let idx = self.push(
            id,
            segment,
            timezone,
            zone_of(timezone),
            BusinessCalendar::always(),
            Some(Origin {
                at,
                event_id: event_id.to_string(),
            }),
        );
        Named::New(idx)
    }

    /// Restores a persisted seen customer.
    pub fn restore(&mut self, seen: &SeenCustomer) -> CustomerIdx {
        if let Some(idx) = self.lookup(&seen.id) {
            return idx;
        }
        self.push(
            &seen.id,
            &seen.segment,
            &seen.timezone,
            zone_of(&seen.timezone),
            BusinessCalendar::always(),
            Some(seen.origin.clone()),
        )
    }

    pub fn seen(&self, idx: CustomerIdx) -> Option<SeenCustomer> {
        let c = self.get(idx);
        c.origin.as_ref().map(|o| SeenCustomer {
            id: c.id.to_string(),
            segment: c.segment.to_string(),
            timezone: c.timezone.to_string(),
            origin: o.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! `[limits]` through the engine: an event past a bound is invalid,
    //! counted, and changes nothing.
    use std::path::Path;

    use crate::config;
    use crate::engine::{Applied, Engine};
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, Millis, MINUTE};

    const CONFIG: &str = r#"
[limits]
max_customers = 3
max_groups = 2
max_services = 2

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"

[[slos]]
name = "avail"
indicator = "probe_availability"
objective = 0.99
window = "30d"
"#;

    fn engine() -> Engine {
        let cfg = config::parse(CONFIG, &[], Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
        let mut e = Engine::new(&cfg);
        e.track_changes(true);
        e
    }

    fn t0() -> Millis {
        parse_rfc3339("2026-11-02T09:30:00Z").unwrap()
    }

    fn apply(e: &mut Engine, json: serde_json::Value) -> Applied {
        let bytes = serde_json::to_vec(&json).unwrap();
        let ev = decode(&bytes).unwrap_or_else(|err| panic!("{json}: {err}"));
        e.apply(&ev, t0() + 60 * MINUTE)
    }

    fn probe(id: &str, customer: &str, service: &str, at: Millis) -> serde_json::Value {
        serde_json::json!({
            "event_id": id, "kind": "probe",
            "occurred_at": crate::model::time::format_rfc3339(at),
            "customer_id": customer, "probe_id": "p", "service": service,
            "success": true, "latency_ms": 5,
        })
    }

    fn invalid(a: Applied) -> String {
        match a {
            Applied::Invalid(r) => r,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn customers_past_the_bound_are_invalid_and_change_nothing() {
        let mut e = engine();
        assert_eq!(
            apply(&mut e, probe("1", "b", "api", t0())),
            Applied::Accepted
        );
        assert_eq!(
            apply(&mut e, probe("2", "c", "api", t0())),
            Applied::Accepted
        );
        e.take_dirty();
        let before = (
            e.customers().len(),
            e.watermark(),
            e.customers().groups().len(),
        );
        let r = invalid(apply(&mut e, probe("3", "x", "api", t0() + MINUTE)));
        assert_eq!(
            r,
            "limit: max_customers (3) reached; customer \"x\" not created"
        );
        assert_eq!(
            (
                e.customers().len(),
                e.watermark(),
                e.customers().groups().len()
            ),
            before
        );
        let dirty = e.take_dirty();
        assert!(dirty.customers.is_empty() && !dirty.watermark);
        assert!(!e.dedup.contains(crate::engine::dedup::hash_id("3")));
        assert_eq!(e.limit_rejections.customers, 1);
        assert_eq!(e.counts["probe"].invalid, 1);
        // Known customers still flow; the rejected id is not a duplicate later.
        assert_eq!(
            apply(&mut e, probe("4", "acme", "api", t0())),
            Applied::Accepted
        );
        assert!(matches!(
            apply(&mut e, probe("3", "x", "api", t0())),
            Applied::Invalid(_)
        ));
        assert_eq!(e.limit_rejections.customers, 2);
    }

    #[test]
    fn an_incident_counts_every_new_customer_it_names() {
        let mut e = engine();
        let incident = |id: &str, customers: &[&str]| {
            serde_json::json!({
                "event_id": id, "kind": "incident", "occurred_at": "2026-11-02T09:30:00Z",
                "incident_id": id, "action": "opened", "severity": "SEV1",
                "customer_ids": customers,
            })
        };
        // acme is known; n1, n2, n3 would make 4 customers.
        let r = invalid(apply(
            &mut e,
            incident("i1", &["acme", "n1", "n2", "n1", "n3"]),
        ));
        assert_eq!(
            r,
            "limit: max_customers (3) reached; 3 new customers (\"n1\" and 2 more) not created"
        );
        assert_eq!(e.customers().len(), 1);
        assert!(e.incidents.list.is_empty());
        assert_eq!(
            apply(&mut e, incident("i2", &["acme", "n1", "n2", "n1"])),
            Applied::Accepted
        );
        assert_eq!(e.customers().len(), 3);
    }

    #[test]
    fn groups_past_the_bound_are_invalid() {
        let mut e = engine();
        // (enterprise, Europe/Berlin) exists; (unassigned, UTC) makes two.
        assert_eq!(
            apply(&mut e, probe("1", "b", "api", t0())),
            Applied::Accepted
        );
        let mut third = probe("2", "c", "api", t0());
        third["segment"] = "gold".into();
        let r = invalid(apply(&mut e, third.clone()));
        assert_eq!(
            r,
            "limit: max_groups (2) reached; group (segment \"gold\", timezone \"UTC\") not created"
        );
        assert_eq!(e.limit_rejections.groups, 1);
        assert_eq!(e.customers().len(), 2);
        // An earlier event for a seen customer would move it to a new group: refused too.
        let mut earlier = probe("3", "b", "api", t0() - MINUTE);
        earlier["timezone"] = "Asia/Tokyo".into();
        invalid(apply(&mut e, earlier));
        assert_eq!(&*e.customers().get(1).timezone, "UTC");
        // Into an existing group it is fine.
        third["segment"] = "enterprise".into();
        third["timezone"] = "Europe/Berlin".into();
        assert_eq!(apply(&mut e, third), Applied::Accepted);
    }

    #[test]
    fn services_past_the_bound_are_invalid_until_one_goes_quiet() {
        let mut e = engine();
        assert_eq!(
            apply(&mut e, probe("1", "acme", "api", t0())),
            Applied::Accepted
        );
        assert_eq!(
            apply(&mut e, probe("2", "acme", "web", t0())),
            Applied::Accepted
        );
        let r = invalid(apply(&mut e, probe("3", "acme", "db", t0())));
        assert_eq!(
            r,
            "limit: max_services (2) reached; service \"db\" not created"
        );
        assert_eq!(e.limit_rejections.services, 1);
        // A probe too old for the latency window creates no service.
        assert_eq!(
            apply(&mut e, probe("4", "acme", "old", t0() - 10 * MINUTE)),
            Applied::Accepted
        );
        // Ten minutes on, api and web are quiet: db fits.
        assert_eq!(
            apply(&mut e, probe("5", "acme", "db", t0() + 10 * MINUTE)),
            Applied::Accepted
        );
        assert_eq!(e.latency.series_count(), 1);
    }
}
