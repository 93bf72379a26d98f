//! The engine's state in the store: key layout, encoding of what changed into
//! one `Batch`, and restoring an engine from a store.
//!
//! Key layout (first byte = table). Every variable-length part of a key
//! made of several parts is length-prefixed (u32 BE), so any bytes in an id
//! round-trip; a key of one id holds it whole after the table byte.
//! - `v`                      format version of this layout (u32 BE)
//! - `w`                      watermark (i64 BE)
//! - `d` + hash (16 B)        dedup: `occurred_at` (i64 BE) of a processed event id
//! - `c` + customer id        seen customer (not in the registry)
//! - `t` + ticket id          the ticket's events
//! - `i` + incident id        the incident's events
//! - `b` + len slo + slo + len customer + customer + bucket start (i64 BE):
//!   probe-SLO counts
//! - `x`                      run-time exclusions and audit log
//! - `o` + source             input position: `kafka/<topic>/<partition>` → next offset (i64 BE)
//! - `a` + fingerprint         alert episode (labels, status, targets owed)
//! - `q` + seq (u64 BE)       dead-letter outbox: written with the batch that
//!   produced it, deleted once the broker acknowledged it
//! - `s` + slo name           the SLO definition (JSON, with its history) the
//!   state last ran with, rewritten at each start that found a difference
//! - `y` + seq (u64 BE)       an audit entry `slo_definition` (JSON): a
//!   difference found at a start; `seq` is shared with the audit entries of `x`
//!
//! Clock contributions and downtime are derived: `restore` recomputes them
//! from the stored events, so they can never disagree with them.
//!
//! Format versions: 1 is the layout without a `v` key, whose bucket keys
//! joined their parts with `\0` (so a customer id holding `\0` could not be
//! read back); 2 has length-prefixed bucket keys; 3, the current one, adds
//! the `s` and `y` tables (a version 2 state has none: its definitions were
//! never recorded). A binary reading only version 2 would run on a version 3
//! state without recording its definitions, so the next start would audit
//! against stale ones: it is refused instead. `restore` writes the version
//! into an empty store, migrates an older store in one atomic batch, and
//! refuses a version it does not know.

use serde::{Deserialize, Serialize};

use super::{Batch, Store, StoreError};
use crate::config::Config;
use crate::engine::buckets::Counts;
use crate::engine::clock::{IncidentEv, TicketEv};
use crate::engine::customers::SeenCustomer;
use crate::engine::versions::{diff_definitions, DefinitionChange};
use crate::engine::{AuditEntry, Engine, RuntimeExclusion};
use crate::model::slo::SloDef;
use crate::model::time::{Clock, Millis};

const WATERMARK: &[u8] = b"w";
const EXCLUSIONS: &[u8] = b"x";
const VERSION: &[u8] = b"v";
/// Bucket keys of version 1 that could not be read unambiguously, kept (key
/// without its `b`, value as it was) rather than dropped.
const UNREADABLE_V1: u8 = b'z';

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 3;

/// Table of the SLO definitions the state last ran with.
const DEFINITIONS: u8 = b's';
/// Table of the `slo_definition` audit entries.
const DEFINITION_AUDIT: u8 = b'y';

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail.
    bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
}

fn key(table: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(table);
    k.extend_from_slice(rest);
    k
}

fn push_part(k: &mut Vec<u8>, part: &[u8]) {
    // An id longer than 4 GiB cannot reach here (events are at most 64 KiB,
    // configuration strings are far smaller).
    k.extend_from_slice(&(part.len() as u32).to_be_bytes());
    k.extend_from_slice(part);
}

/// Splits a length-prefixed part off the front of `rest`.
fn take_part<'k>(rest: &mut &'k [u8]) -> Option<&'k [u8]> {
    let len: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len) as usize;
    let part = rest.get(4..4 + len)?;
    *rest = &rest[4 + len..];
    Some(part)
}

fn bucket_key(slo: &str, customer: &str, start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 4 + slo.len() + 4 + customer.len() + 8);
    k.push(b'b');
    push_part(&mut k, slo.as_bytes());
    push_part(&mut k, customer.as_bytes());
    k.extend_from_slice(&start.to_be_bytes());
    k
}

