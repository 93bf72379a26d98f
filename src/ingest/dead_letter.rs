//! The dead-letter outbox. A bad message's dead letter is written to the
//! store in the same batch as the offset that moves past it, then published;
//! the entry is deleted once the broker acknowledged it. After a crash, the
//! entries still in the outbox are compared with the tail of the dead-letter
//! topic (by their `slastream.source.*` headers) before anything is re-sent,
//! so every bad message is published exactly once.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client_config;
use crate::config::KafkaConfig;
use crate::store::{state, Batch, Store};

pub const HEADER_ERROR: &str = "slastream.error";
pub const HEADER_TOPIC: &str = "slastream.source.topic";
pub const HEADER_PARTITION: &str = "slastream.source.partition";
pub const HEADER_OFFSET: &str = "slastream.source.offset";
/// On a dead letter cut to fit the producer's `message.max.bytes`: the
/// original length in bytes.
pub const HEADER_TRUNCATED: &str = "slastream.truncated";

/// How far back in each dead-letter partition the restart check looks, on top
/// of the number of outbox entries.
const TAIL_MARGIN: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub raw: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub reason: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl DeadLetter {
    fn source(&self) -> (String, i32, i64) {
        (self.topic.clone(), self.partition, self.offset)
    }
}

/// What a delivery report said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Acked,
    /// Worth sending again later (broker unreachable, timeouts).
    Retry,
    /// Will never be accepted as it is (authorization, size, format).
    Rejected,
}

/// Delivery reports, collected by the producer's callback.
#[derive(Default)]
pub struct Deliveries {
    done: Mutex<Vec<(u64, Delivery)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(_) => Delivery::Acked,
            Err((e, _)) if is_permanent(e) => Delivery::Rejected,
            Err(_) => Delivery::Retry,
        };
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        d.push((*seq, outcome));
    }
}

/// Errors a dead letter will meet again however often it is sent.
fn is_permanent(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidTopic
                | C::InvalidRequiredAcks
                | C::UnsupportedForMessageFormat
        )
    )
}

/// The producer's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room kept in a message for librdkafka's own framing.
const FRAMING: usize = 1024;
/// Dead letters (bytes of their values) kept in memory before ingestion
/// waits for the dead-letter topic.
pub const MAX_PENDING_BYTES: usize = 64 << 20;
/// Dead letters kept in memory before ingestion waits for the topic.
pub const MAX_PENDING: usize = 100_000;
/// Longest wait before a dead letter that failed to deliver is sent again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The dead letter's value as sent: cut to what the producer accepts, with
/// the original length when it was cut.
fn fit(raw: &[u8], room: usize) -> (&[u8], Option<usize>) {
    if raw.len() <= room {
        (raw, None)
    } else {
        (&raw[..room], Some(raw.len()))
    }
}

pub struct DeadLetters {
    producer: BaseProducer<Deliveries>,
    topic: String,
    next_seq: u64,
    /// In the outbox, not yet acknowledged.
    pending: BTreeMap<u64, DeadLetter>,
    /// Entries below this sequence number are durable in the store: only
    /// those may be published (a crash must not leave a published dead
    /// letter whose offset is read again).
    durable_below: u64,
    pending_bytes: usize,
    /// Handed to the producer, no delivery report yet.
    in_flight: HashSet<u64>,
    /// Acknowledged: delete from the store with the next batch.
    acked: Vec<u64>,
    published: Arc<std::sync::atomic::AtomicU64>,
    /// Rejected for good: kept in the store (sent again after a restart),
    /// no longer in memory or in the way of later entries.
    parked: u64,
    /// The producer's `message.max.bytes`.
    max_message: usize,
    /// No send before this instant (after failed deliveries).
    backoff_until: Option<Instant>,
    backoff: Duration,
    last_warn: Option<Instant>,
    /// The outbox could not be compared with the topic (start-up was
    /// interrupted): nothing is sent, so nothing is sent twice.
    unverified: bool,
    /// Cuts waits short (except the final drain).
    shutdown: CancellationToken,
}

