//! The engine's state in the store: key layout, encoding of what changed into
//! one `Batch`, and restoring an engine from a store.
//!
//! Key layout (first byte = table). Every variable-length part of a key
//! made of several parts is length-prefixed (u32 BE), so any bytes in an id
//! round-trip; a key of one id holds it whole after the table byte.
//! - `v`                      format version of this layout (u32 BE)
//! - `w`                      watermark (i64 BE)
//! - `d` + block (u64 BE)    dedup: the ids accepted in one commit, packed: the
//!   newest `occurred_at` (i64 BE), then per id its hash (16 B) and
//!   `occurred_at` (i64 BE); deleted whole once every id in it is forgotten
//! - `c` + customer id        seen customer (not in the registry)
//! - `t` + len id + ticket id + n (u32 BE): the ticket's event number n, in
//!   arrival order (appended, never rewritten)
//! - `i` + len id + incident id + n (u32 BE): the same for an incident
//! - `b` + len slo + slo + len customer + customer + bucket start (i64 BE):
//!   per-customer counts of every SLO but `incident_availability` (for a
//!   clock SLO: its outcomes, at their evaluation instants)
//! - `T` + ticket id          a settled ticket: its events and what each clock
//!   SLO counts for it (`engine::settled::SettledTicket`), instead of its `t`
//!   keys; indexed by
//!   - `S` + len customer + customer + last event (ordered i64) + ticket id
//!   - `R` + last event (ordered i64) + ticket id
//!   - `B` + len slo + slo + breached_at (ordered i64) + len id + id +
//!     customer → stopped_at (i64 BE): each clock it stopped late
//! - `K` + len slo + slo + len customer + customer + level: clocks stopped late
//!   by settled tickets (u64 BE)
//! - `f`                      fingerprint of what stored clock outcomes were
//!   derived under (u64 BE, `Engine::fingerprint`)
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
//! Clock contributions of tickets and incidents in memory, and downtime, are
//! derived: `restore` recomputes them from the stored events. It takes what
//! they count from the stored series when the fingerprint says the
//! configuration and exclusions are those they were counted under, and
//! otherwise re-derives every clock, settled tickets included.
//!
//! Format versions: 1 is the layout without a `v` key, whose bucket keys
//! joined their parts with `\0` (so a customer id holding `\0` could not be
//! read back); 2 has length-prefixed bucket keys, a dedup key per event id
//! (`d` + hash → `occurred_at`) and a ticket's or incident's whole event list
//! under `t`/`i` + id; 3 stores dedup ids in blocks and
//! appends item events, and adds the `s` and `y` tables (a version 2 state
//! has none: its definitions were never recorded, so they are recorded at
//! the first start without an audit entry); 4, the current one, adds the
//! clock-SLO buckets, settled tickets and the fingerprint (a version 3 state
//! has no fingerprint, so its first start re-derives every clock and
//! writes them). `restore` writes the version into
//! an empty store, migrates a version 1 or 2 store in one atomic batch, and
//! refuses a version it does not know.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Batch, Store, StoreError};
use crate::config::Config;
use crate::engine::buckets::Counts;
use crate::engine::clock::{IncidentEv, TicketEv};
use crate::engine::customers::SeenCustomer;
use crate::engine::settled::SettledTicket;
use crate::engine::versions::{diff_definitions, DefinitionChange};
use crate::engine::{AuditEntry, Engine, ItemOp, Items, RuntimeExclusion};
use crate::model::slo::SloDef;
use crate::model::time::{Clock, Millis};

const WATERMARK: &[u8] = b"w";
const EXCLUSIONS: &[u8] = b"x";
const VERSION: &[u8] = b"v";
/// Bucket keys of version 1 that could not be read unambiguously, kept (key
/// without its `b`, value as it was) rather than dropped.
const UNREADABLE_V1: u8 = b'z';

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 4;

/// Table of the SLO definitions the state last ran with.
const DEFINITIONS: u8 = b's';
/// Table of the `slo_definition` audit entries.
const DEFINITION_AUDIT: u8 = b'y';
/// Ids in one stored dedup block at most, so a value stays a few MiB.
const DEDUP_BLOCK_IDS: usize = 1 << 16;
/// Bytes of one id in a dedup block: hash and `occurred_at`.
const DEDUP_ENTRY: usize = 24;

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