/// (slo, customer, start) of a bucket key; `None` unless it is exactly
/// what `bucket_key` writes.
fn parse_bucket_key(k: &[u8]) -> Option<(String, String, i64)> {
    let mut rest = k.strip_prefix(b"b")?;
    let slo = take_part(&mut rest)?;
    let customer = take_part(&mut rest)?;
    let start: [u8; 8] = rest.try_into().ok()?;
    Some((
        String::from_utf8(slo.to_vec()).ok()?,
        String::from_utf8(customer.to_vec()).ok()?,
        i64::from_be_bytes(start),
    ))
}

/// (slo, customer, start) of a version 1 bucket key `b slo \0 customer \0
/// start`. SLO names never hold `\0` and the start is the last 8 bytes, so
/// the customer is everything between, `\0`s included; `None` for a key
/// that does not have this shape.
fn parse_v1_bucket_key(k: &[u8]) -> Option<(String, String, i64)> {
    let rest = k.strip_prefix(b"b")?;
    let split = rest.len().checked_sub(9)?;
    let (head, tail) = rest.split_at(split);
    let (&0, start) = tail.split_first()? else {
        return None;
    };
    let sep = head.iter().position(|b| *b == 0)?;
    let (slo, customer) = (&head[..sep], &head[sep + 1..]);
    let slo_ok = !slo.is_empty()
        && slo
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if !slo_ok {
        return None;
    }
    Some((
        String::from_utf8(slo.to_vec()).ok()?,
        String::from_utf8(customer.to_vec()).ok()?,
        i64::from_be_bytes(start.try_into().ok()?),
    ))
}

/// What `prepare` did to the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The format version the store had (`None`: empty or version 1 without
    /// a version key, both treated as version 1).
    pub found: Option<u32>,
    /// Version 1 bucket keys rewritten in the current layout.
    pub migrated: usize,
    /// Version 1 bucket keys that could not be read unambiguously, moved
    /// under the `z` table (escaped, for the log).
    pub unreadable: Vec<String>,
}

/// Brings `store` to [`FORMAT_VERSION`], or refuses it: an empty store gets
/// the version; a store without one (version 1) has its bucket keys rewritten
/// and gets the version, all in one atomic batch; a newer or unknown version
/// is an error, and the store is left as it was.
pub fn prepare(store: &dyn Store) -> Result<Prepared, StoreError> {
    let found = match store.get(VERSION)? {
        None => None,
        Some(v) => {
            let arr: [u8; 4] = v.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                key: "v".into(),
                reason: format!("format version of {} bytes, expected 4", v.len()),
            })?;
            Some(u32::from_be_bytes(arr))
        }
    };
    match found {
        Some(FORMAT_VERSION) => {
            return Ok(Prepared {
                found,
                ..Prepared::default()
            })
        }
        Some(2) => {
            // Version 3 only adds tables: a version 2 state is one whose
            // definitions were never recorded.
            let mut b = Batch::default();
            b.put(VERSION.to_vec(), FORMAT_VERSION.to_be_bytes().to_vec());
            store.write(b)?;
            return Ok(Prepared {
                found,
                ..Prepared::default()
            });
        }
        Some(found) => {
            return Err(StoreError::Version {
                location: store.location(),
                found,
                supported: FORMAT_VERSION,
            })
        }
        None => {}
    }
    let mut b = Batch::default();
    let mut done = Prepared::default();
    for (k, v) in store.scan(b"b")? {
        match parse_v1_bucket_key(&k) {
            Some((slo, customer, start)) => {
                b.delete(k);
                b.put(bucket_key(&slo, &customer, start), v);
                done.migrated += 1;
            }
            None => {
                done.unreadable.push(k.escape_ascii().to_string());
                b.put(key(UNREADABLE_V1, &k[1..]), v);
                b.delete(k);
            }
        }
    }
    b.put(VERSION.to_vec(), FORMAT_VERSION.to_be_bytes().to_vec());
    store.write(b)?;
    Ok(done)
}

