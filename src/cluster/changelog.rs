//! A task's changelog in Kafka: the writer that puts each commit of a task's
//! state changes into the task's partition, fenced per task ([`Fencing`]:
//! a claim record in the log by default, or Kafka transactions), the
//! trailer rule that tells complete batches from a crashed or fenced
//! writer's partial one, and the restorer that reads a task's partition back
//! through the claim rule ([`crate::cluster::claim`]) and the trailer rule.
//!
//! Record format, on partition `task` of a compacted topic:
//! - a state change is a record `key → value` (`None` = tombstone);
//! - every record carries the headers `slastream.writer` (the writer's id,
//!   fresh at every open) and `slastream.seq` (the batch number, from 1);
//!   a claiming writer's also `slastream.epoch`;
//! - the last record of every batch is the trailer `\0trailer/<writer> →
//!   <seq>` (decimal ASCII);
//! - a claiming writer's first record is its claim (see `claim`).
//!
//! Every librdkafka setting of the changelog is in [`settings`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::cluster::claim::{is_claim, Claim, ClaimRule, HEADER_EPOCH};

/// One state change: key and value; `None` deletes the key (a tombstone).
pub type Op = (Vec<u8>, Option<Vec<u8>>);

/// Header naming the writer (one open of a task) that wrote a record.
pub const HEADER_WRITER: &str = "slastream.writer";
/// Header with the batch number (decimal ASCII) a record belongs to.
pub const HEADER_SEQ: &str = "slastream.seq";
/// Key prefix of the trailer record that closes every batch.
pub const TRAILER_PREFIX: &[u8] = b"\0trailer/";
/// Most state changes in one batch. The restorer holds at most one batch per
/// writer, so this bounds its memory too.
pub const MAX_BATCH_RECORDS: usize = 100_000;
/// Most key and value bytes in one batch.
pub const MAX_BATCH_BYTES: usize = 64 << 20;
/// A claiming writer checks that it still owns its task before a commit
/// once this many batches went by since the last check...
pub const CHECK_EVERY_BATCHES: u32 = 10;
/// ... or this long: a superseded writer (a zombie) writes at most this
/// many batches, or for this long plus one commit, after the newer claim.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Attempts at a claim before giving up: a claim is lost only to a
/// concurrent claimer with an epoch at least as high.
const CLAIM_ATTEMPTS: u32 = 3;

/// How the writers of one task are fenced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fencing {
    /// A claim record in the task's partition (`cluster::claim`): works on
    /// any broker, tansu 0.6 included; a superseded writer learns it at its
    /// next ownership check and its records are dropped on restore.
    #[default]
    Claims,
    /// One `transactional.id` per task: the broker fences an older writer
    /// at once. Needs a broker that runs Kafka transactions (EndTxn);
    /// tansu 0.6 does not.
    Transactions,
}

/// A point in a task's changelog: the offset a restore resumes from and the
/// owner there, as [`ChangelogRestorer::restore`] hands them out. Stored
/// with the local state; a fresh task starts at [`Position::start`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub offset: i64,
    /// The claim owning the task at `offset`; `None` before any.
    pub owner: Option<Claim>,
}

impl Position {
    pub fn start() -> Position {
        Position::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error(
        "changelog {topic}, task {task}: this writer was fenced by a newer owner of the task; \
         drop the task"
    )]
    Fenced { topic: String, task: u32 },
    #[error(
        "changelog {topic}, task {task}: the claim at epoch {epoch} was overtaken by an equal \
         or higher claim {attempts} times"
    )]
    ClaimLost {
        topic: String,
        task: u32,
        epoch: u64,
        attempts: u32,
    },
    #[error(
        "changelog {topic}, task {task}: this writer's claim did not come back from the log \
         within {timeout:?}"
    )]
    ClaimUnseen {
        topic: String,
        task: u32,
        timeout: Duration,
    },
    #[error("changelog {topic}, task {task}: {op} failed: {source}")]
    Kafka {
        topic: String,
        task: u32,
        op: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error(
        "changelog {topic}, task {task}: an earlier commit of this writer failed; \
         reopen the writer"
    )]
    Closed { topic: String, task: u32 },
    #[error(
        "a changelog batch of {records} records and {bytes} bytes exceeds the cap of \
         {MAX_BATCH_RECORDS} records and {MAX_BATCH_BYTES} bytes"
    )]
    BatchTooLarge { records: usize, bytes: usize },
    #[error("changelog {topic}, task {task}, offset {offset}: {what}")]
    Malformed {
        topic: String,
        task: u32,
        offset: i64,
        what: String,
    },
    #[error(
        "changelog {topic}, task {task}: restore stalled at offset {position} for {idle:?} \
         before the end {end}"
    )]
    RestoreStalled {
        topic: String,
        task: u32,
        position: i64,
        end: i64,
        idle: Duration,
    },
    #[error(
        "changelog {topic}, task {task}: the log starts at offset {low}, after the restore's \
         start {from}: records were deleted; is the topic compacted rather than deleted?"
    )]
    Truncated {
        topic: String,
        task: u32,
        from: i64,
        low: i64,
    },
    #[error("changelog topic {topic} has {actual} partitions; {expected} tasks need as many")]
    TopicPartitions {
        topic: String,
        actual: usize,
        expected: u32,
    },
}

/// Every librdkafka setting of the changelog, in one place.
pub mod settings {
    use rdkafka::ClientConfig;

    /// The `transactional.id` of a task: one per task and group, so the next
    /// owner of the task fences the previous one.
    pub fn transactional_id(group: &str, task: u32) -> String {
        format!("{group}-task-{task}")
    }

    /// The transactional producer of one task.
    pub fn producer(brokers: &str, transactional_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("transactional.id", transactional_id)
            // Implied by transactional.id; stated because ordering and
            // no-duplicate delivery within a batch depend on it.
            .set("enable.idempotence", "true")
            // A batch is at most MAX_BATCH_RECORDS records plus its trailer:
            // it fits the queue whole, so a commit never waits on itself.
            .set("queue.buffering.max.messages", "200000")
            .set("linger.ms", "5");
        c
    }

