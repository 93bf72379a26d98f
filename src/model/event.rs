//! Events of SPEC §1: decoding and validation of one Kafka message value (or
//! one NDJSON line). Decoding borrows from the input wherever the JSON has no
//! escapes, so a probe event costs no allocation but its `Vec`-free body.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::slo::{parse_priority, parse_severity, Level};
use super::time::{parse_rfc3339, Millis};

/// Messages larger than this are invalid (SPEC §1).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub occurred_at: Millis,
    /// Required for tickets and probes; absent for incidents.
    pub customer_id: Option<Cow<'a, str>>,
    pub segment: Option<Cow<'a, str>>,
    /// A valid IANA zone name when present.
    pub timezone: Option<Cow<'a, str>>,
    pub body: Body<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Ticket(TicketBody<'a>),
    Incident(IncidentBody<'a>),
    Probe(ProbeBody<'a>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TicketBody<'a> {
    pub ticket_id: Cow<'a, str>,
    pub action: TicketAction,
    /// Present (and valid) on `opened` and `priority_changed`; kept when another
    /// action carries it, but the engine reads it only on those two.
    pub priority: Option<Level>,
    pub service: Option<Cow<'a, str>>,
    pub region: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentBody<'a> {
    pub incident_id: Cow<'a, str>,
    pub action: IncidentAction,
    pub severity: Option<Level>,
    pub customer_ids: Option<Vec<Cow<'a, str>>>,
    pub service: Option<Cow<'a, str>>,
    pub planned: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeBody<'a> {
    pub probe_id: Cow<'a, str>,
    pub service: Cow<'a, str>,
    pub region: Option<Cow<'a, str>>,
    pub success: bool,
    pub latency_ms: f64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum TicketAction {
    Opened,
    Responded,
    Paused,
    Resumed,
    Resolved,
    Reopened,
    PriorityChanged,
    Canceled,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum IncidentAction {
    Opened,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl TicketAction {
    /// The wire name (`priority_changed`).
    pub fn as_str(self) -> &'static str {
        match self {
            TicketAction::Opened => "opened",
            TicketAction::Responded => "responded",
            TicketAction::Paused => "paused",
            TicketAction::Resumed => "resumed",
            TicketAction::Resolved => "resolved",
            TicketAction::Reopened => "reopened",
            TicketAction::PriorityChanged => "priority_changed",
            TicketAction::Canceled => "canceled",
        }
    }

    /// Parses the wire name; `None` for anything SPEC §1.1 does not list.
    pub fn parse(s: &str) -> Option<TicketAction> {
        Some(match s {
            "opened" => TicketAction::Opened,
            "responded" => TicketAction::Responded,
            "paused" => TicketAction::Paused,
            "resumed" => TicketAction::Resumed,
            "resolved" => TicketAction::Resolved,
            "reopened" => TicketAction::Reopened,
            "priority_changed" => TicketAction::PriorityChanged,
            "canceled" => TicketAction::Canceled,
            _ => return None,
        })
    }

    /// Position in SPEC §3's tie-break order for equal `occurred_at`.
    pub fn rank(self) -> u8 {
        match self {
            TicketAction::Opened => 0,
            TicketAction::PriorityChanged => 1,
            TicketAction::Responded => 2,
            TicketAction::Paused => 4,
            TicketAction::Resumed => 5,
            TicketAction::Resolved => 7,
            TicketAction::Reopened => 8,
            TicketAction::Canceled => 9,
        }
    }
}

impl IncidentAction {
    /// The wire name (`acknowledged`).
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentAction::Opened => "opened",
            IncidentAction::Acknowledged => "acknowledged",
            IncidentAction::Mitigated => "mitigated",
            IncidentAction::Resolved => "resolved",
        }
    }

    /// Parses the wire name; `None` for anything SPEC §1.2 does not list.
    pub fn parse(s: &str) -> Option<IncidentAction> {
        Some(match s {
            "opened" => IncidentAction::Opened,
            "acknowledged" => IncidentAction::Acknowledged,
            "mitigated" => IncidentAction::Mitigated,
            "resolved" => IncidentAction::Resolved,
            _ => return None,
        })
    }

    /// Position in SPEC §3's tie-break order for equal `occurred_at`.
    pub fn rank(self) -> u8 {
        match self {
            IncidentAction::Opened => 0,
            IncidentAction::Acknowledged => 3,
            IncidentAction::Mitigated => 6,
            IncidentAction::Resolved => 7,
        }
    }
}

/// Why a message is invalid; `reason` is stable text that goes into the
/// `slastream.error` dead-letter header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidEvent {
    pub reason: String,
}

impl Event<'_> {
    pub fn kind_str(&self) -> &'static str {
        match self.body {
            Body::Ticket(_) => "ticket",
            Body::Incident(_) => "incident",
            Body::Probe(_) => "probe",
        }
    }
}

impl Event<'_> {
    /// Copies every borrowed string, so the event outlives the message buffer.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            event_id: owned(self.event_id),
            occurred_at: self.occurred_at,
            customer_id: self.customer_id.map(owned),
            segment: self.segment.map(owned),
            timezone: self.timezone.map(owned),
            body: match self.body {
                Body::Ticket(t) => Body::Ticket(TicketBody {
                    ticket_id: owned(t.ticket_id),
                    action: t.action,
                    priority: t.priority,
                    service: t.service.map(owned),
                    region: t.region.map(owned),
                }),
                Body::Incident(i) => Body::Incident(IncidentBody {
                    incident_id: owned(i.incident_id),
                    action: i.action,
                    severity: i.severity,
                    customer_ids: i
                        .customer_ids
                        .map(|ids| ids.into_iter().map(owned).collect()),
                    service: i.service.map(owned),
                    planned: i.planned,
                }),
                Body::Probe(p) => Body::Probe(ProbeBody {
                    probe_id: owned(p.probe_id),
                    service: owned(p.service),
                    region: p.region.map(owned),
                    success: p.success,
                    latency_ms: p.latency_ms,
                }),
            },
        }
    }
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

/// Longest identifier or label value accepted, in characters (SPEC §1).
pub const MAX_ID_CHARS: usize = 128;