fn i64_of(key: &[u8], v: &[u8]) -> Result<i64, StoreError> {
    let arr: [u8; 8] = v.try_into().map_err(|_| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "expected 8 bytes".into(),
    })?;
    Ok(i64::from_be_bytes(arr))
}

#[derive(Serialize, Deserialize)]
struct ExclusionState {
    next_id: u64,
    runtime: Vec<RuntimeExclusion>,
    audit: Vec<AuditEntry>,
}

/// The key under which an input position is stored.
pub fn position_key(source: &str) -> Vec<u8> {
    key(b'o', source.as_bytes())
}

/// The source name of a Kafka partition's position.
fn kafka_source(topic: &str, partition: i32) -> String {
    format!("kafka/{topic}/{partition}")
}

/// Records, in `batch`, the next offset to read from a Kafka partition.
pub fn put_kafka_position(batch: &mut Batch, topic: &str, partition: i32, next_offset: i64) {
    batch.put(
        position_key(&kafka_source(topic, partition)),
        next_offset.to_be_bytes().to_vec(),
    );
}

/// The next offset to read from a Kafka partition, if one was ever stored.
pub fn kafka_position(
    store: &dyn Store,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, StoreError> {
    let k = position_key(&kafka_source(topic, partition));
    store.get(&k)?.map(|v| i64_of(&k, &v)).transpose()
}

/// Every stored Kafka position: (topic, partition) → next offset.
pub fn kafka_positions(
    store: &dyn Store,
) -> Result<std::collections::BTreeMap<(String, i32), i64>, StoreError> {
    let prefix = position_key("kafka/");
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in store.scan(&prefix)? {
        let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let Some((topic, partition)) = name.rsplit_once('/') else {
            continue;
        };
        let Ok(partition) = partition.parse::<i32>() else {
            continue;
        };
        out.insert((topic.to_string(), partition), i64_of(&k, &v)?);
    }
    Ok(out)
}

fn outbox_key(seq: u64) -> Vec<u8> {
    key(b'q', &seq.to_be_bytes())
}

/// Adds an outbox entry (an encoded dead letter) to `batch`.
pub fn put_outbox<T: Serialize>(batch: &mut Batch, seq: u64, value: &T) {
    batch.put(outbox_key(seq), encode(value));
}

/// Removes an acknowledged outbox entry.
pub fn delete_outbox(batch: &mut Batch, seq: u64) {
    batch.delete(outbox_key(seq));
}

/// Every outbox entry, in sequence order.
pub fn outbox<T: for<'de> Deserialize<'de>>(
    store: &dyn Store,
) -> Result<Vec<(u64, T)>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in store.scan(b"q")? {
        let seq: [u8; 8] = k[1..].try_into().map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            reason: "bad outbox key".into(),
        })?;
        out.push((u64::from_be_bytes(seq), decode(&k, &v)?));
    }
    Ok(out)
}

/// Writes (or, with `None`, deletes) an alert episode.
pub fn put_alert<T: Serialize>(batch: &mut Batch, fingerprint: &str, episode: Option<&T>) {
    let k = key(b'a', fingerprint.as_bytes());
    match episode {
        Some(e) => batch.put(k, encode(e)),
        None => batch.delete(k),
    }
}

/// Every stored alert episode by fingerprint.
pub fn alerts<T: for<'de> Deserialize<'de>>(
    store: &dyn Store,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in store.scan(b"a")? {
        out.push((
            String::from_utf8_lossy(&k[1..]).into_owned(),
            decode(&k, &v)?,
        ));
    }
    Ok(out)
}

