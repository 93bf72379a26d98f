//! Event-time alignment of the partitions one consumer holds, with no Kafka
//! client in sight: a `Lane` per partition buffers what was fetched, and
//! `apply_lanes` applies the partitions in step in event time.
//!
//! A message more than `slack` ahead of the slowest partition that still
//! delivers waits (its partition queue is not read) until the others catch
//! up. Without this, a consumer catching up a backlog would read one topic
//! days ahead of another and turn the slower topic's events into late ones.
//! Nothing may hold a partition forever: a far-future event is invalid and
//! is applied (dead-lettered) at once, a partition that delivers only
//! undecodable messages counts as idle, and the corrective re-fetches after
//! a fetch that skipped ahead are bounded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::dead_letter::DeadLetter;
use super::process::process_decoded;
use crate::engine::{Applied, Engine, IngestCounts};
use crate::model::event::decode;
use crate::model::time::Millis;

/// How long a partition that delivers no event still counts as holding back
/// the partitions ahead of it in event time.
pub const IDLE_AFTER: Duration = Duration::from_secs(2);
/// How far before a position the first corrective fetch starts (then ×4).
pub const RESYNC_STEP: i64 = 512;
/// Corrective fetches before a lane accepts the first offset it gets.
pub const MAX_RESEEKS: u32 = 5;
/// How long a lane positioned beyond the high watermark the broker reported
/// may receive nothing before it fetches from earlier (some brokers answer a
/// fetch from inside their last record batch with nothing), and how long,
/// once it read from earlier, the log may end below its position before the
/// topic counts as recreated.
pub const RESYNC_WAIT: Duration = Duration::from_secs(1);
/// Messages a lane may hold before its queue is no longer read.
pub const LANE_BUFFER: usize = 2048;
/// Bytes a lane may hold before its queue is no longer read.
pub const LANE_BYTES: usize = 8 << 20;

/// Where a partition must be read from again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    Beginning,
    Offset(i64),
}

/// A fetched message not applied yet.
#[derive(Debug)]
pub struct Pending {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub raw: Vec<u8>,
    arrived: Instant,
}

/// One assigned partition: what was fetched and not applied yet, the next
/// offset to apply, and how far it got in event time.
#[derive(Debug)]
pub struct Lane {
    pub topic: String,
    pub partition: i32,
    buf: VecDeque<Pending>,
    buf_bytes: usize,
    /// Next offset to apply (persisted with the state).
    pub next: Option<i64>,
    /// Next offset to buffer (skips copies fetched twice).
    fetched_next: Option<i64>,
    last_applied: Option<Millis>,
    /// The waiting head: its offset and event time.
    head: Option<(i64, Millis)>,
    /// When it last delivered an event that moved its frontier (or was
    /// positioned). Undecodable and invalid messages do not count: a
    /// partition that only delivers garbage must not hold the others back.
    last_event: Instant,
    /// Applied since the last store batch.
    pub advanced: bool,
    /// Position the partition was (re)started from, until its first message
    /// confirms it.
    resync: Option<i64>,
    seen_before: bool,
    step: i64,
    reseeks: u32,
    last_seek_beginning: bool,
    /// A seek the loop must issue (the fetch skipped ahead).
    reseek: Option<Seek>,
    /// Messages skipped because they no longer exist, not yet counted.
    skipped: u64,
    /// The stored position was beyond the high watermark at assignment:
    /// the first message tells whether the broker restarted the partition
    /// below it (the topic was recreated).
    beyond_end: bool,
    /// Same, kept until the position is found: if nothing comes, the lane
    /// fetches from earlier (`check_stalled`).
    past_watermark: bool,
    /// When the lane was last (re)positioned.
    positioned_at: Instant,
    /// The highest offset below the position delivered while finding it.
    max_below: Option<i64>,
    /// High watermark observed at assignment, until reached.
    target: Option<i64>,
    reached: bool,
}

