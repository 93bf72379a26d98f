//! Recent probe latency per (service, segment): one HDR histogram per minute
//! for the last few minutes, merged on demand for quantiles over the last 5m.
//! A series is freed once it holds no minute inside the lookback behind the
//! watermark, so memory follows the services probed recently, not every
//! service ever seen. Transient: a restart starts the window afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::model::time::{floor_minute, Millis, MINUTE};

/// How far behind the watermark a minute still matters: quantiles cover the
/// last 5 minutes before now, and now is at or past the watermark.
pub const LOOKBACK: Millis = 5 * MINUTE;
/// Latencies above this (ms) are clamped: a probe timeout, not a measurement.
const MAX_MS: u64 = 3_600_000;

/// Per-minute histograms of one (service, segment), oldest first.
type Ring = VecDeque<(Millis, Histogram<u64>)>;

/// The oldest minute that still matters at `watermark`.
fn horizon(watermark: Millis) -> Millis {
    floor_minute(watermark).saturating_sub(LOOKBACK)
}

fn histogram() -> Option<Histogram<u64>> {
    // 2 significant digits up to an hour: about 16 KiB of counters.
    Histogram::new_with_bounds(1, MAX_MS, 2).ok()
}

#[derive(Debug, Clone)]
pub struct RecentLatency {
    /// service -> segment -> per-minute histograms, oldest first. Only
    /// series with a minute at or after the horizon of the last sweep are
    /// kept: a service that goes quiet costs nothing once it is past.
    series: HashMap<Box<str>, HashMap<Arc<str>, Ring>>,
    /// The horizon of the last sweep.
    swept_to: Millis,
}

impl Default for RecentLatency {
    fn default() -> Self {
        RecentLatency {
            series: HashMap::new(),
            swept_to: Millis::MIN,
        }
    }
}

