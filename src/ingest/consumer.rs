//! The consumer loop of `slastream run`.
//!
//! One thread owns a `BaseConsumer`: each turn it reads what the partition
//! queues hold (up to `BATCH_EVENTS` messages or `BATCH_BYTES` bytes,
//! waiting only when the last turn did nothing) and applies it in
//! event-time step (`align`). Every `state.commit_interval` (or sooner, once
//! `COMMIT_MAX_EVENTS` accepted events wait) it submits one commit to the
//! writer stage (`store::writer`), which writes and syncs it on its own
//! thread while applying goes on: the state applied since the last commit,
//! the next offset of every partition it came from, and its dead-letter
//! outbox rows, in one atomic batch.
//!
//! What a commit holds is acknowledged only once it is durable: its dead
//! letters are published, Kafka's committed offsets (for lag tooling) move,
//! the alert loop is woken. Rebalance callbacks (`rebalance`) run only
//! inside the group poll, which happens only when everything applied has
//! been submitted; the callback then waits at a flush barrier until it is
//! durable, so partitions move, and assignments seek to the offsets stored
//! beside the state, only with state and offsets on disk in step.
//!
//! A message whose offset is below the partition's next stored offset was
//! already applied (a copy fetched before a rebalance) and is skipped; that
//! check, not Kafka's committed offsets, is what makes the count exact.
//!
//! The loop never sits silently: a consumer holding too few partitions for
//! too long rejoins the group and eventually returns an error, a stored
//! offset outside the log is reported and moved past, and `caught_up` says
//! whether what the partitions held at assignment has been applied.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::align::{apply_lanes, Gate, Lane, Seek};
use super::dead_letter::{DeadLetter, DeadLetters};
use super::rebalance::{
    holds_every_partition, Ctx, Membership, Shared, Start, Verdict, MAX_REJOINS, METADATA_TIMEOUT,
    REJOIN_AFTER,
};
use super::{client_config, KafkaLag};
use crate::config::Config;
use crate::engine::{Engine, IngestCounts};
use crate::model::time::{Clock, HOUR, SECOND};
use crate::store::writer::{Commit, OnDurable, Writer};
use crate::store::{state, Store};

/// Messages read, and applied under one engine lock, per turn, at most.
pub const BATCH_EVENTS: usize = 4096;
/// Bytes of messages read, and applied, per turn, about at most.
pub const BATCH_BYTES: usize = 16 << 20;
/// How long an idle turn waits for messages.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How long start-up waits for dead letters left from before a crash.
const DEAD_LETTER_WAIT: Duration = Duration::from_secs(5);
/// How often an idle instance (not holding every partition) looks again.
const RECHECK_IDLE: Duration = Duration::from_secs(10);
/// How long shutdown waits for dead letters in flight.
const DRAIN_WAIT: Duration = Duration::from_secs(3);
/// How often watermarks that could not be read are asked for again.
const WATERMARK_RETRY: Duration = Duration::from_secs(5);
/// Without statistics from a reachable broker for this long, the consumer
/// does not count as caught up.
const STATS_STALE: Duration = Duration::from_secs(15);

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
    /// Set once every assigned partition reached the high watermark seen at
    /// assignment; cleared while no partition is held, after a rebalance
    /// until caught up again, and while no broker is reachable.
    pub caught_up: Arc<AtomicBool>,
    pub lag: Arc<KafkaLag>,
    /// Where turn and commit durations are observed (`decode_apply`, `persist`).
    pub metrics: Option<Arc<crate::export::PipelineMetrics>>,
    /// Notified after every durable commit (the alert loop evaluates then).
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

/// The group member: the client, its subscription, and the partitions it
/// reads (a lane and a queue per partition, same index).
struct Member {
    consumer: Arc<BaseConsumer<Ctx>>,
    shared: Arc<Shared>,
    lanes: Vec<Lane>,
    queues: Vec<Option<PartitionQueue<Ctx>>>,
    seen_generation: u64,
    assigned_at: Instant,
    /// When watermarks were last asked for lanes still lacking them.
    watermarks_at: Option<Instant>,
    /// Holds fewer than every partition (or none): reads nothing.
    idle: bool,
    last_check: Option<Instant>,
    last_error_log: Option<Instant>,
    instance_id: String,
    topics: Vec<String>,
}