    /// The producer of a claiming writer: no transaction; idempotent, so a
    /// retry neither duplicates nor reorders a record; every in-sync
    /// replica has a record before it counts as written.
    pub fn claim_producer(brokers: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("queue.buffering.max.messages", "200000")
            .set("linger.ms", "5");
        c
    }

    /// The consumer a claiming writer reads its partition with: the scan
    /// for the highest epoch at open, then the ownership checks. It reads
    /// the writer's own records back, so its prefetch queue is kept small.
    pub fn check_consumer(brokers: &str) -> ClientConfig {
        let mut c = restore_consumer(brokers);
        c.set("queued.max.messages.kbytes", "8192");
        c
    }

    /// The consumer a restore reads one partition with: assigned, never
    /// subscribed, committing nothing (positions live with the state).
    pub fn restore_consumer(brokers: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("group.id", "slastream-changelog-restore")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            // Restores are bulk reads: large fetches, fewer round trips.
            .set("fetch.max.bytes", "67108864")
            .set("max.partition.fetch.bytes", "16777216");
        c
    }

    /// The admin client [`super::ensure_topic`] takes.
    pub fn admin(brokers: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers);
        c
    }
}

/// Creates the changelog topic `name` with `partitions` partitions (one per
/// task) and `cleanup.policy=compact` when it is missing; checks the
/// partition count when it exists.
pub async fn ensure_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: u32,
) -> Result<(), ChangelogError> {
    const TIMEOUT: Duration = Duration::from_secs(30);
    let kafka = |op, source| ChangelogError::Kafka {
        topic: name.to_string(),
        task: 0,
        op,
        source,
    };
    let topic = NewTopic::new(
        name,
        i32::try_from(partitions).unwrap_or(i32::MAX),
        // -1: the broker's default replication factor.
        TopicReplication::Fixed(-1),
    )
    .set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| kafka("create topic", e))?;
    for r in results {
        match r {
            Ok(_) => {
                tracing::info!(topic = name, partitions, "created changelog topic");
                return Ok(());
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(kafka("create topic", KafkaError::AdminOp(code))),
        }
    }
    // librdkafka has metadata only as a blocking call: one round trip,
    // bounded, and only at start-up when the topic already exists.
    let md = admin
        .inner()
        .fetch_metadata(Some(name), TIMEOUT)
        .map_err(|e| kafka("topic metadata", e))?;
    let actual = md
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .map_or(0, |t| t.partitions().len());
    if actual != partitions as usize {
        return Err(ChangelogError::TopicPartitions {
            topic: name.to_string(),
            actual,
            expected: partitions,
        });
    }
    Ok(())
}

/// The first delivery failure of a writer's producer: without a
/// transaction, a failed record shows only in its delivery report.
#[derive(Clone, Default)]
pub struct Deliveries(Arc<Mutex<Option<KafkaError>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut first) = self.0.lock() {
                first.get_or_insert_with(|| e.clone());
            }
        }
    }
}

impl Deliveries {
    fn take(&self) -> Option<KafkaError> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }
}

/// What a claiming writer holds besides the producer.
struct Claimed {
    epoch: u64,
    /// Reads the partition past the claim: the ownership checks.
    consumer: BaseConsumer,
    /// The next offset a check examines.
    checked: i64,
    batches_since_check: u32,
    last_check: Instant,
    /// When a check is due: [`CHECK_EVERY_BATCHES`], [`CHECK_EVERY`].
    every_batches: u32,
    every: Duration,
}

/// Writes a task's batches of state changes to its partition.
///
/// `open` fences every earlier writer of the task ([`Fencing`]). After a
/// failed commit the writer refuses further commits: the caller's in-memory
/// state is then ahead of the durable changelog, so it must reopen the task
/// from its store and the changelog.
pub struct ChangelogWriter {
    producer: BaseProducer<Deliveries>,
    topic: String,
    task: u32,
    writer: String,
    /// The number of the last committed batch.
    seq: u64,
    timeout: Duration,
    closed: bool,
    /// `None`: fenced by transactions.
    claim: Option<Claimed>,
}