/// An instant as key bytes that sort in time order (sign bit flipped).
fn ordered(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered(b: &[u8]) -> Option<i64> {
    let b: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

const SETTLED: u8 = b'T';
const SETTLED_BY_CUSTOMER: u8 = b'S';
const SETTLED_BY_LAST: u8 = b'R';
const SETTLED_BREACH: u8 = b'B';
const SETTLED_BAD: u8 = b'K';
const FINGERPRINT: &[u8] = b"f";
const GROUPS: u8 = b'g';
const DAYS: u8 = b'D';
const HOT_FROM: u8 = b'H';
const LAYOUT: &[u8] = b"G";

fn group_key(slo: &str, segment: &str, zone: &str, start: Millis) -> Vec<u8> {
    let mut k = vec![GROUPS];
    push_part(&mut k, slo.as_bytes());
    push_part(&mut k, segment.as_bytes());
    push_part(&mut k, zone.as_bytes());
    k.extend_from_slice(&ordered(start));
    k
}

fn day_key(slo: &str, customer: &str, day: Millis) -> Vec<u8> {
    let mut k = vec![DAYS];
    push_part(&mut k, slo.as_bytes());
    push_part(&mut k, customer.as_bytes());
    k.extend_from_slice(&ordered(day));
    k
}

/// The parts and the instant of a `g` or `D` key.
fn parse_series_key(k: &[u8], parts: usize) -> Result<(Vec<&[u8]>, Millis), StoreError> {
    let mut rest = &k[1..];
    let mut out = Vec::with_capacity(parts);
    for _ in 0..parts {
        out.push(take_part(&mut rest).ok_or_else(|| corrupt(k, "bad series key"))?);
    }
    let at = from_ordered(rest).ok_or_else(|| corrupt(k, "bad series key"))?;
    Ok((out, at))
}

fn settled_key(id: &str) -> Vec<u8> {
    key(SETTLED, id.as_bytes())
}

fn settled_by_customer_prefix(customer: &str) -> Vec<u8> {
    let mut k = vec![SETTLED_BY_CUSTOMER];
    push_part(&mut k, customer.as_bytes());
    k
}

fn settled_by_customer_key(customer: &str, last: Millis, id: &str) -> Vec<u8> {
    let mut k = settled_by_customer_prefix(customer);
    k.extend_from_slice(&ordered(last));
    k.extend_from_slice(id.as_bytes());
    k
}

fn settled_by_last_key(last: Millis, id: &str) -> Vec<u8> {
    let mut k = vec![SETTLED_BY_LAST];
    k.extend_from_slice(&ordered(last));
    k.extend_from_slice(id.as_bytes());
    k
}

fn settled_breach_prefix(slo: &str) -> Vec<u8> {
    let mut k = vec![SETTLED_BREACH];
    push_part(&mut k, slo.as_bytes());
    k
}

fn settled_breach_key(slo: &str, breached_at: Millis, id: &str, customer: &str) -> Vec<u8> {
    let mut k = settled_breach_prefix(slo);
    k.extend_from_slice(&ordered(breached_at));
    push_part(&mut k, id.as_bytes());
    k.extend_from_slice(customer.as_bytes());
    k
}

fn settled_bad_key(slo: &str, customer: &str, level: u8) -> Vec<u8> {
    let mut k = vec![SETTLED_BAD];
    push_part(&mut k, slo.as_bytes());
    push_part(&mut k, customer.as_bytes());
    k.push(level);
    k
}

/// Every index entry of settled ticket `id` whose record is `rec`.
fn settled_index(id: &str, rec: &SettledTicket) -> Vec<(Vec<u8>, Vec<u8>)> {
    let last = rec.last_at();
    let mut out = vec![(settled_by_last_key(last, id), Vec::new())];
    for c in rec.customers() {
        out.push((settled_by_customer_key(c, last, id), Vec::new()));
    }
    for (slo, breached_at, customer, stopped_at) in rec.breaches() {
        out.push((
            settled_breach_key(slo, breached_at, id, customer),
            stopped_at.to_be_bytes().to_vec(),
        ));
    }
    out
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
    /// Rows of version 2 (or 1) dedup ids and ticket/incident lists rewritten
    /// in the current layout.
    pub rewritten: usize,
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
        Some(3) => {
            // Nothing to rewrite: the first restore re-derives the clocks.
            let mut b = Batch::default();
            b.put(VERSION.to_vec(), FORMAT_VERSION.to_be_bytes().to_vec());
            store.write(b)?;
            return Ok(Prepared {
                found,
                ..Prepared::default()
            });
        }
        Some(2) => {}
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
    let mut done = Prepared {
        found,
        ..Prepared::default()
    };
    if found.is_none() {
        migrate_v1_buckets(store, &mut b, &mut done)?;
    }
    done.rewritten = migrate_v2_rows(store, &mut b)?;
    b.put(VERSION.to_vec(), FORMAT_VERSION.to_be_bytes().to_vec());
    store.write(b)?;
    Ok(done)
}

/// Version 1 bucket keys (`\0`-joined) rewritten length-prefixed, into `b`.
fn migrate_v1_buckets(
    store: &dyn Store,
    b: &mut Batch,
    done: &mut Prepared,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// Version 2 rows rewritten into `b`: the per-id dedup keys packed into
/// blocks, each ticket's and incident's event list split into appended
/// events. Returns the rows rewritten.
fn migrate_v2_rows(store: &dyn Store, b: &mut Batch) -> Result<usize, StoreError> {
    let mut rows = 0;
    let mut ids = Vec::new();
    for (k, v) in store.scan(b"d")? {
        let h: [u8; 16] = k
            .get(1..)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| corrupt(&k, "version 2 dedup key of the wrong size"))?;
        ids.push((u128::from_be_bytes(h), i64_of(&k, &v)?));
        b.delete(k);
        rows += 1;
    }
    for (n, chunk) in ids.chunks(DEDUP_BLOCK_IDS).enumerate() {
        let (k, v) = dedup_block(n as u64, chunk);
        b.put(k, v);
    }
    for (table, items) in [(b't', store.scan(b"t")?), (b'i', store.scan(b"i")?)] {
        for (k, v) in items {
            let id = &k[1..];
            // Both event types encode a list the same way; the element type
            // only matters to decode each one, so re-encode element by
            // element with the right type.
            let events: Vec<Vec<u8>> = if table == b't' {
                let list: Vec<TicketEv> = decode(&k, &v)?;
                list.iter().map(encode).collect()
            } else {
                let list: Vec<IncidentEv> = decode(&k, &v)?;
                list.iter().map(encode).collect()
            };
            b.delete(k.clone());
            for (n, ev) in events.into_iter().enumerate() {
                b.put(item_key(table, id, n as u32), ev);
            }
            rows += 1;
        }
    }
    Ok(rows)
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.escape_ascii().to_string(),
        reason: reason.to_string(),
    }
}

/// The key of event number `n` of a ticket (`t`) or incident (`i`).
fn item_key(table: u8, id: &[u8], n: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 4 + id.len() + 4);
    k.push(table);
    push_part(&mut k, id);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// (id, n) of an item key; `None` unless it is exactly what `item_key` writes.
fn parse_item_key(k: &[u8]) -> Option<(&[u8], u32)> {
    let mut rest = k.get(1..)?;
    let id = take_part(&mut rest)?;
    let n: [u8; 4] = rest.try_into().ok()?;
    Some((id, u32::from_be_bytes(n)))
}

/// A stored dedup block: key and packed value.
fn dedup_block(n: u64, ids: &[(u128, i64)]) -> (Vec<u8>, Vec<u8>) {
    let max_at = ids.iter().map(|(_, at)| *at).max().unwrap_or(i64::MIN);
    let mut v = Vec::with_capacity(8 + ids.len() * DEDUP_ENTRY);
    v.extend_from_slice(&max_at.to_be_bytes());
    for (h, at) in ids {
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&at.to_be_bytes());
    }
    (key(b'd', &n.to_be_bytes()), v)
}

/// Event ids (hash, `occurred_at`).
type Ids = Vec<(u128, i64)>;

/// (block number, newest event time, ids) of a stored dedup block.
fn parse_dedup_block(k: &[u8], v: &[u8]) -> Result<(u64, i64, Ids), StoreError> {
    let n: [u8; 8] = k
        .get(1..)
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| corrupt(k, "dedup block key of the wrong size"))?;
    let (head, body) = v
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(k, "dedup block shorter than its header"))?;
    if body.len() % DEDUP_ENTRY != 0 {
        return Err(corrupt(k, "dedup block of a partial id"));
    }
    let ids = body
        .chunks_exact(DEDUP_ENTRY)
        .map(|e| {
            let (h, at) = e.split_at(16);
            let h: [u8; 16] = h.try_into().unwrap_or_default();
            let at: [u8; 8] = at.try_into().unwrap_or_default();
            (u128::from_be_bytes(h), i64::from_be_bytes(at))
        })
        .collect();
    Ok((u64::from_be_bytes(n), i64::from_be_bytes(*head), ids))
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

/// The probe buckets of the store, read back by the engine once they left
/// memory.
pub struct StoreHistory(pub Arc<dyn Store>);

