//! Duplicate detection by `event_id` (SPEC §3): a set of hashes of the ids
//! seen, each with the hour of its event's `occurred_at`, so that ids far
//! behind the watermark (whose events would be late anyway) can be
//! forgotten.
//!
//! Memory is what bounds this set (it holds every id of two lateness
//! windows), so an entry is 16 bytes: 96 bits of the id's 128-bit hash (a
//! false duplicate among 10^8 live ids has a probability below 10^-12) and
//! the hour. The set is split in `SHARDS` tables so that growing one
//! briefly holds 1/`SHARDS` of the set twice, not all of it.
//!
//! Forgetting is lazy: `prune` only moves the first kept hour, and an entry
//! of an earlier hour counts as absent at once; the entries themselves are
//! swept out in one pass once they make up a quarter of the set, so the
//! sweep costs O(1) per id. Which ids are remembered is a function of the
//! accepted events and the last prune cutoff alone (every id whose hour is
//! not below the cutoff's hour), so a state restored from the store answers
//! exactly as the state that wrote it.
//!
//! The store keeps the ids in packed blocks, one per commit (see
//! `store::state`); `Dedup` remembers each stored block's newest event time
//! so a block is deleted whole once every id in it is forgotten.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashTable;

use crate::model::time::{Millis, HOUR};

pub type IdHash = u128;

pub fn hash_id(event_id: &str) -> IdHash {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

/// Tables the set is split in (by bits of the hash the tables do not use
/// for their own placement).
const SHARDS: usize = 16;

/// One remembered id: bits 95..0 of its hash and its event hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    hi: u64,
    lo: u32,
    hour: i32,
}

impl Slot {
    fn same_id(&self, k: (u64, u32)) -> bool {
        self.hi == k.0 && self.lo == k.1
    }
}

/// The kept bits of a hash: the low word places the entry (its low bits
/// pick the bucket, its top bits the control byte, bits 40..44 the shard).
fn key(h: IdHash) -> (u64, u32) {
    (h as u64, (h >> 64) as u32)
}

fn shard_of(hi: u64) -> usize {
    ((hi >> 40) as usize) % SHARDS
}

/// Hours far outside any event time (before 1800 or after 2200) clamp:
/// those events fail the lateness or future-skew checks anyway.
fn hour_of(t: Millis) -> i32 {
    t.div_euclid(HOUR)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[derive(Debug, Clone)]
pub struct Dedup {
    shards: Vec<HashTable<Slot>>,
    /// Remembered ids per hour (those of forgotten hours until the sweep),
    /// except the `recent` ones.
    per_hour: BTreeMap<i32, u64>,
    /// Ids of one hour not counted in `per_hour` yet: consecutive ids
    /// mostly share their hour, so counting them costs no map lookup.
    recent: (i32, u64),
    /// Entries in the tables (forgotten ones not swept yet included).
    entries: u64,
    /// Ids of hours below this one are forgotten.
    kept_from_hour: i32,
    /// Ids accepted and not yet handed to `take_unsaved`, with their event
    /// times (forgotten ones included).
    unsaved: Vec<(IdHash, Millis)>,
    /// Stored blocks: (newest event time in it, block number).
    blocks: BTreeSet<(Millis, u64)>,
    next_block: u64,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            per_hour: BTreeMap::new(),
            recent: (0, 0),
            entries: 0,
            kept_from_hour: i32::MIN,
            unsaved: Vec::new(),
            blocks: BTreeSet::new(),
            next_block: 0,
        }
    }
}

impl Dedup {
    pub fn contains(&self, h: IdHash) -> bool {
        let k = key(h);
        self.shards[shard_of(k.0)]
            .find(k.0, |s| s.same_id(k))
            .is_some_and(|s| s.hour >= self.kept_from_hour)
    }

    /// Remembers `h`, unless its hour is already forgotten (such an event is
    /// late; only a restore can offer one).
    pub fn insert(&mut self, h: IdHash, at: Millis) {
        let hour = hour_of(at);
        if hour < self.kept_from_hour {
            return;
        }
        let k = key(h);
        let table = &mut self.shards[shard_of(k.0)];
        match table.find_mut(k.0, |s| s.same_id(k)) {
            Some(s) if s.hour >= self.kept_from_hour => return,
            // A forgotten entry not swept yet: it becomes this id's again.
            Some(s) => {
                let old = std::mem::replace(&mut s.hour, hour);
                self.settle_recent();
                if let Some(n) = self.per_hour.get_mut(&old) {
                    *n = n.saturating_sub(1);
                }
            }
            None => {
                table.insert_unique(
                    k.0,
                    Slot {
                        hi: k.0,
                        lo: k.1,
                        hour,
                    },
                    |s| s.hi,
                );
                self.entries += 1;
            }
        }
        if self.recent.0 != hour {
            self.settle_recent();
            self.recent.0 = hour;
        }
        self.recent.1 += 1;
        self.unsaved.push((h, at));
    }

