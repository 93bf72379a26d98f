//! The consumer loop of `slastream run`.
//!
//! One thread owns a `BaseConsumer` and alternates two steps: poll up to
//! `BATCH_EVENTS` messages (or `BATCH_WAIT`), then apply them and write one
//! store batch holding the state they produced, the next offset of every
//! partition they came from, and their dead letters. Rebalance callbacks run
//! inside `poll`, so whenever one runs, everything applied is already
//! persisted: a revoke needs no flush, and an assignment seeks every
//! partition to the offset stored beside the state.
//!
//! A message whose offset is below the partition's next stored offset was
//! already applied (a copy fetched before a rebalance) and is skipped; that
//! check, not Kafka's committed offsets, is what makes the count exact.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{DeadLetter, DeadLetters};
use super::{client_config, KafkaLag};
use crate::app::kind_hint;
use crate::config::Config;
use crate::engine::{Applied, Engine, IngestCounts};
use crate::model::event::decode;
use crate::model::time::Clock;
use crate::store::{state, Store};

/// Messages applied between two store batches, at most.
pub const BATCH_EVENTS: usize = 4096;
/// How long a batch may wait to fill up.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How long a batch waits for its dead letters to be acknowledged before the
/// loop goes on (they stay in the outbox and are retried).
const DEAD_LETTER_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for dead letters in flight.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// One assigned partition and the next offset to apply (`None`: nothing
/// stored, read from the beginning).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assigned {
    topic: String,
    partition: i32,
    next: Option<i64>,
}

/// What the loop and the rebalance callback share. The callback runs on the
/// loop's thread (inside `poll`), so the locks are never contended.
struct Shared {
    store: Arc<dyn Store>,
    assigned: Mutex<Vec<Assigned>>,
    generation: AtomicU64,
    fatal: Mutex<Option<String>>,
    lag: Arc<KafkaLag>,
}

