//! Cluster-mode groundwork against Kafka-protocol brokers: `task_of` agrees
//! with librdkafka's `murmur2_random` partitioner (tansu); the changelog
//! topic is created compacted (tansu); the task changelog commits, fences and
//! restores through the trailer rule, and a writer killed mid-transaction
//! leaves nothing a restore applies (librdkafka's mock cluster: tansu 0.6
//! does not advertise EndTxn, so librdkafka cannot commit a transaction on
//! it, which a test pins); fencing by claims on tansu (zombies, ownership
//! checks, a writer killed mid-batch, the restore rate); and what tansu
//! does with cooperative-sticky, range and roundrobin assignment.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use slastream::cluster::changelog::{
    ensure_topic, settings, ChangelogError, ChangelogRestorer, ChangelogWriter, Fencing, Op,
    Position, RestoreStats, HEADER_SEQ, HEADER_WRITER,
};
use slastream::cluster::partition::task_of;

use crate::kafka::Broker;

const TOPIC: &str = "g.changelog";
const TASKS: u32 = 6;
const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    settings::admin(&broker.addr())
        .create()
        .expect("admin client")
}

/// librdkafka's in-process mock cluster with the changelog topic: it runs
/// the transaction protocol (coordinator, epochs, markers), which tansu 0.6
/// cannot with librdkafka (see `tansu_0_6_cannot_commit_a_librdkafka_transaction`).
struct TxnCluster {
    mock: MockCluster<'static, DefaultProducerContext>,
    addr: String,
}

fn txn_cluster() -> TxnCluster {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(TOPIC, TASKS as i32, 1)
        .expect("changelog topic");
    mock.create_topic("spike", 1, 1).expect("spike topic");
    let addr = mock.bootstrap_servers();
    TxnCluster { mock, addr }
}

fn op(k: &str, v: Option<&str>) -> Op {
    (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
}

/// `n` puts `<prefix>-<i>` → `<prefix>-<i>-value`.
fn batch(prefix: &str, n: usize) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let k = format!("{prefix}-{i}");
            let v = format!("{k}-value");
            op(&k, Some(&v))
        })
        .collect()
}

/// A writer of `task` fenced by a transaction.
// The error is the library's; its size does not matter in a test.
#[allow(clippy::result_large_err)]
fn open_txn(addr: &str, task: u32) -> Result<ChangelogWriter, ChangelogError> {
    ChangelogWriter::open(
        addr,
        TOPIC,
        "g",
        task,
        Fencing::Transactions,
        &Position::start(),
        TIMEOUT,
    )
}

/// A writer of `task` fenced by a claim, scanning from the start.
// The error is the library's; its size does not matter in a test.
#[allow(clippy::result_large_err)]
fn open_claim(addr: &str, task: u32) -> Result<ChangelogWriter, ChangelogError> {
    ChangelogWriter::open(
        addr,
        TOPIC,
        "g",
        task,
        Fencing::Claims,
        &Position::start(),
        TIMEOUT,
    )
}

/// Restores `task` from `from`: every batch handed out, and the stats.
fn restore_from(
    addr: &str,
    task: u32,
    from: &Position,
) -> (Vec<(Vec<Op>, Position)>, RestoreStats) {
    let mut batches = Vec::new();
    let stats = ChangelogRestorer::new(addr, TOPIC, task, TIMEOUT)
        .restore(from, |ops, next| batches.push((ops.to_vec(), next.clone())))
        .expect("restore");
    (batches, stats)
}

/// Restores `task` whole.
fn restore(addr: &str, task: u32) -> (Vec<(Vec<Op>, Position)>, RestoreStats) {
    restore_from(addr, task, &Position::start())
}