/// Decodes and validates one message value (SPEC §1). Never panics on any
/// input. Strings without JSON escapes are borrowed from `bytes`.
///
/// When a message has several problems, the reason names the first one found
/// in this fixed order:
///
/// 1. size: more than [`MAX_EVENT_BYTES`] bytes (checked before parsing);
/// 2. encoding: not UTF-8, anywhere in the message (unknown fields included);
/// 3. syntax: not valid JSON (serde_json's message), or valid JSON whose top
///    level is not an object;
/// 4. `kind`;
/// 5. the common fields: `event_id`, `occurred_at`, `customer_id` (tickets and
///    probes only; incidents ignore it), `segment`, `timezone`;
/// 6. the fields of the kind, in SPEC order — ticket: `ticket_id`, `action`,
///    `priority`, `service`, `region`; incident: `incident_id`, `action`,
///    `severity`, `customer_ids`, `service`, `planned`; probe: `probe_id`,
///    `service`, `region`, `success`, `latency_ms`.
///
/// Within one field: duplicate key, then missing or `null` (an explicit
/// `null` in a required field is reported as such; in an optional one it means
/// absent), then type, then value. Fields that do not belong to the event's
/// kind are unknown fields, and unknown fields are ignored unchecked.
///
/// Identifiers and label values (`event_id`, `customer_id`, each entry of
/// `customer_ids`, `ticket_id`, `incident_id`, `probe_id`, `service`,
/// `region`, `segment`) must be 1..=128 characters without a control
/// character (U+0000–U+001F, U+007F), checked in that order.
///
/// Beyond SPEC §1: a known field given twice is invalid (`duplicate field`),
/// since readers that keep the first or the last value would disagree; `timezone` is rewritten to
/// its canonical IANA spelling (`europe/berlin` → `Europe/Berlin`) so that
/// labels do not split; `latency_ms` of `-0` becomes `0`.
pub fn decode(bytes: &[u8]) -> Result<Event<'_>, InvalidEvent> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(invalid(format!(
            "event larger than {MAX_EVENT_BYTES} bytes"
        )));
    }
    // `serde_json::from_slice` checks UTF-8 only in the strings it decodes,
    // not in the ones it skips, so the whole message is checked here; parsing
    // the checked `&str` then spares serde_json a second check per string
    // (about a tenth of the decoding time).
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return Err(invalid(format!(
                "invalid UTF-8 at byte {}",
                e.valid_up_to()
            )))
        }
    };
    // `Raw` is large; filling it in place keeps it from being copied through
    // the deserializer's return values.
    let mut raw = Raw {
        vals: Default::default(),
        dups: 0,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    if let Err(e) = RawSeed(&mut raw)
        .deserialize(&mut de)
        .and_then(|()| de.end())
    {
        return Err(syntax_error(bytes, e));
    }
    raw.validate()
}

/// Error path only: tells "not JSON" from "JSON, but not an object".
fn syntax_error(bytes: &[u8], err: serde_json::Error) -> InvalidEvent {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'{') {
        return invalid(format!("invalid JSON: {err}"));
    }
    match serde_json::from_slice::<IgnoredAny>(bytes) {
        Ok(_) => invalid("not a JSON object"),
        Err(e) => invalid(format!("invalid JSON: {e}")),
    }
}

fn invalid(reason: impl Into<String>) -> InvalidEvent {
    InvalidEvent {
        reason: reason.into(),
    }
}

/// A value from the message for use inside a reason: JSON-like quoting with
/// control characters escaped (so the reason stays on one line), cut after
/// 64 characters.
fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}", format!("{}…", &s[..cut])),
    }
}

/// The fields `decode` knows, as indices into [`Raw::vals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    EventId,
    Kind,
    OccurredAt,
    CustomerId,
    Segment,
    Timezone,
    TicketId,
    IncidentId,
    ProbeId,
    Action,
    Priority,
    Severity,
    CustomerIds,
    Service,
    Region,
    Planned,
    Success,
    LatencyMs,
    /// Any other key: its value is skipped.
    Unknown,
}

const KNOWN_KEYS: usize = Key::Unknown as usize;