impl Shared {
    fn assigned(&self) -> Vec<Assigned> {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_assigned(&self, a: Vec<Assigned>) {
        *self.assigned.lock().unwrap_or_else(|e| e.into_inner()) = a;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn fail(&self, why: String) {
        tracing::error!("{why}");
        *self.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.shared.lag.set(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned = Vec::new();
                let mut seek = TopicPartitionList::new();
                for el in tpl.elements() {
                    let next = match state::kafka_position(
                        self.shared.store.as_ref(),
                        el.topic(),
                        el.partition(),
                    ) {
                        Ok(n) => n,
                        Err(e) => {
                            self.shared.fail(format!(
                                "reading the stored offset of {}/{}: {e}",
                                el.topic(),
                                el.partition()
                            ));
                            let _ = consumer.unassign();
                            self.shared.set_assigned(Vec::new());
                            return;
                        }
                    };
                    let offset = next.map(Offset::Offset).unwrap_or(Offset::Beginning);
                    if let Err(e) = seek.add_partition_offset(el.topic(), el.partition(), offset) {
                        self.shared.fail(format!("building the assignment: {e}"));
                        return;
                    }
                    assigned.push(Assigned {
                        topic: el.topic().to_string(),
                        partition: el.partition(),
                        next,
                    });
                }
                tracing::info!(
                    partitions = %describe(&assigned),
                    "partitions assigned; reading from the offsets stored with the state"
                );
                if let Err(e) = consumer.assign(&seek) {
                    self.shared.fail(format!("assigning partitions: {e}"));
                }
                self.shared.set_assigned(assigned);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Every applied event is already persisted with its offset: the
                // loop writes its batch before it polls again.
                tracing::info!("partitions revoked");
                let _ = consumer.unassign();
                self.shared.set_assigned(Vec::new());
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
                self.shared.set_assigned(Vec::new());
            }
        }
    }
}

fn describe(a: &[Assigned]) -> String {
    a.iter()
        .map(|x| match x.next {
            Some(n) => format!("{}/{}@{n}", x.topic, x.partition),
            None => format!("{}/{}@beginning", x.topic, x.partition),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Default, Clone)]
pub struct ConsumerSummary {
    pub messages: u64,
    pub counts: IngestCounts,
    pub dead_letters: u64,
    pub batches: u64,
}

/// What `run` needs besides the configuration.
pub struct ConsumerEnv<'a> {
    pub engine: &'a RwLock<Engine>,
    pub store: Arc<dyn Store>,
    pub clock: &'a dyn Clock,
    pub shutdown: &'a CancellationToken,
    /// Set while the state is loaded and this process holds every partition.
    pub ready: &'a AtomicBool,
    pub lag: Arc<KafkaLag>,
}

/// The distinct input topics, in configuration order.
pub fn input_topics(cfg: &Config) -> Vec<String> {
    let t = &cfg.kafka.topics;
    let mut out: Vec<String> = Vec::new();
    for name in [&t.tickets, &t.incidents, &t.probes] {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Consumes until `shutdown` is cancelled; blocking (run it on its own
/// thread).
pub fn run(cfg: &Config, env: ConsumerEnv<'_>) -> anyhow::Result<ConsumerSummary> {
    let shared = Arc::new(Shared {
        store: env.store.clone(),
        assigned: Mutex::new(Vec::new()),
        generation: AtomicU64::new(0),
        fatal: Mutex::new(None),
        lag: env.lag.clone(),
    });
    let consumer: BaseConsumer<Ctx> = client_config(
        &cfg.kafka,
        &[
            ("auto.offset.reset", "earliest"),
            // Bounded prefetch: memory stays flat however far behind we are.
            ("queued.max.messages.kbytes", "16384"),
            ("queued.min.messages", "20000"),
            ("statistics.interval.ms", "5000"),
            ("session.timeout.ms", "10000"),
            ("partition.assignment.strategy", "range,roundrobin"),
        ],
        &[
            ("group.id", &cfg.kafka.group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ],
    )
    .create_with_context(Ctx {
        shared: shared.clone(),
    })
    .context("creating the Kafka consumer")?;
    let topics = input_topics(cfg);
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .context("subscribing to the input topics")?;
    tracing::info!(topics = ?topics, group = %cfg.kafka.group_id, brokers = %cfg.kafka.brokers, "consuming");

    let mut dead = DeadLetters::open(&cfg.kafka, env.store.as_ref())?;
    // Entries left from before a crash are published before anything else.
    dead.pump(DEAD_LETTER_WAIT);

    let mut summary = ConsumerSummary::default();
    let mut seen_generation = u64::MAX;
    let mut idle = true;
    let mut last_error_log: Option<Instant> = None;
    while !env.shutdown.is_cancelled() {
        if let Some(why) = shared
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bail!(why);
        }
        let mut msgs: Vec<BorrowedMessage<'_>> = Vec::new();
        let deadline = Instant::now() + BATCH_WAIT;
        while msgs.len() < BATCH_EVENTS {
            let left = deadline.saturating_duration_since(Instant::now());
            match consumer.poll(left) {
                Some(Ok(m)) => msgs.push(m),
                // Transport errors: librdkafka reconnects by itself.
                Some(Err(e))
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) =>
                {
                    tracing::warn!(error = %e, "Kafka consumer error; retrying");
                    last_error_log = Some(Instant::now());
                }
                Some(Err(_)) => {}
                None => {}
            }
            if left.is_zero() {
                break;
            }
        }
        let generation = shared.generation.load(Ordering::SeqCst);
        if generation != seen_generation {
            seen_generation = generation;
            let assigned = shared.assigned();
            idle = !holds_every_partition(&consumer, &topics, &assigned);
            env.ready.store(!idle, Ordering::SeqCst);
            shared
                .lag
                .retain(|t, p| assigned.iter().any(|a| a.topic == t && a.partition == p));
        }
        if idle {
            // Nothing applied, nothing advanced: the next assignment seeks
            // back to the stored offsets.
            if dead.has_acked() {
                let mut batch = crate::store::Batch::default();
                dead.stage(&mut batch, Vec::new());
                env.store.write(batch)?;
            }
            dead.pump(Duration::ZERO);
            continue;
        }
        if msgs.is_empty() {
            if dead.pending() > 0 || dead.has_acked() {
                let mut batch = crate::store::Batch::default();
                dead.stage(&mut batch, Vec::new());
                env.store.write(batch)?;
                dead.pump(Duration::ZERO);
            }
            continue;
        }
        let mut assigned = shared.assigned();
        let mut letters = Vec::new();
        let mut advanced = vec![false; assigned.len()];
        let now = env.clock.now();
        let mut batch = {
            let mut engine = env.engine.write().unwrap_or_else(|e| e.into_inner());
            for m in &msgs {
                let Some(i) = assigned
                    .iter()
                    .position(|a| a.partition == m.partition() && a.topic == m.topic())
                else {
                    continue; // fetched before a revoke
                };
                if assigned[i].next.is_some_and(|n| m.offset() < n) {
                    continue; // already applied
                }
                assigned[i].next = Some(m.offset() + 1);
                advanced[i] = true;
                summary.messages += 1;
                let raw = m.payload().unwrap_or_default();
                let result = match decode(raw) {
                    Ok(ev) => engine.apply(&ev, now),
                    Err(invalid) => {
                        engine.record_invalid(kind_hint(raw));
                        Applied::Invalid(invalid.reason)
                    }
                };
                summary.counts.record(&result);
                let reason = match result {
                    Applied::Invalid(r) => r,
                    Applied::Late => "late: older than watermark - max_lateness".to_string(),
                    _ => continue,
                };
                letters.push(DeadLetter {
                    raw: raw.to_vec(),
                    key: m.key().map(<[u8]>::to_vec),
                    reason,
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            engine.maybe_compact();
            state::dirty_batch(&mut engine)
        };
        let mut commit = TopicPartitionList::new();
        for (a, moved) in assigned.iter().zip(&advanced) {
            if let (true, Some(next)) = (*moved, a.next) {
                state::put_kafka_position(&mut batch, &a.topic, a.partition, next);
                let _ = commit.add_partition_offset(&a.topic, a.partition, Offset::Offset(next));
            }
        }
        summary.dead_letters += letters.len() as u64;
        dead.stage(&mut batch, letters);
        env.store.write(batch).context("writing a state batch")?;
        summary.batches += 1;
        shared.set_assigned_positions(&assigned);
        // Kafka's committed offsets are for lag tooling only.
        if commit.count() > 0 {
            let _ = consumer.commit(&commit, CommitMode::Async);
        }
        dead.pump(DEAD_LETTER_WAIT);
        drop(msgs);
    }
    env.ready.store(false, Ordering::SeqCst);
    dead.drain(DRAIN_WAIT);
    if dead.has_acked() {
        let mut batch = crate::store::Batch::default();
        dead.stage(&mut batch, Vec::new());
        env.store.write(batch)?;
    }
    consumer.unsubscribe();
    tracing::info!(
        messages = summary.messages,
        batches = summary.batches,
        dead_letters = summary.dead_letters,
        "consumer stopped; state persisted"
    );
    Ok(summary)
}

impl Shared {
    /// Records the positions the loop just persisted, without counting as a
    /// rebalance.
    fn set_assigned_positions(&self, persisted: &[Assigned]) {
        let mut a = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        for p in persisted {
            if let Some(x) = a
                .iter_mut()
                .find(|x| x.topic == p.topic && x.partition == p.partition)
            {
                x.next = p.next;
            }
        }
    }
}

/// Whether this process holds every partition of the input topics. One
/// instance per consumer group is the supported topology: when another member
/// takes some partitions, this one stops applying (and says so loudly) rather
/// than silently keep half of the state.
fn holds_every_partition(
    consumer: &BaseConsumer<Ctx>,
    topics: &[String],
    assigned: &[Assigned],
) -> bool {
    if assigned.is_empty() {
        return false;
    }
    let mut expected = 0usize;
    for t in topics {
        match consumer.fetch_metadata(Some(t), Duration::from_secs(5)) {
            Ok(m) => {
                let n: usize = m.topics().iter().map(|x| x.partitions().len()).sum();
                expected += n;
            }
            Err(e) => {
                tracing::warn!(error = %e, topic = %t, "cannot read topic metadata; assuming the assignment is whole");
                return true;
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for a in assigned {
        tpl.add_partition(&a.topic, a.partition);
    }
    if assigned.len() >= expected {
        let _ = consumer.resume(&tpl);
        return true;
    }
    tracing::error!(
        assigned = assigned.len(),
        partitions = expected,
        "another consumer in group holds some partitions; one slastream instance per \
         consumer group is supported, so this instance stays idle until it holds them all"
    );
    let _ = consumer.pause(&tpl);
    false
}