impl ChangelogWriter {
    /// Opens task `task`'s writer, fencing every older writer of the task.
    ///
    /// [`Fencing::Claims`]: reads the partition from `from` (the position
    /// the local state was restored to; [`Position::start`] without one) to
    /// its end for the highest epoch, appends a claim one above it and reads
    /// it back. Restore after this, from the same position: the restore
    /// then reaches past the claim, so it has every record the older owners
    /// wrote before it.
    ///
    /// [`Fencing::Transactions`]: `init_transactions` with `transactional.id
    /// = <group>-task-<task>` fences any older writer and rolls back its open
    /// transaction; `from` is not used.
    pub fn open(
        brokers: &str,
        topic: &str,
        group: &str,
        task: u32,
        fencing: Fencing,
        from: &Position,
        timeout: Duration,
    ) -> Result<ChangelogWriter, ChangelogError> {
        let kafka = |op, source| ChangelogError::Kafka {
            topic: topic.to_string(),
            task,
            op,
            source,
        };
        let writer = format!("{:032x}", rand::random::<u128>());
        let config = match fencing {
            Fencing::Claims => settings::claim_producer(brokers),
            Fencing::Transactions => {
                settings::producer(brokers, &settings::transactional_id(group, task))
            }
        };
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka("create producer", e))?;
        let mut w = ChangelogWriter {
            producer,
            topic: topic.to_string(),
            task,
            writer,
            seq: 0,
            timeout,
            closed: false,
            claim: None,
        };
        match fencing {
            Fencing::Transactions => {
                w.producer
                    .init_transactions(timeout)
                    .map_err(|e| kafka("init_transactions", e))?;
                tracing::info!(topic, task, writer = %w.writer, "changelog writer open (transactions)");
            }
            Fencing::Claims => {
                let consumer: BaseConsumer = settings::check_consumer(brokers)
                    .create()
                    .map_err(|e| kafka("create consumer", e))?;
                w.claim_task(consumer, from)?;
            }
        }
        Ok(w)
    }

    /// Scans for the highest epoch, claims one above, and reads the claim
    /// back; retries when an equal or higher claim came first.
    fn claim_task(
        &mut self,
        consumer: BaseConsumer,
        from: &Position,
    ) -> Result<(), ChangelogError> {
        let (topic, task, timeout) = (self.topic.clone(), self.task, self.timeout);
        let kafka = |op, source| ChangelogError::Kafka {
            topic: topic.clone(),
            task,
            op,
            source,
        };
        assign_from(&consumer, &self.topic, self.task, from.offset, timeout)
            .map_err(|e| kafka("assign", e))?;
        let mut rule = ClaimRule::resume(from.owner.clone());
        let mut reader = PartitionReader::new(&self.topic, self.task, from.offset, timeout);
        // To the end of the partition as it is now.
        while let Some(m) = reader.next(&consumer, true)? {
            observe(&mut rule, &m).map_err(|what| reader.malformed(m.offset(), what))?;
        }
        for _ in 0..CLAIM_ATTEMPTS {
            let mine = Claim {
                epoch: rule.epoch() + 1,
                writer: self.writer.clone(),
            };
            let value = mine.encode();
            let key = mine.key();
            let headers = self.headers(0, Some(mine.epoch));
            let record = BaseRecord::<[u8], [u8]>::to(&self.topic)
                .partition(self.partition())
                .key(&key[..])
                .payload(&value[..])
                .headers(headers);
            self.send(record).map_err(|e| kafka("produce claim", e))?;
            self.producer
                .flush(timeout)
                .map_err(|e| kafka("flush claim", e))?;
            if let Some(e) = self.producer.context().take() {
                return Err(kafka("deliver claim", e));
            }
            // Everything up to and including the claim: whatever claim came
            // first between the scan and this one decides.
            let started = Instant::now();
            let at = loop {
                if started.elapsed() > timeout {
                    return Err(ChangelogError::ClaimUnseen {
                        topic: topic.clone(),
                        task,
                        timeout,
                    });
                }
                let Some(m) = reader.next(&consumer, false)? else {
                    continue;
                };
                if m.key() == Some(&key[..]) {
                    break m.offset();
                }
                observe(&mut rule, &m).map_err(|what| reader.malformed(m.offset(), what))?;
            };
            if rule.claim(mine.clone()) {
                tracing::info!(topic = %self.topic, task, writer = %self.writer, epoch = mine.epoch, offset = at, "changelog writer open (claimed)");
                self.claim = Some(Claimed {
                    epoch: mine.epoch,
                    consumer,
                    checked: at + 1,
                    batches_since_check: 0,
                    last_check: Instant::now(),
                    every_batches: CHECK_EVERY_BATCHES,
                    every: CHECK_EVERY,
                });
                return Ok(());
            }
            tracing::info!(topic = %self.topic, task, epoch = mine.epoch, owner = ?rule.owner(), "changelog claim lost to an earlier claim; claiming again");
        }
        Err(ChangelogError::ClaimLost {
            topic,
            task,
            epoch: rule.epoch(),
            attempts: CLAIM_ATTEMPTS,
        })
    }

    /// Checks ownership before a commit once `batches` batches or `every`
    /// went by since the last check, instead of [`CHECK_EVERY_BATCHES`] and
    /// [`CHECK_EVERY`]: the zombie bound against one ListOffsets request
    /// and the read of the writer's own records per check.
    pub fn with_check_interval(mut self, batches: u32, every: Duration) -> ChangelogWriter {
        if let Some(c) = &mut self.claim {
            c.every_batches = batches.max(1);
            c.every = every;
        }
        self
    }

    /// This writer's id, as in the `slastream.writer` header.
    pub fn writer_id(&self) -> &str {
        &self.writer
    }

    /// This writer's claim epoch; `None` when fenced by transactions.
    pub fn epoch(&self) -> Option<u64> {
        self.claim.as_ref().map(|c| c.epoch)
    }

    /// Reads the partition from where the last check stopped to its end:
    /// [`ChangelogError::Fenced`] (and the writer closes) when a newer claim,
    /// or a record of a higher epoch, is there. Without claims the broker
    /// fences, and this does nothing.
    pub fn check_owner(&mut self) -> Result<(), ChangelogError> {
        if self.closed {
            return Err(ChangelogError::Closed {
                topic: self.topic.clone(),
                task: self.task,
            });
        }
        let Some(claim) = &mut self.claim else {
            return Ok(());
        };
        let (topic, task, timeout) = (self.topic.clone(), self.task, self.timeout);
        let kafka = |op, source| ChangelogError::Kafka {
            topic: topic.clone(),
            task,
            op,
            source,
        };
        let partition = i32::try_from(task).unwrap_or(i32::MAX);
        // Every record below the high watermark is examined. tansu 0.6's
        // watermark lags into its last record batch, but a claim is a
        // batch of its own, so one below the watermark is seen.
        let (_, high) = claim
            .consumer
            .fetch_watermarks(&topic, partition, timeout)
            .map_err(|e| kafka("fetch end offset", e))?;
        let mut reader = PartitionReader::new(&topic, task, claim.checked, timeout);
        let mut newer = None;
        while claim.checked < high {
            // Ends of the partition reached at earlier checks are still
            // queued: the watermark, not those, says where this check ends.
            let Some(m) = reader.next(&claim.consumer, false)? else {
                break;
            };
            claim.checked = m.offset() + 1;
            let (writer, epoch) = if is_claim(m.key()) {
                let c = m
                    .payload()
                    .ok_or("a claim without a value")
                    .and_then(|v| Claim::decode(v).map_err(|_| "a malformed claim"))
                    .map_err(|what| reader.malformed(m.offset(), what.to_string()))?;
                (c.writer, Some(c.epoch))
            } else {
                let writer = header(&m, HEADER_WRITER).unwrap_or_default().to_string();
                (
                    writer,
                    header(&m, HEADER_EPOCH).and_then(|e| e.parse().ok()),
                )
            };
            match epoch {
                Some(e) if e > claim.epoch => {
                    newer = Some((writer, e, m.offset()));
                    break;
                }
                Some(e) if writer != self.writer && !is_claim(m.key()) => {
                    // An older writer still writing: its records are
                    // dropped on restore; it stops at its own next check.
                    tracing::warn!(topic = %topic, task, zombie = %writer, epoch = e, offset = m.offset(), "changelog: a superseded writer still writes");
                }
                _ => {}
            }
        }
        claim.batches_since_check = 0;
        claim.last_check = Instant::now();
        if let Some((writer, epoch, offset)) = newer {
            self.closed = true;
            tracing::warn!(topic = %topic, task, writer = %self.writer, newer = %writer, epoch, offset, "changelog writer superseded");
            return Err(ChangelogError::Fenced { topic, task });
        }
        Ok(())
    }

    /// Writes `ops` and the trailer; the batch's number. With transactions
    /// the batch is one transaction; with claims the ownership is checked
    /// first when due ([`CHECK_EVERY_BATCHES`], [`CHECK_EVERY`]) and the
    /// batch counts once every record is acknowledged.
    /// [`ChangelogError::Fenced`] means a newer owner has the task;
    /// [`ChangelogError::BatchTooLarge`] leaves the writer usable; any other
    /// error closes the writer (and aborts the transaction).
    pub fn commit(&mut self, ops: &[Op]) -> Result<u64, ChangelogError> {
        let due = self.claim.as_ref().is_some_and(|c| {
            c.batches_since_check + 1 >= c.every_batches || c.last_check.elapsed() >= c.every
        });
        if due {
            self.check_owner()?;
        }
        let seq = self.stage(ops)?;
        let trailer_key = trailer_key(&self.writer);
        let trailer_value = seq.to_string();
        let headers = self.headers(seq, self.epoch());
        let trailer = BaseRecord::<[u8], [u8]>::to(&self.topic)
            .partition(self.partition())
            .key(&trailer_key[..])
            .payload(trailer_value.as_bytes())
            .headers(headers);
        let sent = self
            .send(trailer)
            .map_err(|e| ("produce", e))
            .and_then(|()| {
                if self.claim.is_some() {
                    self.producer
                        .flush(self.timeout)
                        .map_err(|e| ("flush", e))?;
                    match self.producer.context().take() {
                        Some(e) => Err(("deliver", e)),
                        None => Ok(()),
                    }
                } else {
                    self.producer
                        .commit_transaction(self.timeout)
                        .map_err(|e| ("commit_transaction", e))
                }
            });
        match sent {
            Ok(()) => {
                self.seq = seq;
                if let Some(c) = &mut self.claim {
                    c.batches_since_check += 1;
                }
                tracing::debug!(topic = %self.topic, task = self.task, seq, records = ops.len(), "changelog batch committed");
                Ok(seq)
            }
            Err((op, e)) => Err(self.fail(op, e)),
        }
    }

    /// Produces `ops` without trailer (and without committing the
    /// transaction), then waits until the broker has them: what a writer
    /// that dies in the middle of a batch leaves in the log. Only for crash
    /// tests; the writer is closed afterwards.
    #[doc(hidden)]
    pub fn produce_without_commit(&mut self, ops: &[Op]) -> Result<(), ChangelogError> {
        self.stage(ops)?;
        self.closed = true;
        self.producer
            .flush(self.timeout)
            .map_err(|e| self.fail("flush", e))
    }

    /// Checks the cap, begins the transaction if any and produces `ops`;
    /// the number of the batch under way.
    fn stage(&mut self, ops: &[Op]) -> Result<u64, ChangelogError> {
        if self.closed {
            return Err(ChangelogError::Closed {
                topic: self.topic.clone(),
                task: self.task,
            });
        }
        let bytes: usize = ops
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        if ops.len() > MAX_BATCH_RECORDS || bytes > MAX_BATCH_BYTES {
            return Err(ChangelogError::BatchTooLarge {
                records: ops.len(),
                bytes,
            });
        }
        let seq = self.seq + 1;
        if self.claim.is_none() {
            if let Err(e) = self.producer.begin_transaction() {
                return Err(self.fail("begin_transaction", e));
            }
        }
        let headers = self.headers(seq, self.epoch());
        for (key, value) in ops {
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic)
                .partition(self.partition())
                .key(&key[..])
                .headers(headers.clone());
            if let Some(v) = value {
                record = record.payload(&v[..]);
            }
            if let Err(e) = self.send(record) {
                return Err(self.fail("produce", e));
            }
        }
        Ok(seq)
    }

    fn partition(&self) -> i32 {
        i32::try_from(self.task).unwrap_or(i32::MAX)
    }

    fn headers(&self, seq: u64, epoch: Option<u64>) -> OwnedHeaders {
        let seq = seq.to_string();
        let h = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: HEADER_WRITER,
                value: Some(self.writer.as_bytes()),
            })
            .insert(Header {
                key: HEADER_SEQ,
                value: Some(seq.as_bytes()),
            });
        match epoch {
            Some(e) => h.insert(Header {
                key: HEADER_EPOCH,
                value: Some(e.to_string().as_bytes()),
            }),
            None => h,
        }
    }

    /// Queues one record, serving the queue while it is full.
    fn send(&self, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Ends a failed commit: fenced, or aborted and closed.
    fn fail(&mut self, op: &'static str, source: KafkaError) -> ChangelogError {
        self.closed = true;
        // Only a transactional producer is fenced by the broker.
        let transactional = self.claim.is_none();
        if transactional && !self.fenced(&source) {
            // A fenced producer cannot abort; any other failure must not
            // leave the transaction open. The abort's own failure adds
            // nothing the first error does not say, except being fenced.
            if let Err(e) = self.producer.abort_transaction(self.timeout) {
                tracing::warn!(topic = %self.topic, task = self.task, error = %e, "changelog abort failed");
            }
        }
        if transactional && self.fenced(&source) {
            tracing::warn!(topic = %self.topic, task = self.task, writer = %self.writer, "changelog writer fenced");
            return ChangelogError::Fenced {
                topic: self.topic.clone(),
                task: self.task,
            };
        }
        tracing::warn!(topic = %self.topic, task = self.task, op, error = %source, "changelog commit failed; writer closed");
        ChangelogError::Kafka {
            topic: self.topic.clone(),
            task: self.task,
            op,
            source,
        }
    }

    fn fenced(&self, e: &KafkaError) -> bool {
        let fenced = |c: RDKafkaErrorCode| {
            matches!(
                c,
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        };
        e.rdkafka_error_code().is_some_and(fenced)
            || self
                .producer
                .client()
                .fatal_error()
                .is_some_and(|(c, _)| fenced(c))
    }
}

pub(crate) fn trailer_key(writer: &str) -> Vec<u8> {
    let mut k = TRAILER_PREFIX.to_vec();
    k.extend_from_slice(writer.as_bytes());
    k
}

/// One record of the changelog as the trailer rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: i64,
    pub writer: String,
    pub seq: u64,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// State changes the trailer rule found complete, and the offset a later
/// restore resumes from once they are applied. `ops` may be empty (a batch
/// whose changes compaction removed): the offset still advances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub ops: Vec<Op>,
    pub next_offset: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrailerError {
    #[error("writer {writer}: batch {seq} follows batch {held}")]
    SeqBackwards { writer: String, seq: u64, held: u64 },
    #[error("trailer of writer {writer} carries the key of another writer")]
    ForeignTrailer { writer: String },
}

/// The restore rule (pure): which records of a changelog belong to complete
/// batches.
///
/// Writers of a task never interleave (a new writer fences the old before it
/// writes), so a partial batch can only be the tail of one writer's run of
/// records, and at most one batch long. The rule therefore holds the records
/// of the current writer's current batch:
/// - the writer's trailer applies them;
/// - a record of the same writer with a higher batch number applies them
///   (the writer never starts a batch before the previous one committed; the
///   trailer is missing only because compaction removed it);
/// - a record of another writer, or the end of the log, discards them (a
///   crashed or fenced writer's partial batch: a broker that does not filter
///   aborted records shows them to read_committed readers);
/// - beyond the cap, the oldest records are applied: more than one batch
///   before the head, they cannot be part of a partial batch (the writer
///   enforces the same cap).
#[derive(Debug)]
pub struct TrailerRule {
    window: Option<Window>,
    max_records: usize,
    max_bytes: usize,
    discarded: u64,
}

/// Drops a held partial batch (logged with `why`); the records dropped.
fn discard(w: Window, why: &str) -> u64 {
    if !w.ops.is_empty() {
        tracing::info!(
            writer = %w.writer,
            seq = w.seq,
            records = w.ops.len(),
            "changelog: partial batch {why} discarded"
        );
    }
    w.ops.len() as u64
}

#[derive(Debug)]
struct Window {
    writer: String,
    seq: u64,
    ops: VecDeque<(i64, Op)>,
    bytes: usize,
}

impl Default for TrailerRule {
    fn default() -> Self {
        TrailerRule::with_caps(MAX_BATCH_RECORDS, MAX_BATCH_BYTES)
    }
}

impl TrailerRule {
    pub fn with_caps(max_records: usize, max_bytes: usize) -> TrailerRule {
        TrailerRule {
            window: None,
            max_records,
            max_bytes,
            discarded: 0,
        }
    }

    /// Records discarded so far as partial batches.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Feeds the next record in log order; what became applicable.
    pub fn push(&mut self, rec: LogRecord) -> Result<Vec<Release>, TrailerError> {
        let mut out = Vec::new();
        let window = match &mut self.window {
            Some(w) if w.writer == rec.writer => {
                if rec.seq < w.seq {
                    return Err(TrailerError::SeqBackwards {
                        writer: rec.writer,
                        seq: rec.seq,
                        held: w.seq,
                    });
                }
                if rec.seq > w.seq {
                    if !w.ops.is_empty() {
                        out.push(Release {
                            ops: w.take(),
                            next_offset: rec.offset,
                        });
                    }
                    w.seq = rec.seq;
                }
                w
            }
            slot => {
                if let Some(old) = slot.take() {
                    self.discarded += discard(old, "of a replaced writer");
                }
                slot.insert(Window {
                    writer: rec.writer.clone(),
                    seq: rec.seq,
                    ops: VecDeque::new(),
                    bytes: 0,
                })
            }
        };
        if let Some(owner) = rec.key.strip_prefix(TRAILER_PREFIX) {
            if owner != rec.writer.as_bytes() {
                return Err(TrailerError::ForeignTrailer { writer: rec.writer });
            }
            out.push(Release {
                ops: window.take(),
                next_offset: rec.offset + 1,
            });
            return Ok(out);
        }
        window.bytes += op_bytes(&rec.key, &rec.value);
        window.ops.push_back((rec.offset, (rec.key, rec.value)));
        let mut aged = Vec::new();
        while window.ops.len() > self.max_records || window.bytes > self.max_bytes {
            let Some((_, op)) = window.ops.pop_front() else {
                break;
            };
            window.bytes -= op_bytes(&op.0, &op.1);
            aged.push(op);
        }
        if !aged.is_empty() {
            tracing::warn!(
                writer = %window.writer,
                seq = window.seq,
                records = aged.len(),
                "changelog: a batch exceeds the cap; its oldest records are applied"
            );
            let next_offset = window.ops.front().map_or(rec.offset + 1, |(o, _)| *o);
            out.push(Release {
                ops: aged,
                next_offset,
            });
        }
        Ok(out)
    }

    /// The end of the log: whatever is held is a partial batch and is
    /// discarded. The total number of records discarded.
    pub fn finish(mut self) -> u64 {
        if let Some(w) = self.window.take() {
            self.discarded += discard(w, "at the end of the log");
        }
        self.discarded
    }
}

impl Window {
    fn take(&mut self) -> Vec<Op> {
        self.bytes = 0;
        self.ops.drain(..).map(|(_, op)| op).collect()
    }
}

fn op_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len)
}

