//! Good/bad counts in time buckets keyed by bucket start (arroyo-style bins in a
//! `BTreeMap`). Minute buckets for recent data; older buckets are folded into
//! 15-minute buckets by `Series::compact`, which keeps calendar months exact
//! because every zone offset is a multiple of 15 minutes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::time::{Millis, MINUTE};

/// Resolution kept for buckets older than the fine horizon.
pub const COARSE: Millis = 15 * MINUTE;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub good: i64,
    pub bad: i64,
}

impl Counts {
    pub fn one(good: bool) -> Counts {
        if good {
            Counts { good: 1, bad: 0 }
        } else {
            Counts { good: 0, bad: 1 }
        }
    }

    pub fn total(self) -> i64 {
        self.good + self.bad
    }

    pub fn add(&mut self, other: Counts) {
        self.good += other.good;
        self.bad += other.bad;
    }

    pub fn sub(&mut self, other: Counts) {
        self.good -= other.good;
        self.bad -= other.bad;
    }

    pub fn is_zero(self) -> bool {
        self.good == 0 && self.bad == 0
    }
}

/// One bucket as stored: its start in minutes and its counts, 12 bytes
/// (a `BTreeMap<Millis, Counts>` entry costs about 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    minute: i32,
    good: u32,
    bad: u32,
}

impl Slot {
    fn key(&self) -> Millis {
        Millis::from(self.minute) * MINUTE
    }

    fn counts(&self) -> Counts {
        Counts {
            good: i64::from(self.good),
            bad: i64::from(self.bad),
        }
    }

    /// The slot holding `c`, when its counts fit.
    fn of(minute: i32, c: Counts) -> Option<Slot> {
        Some(Slot {
            minute,
            good: u32::try_from(c.good).ok()?,
            bad: u32::try_from(c.bad).ok()?,
        })
    }
}

/// The minute index of a bucket start (whole minutes of the Unix epoch fit
/// an `i32` for ±4,000 years; event times outside are invalid long before).
fn minute_of(key: Millis) -> i32 {
    key.div_euclid(MINUTE)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// One time series of counts. Keys are bucket starts (ms); a key is a whole
/// minute, and keys older than the last `compact` are whole quarter hours.
///
/// Buckets live in one vector sorted by start: events mostly arrive in time
/// order, so an add is an append or an update of the last bucket, and a
/// range sum is two binary searches and a contiguous walk. A bucket whose
/// counts do not fit 32 bits (or would be negative in the middle of a
/// correction) is kept exactly in `wide` instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    slots: Vec<Slot>,
    wide: BTreeMap<Millis, Counts>,
    /// Counts of buckets dropped by retention, so `all_time` never decreases
    /// while the process runs.
    retired: Counts,
    /// The sum of every bucket held, kept as they change: `all_time` is
    /// read at every scrape and must not walk the series.
    held: Counts,
}

impl Series {
    pub fn add(&mut self, at: Millis, delta: Counts) {
        let key = crate::model::time::floor_minute(at);
        self.add_bucket(key, delta);
    }

    /// Adds to the bucket whose start is exactly `key`.
    pub fn add_bucket(&mut self, key: Millis, delta: Counts) {
        let minute = minute_of(key);
        // Events mostly arrive in time order: the last bucket is the hot one.
        let pos = match self.slots.last() {
            Some(last) if last.minute < minute => self.slots.len(),
            Some(last) if last.minute == minute => self.slots.len() - 1,
            _ => self.slots.partition_point(|s| s.minute < minute),
        };
        let held = self.slots.get(pos).filter(|s| s.minute == minute);
        let mut value = match held {
            Some(s) => s.counts(),
            None => self.wide.get(&key).copied().unwrap_or_default(),
        };
        value.add(delta);
        self.held.add(delta);
        match (held.is_some(), Slot::of(minute, value)) {
            (_, _) if value.is_zero() => {
                if held.is_some() {
                    self.slots.remove(pos);
                } else {
                    self.wide.remove(&key);
                }
            }
            (true, Some(slot)) => self.slots[pos] = slot,
            (false, Some(slot)) => {
                self.wide.remove(&key);
                self.slots.insert(pos, slot);
            }
            (was_slot, None) => {
                if was_slot {
                    self.slots.remove(pos);
                }
                self.wide.insert(key, value);
            }
        }
    }