impl RecentLatency {
    /// Records one probe latency observed at `at`; ignores probes older
    /// than the lookback behind `watermark` (no quantile can include them).
    pub fn record(
        &mut self,
        service: &str,
        segment: &Arc<str>,
        at: Millis,
        latency_ms: f64,
        watermark: Millis,
    ) {
        self.sweep(watermark);
        let minute = floor_minute(at);
        if minute < horizon(watermark) {
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
                let Some(h) = histogram() else {
                    return;
                };
                let i = ring.partition_point(|(m, _)| *m < minute);
                ring.insert(i, (minute, h));
                &mut ring[i].1
            }
        };
        let _ = h.record(value);
    }

    /// Frees every minute older than the lookback behind `watermark`, and
    /// every series and service left empty. Runs at most once per minute
    /// of watermark, so its cost (one pass over the series) is spread thin.
    pub fn sweep(&mut self, watermark: Millis) {
        let h = horizon(watermark);
        if h <= self.swept_to {
            return;
        }
        self.swept_to = h;
        self.series.retain(|_, by_segment| {
            by_segment.retain(|_, ring| {
                while ring.front().is_some_and(|(m, _)| *m < h) {
                    ring.pop_front();
                }
                !ring.is_empty()
            });
            !by_segment.is_empty()
        });
    }

    /// Whether recording a probe of `service` at `at` (with the watermark
    /// then at `watermark`) would start tracking a service that is not
    /// tracked now.
    pub fn would_add_service(&self, service: &str, at: Millis, watermark: Millis) -> bool {
        let h = horizon(watermark);
        floor_minute(at) >= h && !self.is_live(service, h)
    }

    fn is_live(&self, service: &str, horizon: Millis) -> bool {
        self.series.get(service).is_some_and(|by_segment| {
            by_segment
                .values()
                .any(|ring| ring.back().is_some_and(|(m, _)| *m >= horizon))
        })
    }

    /// Services with a minute inside the lookback behind `watermark`. One
    /// pass over the services: for the (rare) probe of a new service only.
    pub fn live_services(&self, watermark: Millis) -> usize {
        let h = horizon(watermark);
        self.series
            .keys()
            .filter(|service| self.is_live(service, h))
            .count()
    }

    /// (service, segment) series held in memory.
    pub fn series_count(&self) -> usize {
        self.series.values().map(HashMap::len).sum()
    }

    /// Quantiles (seconds) over [now - 5m, now] per (service, segment). One
    /// merged histogram serves every series; a series without a minute in
    /// the window costs no merge.
    pub fn quantiles(&self, now: Millis, qs: &[f64]) -> Vec<(Arc<str>, Arc<str>, Vec<f64>)> {
        let from = now - LOOKBACK;
        let in_window = |m: Millis| m + MINUTE > from && m <= now;
        let mut out = Vec::new();
        let mut merged: Option<Histogram<u64>> = None;
        for (service, segment, ring) in self
            .series
            .iter()
            .flat_map(|(svc, m)| m.iter().map(move |(seg, ring)| (svc, seg, ring)))
        {
            if !ring.iter().any(|(m, _)| in_window(*m)) {
                continue;
            }
            if merged.is_none() {
                merged = histogram();
            }
            let Some(merged) = merged.as_mut() else {
                return out;
            };
            merged.reset();
            for (m, h) in ring {
                if in_window(*m) {
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
        // An old minute outside the window is not kept.
        r.record("api", &seg, t0 - 7 * MINUTE, 99_999.0, t0 + 100_000);
        assert_eq!(r.series_count(), 1);
        let q = r.quantiles(t0 + 100_000, &[0.5, 0.99]);
        assert_eq!(q.len(), 1);
        let (_, _, v) = &q[0];
        assert!((v[0] - 0.5).abs() < 0.01, "p50 {v:?}");
        assert!((v[1] - 0.99).abs() < 0.02, "p99 {v:?}");
    }

    #[test]
    fn quiet_services_are_freed() {
        let mut r = RecentLatency::default();
        let seg: Arc<str> = Arc::from("enterprise");
        let t0 = 1_000 * MINUTE;
        let mut peak = 0;
        // 5,000 services, each probed once, six a minute, for 14 hours.
        for i in 0..5_000i64 {
            let at = t0 + i * 10_000;
            let service = format!("svc-{i}");
            assert!(r.would_add_service(&service, at, at));
            r.record(&service, &seg, at, 50.0, at);
            assert!(!r.would_add_service(&service, at, at));
            peak = peak.max(r.series_count());
            assert!(r.live_services(at) <= r.series_count());
        }
        // The lookback (5 minutes) and the current minute: at most 6 x 6
        // services, plus the minute a sweep waits for.
        assert!(peak <= 42, "peak {peak} series");
        let end = t0 + 5_000 * 10_000;
        assert!(r.live_services(end) <= 42);
        // Quantiles cover only what is recent.
        let q = r.quantiles(end, &[0.5]);
        assert!(!q.is_empty() && q.len() <= 36, "{}", q.len());
        // Once the watermark moves past the lookback, everything is freed.
        r.sweep(end + LOOKBACK + 2 * MINUTE);
        assert_eq!(r.series_count(), 0);
        assert_eq!(r.live_services(end + LOOKBACK + 2 * MINUTE), 0);
    }

    #[test]
    fn a_service_counts_as_new_only_within_the_lookback() {
        let mut r = RecentLatency::default();
        let seg: Arc<str> = Arc::from("s");
        let w = 100 * MINUTE;
        r.record("api", &seg, w, 5.0, w);
        assert!(!r.would_add_service("api", w - MINUTE, w));
        // Too old to be recorded: it creates nothing.
        assert!(!r.would_add_service("web", w - 7 * MINUTE, w));
        r.record("web", &seg, w - 7 * MINUTE, 5.0, w);
        assert_eq!(r.series_count(), 1);
        assert!(r.would_add_service("web", w, w));
        // Quiet past the lookback: no longer live, so new again.
        assert!(r.would_add_service("api", w + 7 * MINUTE, w + 7 * MINUTE));
        assert_eq!(r.live_services(w + 7 * MINUTE), 0);
    }
}
