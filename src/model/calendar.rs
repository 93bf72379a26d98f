//! Business calendars: which instants of the UTC timeline are business time.
//!
//! SPEC §2.2: an instant is business time when its local wall-clock time in the
//! calendar's zone falls inside an interval listed for that local weekday and
//! that local date is not a holiday. We compute the set exactly, without
//! stepping through time: between two transitions of the zone the offset `o`
//! is constant, so local time is `t + o` and the business instants there are
//! the weekly local intervals shifted by `-o`. Cutting the timeline at the
//! zone's transitions and walking local days inside each piece makes every DST
//! case fall out of the rule: a skipped local hour maps to no instant, a
//! repeated one is reached from both offsets and so counts twice.

use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::interval::{self, Span};
use super::slo::CalendarDef;
use super::time::{Millis, DAY, MINUTE};

/// How far `instant_exceeding` looks ahead before giving up: long enough for
/// any real calendar, short enough that a calendar with no open day ends.
pub const HORIZON: Millis = 3 * 366 * DAY;

/// A business calendar bound to its zone. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    /// `None` for 24x7: every instant, no zone work.
    zoned: Option<Arc<Zoned>>,
}

#[derive(Debug)]
struct Zoned {
    tz: TimeZone,
    /// Per local weekday (0 = Monday): sorted, disjoint, non-adjacent intervals
    /// in milliseconds after local midnight, within `0..=DAY`.
    week: [Vec<Span>; 7],
    /// Holidays as local day numbers (days since 1970-01-01), sorted.
    holidays: Vec<i64>,
}

/// Day number (days since 1970-01-01) of a civil date.
fn day_number(date: Date) -> i64 {
    date.duration_since(Date::constant(1970, 1, 1))
        .as_secs()
        .div_euclid(DAY / 1000)
}

/// Monday-zero weekday of a day number; 1970-01-01 was a Thursday.
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// The instants jiff can place in a zone; calendars ignore time beyond.
fn jiff_range() -> (Millis, Millis) {
    (
        Timestamp::MIN.as_millisecond(),
        Timestamp::MAX.as_millisecond(),
    )
}

fn timestamp(ms: Millis) -> Timestamp {
    // Callers clamp to `jiff_range`, so this cannot fail.
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl BusinessCalendar {
    /// `zone`: the calendar's own `timezone` if set, else the customer's zone
    /// (the caller decides). A calendar open 00:00-24:00 every day with no
    /// holiday contains every instant and becomes `always()`.
    pub fn new(def: &CalendarDef, zone: TimeZone) -> BusinessCalendar {
        let week: [Vec<Span>; 7] = std::array::from_fn(|d| {
            let mut raw: Vec<Span> = def.week[d]
                .iter()
                .map(|&(a, b)| {
                    (
                        Millis::from(a.min(1440)) * MINUTE,
                        Millis::from(b.min(1440)) * MINUTE,
                    )
                })
                .filter(|(a, b)| a < b)
                .collect();
            raw.sort_unstable();
            let mut merged: Vec<Span> = Vec::with_capacity(raw.len());
            for (a, b) in raw {
                match merged.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            merged
        });
        if def.holidays.is_empty() && week.iter().all(|d| d.as_slice() == [(0, DAY)]) {
            return BusinessCalendar::always();
        }
        // BTreeSet iteration is ordered, so the day numbers come out sorted.
        let holidays = def.holidays.iter().map(|&d| day_number(d)).collect();
        BusinessCalendar {
            zoned: Some(Arc::new(Zoned {
                tz: zone,
                week,
                holidays,
            })),
        }
    }

    /// 24x7: every instant is business time.
    pub fn always() -> BusinessCalendar {
        BusinessCalendar { zoned: None }
    }

    pub fn is_always(&self) -> bool {
        self.zoned.is_none()
    }

    /// The business instants in `[from, to)` as ascending disjoint spans, with
    /// adjacent spans merged (an overnight shift written as two intervals is one
    /// span; 24x7 yields exactly `[from, to)`). Lazy: `to` may lie years ahead.
    pub fn spans(&self, from: Millis, to: Millis) -> impl Iterator<Item = Span> + '_ {
        match &self.zoned {
            None => Spans::always(from, to),
            Some(z) => Spans::zoned(z, from, to),
        }
    }

    /// Length of business time in `[from, to)`; 0 when `to <= from`.
    pub fn business_ms(&self, from: Millis, to: Millis) -> Millis {
        match &self.zoned {
            None => (to - from).max(0),
            Some(_) => self.spans(from, to).map(|(a, b)| b - a).sum(),
        }
    }

    /// `inf{ t : business_ms(from, t) > amount }` (see
    /// [`interval::instant_exceeding`]); `None` when not reached before
    /// `from + HORIZON`.
    pub fn instant_exceeding(&self, from: Millis, amount: Millis) -> Option<Millis> {
        interval::instant_exceeding(self.spans(from, from.saturating_add(HORIZON)), amount)
    }
}

/// Lazy walk over the business spans of `[from, to)`. Raw spans (one per
/// local interval, cut at zone transitions) are produced by `next_raw` and
/// merged with their neighbours by `next`.
struct Spans<'a> {
    zoned: Option<&'a Zoned>,
    to: Millis,
    /// Current piece `[seg_start, seg_end)` of constant offset `off` (ms).
    seg_start: Millis,
    seg_end: Millis,
    off: Millis,
    /// Current local day and the last local day the piece reaches.
    day: i64,
    last_day: i64,
    /// Intervals of `day` (empty on holidays) and the next one to use.
    intervals: &'a [Span],
    idx: usize,
    /// A span waiting for a possibly adjacent successor.
    pending: Option<Span>,
}