impl crate::engine::History for StoreHistory {
    fn buckets(
        &self,
        slo: &str,
        customer: &str,
        from: Millis,
        to: Millis,
        f: &mut dyn FnMut(Millis, Counts),
    ) -> Result<(), String> {
        if from >= to {
            return Ok(());
        }
        let prefix = bucket_key(slo, customer, 0);
        let prefix = &prefix[..prefix.len() - 8];
        // Starts are big-endian two's complement: from 0 on they sort in
        // time order, negative ones (before 1970) after them.
        let seek = bucket_key(slo, customer, from.max(0));
        let mut each = |k: &[u8], v: &[u8]| -> Result<bool, StoreError> {
            let start: [u8; 8] = k[prefix.len()..]
                .try_into()
                .map_err(|_| corrupt(k, "bucket key of the wrong size"))?;
            let start = i64::from_be_bytes(start);
            if start >= 0 && start >= to && from >= 0 {
                return Ok(false);
            }
            if from <= start && start < to {
                let (good, bad): (i64, i64) = decode(k, v)?;
                f(start, Counts { good, bad });
            }
            Ok(true)
        };
        let r = if from >= 0 {
            self.0.for_each_from(prefix, &seek, &mut each)
        } else {
            self.0.for_each_from(prefix, prefix, &mut each)
        };
        r.map_err(|e| e.to_string())
    }

    fn settled_ticket(&self, id: &str) -> Result<Option<SettledTicket>, String> {
        let k = settled_key(id);
        match self.0.get(&k).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(v) => decode(&k, &v).map(Some).map_err(|e| e.to_string()),
        }
    }

    fn settled_tickets_of(&self, customer: &str, from: Millis) -> Result<Vec<String>, String> {
        let prefix = settled_by_customer_prefix(customer);
        let mut seek = prefix.clone();
        seek.extend_from_slice(&ordered(from));
        let mut out = Vec::new();
        self.0
            .for_each_from(&prefix, &seek, &mut |k, _| {
                let id = k.get(prefix.len() + 8..).unwrap_or_default();
                out.push(String::from_utf8_lossy(id).into_owned());
                Ok(true)
            })
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn settled_tickets_before(&self, before: Millis) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let end = ordered(before);
        self.0
            .for_each_from(&[SETTLED_BY_LAST], &[SETTLED_BY_LAST], &mut |k, _| {
                if k.get(1..9).is_none_or(|t| t >= &end[..]) {
                    return Ok(false);
                }
                out.push(String::from_utf8_lossy(&k[9..]).into_owned());
                Ok(true)
            })
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn settled_breaches(
        &self,
        slo: &str,
        from: Millis,
        to: Millis,
        f: &mut dyn FnMut(Millis, &str, &str, Millis) -> bool,
    ) -> Result<(), String> {
        let prefix = settled_breach_prefix(slo);
        let mut seek = prefix.clone();
        seek.extend_from_slice(&ordered(from));
        self.0
            .for_each_from(&prefix, &seek, &mut |k, v| {
                let mut rest = &k[prefix.len()..];
                let at = rest
                    .get(..8)
                    .and_then(from_ordered)
                    .ok_or_else(|| corrupt(k, "bad settled breach key"))?;
                if at >= to {
                    return Ok(false);
                }
                rest = &rest[8..];
                let id =
                    take_part(&mut rest).ok_or_else(|| corrupt(k, "bad settled breach key"))?;
                let stopped = i64_of(k, v)?;
                Ok(f(
                    at,
                    &String::from_utf8_lossy(id),
                    &String::from_utf8_lossy(rest),
                    stopped,
                ))
            })
            .map_err(|e| e.to_string())
    }
}

/// Encodes everything that changed in `engine` since the last call, then
/// lets the engine forget what an earlier durable commit holds for good.
pub fn dirty_batch(engine: &mut Engine) -> Batch {
    let b = changes_batch(engine);
    engine.free_retired();
    engine.forget_durable();
    b
}