fn state_of(batches: &[(Vec<Op>, Position)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for (ops, _) in batches {
        for (k, v) in ops {
            match v {
                Some(v) => state.insert(k.clone(), v.clone()),
                None => state.remove(k),
            };
        }
    }
    state
}

/// Every record of one partition as a read_committed consumer sees it, up
/// to the end of the partition: (key, value, writer header).
fn read_committed(
    addr: &str,
    topic: &str,
    partition: i32,
) -> Vec<(Vec<u8>, Option<Vec<u8>>, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "pin")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let started = Instant::now();
    while started.elapsed() < TIMEOUT {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let writer = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == HEADER_WRITER))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                out.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().map(<[u8]>::to_vec),
                    writer,
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("read {topic}/{partition}: {e}"),
            None => {}
        }
    }
    panic!("reading {topic}/{partition} timed out");
}

#[tokio::test(flavor = "multi_thread")]
async fn task_of_matches_librdkafkas_murmur2_random_partitioner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let topic = "keyed";
    let new = NewTopic::new(topic, TASKS as i32, TopicReplication::Fixed(1));
    let created = admin(&broker)
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let keys: Vec<String> = (0..600)
        .map(|i| format!("customer-{i}"))
        .chain(["", "21", "foobar", "acme", "ümlaut-ß"].map(String::from))
        .collect();
    for k in keys.iter().filter(|k| !k.is_empty()) {
        producer
            .send(BaseRecord::to(topic).key(k.as_str()).payload("x"))
            .expect("queue");
    }
    producer.flush(TIMEOUT).expect("delivered");

    let mut seen = 0;
    for p in 0..TASKS as i32 {
        for (key, _, _) in read_committed(&broker.addr(), topic, p) {
            let key = String::from_utf8(key).expect("utf-8 key");
            assert_eq!(
                task_of(&key, TASKS),
                p as u32,
                "librdkafka put {key:?} on partition {p}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, keys.len() - 1, "every keyed record read back");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_changelog_topic_is_created_once_with_one_partition_per_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    ensure_topic(&admin(&broker), TOPIC, TASKS)
        .await
        .expect("create the changelog topic");
    ensure_topic(&admin(&broker), TOPIC, TASKS)
        .await
        .expect("an existing topic with as many partitions is accepted");
    match ensure_topic(&admin(&broker), TOPIC, TASKS + 1).await {
        Err(ChangelogError::TopicPartitions { actual: 6, .. }) => {}
        other => panic!("a partition count mismatch must be refused: {other:?}"),
    }
}

/// tansu 0.6.0 leaves EndTxn out of its ApiVersions answer, so librdkafka
/// refuses to send it: a transaction opens (InitProducerId) and produces,
/// but can be neither committed nor aborted. When tansu advertises EndTxn
/// this fails: move the changelog tests onto tansu then.
#[tokio::test(flavor = "multi_thread")]
async fn tansu_0_6_cannot_commit_a_librdkafka_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    ensure_topic(&admin(&broker), TOPIC, TASKS)
        .await
        .expect("create the changelog topic");
    let mut w = open_txn(&broker.addr(), 1).expect("init_transactions works on tansu");
    match w.commit(&[op("a", Some("1"))]) {
        Err(ChangelogError::Kafka {
            op: "commit_transaction",
            source,
            ..
        }) => assert_eq!(
            source.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnsupportedFeature),
            "{source}"
        ),
        other => panic!("tansu now commits librdkafka transactions: {other:?}"),
    }
}

