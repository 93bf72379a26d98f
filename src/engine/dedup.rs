//! Duplicate detection by `event_id` (SPEC §3): a set of 128-bit hashes of the
//! ids seen, each with its event's `occurred_at`, so that ids far behind the
//! watermark (whose events would be late anyway) can be forgotten.
//!
//! The hashes are also filed by hour of event time, so forgetting is
//! incremental: a prune drops whole hours, never scans the set. Which ids are
//! remembered is a function of the accepted events and the last prune cutoff
//! alone (every id whose hour is not below the cutoff's hour), so a state
//! restored from the store answers exactly as the state that wrote it.
//!
//! The store keeps the ids in packed blocks, one per commit (see
//! `store::state`); `Dedup` remembers each stored block's newest event time
//! so a block is deleted whole once every id in it is forgotten.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::model::time::{Millis, HOUR};

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

    fn write_u64(&mut self, i: u64) {
        // `Key` hashes its low half last: that one wins.
        self.0 = i;
    }

    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

/// A hash as two words: 8-byte aligned, so an entry of the set takes 24
/// bytes rather than the 32 a 16-byte aligned `u128` would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u64, u64);

impl Key {
    fn of(h: IdHash) -> Key {
        Key((h >> 64) as u64, h as u64)
    }

    fn hash(self) -> IdHash {
        (u128::from(self.0) << 64) | u128::from(self.1)
    }
}

fn hour_of(t: Millis) -> i64 {
    t.div_euclid(HOUR)
}

/// The ids of one hour of event time, in arrival order; those from `saved`
/// on are not in a stored block yet.
#[derive(Debug, Clone, Default)]
struct Hour {
    ids: Vec<(Key, Millis)>,
    saved: usize,
}

#[derive(Debug, Clone)]
pub struct Dedup {
    seen: HashSet<Key, BuildHasherDefault<PassThrough>>,
    /// The ids of `seen` by hour of event time.
    by_hour: BTreeMap<i64, Hour>,
    /// Ids of hours below this one are forgotten.
    kept_from_hour: i64,
    /// Stored blocks: (newest event time in it, block number).
    blocks: BTreeSet<(Millis, u64)>,
    next_block: u64,
    /// Ids not yet handed to `take_unsaved` (forgotten ones included).
    unsaved: usize,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            seen: HashSet::default(),
            by_hour: BTreeMap::new(),
            kept_from_hour: i64::MIN,
            blocks: BTreeSet::new(),
            next_block: 0,
            unsaved: 0,
        }
    }
}

impl Dedup {
    pub fn contains(&self, h: IdHash) -> bool {
        self.seen.contains(&Key::of(h))
    }

    /// Remembers `h`, unless its hour is already forgotten (such an event is
    /// late; only a restore can offer one).
    pub fn insert(&mut self, h: IdHash, at: Millis) {
        let hour = hour_of(at);
        if hour < self.kept_from_hour {
            return;
        }
        let k = Key::of(h);
        if self.seen.insert(k) {
            self.by_hour.entry(hour).or_default().ids.push((k, at));
            self.unsaved += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IdHash, Millis)> + '_ {
        self.by_hour
            .values()
            .flat_map(|h| h.ids.iter().map(|(k, at)| (k.hash(), *at)))
    }

    /// Forgets the ids of every hour entirely older than the hour of
    /// `cutoff`. Costs the ids forgotten, nothing when no hour is complete.
    pub fn prune(&mut self, cutoff: Millis) {
        let hour = hour_of(cutoff);
        if hour <= self.kept_from_hour {
            return;
        }
        self.kept_from_hour = hour;
        while let Some(entry) = self.by_hour.first_entry() {
            if *entry.key() >= hour {
                break;
            }
            for (k, _) in entry.remove().ids {
                self.seen.remove(&k);
            }
        }
    }

    /// Hands the ids not yet in a stored block to `f` (at most `max`, in
    /// hour order), and counts them as stored. Returns how many it handed.
    pub fn take_unsaved(&mut self, max: usize, mut f: impl FnMut(IdHash, Millis)) -> usize {
        let mut n = 0;
        for hour in self.by_hour.values_mut() {
            let take = (hour.ids.len() - hour.saved).min(max - n);
            for (k, at) in &hour.ids[hour.saved..hour.saved + take] {
                f(k.hash(), *at);
            }
            hour.saved += take;
            n += take;
            self.unsaved = self.unsaved.saturating_sub(take);
            if n == max {
                break;
            }
        }
        n
    }

    /// Counts every id held as stored (after a restore).
    pub fn mark_saved(&mut self) {
        for hour in self.by_hour.values_mut() {
            hour.saved = hour.ids.len();
        }
        self.unsaved = 0;
    }

    /// About how many ids are not in a stored block yet (at least as many):
    /// what the next commit will hold.
    pub fn unsaved(&self) -> usize {
        self.unsaved
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
    fn hashes_round_trip_through_their_two_words() {
        for h in [
            0u128,
            1,
            u128::MAX,
            1 << 64,
            (1 << 64) - 1,
            0xdead_beef << 70,
        ] {
            assert_eq!(Key::of(h).hash(), h);
        }
    }
}
