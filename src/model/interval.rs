//! Sets of instants as sorted half-open spans `[start, end)`: the algebra that
//! pauses, exclusions, downtime and business calendars are computed with.
//!
//! Every operation is a linear merge over the two sorted inputs; a `SpanSet`
//! is always normalized (sorted, disjoint, non-adjacent, no empty span), so
//! equality of sets is equality of values.

use serde::{Deserialize, Serialize};

use super::time::Millis;

/// `[start, end)`, `start < end`.
pub type Span = (Millis, Millis);

/// A set of instants as sorted, disjoint, non-adjacent spans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanSet {
    spans: Vec<Span>,
}

/// Appends `span` to normalized `out` whose spans all start at or before
/// `span.0`, merging it with the last span when they overlap or touch.
fn push_merged(out: &mut Vec<Span>, (start, end): Span) {
    if start >= end {
        return;
    }
    match out.last_mut() {
        Some(last) if start <= last.1 => last.1 = last.1.max(end),
        _ => out.push((start, end)),
    }
}

impl SpanSet {
    pub fn new() -> Self {
        SpanSet { spans: Vec::new() }
    }

    /// Builds a set from spans in any order; overlaps are allowed and merged,
    /// empty (or reversed) spans are dropped.
    pub fn from_spans(iter: impl IntoIterator<Item = Span>) -> Self {
        let mut raw: Vec<Span> = iter.into_iter().filter(|s| s.0 < s.1).collect();
        // Already-normalized input (the common case: spans from another set or
        // from a calendar) needs neither a sort nor a copy.
        if raw.windows(2).all(|w| w[0].1 < w[1].0) {
            return SpanSet { spans: raw };
        }
        raw.sort_unstable();
        let mut spans = Vec::with_capacity(raw.len());
        for s in raw {
            push_merged(&mut spans, s);
        }
        SpanSet { spans }
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Union with one span.
    pub fn insert(&mut self, (start, end): Span) {
        if start >= end {
            return;
        }
        // First span that ends at or after `start` (it may touch or overlap),
        // and the first one that starts after `end` (it stays apart).
        let lo = self.spans.partition_point(|s| s.1 < start);
        let hi = self.spans.partition_point(|s| s.0 <= end);
        if lo == hi {
            self.spans.insert(lo, (start, end));
            return;
        }
        let merged = (start.min(self.spans[lo].0), end.max(self.spans[hi - 1].1));
        self.spans[lo] = merged;
        self.spans.drain(lo + 1..hi);
    }

    pub fn union(&self, other: &SpanSet) -> SpanSet {
        let (a, b) = (&self.spans, &other.spans);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = if j == b.len() || (i < a.len() && a[i].0 <= b[j].0) {
                i += 1;
                a[i - 1]
            } else {
                j += 1;
                b[j - 1]
            };
            push_merged(&mut out, next);
        }
        SpanSet { spans: out }
    }

    pub fn intersect(&self, other: &SpanSet) -> SpanSet {
        let (a, b) = (&self.spans, &other.spans);
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let start = a[i].0.max(b[j].0);
            let end = a[i].1.min(b[j].1);
            if start < end {
                // Pieces of two normalized sets are disjoint and never touch.
                out.push((start, end));
            }
            if a[i].1 <= b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        SpanSet { spans: out }
    }

    pub fn subtract(&self, other: &SpanSet) -> SpanSet {
        let b = &other.spans;
        let mut out = Vec::with_capacity(self.spans.len());
        let mut j = 0;
        for &(start, end) in &self.spans {
            let mut cur = start;
            // Spans of `other` ending at or before `cur` cannot cut this span
            // nor any later one.
            while j < b.len() && b[j].1 <= cur {
                j += 1;
            }
            let mut k = j;
            while k < b.len() && b[k].0 < end {
                if b[k].0 > cur {
                    out.push((cur, b[k].0));
                }
                cur = cur.max(b[k].1);
                k += 1;
            }
            if cur < end {
                out.push((cur, end));
            }
        }
        SpanSet { spans: out }
    }