impl<'a> Spans<'a> {
    fn always(from: Millis, to: Millis) -> Spans<'a> {
        Spans {
            zoned: None,
            to,
            seg_start: from,
            seg_end: to,
            off: 0,
            day: 0,
            last_day: -1,
            intervals: &[],
            idx: 0,
            pending: (from < to).then_some((from, to)),
        }
    }

    fn zoned(z: &'a Zoned, from: Millis, to: Millis) -> Spans<'a> {
        let (min, max) = jiff_range();
        let (from, to) = (from.clamp(min, max), to.clamp(min, max));
        let mut it = Spans {
            zoned: Some(z),
            to,
            seg_start: from,
            seg_end: from,
            off: 0,
            day: 0,
            last_day: -1,
            intervals: &[],
            idx: 0,
            pending: None,
        };
        if from < to && z.week.iter().any(|d| !d.is_empty()) {
            it.enter_piece(z, from);
        }
        it
    }

    /// Starts the piece of constant offset beginning at `start` (< `to`).
    fn enter_piece(&mut self, z: &'a Zoned, start: Millis) {
        let ts = timestamp(start);
        self.seg_start = start;
        self.off = Millis::from(z.tz.to_offset(ts).seconds()) * 1000;
        let next =
            z.tz.following(ts)
                .next()
                .map(|t| t.timestamp().as_millisecond());
        self.seg_end = next.map_or(self.to, |n| n.min(self.to));
        self.day = (start + self.off).div_euclid(DAY);
        self.last_day = (self.seg_end - 1 + self.off).div_euclid(DAY);
        self.enter_day(z);
    }

    fn enter_day(&mut self, z: &'a Zoned) {
        self.idx = 0;
        self.intervals = if z.holidays.binary_search(&self.day).is_ok() {
            &[]
        } else {
            &z.week[weekday(self.day)]
        };
    }

    fn next_raw(&mut self) -> Option<Span> {
        let z = self.zoned?;
        loop {
            if self.day > self.last_day {
                if self.seg_end >= self.to {
                    // Exhausted: make later calls return at once.
                    self.zoned = None;
                    return None;
                }
                self.enter_piece(z, self.seg_end);
                continue;
            }
            let Some(&(a, b)) = self.intervals.get(self.idx) else {
                self.day += 1;
                self.enter_day(z);
                continue;
            };
            self.idx += 1;
            let midnight = self.day * DAY - self.off;
            let start = (midnight + a).max(self.seg_start);
            let end = (midnight + b).min(self.seg_end);
            if start < end {
                return Some((start, end));
            }
        }
    }
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        loop {
            let Some(raw) = self.next_raw() else {
                return self.pending.take();
            };
            match &mut self.pending {
                Some(p) if raw.0 <= p.1 => p.1 = p.1.max(raw.1),
                Some(_) => return self.pending.replace(raw),
                None => self.pending = Some(raw),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use jiff::civil::date;
    use proptest::prelude::*;

    use super::*;
    use crate::model::interval::SpanSet;
    use crate::model::time::{parse_rfc3339, HOUR};

    fn hm(h: u16, m: u16) -> u16 {
        h * 60 + m
    }

    /// A calendar from per-weekday intervals (Monday first) and holidays.
    fn def(week: [&[(u16, u16)]; 7], holidays: &[Date]) -> CalendarDef {
        CalendarDef {
            name: "test".to_string(),
            timezone: None,
            week: week.map(|d| d.to_vec()),
            holidays: holidays.iter().copied().collect::<BTreeSet<_>>(),
        }
    }

    const NINE_TO_FIVE: &[(u16, u16)] = &[(540, 1020)];

    fn weekdays(day: &[(u16, u16)]) -> [&[(u16, u16)]; 7] {
        [day, day, day, day, day, &[], &[]]
    }

    /// Only Sunday open, with these intervals (the DST changes we test are on Sundays).
    fn sundays(day: &[(u16, u16)]) -> [&[(u16, u16)]; 7] {
        [&[], &[], &[], &[], &[], &[], day]
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn utc(s: &str) -> Millis {
        parse_rfc3339(s).unwrap()
    }

    fn cal(week: [&[(u16, u16)]; 7], holidays: &[Date], zone: &str) -> BusinessCalendar {
        BusinessCalendar::new(&def(week, holidays), tz(zone))
    }

    fn spans(c: &BusinessCalendar, from: &str, to: &str) -> Vec<Span> {
        c.spans(utc(from), utc(to)).collect()
    }

    fn span(from: &str, to: &str) -> Span {
        (utc(from), utc(to))
    }

    #[test]
    fn day_numbers_and_weekdays_agree_with_jiff() {
        for d in [
            date(1970, 1, 1),
            date(1969, 12, 31),
            date(2026, 3, 29),
            date(2026, 11, 6),
            date(1600, 2, 29),
        ] {
            let n = day_number(d);
            assert_eq!(
                weekday(n),
                d.weekday().to_monday_zero_offset() as usize,
                "{d}"
            );
            assert_eq!(
                n * DAY,
                d.to_zoned_datetime(TimeZone::UTC)
                    .unwrap()
                    .timestamp()
                    .as_millisecond()
            );
        }
    }

    #[test]
    fn friday_afternoon_to_monday_morning_is_two_hours() {
        // 2026-11-06 is a Friday; Berlin is on CET (+01:00).
        // Fri 16:00-17:00 (1 h) + Mon 09:00-10:00 (1 h) = 2 h.
        let c = cal(weekdays(NINE_TO_FIVE), &[], "Europe/Berlin");
        let (from, to) = ("2026-11-06T15:00:00Z", "2026-11-09T09:00:00Z");
        assert_eq!(c.business_ms(utc(from), utc(to)), 2 * HOUR);
        assert_eq!(
            spans(&c, from, to),
            [
                span("2026-11-06T15:00:00Z", "2026-11-06T16:00:00Z"),
                span("2026-11-09T08:00:00Z", "2026-11-09T09:00:00Z")
            ]
        );
        assert_eq!(c.business_ms(utc(to), utc(from)), 0);
    }

    #[test]
    fn split_day() {
        // Mon 2026-11-09, 09:00-12:00 and 13:00-17:00 local (+01:00).
        let day: &[(u16, u16)] = &[(hm(9, 0), hm(12, 0)), (hm(13, 0), hm(17, 0))];
        let c = cal(weekdays(day), &[], "Europe/Berlin");
        // Whole day: 3 h + 4 h = 7 h.
        assert_eq!(
            c.business_ms(utc("2026-11-08T23:00:00Z"), utc("2026-11-09T23:00:00Z")),
            7 * HOUR
        );
        // 11:00-14:00 local: 11-12 (1 h) + 13-14 (1 h) = 2 h; the lunch hour is out.
        assert_eq!(
            spans(&c, "2026-11-09T10:00:00Z", "2026-11-09T13:00:00Z"),
            [
                span("2026-11-09T10:00:00Z", "2026-11-09T11:00:00Z"),
                span("2026-11-09T12:00:00Z", "2026-11-09T13:00:00Z")
            ]
        );
        // 2 h into the afternoon from 11:00: 1 h before lunch, 1 h after -> 14:00 local.
        assert_eq!(
            c.instant_exceeding(utc("2026-11-09T10:00:00Z"), HOUR),
            Some(utc("2026-11-09T12:00:00Z"))
        );
    }

    #[test]
    fn holiday_closes_the_whole_local_day() {
        // Wed 2026-12-23 open, Thu 24 and Fri 25 holidays, then the weekend:
        // only Wednesday's 8 h remain between Wed 00:00 and Mon 00:00 local.
        let c = cal(
            weekdays(NINE_TO_FIVE),
            &[date(2026, 12, 24), date(2026, 12, 25)],
            "Europe/Berlin",
        );
        assert_eq!(
            c.business_ms(utc("2026-12-22T23:00:00Z"), utc("2026-12-27T23:00:00Z")),
            8 * HOUR
        );
        // A full-day calendar with a holiday is not 24x7.
        let c = cal([&[(0, 1440)]; 7], &[date(2026, 12, 25)], "Europe/Berlin");
        assert!(!c.is_always());
        assert_eq!(
            spans(&c, "2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z"),
            [
                span("2026-12-24T00:00:00Z", "2026-12-24T23:00:00Z"),
                span("2026-12-25T23:00:00Z", "2026-12-27T00:00:00Z")
            ]
        );
    }

    #[test]
    fn whole_day_across_berlin_spring_forward_is_23_hours() {
        // Sun 2026-03-29: local 00:00 is +01:00 (Sat 23:00Z), local 24:00 is +02:00
        // (Sun 22:00Z); 02:00-03:00 local does not exist. 22:00 - (-1:00) = 23 h.
        let c = cal(sundays(&[(0, 1440)]), &[], "Europe/Berlin");
        let week = spans(&c, "2026-03-23T00:00:00Z", "2026-04-01T00:00:00Z");
        assert_eq!(week, [span("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")]);
        assert_eq!(
            c.business_ms(utc("2026-03-23T00:00:00Z"), utc("2026-04-01T00:00:00Z")),
            23 * HOUR
        );
        // The skipped hour 02:00-03:00 contains no instant.
        let c = cal(sundays(&[(hm(2, 0), hm(3, 0))]), &[], "Europe/Berlin");
        assert_eq!(
            c.business_ms(utc("2026-03-28T00:00:00Z"), utc("2026-03-30T00:00:00Z")),
            0
        );
    }

    #[test]
    fn whole_day_across_berlin_fall_back_is_25_hours() {
        // Sun 2026-10-25: local 00:00 is +02:00 (Sat 22:00Z), local 24:00 is +01:00
        // (Sun 23:00Z); 02:00-03:00 local happens twice. 23:00 - (-2:00) = 25 h.
        let c = cal(sundays(&[(0, 1440)]), &[], "Europe/Berlin");
        assert_eq!(
            spans(&c, "2026-10-20T00:00:00Z", "2026-10-28T00:00:00Z"),
            [span("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")]
        );
        // The repeated hour counts twice: 00:00Z-01:00Z (+02:00) and 01:00Z-02:00Z (+01:00).
        let c = cal(sundays(&[(hm(2, 0), hm(3, 0))]), &[], "Europe/Berlin");
        assert_eq!(
            spans(&c, "2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z"),
            [span("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z")]
        );
    }

    #[test]
    fn new_york_dst_changes() {
        // Sun 2026-03-08, 02:00 EST -> 03:00 EDT. Interval 01:00-04:00 local:
        // 01:00-02:00 EST = 06:00Z-07:00Z, 03:00-04:00 EDT = 07:00Z-08:00Z -> 2 h.
        let c = cal(sundays(&[(hm(1, 0), hm(4, 0))]), &[], "America/New_York");
        assert_eq!(
            spans(&c, "2026-03-07T00:00:00Z", "2026-03-09T00:00:00Z"),
            [span("2026-03-08T06:00:00Z", "2026-03-08T08:00:00Z")]
        );
        // Sun 2026-11-01, 02:00 EDT -> 01:00 EST. 01:00 EDT = 05:00Z, 04:00 EST = 09:00Z
        // -> 4 h (01:00-02:00 is lived twice).
        assert_eq!(
            spans(&c, "2026-10-31T00:00:00Z", "2026-11-02T00:00:00Z"),
            [span("2026-11-01T05:00:00Z", "2026-11-01T09:00:00Z")]
        );
    }

    #[test]
    fn sydney_dst_changes() {
        // Sun 2026-04-05, 03:00 AEDT (+11) -> 02:00 AEST (+10). Interval 02:00-03:00:
        // first as +11 (Sat 15:00Z-16:00Z), then again as +10 (16:00Z-17:00Z) -> 2 h.
        let c = cal(sundays(&[(hm(2, 0), hm(3, 0))]), &[], "Australia/Sydney");
        assert_eq!(
            spans(&c, "2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"),
            [span("2026-04-04T15:00:00Z", "2026-04-04T17:00:00Z")]
        );
        // Sun 2026-10-04, 02:00 AEST (+10) -> 03:00 AEDT (+11). Interval 01:00-04:00:
        // 01:00-02:00 +10 = Sat 15:00Z-16:00Z, 03:00-04:00 +11 = 16:00Z-17:00Z -> 2 h.
        let c = cal(sundays(&[(hm(1, 0), hm(4, 0))]), &[], "Australia/Sydney");
        assert_eq!(
            spans(&c, "2026-10-02T00:00:00Z", "2026-10-05T00:00:00Z"),
            [span("2026-10-03T15:00:00Z", "2026-10-03T17:00:00Z")]
        );
        assert_eq!(
            c.business_ms(utc("2026-10-02T00:00:00Z"), utc("2026-10-05T00:00:00Z")),
            2 * HOUR
        );
    }

    #[test]
    fn overnight_shift_is_one_span() {
        // Mon 2026-11-09 22:00 -> Tue 06:00 local (+01:00) = Mon 21:00Z -> Tue 05:00Z, 8 h.
        let c = cal(
            [
                &[(hm(22, 0), 1440)],
                &[(0, hm(6, 0))],
                &[],
                &[],
                &[],
                &[],
                &[],
            ],
            &[],
            "Europe/Berlin",
        );
        let got = spans(&c, "2026-11-09T00:00:00Z", "2026-11-11T00:00:00Z");
        assert_eq!(got, [span("2026-11-09T21:00:00Z", "2026-11-10T05:00:00Z")]);
        assert_eq!(got[0].1 - got[0].0, 8 * HOUR);
    }

    #[test]
    fn target_used_up_at_closing_breaches_next_morning() {
        // Tue 2026-11-10 16:00 local (15:00Z), 1 h target on 9-17: the hour is used up
        // exactly at 17:00; more than 1 h has elapsed only from Wed 09:00 (08:00Z).
        let c = cal(weekdays(NINE_TO_FIVE), &[], "Europe/Berlin");
        let from = utc("2026-11-10T15:00:00Z");
        assert_eq!(
            c.instant_exceeding(from, HOUR),
            Some(utc("2026-11-11T08:00:00Z"))
        );
        assert_eq!(
            c.instant_exceeding(from, HOUR - 1),
            Some(utc("2026-11-10T15:59:59.999Z"))
        );
        assert_eq!(
            c.instant_exceeding(from, HOUR + 1),
            Some(utc("2026-11-11T08:00:00.001Z"))
        );
        // From Friday 16:00 the next business morning is Monday.
        assert_eq!(
            c.instant_exceeding(utc("2026-11-06T15:00:00Z"), HOUR),
            Some(utc("2026-11-09T08:00:00Z"))
        );
    }

    #[test]
    fn half_and_three_quarter_hour_offsets() {
        // Asia/Kolkata is +05:30: local Mon 2026-11-09 00:00 = Sun 18:30Z.
        let c = cal(
            [&[(0, 1440)], &[], &[], &[], &[], &[], &[]],
            &[],
            "Asia/Kolkata",
        );
        assert_eq!(
            spans(&c, "2026-11-08T00:00:00Z", "2026-11-11T00:00:00Z"),
            [span("2026-11-08T18:30:00Z", "2026-11-09T18:30:00Z")]
        );
        // Only 18:30Z-19:00Z of the UTC hour 18:00-19:00 is Monday.
        assert_eq!(
            c.business_ms(utc("2026-11-08T18:00:00Z"), utc("2026-11-08T19:00:00Z")),
            30 * MINUTE
        );
        // Asia/Kathmandu is +05:45: local Mon 00:00 = Sun 18:15Z, local Tue 00:00 = Mon 18:15Z.
        let c = cal(
            [&[(0, 1440)], &[], &[], &[], &[], &[], &[]],
            &[],
            "Asia/Kathmandu",
        );
        assert_eq!(
            spans(&c, "2026-11-08T00:00:00Z", "2026-11-11T00:00:00Z"),
            [span("2026-11-08T18:15:00Z", "2026-11-09T18:15:00Z")]
        );
        assert_eq!(
            c.business_ms(utc("2026-11-08T18:00:00Z"), utc("2026-11-08T19:00:00Z")),
            45 * MINUTE
        );
    }

    #[test]
    fn always_and_full_week() {
        let c = BusinessCalendar::always();
        assert!(c.is_always());
        assert_eq!(c.spans(10, 20).collect::<Vec<_>>(), [(10, 20)]);
        assert_eq!(c.spans(20, 10).count(), 0);
        assert_eq!(c.business_ms(10, 20), 10);
        assert_eq!(c.instant_exceeding(10, 5), Some(15));
        assert_eq!(c.instant_exceeding(0, HORIZON), None);
        // Every day 00:00-24:00 without holidays is every instant, whatever the zone.
        let full = BusinessCalendar::new(&CalendarDef::always(), tz("Europe/Berlin"));
        assert!(full.is_always());
        let (from, to) = (utc("2026-03-01T00:00:00Z"), utc("2026-11-01T00:00:00Z"));
        assert_eq!(full.spans(from, to).collect::<Vec<_>>(), [(from, to)]);
    }

    #[test]
    fn closed_calendar_and_laziness() {
        let closed = cal([&[]; 7], &[], "Europe/Berlin");
        assert_eq!(closed.instant_exceeding(0, 0), None);
        assert_eq!(closed.business_ms(0, 10 * 365 * DAY), 0);
        // Ten years ahead, but we only look at the first three spans.
        let c = cal(weekdays(NINE_TO_FIVE), &[], "Europe/Berlin");
        let from = utc("2026-11-09T00:00:00Z");
        let first: Vec<Span> = c.spans(from, from + 10 * 366 * DAY).take(3).collect();
        assert_eq!(first.len(), 3);
        assert_eq!(
            first[2],
            span("2026-11-11T08:00:00Z", "2026-11-11T16:00:00Z")
        );
        // Extreme bounds do not overflow.
        assert!(c.spans(i64::MIN, i64::MAX).next().is_some());
    }

    #[test]
    fn calendar_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<BusinessCalendar>();
    }

    // ---- Property test against a minute-by-minute reference model ----

    /// The SPEC rule applied to one minute, with jiff doing the local time.
    fn naive_minute_is_business(d: &CalendarDef, zone: &TimeZone, m: Millis) -> bool {
        let local = zone.to_datetime(Timestamp::from_millisecond(m).unwrap());
        if d.holidays.contains(&local.date()) {
            return false;
        }
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let wd = local.date().weekday().to_monday_zero_offset() as usize;
        d.week[wd].iter().any(|&(a, b)| a <= minute && minute < b)
    }

    const ZONES: [&str; 5] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kathmandu",
        "UTC",
    ];
    /// DST change dates of 2026 in those zones (as local dates).
    const DST_DATES: [(i16, i8, i8); 6] = [
        (2026, 3, 29),
        (2026, 10, 25),
        (2026, 3, 8),
        (2026, 11, 1),
        (2026, 4, 5),
        (2026, 10, 4),
    ];

    fn interval_strategy() -> impl Strategy<Value = (u16, u16)> {
        let start = prop_oneof![(0u16..24).prop_map(|h| h * 60), 0u16..1440];
        let len = prop_oneof![(1u16..=24).prop_map(|h| h * 60), 1u16..600];
        prop_oneof![
            1 => Just((0u16, 1440u16)),
            6 => (start, len).prop_map(|(s, l)| (s, (s + l).min(1440))),
        ]
    }

    fn calendar_strategy() -> impl Strategy<Value = ([Vec<(u16, u16)>; 7], Vec<i32>)> {
        let day = prop::collection::vec(interval_strategy(), 0..4);
        (
            prop::array::uniform7(day),
            prop::collection::vec(-8i32..8, 0..3),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]
        #[test]
        fn matches_minute_model(
            (week, holiday_offsets) in calendar_strategy(),
            zone_idx in 0..ZONES.len(),
            date_idx in 0..DST_DATES.len(),
            start_min in 0i64..(7 * 1440),
            len_min in 0i64..(10 * 1440),
            amount_min in 0i64..(4 * 1440),
            amount_sub in prop_oneof![Just(0i64), 0i64..MINUTE],
        ) {
            let zone = tz(ZONES[zone_idx]);
            let (y, mo, d) = DST_DATES[date_idx];
            let base_date = date(y, mo, d);
            let holidays = holiday_offsets
                .iter()
                .map(|&o| base_date.checked_add(jiff::Span::new().days(o)).unwrap())
                .collect();
            let cdef = CalendarDef { name: "p".into(), timezone: None, week, holidays };
            let c = BusinessCalendar::new(&cdef, zone.clone());

            let base = day_number(base_date) * DAY - 4 * DAY;
            let from = base + start_min * MINUTE;
            let to = from + len_min * MINUTE;

            // Spans: exactly the business minutes, normalized (adjacent merged).
            let got: Vec<Span> = c.spans(from, to).collect();
            let want = SpanSet::from_spans(
                (0..len_min)
                    .map(|i| from + i * MINUTE)
                    .filter(|&m| naive_minute_is_business(&cdef, &zone, m))
                    .map(|m| (m, m + MINUTE)),
            );
            prop_assert_eq!(&got, want.spans());
            prop_assert_eq!(c.business_ms(from, to), want.measure());

            // instant_exceeding: walk business minutes until the amount is exceeded.
            let amount = amount_min * MINUTE + amount_sub;
            let scan = 12 * 1440;
            let mut left = amount;
            let mut naive = None;
            for i in 0..scan {
                let m = from + i * MINUTE;
                if naive_minute_is_business(&cdef, &zone, m) {
                    if left < MINUTE {
                        naive = Some(m + left);
                        break;
                    }
                    left -= MINUTE;
                }
            }
            let real = c.instant_exceeding(from, amount);
            match naive {
                Some(t) => prop_assert_eq!(real, Some(t)),
                None => prop_assert!(real.is_none_or(|t| t >= from + scan * MINUTE), "{:?}", real),
            }
        }
    }
}
