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

/// One time series of counts. Keys are bucket starts (ms); a key is a whole
/// minute, and keys older than the last `compact` are whole quarter hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    buckets: BTreeMap<Millis, Counts>,
    /// Counts of buckets dropped by retention, so `all_time` never decreases
    /// while the process runs.
    #[serde(default)]
    retired: Counts,
}

impl Series {
    pub fn add(&mut self, at: Millis, delta: Counts) {
        let key = crate::model::time::floor_minute(at);
        self.add_bucket(key, delta);
    }

    /// Adds to the bucket whose start is exactly `key`.
    pub fn add_bucket(&mut self, key: Millis, delta: Counts) {
        // Events mostly arrive in time order: the last bucket is the hot one.
        if let Some(mut last) = self.buckets.last_entry() {
            if *last.key() == key {
                last.get_mut().add(delta);
                if last.get().is_zero() {
                    last.remove();
                }
                return;
            }
        }
        let slot = self.buckets.entry(key).or_default();
        slot.add(delta);
        if slot.is_zero() {
            self.buckets.remove(&key);
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

    /// Sum of the buckets whose start lies in [from, to).
    pub fn sum(&self, from: Millis, to: Millis) -> Counts {
        let mut c = Counts::default();
        if from >= to {
            return c;
        }
        for (_, v) in self.buckets.range(from..to) {
            c.add(*v);
        }
        c
    }

    pub fn iter(&self) -> impl Iterator<Item = (Millis, Counts)> + '_ {
        self.buckets.iter().map(|(k, v)| (*k, *v))
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Folds minute buckets in [since, fine_before) into quarter-hour buckets
    /// and drops buckets older than `drop_before`. Returns every key whose
    /// value changed or vanished, for the store.
    pub fn compact(
        &mut self,
        since: Millis,
        fine_before: Millis,
        drop_before: Millis,
    ) -> Vec<Millis> {
        let mut touched: Vec<Millis> = self.buckets.range(..drop_before).map(|(k, _)| *k).collect();
        for k in &touched {
            if let Some(v) = self.buckets.remove(k) {
                self.retired.add(v);
            }
        }
        let lo = since.max(drop_before);
        if lo < fine_before {
            let old: Vec<(Millis, Counts)> = self
                .buckets
                .range(lo..fine_before)
                .filter(|(k, _)| k.rem_euclid(COARSE) != 0)
                .map(|(k, v)| (*k, *v))
                .collect();
            for (k, v) in old {
                let coarse = k.div_euclid(COARSE) * COARSE;
                self.buckets.remove(&k);
                touched.push(k);
                self.buckets.entry(coarse).or_default().add(v);
                touched.push(coarse);
            }
        }
        touched
    }

    /// Every count this series has held: retained buckets plus those
    /// dropped by retention (the `slastream_slo_events_total` counter).
    pub fn all_time(&self) -> Counts {
        let mut c = self.retired;
        for v in self.buckets.values() {
            c.add(*v);
        }
        c
    }

    pub fn get(&self, key: Millis) -> Option<Counts> {
        self.buckets.get(&key).copied()
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
}