impl Key {
    fn from_name(name: &str) -> Key {
        match name {
            "event_id" => Key::EventId,
            "kind" => Key::Kind,
            "occurred_at" => Key::OccurredAt,
            "customer_id" => Key::CustomerId,
            "segment" => Key::Segment,
            "timezone" => Key::Timezone,
            "ticket_id" => Key::TicketId,
            "incident_id" => Key::IncidentId,
            "probe_id" => Key::ProbeId,
            "action" => Key::Action,
            "priority" => Key::Priority,
            "severity" => Key::Severity,
            "customer_ids" => Key::CustomerIds,
            "service" => Key::Service,
            "region" => Key::Region,
            "planned" => Key::Planned,
            "success" => Key::Success,
            "latency_ms" => Key::LatencyMs,
            _ => Key::Unknown,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Key::EventId => "event_id",
            Key::Kind => "kind",
            Key::OccurredAt => "occurred_at",
            Key::CustomerId => "customer_id",
            Key::Segment => "segment",
            Key::Timezone => "timezone",
            Key::TicketId => "ticket_id",
            Key::IncidentId => "incident_id",
            Key::ProbeId => "probe_id",
            Key::Action => "action",
            Key::Priority => "priority",
            Key::Severity => "severity",
            Key::CustomerIds => "customer_ids",
            Key::Service => "service",
            Key::Region => "region",
            Key::Planned => "planned",
            Key::Success => "success",
            Key::LatencyMs => "latency_ms",
            Key::Unknown => "?",
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key::from_name(v))
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// One field's JSON value before validation. Every JSON type is accepted
/// here, so that a wrong type becomes a reason that names the field rather
/// than a serde error.
///
/// `repr(u64)`: with the default layout, `Bool`'s payload sits at byte 1 and
/// every move of a `Val` copies bytes 1..32 with unaligned loads that miss
/// store-to-load forwarding; that alone cost a quarter of the decoding time.
#[derive(Debug, Default)]
#[repr(u64)]
enum Val<'a> {
    #[default]
    Missing,
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    Num(f64),
    /// An array whose elements are all strings.
    StrList(Vec<Cow<'a, str>>),
    /// An object, or an array with a non-string element.
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Val<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val<'a>, D::Error> {
        let mut val = Val::Missing;
        ValSeed(&mut val).deserialize(d)?;
        Ok(val)
    }
}

/// Deserializes one value straight into its slot. Returning the `Val`
/// instead and moving it into the slot costs a stalled reload per field.
struct ValSeed<'s, 'a>(&'s mut Val<'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for ValSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ValSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        *self.0 = Val::Bool(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        *self.0 = Val::Num(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        *self.0 = Val::Num(v as f64);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        *self.0 = Val::Num(v);
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        *self.0 = Val::Str(Cow::Borrowed(v));
        Ok(())
    }
    /// Only strings with escapes get here: they must be unescaped into a copy.
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        *self.0 = Val::Str(Cow::Owned(v.to_owned()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        *self.0 = Val::Str(Cow::Owned(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        *self.0 = Val::Null;
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        *self.0 = Val::Null;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Val<'a>>()? {
            match item {
                Val::Str(s) => items.push(s),
                _ => {
                    // The deserializer wants the array consumed to its end.
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    *self.0 = Val::Other;
                    return Ok(());
                }
            }
        }
        *self.0 = Val::StrList(items);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        *self.0 = Val::Other;
        Ok(())
    }
}

/// The top-level object: each known field's value, first occurrence kept.
struct Raw<'a> {
    vals: [Val<'a>; KNOWN_KEYS],
    /// `Key::bit`s of known fields that occurred more than once.
    dups: u32,
}

/// Deserializes the top-level object into a `Raw` the caller owns.
struct RawSeed<'r, 'a>(&'r mut Raw<'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for RawSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for RawSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let raw = self.0;
        while let Some(key) = map.next_key::<Key>()? {
            if key == Key::Unknown {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let slot = &mut raw.vals[key as usize];
            if matches!(slot, Val::Missing) {
                map.next_value_seed(ValSeed(slot))?;
            } else {
                raw.dups |= key.bit();
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Whether a field must be present. Small and `Copy` on purpose: it is passed
/// for every field of every event.
#[derive(Clone, Copy)]
enum Need {
    Optional,
    Required,
    /// Required because of the event's action (`priority` on `opened`).
    RequiredWith(Because),
}

/// The actions that make a field required.
#[derive(Clone, Copy)]
enum Because {
    Opened,
    PriorityChanged,
}

impl Because {
    fn as_str(self) -> &'static str {
        match self {
            Because::Opened => "opened",
            Because::PriorityChanged => "priority_changed",
        }
    }
}

impl<'a> Raw<'a> {
    fn validate(&mut self) -> Result<Event<'a>, InvalidEvent> {
        let kind = self.str(Key::Kind)?;
        let kind = match &*kind {
            "ticket" => Kind::Ticket,
            "incident" => Kind::Incident,
            "probe" => Kind::Probe,
            other => return Err(invalid(format!("unknown kind {}", quote(other)))),
        };

        let event_id = self.id(Key::EventId)?;
        let occurred_at = self.str(Key::OccurredAt)?;
        let Some(occurred_at) = parse_rfc3339(&occurred_at) else {
            return Err(invalid(format!(
                "field \"occurred_at\" must be an RFC 3339 timestamp with offset, got {}",
                quote(&occurred_at)
            )));
        };
        let customer_id = match kind {
            Kind::Ticket | Kind::Probe => Some(self.id(Key::CustomerId)?),
            Kind::Incident => None,
        };
        let segment = self.opt_id(Key::Segment)?;
        let timezone = match self.opt_str(Key::Timezone)? {
            Some(name) => Some(canonical_zone(name)?),
            None => None,
        };

        let body = match kind {
            Kind::Ticket => Body::Ticket(self.ticket()?),
            Kind::Incident => Body::Incident(self.incident()?),
            Kind::Probe => Body::Probe(self.probe()?),
        };
        Ok(Event {
            event_id,
            occurred_at,
            customer_id,
            segment,
            timezone,
            body,
        })
    }

    fn ticket(&mut self) -> Result<TicketBody<'a>, InvalidEvent> {
        let ticket_id = self.id(Key::TicketId)?;
        let action = self.str(Key::Action)?;
        let Some(action) = TicketAction::parse(&action) else {
            return Err(unknown_action(&action, "ticket"));
        };
        let need = match action {
            TicketAction::Opened => Need::RequiredWith(Because::Opened),
            TicketAction::PriorityChanged => Need::RequiredWith(Because::PriorityChanged),
            _ => Need::Optional,
        };
        let priority = match self.field(Key::Priority, need)? {
            Val::Missing => None,
            v => Some(level(Key::Priority, v, parse_priority, "P1..P4")?),
        };
        Ok(TicketBody {
            ticket_id,
            action,
            priority,
            service: self.opt_id(Key::Service)?,
            region: self.opt_id(Key::Region)?,
        })
    }

    fn incident(&mut self) -> Result<IncidentBody<'a>, InvalidEvent> {
        let incident_id = self.id(Key::IncidentId)?;
        let action = self.str(Key::Action)?;
        let Some(action) = IncidentAction::parse(&action) else {
            return Err(unknown_action(&action, "incident"));
        };
        let need = match action {
            IncidentAction::Opened => Need::RequiredWith(Because::Opened),
            _ => Need::Optional,
        };
        let severity = match self.field(Key::Severity, need)? {
            Val::Missing => None,
            v => Some(level(Key::Severity, v, parse_severity, "SEV1..SEV4")?),
        };
        let customer_ids = match self.field(Key::CustomerIds, need)? {
            Val::Missing => None,
            Val::StrList(ids) => {
                for id in &ids {
                    if let Err(problem) = ident(id) {
                        return Err(bad_list_entry(Key::CustomerIds, problem, id));
                    }
                }
                Some(ids)
            }
            _ => {
                return Err(invalid(
                    "field \"customer_ids\" must be an array of strings",
                ))
            }
        };
        let service = self.opt_id(Key::Service)?;
        let planned = match self.field(Key::Planned, Need::Optional)? {
            Val::Missing => false,
            v => boolean(Key::Planned, v)?,
        };
        Ok(IncidentBody {
            incident_id,
            action,
            severity,
            customer_ids,
            service,
            planned,
        })
    }

    fn probe(&mut self) -> Result<ProbeBody<'a>, InvalidEvent> {
        let probe_id = self.id(Key::ProbeId)?;
        let service = self.id(Key::Service)?;
        let region = self.opt_id(Key::Region)?;
        let success = boolean(Key::Success, self.field(Key::Success, Need::Required)?)?;
        let latency_ms = match self.field(Key::LatencyMs, Need::Required)? {
            // `+ 0.0` turns -0 into 0; NaN cannot come out of JSON.
            Val::Num(n) if n >= 0.0 => n + 0.0,
            _ => return Err(invalid("field \"latency_ms\" must be a number >= 0")),
        };
        Ok(ProbeBody {
            probe_id,
            service,
            region,
            success,
            latency_ms,
        })
    }

    /// The field's value, taken out of `self`; `Val::Missing` when an
    /// optional field is absent or `null`, never `Val::Null`.
    ///
    /// This and the accessors below are forced inline: called out of line,
    /// each returns its value through the stack and the caller's wider reload
    /// of it stalls (store-to-load forwarding fails), a measurable share of
    /// the decoding time. The error paths stay out of line.
    #[inline(always)]
    fn field(&mut self, key: Key, need: Need) -> Result<Val<'a>, InvalidEvent> {
        if self.dups & key.bit() != 0 {
            return Err(duplicate(key));
        }
        let val = std::mem::take(&mut self.vals[key as usize]);
        match (val, need) {
            (Val::Missing | Val::Null, Need::Optional) => Ok(Val::Missing),
            (Val::Missing, _) => Err(missing(key, need)),
            (Val::Null, _) => Err(null(key)),
            (val, _) => Ok(val),
        }
    }

    /// A required string.
    #[inline(always)]
    fn str(&mut self, key: Key) -> Result<Cow<'a, str>, InvalidEvent> {
        match self.field(key, Need::Required)? {
            Val::Str(s) => Ok(s),
            _ => Err(not_a_string(key)),
        }
    }

    /// A required identifier (SPEC §1 "Identifiers").
    #[inline(always)]
    fn id(&mut self, key: Key) -> Result<Cow<'a, str>, InvalidEvent> {
        let s = self.str(key)?;
        if let Err(problem) = ident(&s) {
            return Err(bad_id(key, problem, &s));
        }
        Ok(s)
    }

    /// An optional identifier or label value.
    #[inline(always)]
    fn opt_id(&mut self, key: Key) -> Result<Option<Cow<'a, str>>, InvalidEvent> {
        let s = self.opt_str(key)?;
        if let Some(s) = &s {
            if let Err(problem) = ident(s) {
                return Err(bad_id(key, problem, s));
            }
        }
        Ok(s)
    }

    #[inline(always)]
    fn opt_str(&mut self, key: Key) -> Result<Option<Cow<'a, str>>, InvalidEvent> {
        match self.field(key, Need::Optional)? {
            Val::Missing => Ok(None),
            Val::Str(s) => Ok(Some(s)),
            _ => Err(not_a_string(key)),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Ticket,
    Incident,
    Probe,
}

#[cold]
fn duplicate(key: Key) -> InvalidEvent {
    invalid(format!("duplicate field \"{}\"", key.name()))
}

#[cold]
fn missing(key: Key, need: Need) -> InvalidEvent {
    match need {
        Need::RequiredWith(action) => invalid(format!(
            "missing field \"{}\" (required with action \"{}\")",
            key.name(),
            action.as_str()
        )),
        Need::Optional | Need::Required => invalid(format!("missing field \"{}\"", key.name())),
    }
}

#[cold]
fn null(key: Key) -> InvalidEvent {
    invalid(format!("field \"{}\" must not be null", key.name()))
}

/// How a string breaks the identifier rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdProblem {
    Empty,
    TooLong,
    Control,
}

