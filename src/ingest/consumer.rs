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
use rdkafka::consumer::base_consumer::PartitionQueue;
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
use crate::model::time::{Clock, Millis, HOUR, SECOND};
use crate::store::{state, Store};

/// Messages applied between two store batches, at most.
pub const BATCH_EVENTS: usize = 4096;
/// How long a batch may wait to fill up.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How long start-up waits for dead letters left from before a crash.
const DEAD_LETTER_WAIT: Duration = Duration::from_secs(5);
/// How often an idle instance (not holding every partition) looks again.
const RECHECK_IDLE: Duration = Duration::from_secs(10);
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

/// How long a partition that delivers nothing still counts as holding back
/// the partitions ahead of it in event time.
const IDLE_AFTER: Duration = Duration::from_secs(2);

/// How far before a position the first corrective fetch starts (then ×4).
const RESYNC_STEP: i64 = 512;

/// A fetched message not applied yet.
struct Pending {
    offset: i64,
    key: Option<Vec<u8>>,
    raw: Vec<u8>,
}

/// One assigned partition in the loop: what was fetched and not applied yet,
/// the next offset to apply, and how far it got in event time.
///
/// Partitions are applied in step in event time: a message more than `slack`
/// ahead of the slowest partition that still delivers waits (its partition
/// queue is not read) until the others catch up. Without this, a consumer catching up a
/// backlog would read one topic days ahead of another and turn the slower
/// topic's events into late ones.
struct Lane {
    topic: String,
    partition: i32,
    buf: std::collections::VecDeque<Pending>,
    /// Next offset to apply (persisted with the state).
    next: Option<i64>,
    /// Next offset to buffer (skips copies fetched twice).
    fetched_next: Option<i64>,
    last_applied: Option<Millis>,
    /// Event time of the first buffered message, when it is waiting.
    head_time: Option<Millis>,
    /// When it last delivered (or was assigned).
    last_arrival: Instant,
    advanced: bool,
    /// Position the partition was (re)started from, until its first message
    /// confirms it.
    resync: Option<i64>,
    seen_before: bool,
    step: i64,
    /// A seek the loop must issue (the fetch skipped ahead).
    reseek: Option<Offset>,
    /// The partition's own queue: a partition ahead in event time is simply
    /// not read (no pause, no refetch) until the others catch up.
    queue: Option<PartitionQueue<Ctx>>,
}

impl Lane {
    fn for_assignment(
        assigned: Vec<Assigned>,
        consumer: &Arc<BaseConsumer<Ctx>>,
        doorbell: &Doorbell,
    ) -> Vec<Lane> {
        assigned
            .into_iter()
            .map(|a| Lane {
                queue: consumer
                    .split_partition_queue(&a.topic, a.partition)
                    .map(|mut q| {
                        let bell = doorbell.clone();
                        q.set_nonempty_callback(move || bell.ring());
                        q
                    }),
                topic: a.topic,
                partition: a.partition,
                buf: Default::default(),
                next: a.next,
                fetched_next: a.next,
                last_applied: None,
                head_time: None,
                last_arrival: Instant::now(),
                advanced: false,
                resync: a.next.filter(|n| *n > 0),
                seen_before: false,
                step: RESYNC_STEP,
                reseek: None,
            })
            .collect()
    }

    fn push(&mut self, m: &BorrowedMessage<'_>) {
        let offset = m.offset();
        self.last_arrival = Instant::now();
        if let Some(target) = self.resync {
            if offset < target {
                // Before the position: already applied or buffered.
                self.seen_before = true;
                return;
            }
            if offset > target && !self.seen_before {
                // The broker answered a fetch from the middle of a record
                // batch with the next batch (some brokers do): start earlier
                // and skip forward, so nothing between is lost.
                if self.reseek.is_none() {
                    let from = target - self.step;
                    self.reseek = Some(if from <= 0 {
                        Offset::Beginning
                    } else {
                        Offset::Offset(from)
                    });
                    self.step = self.step.saturating_mul(4);
                    tracing::debug!(topic = %self.topic, partition = self.partition, target, got = offset, "fetch skipped ahead; fetching from earlier");
                }
                return;
            }
            self.resync = None;
        }
        if self.fetched_next.is_some_and(|n| offset < n) {
            return; // already buffered or applied
        }
        self.fetched_next = Some(offset + 1);
        self.buf.push_back(Pending {
            offset,
            key: m.key().map(<[u8]>::to_vec),
            raw: m.payload().unwrap_or_default().to_vec(),
        });
    }

    /// Expects the partition to be read from `target` on: messages before it
    /// are skipped, and a first message after it means the fetch skipped some.
    fn expect_from(&mut self, target: Option<i64>) {
        // A partition just positioned is expected to deliver soon.
        self.last_arrival = Instant::now();
        self.resync = target.filter(|t| *t > 0);
        self.seen_before = false;
        self.step = RESYNC_STEP;
        self.reseek = None;
    }

    /// How far this partition got: its waiting message, else its last applied.
    fn frontier(&self) -> Option<Millis> {
        self.head_time.or(self.last_applied)
    }

