//! Reads the input topics with a bare rdkafka consumer that only counts
//! messages: the baseline the end-to-end throughput is compared with.
//!
//! `cargo run --release --example bare_consumer -- BROKERS [TOPIC...]`

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

fn main() {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let mut topics: Vec<String> = args.collect();
    if topics.is_empty() {
        topics = vec![
            "sla.tickets".into(),
            "sla.incidents".into(),
            "sla.probes".into(),
        ];
    }
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("bare-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    // `BARE_SETTINGS="key=value,key=value"`: more librdkafka settings, to
    // compare their effect with the defaults.
    for kv in std::env::var("BARE_SETTINGS")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((k, v)) = kv.split_once('=') {
            config.set(k.trim(), v.trim());
        }
    }
    let created = Instant::now();
    let consumer: BaseConsumer = config.create().expect("consumer");
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs).expect("subscribe");
    let mut n = 0u64;
    let mut gaps = 0u64;
    let mut next: std::collections::HashMap<(String, i32), i64> = Default::default();
    let mut start = None;
    let mut last = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                start.get_or_insert_with(Instant::now);
                let k = (m.topic().to_string(), m.partition());
                if let Some(e) = next.get(&k) {
                    if *e != m.offset() {
                        gaps += 1;
                        eprintln!("gap {k:?}: expected {e}, got {}", m.offset());
                    }
                }
                next.insert(k, m.offset() + 1);
                n += 1;
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("error: {e}"),
            None if start.is_some() && last.elapsed() > Duration::from_secs(3) => break,
            None => {}
        }
    }
    println!(
        "first message {:.2}s after start",
        start.map_or(0.0, |s| s.duration_since(created).as_secs_f64())
    );
    let secs = last
        .duration_since(start.unwrap_or(last))
        .as_secs_f64()
        .max(1e-9);
    println!(
        "bare consumer: {n} messages in {secs:.2}s = {:.0} msg/s, {gaps} offset gaps",
        n as f64 / secs
    );
    // Where each partition ended, next to the watermarks the broker reports:
    // a high watermark below the next offset read means it lags the log.
    let mut ends: Vec<_> = next.into_iter().collect();
    ends.sort();
    for ((topic, partition), next) in ends {
        match consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5)) {
            Ok((low, high)) => {
                println!("{topic}/{partition}: read to {next}, watermarks {low}..{high}")
            }
            Err(e) => println!("{topic}/{partition}: read to {next}, watermarks unknown: {e}"),
        }
    }
}
