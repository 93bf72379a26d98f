//! Cluster-mode groundwork against Kafka-protocol brokers: `task_of` agrees
//! with librdkafka's `murmur2_random` partitioner (tansu); the changelog
//! topic is created compacted (tansu); the task changelog commits, fences and
//! restores through the trailer rule, and a writer killed mid-transaction
//! leaves nothing a restore applies (librdkafka's mock cluster: tansu 0.6
//! does not advertise EndTxn, so librdkafka cannot commit a transaction on
//! it, which a test pins); and what tansu does with cooperative-sticky
//! assignment.

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
    ensure_topic, settings, ChangelogError, ChangelogRestorer, ChangelogWriter, Op, RestoreStats,
    HEADER_SEQ, HEADER_WRITER,
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

/// Restores `task` from `from`: every batch handed out, and the stats.
fn restore(addr: &str, task: u32, from: i64) -> (Vec<(Vec<Op>, i64)>, RestoreStats) {
    let mut batches = Vec::new();
    let stats = ChangelogRestorer::new(addr, TOPIC, task, TIMEOUT)
        .restore(from, |ops, next| batches.push((ops.to_vec(), next)))
        .expect("restore");
    (batches, stats)
}

fn state_of(batches: &[(Vec<Op>, i64)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
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
    let mut w = ChangelogWriter::open(&broker.addr(), TOPIC, "g", 1, TIMEOUT)
        .expect("init_transactions works on tansu");
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
    let mut w = ChangelogWriter::open(addr, TOPIC, "g", 1, TIMEOUT).expect("open");
    let first = vec![op("a", Some("1")), op("b", Some("2"))];
    let second = vec![op("a", None), op("c", Some("3"))];
    assert_eq!(w.commit(&first).expect("commit"), 1);
    assert_eq!(w.commit(&second).expect("commit"), 2);

    let (batches, stats) = restore(addr, 1, 0);
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

    let mut a = ChangelogWriter::open(addr, TOPIC, "g", task, TIMEOUT).expect("open a");
    let (a1, a2) = (batch("a1", 3), batch("a2", 3));
    a.commit(&a1).expect("a1");
    a.commit(&a2).expect("a2");

    let mut b = ChangelogWriter::open(addr, TOPIC, "g", task, TIMEOUT).expect("open b");
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
    let mut c = ChangelogWriter::open(addr, TOPIC, "g", task, TIMEOUT).expect("open c");
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

    let (batches, stats) = restore(addr, task, 0);
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
    let mut w = ChangelogWriter::open(&addr, TOPIC, "g", 2, TIMEOUT).expect("open");
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
    let mut next = ChangelogWriter::open(addr, TOPIC, "g", 2, TIMEOUT).expect("open");
    let (batches, stats) = restore(addr, 2, 0);
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
    let (batches, again) = restore(addr, 2, 0);
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
    let mut w = ChangelogWriter::open(addr, TOPIC, "g", 4, TIMEOUT).expect("open");
    for i in 0..10 {
        w.commit(&batch(&format!("b{i}"), 100)).expect("commit");
    }
    let (full, stats) = restore(addr, 4, 0);
    assert_eq!(full.len(), 10);
    assert_eq!(stats.records, 10 * 101);

    // The local store applied seven batches and checkpointed after them.
    let checkpoint = full[6].1;
    let (tail, stats) = restore(addr, 4, checkpoint);
    assert_eq!(stats.records, 3 * 101, "only the tail is read");
    assert_eq!(stats.applied, 300);
    let mut resumed = full[..7].to_vec();
    resumed.extend(tail);
    assert_eq!(state_of(&resumed), state_of(&full));

    // From the end, nothing is read.
    let (none, stats) = restore(addr, 4, full[9].1);
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
        .restore(0, |ops, _| applied += ops.len())
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