/// Encodes everything that changed in `engine` since the last call.
pub fn dirty_batch(engine: &mut Engine) -> Batch {
    let dirty = engine.take_dirty();
    let mut b = Batch::default();
    if dirty.watermark {
        if let Some(w) = engine.watermark {
            b.put(WATERMARK.to_vec(), w.to_be_bytes().to_vec());
        }
    }
    for (h, at) in dirty.dedup_gone {
        let _ = at;
        b.delete(key(b'd', &h.to_be_bytes()));
    }
    for (h, at) in dirty.dedup {
        b.put(key(b'd', &h.to_be_bytes()), at.to_be_bytes().to_vec());
    }
    for c in dirty.customers {
        if let Some(seen) = engine.customers.seen(c) {
            b.put(key(b'c', seen.id.as_bytes()), encode(&seen));
        }
    }
    for t in dirty.tickets {
        let it = &engine.tickets.list[t as usize];
        if !it.events.is_empty() {
            b.put(key(b't', it.id.as_bytes()), encode(&it.events));
        }
    }
    for id in dirty.tickets_gone {
        b.delete(key(b't', id.as_bytes()));
    }
    for i in dirty.incidents {
        let it = &engine.incidents.list[i as usize];
        if !it.events.is_empty() {
            b.put(key(b'i', it.id.as_bytes()), encode(&it.events));
        }
    }
    for id in dirty.incidents_gone {
        b.delete(key(b'i', id.as_bytes()));
    }
    for (s, c, start) in dirty.buckets {
        let slo = &engine.settings.slos[s as usize].name;
        let cust = engine.customers.get(c);
        let k = bucket_key(slo, &cust.id, start);
        match engine.slos[s as usize]
            .by_customer
            .get(c as usize)
            .and_then(|x| x.get(start))
        {
            Some(v) => b.put(k, encode(&(v.good, v.bad))),
            None => b.delete(k),
        }
    }
    if dirty.exclusions {
        let x = ExclusionState {
            next_id: engine.next_exclusion_id,
            runtime: engine.runtime_exclusions.clone(),
            audit: engine.audit.clone(),
        };
        b.put(EXCLUSIONS.to_vec(), encode(&x));
    }
    b
}

fn json_of<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain data (strings, numbers, maps with string keys) always encodes.
    serde_json::to_vec(v).unwrap_or_default()
}

fn json_from<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.escape_ascii().to_string(),
        reason: e.to_string(),
    })
}

/// The SLO definitions the state last ran with, in name order; `None` when
/// it never recorded any (a new state, or one written before definitions
/// were recorded). Reads only.
pub fn recorded_definitions(store: &dyn Store) -> Result<Option<Vec<SloDef>>, StoreError> {
    let entries = store.scan(&[DEFINITIONS])?;
    if entries.is_empty() {
        // A state whose definitions were all removed still records that
        // it ran with none: an empty `s` marker key.
        return Ok(None);
    }
    let mut out = Vec::new();
    for (k, v) in entries {
        if k.len() == 1 {
            continue;
        }
        out.push(json_from(&k, &v)?);
    }
    Ok(Some(out))
}

/// Every `slo_definition` audit entry, oldest first. Reads only.
pub fn definition_audit(store: &dyn Store) -> Result<Vec<DefinitionChange>, StoreError> {
    store
        .scan(&[DEFINITION_AUDIT])?
        .iter()
        .map(|(k, v)| json_from(k, v))
        .collect()
}

/// Whether the store holds anything an engine was fed (a watermark).
fn has_processed(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(store.get(WATERMARK)?.is_some())
}

/// How the SLO definitions of `cfg` differ from those the state in `store`
/// last ran with, as the audit entries a start at `start` would append
/// (SPEC §3 Definition versions). Reads only: `check-config --state`.
pub fn pending_definition_changes(
    cfg: &Config,
    store: &dyn Store,
    start: Millis,
) -> Result<DefinitionsFound, StoreError> {
    if let Some(v) = store.get(VERSION)? {
        let found = v
            .as_slice()
            .try_into()
            .map(u32::from_be_bytes)
            .unwrap_or(u32::MAX);
        if found > FORMAT_VERSION {
            return Err(StoreError::Version {
                location: store.location(),
                found,
                supported: FORMAT_VERSION,
            });
        }
    }
    let Some(before) = recorded_definitions(store)? else {
        return Ok(DefinitionsFound::NotRecorded {
            processed: has_processed(store)?,
        });
    };
    let audit = definition_audit(store)?;
    let exclusions: Option<ExclusionState> = store
        .get(EXCLUSIONS)?
        .map(|v| decode(EXCLUSIONS, &v))
        .transpose()?;
    let last = |a: Option<u64>, b: Option<u64>| a.max(b).unwrap_or(0);
    let seq = last(
        audit.last().map(|d| d.seq),
        exclusions.and_then(|x| x.audit.last().map(|a| a.seq)),
    ) + 1;
    Ok(DefinitionsFound::Changes(diff_definitions(
        &before, &cfg.slos, start, seq,
    )))
}