/// Checks the identifier rule of SPEC §1 on bytes: a control character is
/// a single byte below 0x20 or 0x7f in UTF-8 (no multi-byte sequence holds
/// one), and a string of at most 128 bytes has at most 128 characters, so
/// characters are counted only for longer ones.
#[inline(always)]
fn ident(s: &str) -> Result<(), IdProblem> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(IdProblem::Empty);
    }
    if b.len() > MAX_ID_CHARS && s.chars().count() > MAX_ID_CHARS {
        return Err(IdProblem::TooLong);
    }
    if b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Err(IdProblem::Control);
    }
    Ok(())
}

#[cold]
fn bad_id(key: Key, problem: IdProblem, value: &str) -> InvalidEvent {
    let name = key.name();
    invalid(match problem {
        IdProblem::Empty => format!("field \"{name}\" must not be empty"),
        IdProblem::TooLong => {
            format!("field \"{name}\" must be at most {MAX_ID_CHARS} characters")
        }
        IdProblem::Control => format!(
            "field \"{name}\" must not contain control characters, got {}",
            quote(value)
        ),
    })
}

#[cold]
fn bad_list_entry(key: Key, problem: IdProblem, value: &str) -> InvalidEvent {
    let name = key.name();
    invalid(match problem {
        IdProblem::Empty => format!("field \"{name}\" must not contain an empty string"),
        IdProblem::TooLong => format!(
            "field \"{name}\" must not contain a string longer than {MAX_ID_CHARS} characters"
        ),
        IdProblem::Control => format!(
            "field \"{name}\" must not contain control characters, got {}",
            quote(value)
        ),
    })
}

#[cold]
fn not_a_string(key: Key) -> InvalidEvent {
    invalid(format!("field \"{}\" must be a string", key.name()))
}

fn boolean(key: Key, val: Val<'_>) -> Result<bool, InvalidEvent> {
    match val {
        Val::Bool(b) => Ok(b),
        _ => Err(not_a_boolean(key)),
    }
}

#[cold]
fn not_a_boolean(key: Key) -> InvalidEvent {
    invalid(format!("field \"{}\" must be a boolean", key.name()))
}

fn unknown_action(action: &str, kind: &str) -> InvalidEvent {
    invalid(format!(
        "unknown action {} for kind \"{kind}\"",
        quote(action)
    ))
}

/// A priority or severity string, parsed by `parse`.
fn level(
    key: Key,
    val: Val<'_>,
    parse: fn(&str) -> Option<Level>,
    range: &str,
) -> Result<Level, InvalidEvent> {
    let Val::Str(s) = val else {
        return Err(not_a_string(key));
    };
    parse(&s).ok_or_else(|| {
        invalid(format!(
            "unknown {} {} (expected {range})",
            key.name(),
            quote(&s)
        ))
    })
}

/// Zone names seen valid on this thread, each mapped to its canonical
/// spelling when that differs (`None`: the name is canonical). Probes carry the
/// zone on every event, and `TimeZone::get` costs far more than this lookup;
/// `last` spares even the hashing when consecutive events share a zone.
/// Bounded: cleared when full (case variants make the set of valid names
/// unbounded). Invalid names are not cached: they are rare and dead-lettered.
const MAX_CACHED_ZONES: usize = 1024;

#[derive(Default)]
struct KnownZones {
    /// The last canonical name looked up, `""` at first (never a zone). A
    /// reused buffer: alternating zones must not allocate.
    last: String,
    names: HashMap<Box<str>, Option<Box<str>>>,
}

thread_local! {
    static KNOWN_ZONES: RefCell<KnownZones> = RefCell::default();
}