/// What a restore read and applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Records read (claims and trailers included).
    pub records: u64,
    /// Key and value bytes read.
    pub bytes: u64,
    /// State changes handed to the caller.
    pub applied: u64,
    /// Records discarded as partial batches.
    pub discarded: u64,
    /// Records dropped as a superseded writer's (written after a newer
    /// claim).
    pub superseded: u64,
    /// The offset after the last record read: where the partition ended.
    pub end: i64,
    /// The owner at the end: a claim, or the writer of a higher epoch
    /// whose claim compaction removed.
    pub owner: Option<Claim>,
}

/// The value of header `key` of `m`, if it is UTF-8.
fn header<'m>(m: &'m BorrowedMessage<'_>, key: &str) -> Option<&'m str> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Feeds a claim, or a record's epoch, to the claim rule; records without
/// an epoch (a transactional writer's) say nothing about claims.
fn observe(rule: &mut ClaimRule, m: &BorrowedMessage<'_>) -> Result<(), String> {
    if is_claim(m.key()) {
        let claim = Claim::decode(m.payload().unwrap_or_default()).map_err(|e| e.to_string())?;
        rule.claim(claim);
    } else if let Some(epoch) = header(m, HEADER_EPOCH) {
        let epoch = epoch
            .parse::<u64>()
            .map_err(|_| "slastream.epoch is not a number".to_string())?;
        let writer = header(m, HEADER_WRITER).ok_or("no slastream.writer header")?;
        rule.admit(writer, epoch);
    }
    Ok(())
}