impl Member {
    fn join(
        cfg: &Config,
        store: &Arc<dyn Store>,
        lag: &Arc<KafkaLag>,
        flushed: crate::store::writer::Barrier,
    ) -> anyhow::Result<Member> {
        let shared = Arc::new(Shared::new(store.clone(), lag.clone(), flushed));
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
        let topics = input_topics(cfg);
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .context("subscribing to the input topics")?;
        tracing::info!(topics = ?topics, group = %cfg.kafka.group_id, brokers = %cfg.kafka.brokers, "consuming");
        Ok(Member {
            consumer,
            shared,
            lanes: Vec::new(),
            queues: Vec::new(),
            seen_generation: u64::MAX,
            assigned_at: Instant::now(),
            watermarks_at: None,
            idle: true,
            last_check: None,
            last_error_log: None,
            instance_id,
            topics,
        })
    }

    /// Runs rebalance callbacks and takes the messages of the main queue.
    /// Returns whether the assignment changed.
    fn poll_group(&mut self, doorbell: &Doorbell) -> anyhow::Result<bool> {
        // The main queue also returns messages fetched before their
        // partition got its own queue; they are older than anything in that
        // queue, so they are placed first.
        let consumer = self.consumer.clone();
        let mut changed = false;
        let mut drained = 0usize;
        while drained < BATCH_EVENTS {
            let r = consumer.poll(Duration::ZERO);
            let generation = self.shared.generation();
            if generation != self.seen_generation {
                self.seen_generation = generation;
                self.reassign(doorbell);
                changed = true;
            }
            match r {
                None => break,
                Some(Ok(m)) => {
                    drained += 1;
                    if let Some(lane) = self
                        .lanes
                        .iter_mut()
                        .find(|l| l.partition == m.partition() && l.topic == m.topic())
                    {
                        lane.push(
                            m.offset(),
                            m.key(),
                            m.payload().unwrap_or_default(),
                            Instant::now(),
                        );
                    }
                }
                Some(Err(e)) => self.error(&e)?,
            }
        }
        Ok(changed)
    }

    fn reassign(&mut self, doorbell: &Doorbell) {
        // Queues first: each holds the consumer.
        self.queues.clear();
        let now = Instant::now();
        self.assigned_at = now;
        self.watermarks_at = None;
        self.lanes.clear();
        for a in self.shared.assigned() {
            let q = self
                .consumer
                .split_partition_queue(&a.topic, a.partition)
                .map(|mut q| {
                    let bell = doorbell.clone();
                    q.set_nonempty_callback(move || bell.ring());
                    q
                });
            self.queues.push(q);
            self.lanes
                .push(Lane::new(&a.topic, a.partition, a.next, now));
        }
    }

