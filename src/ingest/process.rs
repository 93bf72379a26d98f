//! One raw message, from bytes to an outcome: decode, classify, apply, and
//! the dead-letter reason when it is rejected. `replay` (NDJSON lines) and the
//! Kafka consumer both go through here, so a message is judged the same way
//! whichever way it arrives. No Kafka here: the caller knows the source.

use crate::engine::{Applied, Engine};
use crate::model::event::{decode, Event, InvalidEvent};
use crate::model::time::Millis;

/// The dead-letter reason of a late event.
pub const LATE_REASON: &str = "late: older than watermark - max_lateness";

/// What one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub result: Applied,
    /// Its event time, when it could be decoded.
    pub occurred_at: Option<Millis>,
    /// Why it goes to the dead letters (invalid or late), if it does.
    pub dead_letter: Option<String>,
}

/// Decodes and applies `raw` at wall time `now`.
pub fn process(engine: &mut Engine, raw: &[u8], now: Millis) -> Processed {
    process_decoded(engine, raw, decode(raw), now)
}

/// Applies an already decoded `raw` (the consumer decodes first to read the
/// event time it aligns partitions on).
pub fn process_decoded(
    engine: &mut Engine,
    raw: &[u8],
    decoded: Result<Event<'_>, InvalidEvent>,
    now: Millis,
) -> Processed {
    let (result, occurred_at) = match decoded {
        Ok(ev) => (engine.apply(&ev, now), Some(ev.occurred_at)),
        Err(invalid) => {
            engine.record_invalid(kind_hint(raw));
            (Applied::Invalid(invalid.reason), None)
        }
    };
    let dead_letter = dead_letter_reason(&result);
    Processed {
        result,
        occurred_at,
        dead_letter,
    }
}

/// The dead-letter reason of an outcome: invalid and late events are
/// dead-lettered, accepted and duplicate ones are not.
pub fn dead_letter_reason(a: &Applied) -> Option<String> {
    match a {
        Applied::Invalid(r) => Some(r.clone()),
        Applied::Late => Some(LATE_REASON.to_string()),
        Applied::Accepted | Applied::Duplicate => None,
    }
}

/// The `kind` of an undecodable message when it can still be seen, for the
/// invalid counter's label.
pub fn kind_hint(raw: &[u8]) -> &'static str {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(4096)]);
    for kind in ["ticket", "incident", "probe"] {
        if s.contains(&format!("\"kind\":\"{kind}\""))
            || s.contains(&format!("\"kind\": \"{kind}\""))
        {
            return kind;
        }
    }
    "unknown"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::time::parse_rfc3339;

    fn now() -> Millis {
        parse_rfc3339("2026-11-10T12:00:00Z").expect("time")
    }

    fn probe(id: &str, at: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{at}","customer_id":"acme","probe_id":"p","service":"api","success":true,"latency_ms":5}}"#
        )
    }

    #[test]
    fn accepted_duplicate_invalid_late_and_future() {
        let mut e = Engine::new(&Config::default());
        let ok = process(&mut e, probe("a", "2026-11-10T11:59:00Z").as_bytes(), now());
        assert_eq!(ok.result, Applied::Accepted);
        assert_eq!(ok.dead_letter, None);
        assert!(ok.occurred_at.is_some());
        let dup = process(&mut e, probe("a", "2026-11-10T11:59:00Z").as_bytes(), now());
        assert_eq!(dup.result, Applied::Duplicate);
        assert_eq!(dup.dead_letter, None);

        let bad = process(&mut e, br#"{"kind":"ticket", oops"#, now());
        assert!(matches!(bad.result, Applied::Invalid(_)));
        assert_eq!(bad.occurred_at, None);
        assert!(bad.dead_letter.is_some());
        assert_eq!(e.counts["ticket"].invalid, 1, "labelled by the kind hint");

        let late = process(
            &mut e,
            probe("old", "2026-10-01T00:00:00Z").as_bytes(),
            now(),
        );
        assert_eq!(late.result, Applied::Late);
        assert_eq!(late.dead_letter.as_deref(), Some(LATE_REASON));

        let future = process(&mut e, probe("f", "2030-01-01T00:00:00Z").as_bytes(), now());
        assert!(matches!(future.result, Applied::Invalid(ref r) if r.contains("ahead")));
        assert!(future.dead_letter.is_some());
    }

    #[test]
    fn kind_hint_reads_the_kind_of_broken_json() {
        assert_eq!(kind_hint(br#"{"kind": "probe", x"#), "probe");
        assert_eq!(kind_hint(b"\xff\xfe"), "unknown");
    }
}