impl DeadLetters {
    /// Loads the outbox and drops the entries the topic already holds. The
    /// check gives up when `shutdown` is cancelled.
    pub fn open(
        kafka: &KafkaConfig,
        store: &dyn Store,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let producer: BaseProducer<Deliveries> = client_config(
            kafka,
            &[("linger.ms", "5"), ("message.timeout.ms", "300000")],
            &[],
        )
        .create_with_context(Deliveries::default())
        .context("creating the dead-letter producer")?;
        let stored: Vec<(u64, DeadLetter)> = state::outbox(store)?;
        let next_seq = stored.last().map(|(s, _)| s + 1).unwrap_or(0);
        let max_message = kafka
            .properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let mut me = DeadLetters {
            producer,
            topic: kafka.topics.dead_letter.clone(),
            next_seq,
            durable_below: next_seq,
            pending_bytes: stored.iter().map(|(_, d)| d.raw.len()).sum(),
            pending: stored.into_iter().collect(),
            in_flight: HashSet::new(),
            acked: Vec::new(),
            published: Arc::default(),
            parked: 0,
            max_message,
            backoff_until: None,
            backoff: Duration::from_secs(1),
            last_warn: None,
            unverified: false,
            shutdown: shutdown.clone(),
        };
        if !me.pending.is_empty() {
            let already =
                match published_sources(kafka, &me.topic, me.pending.len() as i64, shutdown) {
                    Some(found) => found,
                    None => {
                        me.unverified = true;
                        return Ok(me);
                    }
                };
            let before = me.pending.len();
            let mut freed = 0;
            me.pending.retain(|seq, dl| {
                let found = already.contains(&dl.source());
                if found {
                    me.acked.push(*seq);
                    freed += dl.raw.len();
                }
                !found
            });
            me.pending_bytes -= freed;
            tracing::info!(
                outbox = before,
                already_published = before - me.pending.len(),
                "dead-letter outbox checked against the topic"
            );
        }
        Ok(me)
    }

