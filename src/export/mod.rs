//! Prometheus exposition of the pipeline's own counters.

use std::fmt::Write;

use crate::engine::Engine;

/// Renders the ingest counters and the watermark in the text format.
pub fn render(engine: &Engine) -> String {
    let mut out = String::new();
    out.push_str("# HELP slastream_ingest_events_total Events read, by kind and result.\n");
    out.push_str("# TYPE slastream_ingest_events_total counter\n");
    let mut kinds: Vec<_> = engine.counts.iter().collect();
    kinds.sort_by_key(|(k, _)| **k);
    for (kind, c) in kinds {
        for (result, n) in [
            ("accepted", c.accepted),
            ("duplicate", c.duplicate),
            ("late", c.late),
            ("invalid", c.invalid),
        ] {
            let _ = writeln!(
                out,
                "slastream_ingest_events_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP slastream_ingest_watermark_timestamp_seconds Largest occurred_at among applied events.\n");
    out.push_str("# TYPE slastream_ingest_watermark_timestamp_seconds gauge\n");
    let w = engine.watermark().map(|w| w as f64 / 1000.0).unwrap_or(0.0);
    let _ = writeln!(out, "slastream_ingest_watermark_timestamp_seconds {w}");
    out
}

/// Renders the consumer lag per partition.
pub fn render_lag(lag: &[(String, i32, i64)]) -> String {
    let mut out = String::new();
    out.push_str("# HELP slastream_kafka_consumer_lag_messages Messages between the consumer position and the end of the partition.\n");
    out.push_str("# TYPE slastream_kafka_consumer_lag_messages gauge\n");
    for (topic, partition, l) in lag {
        let _ = writeln!(
            out,
            "slastream_kafka_consumer_lag_messages{{topic=\"{topic}\",partition=\"{partition}\"}} {l}"
        );
    }
    out
}
