//! `slastream run` against a real Kafka-protocol broker (tansu on loopback),
//! with the real binary: the same events through Kafka and through `replay`
//! give the same answers; SIGKILL at random moments loses and doubles nothing;
//! a broker restart mid-stream is survived; bad messages land once in the
//! dead-letter topic with their headers.
//!
//! tansu is installed by `scripts/test.sh` into the tools directory
//! (`$SLASTREAM_TOOLS`, default `~/.cache/slastream/tools`); `SLASTREAM_TANSU`
//! may point at another binary.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use slastream::config::{Config, KafkaConfig};
use slastream::ingest::dead_letter;
use slastream::ingest::produce::{publish_ndjson, EventProducer};
use slastream::store::{state, RocksStore};

use crate::common::{
    answers, app, free_port, golden_now, replay_into, restore, root, shipped_config,
};

const PARTITIONS: usize = 3;

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SLASTREAM_TANSU") {
        return PathBuf::from(p);
    }
    let tools = std::env::var("SLASTREAM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/slastream/tools")
        });
    let p = tools.join("bin/tansu");
    assert!(
        p.exists(),
        "tansu not found at {}: scripts/test.sh installs it",
        p.display()
    );
    p
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tansu broker on a loopback port.
pub(crate) struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    dir: PathBuf,
    log: PathBuf,
}