impl Lane {
    /// A lane for a partition assigned at `now`, to be read from `next`
    /// (`None`: nothing stored, from the beginning).
    pub fn new(topic: &str, partition: i32, next: Option<i64>, now: Instant) -> Lane {
        let mut l = Lane {
            topic: topic.to_string(),
            partition,
            buf: VecDeque::new(),
            buf_bytes: 0,
            next,
            fetched_next: next,
            last_applied: None,
            head: None,
            last_event: now,
            advanced: false,
            resync: None,
            seen_before: false,
            step: RESYNC_STEP,
            reseeks: 0,
            last_seek_beginning: false,
            reseek: None,
            skipped: 0,
            beyond_end: false,
            past_watermark: false,
            positioned_at: now,
            max_below: None,
            target: None,
            reached: false,
        };
        l.expect_from(next, now);
        l
    }

    /// Whether its queue may be read (the buffer has room).
    pub fn has_room(&self) -> bool {
        self.buf.len() < LANE_BUFFER && self.buf_bytes < LANE_BYTES
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buf_bytes
    }

    /// Buffers a fetched message, unless it was applied or buffered already
    /// or the fetch skipped ahead of the expected position.
    pub fn push(&mut self, offset: i64, key: Option<&[u8]>, raw: &[u8], now: Instant) {
        if std::mem::take(&mut self.beyond_end) {
            if let Some(stored) = self.resync.filter(|t| offset < *t && self.reseeks == 0) {
                // Asked for a position past the end, the broker restarted
                // the partition lower: the topic was recreated.
                tracing::error!(
                    topic = %self.topic,
                    partition = self.partition,
                    stored,
                    got = offset,
                    "the stored offset is beyond the end of the partition and the broker \
                     restarted it below: the topic was recreated; reading it from the beginning"
                );
                self.forget_position();
            }
        }
        if let Some(target) = self.resync {
            // Still finding its position: it delivers, so it still counts.
            self.last_event = now;
            if offset < target {
                // Before the position: already applied or buffered.
                self.seen_before = true;
                self.max_below = self.max_below.max(Some(offset));
                return;
            }
            if offset > target && !self.seen_before {
                if self.reseek.is_some() {
                    return; // a corrective fetch is already asked for
                }
                // The broker answered a fetch from the middle of a record
                // batch with the next batch (some brokers do): start
                // earlier and skip forward, so nothing between is lost.
                if self.fetch_earlier(target, now) {
                    tracing::debug!(topic = %self.topic, partition = self.partition, target, got = offset, "fetch skipped ahead; fetching from earlier");
                    return;
                }
                // Earlier fetches still start after the position: the
                // messages between no longer exist. Take what there is.
                let gap = offset - target;
                tracing::warn!(
                    topic = %self.topic,
                    partition = self.partition,
                    expected = target,
                    got = offset,
                    skipped = gap,
                    "data lost upstream: offsets between the stored position and the first \
                     message the broker returns are gone; continuing from there"
                );
                self.skipped += gap as u64;
            }
            self.resync = None;
            self.past_watermark = false;
        }
        if self.fetched_next.is_some_and(|n| offset < n) {
            return;
        }
        self.fetched_next = Some(offset + 1);
        self.buf_bytes += raw.len();
        self.buf.push_back(Pending {
            offset,
            key: key.map(<[u8]>::to_vec),
            raw: raw.to_vec(),
            arrived: now,
        });
    }

    /// The topic was recreated: the partition is read again from its
    /// beginning, as a new one.
    fn forget_position(&mut self) {
        self.resync = None;
        self.fetched_next = None;
        self.next = None;
        self.target = None;
        self.reached = false;
        self.past_watermark = false;
    }

    /// Asks for a corrective fetch from before the position (`step` further
    /// back each time, at most `MAX_RESEEKS` times). False when none is left.
    fn fetch_earlier(&mut self, target: i64, now: Instant) -> bool {
        if self.reseeks >= MAX_RESEEKS || self.last_seek_beginning {
            return false;
        }
        let from = target - self.step;
        let seek = if from <= 0 {
            Seek::Beginning
        } else {
            Seek::Offset(from)
        };
        self.last_seek_beginning = seek == Seek::Beginning;
        self.reseek = Some(seek);
        self.step = self.step.saturating_mul(4);
        self.reseeks += 1;
        self.positioned_at = now;
        true
    }

