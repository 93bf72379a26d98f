//! Kafka in and out; the only module that imports rdkafka.
//!
//! - `consumer`: the consumer loop that feeds the engine. The next offset of
//!   every partition is written in the same store batch as the state its
//!   events produced; on assignment the consumer seeks to that stored offset.
//!   Kafka's own committed offsets are written too, for lag tooling only.
//! - `rebalance`: group membership: assignments, the checks made on them,
//!   and when to rejoin.
//! - `align`: applying partitions in step in event time (no Kafka client).
//! - `process`: one raw message from bytes to an outcome, shared with
//!   `replay` (no Kafka client).
//! - `dead_letter`: invalid and late events go to the dead-letter topic through
//!   an outbox kept in the store, so each bad message is published once even
//!   across kill -9.
//! - `produce`: publishing events (the generator, NDJSON files) to the topics.

pub mod align;
pub mod consumer;
pub mod dead_letter;
pub mod process;
pub mod produce;
pub mod rebalance;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

pub use consumer::{run as run_consumer, ConsumerSummary};

/// A client configuration for `kafka`: brokers, then the pass-through
/// properties (which may override anything set before them), then `fixed`,
/// the settings correctness depends on, which nobody may override.
pub fn client_config(
    kafka: &KafkaConfig,
    defaults: &[(&str, &str)],
    fixed: &[(&str, &str)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &kafka.properties {
        if fixed.iter().any(|(f, _)| f == k) {
            tracing::warn!(property = %k, "ignoring kafka.properties entry: slastream sets it itself");
            continue;
        }
        c.set(k, v);
    }
    for (k, v) in fixed {
        c.set(*k, *v);
    }
    c
}

/// Consumer lag per partition, from librdkafka's statistics, and the
/// consumer's recoveries; read by `/metrics`.
#[derive(Debug, Default)]
pub struct KafkaLag {
    by_partition: Mutex<BTreeMap<(String, i32), i64>>,
    rejoins: AtomicU64,
    lost: AtomicU64,
}

impl KafkaLag {
    /// Counts a rejoin of the consumer group (held too few partitions).
    pub fn add_rejoin(&self) {
        self.rejoins.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejoins(&self) -> u64 {
        self.rejoins.load(Ordering::Relaxed)
    }

    /// Counts messages that were gone from the log before they were read.
    pub fn add_lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    pub fn set(&self, topic: &str, partition: i32, lag: i64) {
        let mut m = self.by_partition.lock().unwrap_or_else(|e| e.into_inner());
        m.insert((topic.to_string(), partition), lag);
    }

    /// Forgets partitions no longer assigned to this process.
    pub fn retain(&self, keep: impl Fn(&str, i32) -> bool) {
        let mut m = self.by_partition.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(t, p), _| keep(t, *p));
    }

    pub fn snapshot(&self) -> Vec<(String, i32, i64)> {
        let m = self.by_partition.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|((t, p), l)| (t.clone(), *p, *l)).collect()
    }
}

/// An in-process Kafka-protocol broker (librdkafka's mock cluster) with the
/// topics of a configuration: the demo's broker, nothing to install.
pub struct EmbeddedBroker {
    cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl EmbeddedBroker {
    pub fn start(topics: &crate::config::TopicsConfig, partitions: i32) -> anyhow::Result<Self> {
        use anyhow::Context;
        let cluster =
            rdkafka::mocking::MockCluster::new(1).context("starting the embedded broker")?;
        let mut names = vec![
            &topics.tickets,
            &topics.incidents,
            &topics.probes,
            &topics.dead_letter,
            &topics.alerts,
        ];
        names.sort();
        names.dedup();
        for t in names {
            cluster
                .create_topic(t, partitions, 1)
                .with_context(|| format!("creating topic {t}"))?;
        }
        Ok(EmbeddedBroker { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