/// The lines `check-config --state` prints about the state at `location`.
pub fn describe_definitions(found: &DefinitionsFound, location: &str) -> Vec<String> {
    match found {
        DefinitionsFound::NotRecorded { processed: false } => vec![format!(
            "state at {location}: no SLO definitions recorded yet; the next start records them"
        )],
        DefinitionsFound::NotRecorded { processed: true } => vec![format!(
            "state at {location}: written before SLO definitions were recorded; the next start \
             records them, earlier changes cannot be told"
        )],
        DefinitionsFound::Changes(c) if c.is_empty() => vec![format!(
            "state at {location}: SLO definitions unchanged since it last ran"
        )],
        DefinitionsFound::Changes(c) => {
            let mut out = vec![format!(
                "state at {location}: {} SLO definition change{} since it last ran \
                 (the next start appends each to the audit log):",
                c.len(),
                if c.len() == 1 { "" } else { "s" }
            )];
            out.extend(c.iter().map(|c| format!("  {}", c.describe())));
            out
        }
    }
}

/// What a start finds about the SLO definitions of its state.
#[derive(Debug, Clone, PartialEq)]
pub enum DefinitionsFound {
    /// The state never recorded its definitions; `processed`: it holds
    /// events nonetheless (written before definitions were recorded), so
    /// earlier changes cannot be told.
    NotRecorded { processed: bool },
    /// The differences (empty: none).
    Changes(Vec<DefinitionChange>),
}

/// Compares the SLO definitions of `cfg` with those the state last ran
/// with, appends each difference to the engine's audit log, logs it, and
/// persists the definitions and the entries in one batch, before any event
/// of this start is applied.
fn record_definitions(
    cfg: &Config,
    store: &dyn Store,
    e: &mut Engine,
    start: Millis,
) -> Result<(), StoreError> {
    let found = pending_definition_changes(cfg, store, start)?;
    let mut b = Batch::default();
    match found {
        DefinitionsFound::NotRecorded { processed } => {
            if processed {
                tracing::info!(
                    "SLO definitions recorded for the first time: changes made before this start cannot be told"
                );
            }
        }
        DefinitionsFound::Changes(changes) if changes.is_empty() => return Ok(()),
        DefinitionsFound::Changes(changes) => {
            for c in changes {
                if c.retroactive {
                    tracing::warn!(slo = %c.slo, seq = c.seq, "{}", c.describe());
                } else {
                    tracing::info!(slo = %c.slo, seq = c.seq, "{}", c.describe());
                }
                let mut k = vec![DEFINITION_AUDIT];
                k.extend_from_slice(&c.seq.to_be_bytes());
                b.put(k, json_of(&c));
                if c.after.is_none() {
                    b.delete(key(DEFINITIONS, c.slo.as_bytes()));
                }
                e.definition_changes.push(c);
            }
        }
    }
    b.put(vec![DEFINITIONS], Vec::new());
    for slo in &cfg.slos {
        b.put(key(DEFINITIONS, slo.name.as_bytes()), json_of(slo));
    }
    store.write(b)
}

/// Builds an engine for `cfg` from the state in `store`, recomputing every
/// derived number. Tracks changes from then on. The SLO definitions are
/// compared with those the state last ran with at the wall clock's now.
///
/// Runs [`prepare`] first: a store of an older layout is migrated, one of a
/// newer layout refused.
pub fn restore(cfg: &Config, store: &dyn Store) -> Result<Engine, StoreError> {
    restore_at(cfg, store, crate::model::time::WallClock.now())
}