    /// A lane positioned beyond the high watermark the broker reported that
    /// still has not found its position after `RESYNC_WAIT`: with nothing
    /// delivered, it fetches from earlier (a broker whose watermark lags
    /// answers a fetch from inside its last record batch with nothing);
    /// when reading from earlier delivered only offsets well below the
    /// position and then nothing more, the log ends below it: the topic was
    /// recreated and is read from its beginning. Call it every turn.
    pub fn check_stalled(&mut self, now: Instant) {
        let Some(target) = self.resync else {
            return;
        };
        if !self.past_watermark
            || self.reseek.is_some()
            || now.saturating_duration_since(self.positioned_at) < RESYNC_WAIT
            || now.saturating_duration_since(self.last_event) < RESYNC_WAIT
        {
            return;
        }
        if !self.seen_before {
            if self.fetch_earlier(target, now) {
                tracing::debug!(topic = %self.topic, partition = self.partition, target, "nothing delivered beyond the high watermark; fetching from earlier");
            }
            return;
        }
        // The last offset in the log is `max_below`: one below the position
        // is where a lane that read everything stands, anything lower means
        // the log now ends before what was applied.
        if self.max_below.is_some_and(|m| m + 1 < target) {
            tracing::error!(
                topic = %self.topic,
                partition = self.partition,
                stored = target,
                log_end = self.max_below.map_or(0, |m| m + 1),
                "the stored offset is beyond the end of the partition, which stays below it: \
                 the topic was recreated; reading it from the beginning"
            );
            self.forget_position();
            self.restart_at(None, now);
            self.reseek = Some(Seek::Beginning);
        } else {
            // It read everything: nothing more to find until new messages.
            self.past_watermark = false;
        }
    }

    /// Expects the partition to be read from `target` on: messages before it
    /// are skipped, and a first message after it means the fetch skipped some.
    pub fn expect_from(&mut self, target: Option<i64>, now: Instant) {
        // A partition just positioned is expected to deliver soon.
        self.last_event = now;
        self.positioned_at = now;
        self.max_below = None;
        self.resync = target.filter(|t| *t > 0);
        self.seen_before = false;
        self.step = RESYNC_STEP;
        self.reseeks = 0;
        self.last_seek_beginning = false;
        self.reseek = None;
    }

    /// Repositions at `from` (`None`: the beginning), forgetting what was
    /// buffered; the caller seeks the partition there.
    pub fn restart_at(&mut self, from: Option<i64>, now: Instant) {
        self.buf.clear();
        self.buf_bytes = 0;
        self.head = None;
        self.fetched_next = from;
        self.expect_from(from, now);
    }

    /// Drops what is buffered and not applied; the returned seek re-reads it.
    pub fn discard_buffer(&mut self, now: Instant) -> Option<Seek> {
        if self.buf.is_empty() {
            return None;
        }
        let next = self.next;
        self.restart_at(next, now);
        Some(next.map_or(Seek::Beginning, Seek::Offset))
    }

    /// The corrective seek to issue, if one is due.
    pub fn take_reseek(&mut self) -> Option<Seek> {
        self.reseek.take()
    }

    /// A corrective seek failed: it will be asked for again.
    pub fn reseek_failed(&mut self, now: Instant) {
        let target = self.resync;
        self.expect_from(target, now);
    }

    /// Messages skipped since the last call (gone upstream).
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Sets the high watermark observed at assignment: the lane is caught up
    /// once its next offset reaches it.
    pub fn set_target(&mut self, high: i64, start: i64) {
        self.reached = start >= high;
        self.target = Some(high);
    }

    /// The stored position is beyond the high watermark: if the first
    /// message comes from below it, the topic was recreated and is read from
    /// there. (A broker whose watermark lags its log delivers from the
    /// position itself, and nothing changes.)
    pub fn suspect_beyond_end(&mut self) {
        self.beyond_end = true;
        self.past_watermark = self.resync.is_some();
    }

    /// Whether its watermarks are still to be read.
    pub fn needs_target(&self) -> bool {
        self.target.is_none() && !self.reached
    }

    /// Whether the lane reached the high watermark observed at assignment.
    pub fn caught_up(&mut self) -> bool {
        if !self.reached {
            self.reached = matches!((self.target, self.next), (Some(t), Some(n)) if n >= t);
        }
        self.reached
    }

    /// Marks the lane caught up (its lag was seen at 0).
    pub fn mark_caught_up(&mut self) {
        self.reached = true;
    }

    /// How far this partition got: its waiting message, else its last event.
    fn frontier(&self) -> Option<Millis> {
        self.head.map(|(_, t)| t).or(self.last_applied)
    }

