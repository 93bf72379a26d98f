//! Known customers: the registry from the configuration plus customers first
//! seen in events (SPEC §3 "Customers"). Customers are interned to dense
//! indices; `(segment, timezone)` pairs are interned to group indices so the
//! aggregated scopes can be kept as their own series.

use std::collections::HashMap;
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
    group_by_key: HashMap<(Arc<str>, Arc<str>), GroupIdx>,
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

    fn intern_group(&mut self, segment: &Arc<str>, timezone: &Arc<str>) -> GroupIdx {
        let key = (segment.clone(), timezone.clone());
        if let Some(g) = self.group_by_key.get(&key) {
            return *g;
        }
        let g = self.groups.len() as GroupIdx;
        self.groups.push(Group {
            segment: segment.clone(),
            timezone: timezone.clone(),
        });
        self.group_by_key.insert(key, g);
        g
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
        origin: impl FnOnce() -> Origin,
    ) -> Named {
        if let Some(idx) = self.lookup(id) {
            let Some(current) = self.list[idx as usize].origin.as_ref() else {
                return Named::Known(idx);
            };
            let origin = origin();
            if origin >= *current {
                return Named::Known(idx);
            }
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
            Some(origin()),
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
