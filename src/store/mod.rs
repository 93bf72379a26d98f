//! Durable state behind a small key-value trait: a RocksDB implementation and
//! an in-memory one share one conformance suite. A `Batch` is applied
//! atomically (one RocksDB `WriteBatch`), so the state an event batch produced
//! and the input position that produced it are persisted together.

mod rocks;
pub mod state;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use rocks::{RocksStore, Tuning};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store at {path}: {source}")]
    Rocks {
        path: String,
        source: rocksdb::Error,
    },
    #[error("state store: corrupt value under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// Written by a newer slastream (or not a slastream state): reading it
    /// with this layout would misread it.
    #[error(
        "state at {location} has format version {found}; this slastream reads up to {supported}"
    )]
    Version {
        location: String,
        found: u32,
        supported: u32,
    },
}

/// Puts and deletes applied all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Key ranges [from, to) deleted, before `ops` are applied.
    pub ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Raised by the store once the batch is durable, never before.
    pub durable: Option<DurableMark>,
}

/// A value a store raises a shared mark to (never lowers it) once the batch
/// carrying it is durable: what the engine may then forget from memory.
#[derive(Debug, Clone)]
pub struct DurableMark {
    pub mark: Arc<std::sync::atomic::AtomicI64>,
    pub value: i64,
}

impl DurableMark {
    /// The batch is durable.
    pub fn raise(&self) {
        self.mark
            .fetch_max(self.value, std::sync::atomic::Ordering::SeqCst);
    }
}

impl PartialEq for DurableMark {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.mark, &other.mark) && self.value == other.value
    }
}

impl Eq for DurableMark {}

impl Batch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }

    /// Deletes every key in [from, to) (before the puts and deletes of the
    /// batch apply).
    pub fn delete_range(&mut self, from: Vec<u8>, to: Vec<u8>) {
        self.ranges.push((from, to));
    }

    pub fn len(&self) -> usize {
        self.ops.len() + self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.ranges.is_empty()
    }
}

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What `Store::for_each` calls with each entry.
pub type EntryFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;
/// What `Store::for_each_from` calls with each entry: false stops.
pub type RangeFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;
/// `RangeFn` told which of several ranges the entry is in.
pub type RangesFn<'a> = dyn FnMut(usize, &[u8], &[u8]) -> Result<bool, StoreError> + 'a;

pub trait Store: Send + Sync {
    /// Applies the batch atomically and durably (the write survives kill -9).
    fn write(&self, batch: Batch) -> Result<(), StoreError>;
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Entries, StoreError>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `f` with every (key, value) whose key starts with `prefix`, in
    /// key order, one at a time: a restore streams the state instead of
    /// holding a copy of it. Stops at the first error `f` returns.
    fn for_each(&self, prefix: &[u8], f: &mut EntryFn<'_>) -> Result<(), StoreError> {
        for (k, v) in self.scan(prefix)? {
            f(&k, &v)?;
        }
        Ok(())
    }
    /// Calls `f` with every (key, value) whose key starts with `prefix` and
    /// is not below `from`, in key order, until `f` returns false.
    fn for_each_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        f: &mut RangeFn<'_>,
    ) -> Result<(), StoreError> {
        for (k, v) in self.scan(prefix)? {
            if k.as_slice() >= from && !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }
    /// `for_each_from` for each (prefix, from) of `ranges` in turn, `f`
    /// also told the range's index; one iterator serves them all (an
    /// iterator costs the store's range deletions once).
    fn for_each_ranges(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        f: &mut RangesFn<'_>,
    ) -> Result<(), StoreError> {
        for (i, (prefix, from)) in ranges.iter().enumerate() {
            self.for_each_from(prefix, from, &mut |k, v| f(i, k, v))?;
        }
        Ok(())
    }
    /// Reclaims space of deleted keys (compaction).
    fn compact(&self) -> Result<(), StoreError>;
    /// Where the state lives, for messages (the directory of a RocksDB store).
    fn location(&self) -> String {
        "memory".to_string()
    }
}