    fn active(&self, now: Instant) -> bool {
        !self.buf.is_empty() || now.saturating_duration_since(self.last_event) < IDLE_AFTER
    }
}

/// The latest event time lane `i` may apply now.
/// A partition that has delivered nothing yet (but may still) holds every
/// other one back entirely: its first event could be the oldest.
pub fn limit(lanes: &[Lane], i: usize, slack: Millis, now: Instant) -> Option<Millis> {
    let mut min: Option<Millis> = None;
    for (j, l) in lanes.iter().enumerate() {
        if j == i || !l.active(now) {
            continue;
        }
        let f = l.frontier().unwrap_or(Millis::MIN);
        min = Some(min.map_or(f, |m| m.min(f)));
    }
    min.map(|m| m.saturating_add(slack))
}

/// How a pass of `apply_lanes` decides and how much it may do.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// How far ahead of the slowest active partition an event may be.
    pub slack: Millis,
    /// Wall clock, for the engine.
    pub wall_now: Millis,
    /// Events later than `wall_now + max_future_skew` are invalid: they are
    /// applied (rejected) at once, never held.
    pub max_future_skew: Millis,
    /// At most this many messages per call.
    pub max_messages: usize,
    /// At most (about) this many bytes per call.
    pub max_bytes: usize,
}

/// What a pass of `apply_lanes` did.
#[derive(Debug, Default)]
pub struct Progress {
    pub messages: u64,
    pub bytes: usize,
    pub counts: IngestCounts,
}