#[test]
fn committed_batches_restore_and_aborted_ones_do_not() {
    let cluster = txn_cluster();
    let addr = &cluster.addr;
    let mut w = open_txn(addr, 1).expect("open");
    let first = vec![op("a", Some("1")), op("b", Some("2"))];
    let second = vec![op("a", None), op("c", Some("3"))];
    assert_eq!(w.commit(&first).expect("commit"), 1);
    assert_eq!(w.commit(&second).expect("commit"), 2);

    let (batches, stats) = restore(addr, 1);
    assert_eq!(
        batches
            .iter()
            .map(|(ops, _)| ops.clone())
            .collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(
        state_of(&batches),
        BTreeMap::from([
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ])
    );
    assert_eq!((stats.records, stats.applied, stats.discarded), (6, 4, 0));
    // Every record carries the writer.
    for (key, _, writer) in read_committed(addr, TOPIC, 1) {
        assert_eq!(writer, w.writer_id(), "{key:?}");
    }

    // What a read_committed reader sees of an aborted transaction here.
    let raw: BaseProducer = settings::producer(addr, "pin-abort")
        .create()
        .expect("producer");
    raw.init_transactions(TIMEOUT).expect("init");
    raw.begin_transaction().expect("begin");
    raw.send(BaseRecord::to("spike").key("aborted").payload("x"))
        .map_err(|(e, _)| e)
        .expect("queue");
    raw.flush(TIMEOUT).expect("flush");
    raw.abort_transaction(TIMEOUT).expect("abort");
    raw.begin_transaction().expect("begin");
    raw.send(BaseRecord::to("spike").key("committed").payload("x"))
        .map_err(|(e, _)| e)
        .expect("queue");
    raw.commit_transaction(TIMEOUT).expect("commit");
    let keys: Vec<String> = read_committed(addr, "spike", 0)
        .into_iter()
        .map(|(k, _, _)| String::from_utf8_lossy(&k).into_owned())
        .collect();
    // librdkafka's mock cluster, like tansu 0.6, returns no aborted
    // transactions in Fetch: the aborted record reaches read_committed
    // readers, which is what the trailer rule is for.
    assert_eq!(
        keys,
        ["aborted", "committed"],
        "the mock cluster now filters aborted records; the trailer rule tests below then no \
         longer see a partial batch"
    );
}

#[test]
fn a_new_writer_fences_the_old_one_and_restore_skips_a_fenced_partial_batch() {
    let cluster = txn_cluster();
    let addr = &cluster.addr;
    let task = 3;

    let mut a = open_txn(addr, task).expect("open a");
    let (a1, a2) = (batch("a1", 3), batch("a2", 3));
    a.commit(&a1).expect("a1");
    a.commit(&a2).expect("a2");

    let mut b = open_txn(addr, task).expect("open b");
    // The mock cluster does not check producer epochs (A could still
    // commit); it answers A's next transactional request the way a broker
    // that fences does.
    cluster.mock.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let fenced = a.commit(&batch("a3", 3));
    cluster
        .mock
        .clear_request_errors(RDKafkaApiKey::AddPartitionsToTxn);
    match fenced {
        Err(ChangelogError::Fenced { task: 3, .. }) => {}
        other => panic!("the old writer must be fenced, got {other:?}"),
    }
    assert!(
        matches!(
            a.commit(&batch("a4", 1)),
            Err(ChangelogError::Closed { .. })
        ),
        "a fenced writer refuses further commits"
    );
    let (b1, b2) = (batch("b1", 2), batch("b2", 2));
    b.commit(&b1).expect("b1");
    b.commit(&b2).expect("b2");
    // B is fenced in the middle of a batch: its records are on the broker,
    // in a transaction the next open rolls back.
    b.produce_without_commit(&batch("b3", 4))
        .expect("stage a batch");
    let mut c = open_txn(addr, task).expect("open c");
    let c1 = batch("c1", 2);
    c.commit(&c1).expect("c1");

    let log = read_committed(addr, TOPIC, task as i32);
    let leaked = log
        .iter()
        .filter(|(k, _, w)| w == b.writer_id() && k.starts_with(b"b3-"))
        .count();
    assert_eq!(leaked, 4, "read_committed sees the rolled-back batch");
    assert!(
        !log.iter().any(|(k, _, _)| k.starts_with(b"a3-")),
        "the fenced writer's produce never reached the log"
    );

    let (batches, stats) = restore(addr, task);
    let got: Vec<Vec<Op>> = batches.into_iter().map(|(ops, _)| ops).collect();
    assert_eq!(got, vec![a1, a2, b1, b2, c1]);
    assert_eq!(stats.discarded, 4);
}

/// The child side of the crash test: set only in a process the test
/// starts. It commits three batches, stages a fourth without committing,
/// says so on stdout and waits to be killed.
const CHILD_ENV: &str = "SLASTREAM_TEST_CHANGELOG_CHILD";
const CHILD_STAGED: &str = "changelog-child: staged";

#[test]
fn changelog_writer_child_process() {
    let Ok(addr) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut w = open_txn(&addr, 2).expect("open");
    for i in 0..3 {
        w.commit(&batch(&format!("committed{i}"), 10))
            .expect("commit");
    }
    w.produce_without_commit(&batch("partial", 50))
        .expect("stage");
    println!("{CHILD_STAGED}");
    loop {
        std::thread::park();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_writer_killed_mid_transaction_leaves_a_partial_batch_that_restore_discards() {
    let cluster = txn_cluster();
    let addr = &cluster.addr;
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "cluster::changelog_writer_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, addr)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child writer"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let staged = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints the test's name on the same line first.
        .any(|l| l.ends_with(CHILD_STAGED));
    assert!(staged, "the child writer ended before staging its batch");
    // SIGKILL while the fourth transaction is open.
    child.0.kill().expect("SIGKILL the child");
    let status = child.0.wait().expect("wait");
    assert!(!status.success());

    // The next owner fences the dead writer, which rolls its transaction
    // back.
    let mut next = open_txn(addr, 2).expect("open");
    let (batches, stats) = restore(addr, 2);
    assert_eq!(batches.len(), 3);
    assert_eq!(stats.applied, 30);
    assert_eq!(
        stats.discarded, 50,
        "read_committed shows the killed writer's rolled-back batch; the rule discards it"
    );
    let state = state_of(&batches);
    assert!(state.keys().all(|k| k.starts_with(b"committed")));
    assert_eq!(state.len(), 30);

    next.commit(&batch("after", 5)).expect("commit after");
    let (batches, again) = restore(addr, 2);
    assert_eq!(batches.len(), 4);
    assert_eq!(
        (again.applied, again.discarded),
        (35, stats.discarded),
        "the partial batch stays out"
    );
}

#[test]
fn a_restore_from_a_checkpoint_reads_only_the_tail() {
    let cluster = txn_cluster();
    let addr = &cluster.addr;
    let mut w = open_txn(addr, 4).expect("open");
    for i in 0..10 {
        w.commit(&batch(&format!("b{i}"), 100)).expect("commit");
    }
    let (full, stats) = restore(addr, 4);
    assert_eq!(full.len(), 10);
    assert_eq!(stats.records, 10 * 101);

    // The local store applied seven batches and checkpointed after them.
    let checkpoint = full[6].1.clone();
    let (tail, stats) = restore_from(addr, 4, &checkpoint);
    assert_eq!(stats.records, 3 * 101, "only the tail is read");
    assert_eq!(stats.applied, 300);
    let mut resumed = full[..7].to_vec();
    resumed.extend(tail);
    assert_eq!(state_of(&resumed), state_of(&full));

    // From the end, nothing is read.
    let (none, stats) = restore_from(addr, 4, &full[9].1);
    assert!(none.is_empty());
    assert_eq!(stats.records, 0);
}

/// Restores 200,000 records (20 batches of 10,000, 100-byte values) from
/// tansu and prints the rate. tansu cannot commit librdkafka transactions and
/// the mock cluster keeps only ~5 MB per partition, so the batches are
/// written here without a transaction, in the changelog's record format.
#[tokio::test(flavor = "multi_thread")]
async fn restore_rate_of_200k_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    ensure_topic(&admin(&broker), TOPIC, TASKS)
        .await
        .expect("create the changelog topic");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("queue.buffering.max.messages", "300000")
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let writer = "0123456789abcdef0123456789abcdef";
    let value = "v".repeat(100);
    for b in 1..=20u64 {
        let seq = b.to_string();
        let headers = || {
            OwnedHeaders::new()
                .insert(Header {
                    key: HEADER_WRITER,
                    value: Some(writer),
                })
                .insert(Header {
                    key: HEADER_SEQ,
                    value: Some(&seq),
                })
        };
        for i in 0..10_000 {
            let key = format!("bucket/{b:02}/{i:06}");
            producer
                .send(
                    BaseRecord::to(TOPIC)
                        .partition(5)
                        .key(&key)
                        .payload(&value)
                        .headers(headers()),
                )
                .map_err(|(e, _)| e)
                .expect("queue");
        }
        let trailer = format!("\0trailer/{writer}");
        producer
            .send(
                BaseRecord::to(TOPIC)
                    .partition(5)
                    .key(&trailer)
                    .payload(&seq)
                    .headers(headers()),
            )
            .map_err(|(e, _)| e)
            .expect("queue");
    }
    producer.flush(Duration::from_secs(120)).expect("delivered");

    let started = Instant::now();
    let mut applied = 0usize;
    let stats = ChangelogRestorer::new(&broker.addr(), TOPIC, 5, TIMEOUT)
        .restore(&Position::start(), |ops, _| applied += ops.len())
        .expect("restore");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(applied, 200_000);
    assert_eq!(stats.records, 200_020);
    println!(
        "changelog restore from tansu: {} records, {:.1} MB of keys and values in {:.2} s: \
         {:.0} records/s, {:.1} MB/s",
        stats.records,
        stats.bytes as f64 / 1e6,
        secs,
        stats.records as f64 / secs,
        stats.bytes as f64 / 1e6 / secs,
    );
}

/// One rebalance callback: ("assign" | "revoke", partitions).
type Callback = (&'static str, Vec<i32>);

/// Rebalance callbacks a consumer saw.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Callback>>>);

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (what, tpl) = match rebalance {
            Rebalance::Assign(tpl) => ("assign", tpl),
            Rebalance::Revoke(tpl) => ("revoke", tpl),
            Rebalance::Error(_) => return,
        };
        let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        parts.sort_unstable();
        if let Ok(mut events) = self.0.lock() {
            events.push((what, parts));
        }
    }
}

fn owned(c: &BaseConsumer<Recorder>) -> Vec<i32> {
    let mut p: Vec<i32> = c
        .assignment()
        .map(|t| t.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default();
    p.sort_unstable();
    p
}

fn disjoint_cover(owned: &[Vec<i32>], n: i32) -> bool {
    let mut all: Vec<i32> = owned.iter().flatten().copied().collect();
    all.sort_unstable();
    owned.iter().all(|o| !o.is_empty()) && all == (0..n).collect::<Vec<_>>()
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_sticky_with_static_members_on_tansu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let topic = "g.tasks";
    let new = NewTopic::new(topic, 6, TopicReplication::Fixed(1));
    admin(&broker)
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create topic");

    let member = |i: usize| -> (BaseConsumer<Recorder>, Recorder) {
        let rec = Recorder::default();
        let c: BaseConsumer<Recorder> = ClientConfig::new()
            .set("bootstrap.servers", broker.addr())
            .set("group.id", "g")
            .set("group.instance.id", format!("g-{i}"))
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.auto.commit", "false")
            .create_with_context(rec.clone())
            .expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        (c, rec)
    };
    let (members, recorders): (Vec<_>, Vec<_>) = (0..3).map(member).unzip();
    // Long enough for several rebalances (session timeout 6 s).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(40) {
        for c in &members {
            let _ = c.poll(Duration::from_millis(20));
        }
    }
    let owned_now: Vec<Vec<i32>> = members.iter().map(owned).collect();
    let callbacks: Vec<Vec<(&str, Vec<i32>)>> = recorders
        .iter()
        .map(|r| r.0.lock().map(|e| e.clone()).unwrap_or_default())
        .collect();
    eprintln!(
        "cooperative-sticky on tansu after 40 s: owned {owned_now:?}, callbacks {callbacks:?}"
    );
    assert!(
        members
            .iter()
            .all(|c| matches!(c.rebalance_protocol(), RebalanceProtocol::Cooperative)),
        "librdkafka runs the cooperative protocol"
    );
    // Observed on tansu 0.6.0: the group never settles. Members get
    // incremental assignments (e.g. [1, 4] and [2, 5]) that are revoked
    // again, and after 40 s no member owns a partition. When this fails,
    // tansu converges: extend the test to a leave, checking that only the
    // moved partitions see revoke/assign callbacks.
    assert!(
        !disjoint_cover(&owned_now, 6),
        "tansu now converges on a cooperative-sticky assignment: {owned_now:?}"
    );
}

/// Polls every member until `done` holds of their assignments or `limit`
/// passes; how long it took, or what they owned and the rebalance
/// callbacks each saw.
fn settle(
    members: &[&BaseConsumer<Recorder>],
    limit: Duration,
    done: impl Fn(&[Vec<i32>]) -> bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        for c in members {
            let _ = c.poll(Duration::from_millis(10));
        }
        let owned_now: Vec<Vec<i32>> = members.iter().map(|c| owned(c)).collect();
        if done(&owned_now) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            let callbacks: Vec<Vec<Callback>> = members
                .iter()
                .map(|c| c.context().0.lock().map(|e| e.clone()).unwrap_or_default())
                .collect();
            return Err(format!("owned {owned_now:?}, callbacks {callbacks:?}"));
        }
    }
}

