//! The engine's state in the store: key layout, encoding of what changed into
//! one `Batch`, and restoring an engine from a store.
//!
//! Key layout (first byte = table):
//! - `w`                      watermark (i64 BE)
//! - `d` + hash (16 B)        dedup: `occurred_at` (i64 BE) of a processed event id
//! - `c` + customer id        seen customer (not in the registry)
//! - `t` + ticket id          the ticket's events
//! - `i` + incident id        the incident's events
//! - `b` + slo \0 customer \0 bucket start (i64 BE)   probe-SLO counts
//! - `x`                      run-time exclusions and audit log
//! - `o` + source             input position: `kafka/<topic>/<partition>` → next offset (i64 BE)
//! - `a` + fingerprint         alert episode (labels, status, targets owed)
//! - `q` + seq (u64 BE)       dead-letter outbox: written with the batch that
//!   produced it, deleted once the broker acknowledged it
//!
//! Clock contributions and downtime are derived: `restore` recomputes them
//! from the stored events, so they can never disagree with them.

use serde::{Deserialize, Serialize};

use super::{Batch, Store, StoreError};
use crate::config::Config;
use crate::engine::buckets::Counts;
use crate::engine::clock::{IncidentEv, TicketEv};
use crate::engine::customers::SeenCustomer;
use crate::engine::{AuditEntry, Engine, RuntimeExclusion};

const WATERMARK: &[u8] = b"w";
const EXCLUSIONS: &[u8] = b"x";

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

fn bucket_key(slo: &str, customer: &str, start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + slo.len() + customer.len() + 8);
    k.push(b'b');
    k.extend_from_slice(slo.as_bytes());
    k.push(0);
    k.extend_from_slice(customer.as_bytes());
    k.push(0);
    k.extend_from_slice(&start.to_be_bytes());
    k
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

/// Builds an engine for `cfg` from the state in `store`, recomputing every
/// derived number. Tracks changes from then on.
pub fn restore(cfg: &Config, store: &dyn Store) -> Result<Engine, StoreError> {
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
    for (k, v) in store.scan(b"b")? {
        let rest = &k[1..];
        let mut parts = rest.splitn(3, |b| *b == 0);
        let (Some(slo), Some(cust), Some(start)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "bad bucket key".into(),
            });
        };
        let slo = String::from_utf8_lossy(slo);
        let cust = String::from_utf8_lossy(cust);
        let Some(s) = e.slo_index(&slo) else { continue };
        let Some(c) = e.customers.lookup(&cust) else {
            continue;
        };
        let start = i64_of(&k, start)?;
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