/// [`restore`] with the start instant given.
pub fn restore_at(cfg: &Config, store: &dyn Store, start: Millis) -> Result<Engine, StoreError> {
    let prepared = prepare(store)?;
    if prepared.migrated > 0 || !prepared.unreadable.is_empty() {
        tracing::info!(
            migrated = prepared.migrated,
            "state migrated to format version {FORMAT_VERSION}"
        );
    }
    for k in &prepared.unreadable {
        tracing::warn!(
            key = %k,
            "state: a bucket key of format version 1 cannot be read; kept under table `z`, not restored"
        );
    }
    let mut e = Engine::new(cfg);
    for (k, v) in store.scan(b"c")? {
        let seen: SeenCustomer = decode(&k, &v)?;
        e.customers.restore(&seen);
    }
    if let Some(v) = store.get(WATERMARK)? {
        e.watermark = Some(i64_of(WATERMARK, &v)?);
    }
    for (k, v) in store.scan(b"d")? {
        let h: [u8; 16] = k[1..].try_into().map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            reason: "bad hash".into(),
        })?;
        e.dedup.insert(u128::from_be_bytes(h), i64_of(&k, &v)?);
    }
    if let Some(v) = store.get(EXCLUSIONS)? {
        let x: ExclusionState = decode(EXCLUSIONS, &v)?;
        e.next_exclusion_id = x.next_id;
        e.runtime_exclusions = x.runtime;
        e.audit = x.audit;
    }
    e.definition_changes = definition_audit(store)?;
    record_definitions(cfg, store, &mut e, start)?;
    for (k, v) in store.scan(b"b")? {
        let Some((slo, cust, start)) = parse_bucket_key(&k) else {
            return Err(StoreError::Corrupt {
                key: k.escape_ascii().to_string(),
                reason: "bad bucket key".into(),
            });
        };
        let Some(s) = e.slo_index(&slo) else { continue };
        let Some(c) = e.customers.lookup(&cust) else {
            continue;
        };
        let (good, bad): (i64, i64) = decode(&k, &v)?;
        let delta = Counts { good, bad };
        let g = e.customers.get(c).group;
        let st = &mut e.slos[s];
        st.customer_series(c).add_bucket(start, delta);
        st.group_series(g).add_bucket(start, delta);
    }
    for (k, v) in store.scan(b"t")? {
        let events: Vec<TicketEv> = decode(&k, &v)?;
        let id = String::from_utf8_lossy(&k[1..]).into_owned();
        let item = e.tickets.get_or_insert(&id);
        e.tickets.list[item as usize].events = events;
    }
    for (k, v) in store.scan(b"i")? {
        let events: Vec<IncidentEv> = decode(&k, &v)?;
        let id = String::from_utf8_lossy(&k[1..]).into_owned();
        let item = e.incidents.get_or_insert(&id);
        e.incidents.list[item as usize].events = events;
    }
    e.recompute_all();
    e.take_dirty();
    e.track_changes(true);
    Ok(e)
}