    fn error(&mut self, e: &rdkafka::error::KafkaError) -> anyhow::Result<()> {
        if is_fatal(e) {
            bail!(
                "Kafka consumer stopped: {e} (another instance with group.instance.id {:?} may have taken over)",
                self.instance_id
            );
        }
        // Transport errors: librdkafka reconnects by itself.
        if self
            .last_error_log
            .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "Kafka consumer error; retrying");
            self.last_error_log = Some(Instant::now());
        }
        Ok(())
    }

    fn seek(&self, lane: &Lane, to: Seek) -> bool {
        let offset = match to {
            Seek::Beginning => Offset::Beginning,
            Seek::Offset(o) => Offset::Offset(o),
        };
        match self
            .consumer
            .seek(&lane.topic, lane.partition, offset, METADATA_TIMEOUT)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, topic = %lane.topic, partition = lane.partition, "seek failed; retrying");
                false
            }
        }
    }

    /// Issues the corrective seeks the lanes asked for.
    fn reseek(&mut self) {
        let now = Instant::now();
        for i in 0..self.lanes.len() {
            self.lanes[i].check_stalled(now);
            if let Some(to) = self.lanes[i].take_reseek() {
                if !self.seek(&self.lanes[i], to) {
                    self.lanes[i].reseek_failed(Instant::now());
                }
            }
        }
    }

    /// Compares each new lane's stored offset with the log's watermarks: a
    /// position below the log start or beyond its end is reported and moved
    /// past, and the high watermark becomes the lane's catch-up target.
    fn check_watermarks(&mut self, lag: &KafkaLag, shutdown: &CancellationToken) {
        if self
            .watermarks_at
            .is_some_and(|t| t.elapsed() < WATERMARK_RETRY)
        {
            return;
        }
        self.watermarks_at = Some(Instant::now());
        if shutdown.is_cancelled() {
            return;
        }
        // One request per partition, all at once: each takes a round trip
        // or more, and nothing is read while they run.
        let wanted: Vec<usize> = (0..self.lanes.len())
            .filter(|i| self.lanes[*i].needs_target())
            .collect();
        let consumer = &self.consumer;
        let lanes = &self.lanes;
        let answers: Vec<_> = std::thread::scope(|s| {
            let asked: Vec<_> = wanted
                .iter()
                .map(|&i| {
                    let (topic, partition) = (&lanes[i].topic, lanes[i].partition);
                    s.spawn(move || consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT))
                })
                .collect();
            asked
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for (i, answer) in wanted.into_iter().zip(answers) {
            let (topic, partition) = (self.lanes[i].topic.clone(), self.lanes[i].partition);
            let (low, high) = match answer {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, %topic, partition, "cannot read watermarks; retrying");
                    continue;
                }
            };
            let stored = self.lanes[i].next;
            let start = match Start::decide(stored, low, high) {
                Start::AsStored => stored.unwrap_or(low),
                Start::Lost { from, skipped } => {
                    tracing::warn!(
                        %topic,
                        partition,
                        stored = stored.unwrap_or_default(),
                        log_start = from,
                        skipped,
                        "data lost upstream: the stored offset is below the partition's log \
                         start (retention ran while slastream was down); continuing from the log start"
                    );
                    lag.add_lost(skipped as u64);
                    self.lanes[i].restart_at(Some(from), Instant::now());
                    self.seek(&self.lanes[i], Seek::Offset(from));
                    from
                }
                Start::Recreated { stored, high } => {
                    // A broker whose high watermark lags its log reports
                    // this after every restart; only what the fetches then
                    // deliver tells a recreated topic (`Lane::check_stalled`).
                    tracing::info!(
                        %topic,
                        partition,
                        stored,
                        high_watermark = high,
                        "the stored offset is beyond the high watermark the broker reports; \
                         reading on from it unless the partition turns out to end below it"
                    );
                    self.lanes[i].suspect_beyond_end();
                    stored
                }
            };
            self.lanes[i].set_target(high, start);
        }
    }

    /// Decides whether this process holds every partition, when the
    /// assignment changed and every `RECHECK_IDLE` while it does not.
    fn check_whole(&mut self, changed: bool, shutdown: &CancellationToken) -> bool {
        let recheck = self.idle && self.last_check.is_none_or(|t| t.elapsed() > RECHECK_IDLE);
        if !(changed || recheck) {
            return false;
        }
        self.last_check = Some(Instant::now());
        let assigned = self.shared.assigned();
        self.idle = match holds_every_partition(&self.consumer, &self.topics, &assigned, shutdown) {
            Some(whole) => !whole,
            // Unknown: an assignment stays usable, none stays idle.
            None => assigned.is_empty(),
        };
        if self.idle {
            let now = Instant::now();
            for i in 0..self.lanes.len() {
                if let Some(to) = self.lanes[i].discard_buffer(now) {
                    self.seek(&self.lanes[i], to);
                }
            }
        }
        true
    }

    /// Reads the partition queues of the lanes that have room: one pass over
    /// them, up to `BATCH_EVENTS` messages or `BATCH_BYTES` bytes, and when
    /// that finds nothing, passes again for up to `wait`. Returns the
    /// messages read.
    fn fill(&mut self, doorbell: &Doorbell, wait: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + wait;
        let mut got = 0usize;
        let mut bytes = 0usize;
        loop {
            for i in 0..self.lanes.len() {
                let Some(q) = self.queues[i].take() else {
                    continue;
                };
                let mut fatal = None;
                while self.lanes[i].has_room() && got < BATCH_EVENTS && bytes < BATCH_BYTES {
                    match q.poll(Duration::ZERO) {
                        Some(Ok(m)) => {
                            let raw = m.payload().unwrap_or_default();
                            bytes += raw.len();
                            self.lanes[i].push(m.offset(), m.key(), raw, Instant::now());
                            got += 1;
                        }
                        Some(Err(e)) => {
                            if let Err(f) = self.error(&e) {
                                fatal = Some(f);
                                break;
                            }
                        }
                        None => break,
                    }
                }
                self.queues[i] = Some(q);
                if let Some(f) = fatal {
                    return Err(f);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // What was read is applied at once: waiting for more would only
            // leave the engine idle while the lanes are full.
            if got > 0 || left.is_zero() {
                return Ok(got);
            }
            doorbell.wait(left.min(Duration::from_millis(20)));
        }
    }

    /// Whether every assigned partition reached its catch-up target, with a
    /// broker reachable lately.
    fn caught_up(&mut self, lag: &KafkaLag) -> bool {
        if self.idle || self.lanes.is_empty() {
            return false;
        }
        let Some(seen) = self.shared.broker_seen_at() else {
            return false;
        };
        if seen.elapsed() > STATS_STALE {
            return false;
        }
        // A lag of 0 counts only from statistics taken after the assignment.
        if seen > self.assigned_at {
            for (topic, partition, l) in lag.snapshot() {
                if l == 0 {
                    if let Some(lane) = self
                        .lanes
                        .iter_mut()
                        .find(|x| x.partition == partition && x.topic == topic)
                    {
                        lane.mark_caught_up();
                    }
                }
            }
        }
        self.lanes.iter_mut().all(|l| l.caught_up())
    }

    fn leave(mut self) {
        self.queues.clear();
        self.lanes.clear();
        self.consumer.unsubscribe();
    }
}

/// Commits queued behind the one being written: one, so applying goes on
/// while a commit syncs, and memory stays bounded by two commits.
const COMMITS_QUEUED: usize = 1;
/// Accepted events after which a commit is made before the interval is
/// over: bounds the size of one commit when the input is fast.
const COMMIT_MAX_EVENTS: usize = 1 << 16;

/// Consumes until `shutdown` is cancelled; blocking (run it on its own
/// thread). The state is written by a writer stage on a thread of its own.
pub fn run(cfg: &Config, env: ConsumerEnv<'_>) -> anyhow::Result<ConsumerSummary> {
    let store = env.store.clone();
    std::thread::scope(|s| {
        let mut writer = Writer::spawn(s, store.as_ref(), COMMITS_QUEUED);
        let consumed = consume(cfg, &env, &mut writer);
        // Everything submitted is written before the consumer reports.
        match writer.finish() {
            Err(e) => Err(anyhow::Error::new(e).context("writing a state commit")),
            Ok(()) => consumed,
        }
    })
}

/// What was applied since the last commit, and what waits for a commit to
/// become durable.
#[derive(Default)]
struct Commits {
    /// Messages applied and not submitted yet.
    applied: u64,
    letters: Vec<DeadLetter>,
    last: Option<Instant>,
    /// Submitted, not yet seen durable: (commit number, Kafka offsets to
    /// commit for lag tooling, outbox entries it holds end below).
    waiting: VecDeque<(u64, TopicPartitionList, u64)>,
}

/// The loop of `run`, submitting commits to `writer`.
fn consume(
    cfg: &Config,
    env: &ConsumerEnv<'_>,
    writer: &mut Writer<'_>,
) -> anyhow::Result<ConsumerSummary> {
    let mut member = Member::join(cfg, &env.store, &env.lag, writer.barrier())?;
    let doorbell = Doorbell::default();
    let mut dead = DeadLetters::open(&cfg.kafka, env.store.as_ref(), env.shutdown)?;
    // Entries left from before a crash are published before anything else.
    dead.pump(DEAD_LETTER_WAIT);

    let mut summary = ConsumerSummary::default();
    let mut membership = Membership::default();
    let mut commits = Commits::default();
    let interval = Duration::from_millis(cfg.state.commit_interval.max(1).unsigned_abs());
    let slack = (cfg.ingest.max_lateness / 4).clamp(SECOND, HOUR);
    let mut outbox_full_log: Option<Instant> = None;
    // Whether the last turn fetched or applied anything: a backlog is
    // drained without waiting.
    let mut busy = false;
    while !env.shutdown.is_cancelled() {
        if let Some(why) = member.shared.take_fatal() {
            bail!(why);
        }
        // Rebalance callbacks run only inside this poll, and only once all
        // that was applied is submitted: the callback then waits for it to
        // be durable before partitions move.
        if commits.applied == 0 {
            let changed = member.poll_group(&doorbell)?;
            if member.check_whole(changed, env.shutdown) {
                env.ready.store(!member.idle, Ordering::SeqCst);
                let assigned = member.shared.assigned();
                env.lag
                    .retain(|t, p| assigned.iter().any(|a| a.topic == t && a.partition == p));
            }
        }
        member.reseek();
        if !member.idle {
            member.check_watermarks(&env.lag, env.shutdown);
        }
        match membership.observe(!member.idle, Instant::now()) {
            Verdict::Hold => {}
            Verdict::Rejoin => {
                tracing::warn!(
                    after_secs = REJOIN_AFTER.as_secs(),
                    rejoin = membership.rejoins(),
                    of = MAX_REJOINS,
                    assigned = member.lanes.len(),
                    "the consumer has not held every partition for too long; rejoining the group"
                );
                env.lag.add_rejoin();
                env.ready.store(false, Ordering::SeqCst);
                env.caught_up.store(false, Ordering::SeqCst);
                // The new member starts from the stored offsets: everything
                // applied is made durable first.
                commit(
                    env,
                    &mut member,
                    &mut dead,
                    &mut summary,
                    &mut commits,
                    writer,
                )?;
                writer.sync()?;
                member.leave();
                member = Member::join(cfg, &env.store, &env.lag, writer.barrier())?;
            }
            Verdict::GiveUp => {
                env.ready.store(false, Ordering::SeqCst);
                env.caught_up.store(false, Ordering::SeqCst);
                bail!(
                    "the Kafka consumer held no partitions (or only some) for {}s after {} \
                     rejoins; stopping so that a supervisor restarts slastream",
                    REJOIN_AFTER.as_secs(),
                    MAX_REJOINS
                );
            }
        }
        // A full outbox (the dead-letter topic not accepting) holds ingestion
        // back, so the memory it takes stays bounded.
        let outbox_full = dead.is_full();
        if outbox_full && outbox_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::error!(
                pending = dead.pending(),
                "the dead-letter outbox is full; ingestion waits for the dead-letter topic"
            );
            outbox_full_log = Some(Instant::now());
        }
        // Waits for input only when the last turn did nothing, and never
        // past the moment the next commit is due.
        let due_in = match (commits.applied, commits.last) {
            (0, _) | (_, None) => BATCH_WAIT,
            (_, Some(t)) => interval.saturating_sub(t.elapsed()),
        };
        let wait = if busy {
            Duration::ZERO
        } else {
            BATCH_WAIT.min(due_in)
        };
        let reading = !member.idle && !outbox_full;
        let fetched = if reading {
            member.fill(&doorbell, wait)?
        } else {
            doorbell.wait(wait);
            0
        };
        let applied = if reading {
            apply_turn(cfg, env, &mut member, &mut summary, &mut commits, slack)
        } else {
            0
        };
        busy = fetched > 0 || applied > 0;
        let unsaved = {
            let e = env.engine.read().unwrap_or_else(|e| e.into_inner());
            e.unsaved_ids()
        };
        let due = commits.last.is_none_or(|t| t.elapsed() >= interval);
        if (commits.applied > 0 && unsaved >= COMMIT_MAX_EVENTS) || due {
            commit(
                env,
                &mut member,
                &mut dead,
                &mut summary,
                &mut commits,
                writer,
            )?;
        }
        for l in &mut member.lanes {
            let lost = l.take_skipped();
            if lost > 0 {
                env.lag.add_lost(lost);
            }
        }
        env.caught_up
            .store(member.caught_up(&env.lag), Ordering::SeqCst);
        acknowledge(&member, &mut dead, &mut commits, writer.durable());
        // Acknowledgements are collected on later turns: the outbox, not
        // this loop, makes dead letters safe, so a slow dead-letter topic
        // never holds up ingestion.
        dead.pump(Duration::ZERO);
    }
    env.ready.store(false, Ordering::SeqCst);
    env.caught_up.store(false, Ordering::SeqCst);
    commit(
        env,
        &mut member,
        &mut dead,
        &mut summary,
        &mut commits,
        writer,
    )?;
    writer.sync()?;
    acknowledge(&member, &mut dead, &mut commits, writer.durable());
    dead.drain(DRAIN_WAIT);
    if dead.has_acked() {
        let mut batch = crate::store::Batch::default();
        dead.stage(&mut batch, Vec::new());
        writer.submit(Commit::new(batch))?;
        writer.sync()?;
    }
    member.leave();
    tracing::info!(
        messages = summary.messages,
        commits = summary.batches,
        dead_letters = summary.dead_letters,
        "consumer stopped; state persisted"
    );
    Ok(summary)
}

