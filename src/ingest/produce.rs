//! Publishing events to the input topics: `generate --kafka`, the demo's
//! workload, and NDJSON files (backfills and tests through Kafka). Events go to
//! the topic of their kind, keyed as SPEC §1 asks (ticket, incident, customer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::client_config;
use crate::config::KafkaConfig;
use crate::model::event::{decode, Body};

/// Counts failed deliveries; the first error is kept for the message.
#[derive(Default)]
pub struct Outcomes {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Outcomes {}

impl ProducerContext for Outcomes {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// A producer for the input topics.
pub struct EventProducer {
    producer: BaseProducer<Outcomes>,
    kafka: KafkaConfig,
    sent: u64,
}

impl EventProducer {
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let producer = client_config(
            kafka,
            &[
                ("linger.ms", "20"),
                ("batch.num.messages", "10000"),
                ("queue.buffering.max.kbytes", "65536"),
                ("compression.type", "lz4"),
            ],
            &[],
        )
        .create_with_context(Outcomes::default())
        .context("creating the Kafka producer")?;
        Ok(EventProducer {
            producer,
            kafka: kafka.clone(),
            sent: 0,
        })
    }

    /// The topic for an event of `kind` (`ticket`, `incident`, `probe`).
    pub fn topic_for(&self, kind: &str) -> &str {
        let t = &self.kafka.topics;
        match kind {
            "incident" => &t.incidents,
            "probe" => &t.probes,
            _ => &t.tickets,
        }
    }

    /// Queues one message, waiting while librdkafka's queue is full.
    pub fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> anyhow::Result<()> {
        loop {
            let mut record = BaseRecord::to(topic).payload(value);
            if let Some(k) = key {
                record = record.key(k);
            }
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e).context("queueing a message"),
            }
        }
    }

    /// Queues one event (an NDJSON line), routed and keyed by its content. A
    /// line that is not a valid event still goes out (to the topic its `kind`
    /// suggests), since the pipeline must dead-letter it.
    pub fn send_event(&mut self, raw: &[u8]) -> anyhow::Result<()> {
        let (kind, key): (&str, Option<Vec<u8>>) = match decode(raw) {
            Ok(ev) => {
                let key = match &ev.body {
                    Body::Ticket(t) => t.ticket_id.as_bytes().to_vec(),
                    Body::Incident(i) => i.incident_id.as_bytes().to_vec(),
                    Body::Probe(_) => ev
                        .customer_id
                        .as_deref()
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec(),
                };
                (ev.kind_str(), Some(key))
            }
            Err(_) => (super::process::kind_hint(raw), None),
        };
        let topic = self.topic_for(kind).to_string();
        self.send(&topic, key.as_deref(), raw)
    }

    /// Waits until every queued message is delivered; fails if any was not.
    pub fn finish(self, timeout: Duration) -> anyhow::Result<u64> {
        self.producer
            .flush(timeout)
            .context("waiting for the broker to acknowledge every message")?;
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = ctx
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            bail!(
                "{failed} of {} messages were not delivered: {first}",
                self.sent
            );
        }
        Ok(self.sent)
    }
}

/// The alerts topic: one message per notification, keyed by fingerprint.
#[derive(Clone)]
pub struct AlertSink {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
}

impl AlertSink {
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let producer = client_config(kafka, &[("message.timeout.ms", "10000")], &[])
            .create()
            .context("creating the alerts producer")?;
        Ok(AlertSink {
            producer,
            topic: kafka.topics.alerts.clone(),
        })
    }

    pub async fn publish(&self, key: &str, value: &str) -> Result<(), String> {
        self.producer
            .send(
                rdkafka::producer::FutureRecord::to(&self.topic)
                    .key(key)
                    .payload(value),
                Duration::from_secs(5),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
    }
}

/// Publishes every line of an NDJSON file; returns the number of messages.
pub fn publish_ndjson(kafka: &KafkaConfig, path: &std::path::Path) -> anyhow::Result<u64> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut p = EventProducer::new(kafka)?;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.context("reading input")?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.is_empty() {
            continue;
        }
        p.send_event(line)?;
    }
    p.finish(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::ClientConfig;

    use crate::generate::{run_cli, GenSettings, Generator};
    use crate::model::time::{parse_rfc3339, HOUR};

    fn messages(brokers: &str, topic: &str) -> i64 {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("client");
        (0..3)
            .map(|p| {
                let (lo, hi) = c
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                hi - lo
            })
            .sum()
    }

    #[test]
    fn generate_publishes_every_event_to_the_topic_of_its_kind() {
        let mock = MockCluster::new(1).expect("mock cluster");
        for t in ["sla.tickets", "sla.incidents", "sla.probes"] {
            mock.create_topic(t, 3, 1).expect("topic");
        }
        let brokers = mock.bootstrap_servers();
        let start = "2026-11-02T00:00:00Z";
        run_cli(None, 2.0, 3, 1, "1h", Some(start), Some(&brokers)).expect("published");
        let settings =
            GenSettings::synthetic(1, 3, 2.0, parse_rfc3339(start).expect("start"), HOUR);
        let mut by_kind = std::collections::BTreeMap::<&str, i64>::new();
        for e in Generator::new(settings) {
            *by_kind.entry(e.kind).or_default() += 1;
        }
        assert!(by_kind["probe"] > 0);
        assert_eq!(messages(&brokers, "sla.probes"), by_kind["probe"]);
        assert_eq!(
            messages(&brokers, "sla.tickets"),
            by_kind.get("ticket").copied().unwrap_or(0)
        );
        assert_eq!(
            messages(&brokers, "sla.incidents"),
            by_kind.get("incident").copied().unwrap_or(0)
        );
    }
}
