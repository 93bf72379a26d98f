//! Duplicate detection by `event_id` (SPEC §3): a set of 128-bit hashes of the
//! ids seen, each with its event's `occurred_at`, so that ids far behind the
//! watermark (whose events would be late anyway) can be forgotten.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::model::time::Millis;

pub type IdHash = u128;

pub fn hash_id(event_id: &str) -> IdHash {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

/// The keys are already uniformly distributed hashes: use their low bits.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

#[derive(Debug, Clone, Default)]
pub struct Dedup {
    seen: HashMap<IdHash, Millis, BuildHasherDefault<PassThrough>>,
    pruned_below: Millis,
}

impl Dedup {
    pub fn contains(&self, h: IdHash) -> bool {
        self.seen.contains_key(&h)
    }

    pub fn insert(&mut self, h: IdHash, at: Millis) {
        self.seen.insert(h, at);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IdHash, Millis)> + '_ {
        self.seen.iter().map(|(h, t)| (*h, *t))
    }

    /// Forgets ids whose events are older than `cutoff`; returns them so the
    /// store can delete them too. Cheap when called often: it only scans when
    /// the cutoff moved by at least an hour since the last scan.
    pub fn prune(&mut self, cutoff: Millis) -> Vec<(IdHash, Millis)> {
        if cutoff < self.pruned_below + crate::model::time::HOUR {
            return Vec::new();
        }
        self.pruned_below = cutoff;
        let mut gone = Vec::new();
        self.seen.retain(|h, t| {
            let keep = *t >= cutoff;
            if !keep {
                gone.push((*h, *t));
            }
            keep
        });
        gone
    }
}