/// Assigns partition `task` to `consumer` so that reading from `from`
/// misses nothing; the partition's (low, reported end) offsets.
fn assign_from(
    consumer: &BaseConsumer,
    topic: &str,
    task: u32,
    from: i64,
    timeout: Duration,
) -> Result<(i64, i64), KafkaError> {
    let partition = i32::try_from(task).unwrap_or(i32::MAX);
    let (low, reported_end) = consumer.fetch_watermarks(topic, partition, timeout)?;
    // A broker whose high watermark lags (tansu 0.6 reports the start of
    // its last record batch, plus one) answers a fetch from inside that
    // batch with nothing: start no later than just below the reported
    // end; the reader skips what lies before `from`. The end of a read is
    // the end-of-partition event, not the reported end.
    let start = if reported_end > 0 {
        from.min(reported_end - 1)
    } else {
        from
    }
    .max(0);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&tpl)?;
    Ok((low, reported_end))
}

/// Reads one assigned partition in order from `from`, failing when nothing
/// arrives for `idle`.
struct PartitionReader {
    topic: String,
    task: u32,
    from: i64,
    /// The offset after the last record read.
    position: i64,
    /// The end the broker reported, for the error message.
    reported_end: i64,
    idle: Duration,
    last_progress: Instant,
}

impl PartitionReader {
    fn new(topic: &str, task: u32, from: i64, idle: Duration) -> PartitionReader {
        PartitionReader {
            topic: topic.to_string(),
            task,
            from,
            position: from,
            reported_end: -1,
            idle,
            last_progress: Instant::now(),
        }
    }