/// The in-memory store: the same contract without durability, for tests.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    map: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl Store for MemStore {
    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for (from, to) in &batch.ranges {
            if from < to {
                let gone: Vec<Vec<u8>> = m
                    .range(from.clone()..to.clone())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in gone {
                    m.remove(&k);
                }
            }
        }
        for (k, v) in batch.ops {
            match v {
                Some(v) => {
                    m.insert(k, v);
                }
                None => {
                    m.remove(&k);
                }
            }
        }
        if let Some(d) = batch.durable {
            d.raise();
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Ok(m.range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned())
    }

    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn for_each_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        f: &mut RangeFn<'_>,
    ) -> Result<(), StoreError> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let start = if from > prefix { from } else { prefix };
        for (k, v) in m.range(start.to_vec()..) {
            if !k.starts_with(prefix) || !f(k, v)? {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The contract every `Store` meets.
    use super::*;

    pub fn run(store: &dyn Store) {
        let mut b = Batch::default();
        b.put(b"a/1".to_vec(), b"x".to_vec());
        b.put(b"a/2".to_vec(), b"y".to_vec());
        b.put(b"b/1".to_vec(), b"z".to_vec());
        store.write(b).expect("write");
        assert_eq!(store.get(b"a/1").expect("get"), Some(b"x".to_vec()));
        let a = store.scan(b"a/").expect("scan");
        assert_eq!(
            a,
            vec![
                (b"a/1".to_vec(), b"x".to_vec()),
                (b"a/2".to_vec(), b"y".to_vec())
            ]
        );
        let mut b = Batch::default();
        b.delete(b"a/1".to_vec());
        b.put(b"a/2".to_vec(), b"w".to_vec());
        b.put(b"a/3".to_vec(), b"v".to_vec());
        store.write(b).expect("write");
        let a = store.scan(b"a/").expect("scan");
        assert_eq!(
            a,
            vec![
                (b"a/2".to_vec(), b"w".to_vec()),
                (b"a/3".to_vec(), b"v".to_vec())
            ]
        );
        assert_eq!(store.get(b"a/1").expect("get"), None);
        assert_eq!(store.scan(b"c/").expect("scan"), vec![]);
        // A range deleted, the keys around it kept, a put in the same
        // batch applied after it.
        let mut r = Batch::default();
        r.put(b"r/1".to_vec(), b"1".to_vec());
        r.put(b"r/2".to_vec(), b"2".to_vec());
        r.put(b"r/3".to_vec(), b"3".to_vec());
        store.write(r).expect("write");
        let mut r = Batch::default();
        r.delete_range(b"r/1".to_vec(), b"r/3".to_vec());
        r.put(b"r/2".to_vec(), b"again".to_vec());
        store.write(r).expect("write");
        assert_eq!(
            store.scan(b"r/").expect("scan"),
            vec![
                (b"r/2".to_vec(), b"again".to_vec()),
                (b"r/3".to_vec(), b"3".to_vec())
            ]
        );
        // Streamed: the same entries, from a key on, until told to stop.
        let mut seen = Vec::new();
        store
            .for_each(b"a/", &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .expect("for_each");
        assert_eq!(seen, store.scan(b"a/").expect("scan"));
        let mut from = Vec::new();
        store
            .for_each_from(b"a/", b"a/25", &mut |k, _| {
                from.push(k.to_vec());
                Ok(true)
            })
            .expect("for_each_from");
        assert_eq!(from, vec![b"a/3".to_vec()]);
        let mut first = Vec::new();
        store
            .for_each_from(b"", b"a/", &mut |k, _| {
                first.push(k.to_vec());
                Ok(first.len() < 2)
            })
            .expect("for_each_from");
        assert_eq!(first, vec![b"a/2".to_vec(), b"a/3".to_vec()]);
        // Later ops in one batch win over earlier ones on the same key.
        let mut b = Batch::default();
        b.put(b"k".to_vec(), b"1".to_vec());
        b.delete(b"k".to_vec());
        b.put(b"k2".to_vec(), b"1".to_vec());
        b.put(b"k2".to_vec(), b"2".to_vec());
        store.write(b).expect("write");
        assert_eq!(store.get(b"k").expect("get"), None);
        assert_eq!(store.get(b"k2").expect("get"), Some(b"2".to_vec()));
        store.compact().expect("compact");
        assert_eq!(store.get(b"k2").expect("get"), Some(b"2".to_vec()));
    }

    #[test]
    fn mem_store_conforms() {
        run(&MemStore::default());
    }

    #[test]
    fn rocks_store_conforms_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = RocksStore::open(dir.path()).expect("open");
            run(&s);
        }
        let s = RocksStore::open(dir.path()).expect("reopen");
        assert_eq!(s.get(b"a/3").expect("get"), Some(b"v".to_vec()));
    }
}