    /// Moves the `recent` count into `per_hour`.
    fn settle_recent(&mut self) {
        let (hour, n) = std::mem::take(&mut self.recent);
        if n > 0 {
            *self.per_hour.entry(hour).or_default() += n;
        }
    }

    /// Remembers an id read back from a stored block: already saved.
    pub fn restore(&mut self, h: IdHash, at: Millis) {
        self.insert(h, at);
        if self.unsaved.last().is_some_and(|(x, _)| *x == h) {
            self.unsaved.pop();
        }
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        let recent = if self.recent.0 >= self.kept_from_hour {
            self.recent.1
        } else {
            0
        };
        self.per_hour
            .range(self.kept_from_hour..)
            .map(|(_, n)| *n)
            .sum::<u64>() as usize
            + recent as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept bits of every remembered hash, with its event hour start.
    pub fn iter(&self) -> impl Iterator<Item = (IdHash, Millis)> + '_ {
        let from = self.kept_from_hour;
        self.shards.iter().flat_map(move |t| {
            t.iter().filter(move |s| s.hour >= from).map(|s| {
                (
                    (u128::from(s.lo) << 64) | u128::from(s.hi),
                    i64::from(s.hour) * HOUR,
                )
            })
        })
    }

    /// Forgets the ids of every hour entirely older than the hour of
    /// `cutoff`. Costs nothing until the forgotten entries are a quarter of
    /// the tables, then one sweep.
    pub fn prune(&mut self, cutoff: Millis) {
        let hour = hour_of(cutoff);
        if hour <= self.kept_from_hour {
            return;
        }
        self.kept_from_hour = hour;
        self.settle_recent();
        let stale: u64 = self.per_hour.range(..hour).map(|(_, n)| *n).sum();
        if stale > 0 && stale >= self.entries / 4 {
            self.sweep();
        }
    }

    /// Drops the entries of forgotten hours from the tables.
    fn sweep(&mut self) {
        let from = self.kept_from_hour;
        let mut left = 0u64;
        for t in &mut self.shards {
            t.retain(|s| s.hour >= from);
            t.shrink_to(t.len(), |s| s.hi);
            left += t.len() as u64;
        }
        self.entries = left;
        self.per_hour = self.per_hour.split_off(&from);
    }

    /// Hands the ids not yet in a stored block to `f` (at most `max`, in
    /// acceptance order), and counts them as stored. Returns how many it
    /// handed.
    pub fn take_unsaved(&mut self, max: usize, mut f: impl FnMut(IdHash, Millis)) -> usize {
        let n = max.min(self.unsaved.len());
        for (h, at) in self.unsaved.drain(..n) {
            f(h, at);
        }
        if self.unsaved.is_empty() && self.unsaved.capacity() > 1 << 16 {
            // A large commit's buffer is not kept for the small ones after it.
            self.unsaved = Vec::new();
        }
        n
    }

    /// Counts every id held as stored (after a restore).
    pub fn mark_saved(&mut self) {
        self.unsaved = Vec::new();
    }

    /// How many ids are not in a stored block yet: what the next commit
    /// will hold.
    pub fn unsaved(&self) -> usize {
        self.unsaved.len()
    }

    /// Numbers a new stored block whose newest id has event time `max_at`.
    pub fn add_block(&mut self, max_at: Millis) -> u64 {
        let n = self.next_block;
        self.next_block += 1;
        self.blocks.insert((max_at, n));
        n
    }

    /// Records a block found in the store.
    pub fn restore_block(&mut self, n: u64, max_at: Millis) {
        self.blocks.insert((max_at, n));
        self.next_block = self.next_block.max(n + 1);
    }

    /// Takes the stored blocks whose every id is forgotten: the store deletes
    /// them.
    pub fn take_forgotten_blocks(&mut self) -> Vec<u64> {
        let mut gone = Vec::new();
        while let Some(&(max_at, n)) = self.blocks.first() {
            if hour_of(max_at) >= self.kept_from_hour {
                break;
            }
            self.blocks.pop_first();
            gone.push(n);
        }
        gone
    }

    /// Stored blocks, for tests and diagnostics.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Bytes the set holds, for the memory model and diagnostics.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<Slot>() + 1;
        self.shards
            .iter()
            .map(|t| t.capacity() * slot)
            .sum::<usize>()
            + self.unsaved.capacity() * std::mem::size_of::<(IdHash, Millis)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_forgets_whole_hours_below_the_cutoff_hour() {
        let mut d = Dedup::default();
        for i in 0..10i64 {
            d.insert(i as u128, i * HOUR + 5);
        }
        d.prune(3 * HOUR + 30 * 60_000);
        // Hours 0, 1, 2 are gone; hour 3 stays (the cutoff falls inside it).
        for i in 0..10u128 {
            assert_eq!(d.contains(i), i >= 3, "{i}");
        }
        assert_eq!(d.len(), 7);
        // An id of a forgotten hour is not taken back.
        d.insert(99, HOUR);
        assert!(!d.contains(99));
        // Pruning again at the same hour costs nothing and changes nothing.
        d.prune(3 * HOUR + 59 * 60_000);
        assert_eq!(d.len(), 7);
    }