/// Applies what the lanes hold, in event-time step; returns the messages
/// applied. Their state, offsets and dead letters go into the next commit.
fn apply_turn(
    cfg: &Config,
    env: &ConsumerEnv<'_>,
    member: &mut Member,
    summary: &mut ConsumerSummary,
    commits: &mut Commits,
    slack: crate::model::time::Millis,
) -> u64 {
    if member.lanes.iter().all(|l| l.buffered() == 0) {
        return 0;
    }
    let gate = Gate {
        slack,
        wall_now: env.clock.now(),
        max_future_skew: cfg.ingest.max_future_skew,
        max_messages: BATCH_EVENTS,
        max_bytes: BATCH_BYTES,
    };
    let started = Instant::now();
    let done = {
        let mut engine = env.engine.write().unwrap_or_else(|e| e.into_inner());
        apply_lanes(
            &mut member.lanes,
            &mut engine,
            &gate,
            started,
            &mut commits.letters,
        )
    };
    if done.messages > 0 {
        if let Some(m) = &env.metrics {
            m.processing
                .with_label_values(&["decode_apply"])
                .observe(started.elapsed().as_secs_f64());
        }
    }
    summary.messages += done.messages;
    add_counts(&mut summary.counts, &done.counts);
    commits.applied += done.messages;
    done.messages
}