fn changes_batch(engine: &mut Engine) -> Batch {
    engine.settle_pass();
    let dirty = engine.take_dirty();
    let mut b = Batch {
        durable: engine.durable_mark(),
        ..Batch::default()
    };
    // History past retention: the engine reads it as dropped already; the
    // store lets it go. Starts before 1970 sort after the others and are
    // left (no accepted event has one once a watermark is set).
    if let Some(before) = dirty.history_dropped_before.filter(|b| *b > 0) {
        let days_before = before - 2 * crate::model::time::DAY;
        for &(s, c) in &dirty.history_dropped {
            let slo = &engine.settings.slos[s as usize].name;
            let customer = &engine.customers.get(c).id;
            b.delete_range(
                bucket_key(slo, customer, 0),
                bucket_key(slo, customer, before),
            );
            b.delete_range(
                day_key(slo, customer, Millis::MIN),
                day_key(slo, customer, days_before),
            );
        }
    }
    if dirty.layout {
        for t in [GROUPS, DAYS, HOT_FROM] {
            b.delete_range(vec![t], vec![t + 1]);
        }
    }
    if dirty.watermark {
        if let Some(w) = engine.watermark {
            b.put(WATERMARK.to_vec(), w.to_be_bytes().to_vec());
        }
    }
    for n in engine.dedup.take_forgotten_blocks() {
        b.delete(key(b'd', &n.to_be_bytes()));
    }
    loop {
        // Packed straight into the value: 8 bytes of header, filled last.
        let mut v = vec![0u8; 8];
        let mut max_at = i64::MIN;
        let n = engine.dedup.take_unsaved(DEDUP_BLOCK_IDS, |h, at| {
            v.extend_from_slice(&h.to_be_bytes());
            v.extend_from_slice(&at.to_be_bytes());
            max_at = max_at.max(at);
        });
        if n == 0 {
            break;
        }
        v[..8].copy_from_slice(&max_at.to_be_bytes());
        let block = engine.dedup.add_block(max_at);
        b.put(key(b'd', &block.to_be_bytes()), v);
    }
    for c in dirty.customers {
        if let Some(seen) = engine.customers.seen(c) {
            b.put(key(b'c', seen.id.as_bytes()), encode(&seen));
        }
    }
    // In the order they happened: an item dropped then seen again in one
    // batch has its old events deleted before its new ones are written.
    for op in dirty.tickets {
        settled_op(&mut b, engine, &op);
        item_op(&mut b, b't', &engine.tickets, op);
    }
    for (s, c, level) in dirty.settled_bad {
        let slo = &engine.settings.slos[s as usize].name;
        let k = settled_bad_key(slo, &engine.customers.get(c).id, level);
        match engine.slos[s as usize].settled_bad.get(&(c, level)) {
            Some(n) => b.put(k, n.to_be_bytes().to_vec()),
            None => b.delete(k),
        }
    }
    if dirty.fingerprint {
        b.put(
            FINGERPRINT.to_vec(),
            engine.fingerprint().to_be_bytes().to_vec(),
        );
    }
    for op in dirty.incidents {
        item_op(&mut b, b'i', &engine.incidents, op);
    }
    for (s, g, start) in dirty.groups {
        let slo = &engine.settings.slos[s as usize].name;
        let group = engine.customers.group(g);
        let k = group_key(slo, &group.segment, &group.timezone, start);
        match engine.slos[s as usize]
            .by_group
            .get(g as usize)
            .and_then(|x| x.get(start))
        {
            Some(v) => b.put(k, encode(&(v.good, v.bad))),
            None => b.delete(k),
        }
    }
    for &c in &dirty.days_all {
        let id = &engine.customers.get(c).id;
        for (s, st) in engine.slos.iter().enumerate() {
            if !engine.is_cold_slo(s) {
                continue;
            }
            let slo = &engine.settings.slos[s].name;
            if !dirty.layout {
                // (A new layout's batch deletes the whole table first.)
                b.delete_range(day_key(slo, id, Millis::MIN), day_key(slo, id, Millis::MAX));
            }
            if let Some(days) = st.cold_days.get(c as usize) {
                for (day, v) in days.iter() {
                    b.put(day_key(slo, id, day), encode(&(v.good, v.bad)));
                }
            }
        }
    }
    for (s, c, day) in dirty.days {
        if dirty.days_all.contains(&c) {
            continue;
        }
        let slo = &engine.settings.slos[s as usize].name;
        let k = day_key(slo, &engine.customers.get(c).id, day);
        match engine.slos[s as usize]
            .cold_days
            .get(c as usize)
            .and_then(|x| x.get(day))
        {
            Some(v) => b.put(k, encode(&(v.good, v.bad))),
            None => b.delete(k),
        }
    }
    for c in dirty.hot_from {
        if let Some(from) = engine.hot_from_of(c) {
            let k = key(HOT_FROM, engine.customers.get(c).id.as_bytes());
            b.put(k, from.to_be_bytes().to_vec());
        }
    }
    if dirty.layout {
        b.put(LAYOUT.to_vec(), Vec::new());
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

fn item_op<E: Serialize>(b: &mut Batch, table: u8, items: &Items<E>, op: ItemOp<E>) {
    match op {
        ItemOp::Append { item, n, ev } => {
            let id = items.list[item as usize].id.as_bytes();
            b.put(item_key(table, id, n), encode(&ev));
        }
        ItemOp::Gone { item, stored } => {
            let id = items.list[item as usize].id.as_bytes();
            for n in 0..stored {
                b.delete(item_key(table, id, n));
            }
        }
        ItemOp::Settle { .. } | ItemOp::Revive { .. } => {}
    }
}

/// A ticket's change of form: events to one settled record, or back.
fn settled_op(b: &mut Batch, engine: &Engine, op: &ItemOp<TicketEv>) {
    match op {
        ItemOp::Settle { item, stored } => {
            let id = &engine.tickets.list[*item as usize].id;
            for n in 0..*stored {
                b.delete(item_key(b't', id.as_bytes(), n));
            }
            let rec = engine.settled_record(*item);
            for (k, v) in settled_index(id, &rec) {
                b.put(k, v);
            }
            b.put(settled_key(id), encode(&rec));
        }
        ItemOp::Revive { item, events, old } => {
            let id = &engine.tickets.list[*item as usize].id;
            b.delete(settled_key(id));
            for (k, _) in settled_index(id, old) {
                b.delete(k);
            }
            for (n, ev) in events.iter().enumerate() {
                b.put(item_key(b't', id.as_bytes(), n as u32), encode(ev));
            }
        }
        _ => {}
    }
}

/// Reads every item of `table` into `items`, in SPEC §3 order, with the
/// count of stored events each has.
fn restore_items<E>(
    store: &dyn Store,
    table: u8,
    items: &mut Items<E>,
    order: impl Fn(&E, &E) -> std::cmp::Ordering,
) -> Result<(), StoreError>
where
    E: for<'de> Deserialize<'de>,
{
    store.for_each(&[table], &mut |k, v| {
        let (id, n) = parse_item_key(k).ok_or_else(|| corrupt(k, "bad item key"))?;
        let ev: E = decode(k, v)?;
        let id = String::from_utf8_lossy(id);
        let item = items.get_or_insert(&id);
        let it = &mut items.list[item as usize];
        it.events.push(ev);
        it.stored = it.stored.max(n + 1);
        Ok(())
    })?;
    for it in &mut items.list {
        it.events.sort_by(&order);
    }
    Ok(())
}

/// Builds an engine for `cfg` from the state in `store`, recomputing every
/// derived number. Tracks changes from then on. The SLO definitions are
/// compared with those the state last ran with at the wall clock's now.
///
/// Runs [`prepare`] first: a store of an older layout is migrated, one of a
/// newer layout refused.
pub fn restore(cfg: &Config, store: &dyn Store) -> Result<Engine, StoreError> {
    restore_at(cfg, store, crate::model::time::WallClock.now(), None)
}

/// [`restore`] keeping in memory only the hot window of per-customer probe
/// buckets (`state.hot_window`); older ones are read from `store` when a
/// query needs them.
pub fn restore_shared(cfg: &Config, store: Arc<dyn Store>) -> Result<Engine, StoreError> {
    let history: Arc<dyn crate::engine::History> = Arc::new(StoreHistory(store.clone()));
    restore_at(
        cfg,
        store.as_ref(),
        crate::model::time::WallClock.now(),
        Some(history),
    )
}

/// [`restore`] with the start instant given, and where history behind the
/// hot window is read (all of it stays in memory without).
pub fn restore_at(
    cfg: &Config,
    store: &dyn Store,
    start: Millis,
    history: Option<Arc<dyn crate::engine::History>>,
) -> Result<Engine, StoreError> {
    restore_owned(cfg, store, start, history, None)
}

/// The engine of task `owner` = (task, tasks) from its own store (cluster
/// mode; see `Engine::for_task`), history behind the hot window read from
/// there.
pub fn restore_task(
    cfg: &Config,
    store: Arc<dyn Store>,
    owner: (u32, u32),
) -> Result<Engine, StoreError> {
    let history: Arc<dyn crate::engine::History> = Arc::new(StoreHistory(store.clone()));
    restore_owned(
        cfg,
        store.as_ref(),
        crate::model::time::WallClock.now(),
        Some(history),
        Some(owner),
    )
}

fn restore_owned(
    cfg: &Config,
    store: &dyn Store,
    start: Millis,
    history: Option<Arc<dyn crate::engine::History>>,
    owner: Option<(u32, u32)>,
) -> Result<Engine, StoreError> {
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
    let mut e = Engine::for_task(cfg, owner);
    for (k, v) in store.scan(b"c")? {
        let seen: SeenCustomer = decode(&k, &v)?;
        e.customers.restore(&seen);
    }
    if let Some(v) = store.get(WATERMARK)? {
        e.watermark = Some(i64_of(WATERMARK, &v)?);
    }
    if let Some(h) = history {
        e.keep_history_in(h, cfg.state.hot_window);
    }
    // Stored buckets behind retention are gone for the engine that wrote
    // them too (it had them in memory and dropped them).
    let retained_from = e
        .watermark
        .map_or(Millis::MIN, |w| crate::engine::horizons(w).1);
    let mut days: Option<(usize, u32, crate::engine::DayFolder)> = None;
    let mut hot_from: Option<(u32, Millis)> = None;
    // Forget at once what the engine that wrote the state had forgotten.
    e.prune_dedup();
    store.for_each(b"d", &mut |k, v| {
        let (n, max_at, ids) = parse_dedup_block(k, v)?;
        e.dedup.restore_block(n, max_at);
        for (h, at) in ids {
            e.dedup.restore(h, at);
        }
        Ok(())
    })?;
    if let Some(v) = store.get(EXCLUSIONS)? {
        let x: ExclusionState = decode(EXCLUSIONS, &v)?;
        e.next_exclusion_id = x.next_id;
        e.runtime_exclusions = x.runtime;
        e.audit = x.audit;
    }
    e.definition_changes = definition_audit(store)?;
    record_definitions(cfg, store, &mut e, start)?;
    // What clocks count is taken from the stored series when they were
    // counted under this configuration and these exclusions (and settled
    // tickets can be read back); otherwise every clock is derived anew.
    let stored_print = match store.get(FINGERPRINT)? {
        Some(v) => Some(i64_of(FINGERPRINT, &v)? as u64),
        None => None,
    };
    let mut any_settled = false;
    store.for_each_from(&[SETTLED], &[SETTLED], &mut |_, _| {
        any_settled = true;
        Ok(false)
    })?;
    let counted = stored_print == Some(e.fingerprint()) && (e.cold.is_some() || !any_settled);
    // Stored clock counts and settled counts a new derivation replaces.
    let mut stale: Vec<(u32, crate::engine::customers::CustomerIdx, Millis)> = Vec::new();
    let mut stale_bad = Vec::new();
    store.for_each(&[SETTLED_BAD], &mut |k, v| {
        let mut rest = &k[1..];
        let (Some(slo), Some(cust)) = (take_part(&mut rest), take_part(&mut rest)) else {
            return Err(corrupt(k, "bad settled count key"));
        };
        let level = *rest
            .first()
            .ok_or_else(|| corrupt(k, "bad settled count key"))?;
        let (Some(s), Some(c)) = (
            e.slo_index(&String::from_utf8_lossy(slo)),
            e.customers.lookup(&String::from_utf8_lossy(cust)),
        ) else {
            return Ok(());
        };
        if counted {
            let n = i64_of(k, v)? as u64;
            e.slos[s].settled_bad.insert((c, level), n);
        } else {
            stale_bad.push((s as u32, c, level));
        }
        Ok(())
    })?;
    // A state of this layout has its group series, day sums and each
    // customer's hot boundary stored: a restart reads those and the hot
    // part of each customer's buckets only.
    // (A state restored under another configuration is read whole: a
    // registry change can move customers between groups.)
    let layout = counted && store.get(LAYOUT)?.is_some();
    let cold_below = if layout { None } else { e.restored_below() };
    let mut folded: Folded = (Vec::new(), Vec::new());
    if layout {
        folded = restore_series(store, &mut e)?;
    } else {
        store.for_each(b"b", &mut |k, v| {
            let Some((slo, cust, start)) = parse_bucket_key(k) else {
                return Err(StoreError::Corrupt {
                    key: k.escape_ascii().to_string(),
                    reason: "bad bucket key".into(),
                });
            };
            let Some(s) = e.slo_index(&slo) else {
                return Ok(());
            };
            let Some(c) = e.customers.lookup(&cust) else {
                return Ok(());
            };
            if !counted && !e.is_probe_slo(s) {
                stale.push((s as u32, c, start));
                return Ok(());
            }
            let (good, bad): (i64, i64) = decode(k, v)?;
            let delta = Counts { good, bad };
            let g = e.customers.get(c).group;
            if hot_from.as_ref().is_none_or(|(x, _)| *x != c) {
                hot_from = Some((c, e.restored_hot_from(c)));
            }
            let cold = e.is_cold_slo(s)
                && cold_below.is_some()
                && hot_from.as_ref().is_some_and(|(_, b)| start < *b);
            if cold && start < retained_from {
                return Ok(());
            }
            if cold {
                // Keys come in (slo, customer, start) order: the day found for
                // the previous key is mostly this one's.
                if days.as_ref().is_none_or(|(x, y, _)| (*x, *y) != (s, c)) {
                    days = Some((
                        s,
                        c,
                        crate::engine::DayFolder::new(&e.customers.get(c).zone),
                    ));
                }
                if let Some((_, _, folder)) = days.as_mut() {
                    let day = folder.day_of(start);
                    e.slos[s].cold_days(c).add_bucket(day, delta);
                }
            }
            let st = &mut e.slos[s];
            if !cold {
                st.customer_series(c).add_bucket(start, delta);
            }
            st.group_series(g).add_bucket(start, delta);
            Ok(())
        })?;
    }
    restore_items(store, b't', &mut e.tickets, |a: &TicketEv, b: &TicketEv| {
        a.sort_key().cmp(&b.sort_key())
    })?;
    restore_items(
        store,
        b'i',
        &mut e.incidents,
        |a: &IncidentEv, b: &IncidentEv| a.sort_key().cmp(&b.sort_key()),
    )?;
    let mut revived = Vec::new();
    if counted {
        e.adopting = true;
        e.recompute_all();
        e.adopting = false;
    } else {
        store.for_each(&[SETTLED], &mut |k, v| {
            let rec: SettledTicket = decode(k, v)?;
            let id = String::from_utf8_lossy(&k[1..]);
            let item = e.tickets.get_or_insert(&id);
            let it = &mut e.tickets.list[item as usize];
            it.events = rec.events.clone();
            it.events.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            it.stored = it.events.len() as u32;
            revived.push((item, rec));
            Ok(())
        })?;
        e.recompute_all();
    }
    e.take_dirty();
    e.track_changes(true);
    if !counted {
        // Settled tickets are stored as events again (they settle anew),
        // and every stored clock count is rewritten.
        for (item, old) in revived {
            let events = e.tickets.list[item as usize].events.clone();
            e.dirty.tickets.push(ItemOp::Revive {
                item,
                events,
                old: Box::new(old),
            });
        }
        e.dirty.buckets.extend(stale);
        for (s, st) in e.slos.iter().enumerate() {
            if e.is_probe_slo(s) {
                continue;
            }
            for (c, series) in st.by_customer.iter().enumerate() {
                for (k, _) in series.iter() {
                    e.dirty.buckets.insert((s as u32, c as u32, k));
                }
            }
        }
        e.dirty.settled_bad.extend(stale_bad);
        e.dirty.fingerprint = true;
    }
    e.dirty.days.extend(folded.0);
    e.dirty.hot_from.extend(folded.1);
    if !layout {
        // Written whole (what was stored of them goes first); kept as they
        // change from then on.
        e.dirty.layout = true;
        for (s, st) in e.slos.iter().enumerate() {
            for (g, series) in st.by_group.iter().enumerate() {
                for (k, _) in series.iter() {
                    e.dirty.groups.insert((s as u32, g as u32, k));
                }
            }
        }
        for (c, _) in e.customers.iter() {
            if e.hot_from_of(c).is_some() {
                e.dirty.days_all.insert(c);
                e.dirty.hot_from.insert(c);
            }
        }
    }
    // Folded and dropped as the engine that wrote the state had them (the
    // changes go with the next commit).
    e.maybe_compact();
    Ok(e)
}

/// What `restore_series` folded into day sums beyond what was stored:
/// (slo, customer, day) of the sums changed, and the customers whose hot
/// boundary moved.
type Folded = (
    Vec<(u32, crate::engine::customers::CustomerIdx, Millis)>,
    Vec<crate::engine::customers::CustomerIdx>,
);

/// Reads the series of a state that stores them: group series, day sums
/// and each customer's hot boundary, the per-customer probe buckets from
/// that boundary on (those behind the hot window now go to the day sums)
/// and the clock-SLO buckets whole.
fn restore_series(store: &dyn Store, e: &mut Engine) -> Result<Folded, StoreError> {
    use std::collections::HashMap;
    let cold = e.cold.is_some();
    let mut marks = HashMap::new();
    if cold {
        store.for_each(&[HOT_FROM], &mut |k, v| {
            if let Some(c) = e.customers.lookup(&String::from_utf8_lossy(&k[1..])) {
                marks.insert(c, i64_of(k, v)?);
            }
            Ok(())
        })?;
        store.for_each(&[DAYS], &mut |k, v| {
            let (parts, day) = parse_series_key(k, 2)?;
            let s = e.slo_index(&String::from_utf8_lossy(parts[0]));
            let c = e.customers.lookup(&String::from_utf8_lossy(parts[1]));
            if let (Some(s), Some(c)) = (s, c) {
                if e.is_cold_slo(s) {
                    let (good, bad): (i64, i64) = decode(k, v)?;
                    e.slos[s].cold_days(c).add_bucket(day, Counts { good, bad });
                }
            }
            Ok(())
        })?;
    }
    store.for_each(&[GROUPS], &mut |k, v| {
        let (parts, start) = parse_series_key(k, 3)?;
        let s = e.slo_index(&String::from_utf8_lossy(parts[0]));
        let g = e.customers.find_group(
            &String::from_utf8_lossy(parts[1]),
            &String::from_utf8_lossy(parts[2]),
        );
        let (Some(s), Some(g)) = (s, g) else {
            return Ok(());
        };
        let (good, bad): (i64, i64) = decode(k, v)?;
        e.slos[s]
            .group_series(g)
            .add_bucket(start, Counts { good, bad });
        Ok(())
    })?;
    let customers: Vec<(crate::engine::customers::CustomerIdx, String)> = e
        .customers
        .iter()
        .map(|(c, x)| (c, x.id.to_string()))
        .collect();
    // Where each customer's memory starts now: the stored boundary, or the
    // local midnight before the hot window if that is later (the process
    // that wrote the state may have stopped before storing its last fold).
    let now_below = e.restored_below();
    let retained_from = e
        .watermark
        .map_or(Millis::MIN, |w| crate::engine::horizons(w).1);
    let mut hot_from = HashMap::new();
    let mut folded: Folded = (Vec::new(), Vec::new());
    for (c, _) in &customers {
        let mark = marks.get(c).copied().unwrap_or(Millis::MIN);
        let zone = &e.customers.get(*c).zone;
        let from = match now_below {
            Some(b) => mark.max(crate::engine::day_start(zone, b)),
            None => mark,
        };
        if from != mark {
            folded.1.push(*c);
        }
        hot_from.insert(*c, from);
    }
    for s in 0..e.settings.slos.len() {
        let name = e.settings.slos[s].name.clone();
        if e.is_probe_slo(s) {
            // Each customer's buckets from its stored boundary on: a seek
            // each.
            // (Starts are big-endian two's complement: from 0 on they sort
            // in time order; one before 1970 makes a range start at the
            // series' first key, and each key is checked.)
            let ranges: Vec<(Vec<u8>, Vec<u8>)> = customers
                .iter()
                .map(|(c, id)| {
                    let mark = marks.get(c).copied().unwrap_or(Millis::MIN);
                    let full = bucket_key(&name, id, mark.max(0));
                    let prefix = full[..full.len() - 8].to_vec();
                    let from = if mark >= 0 { full } else { prefix.clone() };
                    (prefix, from)
                })
                .collect();
            let mut folder: Option<(usize, crate::engine::DayFolder)> = None;
            store.for_each_ranges(&ranges, &mut |i, k, v| {
                let (c, _) = &customers[i];
                let mark = marks.get(c).copied().unwrap_or(Millis::MIN);
                let start: [u8; 8] = k[ranges[i].0.len()..]
                    .try_into()
                    .map_err(|_| corrupt(k, "bucket key of the wrong size"))?;
                let start = i64::from_be_bytes(start);
                if start < mark {
                    return Ok(true);
                }
                let (good, bad): (i64, i64) = decode(k, v)?;
                let v = Counts { good, bad };
                let from = hot_from.get(c).copied().unwrap_or(mark);
                let st = &mut e.slos[s];
                if start >= from || !cold {
                    st.customer_series(*c).add_bucket(start, v);
                } else if start >= retained_from {
                    if folder.as_ref().is_none_or(|(x, _)| *x != i) {
                        folder =
                            Some((i, crate::engine::DayFolder::new(&e.customers.get(*c).zone)));
                    }
                    if let Some((_, days)) = folder.as_mut() {
                        let day = days.day_of(start);
                        st.cold_days(*c).add_bucket(day, v);
                        folded.0.push((s as u32, *c, day));
                    }
                }
                Ok(true)
            })?;
            continue;
        }
        // A clock SLO's buckets whole (one per outcome): one scan.
        let mut prefix = vec![b'b'];
        push_part(&mut prefix, name.as_bytes());
        store.for_each(&prefix, &mut |k, v| {
            let Some((_, cust, start)) = parse_bucket_key(k) else {
                return Err(corrupt(k, "bad bucket key"));
            };
            if let Some(c) = e.customers.lookup(&cust) {
                let (good, bad): (i64, i64) = decode(k, v)?;
                e.slos[s]
                    .customer_series(c)
                    .add_bucket(start, Counts { good, bad });
            }
            Ok(())
        })?;
    }
    if cold {
        e.restore_hot_from(&hot_from);
    }
    Ok(folded)
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

    fn ticket_ev(at: i64, action: crate::model::event::TicketAction, id: &str) -> TicketEv {
        TicketEv {
            at,
            action,
            event_id: id.to_string(),
            priority: None,
            customer: Some("acme".into()),
            service: None,
            region: None,
        }
    }

    #[test]
    fn a_version_2_state_is_rewritten_in_blocks_and_appended_events() {
        use crate::model::event::TicketAction;
        let dir = tempfile::tempdir().unwrap();
        for store in [
            Box::new(MemStore::default()) as Box<dyn Store>,
            Box::new(RocksStore::open(dir.path()).unwrap()),
        ] {
            let mut b = Batch::default();
            b.put(VERSION.to_vec(), 2u32.to_be_bytes().to_vec());
            b.put(WATERMARK.to_vec(), t0().to_be_bytes().to_vec());
            for i in 0..5u128 {
                b.put(
                    key(b'd', &i.to_be_bytes()),
                    (t0() - i as i64).to_be_bytes().to_vec(),
                );
            }
            let events = vec![
                ticket_ev(t0() - MINUTE, TicketAction::Opened, "e1"),
                ticket_ev(t0(), TicketAction::Responded, "e2"),
            ];
            b.put(key(b't', b"T-1"), encode(&events));
            store.write(b).unwrap();
            let prepared = prepare(store.as_ref()).unwrap();
            assert_eq!(prepared.found, Some(2));
            assert_eq!(prepared.rewritten, 6);
            assert_eq!(store.scan(b"d").unwrap().len(), 1, "one block");
            assert_eq!(store.scan(b"t").unwrap().len(), 2, "one key per event");
            let e = restore(&cfg(), store.as_ref()).unwrap();
            for i in 0..5u128 {
                assert!(e.dedup.contains(i), "{i}");
            }
            let t = e.tickets.index["T-1"];
            assert_eq!(e.tickets.list[t as usize].events, events);
            assert_eq!(e.tickets.list[t as usize].stored, 2);
        }
    }

    #[test]
    fn appended_and_dropped_items_and_dedup_blocks_restore_exactly() {
        use crate::model::event::TicketAction;
        let store = MemStore::default();
        let cfg = cfg();
        let mut e = restore(&cfg, &store).unwrap();
        // Two commits appending to one ticket, then retention drops it and a
        // new event of it comes in the same commit.
        let id = e.tickets.get_or_insert("T-1");
        for (n, ev) in [
            ticket_ev(t0(), TicketAction::Opened, "a"),
            ticket_ev(t0() + MINUTE, TicketAction::Responded, "b"),
        ]
        .into_iter()
        .enumerate()
        {
            e.tickets.list[id as usize].events.push(ev.clone());
            e.tickets.list[id as usize].stored += 1;
            e.dirty.tickets.push(ItemOp::Append {
                item: id,
                n: n as u32,
                ev,
            });
            store.write(dirty_batch(&mut e)).unwrap();
        }
        let back = restore(&cfg, &store).unwrap();
        assert_eq!(back.tickets.list[0].events.len(), 2);
        let late = ticket_ev(t0() + 2 * MINUTE, TicketAction::Opened, "c");
        e.dirty.tickets.push(ItemOp::Gone {
            item: id,
            stored: 2,
        });
        e.dirty.tickets.push(ItemOp::Append {
            item: id,
            n: 0,
            ev: late.clone(),
        });
        store.write(dirty_batch(&mut e)).unwrap();
        let back = restore(&cfg, &store).unwrap();
        assert_eq!(back.tickets.list[0].events, vec![late]);
        assert_eq!(back.tickets.list[0].stored, 1);

        // Dedup: one block per commit, dropped once the watermark leaves it
        // twice `max_lateness` behind.
        let mut e = restore(&cfg, &store).unwrap();
        for i in 0..3 {
            assert_eq!(
                e.apply(&probe(&format!("p{i}"), "acme", t0() + i, true), t0() + 10),
                crate::engine::Applied::Accepted
            );
        }
        store.write(dirty_batch(&mut e)).unwrap();
        assert_eq!(store.scan(b"d").unwrap().len(), 1);
        let back = restore(&cfg, &store).unwrap();
        assert_eq!(back.dedup.len(), 3);
        let later = t0() + 15 * crate::model::time::DAY;
        assert_eq!(
            e.apply(&probe("q", "acme", later, true), later),
            crate::engine::Applied::Accepted
        );
        store.write(dirty_batch(&mut e)).unwrap();
        assert_eq!(store.scan(b"d").unwrap().len(), 1, "the old block is gone");
        let back = restore(&cfg, &store).unwrap();
        assert_eq!(back.dedup.len(), e.dedup.len());
        assert!(back.dedup.contains(crate::engine::dedup::hash_id("q")));
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

    #[test]
    fn history_past_retention_leaves_the_store_and_answers_stay() {
        use crate::engine::{horizons, Applied, COARSE_RETENTION};
        use crate::model::time::DAY;
        let store = MemStore::default();
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        let cfg = cfg();
        let mut e = restore(&cfg, &store).unwrap();
        e.keep_history_unchecked(Arc::new(StoreHistory(shared)), 0);
        let slo = e.slo_index("api-availability").unwrap();
        let now = t0() + COARSE_RETENTION + 3 * DAY;
        // A probe a day for 3 days, then one past retention for them.
        let mut ids = Vec::new();
        for d in 0..3 {
            ids.push(format!("p{d}"));
        }
        for (d, id) in ids.iter().enumerate() {
            let at = t0() + d as i64 * DAY;
            assert_eq!(
                e.apply(&probe(id, "acme", at, d != 1), now),
                Applied::Accepted
            );
            e.maybe_compact();
            store.write(dirty_batch(&mut e)).unwrap();
        }
        let acme = e.customers.lookup("acme").unwrap();
        let before = e.numbers(slo, &Scope::Customer(acme), t0(), t0() + 3 * DAY, now);
        assert_eq!((before.good, before.bad), (2.0, 1.0));
        assert_eq!(store.scan(b"b").unwrap().len(), 3);
        let late = t0() + 2 * DAY + COARSE_RETENTION + DAY;
        assert_eq!(
            e.apply(&probe("q", "acme", late, true), now),
            Applied::Accepted
        );
        for _ in 0..3 {
            e.maybe_compact();
            store.write(dirty_batch(&mut e)).unwrap();
        }
        let drop = horizons(late).1;
        assert!(drop > t0() + 2 * DAY, "all three are past retention");
        let left = store.scan(b"b").unwrap();
        assert_eq!(left.len(), 1, "only the last probe's bucket is stored");
        let after = e.numbers(slo, &Scope::Customer(acme), t0(), t0() + 3 * DAY, now);
        assert_eq!((after.good, after.bad), (0.0, 0.0), "dropped as in memory");
        let back = restore(&cfg, &store).unwrap();
        let again = back.numbers(slo, &Scope::Customer(acme), late - DAY, late + DAY, now);
        assert_eq!((again.good, again.bad), (1.0, 0.0));
    }
}

#[cfg(test)]
mod layout_tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::engine::Applied;
    use crate::model::event::decode;
    use crate::model::time::{format_rfc3339, parse_rfc3339, HOUR, MINUTE};
    use crate::store::MemStore;

    const CONFIG: &str = r#"
[ingest]
max_lateness = "1h"

[[slos]]
name = "api-availability"
indicator = "probe_availability"
objective = 0.99
window = "30d"
"#;

    fn start(cfg: &Config, store: &MemStore) -> Engine {
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        restore_at(
            cfg,
            store,
            parse_rfc3339("2030-01-01T00:00:00Z").unwrap(),
            Some(Arc::new(StoreHistory(shared))),
        )
        .unwrap()
    }

    fn feed(e: &mut Engine, store: &MemStore, from: Millis, hours: i64, n: &mut usize) {
        for m in 0..hours * 6 {
            for c in ["a", "b", "c"] {
                *n += 1;
                let at = format_rfc3339(from + m * 10 * MINUTE);
                let line = format!(
                    r#"{{"event_id":"p{n}","kind":"probe","occurred_at":"{at}","customer_id":"{c}","timezone":"Europe/Berlin","probe_id":"x","service":"api","success":true,"latency_ms":1}}"#
                );
                let ev = decode(line.as_bytes()).unwrap();
                assert_eq!(
                    e.apply(&ev, parse_rfc3339("2030-01-01T00:00:00Z").unwrap()),
                    Applied::Accepted
                );
            }
            e.maybe_compact();
            store.write(dirty_batch(e)).unwrap();
        }
        store.write(dirty_batch(e)).unwrap();
        store.write(dirty_batch(e)).unwrap();
    }

    #[test]
    fn history_leaves_memory_after_a_restart_too() {
        let cfg = crate::config::parse(CONFIG, &[], Path::new(".")).unwrap();
        let store = MemStore::default();
        let t0 = parse_rfc3339("2026-11-01T00:00:00Z").unwrap();
        let mut n = 0;
        let mut e = start(&cfg, &store);
        feed(&mut e, &store, t0, 30, &mut n);
        let first = e.footprint().buckets;
        drop(e);
        let mut e = start(&cfg, &store);
        assert_eq!(e.footprint().buckets, first, "restored as it was");
        feed(&mut e, &store, t0 + 30 * HOUR, 48, &mut n);
        let second = e.footprint().buckets;
        assert!(second < first * 2, "{first} then {second}");
    }
}

#[cfg(test)]
mod task_tests {
    //! Task engines (cluster mode) each on its own RocksDB store, committing
    //! as they go and restarted from it, answer together what one engine
    //! fed everything answers.

    use std::sync::Arc;

    use super::*;
    use crate::engine::query::{Partial, Scope};
    use crate::generate::{GenSettings, Generator};
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, DAY, HOUR};
    use crate::store::RocksStore;

    #[test]
    fn task_stores_restart_and_answer_together() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slastream.toml");
        let mut cfg = crate::config::load(&path).expect("shipped config");
        // A short window: history and settled tickets leave memory.
        cfg.ingest.max_lateness = HOUR;
        let dir = tempfile::tempdir().expect("tempdir");
        let tasks = 3u32;
        let open = |p: u32| -> Arc<dyn Store> {
            Arc::new(RocksStore::open(&dir.path().join(format!("task-{p}"))).expect("open"))
        };
        let mut one = Engine::new(&cfg);
        let mut parts: Vec<(Engine, Arc<dyn Store>)> = (0..tasks)
            .map(|p| {
                let store = open(p);
                (
                    restore_task(&cfg, store.clone(), (p, tasks)).expect("restore"),
                    store,
                )
            })
            .collect();
        let start = parse_rfc3339("2026-11-01T00:00:00Z").expect("instant");
        let wall = Millis::MAX / 2;
        let events = Generator::new(GenSettings::from_config(&cfg, 5, 40, 1.0, start, 3 * DAY));
        for (n, g) in events.enumerate() {
            let ev = decode(g.json.as_bytes()).expect("generated events decode");
            one.apply(&ev, wall);
            for (e, store) in &mut parts {
                e.apply(&ev, wall);
                if n % 500 == 499 {
                    e.maybe_compact();
                    store.write(dirty_batch(e)).expect("write");
                }
            }
        }
        for (e, store) in &mut parts {
            store.write(dirty_batch(e)).expect("write");
        }
        // Restarted, each from its own store.
        drop(parts);
        let parts: Vec<Engine> = (0..tasks)
            .map(|p| restore_task(&cfg, open(p), (p, tasks)).expect("restore"))
            .collect();
        let now = one.watermark().expect("events") + HOUR;
        let all = Scope::Filter {
            segment: None,
            timezone: None,
        };
        let mut compared = 0;
        for s in 0..cfg.slos.len() {
            for (from, to) in [
                (start, start + 3 * DAY),
                (now - DAY, now),
                (start + DAY, start + 2 * DAY),
            ] {
                let want = one.partial(s, &all, from, to, now);
                let mut sum = Partial::default();
                for e in &parts {
                    sum.add(e.partial(s, &all, from, to, now));
                }
                assert!(
                    (sum.total - want.total).abs() < 1e-6 && (sum.good - want.good).abs() < 1e-6,
                    "slo {s} {from}..{to}: {sum:?} / {want:?}"
                );
                compared += usize::from(want.total > 0.0);
            }
            let mut want: Vec<_> = one
                .breaches(Some(s), None, now)
                .into_iter()
                .map(|b| (b.id, b.customer, b.breached_at, b.stopped_at))
                .collect();
            let mut got: Vec<_> = parts
                .iter()
                .flat_map(|e| e.breaches(Some(s), None, now))
                .map(|b| (b.id, b.customer, b.breached_at, b.stopped_at))
                .collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "breaches of slo {s}");
        }
        assert!(compared > 10, "the workload fills the windows ({compared})");
        let held: usize = parts.iter().map(|e| e.footprint().items as usize).sum();
        assert!(
            held < tasks as usize * one.footprint().items as usize,
            "settled tickets left the tasks' memory"
        );
    }
}