    /// The next record; `None` at the end of the partition when
    /// `stop_at_end`, else it waits for more.
    fn next<'c>(
        &mut self,
        consumer: &'c BaseConsumer,
        stop_at_end: bool,
    ) -> Result<Option<BorrowedMessage<'c>>, ChangelogError> {
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                None => {
                    if self.last_progress.elapsed() > self.idle {
                        return Err(ChangelogError::RestoreStalled {
                            topic: self.topic.clone(),
                            task: self.task,
                            position: self.position,
                            end: self.reported_end,
                            idle: self.idle,
                        });
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    self.last_progress = Instant::now();
                    if stop_at_end {
                        return Ok(None);
                    }
                }
                Some(Err(e)) => {
                    return Err(ChangelogError::Kafka {
                        topic: self.topic.clone(),
                        task: self.task,
                        op: "fetch",
                        source: e,
                    })
                }
                Some(Ok(m)) => {
                    self.last_progress = Instant::now();
                    if m.offset() < self.from {
                        continue;
                    }
                    self.position = m.offset() + 1;
                    return Ok(Some(m));
                }
            }
        }
    }

    fn malformed(&self, offset: i64, what: impl Into<String>) -> ChangelogError {
        ChangelogError::Malformed {
            topic: self.topic.clone(),
            task: self.task,
            offset,
            what: what.into(),
        }
    }
}

/// Reads one task's changelog partition back, complete batches only.
pub struct ChangelogRestorer {
    brokers: String,
    topic: String,
    task: u32,
    /// How long a restore may go without receiving anything before it fails.
    idle_timeout: Duration,
}

impl ChangelogRestorer {
    pub fn new(brokers: &str, topic: &str, task: u32, idle_timeout: Duration) -> ChangelogRestorer {
        ChangelogRestorer {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            task,
            idle_timeout,
        }
    }