/// Applies buffered messages in event-time step, within the budget of
/// `gate`; dead letters go to `letters`.
pub fn apply_lanes(
    lanes: &mut [Lane],
    engine: &mut Engine,
    gate: &Gate,
    now: Instant,
    letters: &mut Vec<DeadLetter>,
) -> Progress {
    let mut done = Progress::default();
    let future = gate.wall_now.saturating_add(gate.max_future_skew);
    loop {
        let mut progress = false;
        for i in 0..lanes.len() {
            if lanes[i].buf.is_empty() {
                continue;
            }
            // Only lane `i` moves while its messages are applied: the
            // others' frontiers, and so its limit, stay as they are.
            let max = limit(lanes, i, gate.slack, now);
            let held = |t: Millis| t <= future && max.is_some_and(|max| t > max);
            while let Some(head) = lanes[i].buf.front() {
                if done.messages as usize >= gate.max_messages || done.bytes >= gate.max_bytes {
                    return done;
                }
                // A waiting head is not decoded again while it still waits.
                if let Some((o, t)) = lanes[i].head {
                    if o == head.offset && held(t) {
                        break;
                    }
                }
                let decoded = decode(&head.raw);
                let at = decoded.as_ref().ok().map(|ev| ev.occurred_at);
                if let Some(t) = at.filter(|t| held(*t)) {
                    let offset = head.offset;
                    drop(decoded);
                    lanes[i].head = Some((offset, t));
                    break;
                }
                let p = process_decoded(engine, &head.raw, decoded, gate.wall_now);
                let lane = &mut lanes[i];
                let Some(head) = lane.buf.pop_front() else {
                    break;
                };
                lane.buf_bytes -= head.raw.len();
                progress = true;
                lane.head = None;
                if let (Some(at), false) = (at, matches!(p.result, Applied::Invalid(_))) {
                    lane.last_applied = Some(lane.last_applied.map_or(at, |l| l.max(at)));
                    lane.last_event = lane.last_event.max(head.arrived);
                }
                lane.next = Some(head.offset + 1);
                lane.advanced = true;
                done.messages += 1;
                done.bytes += head.raw.len();
                done.counts.record(&p.result);
                if let Some(reason) = p.dead_letter {
                    letters.push(DeadLetter {
                        raw: head.raw,
                        key: head.key,
                        reason,
                        topic: lane.topic.clone(),
                        partition: lane.partition,
                        offset: head.offset,
                    });
                }
            }
        }
        if !progress {
            return done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::time::{parse_rfc3339, HOUR, MINUTE, SECOND};

    fn wall() -> Millis {
        parse_rfc3339("2026-11-10T12:00:00Z").expect("time")
    }

    fn probe(id: &str, at: Millis) -> Vec<u8> {
        format!(
            r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{}","customer_id":"acme","probe_id":"p","service":"api","success":true,"latency_ms":5}}"#,
            crate::model::time::format_rfc3339(at)
        )
        .into_bytes()
    }

    fn gate() -> Gate {
        Gate {
            slack: MINUTE,
            wall_now: wall(),
            max_future_skew: 5 * MINUTE,
            max_messages: 4096,
            max_bytes: 16 << 20,
        }
    }

    fn engine() -> Engine {
        Engine::new(&Config::default())
    }

    fn apply(lanes: &mut [Lane], e: &mut Engine, now: Instant) -> (Progress, Vec<DeadLetter>) {
        let mut letters = Vec::new();
        let p = apply_lanes(lanes, e, &gate(), now, &mut letters);
        (p, letters)
    }

    #[test]
    fn a_partition_ahead_waits_for_the_slower_one() {
        let t0 = Instant::now();
        let mut lanes = vec![Lane::new("a", 0, None, t0), Lane::new("b", 0, None, t0)];
        lanes[0].push(0, None, &probe("a0", wall() - HOUR), t0);
        lanes[1].push(0, None, &probe("b0", wall() - 2 * HOUR), t0);
        lanes[1].push(1, None, &probe("b1", wall() - HOUR + 30 * SECOND), t0);
        let mut e = engine();
        let (p, _) = apply(&mut lanes, &mut e, t0);
        // b0 first (a waits: it is 1 h ahead of b), then a0 and b1.
        assert_eq!(p.messages, 3);
        assert_eq!(p.counts.accepted, 3);
        assert_eq!(lanes[0].next, Some(1));
        assert_eq!(lanes[1].next, Some(2));

        // b is still active and behind: a's next event waits for it.
        lanes[0].push(1, None, &probe("a1", wall() - 10 * MINUTE), t0);
        let (p, _) = apply(&mut lanes, &mut e, t0);
        assert_eq!(p.messages, 0);
        assert_eq!(lanes[0].buffered(), 1);
        // Once b has been quiet for IDLE_AFTER, a goes on.
        let (p, _) = apply(&mut lanes, &mut e, t0 + IDLE_AFTER);
        assert_eq!(p.messages, 1);
    }

    #[test]
    fn a_far_future_event_is_rejected_at_once_and_does_not_hold_its_partition() {
        let t0 = Instant::now();
        let mut lanes = vec![Lane::new("a", 0, None, t0), Lane::new("b", 0, None, t0)];
        // b is active and far behind: anything on a more than a minute later waits.
        lanes[1].push(0, None, &probe("b0", wall() - 3 * HOUR), t0);
        lanes[1].push(1, None, &probe("b1", wall() - 3 * HOUR), t0);
        let mut e = engine();
        apply(&mut lanes, &mut e, t0);
        lanes[0].push(0, None, &probe("future", wall() + 2 * HOUR), t0);
        lanes[0].push(1, None, &probe("x", wall() - 3 * HOUR), t0);
        let (p, letters) = apply(&mut lanes, &mut e, t0);
        // Had the future event waited behind b's frontier, x behind it
        // would have waited too.
        assert_eq!(p.messages, 4, "the future event does not wait behind b");
        assert_eq!(p.counts.invalid, 1);
        assert_eq!(p.counts.accepted, 3);
        assert_eq!(letters.len(), 1);
        assert!(letters[0].reason.contains("ahead"), "{}", letters[0].reason);
        assert_eq!(letters[0].offset, 0);
        assert_eq!(lanes[0].next, Some(2));
    }

    #[test]
    fn a_partition_of_garbage_does_not_hold_the_others() {
        let t0 = Instant::now();
        let mut lanes = vec![Lane::new("a", 0, None, t0), Lane::new("b", 0, None, t0)];
        let mut e = engine();
        let mut accepted = 0;
        // b gets garbage every second, a valid events.
        for s in 0..10u64 {
            let now = t0 + Duration::from_secs(s);
            lanes[1].push(s as i64, None, b"garbage", now);
            lanes[0].push(
                s as i64,
                None,
                &probe(&format!("a{s}"), wall() - HOUR + s as Millis * MINUTE),
                now,
            );
            let (p, letters) = apply(&mut lanes, &mut e, now);
            accepted += p.counts.accepted;
            assert!(letters.iter().all(|l| l.topic == "b"));
        }
        // Held only while b could still deliver its first event (IDLE_AFTER).
        assert!(accepted >= 8, "accepted {accepted}");
        assert_eq!(lanes[1].next, Some(10));
        assert_eq!(lanes[1].buffered(), 0);
    }

    #[test]
    fn a_skipped_ahead_fetch_is_corrected_by_fetching_from_earlier() {
        let t0 = Instant::now();
        let mut l = Lane::new("a", 0, Some(1000), t0);
        l.push(1010, None, b"x", t0);
        assert_eq!(l.take_reseek(), Some(Seek::Offset(1000 - RESYNC_STEP)));
        assert_eq!(l.buffered(), 0);
        // The earlier fetch: messages before the position are skipped.
        l.push(995, None, b"x", t0);
        l.push(1000, None, b"x", t0);
        l.push(1001, None, b"x", t0);
        assert_eq!(l.buffered(), 2);
        assert_eq!(l.take_skipped(), 0);
    }

    #[test]
    fn an_endless_reseek_is_bounded_and_the_gap_counted() {
        let t0 = Instant::now();
        // Stored 5000, but the log now starts at 8000 (retention).
        let mut l = Lane::new("a", 0, Some(5000), t0);
        let mut seeks = Vec::new();
        for _ in 0..20 {
            l.push(8000, None, b"x", t0);
            match l.take_reseek() {
                Some(s) => seeks.push(s),
                None => break,
            }
        }
        assert!(seeks.len() <= MAX_RESEEKS as usize, "{seeks:?}");
        assert_eq!(seeks.last(), Some(&Seek::Beginning));
        assert_eq!(l.buffered(), 1, "the first offset it gets is accepted");
        assert_eq!(l.take_skipped(), 3000);
        assert_eq!(l.take_skipped(), 0);
        l.push(8001, None, b"x", t0);
        assert_eq!(l.buffered(), 2);
    }

    #[test]
    fn a_recreated_topic_is_read_from_its_beginning() {
        let t0 = Instant::now();
        // Stored 100; the new topic holds offsets 0..30, and the broker
        // restarts the fetch at 0.
        let mut l = Lane::new("a", 0, Some(100), t0);
        l.suspect_beyond_end();
        l.push(0, None, b"x", t0);
        l.push(1, None, b"x", t0);
        assert_eq!(l.buffered(), 2);
        assert!(l.needs_target(), "its catch-up target is read again");
        assert_eq!(l.next, None);

        // A watermark that only lagged: the broker serves the position.
        let mut l = Lane::new("a", 0, Some(100), t0);
        l.suspect_beyond_end();
        l.push(100, None, b"x", t0);
        l.push(101, None, b"x", t0);
        assert_eq!(l.buffered(), 2);
        assert_eq!(l.next, Some(100));
        // ... and skips already-applied copies as always.
        let mut l = Lane::new("a", 0, Some(100), t0);
        l.suspect_beyond_end();
        l.push(120, None, b"x", t0);
        assert!(l.take_reseek().is_some());
        l.push(90, None, b"x", t0);
        l.push(100, None, b"x", t0);
        assert_eq!(l.buffered(), 1);
    }

    #[test]
    fn a_lane_is_caught_up_at_the_high_watermark_seen_at_assignment() {
        let t0 = Instant::now();
        let mut lanes = vec![Lane::new("a", 0, Some(1), t0)];
        lanes[0].set_target(3, 1);
        assert!(!lanes[0].caught_up());
        let mut e = engine();
        lanes[0].push(1, None, &probe("a1", wall() - HOUR), t0);
        apply(&mut lanes, &mut e, t0);
        assert!(!lanes[0].caught_up());
        lanes[0].push(2, None, b"garbage", t0);
        apply(&mut lanes, &mut e, t0);
        assert!(lanes[0].caught_up());
        // An empty partition is caught up from the start.
        let mut empty = Lane::new("b", 0, None, t0);
        empty.set_target(0, 0);
        assert!(empty.caught_up());
    }

    #[test]
    fn batches_are_bounded_in_bytes() {
        let t0 = Instant::now();
        let mut lanes = vec![Lane::new("a", 0, None, t0)];
        for o in 0..10 {
            lanes[0].push(o, None, &vec![b'x'; 1000], t0);
        }
        let mut e = engine();
        let mut letters = Vec::new();
        let g = Gate {
            max_bytes: 3000,
            ..gate()
        };
        let p = apply_lanes(&mut lanes, &mut e, &g, t0, &mut letters);
        assert_eq!(p.messages, 3);
        assert_eq!(lanes[0].buffered(), 7);
        // The buffer is bounded in bytes too.
        let mut big = Lane::new("b", 0, None, t0);
        big.push(0, None, &vec![b'x'; LANE_BYTES], t0);
        assert!(!big.has_room());
    }

    #[test]
    fn a_discarded_buffer_is_read_again_from_the_next_offset() {
        let t0 = Instant::now();
        let mut l = Lane::new("a", 0, Some(10), t0);
        l.push(10, None, b"x", t0);
        l.push(11, None, b"x", t0);
        assert_eq!(l.discard_buffer(t0), Some(Seek::Offset(10)));
        assert_eq!(l.buffered(), 0);
        l.push(10, None, b"x", t0);
        assert_eq!(l.buffered(), 1, "the discarded offsets are taken again");
    }

    #[test]
    fn a_lane_beyond_a_lagging_watermark_that_gets_nothing_fetches_from_earlier() {
        let t0 = Instant::now();
        // Stored 1000, the broker reported a high watermark below it, and a
        // fetch from 1000 (inside the last record batch) returns nothing.
        let mut l = Lane::new("a", 0, Some(1000), t0);
        l.suspect_beyond_end();
        l.check_stalled(t0 + RESYNC_WAIT / 2);
        assert_eq!(l.take_reseek(), None, "not before RESYNC_WAIT");
        let t1 = t0 + RESYNC_WAIT;
        l.check_stalled(t1);
        assert_eq!(l.take_reseek(), Some(Seek::Offset(1000 - RESYNC_STEP)));
        // The batch from earlier holds the position and what follows.
        for o in 900..1003 {
            l.push(o, None, b"x", t1);
        }
        assert_eq!(l.buffered(), 3, "1000..1003, nothing applied twice");
        assert_eq!(l.next, Some(1000), "not taken for a recreated topic");
        l.check_stalled(t1 + RESYNC_WAIT * 3);
        assert_eq!(l.take_reseek(), None);
    }

    #[test]
    fn a_lane_that_read_everything_beyond_a_lagging_watermark_stays_put() {
        let t0 = Instant::now();
        let mut l = Lane::new("a", 0, Some(1000), t0);
        l.suspect_beyond_end();
        let t1 = t0 + RESYNC_WAIT;
        l.check_stalled(t1);
        assert!(l.take_reseek().is_some());
        // The log ends right at the position: everything was applied.
        for o in 600..1000 {
            l.push(o, None, b"x", t1);
        }
        let t2 = t1 + RESYNC_WAIT;
        l.check_stalled(t2);
        assert_eq!(l.take_reseek(), None);
        assert_eq!(l.next, Some(1000));
        assert_eq!(l.buffered(), 0);
        // New messages are taken from the position on.
        l.push(1000, None, b"x", t2);
        assert_eq!(l.buffered(), 1);
    }

    #[test]
    fn a_partition_that_ends_well_below_the_stored_offset_was_recreated() {
        let t0 = Instant::now();
        // A broker that answers a fetch past its end with nothing (no
        // offset-out-of-range): stored 1000, the new topic holds 0..30.
        let mut l = Lane::new("a", 0, Some(1000), t0);
        l.suspect_beyond_end();
        let mut t = t0;
        let mut seeks = Vec::new();
        while seeks.last() != Some(&Seek::Beginning) {
            t += RESYNC_WAIT;
            l.check_stalled(t);
            seeks.push(l.take_reseek().expect("a fetch from earlier"));
        }
        for o in 0..30 {
            l.push(o, None, b"x", t);
        }
        assert_eq!(l.buffered(), 0, "below the stored offset: skipped for now");
        t += RESYNC_WAIT;
        l.check_stalled(t);
        assert_eq!(l.take_reseek(), Some(Seek::Beginning));
        assert_eq!(l.next, None);
        for o in 0..30 {
            l.push(o, None, b"x", t);
        }
        assert_eq!(l.buffered(), 30, "read again as a new partition");
    }
}