    fn active(&self) -> bool {
        !self.buf.is_empty() || self.last_arrival.elapsed() < IDLE_AFTER
    }
}

/// The latest event time lane `i` may apply now.
/// A partition that has delivered nothing yet (but may still) holds every
/// other one back entirely: its first event could be the oldest.
fn limit(lanes: &[Lane], i: usize, slack: Millis) -> Option<Millis> {
    let mut min: Option<Millis> = None;
    for (j, l) in lanes.iter().enumerate() {
        if j == i || !l.active() {
            continue;
        }
        let f = l.frontier().unwrap_or(Millis::MIN);
        min = Some(min.map_or(f, |m| m.min(f)));
    }
    min.map(|m| m.saturating_add(slack))
}

/// Applies buffered messages in event-time step; dead letters go to `letters`.
fn apply_lanes(
    lanes: &mut [Lane],
    engine: &mut Engine,
    now: Millis,
    slack: Millis,
    summary: &mut ConsumerSummary,
    letters: &mut Vec<DeadLetter>,
) {
    loop {
        let mut progress = false;
        for i in 0..lanes.len() {
            while let Some(head) = lanes[i].buf.front() {
                let decoded = decode(&head.raw);
                let at = decoded.as_ref().ok().map(|ev| ev.occurred_at);
                if let Some(t) = at.filter(|t| limit(lanes, i, slack).is_some_and(|max| *t > max)) {
                    drop(decoded);
                    lanes[i].head_time = Some(t);
                    break;
                }
                let result = match &decoded {
                    Ok(ev) => engine.apply(ev, now),
                    Err(invalid) => {
                        engine.record_invalid(kind_hint(&head.raw));
                        Applied::Invalid(invalid.reason.clone())
                    }
                };
                drop(decoded);
                let lane = &mut lanes[i];
                let Some(head) = lane.buf.pop_front() else {
                    break;
                };
                progress = true;
                lane.head_time = None;
                if let Some(at) = at {
                    lane.last_applied = Some(lane.last_applied.map_or(at, |l| l.max(at)));
                }
                lane.next = Some(head.offset + 1);
                lane.advanced = true;
                summary.messages += 1;
                summary.counts.record(&result);
                let reason = match result {
                    Applied::Invalid(r) => r,
                    Applied::Late => "late: older than watermark - max_lateness".to_string(),
                    _ => continue,
                };
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
        if !progress {
            break;
        }
    }
}

/// Messages a lane may hold before its queue is no longer read.
const LANE_BUFFER: usize = 2048;

/// Wakes the loop when a partition queue gets messages.
#[derive(Clone, Default)]
struct Doorbell(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Doorbell {
    fn ring(&self) {
        let (rung, cv) = &*self.0;
        *rung.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_one();
    }

    /// Waits until rung (or `timeout`), and clears it.
    fn wait(&self, timeout: Duration) {
        let (rung, cv) = &*self.0;
        let guard = rung.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = cv
            .wait_timeout_while(guard, timeout, |r| !*r)
            .unwrap_or_else(|e| e.into_inner());
        *guard = false;
    }
}

fn consumer_error(
    e: &rdkafka::error::KafkaError,
    instance_id: &str,
    last_log: &mut Option<Instant>,
) -> anyhow::Result<()> {
    if is_fatal(e) {
        bail!("Kafka consumer stopped: {e} (another instance with group.instance.id {instance_id:?} may have taken over)");
    }
    // Transport errors: librdkafka reconnects by itself.
    if last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
        tracing::warn!(error = %e, "Kafka consumer error; retrying");
        *last_log = Some(Instant::now());
    }
    Ok(())
}

/// Reads the partition queues of the lanes that are not waiting, for up to
/// `BATCH_WAIT` or `BATCH_EVENTS` messages.
fn fill_lanes(
    lanes: &mut [Lane],
    doorbell: &Doorbell,
    last_log: &mut Option<Instant>,
    instance_id: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + BATCH_WAIT;
    let mut got = 0usize;
    loop {
        let mut any = false;
        for lane in lanes.iter_mut() {
            let mut n = 0;
            let Some(q) = lane.queue.take() else { continue };
            while lane.buf.len() < LANE_BUFFER && n < 512 {
                match q.poll(Duration::ZERO) {
                    Some(Ok(m)) => {
                        lane.push(&m);
                        n += 1;
                    }
                    Some(Err(e)) => {
                        if let Err(fatal) = consumer_error(&e, instance_id, last_log) {
                            lane.queue = Some(q);
                            return Err(fatal);
                        }
                    }
                    None => break,
                }
            }
            lane.queue = Some(q);
            got += n;
            any |= n > 0;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if got >= BATCH_EVENTS || left.is_zero() {
            return Ok(());
        }
        if !any {
            doorbell.wait(left.min(Duration::from_millis(20)));
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
    /// Where batch durations are observed (`decode_apply`, `persist`).
    pub metrics: Option<Arc<crate::export::PipelineMetrics>>,
    /// Notified after every persisted batch (the alert loop evaluates then).
    pub batch_done: Option<Arc<tokio::sync::Notify>>,
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
    // Static membership: a restarted instance takes its partitions back at
    // once instead of waiting for the old member's session to expire, and a
    // second instance started with the same configuration is fenced.
    let instance_id = format!("{}-0", cfg.kafka.group_id);
    let consumer: Arc<BaseConsumer<Ctx>> = Arc::new(
        client_config(
            &cfg.kafka,
            &[
                ("group.instance.id", &instance_id),
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
        .context("creating the Kafka consumer")?,
    );
    let doorbell = Doorbell::default();
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
    let mut lanes: Vec<Lane> = Vec::new();
    let slack = (cfg.ingest.max_lateness / 4).clamp(SECOND, HOUR);
    let mut last_error_log: Option<Instant> = None;
    let mut last_check: Option<Instant> = None;
    while !env.shutdown.is_cancelled() {
        if let Some(why) = shared
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bail!(why);
        }
        // Rebalance callbacks run only here, where everything applied is
        // already persisted. The main queue also returns messages fetched
        // before their partition got its own queue; they are older than
        // anything in that queue, so they are placed first.
        let mut generation_changed = false;
        let mut drained = 0usize;
        while drained < BATCH_EVENTS {
            let r = consumer.poll(Duration::ZERO);
            let generation = shared.generation.load(Ordering::SeqCst);
            if generation != seen_generation {
                seen_generation = generation;
                lanes = Lane::for_assignment(shared.assigned(), &consumer, &doorbell);
                generation_changed = true;
            }
            match r {
                None => break,
                Some(Ok(m)) => {
                    drained += 1;
                    if let Some(lane) = lanes
                        .iter_mut()
                        .find(|l| l.partition == m.partition() && l.topic == m.topic())
                    {
                        lane.push(&m);
                    }
                }
                Some(Err(e)) => consumer_error(&e, &instance_id, &mut last_error_log)?,
            }
        }
        for l in &mut lanes {
            if let Some(offset) = l.reseek.take() {
                if let Err(e) =
                    consumer.seek(&l.topic, l.partition, offset, Duration::from_secs(10))
                {
                    tracing::warn!(error = %e, topic = %l.topic, partition = l.partition, "seek failed; retrying");
                    l.expect_from(l.resync);
                }
            }
        }
        let recheck = idle && last_check.is_none_or(|t| t.elapsed() > RECHECK_IDLE);
        if generation_changed || recheck {
            last_check = Some(Instant::now());
            let assigned = shared.assigned();
            idle = !holds_every_partition(&consumer, &topics, &assigned);
            env.ready.store(!idle, Ordering::SeqCst);
            shared
                .lag
                .retain(|t, p| assigned.iter().any(|a| a.topic == t && a.partition == p));
            if idle {
                for l in &mut lanes {
                    l.buf.clear();
                }
            }
        }
        if !idle {
            fill_lanes(&mut lanes, &doorbell, &mut last_error_log, &instance_id)?;
        } else {
            doorbell.wait(BATCH_WAIT);
        }
        let now = env.clock.now();
        let mut letters = Vec::new();
        let apply_started = Instant::now();
        let mut batch = {
            let mut engine = env.engine.write().unwrap_or_else(|e| e.into_inner());
            if !idle {
                apply_lanes(
                    &mut lanes,
                    &mut engine,
                    now,
                    slack,
                    &mut summary,
                    &mut letters,
                );
            }
            engine.maybe_compact();
            state::dirty_batch(&mut engine)
        };
        let mut commit = TopicPartitionList::new();
        for l in &mut lanes {
            if let (true, Some(next)) = (l.advanced, l.next) {
                state::put_kafka_position(&mut batch, &l.topic, l.partition, next);
                let _ = commit.add_partition_offset(&l.topic, l.partition, Offset::Offset(next));
            }
            l.advanced = false;
        }
        summary.dead_letters += letters.len() as u64;
        dead.stage(&mut batch, letters);
        let applied = apply_started.elapsed();
        if !batch.is_empty() {
            let persist_started = Instant::now();
            env.store.write(batch).context("writing a state batch")?;
            summary.batches += 1;
            if let Some(n) = &env.batch_done {
                n.notify_one();
            }
            if let Some(m) = &env.metrics {
                m.processing
                    .with_label_values(&["decode_apply"])
                    .observe(applied.as_secs_f64());
                m.processing
                    .with_label_values(&["persist"])
                    .observe(persist_started.elapsed().as_secs_f64());
            }
        }
        // Kafka's committed offsets are for lag tooling only.
        if commit.count() > 0 {
            let _ = consumer.commit(&commit, CommitMode::Async);
        }
        // Acknowledgements are collected on later turns: the outbox, not
        // this loop, makes dead letters safe, so a slow dead-letter topic
        // never holds up ingestion.
        dead.pump(Duration::ZERO);
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

fn is_fatal(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::Fatal
                | C::FencedInstanceId
                | C::GroupAuthorizationFailed
                | C::TopicAuthorizationFailed
        )
    )
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