impl Broker {
    pub(crate) fn start(storage: &str, dir: &Path) -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            storage: storage.to_string(),
            dir: dir.to_path_buf(),
            log: dir.join("broker.log"),
        };
        b.spawn();
        b
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let addr = self.addr();
        wait_for("the broker to listen", Duration::from_secs(30), || {
            TcpStream::connect(&addr).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn create_topics(&self, kafka: &KafkaConfig) {
        let t = &kafka.topics;
        for name in [
            &t.tickets,
            &t.incidents,
            &t.probes,
            &t.dead_letter,
            &t.alerts,
        ] {
            let status = Command::new(tansu_bin())
                .args(["topic", "create", "--broker"])
                .arg(format!("tcp://{}", self.addr()))
                .args(["--partitions", &PARTITIONS.to_string()])
                .arg(name)
                .stdout(Stdio::null())
                .status()
                .expect("tansu topic create");
            assert!(status.success(), "creating topic {name}");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `slastream run` process.
struct Pipeline {
    child: Child,
    http: u16,
    log: PathBuf,
}

fn run_env(broker: &str, state: &Path, http: u16) -> Vec<(String, String)> {
    vec![
        ("SLASTREAM__KAFKA__BROKERS".into(), broker.to_string()),
        ("SLASTREAM__STATE__PATH".into(), state.display().to_string()),
        (
            "SLASTREAM__HTTP__LISTEN".into(),
            format!("127.0.0.1:{http}"),
        ),
    ]
}

impl Pipeline {
    fn start(broker: &str, state: &Path, log_path: &Path) -> Pipeline {
        Pipeline::start_with(broker, state, log_path, &[])
    }

    /// `start` with further environment variables.
    fn start_with(broker: &str, state: &Path, log_path: &Path, env: &[(&str, &str)]) -> Pipeline {
        let http = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_slastream"))
            .arg("run")
            .arg("--config")
            .arg(root().join("config/slastream.toml"))
            .envs(run_env(broker, state, http))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start slastream run");
        Pipeline {
            child,
            http,
            log: log_path.to_path_buf(),
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let status = buf.split_whitespace().nth(1)?.parse().ok()?;
        let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        Some((status, body.to_string()))
    }

    /// `slastream_ingest_events_total` by result, summed over kinds.
    fn ingested(&self) -> Option<BTreeMap<String, u64>> {
        let (status, body) = self.get("/metrics")?;
        if status != 200 {
            return None;
        }
        let mut out = BTreeMap::new();
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("slastream_ingest_events_total{") else {
                continue;
            };
            let result = rest.split("result=\"").nth(1)?.split('"').next()?;
            let n: f64 = line.rsplit(' ').next()?.parse().ok()?;
            *out.entry(result.to_string()).or_default() += n as u64;
        }
        Some(out)
    }

    fn total(&self) -> u64 {
        self.ingested().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn wait_total(&self, expected: u64, timeout: Duration) {
        let start = Instant::now();
        while self.total() < expected {
            if start.elapsed() > timeout {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "timed out waiting for {expected} events (got {:?}); log tail:\n{}",
                    self.ingested(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end by itself; its exit status.
    fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "slastream run did not end by itself"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns whether it exited 0, and how long it took.
    fn terminate(mut self) -> (bool, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.success(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (false, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kafka_cfg(broker: &str) -> KafkaConfig {
    let mut k = Config::default().kafka;
    k.brokers = broker.to_string();
    k
}

fn non_empty_lines(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .expect("read input")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

/// The answers of the state at `state_dir`, at the golden instant.
async fn answers_of(state_dir: &Path) -> Vec<(String, String)> {
    let cfg = shipped_config(state_dir);
    let engine = restore(&cfg);
    answers(&app(engine, golden_now(), ""), &cfg).await
}

async fn replay_answers(input: &Path, dir: &Path) -> Vec<(String, String)> {
    let cfg = shipped_config(&dir.join("replay-state"));
    std::fs::create_dir_all(&cfg.state.path).expect("state dir");
    let engine = replay_into(&cfg, input);
    answers(&app(engine, golden_now(), ""), &cfg).await
}

fn assert_same(kafka: &[(String, String)], replay: &[(String, String)]) {
    assert_eq!(kafka.len(), replay.len());
    for ((uri, a), (_, b)) in kafka.iter().zip(replay) {
        assert_eq!(a, b, "{uri}: Kafka and replay disagree");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_and_replay_give_identical_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    let input = root().join("config/sample-events.ndjson");
    let lines = non_empty_lines(&input);
    let sent = publish_ndjson(&k, &input).expect("publish");
    assert_eq!(sent, lines);

    let state = dir.path().join("state");
    let p = Pipeline::start(&broker.addr(), &state, &dir.path().join("run.log"));
    wait_for("/readyz 200", Duration::from_secs(30), || {
        p.get("/readyz").is_some_and(|(s, _)| s == 200)
    });
    p.wait_total(lines, Duration::from_secs(120));
    let counts = p.ingested().expect("metrics");
    let (ok, took) = p.terminate();
    assert!(ok, "SIGTERM must exit 0");
    assert_eq!(counts.get("late"), None.or(Some(&0)), "{counts:?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    assert_eq!(counts.values().sum::<u64>(), lines, "{counts:?}");

    let kafka = answers_of(&state).await;
    let replay = replay_answers(&input, dir.path()).await;
    assert_same(&kafka, &replay);
}

/// Stored offsets, summed, after a stop (the process holds the store lock
/// while running).
fn stored_positions(state_dir: &Path) -> BTreeMap<(String, i32), i64> {
    let store = RocksStore::open(state_dir).expect("open state");
    state::kafka_positions(&store).expect("positions")
}

/// A broker with the topics, and two weeks of generated traffic for the
/// shipped config at `rate` published to it: (broker, input file, messages).
fn published_workload(dir: &Path, rate: f64, seed: u64) -> (Broker, PathBuf, u64) {
    let broker = Broker::start("memory://tansu/", dir);
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    let cfg = shipped_config(dir);
    let input = dir.join("events.ndjson");
    crate::common::write_lines(&input, &crate::common::sample_lines(&cfg, rate, 14, seed));
    let lines = non_empty_lines(&input);
    publish_ndjson(&k, &input).expect("publish");
    (broker, input, lines)
}

/// Publishes `lines` in chunks of `chunk` every `every`, in order, on its
/// own thread: a live stream for the consumer to keep up with.
fn publish_paced(
    k: &KafkaConfig,
    lines: Vec<String>,
    chunk: usize,
    every: Duration,
) -> std::thread::JoinHandle<u64> {
    let k = k.clone();
    std::thread::spawn(move || {
        let mut p = EventProducer::new(&k).expect("producer");
        for part in lines.chunks(chunk) {
            for line in part {
                p.send_event(line.as_bytes()).expect("send");
            }
            std::thread::sleep(every);
        }
        p.finish(Duration::from_secs(60)).expect("delivered")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loop_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    // Two weeks of generated traffic for the shipped config (~240 k events):
    // a fifth of it as a backlog, the rest in ten parts, each published over
    // eight seconds while one run consumes it, so every kill lands while the
    // consumer reads (a backlog or a live stream) however fast it drains,
    // and the input cannot all be consumed before the tenth kill.
    let cfg = shipped_config(dir.path());
    let input = dir.path().join("events.ndjson");
    let all = crate::common::sample_lines(&cfg, 0.2, 14, 11);
    crate::common::write_lines(&input, &all);
    let lines = non_empty_lines(&input);
    assert_eq!(lines, all.len() as u64);
    let (backlog, live) = all.split_at(all.len() / 5);
    let head = dir.path().join("backlog.ndjson");
    crate::common::write_lines(&head, backlog);
    publish_ndjson(&k, &head).expect("publish");
    let mut parts = live.chunks(live.len().div_ceil(10));

    let state = dir.path().join("state");
    let log = dir.path().join("run.log");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut kills = 0;
    while kills < 10 {
        let part = parts.next().unwrap_or_default().to_vec();
        let n = part.len();
        let producer = publish_paced(&k, part, n / 40 + 1, Duration::from_millis(200));
        let p = Pipeline::start(&broker.addr(), &state, &log);
        // Wait until it consumes, then kill it at a random moment: before,
        // during or after a commit (one a second).
        p.wait_total(1, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.random_range(0..2500)));
        p.kill9();
        kills += 1;
        assert_eq!(producer.join().expect("producer"), n as u64);
        let now = stored_positions(&state);
        for (tp, off) in &last {
            let n = now.get(tp).copied().unwrap_or(-1);
            assert!(
                n >= *off,
                "{tp:?}: stored offset moved back from {off} to {n}"
            );
        }
        last = now;
        if last.values().sum::<i64>() as u64 >= lines {
            break;
        }
    }
    assert_eq!(kills, 10, "the input was consumed before ten kills");
    assert!(
        last.values().sum::<i64>() > 0,
        "no kill came after a commit: nothing was persisted"
    );
    let done: u64 = last.values().sum::<i64>() as u64;
    resume_to_the_end_and_compare(&broker, dir.path(), &state, &input, lines, done).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_a_commits_write_and_its_acknowledgement_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    // ~240 k events, so several commits are made (one at least every
    // 65,536 accepted events), and a bad message every 2,000: every commit
    // carries dead letters, published only once it is durable.
    let cfg = shipped_config(dir.path());
    let mut all = crate::common::sample_lines(&cfg, 0.2, 14, 13);
    let mut bad = Vec::new();
    for i in (0..all.len()).step_by(2000).rev() {
        let line = format!("{{\"kind\":\"probe\",\"bad\":{i}");
        bad.push(line.clone());
        all.insert(i, line);
    }
    let input = dir.path().join("events.ndjson");
    crate::common::write_lines(&input, &all);
    let lines = non_empty_lines(&input);
    publish_ndjson(&k, &input).expect("publish");

    // The process aborts right after its second commit is written and
    // synced, before anything in it is acknowledged.
    let state = dir.path().join("state");
    let log = dir.path().join("run.log");
    let crash = [(slastream::store::writer::CRASH_AFTER_COMMIT_ENV, "2")];
    let p = Pipeline::start_with(&broker.addr(), &state, &log, &crash);
    let status = p.wait_exit(Duration::from_secs(120));
    assert!(!status.success(), "it was to abort: {status:?}");
    let done: u64 = stored_positions(&state).values().sum::<i64>() as u64;
    assert!(
        done > 0 && done < lines,
        "the commit written before the crash holds offsets: {done} of {lines}"
    );

    resume_to_the_end_and_compare(&broker, dir.path(), &state, &input, lines, done).await;
    let letters = read_dead_letters(&k, bad.len());
    let mut got: Vec<String> = letters
        .iter()
        .map(|(v, _)| String::from_utf8_lossy(v).into_owned())
        .collect();
    got.sort();
    let all_letters = got.len();
    got.dedup();
    assert_eq!(got.len(), all_letters, "a dead letter published twice");
    got.retain(|l| l.contains("\"bad\":"));
    bad.sort();
    assert_eq!(got, bad, "every dead letter exactly once");
}

/// Runs `slastream run` on `state` until the `lines - done` messages not
/// yet persisted are applied, then checks that every message was consumed
/// exactly to the end and that the answers equal a replay of `input`.
async fn resume_to_the_end_and_compare(
    broker: &Broker,
    dir: &Path,
    state: &Path,
    input: &Path,
    lines: u64,
    done: u64,
) {
    let p = Pipeline::start(&broker.addr(), state, &dir.join("run.log"));
    p.wait_total(lines - done, Duration::from_secs(180));
    let (ok, _) = p.terminate();
    assert!(ok);
    let total: i64 = stored_positions(state).values().sum();
    assert_eq!(
        total as u64, lines,
        "every message consumed exactly to the end"
    );
    let kafka = answers_of(state).await;
    let replay = replay_answers(input, dir).await;
    assert_same(&kafka, &replay);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_mid_stream_is_survived() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A durable store, so the topics survive the restart (relative to the
    // broker's working directory).
    let mut broker = Broker::start("sqlite://broker.db", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    let input = root().join("config/sample-events.ndjson");
    let lines = non_empty_lines(&input);
    publish_ndjson(&k, &input).expect("publish");

    let state = dir.path().join("state");
    let p = Pipeline::start(&broker.addr(), &state, &dir.path().join("run.log"));
    wait_for("consumption to start", Duration::from_secs(60), || {
        p.total() > 0
    });
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.spawn();
    p.wait_total(lines, Duration::from_secs(180));
    let (ok, _) = p.terminate();
    assert!(ok);

    let kafka = answers_of(&state).await;
    let replay = replay_answers(&input, dir.path()).await;
    assert_same(&kafka, &replay);
}

/// Every message of the dead-letter topic: (value, headers).
fn read_dead_letters(k: &KafkaConfig, expected: usize) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "dlq-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition_offset(&k.topics.dead_letter, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Read a little past `expected` to see any extra copy.
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let mut h = BTreeMap::new();
                if let Some(hs) = m.headers() {
                    for x in hs.iter() {
                        h.insert(
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push((m.payload().unwrap_or_default().to_vec(), h));
                quiet_since = Instant::now();
            }
            _ if out.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) => break,
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_land_once_in_the_dead_letter_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    let good = [
        r#"{"event_id":"g1","kind":"probe","occurred_at":"2026-11-10T10:00:00Z","customer_id":"acme","probe_id":"p1","service":"api","success":true,"latency_ms":12}"#,
        r#"{"event_id":"g2","kind":"probe","occurred_at":"2026-11-10T10:00:01Z","customer_id":"acme","probe_id":"p1","service":"api","success":true,"latency_ms":14}"#,
    ];
    let mut p = EventProducer::new(&k).expect("producer");
    for g in good {
        p.send_event(g.as_bytes()).expect("send");
    }
    p.finish(Duration::from_secs(30)).expect("delivered");

    let state = dir.path().join("state");
    let log = dir.path().join("run.log");
    let run = Pipeline::start(&broker.addr(), &state, &log);
    run.wait_total(2, Duration::from_secs(60));

    let oversized = format!(
        r#"{{"event_id":"big","kind":"probe","occurred_at":"2026-11-10T10:00:00Z","customer_id":"acme","probe_id":"p1","service":"api","success":true,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let bad: Vec<(String, &str)> = vec![
        ("{not json".to_string(), "JSON"),
        (
            r#"{"event_id":"m1","kind":"ticket","occurred_at":"2026-11-10T10:00:00Z","customer_id":"acme","action":"opened"}"#.to_string(),
            "ticket_id",
        ),
        (
            r#"{"event_id":"z1","kind":"probe","occurred_at":"2026-11-10T10:00:00Z","customer_id":"new","timezone":"Mars/Olympus","probe_id":"p1","service":"api","success":true,"latency_ms":10}"#.to_string(),
            "timezone",
        ),
        (oversized, "larger"),
        (
            r#"{"event_id":"l1","kind":"probe","occurred_at":"2026-10-01T10:00:00Z","customer_id":"acme","probe_id":"p1","service":"api","success":true,"latency_ms":10}"#.to_string(),
            "late",
        ),
    ];
    let mut p = EventProducer::new(&k).expect("producer");
    for (raw, _) in &bad {
        p.send(&k.topics.probes, Some(b"acme"), raw.as_bytes())
            .expect("send");
    }
    p.finish(Duration::from_secs(30)).expect("delivered");
    run.wait_total(2 + bad.len() as u64, Duration::from_secs(60));
    let counts = run.ingested().expect("metrics");
    assert_eq!(counts.get("invalid"), Some(&4), "{counts:?}");
    assert_eq!(counts.get("late"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("accepted"), Some(&2), "{counts:?}");

    let letters = read_dead_letters(&k, bad.len());
    assert_eq!(letters.len(), bad.len(), "each bad message exactly once");
    for (raw, needle) in &bad {
        let (_, h) = letters
            .iter()
            .find(|(v, _)| v == raw.as_bytes())
            .unwrap_or_else(|| panic!("dead letter for {needle} missing"));
        let reason = &h[dead_letter::HEADER_ERROR];
        assert!(
            reason.contains(needle),
            "reason {reason:?} should mention {needle}"
        );
        assert_eq!(h[dead_letter::HEADER_TOPIC], k.topics.probes);
        assert!(h[dead_letter::HEADER_PARTITION].parse::<i32>().is_ok());
        assert!(h[dead_letter::HEADER_OFFSET].parse::<i64>().is_ok());
    }

    // A restart re-reads nothing: the offsets moved past the bad messages
    // in the same batch as their outbox entries.
    run.kill9();
    let run = Pipeline::start(&broker.addr(), &state, &log);
    wait_for("/readyz 200", Duration::from_secs(30), || {
        run.get("/readyz").is_some_and(|(s, _)| s == 200)
    });
    drop(run);
    assert_eq!(read_dead_letters(&k, bad.len()).len(), bad.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_are_published_to_the_alerts_topic_keyed_by_fingerprint() {
    use slastream::model::time::{floor_minute, format_rfc3339, Clock, WallClock, DAY};
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    // A P1 ticket opened three days ago and never answered.
    let opened = format_rfc3339(floor_minute(WallClock.now()) - 3 * DAY);
    let ev = format!(
        r#"{{"event_id":"t-open","kind":"ticket","occurred_at":"{opened}","customer_id":"acme","ticket_id":"K-1","action":"opened","priority":"P1"}}"#
    );
    let mut p = EventProducer::new(&k).expect("producer");
    p.send_event(ev.as_bytes()).expect("send");
    p.finish(Duration::from_secs(30)).expect("delivered");
    let state = dir.path().join("state");
    let _run = Pipeline::start(&broker.addr(), &state, &dir.path().join("run.log"));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "alerts-reader")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition_offset(&k.topics.alerts, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("json");
            if v["labels"]["alertname"] == "TicketSLABreached" {
                found = Some((m.key().map(|k| k.to_vec()), v));
            }
        }
    }
    let (key, v) = found.expect("TicketSLABreached on the alerts topic");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["labels"]["ticket_id"], "K-1");
    let fp = v["fingerprint"].as_str().expect("fingerprint");
    assert_eq!(key.as_deref(), Some(fp.as_bytes()));
    assert_eq!(
        fp,
        slastream::alert::fingerprint(
            &serde_json::from_value(v["labels"].clone()).expect("labels")
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_dead_letter_is_cut_to_fit_and_does_not_block_later_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    let state = dir.path().join("state");
    let log = dir.path().join("run.log");

    // A message of about 1 MB (the input topic takes it; the dead-letter
    // producer's message.max.bytes, 1,000,000, cannot take it with its
    // headers), then three small bad ones behind it.
    let big = vec![b'x'; 1_000_000];
    let mut producer_cfg = k.clone();
    producer_cfg
        .properties
        .insert("message.max.bytes".into(), "2000000".into());
    let mut p = EventProducer::new(&producer_cfg).expect("producer");
    p.send(&k.topics.probes, Some(b"acme"), &big).expect("send");
    let bad = ["{bad1", "{bad2", "{bad3"];
    for b in bad {
        p.send(&k.topics.probes, Some(b"acme"), b.as_bytes())
            .expect("send");
    }
    p.finish(Duration::from_secs(30)).expect("delivered");

    let run = Pipeline::start(&broker.addr(), &state, &log);
    run.wait_total(4, Duration::from_secs(60));
    let counts = run.ingested().expect("metrics");
    assert_eq!(counts.get("invalid"), Some(&4), "{counts:?}");

    let check = |letters: &[(Vec<u8>, BTreeMap<String, String>)]| {
        assert_eq!(letters.len(), 4, "every dead letter exactly once");
        for b in bad {
            let (_, h) = letters
                .iter()
                .find(|(v, _)| v == b.as_bytes())
                .unwrap_or_else(|| panic!("dead letter {b} missing"));
            assert!(!h.contains_key(dead_letter::HEADER_TRUNCATED));
        }
        let (v, h) = letters
            .iter()
            .find(|(_, h)| h.contains_key(dead_letter::HEADER_TRUNCATED))
            .expect("the oversized dead letter, cut");
        assert_eq!(h[dead_letter::HEADER_TRUNCATED], "1000000");
        assert!(v.len() < big.len() && v.len() > 900_000, "{}", v.len());
        assert!(big.starts_with(v));
        assert!(h[dead_letter::HEADER_ERROR].contains("larger"));
    };
    check(&read_dead_letters(&k, 4));

    // After a restart: nothing more, nothing twice.
    run.kill9();
    let run = Pipeline::start(&broker.addr(), &state, &log);
    wait_for("/readyz 200", Duration::from_secs(30), || {
        run.get("/readyz").is_some_and(|(s, _)| s == 200)
    });
    // Ingest counters start at zero in a new process: nothing is read again.
    let counts = run.ingested().expect("metrics");
    assert_eq!(counts.values().sum::<u64>(), 0, "{counts:?}");
    drop(run);
    check(&read_dead_letters(&k, 4));
}

/// Prometheus sample `name` (no labels) from `/metrics`.
fn metric(p: &Pipeline, name: &str) -> Option<f64> {
    let (_, body) = p.get("/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_holding_too_few_partitions_rejoins_and_consumes_again() {
    use slastream::ingest::rebalance::REJOIN_AFTER;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start("memory://tansu/", dir.path());
    let k = kafka_cfg(&broker.addr());
    broker.create_topics(&k);
    let input = root().join("config/sample-events.ndjson");
    let lines = non_empty_lines(&input);
    publish_ndjson(&k, &input).expect("publish");
    let state = dir.path().join("state");
    let p = Pipeline::start(&broker.addr(), &state, &dir.path().join("run.log"));
    p.wait_total(lines, Duration::from_secs(120));

    // A second member of the group takes some of the partitions and keeps
    // them: slastream holds only part of the input.
    let group = shipped_config(dir.path()).kafka.group_id;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stealer = {
        let stop = stop.clone();
        let k = k.clone();
        std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &k.brokers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("session.timeout.ms", "10000")
                .create()
                .expect("consumer");
            let t = &k.topics;
            c.subscribe(&[&t.tickets, &t.incidents, &t.probes])
                .expect("subscribe");
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = c.poll(Duration::from_millis(100));
            }
            c.unsubscribe();
        })
    };
    wait_for("/readyz 503", Duration::from_secs(60), || {
        p.get("/readyz").is_some_and(|(s, _)| s == 503)
    });
    let short_since = Instant::now();
    // After the bound, the consumer rejoins (counted), and says so.
    wait_for("a rejoin", REJOIN_AFTER + Duration::from_secs(40), || {
        metric(&p, "slastream_kafka_rejoins_total").is_some_and(|n| n >= 1.0)
    });
    assert!(short_since.elapsed() + Duration::from_secs(15) >= REJOIN_AFTER);
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    assert!(log.contains("rejoining the group"), "{log}");

    // The other member leaves: the process takes every partition again and
    // consumes what comes.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    stealer.join().expect("stealer");
    let more = dir.path().join("more.ndjson");
    let now = slastream::model::time::format_rfc3339(slastream::model::time::Clock::now(
        &slastream::model::time::WallClock,
    ));
    std::fs::write(
        &more,
        format!(
            r#"{{"event_id":"after-rejoin","kind":"probe","occurred_at":"{now}","customer_id":"acme","probe_id":"p1","service":"api","success":true,"latency_ms":12}}"#
        ) + "\n",
    )
    .expect("write");
    publish_ndjson(&k, &more).expect("publish");
    p.wait_total(lines + 1, Duration::from_secs(120));
    wait_for("/readyz 200", Duration::from_secs(60), || {
        p.get("/readyz").is_some_and(|(s, _)| s == 200)
    });
    let (ok, _) = p.terminate();
    assert!(ok, "SIGTERM must exit 0");
}

#[test]
fn shutdown_is_not_held_up_by_the_start_up_outbox_check_when_no_broker_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    // A dead letter left in the outbox: start-up compares it with the
    // dead-letter topic before sending it.
    {
        let store = RocksStore::open(&state_dir).expect("open state");
        let mut batch = slastream::store::Batch::default();
        state::put_outbox(
            &mut batch,
            0,
            &dead_letter::DeadLetter {
                raw: b"{bad".to_vec(),
                key: None,
                reason: "invalid".into(),
                topic: "sla.probes".into(),
                partition: 0,
                offset: 7,
            },
        );
        slastream::store::Store::write(&store, batch).expect("write");
    }
    // Nothing listens there.
    let nobody = format!("127.0.0.1:{}", free_port());
    let p = Pipeline::start(&nobody, &state_dir, &dir.path().join("run.log"));
    wait_for("/healthz", Duration::from_secs(30), || {
        p.get("/healthz").is_some_and(|(s, _)| s == 200)
    });
    let (ok, took) = p.terminate();
    assert!(ok, "SIGTERM must exit 0");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    // The entry was neither sent nor lost.
    let store = RocksStore::open(&state_dir).expect("open state");
    let left: Vec<(u64, dead_letter::DeadLetter)> = state::outbox(&store).expect("outbox");
    assert_eq!(left.len(), 1);
}

/// A store whose `fail_at`-th write fails (a full disk, an I/O error), or
/// panics with `panic`; every other call goes to RocksDB.
struct FailingStore {
    inner: RocksStore,
    writes: std::sync::atomic::AtomicU32,
    fail_at: u32,
    panic: bool,
}

impl slastream::store::Store for FailingStore {
    fn write(&self, batch: slastream::store::Batch) -> Result<(), slastream::store::StoreError> {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n >= self.fail_at {
            if self.panic {
                panic!("injected panic in a store write");
            }
            return Err(slastream::store::StoreError::Corrupt {
                key: "(any)".into(),
                reason: "injected write failure".into(),
            });
        }
        self.inner.write(batch)
    }
    fn scan(
        &self,
        prefix: &[u8],
    ) -> Result<slastream::store::Entries, slastream::store::StoreError> {
        self.inner.scan(prefix)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, slastream::store::StoreError> {
        self.inner.get(key)
    }
    fn compact(&self) -> Result<(), slastream::store::StoreError> {
        self.inner.compact()
    }
}

/// `slastream run` in this process, on a store that fails at its
/// `fail_at`-th write: the run must end (not linger) with the failure.
async fn run_on_failing_store(broker: &str, state: &Path, fail_at: u32, panic: bool) -> String {
    let mut cfg = shipped_config(state);
    cfg.kafka.brokers = broker.to_string();
    cfg.http.listen = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let open: slastream::app::StoreOpener = Box::new(move |cfg: &Config| {
        std::fs::create_dir_all(&cfg.state.path)?;
        let store: std::sync::Arc<dyn slastream::store::Store> =
            std::sync::Arc::new(FailingStore {
                inner: RocksStore::open(&cfg.state.path)?,
                writes: std::sync::atomic::AtomicU32::new(0),
                fail_at,
                panic,
            });
        Ok(store)
    });
    let token = tokio_util::sync::CancellationToken::new();
    let run = slastream::app::run_with(cfg, token.clone(), open);
    let result = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("a failed store ends the run instead of leaving it half alive");
    assert!(token.is_cancelled(), "the failure cancels every other part");
    format!(
        "{:#}",
        result.expect_err("a failed store write is a failure of the process")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_store_ends_the_process_and_a_restart_resumes_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ~240 k events: a commit holds at most 65,536 accepted events (or a
    // second's worth), so each run below persists one commit, or none, and
    // fails well before the end of the input.
    let (broker, input, lines) = published_workload(dir.path(), 0.2, 5);
    let state = dir.path().join("state");

    let why = run_on_failing_store(&broker.addr(), &state, 2, false).await;
    assert!(why.contains("injected write failure"), "{why}");
    let why = run_on_failing_store(&broker.addr(), &state, 2, true).await;
    assert!(why.contains("panicked"), "{why}");
    let done: u64 = stored_positions(&state).values().sum::<i64>() as u64;
    assert!(
        done < lines,
        "the failures came before the end of the input"
    );

    // The real binary resumes from what was persisted and ends exactly.
    resume_to_the_end_and_compare(&broker, dir.path(), &state, &input, lines, done).await;
}