    pub fn sub(&mut self, at: Millis, delta: Counts) {
        self.add(
            at,
            Counts {
                good: -delta.good,
                bad: -delta.bad,
            },
        );
    }

    /// The slots whose start lies in [from, to).
    fn range(&self, from: Millis, to: Millis) -> &[Slot] {
        // Minute starts: a bound inside a minute excludes that minute from
        // below and includes it from above, as a key comparison would.
        let lo = from.div_euclid(MINUTE) + i64::from(from.rem_euclid(MINUTE) != 0);
        let hi = to.div_euclid(MINUTE) + i64::from(to.rem_euclid(MINUTE) != 0);
        let a = self.slots.partition_point(|s| i64::from(s.minute) < lo);
        let b = self.slots.partition_point(|s| i64::from(s.minute) < hi);
        &self.slots[a..b.max(a)]
    }

    /// Sum of the buckets whose start lies in [from, to).
    pub fn sum(&self, from: Millis, to: Millis) -> Counts {
        let mut c = Counts::default();
        if from >= to {
            return c;
        }
        let (mut good, mut bad) = (0u64, 0u64);
        for s in self.range(from, to) {
            good += u64::from(s.good);
            bad += u64::from(s.bad);
        }
        c.good = good as i64;
        c.bad = bad as i64;
        for (_, v) in self.wide.range(from..to) {
            c.add(*v);
        }
        c
    }