    /// The set intersected with `[from, to)`.
    pub fn clip(&self, from: Millis, to: Millis) -> SpanSet {
        if from >= to {
            return SpanSet::new();
        }
        SpanSet {
            spans: self.within(from, to).collect(),
        }
    }

    /// Total length.
    pub fn measure(&self) -> Millis {
        self.spans.iter().map(|s| s.1 - s.0).sum()
    }

    /// Length of the set inside `[from, to)`, without allocating.
    pub fn measure_within(&self, from: Millis, to: Millis) -> Millis {
        if from >= to {
            return 0;
        }
        self.within(from, to).map(|s| s.1 - s.0).sum()
    }

    pub fn contains(&self, t: Millis) -> bool {
        let i = self.spans.partition_point(|s| s.1 <= t);
        i < self.spans.len() && self.spans[i].0 <= t
    }

    /// The non-empty pieces of the set inside `[from, to)` (`from < to`).
    fn within(&self, from: Millis, to: Millis) -> impl Iterator<Item = Span> + '_ {
        let first = self.spans.partition_point(|s| s.1 <= from);
        self.spans[first..]
            .iter()
            .take_while(move |s| s.0 < to)
            .map(move |s| (s.0.max(from), s.1.min(to)))
    }
}

/// The instant `inf{ t : measure(spans ∩ (-inf, t)) > amount }` for disjoint
/// spans given in ascending order: walking the spans, the first span whose
/// length is strictly greater than what is left of `amount` holds the answer.
/// An amount used up exactly at the end of a span is exceeded only at the start
/// of the next one (a target used up at 17:00 breaches at 09:00 the next
/// business day). `None` if the spans run out first. A negative amount counts
/// as 0.
pub fn instant_exceeding(spans: impl IntoIterator<Item = Span>, amount: Millis) -> Option<Millis> {
    let mut left = amount.max(0);
    for (start, end) in spans {
        let len = end - start;
        if len <= 0 {
            continue;
        }
        if left < len {
            return Some(start + left);
        }
        left -= len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(spans: &[Span]) -> SpanSet {
        SpanSet::from_spans(spans.iter().copied())
    }

    #[test]
    fn from_spans_normalizes() {
        let s = set(&[(20, 30), (5, 10), (8, 12), (12, 15), (40, 40), (50, 45)]);
        assert_eq!(s.spans(), &[(5, 15), (20, 30)]);
        assert!(SpanSet::from_spans([]).is_empty());
        assert_eq!(SpanSet::new(), SpanSet::default());
    }

    #[test]
    fn insert_merges_touching_and_overlapping() {
        let mut s = set(&[(0, 10), (20, 30), (40, 50)]);
        s.insert((10, 20));
        assert_eq!(s.spans(), &[(0, 30), (40, 50)]);
        s.insert((35, 38));
        assert_eq!(s.spans(), &[(0, 30), (35, 38), (40, 50)]);
        s.insert((-5, 100));
        assert_eq!(s.spans(), &[(-5, 100)]);
        s.insert((7, 7));
        assert_eq!(s.spans(), &[(-5, 100)]);
        s.insert((200, 300));
        assert_eq!(s.spans(), &[(-5, 100), (200, 300)]);
    }

    #[test]
    fn set_operations() {
        let a = set(&[(0, 10), (20, 30)]);
        let b = set(&[(5, 25)]);
        assert_eq!(a.union(&b).spans(), &[(0, 30)]);
        assert_eq!(a.intersect(&b).spans(), &[(5, 10), (20, 25)]);
        assert_eq!(a.subtract(&b).spans(), &[(0, 5), (25, 30)]);
        assert_eq!(b.subtract(&a).spans(), &[(10, 20)]);
        assert_eq!(a.clip(8, 22).spans(), &[(8, 10), (20, 22)]);
        assert_eq!(a.clip(22, 8).spans(), &[]);
        assert_eq!(a.measure(), 20);
        assert_eq!(a.measure_within(8, 22), 4);
        assert_eq!(a.measure_within(10, 20), 0);
        assert!(a.contains(0) && a.contains(9) && !a.contains(10) && !a.contains(-1));
    }

    #[test]
    fn instant_exceeding_examples() {
        let spans = [(0, 10), (20, 30)];
        assert_eq!(instant_exceeding(spans, 10), Some(20));
        assert_eq!(instant_exceeding(spans, 9), Some(9));
        assert_eq!(instant_exceeding(spans, 0), Some(0));
        assert_eq!(instant_exceeding(spans, 15), Some(25));
        assert_eq!(instant_exceeding(spans, 19), Some(29));
        assert_eq!(instant_exceeding(spans, 20), None);
        assert_eq!(instant_exceeding([], 0), None);
    }

    // Brute-force model: a set of instants 0..N as a bitset.
    const N: usize = 200;
    type Bits = [bool; N];

    fn bits(s: &SpanSet) -> Bits {
        let mut b = [false; N];
        for &(start, end) in s.spans() {
            for t in start..end {
                b[t as usize] = true;
            }
        }
        b
    }

    fn normalized(s: &SpanSet) -> bool {
        s.spans().iter().all(|sp| sp.0 < sp.1) && s.spans().windows(2).all(|w| w[0].1 < w[1].0)
    }

    fn spans_strategy() -> impl Strategy<Value = Vec<Span>> {
        prop::collection::vec(
            (0..N as Millis, 0..40 as Millis).prop_map(|(s, l)| (s, (s + l).min(N as Millis))),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn operations_match_bitset_model(
            xa in spans_strategy(),
            xb in spans_strategy(),
            from in 0..N as Millis,
            to in 0..N as Millis,
            t in 0..N as Millis,
            amount in 0..(N as Millis + 10),
        ) {
            let (a, b) = (SpanSet::from_spans(xa.clone()), SpanSet::from_spans(xb));
            prop_assert!(normalized(&a) && normalized(&b));
            let (ba, bb) = (bits(&a), bits(&b));
            // from_spans keeps exactly the instants of its inputs.
            let mut raw = [false; N];
            for &(s, e) in &xa {
                for i in s..e { raw[i as usize] = true; }
            }
            prop_assert_eq!(ba, raw);

            let u = a.union(&b);
            let i = a.intersect(&b);
            let d = a.subtract(&b);
            let c = a.clip(from, to);
            for (r, check) in [(&u, 0), (&i, 1), (&d, 2), (&c, 3)] {
                prop_assert!(normalized(r));
                let br = bits(r);
                for x in 0..N {
                    let want = match check {
                        0 => ba[x] || bb[x],
                        1 => ba[x] && bb[x],
                        2 => ba[x] && !bb[x],
                        _ => ba[x] && (from as usize..to.max(from) as usize).contains(&x),
                    };
                    prop_assert_eq!(br[x], want, "op {} at {}", check, x);
                }
            }

            let mut ins = a.clone();
            for &s in b.spans() { ins.insert(s); }
            prop_assert_eq!(&ins, &u);

            prop_assert_eq!(a.measure(), ba.iter().filter(|&&x| x).count() as Millis);
            let within = (from.max(0)..to.max(from)).filter(|&x| ba[x as usize]).count() as Millis;
            prop_assert_eq!(a.measure_within(from, to), within);
            prop_assert_eq!(a.contains(t), ba[t as usize]);

            // Instant x stands for the unit cell [x, x+1): the measure first exceeds
            // `amount` inside the (amount+1)-th cell, so the infimum is its start.
            let want = (0..N).filter(|&x| ba[x]).nth(amount as usize).map(|x| x as Millis);
            prop_assert_eq!(instant_exceeding(a.spans().iter().copied(), amount), want);
        }
    }
}