    #[test]
    fn what_is_kept_depends_on_the_ids_and_the_cutoff_only() {
        // Pruned in many steps, or once: the same set.
        let mut a = Dedup::default();
        let mut b = Dedup::default();
        for i in 0..500i64 {
            let at = (i * 7919) % (100 * HOUR);
            a.insert(i as u128, at);
            a.prune(at - 20 * HOUR);
            b.insert(i as u128, at);
        }
        let cutoff = (0..500i64)
            .map(|i| (i * 7919) % (100 * HOUR))
            .max()
            .unwrap_or(0)
            - 20 * HOUR;
        b.prune(cutoff);
        let mut x: Vec<_> = a.iter().map(|(h, _)| h).collect();
        let mut y: Vec<_> = b.iter().map(|(h, _)| h).collect();
        x.sort();
        y.sort();
        // `a` may have refused ids whose hour was already gone when they
        // came: `b` forgot them at its prune, so both agree.
        assert_eq!(x, y);
    }

    #[test]
    fn a_block_is_forgotten_when_its_newest_id_is() {
        let mut d = Dedup::default();
        let b0 = d.add_block(2 * HOUR);
        let b1 = d.add_block(5 * HOUR);
        d.insert(1, 2 * HOUR);
        d.prune(3 * HOUR);
        assert_eq!(d.take_forgotten_blocks(), vec![b0]);
        assert!(d.take_forgotten_blocks().is_empty());
        d.restore_block(7, HOUR);
        assert_eq!(d.take_forgotten_blocks(), vec![7]);
        assert_eq!(d.add_block(0), 8, "numbers continue after restored ones");
        d.prune(10 * HOUR);
        assert_eq!(d.take_forgotten_blocks(), vec![8, b1]);
    }

    #[test]
    fn unsaved_ids_are_handed_once_in_bounded_groups() {
        let mut d = Dedup::default();
        for i in 0..10i64 {
            d.insert(i as u128, (i % 3) * HOUR);
        }
        assert_eq!(d.unsaved(), 10);
        let mut got = Vec::new();
        assert_eq!(d.take_unsaved(4, |h, _| got.push(h)), 4);
        assert_eq!(d.take_unsaved(100, |h, _| got.push(h)), 6);
        assert_eq!(d.take_unsaved(100, |h, _| got.push(h)), 0);
        assert_eq!(d.unsaved(), 0);
        got.sort();
        assert_eq!(got, (0..10u128).collect::<Vec<_>>());
        d.insert(42, 5 * HOUR);
        d.mark_saved();
        assert_eq!(d.take_unsaved(100, |_, _| {}), 0);
    }

    #[test]
    fn ids_differing_only_in_the_unkept_high_bits_are_one_id() {
        // The top 32 bits of the hash are not kept: documented, and the
        // 96 kept bits still tell ids apart.
        let mut d = Dedup::default();
        d.insert(5 | (1 << 100), HOUR);
        assert!(d.contains(5));
        assert!(!d.contains(5 | (1 << 64)));
        assert!(!d.contains(5 | (1 << 40)));
    }

    #[test]
    fn forgotten_entries_are_swept_and_a_forgotten_id_can_return() {
        let mut d = Dedup::default();
        for i in 0..1000u128 {
            d.insert(i, (i as i64 % 10) * HOUR);
        }
        assert_eq!(d.len(), 1000);
        d.prune(5 * HOUR);
        assert_eq!(d.len(), 500);
        assert_eq!(d.entries, 500, "half the set was forgotten: swept");
        for i in 0..1000u128 {
            assert_eq!(d.contains(i), i % 10 >= 5, "{i}");
        }
        // A forgotten id (hour 1) comes back with a kept hour.
        d.insert(1, 7 * HOUR);
        assert!(d.contains(1));
        assert_eq!(d.len(), 501);
    }

    #[test]
    fn an_unswept_forgotten_entry_is_absent_and_reusable() {
        let mut d = Dedup::default();
        for i in 0..100u128 {
            d.insert(i, 10 * HOUR);
        }
        d.insert(500, HOUR);
        d.prune(2 * HOUR);
        assert_eq!(d.entries, 101, "1 of 101 forgotten: not swept yet");
        assert!(!d.contains(500));
        assert_eq!(d.len(), 100);
        d.insert(500, 11 * HOUR);
        assert!(d.contains(500));
        assert_eq!(d.len(), 101);
        assert_eq!(d.entries, 101, "the entry was reused");
    }
}
