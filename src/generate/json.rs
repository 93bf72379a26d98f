//! Fast NDJSON writing for the generator: JSON string escaping and RFC 3339
//! timestamps without a calendar computation per event (the date part is
//! computed by `model::time::format_rfc3339` once per UTC day).

use std::fmt::Write as _;

use crate::model::time::{format_rfc3339, Millis, DAY};

/// Appends `s` as a JSON string literal (quotes included).
pub(super) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `"name":<string literal>`.
pub(super) fn push_field(out: &mut String, name: &str, value: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    push_str(out, value);
}

/// Formats instants as `YYYY-MM-DDTHH:MM:SS.mmmZ`, caching the date of the
/// last UTC day seen: the generator's instants are non-decreasing, so the
/// date changes once per simulated day.
#[derive(Debug, Default)]
pub(super) struct Timestamps {
    day: Option<Millis>,
    /// `YYYY-MM-DDT` of `day`, or `None` when the year does not fit the
    /// four-digit fast path (then every instant is formatted in full).
    prefix: Option<String>,
}

impl Timestamps {
    pub(super) fn push(&mut self, out: &mut String, at: Millis) {
        let day = at.div_euclid(DAY);
        if self.day != Some(day) {
            self.day = Some(day);
            let midnight = format_rfc3339(day * DAY);
            self.prefix = match midnight.find('T') {
                Some(10) => Some(midnight[..11].to_string()),
                _ => None,
            };
        }
        let Some(prefix) = &self.prefix else {
            out.push_str(&format_rfc3339(at));
            return;
        };
        out.push_str(prefix);
        let in_day = at.rem_euclid(DAY);
        let (h, m, s, ms) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1_000 % 60,
            in_day % 1_000,
        );
        for (value, width, sep) in [(h, 2, ':'), (m, 2, ':'), (s, 2, '.'), (ms, 3, 'Z')] {
            push_digits(out, value, width);
            out.push(sep);
        }
    }
}

fn push_digits(out: &mut String, value: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + (value / div % 10) as u8));
        div /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse_rfc3339;

    #[test]
    fn timestamps_round_trip_across_days() {
        let mut ts = Timestamps::default();
        for s in [
            "2026-11-02T09:30:00.000Z",
            "2026-11-02T23:59:59.999Z",
            "2026-11-03T00:00:00.001Z",
            "2024-02-29T12:00:00.500Z",
        ] {
            let at = parse_rfc3339(s).unwrap();
            let mut out = String::new();
            ts.push(&mut out, at);
            assert_eq!(out, s);
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\n\u0001é""#);
        assert_eq!(
            serde_json::from_str::<String>(&out).unwrap(),
            "a\"b\\c\n\u{1}é"
        );
    }
}