fn canonical_zone(name: Cow<'_, str>) -> Result<Cow<'_, str>, InvalidEvent> {
    let cached = KNOWN_ZONES.with_borrow_mut(|zones| {
        if zones.last == *name && !name.is_empty() {
            return Some(None);
        }
        let hit = zones.names.get(&*name).cloned();
        if let Some(None) = hit {
            zones.last.clear();
            zones.last.push_str(&name);
        }
        hit
    });
    let canonical = match cached {
        Some(canonical) => canonical,
        None => {
            let Ok(tz) = jiff::tz::TimeZone::get(&name) else {
                return Err(invalid(format!("invalid timezone {}", quote(&name))));
            };
            let canonical = tz.iana_name().filter(|c| *c != &*name).map(Box::from);
            KNOWN_ZONES.with_borrow_mut(|zones| {
                if zones.names.len() >= MAX_CACHED_ZONES {
                    zones.names.clear();
                }
                zones.names.insert(Box::from(&*name), canonical.clone());
            });
            canonical
        }
    };
    Ok(match canonical {
        Some(c) => Cow::Owned(c.into_string()),
        None => name,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn probe() -> Value {
        json!({
            "event_id": "e-1", "kind": "probe", "occurred_at": "2026-11-02T09:30:00Z",
            "customer_id": "acme", "probe_id": "p-1", "service": "api", "region": "eu-west-1",
            "success": true, "latency_ms": 87.5,
        })
    }

    fn ticket() -> Value {
        json!({
            "event_id": "t-1", "kind": "ticket", "occurred_at": "2026-11-02T18:30:00+09:00",
            "customer_id": "acme", "ticket_id": "T-1", "action": "opened", "priority": "P2",
        })
    }

    fn incident() -> Value {
        json!({
            "event_id": "i-1", "kind": "incident", "occurred_at": "2026-11-02T09:30:00Z",
            "incident_id": "INC-1", "action": "opened", "severity": "SEV1",
            "customer_ids": ["acme", "globex"],
        })
    }

    fn with(mut v: Value, key: &str, val: Value) -> Value {
        v[key] = val;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().unwrap().remove(key);
        v
    }

    fn ok(v: &Value) -> Event<'static> {
        let bytes = serde_json::to_vec(v).unwrap();
        decode(&bytes)
            .map(Event::into_owned)
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn reason_of(bytes: &[u8]) -> String {
        match decode(bytes) {
            Ok(e) => panic!("{}: decoded as {e:?}", String::from_utf8_lossy(bytes)),
            Err(e) => e.reason,
        }
    }

    fn reason(v: &Value) -> String {
        reason_of(&serde_json::to_vec(v).unwrap())
    }

    const T0: Millis = 1_793_611_800_000; // 2026-11-02T09:30:00Z

    #[test]
    fn decodes_a_probe_borrowing_its_strings() {
        let bytes = serde_json::to_vec(&probe()).unwrap();
        let event = decode(&bytes).unwrap();
        assert!(matches!(event.event_id, Cow::Borrowed("e-1")));
        assert_eq!(event.occurred_at, T0);
        assert_eq!(event.customer_id.as_deref(), Some("acme"));
        assert_eq!(event.segment, None);
        assert_eq!(event.timezone, None);
        let Body::Probe(p) = &event.body else {
            panic!("{event:?}")
        };
        assert!(matches!(p.service, Cow::Borrowed("api")));
        assert_eq!(p.probe_id, "p-1");
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert!(p.success);
        assert_eq!(p.latency_ms, 87.5);
        assert_eq!(event.kind_str(), "probe");
    }

    #[test]
    fn unescapes_strings_into_owned_copies() {
        let bytes = br#"{"event_id":"e\"1\u00e9","kind":"probe","occurred_at":"2026-11-02T09:30:00Z",
            "customer_id":"ac\/me","probe_id":"p","service":"api\u00e9","success":false,"latency_ms":0}"#;
        let event = decode(bytes).unwrap();
        assert!(matches!(event.event_id, Cow::Owned(_)));
        assert_eq!(event.event_id, "e\"1é");
        assert_eq!(event.customer_id.as_deref(), Some("ac/me"));
        let Body::Probe(p) = event.body else { panic!() };
        assert_eq!(p.service, "apié");
        assert!(!p.success);
        assert_eq!(p.latency_ms, 0.0);
    }

    #[test]
    fn escaped_keys_are_recognised() {
        let bytes = br#"{"event\u005fid":"e","kind":"probe","occurred_at":"2026-11-02T09:30:00Z",
            "customer_id":"c","probe_id":"p","service":"s","success":true,"latency_ms":1}"#;
        assert_eq!(decode(bytes).unwrap().event_id, "e");
    }

    #[test]
    fn decodes_a_ticket() {
        let e = ok(&with(
            with(ticket(), "service", json!("billing")),
            "segment",
            json!("enterprise"),
        ));
        assert_eq!(e.occurred_at, T0);
        assert_eq!(e.segment.as_deref(), Some("enterprise"));
        assert_eq!(
            e.body,
            Body::Ticket(TicketBody {
                ticket_id: "T-1".into(),
                action: TicketAction::Opened,
                priority: Some(1),
                service: Some("billing".into()),
                region: None,
            })
        );
        for action in [
            "opened",
            "responded",
            "paused",
            "resumed",
            "resolved",
            "reopened",
            "priority_changed",
            "canceled",
        ] {
            let Body::Ticket(t) = ok(&with(ticket(), "action", json!(action))).body else {
                panic!()
            };
            assert_eq!(t.action.as_str(), action);
        }
    }

    #[test]
    fn decodes_an_incident() {
        let e = ok(&with(
            with(incident(), "planned", json!(true)),
            "service",
            json!("api"),
        ));
        assert_eq!(e.customer_id, None);
        assert_eq!(
            e.body,
            Body::Incident(IncidentBody {
                incident_id: "INC-1".into(),
                action: IncidentAction::Opened,
                severity: Some(0),
                customer_ids: Some(vec!["acme".into(), "globex".into()]),
                service: Some("api".into()),
                planned: true,
            })
        );
        for action in ["opened", "acknowledged", "mitigated", "resolved"] {
            let Body::Incident(i) = ok(&with(incident(), "action", json!(action))).body else {
                panic!()
            };
            assert_eq!(i.action.as_str(), action);
        }
    }

    #[test]
    fn into_owned_keeps_every_field() {
        let bytes = serde_json::to_vec(&with(probe(), "timezone", json!("Asia/Tokyo"))).unwrap();
        let borrowed = decode(&bytes).unwrap();
        let owned: Event<'static> = borrowed.clone().into_owned();
        drop(bytes);
        assert_eq!(owned.timezone.as_deref(), Some("Asia/Tokyo"));
        assert_eq!(owned.event_id, "e-1");
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let padded = |len: usize| {
            let base = serde_json::to_vec(&with(probe(), "pad", json!(""))).unwrap();
            let mut v = probe();
            v["pad"] = json!("x".repeat(len - base.len()));
            serde_json::to_vec(&v).unwrap()
        };
        let at_limit = padded(MAX_EVENT_BYTES);
        assert_eq!(at_limit.len(), 65536);
        assert!(decode(&at_limit).is_ok());
        let over = padded(MAX_EVENT_BYTES + 1);
        assert_eq!(reason_of(&over), "event larger than 65536 bytes");
        assert_eq!(
            reason_of(&vec![0xff; 70_000]),
            "event larger than 65536 bytes"
        );
    }

    #[test]
    fn rejects_invalid_utf8_even_in_unknown_fields() {
        let mut bytes = serde_json::to_vec(&with(probe(), "zz", json!("ab"))).unwrap();
        let at = bytes.windows(2).position(|w| w == b"ab").unwrap();
        bytes[at] = 0xc3; // a lead byte followed by ASCII
        assert_eq!(reason_of(&bytes), format!("invalid UTF-8 at byte {at}"));
    }

    #[test]
    fn rejects_invalid_json() {
        assert_eq!(
            reason_of(b""),
            "invalid JSON: EOF while parsing a value at line 1 column 0"
        );
        assert_eq!(
            reason_of(b"{\"event_id\":"),
            "invalid JSON: EOF while parsing a value at line 1 column 12"
        );
        assert_eq!(
            reason_of(b"{} x"),
            "invalid JSON: trailing characters at line 1 column 4"
        );
        assert_eq!(
            reason_of(b"[1,"),
            "invalid JSON: EOF while parsing a value at line 1 column 3"
        );
        assert_eq!(
            reason_of(b"{\"a\":[1,]}"),
            "invalid JSON: expected value at line 1 column 9"
        );
        // Deep nesting: serde_json's depth limit guards the stack where values
        // are decoded; skipped values are skipped without recursion.
        let deep =
            |key: &str| format!("{{\"{key}\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            reason_of(deep("segment").as_bytes()),
            "invalid JSON: recursion limit exceeded at line 1 column 138"
        );
        assert_eq!(reason_of(deep("x").as_bytes()), "missing field \"kind\"");
    }

    #[test]
    fn rejects_json_that_is_not_an_object() {
        for doc in ["[1, 2]", " \"probe\"", "null", "42", "true"] {
            assert_eq!(reason_of(doc.as_bytes()), "not a JSON object", "{doc}");
        }
    }

    #[test]
    fn kind_is_checked_first() {
        assert_eq!(reason(&json!({})), "missing field \"kind\"");
        assert_eq!(reason(&without(probe(), "kind")), "missing field \"kind\"");
        assert_eq!(
            reason(&with(probe(), "kind", Value::Null)),
            "field \"kind\" must not be null"
        );
        assert_eq!(
            reason(&with(probe(), "kind", json!(1))),
            "field \"kind\" must be a string"
        );
        assert_eq!(
            reason(&with(probe(), "kind", json!("foo"))),
            "unknown kind \"foo\""
        );
        assert_eq!(
            reason(&with(probe(), "kind", json!("Probe"))),
            "unknown kind \"Probe\""
        );
        // Several problems: the first in the documented order wins.
        assert_eq!(
            reason(&with(without(probe(), "event_id"), "kind", json!("foo"))),
            "unknown kind \"foo\""
        );
    }

    #[test]
    fn values_in_reasons_stay_on_one_line_and_short() {
        assert_eq!(
            reason(&with(probe(), "kind", json!("a\nb\"c"))),
            r#"unknown kind "a\nb\"c""#
        );
        let long = "k".repeat(500);
        assert_eq!(
            reason(&with(probe(), "kind", json!(long))),
            format!("unknown kind \"{}…\"", "k".repeat(64))
        );
    }

    #[test]
    fn event_id_rules() {
        assert_eq!(
            reason(&without(probe(), "event_id")),
            "missing field \"event_id\""
        );
        assert_eq!(
            reason(&with(probe(), "event_id", Value::Null)),
            "field \"event_id\" must not be null"
        );
        assert_eq!(
            reason(&with(probe(), "event_id", json!(7))),
            "field \"event_id\" must be a string"
        );
        assert_eq!(
            reason(&with(probe(), "event_id", json!(""))),
            "field \"event_id\" must not be empty"
        );
        // 128 two-byte characters are 256 bytes but only 128 chars: accepted.
        assert_eq!(
            ok(&with(probe(), "event_id", json!("é".repeat(128))))
                .event_id
                .chars()
                .count(),
            128
        );
        assert_eq!(
            reason(&with(probe(), "event_id", json!("é".repeat(129)))),
            "field \"event_id\" must be at most 128 characters"
        );
        assert_eq!(
            reason(&with(probe(), "event_id", json!("e".repeat(129)))),
            "field \"event_id\" must be at most 128 characters"
        );
    }

    /// Every identifier and label value of SPEC §1, with an event that carries it.
    fn identifier_fields() -> Vec<(&'static str, Value)> {
        vec![
            ("event_id", probe()),
            ("customer_id", probe()),
            ("segment", probe()),
            ("probe_id", probe()),
            ("service", probe()),
            ("region", probe()),
            ("ticket_id", ticket()),
            ("service", ticket()),
            ("region", ticket()),
            ("incident_id", incident()),
            ("service", incident()),
        ]
    }

    #[test]
    fn identifiers_are_1_to_128_characters_without_control_characters() {
        for (field, event) in identifier_fields() {
            let kind = event["kind"].clone();
            assert_eq!(
                reason(&with(event.clone(), field, json!(""))),
                format!("field \"{field}\" must not be empty"),
                "{kind} {field}"
            );
            for long in ["x".repeat(129), "é".repeat(129), "😀".repeat(129)] {
                assert_eq!(
                    reason(&with(event.clone(), field, json!(long))),
                    format!("field \"{field}\" must be at most 128 characters"),
                    "{kind} {field}"
                );
            }
            for ok_value in [
                "x".repeat(128),
                "é".repeat(128),
                "😀".repeat(128),
                "a b~\u{80}\u{9f}".into(),
            ] {
                ok(&with(event.clone(), field, json!(ok_value)));
            }
            for (bad, shown) in [
                ("acme\u{0}x", r#""acme\0x""#),
                ("zzz\u{0}", r#""zzz\0""#),
                ("a\tb", r#""a\tb""#),
                ("a\nb", r#""a\nb""#),
                ("\u{1f}", r#""\u{1f}""#),
                ("del\u{7f}", r#""del\u{7f}""#),
            ] {
                assert_eq!(
                    reason(&with(event.clone(), field, json!(bad))),
                    format!("field \"{field}\" must not contain control characters, got {shown}"),
                    "{kind} {field}"
                );
            }
        }
    }

    #[test]
    fn control_characters_are_caught_escaped_or_raw() {
        // DEL may appear raw in JSON; the others only escaped.
        let doc = "{\"event_id\":\"e\",\"kind\":\"probe\",\"occurred_at\":\"2026-11-02T09:30:00Z\",\
            \"customer_id\":\"c\u{7f}\",\"probe_id\":\"p\",\"service\":\"s\",\"success\":true,\"latency_ms\":1}";
        assert_eq!(
            reason_of(doc.as_bytes()),
            r#"field "customer_id" must not contain control characters, got "c\u{7f}""#
        );
        let doc = br#"{"event_id":"e","kind":"probe","occurred_at":"2026-11-02T09:30:00Z",
            "customer_id":"acme\u0000x","probe_id":"p","service":"s","success":true,"latency_ms":1}"#;
        assert_eq!(
            reason_of(doc),
            r#"field "customer_id" must not contain control characters, got "acme\0x""#
        );
    }

    #[test]
    fn customer_ids_entries_follow_the_identifier_rule() {
        let list = |v: Value| with(incident(), "customer_ids", v);
        assert_eq!(
            reason(&list(json!(["acme", "x".repeat(129)]))),
            "field \"customer_ids\" must not contain a string longer than 128 characters"
        );
        assert_eq!(
            reason(&list(json!(["acme", "glo\u{0}bex"]))),
            r#"field "customer_ids" must not contain control characters, got "glo\0bex""#
        );
        let Body::Incident(i) = ok(&list(json!(["x".repeat(128), "é".repeat(128)]))).body else {
            panic!()
        };
        assert_eq!(i.customer_ids.map(|l| l.len()), Some(2));
    }

    #[test]
    fn a_probe_without_escapes_still_borrows_every_string() {
        let bytes = serde_json::to_vec(&with(
            with(probe(), "segment", json!("enterprise")),
            "event_id",
            json!("e".repeat(128)),
        ))
        .unwrap();
        let e = decode(&bytes).unwrap();
        assert!(matches!(e.event_id, Cow::Borrowed(_)));
        assert!(matches!(e.customer_id, Some(Cow::Borrowed(_))));
        assert!(matches!(e.segment, Some(Cow::Borrowed(_))));
        let Body::Probe(p) = e.body else { panic!() };
        assert!(matches!(p.probe_id, Cow::Borrowed(_)));
        assert!(matches!(p.service, Cow::Borrowed(_)));
        assert!(matches!(p.region, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn long_fractions_are_truncated_not_rejected() {
        let e = ok(&with(
            probe(),
            "occurred_at",
            json!("2026-11-02T02:30:00.123999999999-07:00"),
        ));
        assert_eq!(e.occurred_at, T0 + 123);
    }

    #[test]
    fn occurred_at_rules() {
        assert_eq!(
            reason(&without(probe(), "occurred_at")),
            "missing field \"occurred_at\""
        );
        assert_eq!(
            reason(&with(probe(), "occurred_at", json!(T0))),
            "field \"occurred_at\" must be a string"
        );
        assert_eq!(
            reason(&with(probe(), "occurred_at", json!("2026-11-02T09:30:00"))),
            "field \"occurred_at\" must be an RFC 3339 timestamp with offset, got \"2026-11-02T09:30:00\""
        );
        assert_eq!(
            reason(&with(probe(), "occurred_at", json!("yesterday"))),
            "field \"occurred_at\" must be an RFC 3339 timestamp with offset, got \"yesterday\""
        );
        let e = ok(&with(
            probe(),
            "occurred_at",
            json!("2026-11-02T09:30:00.123999Z"),
        ));
        assert_eq!(e.occurred_at, T0 + 123);
        let e = ok(&with(
            probe(),
            "occurred_at",
            json!("2026-11-02T18:30:00+09:00"),
        ));
        assert_eq!(e.occurred_at, T0);
    }

    #[test]
    fn customer_id_is_required_for_tickets_and_probes_only() {
        assert_eq!(
            reason(&without(probe(), "customer_id")),
            "missing field \"customer_id\""
        );
        assert_eq!(
            reason(&without(ticket(), "customer_id")),
            "missing field \"customer_id\""
        );
        assert_eq!(
            reason(&with(ticket(), "customer_id", Value::Null)),
            "field \"customer_id\" must not be null"
        );
        assert_eq!(
            reason(&with(probe(), "customer_id", json!(["a"]))),
            "field \"customer_id\" must be a string"
        );
        assert_eq!(
            reason(&with(probe(), "customer_id", json!(""))),
            "field \"customer_id\" must not be empty"
        );
        // On an incident it is not a field of the kind: ignored, whatever it holds.
        assert_eq!(
            ok(&with(incident(), "customer_id", json!(5))).customer_id,
            None
        );
    }

    #[test]
    fn segment_and_timezone_are_optional() {
        let e = ok(&with(
            with(probe(), "segment", json!("enterprise")),
            "timezone",
            json!("Europe/Berlin"),
        ));
        assert_eq!(e.segment.as_deref(), Some("enterprise"));
        assert_eq!(e.timezone.as_deref(), Some("Europe/Berlin"));
        let e = ok(&with(
            with(probe(), "segment", Value::Null),
            "timezone",
            Value::Null,
        ));
        assert_eq!((e.segment, e.timezone), (None, None));
        assert_eq!(
            reason(&with(probe(), "segment", json!(1))),
            "field \"segment\" must be a string"
        );
        assert_eq!(
            reason(&with(probe(), "timezone", json!({}))),
            "field \"timezone\" must be a string"
        );
    }

    #[test]
    fn timezone_must_be_an_iana_zone() {
        assert_eq!(
            reason(&with(probe(), "timezone", json!("Mars/Base"))),
            "invalid timezone \"Mars/Base\""
        );
        assert_eq!(
            reason(&with(probe(), "timezone", json!(""))),
            "invalid timezone \"\""
        );
        assert_eq!(
            reason(&with(probe(), "timezone", json!("+09:00"))),
            "invalid timezone \"+09:00\""
        );
        assert_eq!(
            reason(&with(incident(), "timezone", json!("Mars/Base"))),
            "invalid timezone \"Mars/Base\""
        );
        // Twice each, so the second answer comes from the cache.
        for _ in 0..2 {
            let bytes =
                serde_json::to_vec(&with(probe(), "timezone", json!("Asia/Tokyo"))).unwrap();
            assert!(matches!(
                decode(&bytes).unwrap().timezone,
                Some(Cow::Borrowed("Asia/Tokyo"))
            ));
            let e = ok(&with(probe(), "timezone", json!("america/NEW_YORK")));
            assert_eq!(e.timezone.as_deref(), Some("America/New_York"));
            assert_eq!(
                ok(&with(probe(), "timezone", json!("UTC")))
                    .timezone
                    .as_deref(),
                Some("UTC")
            );
            assert_eq!(
                reason(&with(probe(), "timezone", json!("Mars/Base"))),
                "invalid timezone \"Mars/Base\""
            );
        }
    }

    #[test]
    fn zone_cache_stays_bounded_and_correct() {
        // Case variants are all valid, so they could fill the cache forever.
        let name = "europe/berlin";
        for bits in 0..(MAX_CACHED_ZONES as u32 + 100) {
            let variant: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if bits >> (i % 13) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let zone = canonical_zone(Cow::Owned(variant)).unwrap();
            assert_eq!(zone, "Europe/Berlin");
            assert!(KNOWN_ZONES.with_borrow(|z| z.names.len()) <= MAX_CACHED_ZONES);
        }
        assert_eq!(
            canonical_zone(Cow::Borrowed("Europe/Berlin")).unwrap(),
            "Europe/Berlin"
        );
    }

    #[test]
    fn ticket_fields() {
        assert_eq!(
            reason(&without(ticket(), "ticket_id")),
            "missing field \"ticket_id\""
        );
        assert_eq!(
            reason(&with(ticket(), "ticket_id", json!(42))),
            "field \"ticket_id\" must be a string"
        );
        assert_eq!(
            reason(&with(ticket(), "ticket_id", json!(""))),
            "field \"ticket_id\" must not be empty"
        );
        assert_eq!(
            reason(&without(ticket(), "action")),
            "missing field \"action\""
        );
        assert_eq!(
            reason(&with(ticket(), "action", Value::Null)),
            "field \"action\" must not be null"
        );
        assert_eq!(
            reason(&with(ticket(), "action", json!(true))),
            "field \"action\" must be a string"
        );
        assert_eq!(
            reason(&with(ticket(), "action", json!("bar"))),
            "unknown action \"bar\" for kind \"ticket\""
        );
        assert_eq!(
            reason(&with(ticket(), "action", json!("acknowledged"))),
            "unknown action \"acknowledged\" for kind \"ticket\""
        );
        assert_eq!(
            reason(&with(ticket(), "service", json!(1))),
            "field \"service\" must be a string"
        );
        assert_eq!(
            reason(&with(ticket(), "region", json!(1))),
            "field \"region\" must be a string"
        );
        let Body::Ticket(t) = ok(&with(ticket(), "region", json!("eu"))).body else {
            panic!()
        };
        assert_eq!(t.region.as_deref(), Some("eu"));
    }

    #[test]
    fn priority_rules() {
        for (p, level) in [("P1", 0), ("P2", 1), ("P3", 2), ("P4", 3)] {
            let Body::Ticket(t) = ok(&with(ticket(), "priority", json!(p))).body else {
                panic!()
            };
            assert_eq!(t.priority, Some(level));
        }
        assert_eq!(
            reason(&with(ticket(), "priority", json!("P5"))),
            "unknown priority \"P5\" (expected P1..P4)"
        );
        assert_eq!(
            reason(&with(ticket(), "priority", json!("p1"))),
            "unknown priority \"p1\" (expected P1..P4)"
        );
        assert_eq!(
            reason(&with(ticket(), "priority", json!(1))),
            "field \"priority\" must be a string"
        );
        assert_eq!(
            reason(&without(ticket(), "priority")),
            "missing field \"priority\" (required with action \"opened\")"
        );
        let changed = with(ticket(), "action", json!("priority_changed"));
        assert_eq!(
            reason(&without(changed.clone(), "priority")),
            "missing field \"priority\" (required with action \"priority_changed\")"
        );
        assert_eq!(
            reason(&with(changed, "priority", Value::Null)),
            "field \"priority\" must not be null"
        );
        // Optional on the other actions; still validated when given.
        let responded = with(ticket(), "action", json!("responded"));
        let Body::Ticket(t) = ok(&without(responded.clone(), "priority")).body else {
            panic!()
        };
        assert_eq!(t.priority, None);
        let Body::Ticket(t) = ok(&with(responded.clone(), "priority", Value::Null)).body else {
            panic!()
        };
        assert_eq!(t.priority, None);
        let Body::Ticket(t) = ok(&with(responded.clone(), "priority", json!("P1"))).body else {
            panic!()
        };
        assert_eq!(t.priority, Some(0));
        assert_eq!(
            reason(&with(responded, "priority", json!("P0"))),
            "unknown priority \"P0\" (expected P1..P4)"
        );
    }

    #[test]
    fn incident_fields() {
        assert_eq!(
            reason(&without(incident(), "incident_id")),
            "missing field \"incident_id\""
        );
        assert_eq!(
            reason(&with(incident(), "incident_id", json!(""))),
            "field \"incident_id\" must not be empty"
        );
        assert_eq!(
            reason(&without(incident(), "action")),
            "missing field \"action\""
        );
        assert_eq!(
            reason(&with(incident(), "action", json!("paused"))),
            "unknown action \"paused\" for kind \"incident\""
        );
        assert_eq!(
            reason(&with(incident(), "service", json!(false))),
            "field \"service\" must be a string"
        );
    }

    #[test]
    fn severity_rules() {
        for (s, level) in [("SEV1", 0), ("SEV2", 1), ("SEV3", 2), ("SEV4", 3)] {
            let Body::Incident(i) = ok(&with(incident(), "severity", json!(s))).body else {
                panic!()
            };
            assert_eq!(i.severity, Some(level));
        }
        assert_eq!(
            reason(&with(incident(), "severity", json!("SEV5"))),
            "unknown severity \"SEV5\" (expected SEV1..SEV4)"
        );
        assert_eq!(
            reason(&with(incident(), "severity", json!(1))),
            "field \"severity\" must be a string"
        );
        assert_eq!(
            reason(&without(incident(), "severity")),
            "missing field \"severity\" (required with action \"opened\")"
        );
        assert_eq!(
            reason(&with(incident(), "severity", Value::Null)),
            "field \"severity\" must not be null"
        );
        let acked = without(
            with(incident(), "action", json!("acknowledged")),
            "severity",
        );
        let Body::Incident(i) = ok(&acked).body else {
            panic!()
        };
        assert_eq!(i.severity, None);
        let raised = with(acked, "severity", json!("SEV2"));
        let Body::Incident(i) = ok(&raised).body else {
            panic!()
        };
        assert_eq!(i.severity, Some(1));
    }

    #[test]
    fn customer_ids_rules() {
        assert_eq!(
            reason(&without(incident(), "customer_ids")),
            "missing field \"customer_ids\" (required with action \"opened\")"
        );
        assert_eq!(
            reason(&with(incident(), "customer_ids", Value::Null)),
            "field \"customer_ids\" must not be null"
        );
        for bad in [
            json!("acme"),
            json!(["acme", 1]),
            json!([["acme"]]),
            json!({"acme": 1}),
            json!([null]),
        ] {
            assert_eq!(
                reason(&with(incident(), "customer_ids", bad.clone())),
                "field \"customer_ids\" must be an array of strings",
                "{bad}"
            );
        }
        assert_eq!(
            reason(&with(incident(), "customer_ids", json!(["acme", ""]))),
            "field \"customer_ids\" must not contain an empty string"
        );
        let Body::Incident(i) = ok(&with(incident(), "customer_ids", json!([]))).body else {
            panic!()
        };
        assert_eq!(i.customer_ids, Some(vec![]));
        let mitigated = without(
            with(incident(), "action", json!("mitigated")),
            "customer_ids",
        );
        let Body::Incident(i) = ok(&mitigated).body else {
            panic!()
        };
        assert_eq!(i.customer_ids, None);
        let Body::Incident(i) = ok(&with(mitigated, "customer_ids", json!(["x"]))).body else {
            panic!()
        };
        assert_eq!(i.customer_ids, Some(vec!["x".into()]));
    }

    #[test]
    fn planned_defaults_to_false() {
        let planned = |v: &Value| match ok(v).body {
            Body::Incident(i) => i.planned,
            _ => unreachable!(),
        };
        assert!(!planned(&incident()));
        assert!(!planned(&with(incident(), "planned", Value::Null)));
        assert!(!planned(&with(incident(), "planned", json!(false))));
        assert!(planned(&with(incident(), "planned", json!(true))));
        assert_eq!(
            reason(&with(incident(), "planned", json!("yes"))),
            "field \"planned\" must be a boolean"
        );
    }

    #[test]
    fn probe_fields() {
        assert_eq!(
            reason(&without(probe(), "probe_id")),
            "missing field \"probe_id\""
        );
        assert_eq!(
            reason(&with(probe(), "probe_id", json!(""))),
            "field \"probe_id\" must not be empty"
        );
        assert_eq!(
            reason(&without(probe(), "service")),
            "missing field \"service\""
        );
        assert_eq!(
            reason(&with(probe(), "service", Value::Null)),
            "field \"service\" must not be null"
        );
        assert_eq!(
            reason(&with(probe(), "service", json!(1))),
            "field \"service\" must be a string"
        );
        assert_eq!(
            reason(&with(probe(), "region", json!(1))),
            "field \"region\" must be a string"
        );
        let Body::Probe(p) = ok(&with(probe(), "region", Value::Null)).body else {
            panic!()
        };
        assert_eq!(p.region, None);
        assert_eq!(
            reason(&without(probe(), "success")),
            "missing field \"success\""
        );
        assert_eq!(
            reason(&with(probe(), "success", Value::Null)),
            "field \"success\" must not be null"
        );
        assert_eq!(
            reason(&with(probe(), "success", json!("true"))),
            "field \"success\" must be a boolean"
        );
        assert_eq!(
            reason(&with(probe(), "success", json!(1))),
            "field \"success\" must be a boolean"
        );
    }

    #[test]
    fn latency_must_be_a_non_negative_number() {
        assert_eq!(
            reason(&without(probe(), "latency_ms")),
            "missing field \"latency_ms\""
        );
        assert_eq!(
            reason(&with(probe(), "latency_ms", Value::Null)),
            "field \"latency_ms\" must not be null"
        );
        for bad in [json!(-1), json!(-0.5), json!("12"), json!(true), json!([1])] {
            assert_eq!(
                reason(&with(probe(), "latency_ms", bad.clone())),
                "field \"latency_ms\" must be a number >= 0",
                "{bad}"
            );
        }
        let latency = |raw: &str| {
            let doc = serde_json::to_string(&without(probe(), "latency_ms")).unwrap();
            let doc = format!("{},\"latency_ms\":{raw}}}", &doc[..doc.len() - 1]);
            match decode(doc.as_bytes()).unwrap().body {
                Body::Probe(p) => p.latency_ms,
                _ => unreachable!(),
            }
        };
        assert_eq!(latency("0"), 0.0);
        assert!(latency("-0.0").is_sign_positive());
        assert_eq!(latency("1e3"), 1000.0);
        assert_eq!(latency("18446744073709551615"), 18446744073709551615.0);
    }

    #[test]
    fn unknown_fields_and_fields_of_other_kinds_are_ignored() {
        let mut v = probe();
        v["note"] = json!({"nested": [1, {"deep": null}], "s": "x"});
        v["tags"] = json!(["a", 1, null]);
        v["priority"] = json!(5); // a ticket field: unknown for a probe
        v["planned"] = json!("no");
        v["ticket_id"] = Value::Null;
        assert_eq!(ok(&v), ok(&probe()));
    }

    #[test]
    fn duplicate_known_fields_are_invalid() {
        let doc =
            br#"{"event_id":"a","event_id":"b","kind":"probe","occurred_at":"2026-11-02T09:30:00Z",
            "customer_id":"c","probe_id":"p","service":"s","success":true,"latency_ms":1}"#;
        assert_eq!(reason_of(doc), "duplicate field \"event_id\"");
        let doc = br#"{"kind":"probe","kind":"ticket"}"#;
        assert_eq!(reason_of(doc), "duplicate field \"kind\"");
        // Duplicates of unknown fields, or of fields of another kind, do not matter.
        let doc = br#"{"x":1,"x":2,"priority":"P1","priority":"P2","event_id":"a","kind":"probe",
            "occurred_at":"2026-11-02T09:30:00Z","customer_id":"c","probe_id":"p","service":"s",
            "success":true,"latency_ms":1}"#;
        assert!(decode(doc).is_ok());
    }

    #[test]
    fn common_fields_come_before_kind_fields() {
        let v = with(without(probe(), "probe_id"), "timezone", json!("Mars/Base"));
        assert_eq!(reason(&v), "invalid timezone \"Mars/Base\"");
        let v = with(without(probe(), "event_id"), "occurred_at", json!("x"));
        assert_eq!(reason(&v), "missing field \"event_id\"");
        let v = with(
            with(ticket(), "action", json!("bar")),
            "priority",
            json!("P9"),
        );
        assert_eq!(reason(&v), "unknown action \"bar\" for kind \"ticket\"");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn never_panics_on_damaged_events(
            which in 0usize..3,
            cut in 0usize..400,
            flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 0..4),
        ) {
            let mut bytes = serde_json::to_vec(&[probe(), ticket(), incident()][which]).unwrap();
            for (at, b) in flips {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            bytes.truncate(cut.max(1));
            let _ = decode(&bytes);
        }
    }
}
