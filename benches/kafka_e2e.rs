//! End to end through a real broker: events/s from tansu through the engine
//! into RocksDB (`slastream run`), next to a bare rdkafka consumer that only
//! counts the same messages from the same broker, in the same run; and the
//! peak RSS of `slastream run` when the whole backlog is in the topics before
//! it starts. Both rates are given from the first message to the last (how
//! fast a backlog is read) and overall (start-up, group join included), and
//! so is their ratio.
//!
//! `cargo bench --bench kafka_e2e` (needs tansu: `scripts/test.sh` installs
//! it). `E2E_EVENTS` sets the backlog size (default 2,000,000).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

fn tansu() -> PathBuf {
    let tools = std::env::var("SLASTREAM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/slastream/tools")
        });
    std::env::var("SLASTREAM_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tools.join("bin/tansu"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn metrics_total(port: u16) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("slastream_ingest_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// How long a run took: to its first message, and to its last.
struct Timing {
    first: Duration,
    last: Duration,
}

impl Timing {
    /// Messages per second over the whole run, start-up (process, group
    /// join, state) included.
    fn overall(&self, n: u64) -> f64 {
        n as f64 / self.last.as_secs_f64()
    }

    /// Messages per second from the first message to the last: how fast the
    /// backlog is read once reading started.
    fn drain(&self, n: u64) -> f64 {
        n as f64 / (self.last - self.first).as_secs_f64().max(1e-9)
    }
}

fn bare_consumer(brokers: &str, topics: &[&str], expected: u64) -> (u64, Timing) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bare-baseline")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(topics).expect("subscribe");
    let start = Instant::now();
    let mut first = None;
    let mut n = 0u64;
    while n < expected && start.elapsed() < Duration::from_secs(600) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(|| start.elapsed());
            n += 1;
        }
    }
    let last = start.elapsed();
    (
        n,
        Timing {
            first: first.unwrap_or(last),
            last,
        },
    )
}

/// The count `slastream generate --kafka` reports as published (its log
/// line `published events=N`): the broker's high watermarks may lag the log,
/// so they do not count the backlog exactly.
fn published_count(log: &[u8]) -> Option<u64> {
    // Without its colour codes (ESC [ ... m).
    let mut text = String::new();
    let mut chars = String::from_utf8_lossy(log)
        .into_owned()
        .into_bytes()
        .into_iter();
    while let Some(c) = chars.next() {
        if c == 0x1b {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            text.push(c as char);
        }
    }
    let line = text.lines().rev().find(|l| l.contains("published"))?;
    let at = line.find("events=")? + "events=".len();
    let digits: String = line[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: the
    // measurement runs only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let events: u64 = std::env::var("E2E_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let brokers = format!("127.0.0.1:{port}");
    let mut broker = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu (scripts/test.sh installs it)");
    while TcpStream::connect(&brokers).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let topics = ["sla.tickets", "sla.incidents", "sla.probes"];
    for t in topics.iter().chain(&["sla.dlq", "sla.alerts"]) {
        Command::new(tansu())
            .args(["topic", "create", "--broker", &url, "--partitions", "3", t])
            .stdout(Stdio::null())
            .status()
            .expect("topic create");
    }
    let bin = env!("CARGO_BIN_EXE_slastream");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/slastream.toml");
    // rate × duration ≈ events: 30 days at the rate that gives `events`.
    let days = 30.0;
    let rate = events as f64 / (days * 86_400.0);
    let produced = Instant::now();
    let out = Command::new(bin)
        .args([
            "generate",
            "--config",
            config,
            "--seed",
            "5",
            "--duration",
            "30d",
        ])
        .args([
            "--start",
            "2026-10-01T00:00:00Z",
            "--rate",
            &format!("{rate}"),
        ])
        .args(["--kafka", &brokers])
        .output()
        .expect("generate");
    assert!(out.status.success());
    let expected = published_count(&out.stderr).expect("generate reports what it published");
    println!(
        "produced {expected} events in {:.1}s",
        produced.elapsed().as_secs_f64()
    );

    let (n, bare) = bare_consumer(&brokers, &topics, expected);

    let http = free_port();
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["run", "--config", config])
        .env("SLASTREAM__KAFKA__BROKERS", &brokers)
        .env("SLASTREAM__STATE__PATH", dir.path().join("state"))
        .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slastream run");
    let mut first = None;
    loop {
        let total = metrics_total(http);
        if total > 0 {
            first.get_or_insert_with(|| started.elapsed());
        }
        if total >= expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "slastream run too slow"
        );
        // Each scrape computes every metric: scraping more often would
        // take noticeable CPU from the run being measured.
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = started.elapsed();
    let run = Timing {
        first: first.unwrap_or(last),
        last,
    };
    let rss = peak_rss_kib(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    println!(
        "bare consumer:  {n} messages, first after {:.1}s, last after {:.1}s: {:.0} msg/s overall, {:.0} msg/s from first to last",
        bare.first.as_secs_f64(),
        bare.last.as_secs_f64(),
        bare.overall(n),
        bare.drain(n),
    );
    println!(
        "slastream run:  {expected} events, first after {:.1}s, last after {:.1}s: {:.0} events/s overall, {:.0} events/s from first to last (decode, engine, RocksDB commits)",
        run.first.as_secs_f64(),
        run.last.as_secs_f64(),
        run.overall(expected),
        run.drain(expected),
    );
    println!(
        "ratio slastream/bare: {:.2} overall (start-up included), {:.2} from first to last message",
        run.overall(expected) / bare.overall(n),
        run.drain(expected) / bare.drain(n)
    );
    println!("slastream run peak RSS: {} MiB", rss / 1024);
    // The documented bound for a 2 M event backlog (README "Running on Kafka").
    assert!(
        rss < 1024 * 1024,
        "peak RSS {} MiB over the 1 GiB bound",
        rss / 1024
    );
}
