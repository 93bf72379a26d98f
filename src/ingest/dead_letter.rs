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
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client_config;
use crate::config::KafkaConfig;
use crate::store::{state, Batch, Store};

pub const HEADER_ERROR: &str = "slastream.error";
pub const HEADER_TOPIC: &str = "slastream.source.topic";
pub const HEADER_PARTITION: &str = "slastream.source.partition";
pub const HEADER_OFFSET: &str = "slastream.source.offset";

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

/// Delivery reports, collected by the producer's callback.
#[derive(Default)]
pub struct Deliveries {
    done: Mutex<Vec<(u64, bool)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "dead letter not delivered; will retry");
        }
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        d.push((*seq, result.is_ok()));
    }
}

pub struct DeadLetters {
    producer: BaseProducer<Deliveries>,
    topic: String,
    next_seq: u64,
    /// In the store, not yet acknowledged.
    pending: BTreeMap<u64, DeadLetter>,
    /// Handed to the producer, no delivery report yet.
    in_flight: HashSet<u64>,
    /// Acknowledged: delete from the store with the next batch.
    acked: Vec<u64>,
    published: Arc<std::sync::atomic::AtomicU64>,
}

impl DeadLetters {
    /// Loads the outbox and drops the entries the topic already holds.
    pub fn open(kafka: &KafkaConfig, store: &dyn Store) -> anyhow::Result<Self> {
        let producer: BaseProducer<Deliveries> = client_config(
            kafka,
            &[("linger.ms", "5"), ("message.timeout.ms", "300000")],
            &[],
        )
        .create_with_context(Deliveries::default())
        .context("creating the dead-letter producer")?;
        let stored: Vec<(u64, DeadLetter)> = state::outbox(store)?;
        let next_seq = stored.last().map(|(s, _)| s + 1).unwrap_or(0);
        let mut me = DeadLetters {
            producer,
            topic: kafka.topics.dead_letter.clone(),
            next_seq,
            pending: stored.into_iter().collect(),
            in_flight: HashSet::new(),
            acked: Vec::new(),
            published: Arc::default(),
        };
        if !me.pending.is_empty() {
            let already = published_sources(kafka, &me.topic, me.pending.len() as i64)?;
            let before = me.pending.len();
            me.pending.retain(|seq, dl| {
                let found = already.contains(&dl.source());
                if found {
                    me.acked.push(*seq);
                }
                !found
            });
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
            self.pending.insert(seq, dl);
        }
    }

    /// Whether acknowledged entries wait to be deleted from the store.
    pub fn has_acked(&self) -> bool {
        !self.acked.is_empty()
    }

    /// Publishes what is pending and waits up to `wait` for delivery reports.
    /// Call only after the batch holding the entries was written.
    pub fn pump(&mut self, wait: Duration) {
        for (seq, dl) in &self.pending {
            if self.in_flight.contains(seq) {
                continue;
            }
            let partition = dl.partition.to_string();
            let offset = dl.offset.to_string();
            let headers = OwnedHeaders::new()
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
            let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(*seq))
                .payload(&dl.raw)
                .headers(headers);
            if let Some(k) = &dl.key {
                record = record.key(k);
            }
            match self.producer.send(record) {
                Ok(()) => {
                    self.in_flight.insert(*seq);
                }
                Err((e, _)) => {
                    // Queue full or similar: the entry stays pending.
                    tracing::debug!(error = %e, "dead letter not queued yet");
                    break;
                }
            }
        }
        if self.in_flight.is_empty() {
            return;
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.producer.poll(left.min(Duration::from_millis(10)));
            self.collect();
            if self.in_flight.is_empty() || left.is_zero() {
                break;
            }
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
        for (seq, ok) in done {
            self.in_flight.remove(&seq);
            if ok && self.pending.remove(&seq).is_some() {
                self.acked.push(seq);
                self.published
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Waits up to `wait` for everything in flight (shutdown).
    pub fn drain(&mut self, wait: Duration) {
        self.pump(wait);
        let _ = self.producer.flush(Duration::from_millis(100));
        self.collect();
    }
}

/// The (topic, partition, offset) sources of the last dead letters in `topic`.
fn published_sources(
    kafka: &KafkaConfig,
    topic: &str,
    outbox: i64,
) -> anyhow::Result<HashSet<(String, i32, i64)>> {
    let consumer: BaseConsumer = client_config(
        kafka,
        &[],
        &[
            ("group.id", &format!("{}-dead-letter-check", kafka.group_id)),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "true"),
        ],
    )
    .create()
    .context("creating the dead-letter check consumer")?;
    let timeout = Duration::from_secs(10);
    let metadata = match consumer.fetch_metadata(Some(topic), timeout) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, topic, "cannot read dead-letter topic metadata; re-sending the outbox");
            return Ok(HashSet::new());
        }
    };
    let mut tpl = TopicPartitionList::new();
    let mut open = 0usize;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .context("reading dead-letter watermarks")?;
            if high > low {
                let from = (high - outbox - TAIL_MARGIN).max(low);
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(from))?;
                open += 1;
            }
        }
    }
    let mut found = HashSet::new();
    if open == 0 {
        return Ok(found);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while open > 0 && Instant::now() < deadline {
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
    Ok(found)
}