    /// Reads partition `task` read_committed from `from` (the local
    /// checkpoint) to its end, and calls `apply` with each complete batch
    /// of an owner and the position to resume from once it is applied.
    /// Call it after the task's new writer opened (claimed the task, or
    /// fenced the old writer) and before that writer commits: then the end
    /// reached is past every record the older owners wrote while they owned
    /// the task.
    pub fn restore(
        &self,
        from: &Position,
        mut apply: impl FnMut(&[Op], &Position),
    ) -> Result<RestoreStats, ChangelogError> {
        let kafka = |op, source| ChangelogError::Kafka {
            topic: self.topic.clone(),
            task: self.task,
            op,
            source,
        };
        let consumer: BaseConsumer = settings::restore_consumer(&self.brokers)
            .create()
            .map_err(|e| kafka("create consumer", e))?;
        let (low, reported_end) = assign_from(
            &consumer,
            &self.topic,
            self.task,
            from.offset,
            self.idle_timeout,
        )
        .map_err(|e| kafka("assign", e))?;
        // Compaction keeps the log's start; a start beyond `from` means
        // records were deleted (retention on a topic that should be
        // compacted), and a restore from there would silently miss them.
        if from.offset < low {
            return Err(ChangelogError::Truncated {
                topic: self.topic.clone(),
                task: self.task,
                from: from.offset,
                low,
            });
        }
        let mut stats = RestoreStats {
            end: from.offset,
            ..RestoreStats::default()
        };
        let started = Instant::now();
        let mut reader =
            PartitionReader::new(&self.topic, self.task, from.offset, self.idle_timeout);
        reader.reported_end = reported_end;
        let mut claims = ClaimRule::resume(from.owner.clone());
        let mut rule = TrailerRule::default();
        // The end of what is committed now (read_committed stops at the
        // last stable offset). The caller opened the task's new writer
        // first, so whatever comes later is not an older owner's.
        while let Some(m) = reader.next(&consumer, true)? {
            let offset = m.offset();
            stats.end = offset + 1;
            stats.records += 1;
            let malformed = |what: &str| reader.malformed(offset, what);
            if is_claim(m.key()) {
                let claim = Claim::decode(m.payload().unwrap_or_default())
                    .map_err(|e| malformed(&e.to_string()))?;
                claims.claim(claim);
                continue;
            }
            let writer =
                header(&m, HEADER_WRITER).ok_or_else(|| malformed("no slastream.writer header"))?;
            let seq = header(&m, HEADER_SEQ)
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| malformed("no slastream.seq header"))?;
            if let Some(epoch) = header(&m, HEADER_EPOCH) {
                let epoch = epoch
                    .parse::<u64>()
                    .map_err(|_| malformed("slastream.epoch is not a number"))?;
                if !claims.admit(writer, epoch) {
                    stats.superseded += 1;
                    continue;
                }
            }
            let key = m.key().unwrap_or_default().to_vec();
            let value = m.payload().map(<[u8]>::to_vec);
            stats.bytes += op_bytes(&key, &value) as u64;
            let released = rule
                .push(LogRecord {
                    offset,
                    writer: writer.to_string(),
                    seq,
                    key,
                    value,
                })
                .map_err(|e| malformed(&e.to_string()))?;
            for r in released {
                stats.applied += r.ops.len() as u64;
                let at = Position {
                    offset: r.next_offset,
                    owner: claims.owner().cloned(),
                };
                apply(&r.ops, &at);
            }
        }
        stats.discarded = rule.finish();
        stats.owner = claims.owner().cloned();
        tracing::info!(
            topic = %self.topic,
            task = self.task,
            from = from.offset,
            end = stats.end,
            records = stats.records,
            applied = stats.applied,
            discarded = stats.discarded,
            superseded = stats.superseded,
            took_ms = started.elapsed().as_millis() as u64,
            "changelog restored"
        );
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    type State = BTreeMap<Vec<u8>, Vec<u8>>;

    fn apply_ops(state: &mut State, ops: &[Op]) {
        for (k, v) in ops {
            match v {
                Some(v) => state.insert(k.clone(), v.clone()),
                None => state.remove(k),
            };
        }
    }

    /// A log record as the test builds it: whether it belongs to a
    /// committed batch.
    #[derive(Debug, Clone)]
    struct Entry {
        rec: LogRecord,
        committed: bool,
    }

