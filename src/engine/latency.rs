//! Recent probe latency per (service, segment): one HDR histogram per minute
//! for the last few minutes, merged on demand for quantiles over the last 5m.
//! Transient: a restart starts the window afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::model::time::{floor_minute, Millis, MINUTE};

/// Minutes kept per series (the 5m window plus lateness slack).
const KEEP_MINUTES: i64 = 10;
/// Latencies above this (ms) are clamped: a probe timeout, not a measurement.
const MAX_MS: u64 = 3_600_000;

/// Per-minute histograms of one (service, segment), oldest first.
type Ring = VecDeque<(Millis, Histogram<u64>)>;

#[derive(Debug, Clone, Default)]
pub struct RecentLatency {
    /// service -> segment -> per-minute histograms, oldest first.
    series: HashMap<Box<str>, HashMap<Arc<str>, Ring>>,
}

impl RecentLatency {
    /// Records one probe latency observed at `at`; ignores events older than
    /// the kept minutes relative to `watermark`.
    pub fn record(
        &mut self,
        service: &str,
        segment: &Arc<str>,
        at: Millis,
        latency_ms: f64,
        watermark: Millis,
    ) {
        let minute = floor_minute(at);
        if minute < floor_minute(watermark) - KEEP_MINUTES * MINUTE {
            return;
        }
        // Look up by &str first: no allocation on the hot path.
        if !self.series.contains_key(service) {
            self.series.insert(Box::from(service), HashMap::new());
        }
        let Some(by_segment) = self.series.get_mut(service) else {
            return;
        };
        if !by_segment.contains_key(segment) {
            by_segment.insert(segment.clone(), VecDeque::new());
        }
        let Some(ring) = by_segment.get_mut(segment) else {
            return;
        };
        let value = (latency_ms.max(0.0).round() as u64).clamp(1, MAX_MS);
        let pos = ring.iter().position(|(m, _)| *m == minute);
        let h = match pos {
            Some(i) => &mut ring[i].1,
            None => {
                let Ok(h) = Histogram::new_with_bounds(1, MAX_MS, 2) else {
                    return;
                };
                let i = ring.partition_point(|(m, _)| *m < minute);
                ring.insert(i, (minute, h));
                &mut ring[i].1
            }
        };
        let _ = h.record(value);
        while ring
            .front()
            .is_some_and(|(m, _)| *m < floor_minute(watermark) - KEEP_MINUTES * MINUTE)
        {
            ring.pop_front();
        }
    }

    /// Quantiles (seconds) over [now - 5m, now] per (service, segment).
    pub fn quantiles(&self, now: Millis, qs: &[f64]) -> Vec<(Arc<str>, Arc<str>, Vec<f64>)> {
        let from = now - 5 * MINUTE;
        let mut out = Vec::new();
        for (service, segment, ring) in self
            .series
            .iter()
            .flat_map(|(svc, m)| m.iter().map(move |(seg, ring)| (svc, seg, ring)))
        {
            let Ok(mut merged) = Histogram::<u64>::new_with_bounds(1, MAX_MS, 2) else {
                continue;
            };
            for (m, h) in ring {
                if *m + MINUTE > from && *m <= now {
                    let _ = merged.add(h);
                }
            }
            if merged.is_empty() {
                continue;
            }
            let values = qs
                .iter()
                .map(|q| merged.value_at_quantile(*q) as f64 / 1000.0)
                .collect();
            out.push((Arc::from(&**service), segment.clone(), values));
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_over_the_last_five_minutes() {
        let mut r = RecentLatency::default();
        let seg: Arc<str> = Arc::from("enterprise");
        let t0 = 100 * MINUTE;
        for i in 0..100u32 {
            r.record(
                "api",
                &seg,
                t0 + i64::from(i) * 1000,
                f64::from(i + 1) * 10.0,
                t0 + 100_000,
            );
        }
        // An old minute outside the window is not merged.
        r.record("api", &seg, t0 - 7 * MINUTE, 99_999.0, t0 + 100_000);
        let q = r.quantiles(t0 + 100_000, &[0.5, 0.99]);
        assert_eq!(q.len(), 1);
        let (_, _, v) = &q[0];
        assert!((v[0] - 0.5).abs() < 0.01, "p50 {v:?}");
        assert!((v[1] - 0.99).abs() < 0.02, "p99 {v:?}");
    }
}