/// What three members of one group with an eager assignor did on tansu:
/// how long each phase took to settle, or what they had after
/// [`SETTLE_LIMIT`].
#[derive(Debug)]
struct Phases {
    joined: Result<Duration, String>,
    left: Result<Duration, String>,
    rejoined: Result<Duration, String>,
}

const SETTLE_LIMIT: Duration = Duration::from_secs(45);

/// Three members join (settle on a disjoint cover of the 6 tasks), one
/// closes (the two others should cover all 6: at once for a dynamic member,
/// which leaves the group, after its session timeout for a static one), it
/// restarts (with the same instance id when static), and the three should
/// cover them again.
async fn eager_assignment_on_tansu(strategy: &str, static_members: bool) -> Phases {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let topic = "g.tasks";
    let new = NewTopic::new(topic, 6, TopicReplication::Fixed(1));
    admin(&broker)
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create topic");
    let member = |i: usize| -> BaseConsumer<Recorder> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", broker.addr())
            .set("group.id", "g");
        if static_members {
            cfg.set("group.instance.id", format!("g-{i}"));
        }
        let c: BaseConsumer<Recorder> = cfg
            .set("partition.assignment.strategy", strategy)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.auto.commit", "false")
            .create_with_context(Recorder::default())
            .expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        c
    };
    let cover = |o: &[Vec<i32>]| disjoint_cover(o, 6);

    let (a, b, c) = (member(0), member(1), member(2));
    let joined = settle(&[&a, &b, &c], SETTLE_LIMIT, cover);
    // A static member's close sends no LeaveGroup: the others should take
    // its tasks once its session times out.
    drop(c);
    let left = settle(&[&a, &b], SETTLE_LIMIT, cover);
    let c = member(2);
    let rejoined = settle(&[&a, &b, &c], SETTLE_LIMIT, cover);
    let phases = Phases {
        joined,
        left,
        rejoined,
    };
    println!(
        "{strategy}, {} members, on tansu (session timeout 6 s): {phases:?}",
        if static_members { "static" } else { "dynamic" }
    );
    phases
}