    /// Every bucket in start order.
    pub fn iter(&self) -> impl Iterator<Item = (Millis, Counts)> + '_ {
        let mut slots = self.slots.iter().map(|s| (s.key(), s.counts())).peekable();
        let mut wide = self.wide.iter().map(|(k, v)| (*k, *v)).peekable();
        std::iter::from_fn(move || match (slots.peek(), wide.peek()) {
            (Some(a), Some(b)) if b.0 < a.0 => wide.next(),
            (Some(_), _) => slots.next(),
            (None, _) => wide.next(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.wide.is_empty()
    }

    pub fn len(&self) -> usize {
        self.slots.len() + self.wide.len()
    }

    /// Bytes held on the heap, for the memory model and diagnostics.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.wide.len() * 48
    }

    /// Folds minute buckets in [since, fine_before) into quarter-hour buckets
    /// and drops buckets older than `drop_before`. Returns every key whose
    /// value changed or vanished, for the store. Costs the buckets it
    /// changes plus one move of the newer ones.
    pub fn compact(
        &mut self,
        since: Millis,
        fine_before: Millis,
        drop_before: Millis,
    ) -> Vec<Millis> {
        let mut touched = Vec::new();
        let gone = self.range(Millis::MIN, drop_before).len();
        for s in self.slots.drain(..gone) {
            self.retired.add(s.counts());
            self.held.sub(s.counts());
            touched.push(s.key());
        }
        let kept = self.wide.split_off(&drop_before);
        for (k, v) in std::mem::replace(&mut self.wide, kept) {
            self.retired.add(v);
            self.held.sub(v);
            touched.push(k);
        }
        let lo = since.max(drop_before);
        if lo >= fine_before {
            return touched;
        }
        let is_fine = |k: Millis| k >= lo && k.rem_euclid(COARSE) != 0;
        // Slots from the quarter hour holding `lo`, so a fold meets the
        // quarter-hour bucket it adds to.
        let from = lo.div_euclid(COARSE) * COARSE;
        let a = self.slots.len() - self.range(from, Millis::MAX).len();
        let b = a + self.range(from, fine_before).len();
        if self.slots[a..b].iter().any(|s| is_fine(s.key())) {
            let mut folded: Vec<(Millis, Counts)> = Vec::new();
            for s in &self.slots[a..b] {
                let k = s.key();
                let into = if is_fine(k) {
                    touched.push(k);
                    let q = k.div_euclid(COARSE) * COARSE;
                    touched.push(q);
                    q
                } else {
                    k
                };
                folded.push((into, s.counts()));
            }
            // Minutes of the quarter holding `lo` that lie below it stay
            // minutes: the folded quarter may sort before them.
            folded.sort_by_key(|(k, _)| *k);
            let mut merged: Vec<(Millis, Counts)> = Vec::with_capacity(folded.len());
            for (k, c) in folded {
                match merged.last_mut() {
                    Some((last, sum)) if *last == k => sum.add(c),
                    _ => merged.push((k, c)),
                }
            }
            let mut keep = Vec::with_capacity(merged.len());
            for (k, mut c) in merged {
                // A key is a slot or a wide entry, never both.
                if let Some(w) = self.wide.remove(&k) {
                    c.add(w);
                }
                if c.is_zero() {
                    continue;
                }
                match Slot::of(minute_of(k), c) {
                    Some(slot) => keep.push(slot),
                    None => {
                        self.wide.entry(k).or_default().add(c);
                    }
                }
            }
            self.slots.splice(a..b, keep);
        }
        let wide: Vec<(Millis, Counts)> = self
            .wide
            .range(lo..fine_before)
            .filter(|(k, _)| is_fine(**k))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (k, v) in wide {
            let q = k.div_euclid(COARSE) * COARSE;
            self.wide.remove(&k);
            // Moved, not added: `add_bucket` counts it in `held` again.
            self.held.sub(v);
            self.add_bucket(q, v);
            touched.push(k);
            touched.push(q);
        }
        touched
    }

    /// Forgets the buckets that start before `before` (they are read from
    /// the store from then on): no counter changes.
    pub fn forget_below(&mut self, before: Millis) {
        let gone = self.range(Millis::MIN, before).len();
        for s in self.slots.drain(..gone) {
            self.held.sub(s.counts());
        }
        let kept = self.wide.split_off(&before);
        for v in std::mem::replace(&mut self.wide, kept).into_values() {
            self.held.sub(v);
        }
        if self.slots.capacity() > 2 * self.slots.len() + 16 {
            self.slots.shrink_to_fit();
        }
    }

    /// Every count this series has held: retained buckets plus those
    /// dropped by retention (the `slastream_slo_events_total` counter).
    pub fn all_time(&self) -> Counts {
        let mut c = self.retired;
        c.add(self.held);
        c
    }

    pub fn get(&self, key: Millis) -> Option<Counts> {
        if key.rem_euclid(MINUTE) != 0 {
            return self.wide.get(&key).copied();
        }
        let r = self.range(key, key + 1);
        r.first()
            .map(Slot::counts)
            .or_else(|| self.wide.get(&key).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_bucket_start_and_withdraws() {
        let mut s = Series::default();
        s.add(10 * MINUTE + 5, Counts::one(true));
        s.add(10 * MINUTE + 59_999, Counts::one(false));
        s.add(11 * MINUTE, Counts::one(true));
        assert_eq!(s.sum(10 * MINUTE, 11 * MINUTE), Counts { good: 1, bad: 1 });
        assert_eq!(s.sum(0, 12 * MINUTE), Counts { good: 2, bad: 1 });
        s.sub(11 * MINUTE + 1, Counts::one(true));
        assert_eq!(s.sum(11 * MINUTE, 12 * MINUTE), Counts::default());
        assert_eq!(s.len(), 1, "empty buckets are removed");
    }

    #[test]
    fn compaction_keeps_quarter_hour_sums() {
        let mut s = Series::default();
        for m in 0..60 {
            s.add(m * MINUTE, Counts::one(m % 3 == 0));
        }
        s.compact(Millis::MIN, 45 * MINUTE, 0);
        assert_eq!(s.sum(0, 15 * MINUTE), Counts { good: 5, bad: 10 });
        assert_eq!(
            s.sum(15 * MINUTE, 45 * MINUTE),
            Counts { good: 10, bad: 20 }
        );
        assert_eq!(s.sum(45 * MINUTE, 46 * MINUTE), Counts { good: 1, bad: 0 });
        assert_eq!(s.len(), 3 + 15);
        s.compact(Millis::MIN, 45 * MINUTE, 15 * MINUTE);
        assert_eq!(s.sum(0, 15 * MINUTE), Counts::default());
    }

    /// The same operations on a plain map of every bucket.
    #[derive(Default)]
    struct Model {
        map: BTreeMap<Millis, Counts>,
        retired: Counts,
    }

    impl Model {
        fn add(&mut self, key: Millis, d: Counts) {
            let v = self.map.entry(key).or_default();
            v.add(d);
            if v.is_zero() {
                self.map.remove(&key);
            }
        }

        fn compact(&mut self, since: Millis, fine_before: Millis, drop_before: Millis) {
            let old: Vec<Millis> = self.map.range(..drop_before).map(|(k, _)| *k).collect();
            for k in old {
                if let Some(v) = self.map.remove(&k) {
                    self.retired.add(v);
                }
            }
            let lo = since.max(drop_before);
            if lo < fine_before {
                let fine: Vec<(Millis, Counts)> = self
                    .map
                    .range(lo..fine_before)
                    .filter(|(k, _)| k.rem_euclid(COARSE) != 0)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                for (k, v) in fine {
                    self.map.remove(&k);
                    self.add(k.div_euclid(COARSE) * COARSE, v);
                }
            }
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_series_sums_like_a_map_of_every_bucket(
            ops in proptest::collection::vec(
                (0i64..600, -3i64..4, -3i64..4, 0u8..12), 1..300),
            cuts in proptest::collection::vec((0i64..600, 0i64..600), 1..8),
        ) {
            let mut s = Series::default();
            let mut m = Model::default();
            let mut since = Millis::MIN;
            for (i, (minute, good, bad, kind)) in ops.iter().enumerate() {
                let key = minute * MINUTE;
                // Now and then a count too large for 32 bits, or negative.
                let d = match kind {
                    0 => Counts { good: i64::from(u32::MAX) + good, bad: *bad },
                    _ => Counts { good: *good, bad: *bad },
                };
                s.add_bucket(key, d);
                m.add(key, d);
                if i % 50 == 49 {
                    let (a, b) = cuts[i / 50 % cuts.len()];
                    let (drop_before, fine_before) = (a.min(b) * MINUTE / 4, a.max(b) * MINUTE);
                    s.compact(since, fine_before, drop_before);
                    m.compact(since, fine_before, drop_before);
                    since = fine_before;
                }
                for sl in &s.slots {
                    prop_assert!(!s.wide.contains_key(&sl.key()), "op {} key {} in both", i, sl.key());
                }
                let all: Vec<(Millis, Counts)> = s.iter().collect();
                let want: Vec<(Millis, Counts)> = m.map.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(&all, &want);
            }
            for (a, b) in cuts {
                let (from, to) = (a * MINUTE - 7, b * MINUTE + 13);
                let mut want = Counts::default();
                for (_, v) in m.map.range(from..to.max(from)) {
                    want.add(*v);
                }
                prop_assert_eq!(s.sum(from, to), want);
            }
            let mut all = m.retired;
            for v in m.map.values() {
                all.add(*v);
            }
            prop_assert_eq!(s.all_time(), all);
            prop_assert_eq!(s.held, s.sum(Millis::MIN, Millis::MAX));
            prop_assert_eq!(s.len(), m.map.len());
        }
    }
}