/// Submits one commit: the state applied since the last one, the next
/// offset of every partition it came from, and its dead letters, in one
/// atomic batch. Nothing is submitted when nothing changed.
fn commit(
    env: &ConsumerEnv<'_>,
    member: &mut Member,
    dead: &mut DeadLetters,
    summary: &mut ConsumerSummary,
    commits: &mut Commits,
    writer: &mut Writer<'_>,
) -> anyhow::Result<()> {
    commits.last = Some(Instant::now());
    let mut batch = {
        let mut engine = env.engine.write().unwrap_or_else(|e| e.into_inner());
        engine.maybe_compact();
        state::dirty_batch(&mut engine)
    };
    let mut offsets = TopicPartitionList::new();
    for l in &mut member.lanes {
        if let (true, Some(next)) = (l.advanced, l.next) {
            state::put_kafka_position(&mut batch, &l.topic, l.partition, next);
            let _ = offsets.add_partition_offset(&l.topic, l.partition, Offset::Offset(next));
        }
        l.advanced = false;
    }
    let letters = std::mem::take(&mut commits.letters);
    summary.dead_letters += letters.len() as u64;
    dead.stage(&mut batch, letters);
    commits.applied = 0;
    if batch.is_empty() {
        return Ok(());
    }
    let submitted_at = Instant::now();
    let metrics = env.metrics.clone();
    let wake = env.batch_done.clone();
    let on_durable: OnDurable = Box::new(move || {
        if let Some(m) = metrics {
            m.processing
                .with_label_values(&["persist"])
                .observe(submitted_at.elapsed().as_secs_f64());
        }
        // The alert loop evaluates what is durable.
        if let Some(n) = wake {
            n.notify_one();
        }
    });
    writer.submit(Commit {
        batch,
        on_durable: Some(on_durable),
    })?;
    summary.batches += 1;
    commits
        .waiting
        .push_back((writer.submitted(), offsets, dead.next_seq()));
    Ok(())
}

/// Acknowledges what the commits durable so far hold: their dead letters
/// may be published, and Kafka's committed offsets (for lag tooling only)
/// move.
fn acknowledge(member: &Member, dead: &mut DeadLetters, commits: &mut Commits, durable: u64) {
    while commits
        .waiting
        .front()
        .is_some_and(|(n, _, _)| *n <= durable)
    {
        let Some((_, offsets, outbox_end)) = commits.waiting.pop_front() else {
            break;
        };
        dead.mark_durable(outbox_end);
        if offsets.count() > 0 {
            let _ = member.consumer.commit(&offsets, CommitMode::Async);
        }
    }
}

fn add_counts(to: &mut IngestCounts, from: &IngestCounts) {
    to.accepted += from.accepted;
    to.duplicate += from.duplicate;
    to.late += from.late;
    to.invalid += from.invalid;
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