    /// Counts acknowledged publications (for tests and the summary).
    pub fn published(&self) -> u64 {
        self.published.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Dead letters rejected for good since start-up.
    pub fn parked(&self) -> u64 {
        self.parked
    }

    /// Whether the outbox in memory reached its bound: stage nothing more
    /// until the topic takes some.
    pub fn is_full(&self) -> bool {
        self.pending.len() >= MAX_PENDING || self.pending_bytes >= MAX_PENDING_BYTES
    }

    /// Puts `letters` into the outbox part of `batch`, and deletes the
    /// acknowledged entries.
    pub fn stage(&mut self, batch: &mut Batch, letters: Vec<DeadLetter>) {
        for seq in self.acked.drain(..) {
            state::delete_outbox(batch, seq);
        }
        for dl in letters {
            let seq = self.next_seq;
            self.next_seq += 1;
            state::put_outbox(batch, seq, &dl);
            self.pending_bytes += dl.raw.len();
            self.pending.insert(seq, dl);
        }
    }

    /// The sequence number the next staged entry gets: once the commit
    /// holding what was staged so far is durable, `mark_durable` with it.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The entries below `below` are durable in the store: they may be
    /// published from now on.
    pub fn mark_durable(&mut self, below: u64) {
        self.durable_below = self.durable_below.max(below);
    }

    /// Whether acknowledged entries wait to be deleted from the store.
    pub fn has_acked(&self) -> bool {
        !self.acked.is_empty()
    }

    /// Publishes what is pending and durable, and waits up to `wait` for
    /// delivery reports. Returns early once shutdown is cancelled.
    pub fn pump(&mut self, wait: Duration) {
        self.publish(wait, true);
    }

    fn publish(&mut self, wait: Duration, interruptible: bool) {
        if self.unverified {
            return;
        }
        if self.backoff_until.is_none_or(|t| Instant::now() >= t) {
            self.send_pending();
        }
        if self.in_flight.is_empty() {
            return;
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.producer.poll(left.min(Duration::from_millis(10)));
            self.collect();
            let stop = interruptible && self.shutdown.is_cancelled();
            if self.in_flight.is_empty() || left.is_zero() || stop {
                break;
            }
        }
    }

    fn send_pending(&mut self) {
        let mut rejected = Vec::new();
        for (seq, dl) in self.pending.range(..self.durable_below) {
            if self.in_flight.contains(seq) {
                continue;
            }
            let partition = dl.partition.to_string();
            let offset = dl.offset.to_string();
            let headers_len = HEADER_ERROR.len()
                + dl.reason.len()
                + HEADER_TOPIC.len()
                + dl.topic.len()
                + HEADER_PARTITION.len()
                + partition.len()
                + HEADER_OFFSET.len()
                + offset.len()
                + HEADER_TRUNCATED.len()
                + 20;
            let key_len = dl.key.as_ref().map_or(0, Vec::len);
            let room = self
                .max_message
                .saturating_sub(headers_len + key_len + FRAMING);
            let (value, cut_from) = fit(&dl.raw, room);
            let original = cut_from.map(|n| n.to_string());
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: HEADER_ERROR,
                    value: Some(dl.reason.as_str()),
                })
                .insert(Header {
                    key: HEADER_TOPIC,
                    value: Some(dl.topic.as_str()),
                })
                .insert(Header {
                    key: HEADER_PARTITION,
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: HEADER_OFFSET,
                    value: Some(offset.as_str()),
                });
            if let Some(n) = &original {
                headers = headers.insert(Header {
                    key: HEADER_TRUNCATED,
                    value: Some(n.as_str()),
                });
            }
            let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(*seq))
                .payload(value)
                .headers(headers);
            if let Some(k) = &dl.key {
                record = record.key(k);
            }
            match self.producer.send(record) {
                Ok(()) => {
                    self.in_flight.insert(*seq);
                }
                Err((e, _)) if is_permanent(&e) => {
                    tracing::error!(error = %e, source_topic = %dl.topic, partition = dl.partition, offset = dl.offset, "dead letter rejected by the producer; parked in the outbox until a restart");
                    rejected.push(*seq);
                }
                Err((e, _)) => {
                    // Queue full or similar: the entry stays pending.
                    tracing::debug!(error = %e, "dead letter not queued yet");
                    break;
                }
            }
        }
        for seq in rejected {
            self.park(seq);
        }
    }

    fn park(&mut self, seq: u64) {
        if let Some(dl) = self.pending.remove(&seq) {
            self.pending_bytes -= dl.raw.len();
            self.parked += 1;
        }
    }

    fn collect(&mut self) {
        let done = std::mem::take(
            &mut *self
                .producer
                .context()
                .done
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let mut failed = 0usize;
        for (seq, outcome) in done {
            self.in_flight.remove(&seq);
            match outcome {
                Delivery::Acked => {
                    if let Some(dl) = self.pending.remove(&seq) {
                        self.pending_bytes -= dl.raw.len();
                        self.acked.push(seq);
                        self.published
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.backoff = Duration::from_secs(1);
                }
                Delivery::Rejected => {
                    tracing::error!(
                        seq,
                        "dead letter rejected by the broker; parked in the outbox until a restart"
                    );
                    self.park(seq);
                }
                Delivery::Retry => failed += 1,
            }
        }
        if failed > 0 {
            // Sent again after a pause, not on every turn.
            self.backoff_until = Some(Instant::now() + self.backoff);
            if self
                .last_warn
                .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
            {
                tracing::warn!(failed, retry_in = ?self.backoff, pending = self.pending.len(), "dead letters not delivered; will retry");
                self.last_warn = Some(Instant::now());
            }
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Waits up to `wait` for everything in flight (shutdown).
    pub fn drain(&mut self, wait: Duration) {
        self.backoff_until = None;
        self.publish(wait, false);
        let _ = self.producer.flush(Duration::from_millis(100));
        self.collect();
    }
}

/// How long the start-up check may take, at most.
const CHECK_WAIT: Duration = Duration::from_secs(30);
/// Timeout of one metadata or watermark request of the check.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Retries `f` until it succeeds, `deadline` passes (`Err`) or `shutdown`
/// is cancelled (`Ok(None)`).
fn retrying<T>(
    deadline: Instant,
    shutdown: &CancellationToken,
    mut f: impl FnMut() -> Result<T, KafkaError>,
) -> Result<Option<T>, KafkaError> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        match f() {
            Ok(v) => return Ok(Some(v)),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "dead-letter topic check; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// The (topic, partition, offset) sources of the last dead letters in
/// `topic`; `None` when `shutdown` interrupted the check. A broker that
/// cannot be asked within `CHECK_WAIT` gives an empty set: the outbox is
/// sent again, and the topic may then hold some entries twice.
fn published_sources(
    kafka: &KafkaConfig,
    topic: &str,
    outbox: i64,
    shutdown: &CancellationToken,
) -> Option<HashSet<(String, i32, i64)>> {
    let deadline = Instant::now() + CHECK_WAIT;
    let give_up = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, topic, "cannot {what}; re-sending the dead-letter outbox (some entries may be published twice)");
        Some(HashSet::new())
    };
    let consumer: BaseConsumer = match client_config(
        kafka,
        &[],
        &[
            ("group.id", &format!("{}-dead-letter-check", kafka.group_id)),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "true"),
        ],
    )
    .create()
    {
        Ok(c) => c,
        Err(e) => return give_up("create the dead-letter check consumer", &e),
    };
    let metadata = match retrying(deadline, shutdown, || {
        consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)
    }) {
        Ok(Some(m)) => m,
        Ok(None) => return None,
        Err(e) => return give_up("read dead-letter topic metadata", &e),
    };
    let mut tpl = TopicPartitionList::new();
    let mut open = 0usize;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = match retrying(deadline, shutdown, || {
                consumer.fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
            }) {
                Ok(Some(w)) => w,
                Ok(None) => return None,
                Err(e) => return give_up("read dead-letter watermarks", &e),
            };
            if high > low {
                let from = (high - outbox - TAIL_MARGIN).max(low);
                if let Err(e) = tpl.add_partition_offset(topic, p.id(), Offset::Offset(from)) {
                    return give_up("build the check's assignment", &e);
                }
                open += 1;
            }
        }
    }
    let mut found = HashSet::new();
    if open == 0 {
        return Some(found);
    }
    if let Err(e) = consumer.assign(&tpl) {
        return give_up("read the dead-letter topic", &e);
    }
    while open > 0 && Instant::now() < deadline {
        if shutdown.is_cancelled() {
            return None;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                if let Some(h) = m.headers() {
                    let mut t = None;
                    let mut p = None;
                    let mut o = None;
                    for h in h.iter() {
                        let v = h.value.map(String::from_utf8_lossy);
                        match h.key {
                            HEADER_TOPIC => t = v.map(|v| v.into_owned()),
                            HEADER_PARTITION => p = v.and_then(|v| v.parse().ok()),
                            HEADER_OFFSET => o = v.and_then(|v| v.parse().ok()),
                            _ => {}
                        }
                    }
                    if let (Some(t), Some(p), Some(o)) = (t, p, o) {
                        found.insert((t, p, o));
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => tracing::warn!(error = %e, "reading the dead-letter topic"),
            None => {}
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_value_is_cut_and_its_length_kept() {
        assert_eq!(fit(b"abc", 3), (&b"abc"[..], None));
        assert_eq!(fit(b"abcdef", 4), (&b"abcd"[..], Some(6)));
    }

    #[test]
    fn permanent_errors_are_told_from_transient_ones() {
        use rdkafka::types::RDKafkaErrorCode as C;
        assert!(is_permanent(&KafkaError::MessageProduction(
            C::MessageSizeTooLarge
        )));
        assert!(is_permanent(&KafkaError::MessageProduction(
            C::TopicAuthorizationFailed
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(C::QueueFull)));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            C::MessageTimedOut
        )));
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::*;
    use crate::store::MemStore;

    fn letter(n: usize, size: usize) -> DeadLetter {
        DeadLetter {
            raw: vec![b'x'; size],
            key: None,
            reason: "invalid".into(),
            topic: "sla.probes".into(),
            partition: 0,
            offset: n as i64,
        }
    }

    #[test]
    fn the_outbox_in_memory_is_bounded() {
        // Nothing is sent here: the broker address is never contacted.
        let mut kafka = crate::config::Config::default().kafka;
        kafka.brokers = "127.0.0.1:1".into();
        let store = MemStore::default();
        let mut d =
            DeadLetters::open(&kafka, &store, &CancellationToken::new()).expect("outbox opens");
        let mut batch = Batch::default();
        let each = 1 << 20;
        let n = MAX_PENDING_BYTES / each;
        d.stage(&mut batch, (0..n - 1).map(|i| letter(i, each)).collect());
        assert!(!d.is_full());
        d.stage(&mut batch, vec![letter(n, each)]);
        assert!(d.is_full());
        // A rejected entry leaves memory (it stays in the store).
        d.park(0);
        assert!(!d.is_full());
        assert_eq!(d.parked(), 1);
        assert_eq!(d.pending(), n - 1);
    }

    #[test]
    fn a_dead_letter_is_published_only_once_its_commit_is_durable() {
        // Sending only queues the record: the broker address is never reached
        // within the test.
        let mut kafka = crate::config::Config::default().kafka;
        kafka.brokers = "127.0.0.1:1".into();
        let store = MemStore::default();
        let mut d =
            DeadLetters::open(&kafka, &store, &CancellationToken::new()).expect("outbox opens");
        let mut batch = Batch::default();
        d.stage(&mut batch, vec![letter(0, 10), letter(1, 10)]);
        let first_commit_ends = d.next_seq();
        let mut later = Batch::default();
        d.stage(&mut later, vec![letter(2, 10)]);
        d.pump(Duration::ZERO);
        assert!(d.in_flight.is_empty(), "sent before its commit was durable");
        d.mark_durable(first_commit_ends);
        d.pump(Duration::ZERO);
        let mut sent: Vec<u64> = d.in_flight.iter().copied().collect();
        sent.sort_unstable();
        assert_eq!(sent, vec![0, 1], "only the durable entries are sent");
        d.mark_durable(d.next_seq());
        d.pump(Duration::ZERO);
        assert_eq!(d.in_flight.len(), 3);
    }
}
