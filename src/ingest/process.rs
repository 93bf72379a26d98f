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
        Applied::Accepted | Applied::Duplicate | Applied::Elsewhere => None,
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

/// Lines of NDJSON decoded together, so that decoding can run on another
/// thread than applying: the events borrow the bytes, which travel with them.
pub struct DecodedLines {
    // Declared before `bytes`, so dropped first: they borrow from it.
    lines: Vec<Line<'static>>,
    /// Never mutated, grown or moved out while `lines` is alive.
    bytes: Vec<u8>,
    first_line: u64,
}

struct Line<'a> {
    raw: &'a [u8],
    /// `None` for an empty line (counted, not processed).
    decoded: Option<Result<Event<'a>, InvalidEvent>>,
}

impl DecodedLines {
    /// Decodes the lines of `bytes` (each ended by `\n`, the last one may
    /// lack it; a `\r` before the `\n` is dropped). `first_line` is the
    /// number of the first one in its input.
    pub fn decode(bytes: Vec<u8>, first_line: u64) -> DecodedLines {
        // SAFETY: `text` points into the heap buffer of `bytes`, which the
        // returned value owns and never touches again until it is dropped,
        // after `lines` (field order). Moving a `Vec` does not move its
        // buffer. The `'static` never escapes: `drain` hands lines out for
        // no longer than a borrow of `self`.
        let text: &'static [u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        let mut lines = Vec::with_capacity(body.len() / 160 + 1);
        if !text.is_empty() {
            for line in body.split(|b| *b == b'\n') {
                let raw = line.strip_suffix(b"\r").unwrap_or(line);
                let decoded = (!raw.is_empty()).then(|| decode(raw));
                lines.push(Line { raw, decoded });
            }
        }
        DecodedLines {
            lines,
            bytes,
            first_line,
        }
    }

    /// Lines held (empty ones included).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Takes the lines out in order: (line number, raw bytes, decoded event
    /// or `None` for an empty line).
    #[allow(clippy::type_complexity)]
    pub fn drain(
        &mut self,
    ) -> impl Iterator<Item = (u64, &[u8], Option<Result<Event<'_>, InvalidEvent>>)> + '_ {
        let first = self.first_line;
        self.lines
            .drain(..)
            .enumerate()
            .map(move |(i, l)| (first + i as u64, l.raw, l.decoded))
    }
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
    fn decoded_lines_are_the_lines_decoded_one_by_one() {
        let text = format!(
            "{}\r\n\n{{oops\n{}",
            probe("a", "2026-11-10T11:59:00Z"),
            probe("b", "2026-11-10T11:58:00Z")
        );
        let mut d = DecodedLines::decode(text.clone().into_bytes(), 7);
        assert_eq!(d.len(), 4);
        let got: Vec<_> = d
            .drain()
            .map(|(n, raw, ev)| {
                (
                    n,
                    raw.to_vec(),
                    ev.map(|r| r.map(|e| e.event_id.into_owned())),
                )
            })
            .collect();
        let want: Vec<_> = text
            .split('\n')
            .enumerate()
            .map(|(i, l)| {
                let l = l.strip_suffix('\r').unwrap_or(l);
                let ev =
                    (!l.is_empty()).then(|| decode(l.as_bytes()).map(|e| e.event_id.into_owned()));
                (7 + i as u64, l.as_bytes().to_vec(), ev)
            })
            .collect();
        assert_eq!(got, want);
        // A trailing newline ends the last line; it does not start another.
        let mut d = DecodedLines::decode(b"x\n".to_vec(), 1);
        assert_eq!(d.drain().count(), 1);
        assert!(DecodedLines::decode(Vec::new(), 1).is_empty());
        // The lines can be decoded on one thread and applied on another.
        let d = std::thread::spawn(move || DecodedLines::decode(text.into_bytes(), 1))
            .join()
            .expect("decode thread");
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn kind_hint_reads_the_kind_of_broken_json() {
        assert_eq!(kind_hint(br#"{"kind": "probe", x"#), "probe");
        assert_eq!(kind_hint(b"\xff\xfe"), "unknown");
    }
}
