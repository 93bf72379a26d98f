//! Instants and durations: milliseconds on the UTC timeline, RFC 3339 in and out,
//! and the `<n><unit>` duration strings of the configuration.

use jiff::Timestamp;

/// An instant: milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Parses an RFC 3339 timestamp with an offset; finer fractions than a
/// millisecond are truncated (towards the past).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let ts: Timestamp = s.parse().ok()?;
    Some(ts.as_millisecond())
}

/// Formats an instant as RFC 3339 in UTC (`2026-11-02T09:30:00Z`, with
/// milliseconds only when they are not zero).
pub fn format_rfc3339(ms: Millis) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            if ms.rem_euclid(SECOND) == 0 {
                ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            }
        }
        Err(_) => ms.to_string(),
    }
}

/// Parses `<n><unit>` durations (`30s`, `15m`, `4h`, `7d`, `1h30m`); `d` is 24 h.
pub fn parse_duration(s: &str) -> Option<Millis> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: Millis = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: Millis = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            's' => SECOND,
            'm' => MINUTE,
            'h' => HOUR,
            'd' => DAY,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !digits.is_empty() {
        return None;
    }
    Some(total)
}

/// Formats a duration the way the configuration writes it (`30d`, `1h30m`, `0s`).
pub fn format_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, suffix) in [(DAY, 'd'), (HOUR, 'h'), (MINUTE, 'm'), (SECOND, 's')] {
        if rest >= unit {
            out.push_str(&(rest / unit).to_string());
            out.push(suffix);
            rest %= unit;
        }
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// Largest whole minute at or before `t`.
pub fn floor_minute(t: Millis) -> Millis {
    t.div_euclid(MINUTE) * MINUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("1h30m"), Some(90 * MINUTE));
        assert_eq!(parse_duration("7d"), Some(7 * DAY));
        assert_eq!(parse_duration("30s"), Some(30 * SECOND));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(format_duration(30 * DAY), "30d");
        assert_eq!(format_duration(90 * MINUTE), "1h30m");
    }

    #[test]
    fn rfc3339_truncates_to_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.0019Z"), Some(1001));
        assert_eq!(
            parse_rfc3339("2026-11-02T18:30:00+09:00"),
            parse_rfc3339("2026-11-02T09:30:00Z")
        );
        assert_eq!(parse_rfc3339("2026-11-02 09:30"), None);
        assert_eq!(
            format_rfc3339(parse_rfc3339("2026-11-02T09:30:00Z").unwrap()),
            "2026-11-02T09:30:00Z"
        );
    }
}

/// The source of "now". Production uses the wall clock; the demo a simulated
/// clock; tests a clock they set.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Millis {
        Timestamp::now().as_millisecond()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(at: Millis) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(at))
    }

    pub fn set(&self, at: Millis) {
        self.0.store(at, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
