//! Instants and durations: milliseconds on the UTC timeline, RFC 3339 in and out,
//! and the `<n><unit>` duration strings of the configuration.

use jiff::Timestamp;

/// An instant: milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Parses an RFC 3339 timestamp with an offset. The fraction may have any
/// number of digits; those past the millisecond are dropped as written, so the
/// instant is truncated towards the past (also before 1970), never rounded.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    // jiff reads at most 9 fraction digits and rejects more; cutting the
    // written digits to 3 first makes every length valid and leaves jiff an
    // instant that is a whole number of milliseconds.
    let ts: Timestamp = match fraction_digits(s) {
        Some((dot, digits)) if digits > 3 => {
            let (head, tail) = (&s[..dot + 4], &s[dot + 1 + digits..]);
            // On the stack: decoding an event must not allocate.
            let mut buf = [0u8; 64];
            let len = head.len() + tail.len();
            if len <= buf.len() {
                buf[..head.len()].copy_from_slice(head.as_bytes());
                buf[head.len()..len].copy_from_slice(tail.as_bytes());
                std::str::from_utf8(&buf[..len]).ok()?.parse().ok()?
            } else {
                format!("{head}{tail}").parse().ok()?
            }
        }
        _ => s.parse().ok()?,
    };
    Some(ts.as_millisecond())
}

/// (byte index of the fraction's separator, number of digits after it) of
/// the seconds of the time part, if it has a fraction.
fn fraction_digits(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    // The fraction follows the seconds of the time part, after the date's `T`.
    let t = b.iter().position(|c| matches!(c, b'T' | b't' | b' '))?;
    let dot = t + b[t..].iter().position(|c| matches!(c, b'.' | b','))?;
    let digits = b[dot + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    // Every byte cut is an ASCII digit, so both ends are char boundaries.
    Some((dot, digits))
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

    /// `digits` fraction digits: the first three are `ms` (padded), the
    /// rest nines, so any rounding would show.
    fn fraction(ms: &str, digits: usize) -> String {
        let mut f: String = ms.chars().take(digits).collect();
        while f.len() < digits {
            f.push(if f.len() < 3 { '0' } else { '9' });
        }
        f
    }

    #[test]
    fn any_number_of_fraction_digits_is_truncated_to_the_millisecond() {
        let base = parse_rfc3339("2026-07-08T09:30:00Z").unwrap();
        for digits in [0usize, 1, 3, 4, 9, 10, 12, 30, 100] {
            for (suffix, offset) in [
                ("Z", 0),
                ("+00:00", 0),
                ("-07:00", 7 * HOUR),
                ("+05:30", -330 * MINUTE),
            ] {
                let local = match offset {
                    0 => "2026-07-08T09:30:00".to_string(),
                    o if o > 0 => "2026-07-08T02:30:00".to_string(),
                    _ => "2026-07-08T15:00:00".to_string(),
                };
                let text = if digits == 0 {
                    format!("{local}{suffix}")
                } else {
                    format!("{local}.{}{suffix}", fraction("123", digits))
                };
                let want = base
                    + match digits {
                        0 => 0,
                        1 => 100,
                        2 => 120,
                        _ => 123,
                    };
                assert_eq!(parse_rfc3339(&text), Some(want), "{text}");
            }
        }
        // The example of SPEC §1: 12 digits, equal to the millisecond form.
        assert_eq!(
            parse_rfc3339("2026-07-08T02:30:00.000123456789-07:00"),
            parse_rfc3339("2026-07-08T02:30:00.000-07:00")
        );
        assert_eq!(
            parse_rfc3339("2026-07-08T02:30:00.999999999999999999999999999999-07:00"),
            Some(base + 999)
        );
    }

    #[test]
    fn truncation_goes_towards_the_past_before_1970_too() {
        // The written digits are cut, so the instant moves to the past: for a
        // negative epoch that is away from zero.
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999999999999Z"), Some(-1));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.0001Z"), Some(-1000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.000999999Z"), Some(-1000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-500));
        assert_eq!(
            parse_rfc3339("1960-01-01T00:00:00.12345678901+01:00"),
            Some(parse_rfc3339("1959-12-31T23:00:00Z").unwrap() + 123)
        );
    }

    #[test]
    fn a_cut_fraction_does_not_make_invalid_text_valid() {
        for bad in [
            "2026-07-08T02:30:00.Z",
            "2026-07-08T02:30:00.1234",
            "2026-07-08T02:30:00.1234x-07:00",
            "2026-07-08 02:30",
            "x.12345",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
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