/// The run-time exclusions and audit log alone, for a mutation that is
/// persisted before it is answered; clears their dirty mark so no later state
/// batch carries a copy taken earlier.
pub fn exclusions_batch(engine: &mut Engine) -> Batch {
    engine.dirty.exclusions = false;
    let x = ExclusionState {
        next_id: engine.next_exclusion_id,
        runtime: engine.runtime_exclusions.clone(),
        audit: engine.audit.clone(),
    };
    let mut b = Batch::default();
    b.put(EXCLUSIONS.to_vec(), encode(&x));
    b
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::Path;

    use super::*;
    use crate::engine::customers::Origin;
    use crate::engine::query::Scope;
    use crate::model::event::{Body, Event, ProbeBody};
    use crate::model::time::{parse_rfc3339, MINUTE};
    use crate::store::{MemStore, RocksStore};

    const CONFIG: &str = r#"
[[customers]]
id = "registry\u0000nul"
segment = "enterprise"
timezone = "Europe/Berlin"

[[slos]]
name = "api-availability"
indicator = "probe_availability"
objective = 0.99
window = "30d"
"#;

    fn cfg() -> Config {
        crate::config::parse(CONFIG, &[], Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn t0() -> i64 {
        parse_rfc3339("2026-11-02T09:30:00Z").unwrap()
    }

    /// Customer ids no event can carry any more, but the registry or a later
    /// path may: NUL, bytes above ASCII, the longest id, and ids that look like
    /// a length prefix or the old separator layout.
    fn odd_ids() -> Vec<String> {
        vec![
            "acme\0x".to_string(),
            "zzz\0".to_string(),
            "\0".to_string(),
            "ÿþ\u{ff}\u{10ffff}".to_string(),
            "é".repeat(128),
            "\0\0\0\u{4}abcd".to_string(),
            "api-availability\0acme".to_string(),
        ]
    }

    /// A probe built directly, bypassing `decode`'s identifier rule.
    fn probe<'a>(id: &'a str, customer: &'a str, at: i64, success: bool) -> Event<'a> {
        Event {
            event_id: Cow::Borrowed(id),
            occurred_at: at,
            customer_id: Some(Cow::Borrowed(customer)),
            segment: None,
            timezone: None,
            body: Body::Probe(ProbeBody {
                probe_id: Cow::Borrowed("p"),
                service: Cow::Borrowed("api"),
                region: None,
                success,
                latency_ms: 1.0,
            }),
        }
    }

    fn totals(e: &Engine, customer: &str) -> (f64, f64) {
        let c = e.customers().lookup(customer).expect("customer restored");
        let n = e.numbers(
            0,
            &Scope::Customer(c),
            t0() - 10 * MINUTE,
            t0() + 10 * MINUTE,
            t0() + 10 * MINUTE,
        );
        (n.good, n.bad)
    }

    #[test]
    fn bucket_keys_round_trip_any_bytes() {
        for slo in ["a", "api-availability"] {
            for customer in odd_ids().iter().map(String::as_str).chain(["", "acme"]) {
                for start in [i64::MIN, -MINUTE, 0, t0(), i64::MAX] {
                    let k = bucket_key(slo, customer, start);
                    assert_eq!(
                        parse_bucket_key(&k),
                        Some((slo.to_string(), customer.to_string(), start)),
                        "{}",
                        k.escape_ascii()
                    );
                }
            }
        }
        assert_eq!(parse_bucket_key(b"b"), None);
        assert_eq!(parse_bucket_key(b"b\0\0\0\x09short"), None);
        let mut k = bucket_key("a", "b", 0);
        k.push(0);
        assert_eq!(parse_bucket_key(&k), None, "trailing byte");
    }

    #[test]
    fn odd_customer_ids_survive_write_and_restore() {
        let dir = tempfile::tempdir().unwrap();
        for store in [
            Box::new(MemStore::default()) as Box<dyn Store>,
            Box::new(RocksStore::open(dir.path()).unwrap()),
        ] {
            let cfg = cfg();
            let mut e = restore(&cfg, store.as_ref()).unwrap();
            let mut ids = odd_ids();
            ids.push("registry\0nul".to_string());
            for (i, customer) in ids.iter().enumerate() {
                let good = format!("g{i}");
                let bad = format!("b{i}");
                assert_eq!(
                    e.apply(&probe(&good, customer, t0(), true), t0()),
                    crate::engine::Applied::Accepted
                );
                assert_eq!(
                    e.apply(&probe(&bad, customer, t0() + MINUTE, false), t0()),
                    crate::engine::Applied::Accepted
                );
            }
            store.write(dirty_batch(&mut e)).unwrap();
            let back = restore(&cfg, store.as_ref()).unwrap();
            for customer in &ids {
                assert_eq!(totals(&back, customer), (1.0, 1.0), "{customer:?}");
                assert_eq!(totals(&back, customer), totals(&e, customer));
            }
            assert_eq!(back.customers().len(), e.customers().len());
            // A second start reads the same again.
            let again = restore(&cfg, store.as_ref()).unwrap();
            assert_eq!(totals(&again, "acme\0x"), (1.0, 1.0));
        }
    }

    fn v1_bucket_key(slo: &[u8], customer: &[u8], start: i64) -> Vec<u8> {
        let mut k = vec![b'b'];
        k.extend_from_slice(slo);
        k.push(0);
        k.extend_from_slice(customer);
        k.push(0);
        k.extend_from_slice(&start.to_be_bytes());
        k
    }

    /// A state as the version 1 layout wrote it: seen customers, bucket keys
    /// joined with `\0` (customer ids with `\0` included), no version key.
    fn v1_store(store: &dyn Store) {
        let mut b = Batch::default();
        for (i, customer) in ["acme", "acme\0x", "zzz\0", "\0"].iter().enumerate() {
            let seen = SeenCustomer {
                id: customer.to_string(),
                segment: "unassigned".into(),
                timezone: "UTC".into(),
                origin: Origin {
                    at: t0(),
                    event_id: format!("e{i}"),
                },
            };
            b.put(key(b'c', customer.as_bytes()), encode(&seen));
            let start = crate::model::time::floor_minute(t0());
            b.put(
                v1_bucket_key(b"api-availability", customer.as_bytes(), start),
                encode(&(i as i64 + 1, 1i64)),
            );
        }
        // Keys that cannot be read unambiguously.
        b.put(b"bgarbage".to_vec(), encode(&(5i64, 5i64)));
        b.put(
            v1_bucket_key(b"Bad Name", b"acme", 0),
            encode(&(5i64, 5i64)),
        );
        b.put(WATERMARK.to_vec(), t0().to_be_bytes().to_vec());
        store.write(b).unwrap();
    }

    #[test]
    fn a_version_1_state_is_migrated_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        for store in [
            Box::new(MemStore::default()) as Box<dyn Store>,
            Box::new(RocksStore::open(dir.path()).unwrap()),
        ] {
            v1_store(store.as_ref());
            let cfg = cfg();
            let prepared = prepare(store.as_ref()).unwrap();
            assert_eq!(prepared.found, None);
            assert_eq!(prepared.migrated, 4);
            assert_eq!(
                prepared.unreadable,
                vec![
                    "bBad Name\\x00acme\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00".to_string(),
                    "bgarbage".to_string()
                ]
            );
            assert_eq!(
                store.get(VERSION).unwrap(),
                Some(FORMAT_VERSION.to_be_bytes().to_vec())
            );
            // Every bucket key is in the new layout; the unreadable ones are kept aside.
            for (k, _) in store.scan(b"b").unwrap() {
                assert!(parse_bucket_key(&k).is_some(), "{}", k.escape_ascii());
            }
            assert_eq!(store.scan(b"z").unwrap().len(), 2);
            let e = restore(&cfg, store.as_ref()).unwrap();
            assert_eq!(totals(&e, "acme"), (1.0, 1.0));
            assert_eq!(totals(&e, "acme\0x"), (2.0, 1.0));
            assert_eq!(totals(&e, "zzz\0"), (3.0, 1.0));
            assert_eq!(totals(&e, "\0"), (4.0, 1.0));
            // Once migrated, nothing more to do.
            let again = prepare(store.as_ref()).unwrap();
            assert_eq!(again.found, Some(FORMAT_VERSION));
            assert_eq!(again.migrated, 0);
        }
    }

    #[test]
    fn an_empty_store_gets_the_current_version() {
        let store = MemStore::default();
        let prepared = prepare(&store).unwrap();
        assert_eq!((prepared.found, prepared.migrated), (None, 0));
        assert_eq!(
            store.get(VERSION).unwrap(),
            Some(FORMAT_VERSION.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn a_newer_version_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let mut b = Batch::default();
        b.put(VERSION.to_vec(), 7u32.to_be_bytes().to_vec());
        b.put(
            v1_bucket_key(b"api-availability", b"acme", 0),
            encode(&(1i64, 1i64)),
        );
        store.write(b).unwrap();
        let before = store.scan(b"").unwrap();
        let err = match restore(&cfg(), &store) {
            Ok(_) => panic!("a newer version was read"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err,
            format!(
                "state at {} has format version 7; this slastream reads up to {FORMAT_VERSION}",
                dir.path().display()
            )
        );
        assert_eq!(store.scan(b"").unwrap(), before);
        // A version value of the wrong size is corruption, not a version.
        let mem = MemStore::default();
        let mut b = Batch::default();
        b.put(VERSION.to_vec(), vec![2]);
        mem.write(b).unwrap();
        assert!(matches!(prepare(&mem), Err(StoreError::Corrupt { .. })));
    }
}