/// A measurement, not a check: on tansu 0.6.0 (librdkafka 2.12.1, session
/// timeout 6 s) the outcome varies from run to run. Observed with `range`:
/// one run settled every phase (6.1 s after three joined, 12.0 s after one
/// closed, 18.5 s after it restarted); another settled the join, then the
/// two others had their tasks revoked and were never assigned again within
/// 45 s; another never settled at all (assigned and revoked over and
/// over). With `roundrobin` the three never settled in the runs made. Run
/// with `--ignored --nocapture` to see the phases.
fn report(p: &Phases) {
    let settled = [&p.joined, &p.left, &p.rejoined]
        .iter()
        .filter(|r| r.is_ok())
        .count();
    println!("phases settled: {settled} of 3");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement of tansu's group handling, which varies from run to run"]
async fn range_assignment_with_static_members_on_tansu() {
    report(&eager_assignment_on_tansu("range", true).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement of tansu's group handling, which varies from run to run"]
async fn roundrobin_assignment_with_static_members_on_tansu() {
    report(&eager_assignment_on_tansu("roundrobin", true).await);
}

/// Without static membership the group works on tansu 0.6.0: with an eager
/// assignor three members settle on a disjoint cover of the tasks, the two
/// left after a close take all of them, and a restarted member gets its
/// share again (each phase in about 3 to 4 s, in every run made). Task
/// ownership can come from the group protocol here, with dynamic members.
#[tokio::test(flavor = "multi_thread")]
async fn range_assignment_with_dynamic_members_settles_on_tansu() {
    let p = eager_assignment_on_tansu("range", false).await;
    for (phase, r) in [
        ("join", &p.joined),
        ("leave", &p.left),
        ("rejoin", &p.rejoined),
    ] {
        assert!(r.is_ok(), "{phase} did not settle: {r:?}");
    }
}

// ---- Fencing by claims, on tansu.

async fn tansu_with_changelog(dir: &std::path::Path) -> Broker {
    let broker = Broker::start("memory://tansu/", dir);
    ensure_topic(&admin(&broker), TOPIC, TASKS)
        .await
        .expect("create the changelog topic");
    broker
}

fn ops_of(batches: Vec<(Vec<Op>, Position)>) -> Vec<Vec<Op>> {
    batches.into_iter().map(|(ops, _)| ops).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zombie_writing_after_a_newer_claim_is_dropped_on_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = tansu_with_changelog(dir.path()).await;
    let addr = &broker.addr();
    let task = 1;

    // A checks only when told to: it goes on writing after B's claim.
    let mut a = open_claim(addr, task)
        .expect("open a")
        .with_check_interval(u32::MAX, Duration::from_secs(3600));
    assert_eq!(a.epoch(), Some(1));
    let (a1, a2) = (batch("a1", 3), batch("a2", 3));
    a.commit(&a1).expect("a1");
    a.commit(&a2).expect("a2");

    let mut b = open_claim(addr, task).expect("open b");
    assert_eq!(b.epoch(), Some(2), "one above the highest epoch in the log");
    a.commit(&batch("a3", 3)).expect("a zombie's commit");
    let b1 = batch("b1", 2);
    b.commit(&b1).expect("b1");
    a.commit(&batch("a4", 2)).expect("a zombie's commit");
    let b2 = batch("b2", 2);
    b.commit(&b2).expect("b2");
    // A zombie dies mid-batch, between B's batches.
    a.produce_without_commit(&batch("a5", 2)).expect("a5");
    let b3 = batch("b3", 2);
    b.commit(&b3).expect("b3");

    let (batches, stats) = restore(addr, task);
    assert_eq!(ops_of(batches), vec![a1, a2, b1, b2, b3]);
    // a3 and a4 with their trailers, and a5.
    assert_eq!(stats.superseded, 4 + 3 + 2);
    assert_eq!(stats.discarded, 0);
    assert_eq!(stats.owner.map(|o| o.epoch), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_owner_reports_fenced_after_a_newer_claim_and_commit_checks_within_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = tansu_with_changelog(dir.path()).await;
    let addr = &broker.addr();
    let mut a = open_claim(addr, 0).expect("open a");
    a.commit(&batch("a1", 5)).expect("a1");
    a.check_owner()
        .expect("still the owner after its own batch");
    let b = open_claim(addr, 0).expect("open b");
    match a.check_owner() {
        Err(ChangelogError::Fenced { task: 0, .. }) => {}
        other => panic!("a must learn it was superseded: {other:?}"),
    }
    assert!(matches!(
        a.check_owner(),
        Err(ChangelogError::Closed { .. })
    ));
    assert!(matches!(
        a.commit(&batch("a2", 1)),
        Err(ChangelogError::Closed { .. })
    ));

    // A third owner resumes from B's position: one above B's epoch.
    let (_, stats) = restore(addr, 0);
    assert_eq!(
        stats.owner.as_ref().map(|o| o.writer.as_str()),
        Some(b.writer_id())
    );
    let from = Position {
        offset: stats.end,
        owner: stats.owner,
    };
    let c = ChangelogWriter::open(addr, TOPIC, "g", 0, Fencing::Claims, &from, TIMEOUT)
        .expect("open c");
    assert_eq!(c.epoch(), Some(3));

    // B never calls check_owner: its commits do, at least every
    // CHECK_EVERY_BATCHES batches.
    let mut b = b.with_check_interval(
        slastream::cluster::changelog::CHECK_EVERY_BATCHES,
        Duration::from_secs(3600),
    );
    let mut zombie_batches = 0;
    let fenced = loop {
        match b.commit(&batch("b-zombie", 1)) {
            Ok(_) => zombie_batches += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(fenced, ChangelogError::Fenced { task: 0, .. }),
        "{fenced}"
    );
    assert_eq!(
        zombie_batches,
        slastream::cluster::changelog::CHECK_EVERY_BATCHES - 1,
        "the check before the tenth batch stops it"
    );
}

/// The child side of the claims crash test: claims task 2, commits three
/// batches, produces a fourth without its trailer, says so and waits to be
/// killed.
const CLAIM_CHILD_ENV: &str = "SLASTREAM_TEST_CLAIM_CHILD";

#[test]
fn claim_writer_child_process() {
    let Ok(addr) = std::env::var(CLAIM_CHILD_ENV) else {
        return;
    };
    let mut w = open_claim(&addr, 2).expect("open");
    for i in 0..3 {
        w.commit(&batch(&format!("committed{i}"), 10))
            .expect("commit");
    }
    w.produce_without_commit(&batch("partial", 50))
        .expect("stage");
    println!("{CHILD_STAGED}");
    loop {
        std::thread::park();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claiming_writer_killed_mid_batch_leaves_a_partial_batch_that_restore_discards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = tansu_with_changelog(dir.path()).await;
    let addr = &broker.addr();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "cluster::claim_writer_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CLAIM_CHILD_ENV, addr)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child writer"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let staged = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.ends_with(CHILD_STAGED));
    assert!(staged, "the child writer ended before staging its batch");
    child.0.kill().expect("SIGKILL the child");
    assert!(!child.0.wait().expect("wait").success());

    let mut next = open_claim(addr, 2).expect("open");
    assert_eq!(next.epoch(), Some(2));
    let (batches, stats) = restore(addr, 2);
    assert_eq!(batches.len(), 3);
    assert_eq!((stats.applied, stats.discarded), (30, 50));
    let state = state_of(&batches);
    assert_eq!(state.len(), 30);
    assert!(state.keys().all(|k| k.starts_with(b"committed")));

    next.commit(&batch("after", 5)).expect("commit after");
    let (batches, again) = restore(addr, 2);
    assert_eq!(batches.len(), 4);
    assert_eq!(
        (again.applied, again.discarded),
        (35, 50),
        "the partial batch stays out"
    );
}

/// Writes 200,000 records (20 batches of 10,000, 100-byte values) through a
/// claiming writer on tansu, restores them and prints both rates.
#[tokio::test(flavor = "multi_thread")]
async fn claims_restore_rate_of_200k_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = tansu_with_changelog(dir.path()).await;
    let addr = &broker.addr();
    let mut w = open_claim(addr, 5).expect("open");
    let value = "v".repeat(100);
    let started = Instant::now();
    for b in 0..20 {
        let ops: Vec<Op> = (0..10_000)
            .map(|i| op(&format!("bucket/{b:02}/{i:06}"), Some(&value)))
            .collect();
        w.commit(&ops).expect("commit");
    }
    let wrote = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut applied = 0usize;
    let stats = ChangelogRestorer::new(addr, TOPIC, 5, TIMEOUT)
        .restore(&Position::start(), |ops, _| applied += ops.len())
        .expect("restore");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(applied, 200_000);
    // The claim and 20 trailers.
    assert_eq!(stats.records, 200_021);
    println!(
        "claims changelog on tansu: wrote 200,000 records in {wrote:.2} s ({:.0} records/s); \
         restored {} records, {:.1} MB of keys and values in {secs:.2} s: {:.0} records/s, \
         {:.1} MB/s",
        200_000.0 / wrote,
        stats.records,
        stats.bytes as f64 / 1e6,
        stats.records as f64 / secs,
        stats.bytes as f64 / 1e6 / secs,
    );
}