    /// One writer's run: committed batches, then maybe a partial batch
    /// (a crash or a fence mid-batch).
    #[derive(Debug, Clone)]
    struct Run {
        batches: Vec<Vec<Op>>,
        partial: Option<Vec<Op>>,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0u8..8,
            prop_oneof![
                3 => any::<u8>().prop_map(|v| Some(vec![v])),
                1 => Just(None),
            ],
        )
            .prop_map(|(k, v)| (format!("k{k}").into_bytes(), v))
    }

    fn run() -> impl Strategy<Value = Run> {
        (
            prop::collection::vec(prop::collection::vec(op(), 0..5), 0..5),
            prop::option::of(prop::collection::vec(op(), 1..5)),
        )
            .prop_map(|(batches, partial)| Run { batches, partial })
    }

    /// The log the runs leave, offsets with gaps where transaction markers
    /// would sit, and the state of exactly the committed batches.
    fn log_of(runs: &[Run], gaps: &[bool]) -> (Vec<Entry>, State) {
        let mut log = Vec::new();
        let mut oracle = State::new();
        let mut offset = 0i64;
        let mut gap = gaps.iter().cycle();
        let push =
            |log: &mut Vec<Entry>, offset: &mut i64, writer: &str, seq, key, value, committed| {
                log.push(Entry {
                    rec: LogRecord {
                        offset: *offset,
                        writer: writer.to_string(),
                        seq,
                        key,
                        value,
                    },
                    committed,
                });
                *offset += 1;
            };
        for (i, run) in runs.iter().enumerate() {
            let writer = format!("w{i}");
            for (b, ops) in run.batches.iter().enumerate() {
                let seq = b as u64 + 1;
                for (k, v) in ops {
                    push(
                        &mut log,
                        &mut offset,
                        &writer,
                        seq,
                        k.clone(),
                        v.clone(),
                        true,
                    );
                }
                let trailer = trailer_key(&writer);
                push(
                    &mut log,
                    &mut offset,
                    &writer,
                    seq,
                    trailer,
                    Some(seq.to_string().into_bytes()),
                    true,
                );
                apply_ops(&mut oracle, ops);
                if *gap.next().unwrap_or(&false) {
                    offset += 1;
                }
            }
            if let Some(ops) = &run.partial {
                let seq = run.batches.len() as u64 + 1;
                for (k, v) in ops {
                    push(
                        &mut log,
                        &mut offset,
                        &writer,
                        seq,
                        k.clone(),
                        v.clone(),
                        false,
                    );
                }
            }
        }
        (log, oracle)
    }

    /// Log compaction over the records before `cut` (the cleaned segments):
    /// a committed record goes when a later committed record has its key
    /// (trailers included, so only a writer's last trailer is sure to stay);
    /// a committed tombstone that is its key's last record may go; records
    /// of aborted batches may go. Aborted records never shadow committed
    /// ones, as in Kafka's cleaner.
    fn compact(log: &[Entry], cut: usize, drops: &[bool]) -> Vec<Entry> {
        let mut last: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, e) in log.iter().enumerate() {
            if e.committed {
                last.insert(&e.rec.key, i);
            }
        }
        let mut drop = drops.iter().cycle();
        log.iter()
            .enumerate()
            .filter(|(i, e)| {
                if *i >= cut {
                    return true;
                }
                let coin = *drop.next().unwrap_or(&false);
                if !e.committed {
                    return !coin;
                }
                let latest = last.get(&e.rec.key[..]) == Some(i);
                if !latest {
                    return false;
                }
                !(e.rec.value.is_none() && coin)
            })
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Feeds `log` through the rule into `state`; every release's offset.
    fn restore_into(state: &mut State, log: &[Entry]) -> Vec<i64> {
        let mut rule = TrailerRule::default();
        let mut checkpoints = Vec::new();
        for e in log {
            for r in rule.push(e.rec.clone()).expect("well-formed log") {
                apply_ops(state, &r.ops);
                checkpoints.push(r.next_offset);
            }
        }
        rule.finish();
        checkpoints
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the crashes, fences and compaction, the rule applies
        /// exactly the committed batches; and resuming from any offset it
        /// handed out, on top of the state applied up to it, ends the same.
        #[test]
        fn the_trailer_rule_applies_exactly_the_committed_batches(
            runs in prop::collection::vec(run(), 1..6),
            gaps in prop::collection::vec(any::<bool>(), 1..8),
            compaction in prop::option::of((0.0f64..=1.0, prop::collection::vec(any::<bool>(), 1..8))),
            resume_at in any::<prop::sample::Index>(),
        ) {
            let (mut log, oracle) = log_of(&runs, &gaps);
            if let Some((fraction, drops)) = compaction {
                let cut = (log.len() as f64 * fraction) as usize;
                log = compact(&log, cut, &drops);
            }
            let mut state = State::new();
            let checkpoints = restore_into(&mut state, &log);
            prop_assert_eq!(&state, &oracle);

            if !checkpoints.is_empty() {
                // A local store checkpointed at one release, then restored
                // the tail from there.
                let k = resume_at.index(checkpoints.len());
                let mut state = State::new();
                let mut rule = TrailerRule::default();
                let mut released = 0;
                'feed: for e in &log {
                    for r in rule.push(e.rec.clone()).expect("well-formed log") {
                        apply_ops(&mut state, &r.ops);
                        if released == k {
                            break 'feed;
                        }
                        released += 1;
                    }
                }
                let from = checkpoints[k];
                let tail: Vec<Entry> = log.iter().filter(|e| e.rec.offset >= from).cloned().collect();
                restore_into(&mut state, &tail);
                prop_assert_eq!(&state, &oracle);
            }
        }
    }

    fn rec(offset: i64, writer: &str, seq: u64, key: &str, value: Option<&str>) -> LogRecord {
        LogRecord {
            offset,
            writer: writer.into(),
            seq,
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn trailer(offset: i64, writer: &str, seq: u64) -> LogRecord {
        LogRecord {
            offset,
            writer: writer.into(),
            seq,
            key: trailer_key(writer),
            value: Some(seq.to_string().into_bytes()),
        }
    }

    #[test]
    fn a_trailer_applies_its_batch_and_the_next_offset_follows_it() {
        let mut rule = TrailerRule::default();
        assert!(rule
            .push(rec(0, "a", 1, "x", Some("1")))
            .unwrap()
            .is_empty());
        assert!(rule.push(rec(1, "a", 1, "y", None)).unwrap().is_empty());
        let out = rule.push(trailer(2, "a", 1)).unwrap();
        assert_eq!(
            out,
            vec![Release {
                ops: vec![(b"x".to_vec(), Some(b"1".to_vec())), (b"y".to_vec(), None)],
                next_offset: 3
            }]
        );
        assert_eq!(rule.finish(), 0);
    }

    #[test]
    fn a_new_writer_discards_the_old_writers_partial_batch() {
        let mut rule = TrailerRule::default();
        rule.push(rec(0, "a", 1, "x", Some("1"))).unwrap();
        rule.push(trailer(1, "a", 1)).unwrap();
        rule.push(rec(2, "a", 2, "x", Some("partial"))).unwrap();
        assert!(rule
            .push(rec(3, "b", 1, "y", Some("2")))
            .unwrap()
            .is_empty());
        let out = rule.push(trailer(4, "b", 1)).unwrap();
        assert_eq!(out[0].ops, vec![(b"y".to_vec(), Some(b"2".to_vec()))]);
        assert_eq!(rule.finish(), 1);
    }

    #[test]
    fn a_later_batch_of_the_same_writer_applies_a_batch_whose_trailer_was_compacted() {
        let mut rule = TrailerRule::default();
        rule.push(rec(0, "a", 1, "x", Some("1"))).unwrap();
        let out = rule.push(rec(2, "a", 2, "y", Some("2"))).unwrap();
        assert_eq!(
            out,
            vec![Release {
                ops: vec![(b"x".to_vec(), Some(b"1".to_vec()))],
                next_offset: 2
            }]
        );
        // The end of the log discards batch 2: no trailer.
        assert_eq!(rule.finish(), 1);
    }

    #[test]
    fn records_beyond_the_cap_age_out_and_are_applied() {
        let mut rule = TrailerRule::with_caps(2, usize::MAX);
        rule.push(rec(10, "a", 1, "x", Some("1"))).unwrap();
        rule.push(rec(11, "a", 1, "y", Some("2"))).unwrap();
        let out = rule.push(rec(12, "a", 1, "z", Some("3"))).unwrap();
        assert_eq!(
            out,
            vec![Release {
                ops: vec![(b"x".to_vec(), Some(b"1".to_vec()))],
                next_offset: 11
            }]
        );
        let mut by_bytes = TrailerRule::with_caps(usize::MAX, 3);
        by_bytes.push(rec(0, "a", 1, "x", Some("1"))).unwrap();
        let out = by_bytes.push(rec(1, "a", 1, "y", Some("2"))).unwrap();
        assert_eq!(out[0].ops, vec![(b"x".to_vec(), Some(b"1".to_vec()))]);
    }

    #[test]
    fn a_batch_number_going_backwards_or_a_foreign_trailer_is_refused() {
        let mut rule = TrailerRule::default();
        rule.push(rec(0, "a", 2, "x", Some("1"))).unwrap();
        assert_eq!(
            rule.push(rec(1, "a", 1, "x", Some("1"))),
            Err(TrailerError::SeqBackwards {
                writer: "a".into(),
                seq: 1,
                held: 2
            })
        );
        let mut foreign = trailer(2, "b", 1);
        foreign.writer = "a".into();
        foreign.seq = 2;
        assert_eq!(
            rule.push(foreign),
            Err(TrailerError::ForeignTrailer { writer: "a".into() })
        );
    }
}
