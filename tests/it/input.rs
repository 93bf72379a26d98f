//! Input that cannot hurt the state, through the real binary: ids with
//! control characters are dead-lettered and later starts work; fractions of
//! any length are truncated to the millisecond; `[limits]` bounds reject and
//! count; and a replay of tens of thousands of damaged events mixed into a
//! valid stream exits 0, accounts for every line, dead-letters each invalid
//! one exactly once, and answers the same before and after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

fn config_path() -> PathBuf {
    root().join("config/slastream.toml")
}

fn write_bytes(path: &Path, lines: &[Vec<u8>]) {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    std::fs::write(path, out).expect("write events");
}

/// The counts of the summary line `replay done: N lines ...: accepted A,
/// duplicate D, late L, invalid I`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    lines: u64,
    accepted: u64,
    duplicate: u64,
    late: u64,
    invalid: u64,
}

fn summary(stderr: &str) -> Summary {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("replay done:"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let number_after = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("`{word}` in {line}"));
        line[at + word.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number after `{word}` in {line}"))
    };
    Summary {
        lines: number_after("replay done:"),
        accepted: number_after("accepted"),
        duplicate: number_after("duplicate"),
        late: number_after("late"),
        invalid: number_after("invalid"),
    }
}

/// Runs `slastream replay` to the end; returns its summary.
fn replay(state: &Path, input: &Path, dead_letter: Option<&Path>, env: &[(&str, &str)]) -> Summary {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slastream"));
    cmd.args(["replay", "--config"])
        .arg(config_path())
        .arg("--input")
        .arg(input)
        .env("SLASTREAM__STATE__PATH", state)
        .stdout(Stdio::null());
    if let Some(d) = dead_letter {
        cmd.arg("--dead-letter").arg(d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run slastream");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed:\n{stderr}");
    summary(&stderr)
}

/// A `slastream replay --then-serve` child, killed when dropped.
struct Served {
    _child: Killed,
    url: String,
    /// The replay's summary, read from its log once it serves.
    summary: Summary,
}

async fn replay_then_serve(
    state: &Path,
    input: &Path,
    dead_letter: Option<&Path>,
    env: &[(&str, &str)],
) -> Served {
    let log_path = state.with_extension(format!("log-{}", free_port()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slastream"));
    cmd.args(["replay", "--then-serve", "--config"])
        .arg(config_path())
        .arg("--input")
        .arg(input)
        .env("SLASTREAM__STATE__PATH", state)
        .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(d) = dead_letter {
        cmd.arg("--dead-letter").arg(d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = Killed(cmd.spawn().expect("spawn slastream"));
    let url = format!("http://127.0.0.1:{port}");
    wait_until("slastream /readyz", Duration::from_secs(120), || async {
        reqwest::get(format!("{url}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // The summary is printed before the API is served.
    let summary = summary(&std::fs::read_to_string(&log_path).expect("log"));
    Served {
        _child: child,
        url,
        summary,
    }
}

/// Dead-letter records by input line number; fails on a line listed twice.
fn dead_letters(path: &Path) -> BTreeMap<u64, (String, String)> {
    let text = std::fs::read_to_string(path).expect("dead-letter file");
    let mut out = BTreeMap::new();
    for record in text.lines() {
        let v: Value = serde_json::from_str(record).expect("dead letter is JSON");
        let line = v["line"].as_u64().expect("line number");
        let error = v["error"].as_str().expect("error").to_string();
        let raw = v["raw"].as_str().expect("raw").to_string();
        assert!(
            out.insert(line, (error, raw)).is_none(),
            "line {line} dead-lettered twice"
        );
    }
    out
}

fn probe(id: &str, customer: &str, at: &str, success: bool) -> String {
    json!({
        "event_id": id, "kind": "probe", "occurred_at": at, "customer_id": customer,
        "probe_id": "p-1", "service": "api", "success": success, "latency_ms": 12.5,
    })
    .to_string()
}

/// A probe whose `customer_id` is written with a JSON escape (`\u0000`).
fn probe_with_raw_customer(id: &str, customer_json: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{at}","customer_id":"{customer_json}","probe_id":"p-1","service":"api","success":false,"latency_ms":5}}"#
    )
}

#[tokio::test]
async fn nul_in_customer_id_is_dead_lettered_and_the_state_restarts() {
    let base = tempfile::tempdir().expect("tempdir");
    let state = base.path().join("state");
    let cfg = shipped_config(&state);
    let mut lines = sample_lines(&cfg, 0.02, 3, 5);
    let valid = lines.len();
    lines.insert(
        valid / 3,
        probe_with_raw_customer("nul-1", r"acme\u0000x", "2026-11-02T10:00:00Z"),
    );
    lines.insert(
        2 * valid / 3,
        probe_with_raw_customer("nul-2", r"zzz\u0000", "2026-11-02T10:01:00Z"),
    );
    let input = base.path().join("events.ndjson");
    let dead = base.path().join("dead.ndjson");
    write_lines(&input, &lines);

    let first = replay(&state, &input, Some(&dead), &[]);
    assert_eq!(first.invalid, 2, "{first:?}");
    assert_eq!(first.accepted + first.duplicate + first.late, valid as u64);
    let letters = dead_letters(&dead);
    assert_eq!(letters.len(), 2);
    for (line, customer) in [(valid / 3 + 1, "acme\\0x"), (2 * valid / 3 + 1, "zzz\\0")] {
        let (error, raw) = &letters[&(line as u64)];
        assert_eq!(
            error,
            &format!(
                "field \"customer_id\" must not contain control characters, got \"{customer}\""
            )
        );
        assert_eq!(raw, &lines[line - 1]);
    }
    let before = answers(&app(restore(&cfg), golden_now(), ""), &cfg).await;

    // A second start on the same state works and changes nothing.
    let empty = base.path().join("empty.ndjson");
    std::fs::write(&empty, "").expect("empty input");
    let second = replay(&state, &empty, None, &[]);
    assert_eq!(second, Summary::default());
    let after = answers(&app(restore(&cfg), golden_now(), ""), &cfg).await;
    assert_eq!(before, after);

    // And the invalid lines changed nothing: the same as the valid lines alone.
    let reference = shipped_config(&base.path().join("reference"));
    let valid_only = base.path().join("valid.ndjson");
    write_lines(
        &valid_only,
        &lines
            .iter()
            .filter(|l| !l.contains(r"\u0000"))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let want = answers(
        &app(replay_into(&reference, &valid_only), golden_now(), ""),
        &reference,
    )
    .await;
    assert_eq!(want, after);
}

#[tokio::test]
async fn long_fractions_count_in_the_minute_they_were_written_in() {
    let base = tempfile::tempdir().expect("tempdir");
    let state = base.path().join("state");
    let cfg = shipped_config(&state);
    let lines = vec![
        // 12 digits, just before 10:16: bad, in minute 10:15.
        probe("f-1", "acme", "2026-11-02T10:15:59.999999999999Z", false),
        // 12 digits with an offset, = 10:16:00.000Z: good, in minute 10:16.
        probe(
            "f-2",
            "acme",
            "2026-11-02T03:16:00.000999999999-07:00",
            true,
        ),
        // 30 digits.
        probe(
            "f-3",
            "acme",
            "2026-11-02T10:16:30.123456789012345678901234567890Z",
            true,
        ),
    ];
    let input = base.path().join("events.ndjson");
    write_lines(&input, &lines);
    let s = replay(&state, &input, None, &[]);
    assert_eq!((s.accepted, s.invalid), (3, 0), "{s:?}");
    let app = app(restore(&cfg), golden_now(), "");
    let window = |from: &str, to: &str| {
        format!("/api/v1/compliance?slo=api-availability&customer=acme&from={from}&to={to}")
    };
    let (status, v) = get(
        &app,
        &window("2026-11-02T10:15:00Z", "2026-11-02T10:16:00Z"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["total"].as_f64(), v["bad"].as_f64()),
        (Some(1.0), Some(1.0)),
        "{v}"
    );
    let (_, v) = get(
        &app,
        &window("2026-11-02T10:16:00Z", "2026-11-02T10:17:00Z"),
    )
    .await;
    assert_eq!(
        (v["total"].as_f64(), v["good"].as_f64()),
        (Some(2.0), Some(2.0)),
        "{v}"
    );
}

#[tokio::test]
async fn customers_past_max_customers_are_dead_lettered_and_counted() {
    let base = tempfile::tempdir().expect("tempdir");
    let state = base.path().join("state");
    let cfg = shipped_config(&state);
    let max = cfg.customers.len() + 2;
    let lines: Vec<String> = (1..=5)
        .map(|i| {
            probe(
                &format!("l-{i}"),
                &format!("new-{i}"),
                "2026-11-02T10:00:00Z",
                true,
            )
        })
        .chain([probe("l-acme", "acme", "2026-11-02T10:00:00Z", true)])
        .collect();
    let input = base.path().join("events.ndjson");
    let dead = base.path().join("dead.ndjson");
    write_lines(&input, &lines);
    let max_text = max.to_string();
    let served = replay_then_serve(
        &state,
        &input,
        Some(&dead),
        &[("SLASTREAM__LIMITS__MAX_CUSTOMERS", &max_text)],
    )
    .await;
    let letters = dead_letters(&dead);
    assert_eq!(letters.keys().copied().collect::<Vec<_>>(), vec![3, 4, 5]);
    for (line, (error, _)) in &letters {
        assert_eq!(
            error,
            &format!("limit: max_customers ({max}) reached; customer \"new-{line}\" not created")
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", served.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    for (limit, n) in [("customers", 3), ("groups", 0), ("services", 0)] {
        let want = format!("slastream_limit_rejections_total{{limit=\"{limit}\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == want),
            "{want} missing from:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("limit") || l.contains("ingest_events"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(metrics
        .lines()
        .any(|l| l == "slastream_ingest_events_total{kind=\"probe\",result=\"invalid\"} 3"));
}

/// xorshift64*: a fixed sequence for a fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KNOWN_FIELDS: [&str; 18] = [
    "event_id",
    "kind",
    "occurred_at",
    "customer_id",
    "segment",
    "timezone",
    "ticket_id",
    "incident_id",
    "probe_id",
    "action",
    "priority",
    "severity",
    "customer_ids",
    "service",
    "region",
    "planned",
    "success",
    "latency_ms",
];

/// Inserts `text` right after the opening quote of `field`'s string value.
fn insert_into_string(line: &str, field: &str, text: &str) -> Option<String> {
    let key = format!("\"{field}\":\"");
    let at = line.find(&key)? + key.len();
    Some(format!("{}{text}{}", &line[..at], &line[at..]))
}

fn with_field(line: &str, field: &str, value: Value) -> String {
    let mut v: Value = serde_json::from_str(line).expect("valid generated line");
    v[field] = value;
    v.to_string()
}

/// One damaged copy of `line`, and whether it must be invalid whatever the
/// rest of the stream holds.
fn mutate(rng: &mut Rng, line: &str) -> (Vec<u8>, bool) {
    match rng.below(14) {
        // A wrong type in a known field (some, such as `null` in an optional
        // one, are fine).
        0 => {
            let junk = [
                json!(42),
                json!(true),
                Value::Null,
                json!([]),
                json!({}),
                json!(-1.5),
                json!(["a", 1]),
            ];
            let field = rng.pick(&KNOWN_FIELDS);
            (
                with_field(line, field, rng.pick(&junk).clone()).into_bytes(),
                false,
            )
        }
        // Huge numbers: out of f64 range (not JSON serde accepts), or huge
        // but valid.
        1 => {
            let huge = [
                "1e999",
                "-1e999",
                "184467440737095516150000000",
                "1e308",
                "-0.0",
                "99999999999999999999",
            ];
            let n = rng.pick(&huge);
            let mut v: Value = serde_json::from_str(line).expect("valid line");
            let field = if v.get("latency_ms").is_some() {
                "latency_ms"
            } else {
                "occurred_at"
            };
            v[field] = json!("@@HUGE@@");
            let out = v.to_string().replace("\"@@HUGE@@\"", n);
            // Out of range is not JSON serde reads; a number is never a time.
            let must = n.contains("e999") || field == "occurred_at";
            (out.into_bytes(), must)
        }
        // Lone surrogates in a decoded field.
        2 => {
            let s = rng.pick(&[r"\ud800", r"\udfff", r"x\ud83d"]);
            let out = insert_into_string(line, "event_id", s).expect("event_id");
            (out.into_bytes(), true)
        }
        // Bytes that are not UTF-8, anywhere.
        3 => {
            let bad: &[&[u8]] = &[
                b"\xff",
                b"\xc3(",
                b"\xed\xa0\x80",
                b"\xf0\x28\x8c\xbc",
                b"\x80",
            ];
            let mut bytes = line.as_bytes().to_vec();
            let at = rng.below(bytes.len() + 1);
            let ins = rng.pick(bad);
            bytes.splice(at..at, ins.iter().copied());
            (bytes, true)
        }
        // Truncation: a compact object cut anywhere is not JSON.
        4 => {
            let cut = 1 + rng.below(line.len() - 1);
            let mut bytes = line.as_bytes()[..cut].to_vec();
            // A cut inside a multi-byte character also breaks UTF-8: still invalid.
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            (bytes, true)
        }
        // Control characters in an identifier, escaped.
        5 => {
            let c = rng.pick(&["\u{0}", "\u{1}", "\u{1f}", "\u{7f}", "\n", "\t"]);
            let field = rng.pick(&["event_id", "event_id", "segment", "service"]);
            let out = with_field(line, field, json!(format!("id{c}x")));
            (out.into_bytes(), true)
        }
        // Control characters written raw inside a string (not JSON, except DEL).
        6 => {
            let raw = rng.pick(&["\u{1}", "\u{0}", "\u{7f}", "\u{1b}"]);
            let out = insert_into_string(line, "event_id", raw).expect("event_id");
            (out.into_bytes(), true)
        }
        // 129-character identifiers.
        7 => {
            let field = rng.pick(&[
                "event_id",
                "customer_id",
                "probe_id",
                "ticket_id",
                "incident_id",
            ]);
            let value = rng
                .pick(&["x".repeat(129), "é".repeat(129), "😀".repeat(129)])
                .clone();
            let out = with_field(line, field, json!(value));
            (out.into_bytes(), *field == "event_id")
        }
        // Nested junk: deep in a known field (past the recursion limit), or
        // in an unknown one (ignored).
        8 => {
            let depth = 50 + rng.below(300);
            let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let field = if rng.below(2) == 0 {
                "segment"
            } else {
                "x_junk"
            };
            let mut v: Value = serde_json::from_str(line).expect("valid line");
            v[field] = json!("@@NESTED@@");
            let out = v.to_string().replace("\"@@NESTED@@\"", &nested);
            let must = field == "segment";
            (out.into_bytes(), must)
        }
        // Objects and arrays where strings belong, in lists too.
        9 => {
            let junk = json!({"a": [1, {"b": [null, {"c": "d"}]}], "e": {"f": {}}});
            let out = with_field(line, "customer_ids", json!(["acme", junk, [["x"]]]));
            (out.into_bytes(), false)
        }
        // A known field given twice.
        10 => {
            let out = format!("{},\"event_id\":\"dup\"}}", &line[..line.len() - 1]);
            (out.into_bytes(), true)
        }
        // Random byte flips (never a line break).
        11 => {
            let mut bytes = line.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                let b = (rng.next() & 0xff) as u8;
                bytes[at] = if b == b'\n' || b == b'\r' { b'#' } else { b };
            }
            (bytes, false)
        }
        // Larger than 64 KiB (rarely: they make the file large).
        12 if rng.below(40) == 0 => {
            let out = with_field(line, "padding", json!("p".repeat(70_000)));
            (out.into_bytes(), true)
        }
        // Not an object, or an unknown kind.
        _ => {
            let junk = [
                "[1,2,3]",
                "\"probe\"",
                "null",
                "42",
                "{}",
                "{\"kind\":\"alien\"}",
                " ",
            ];
            let j = rng.pick(&junk);
            let out = if *j == "{}" {
                with_field(line, "kind", json!("alien"))
            } else {
                j.to_string()
            };
            (out.into_bytes(), true)
        }
    }
}

/// The answers compared across a restart: a few SLOs over all customers,
/// for the month (in UTC, over by now) and for the span of the workload,
/// without `as_of` (it holds now). Windows that end before now make the
/// answers independent of the instant they are asked at.
async fn served_answers(url: &str) -> Vec<(String, Value)> {
    let mut uris = Vec::new();
    for slo in [
        "api-availability",
        "api-latency",
        "first-response",
        "resolution",
        "incident-availability",
        "incident-ack",
    ] {
        uris.push(format!("/api/v1/compliance?slo={slo}&month=2026-11&tz=UTC"));
        uris.push(format!(
            "/api/v1/compliance?slo={slo}&from=2026-11-01T00:00:00Z&to=2026-11-15T00:00:00Z"
        ));
    }
    let mut out = Vec::new();
    for uri in uris {
        let r = reqwest::get(format!("{url}{uri}")).await.expect("GET");
        assert_eq!(r.status(), 200, "{uri}");
        let mut v: Value = r.json().await.expect("JSON answer");
        if let Some(o) = v.as_object_mut() {
            o.remove("as_of");
        }
        out.push((uri, v));
    }
    out
}

#[tokio::test]
async fn a_replay_of_damaged_events_accounts_for_every_line_and_restarts_the_same() {
    let base = tempfile::tempdir().expect("tempdir");
    let state = base.path().join("state");
    let cfg = shipped_config(&state);
    let valid = sample_lines(&cfg, 0.05, 14, 77);
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(valid.len() * 2);
    let mut must_fail: BTreeSet<u64> = BTreeSet::new();
    let mut mutated = 0usize;
    for line in &valid {
        // About one damaged copy per valid line, of a nearby line.
        while rng.below(100) < 50 {
            let (bytes, must) = mutate(&mut rng, line);
            lines.push(bytes);
            mutated += 1;
            if must {
                must_fail.insert(lines.len() as u64);
            }
        }
        lines.push(line.as_bytes().to_vec());
    }
    assert!(mutated >= 10_000, "{mutated} damaged events");
    assert!(lines.iter().all(|l| !l.is_empty() && !l.contains(&b'\n')));
    let input = base.path().join("fuzz.ndjson");
    let dead = base.path().join("dead.ndjson");
    write_bytes(&input, &lines);

    let (before, s) = {
        let served = replay_then_serve(&state, &input, Some(&dead), &[]).await;
        (served_answers(&served.url).await, served.summary)
    };
    eprintln!(
        "{} lines ({} valid, {mutated} damaged, {} surely invalid): {s:?}",
        lines.len(),
        valid.len(),
        must_fail.len()
    );
    assert_eq!(s.lines, lines.len() as u64);
    assert_eq!(
        s.accepted + s.duplicate + s.late + s.invalid,
        lines.len() as u64,
        "{s:?}"
    );
    assert!(s.invalid as usize >= must_fail.len(), "{s:?}");
    assert!(s.accepted > 0);

    let letters = dead_letters(&dead);
    assert_eq!(letters.len() as u64, s.invalid + s.late, "{s:?}");
    for n in &must_fail {
        let Some((error, _)) = letters.get(n) else {
            panic!(
                "line {n} is invalid but not dead-lettered: {}",
                String::from_utf8_lossy(&lines[*n as usize - 1])
            );
        };
        assert!(!error.is_empty() && !error.contains('\n'), "{error}");
    }
    for (n, (_, raw)) in &letters {
        assert_eq!(
            raw,
            &String::from_utf8_lossy(&lines[*n as usize - 1]),
            "line {n}"
        );
    }

    // The state reopens, and answers as the process that built it did.
    let empty = base.path().join("empty.ndjson");
    std::fs::write(&empty, "").expect("empty input");
    let served = replay_then_serve(&state, &empty, None, &[]).await;
    let after = served_answers(&served.url).await;
    assert_same_answers(&before, &after);
}

/// Fails with the first answer that differs, row by row for the report.
fn assert_same_answers(before: &[(String, Value)], after: &[(String, Value)]) {
    assert_eq!(before.len(), after.len());
    for ((uri, b), (_, a)) in before.iter().zip(after) {
        if a == b {
            continue;
        }
        let rows = |v: &Value| v["rows"].as_array().cloned().unwrap_or_default();
        let (rb, ra) = (rows(b), rows(a));
        let only_before: Vec<&Value> = rb.iter().filter(|r| !ra.contains(r)).take(5).collect();
        let only_after: Vec<&Value> = ra.iter().filter(|r| !rb.contains(r)).take(5).collect();
        panic!(
            "{uri} differs after a restart:\nbefore: {}\nafter: {}\nrows only before: {only_before:?}\nrows only after: {only_after:?}",
            if rb.is_empty() { b.to_string() } else { format!("{} rows", rb.len()) },
            if ra.is_empty() { a.to_string() } else { format!("{} rows", ra.len()) },
        );
    }
}

#[test]
fn a_state_of_a_newer_format_is_refused_not_misread() {
    let base = tempfile::tempdir().expect("tempdir");
    let state = base.path().join("state");
    {
        let store = slastream::store::RocksStore::open(&state).expect("open state");
        let mut b = slastream::store::Batch::default();
        b.put(b"v".to_vec(), 99u32.to_be_bytes().to_vec());
        slastream::store::Store::write(&store, b).expect("write");
    }
    let empty = base.path().join("empty.ndjson");
    std::fs::write(&empty, "").expect("empty input");
    let out = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["replay", "--config"])
        .arg(config_path())
        .arg("--input")
        .arg(&empty)
        .env("SLASTREAM__STATE__PATH", &state)
        .output()
        .expect("run slastream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let want = format!(
        "state at {} has format version 99; this slastream reads up to {}",
        state.display(),
        slastream::store::state::FORMAT_VERSION
    );
    assert!(stderr.contains(&want), "{want} not in:\n{stderr}");
}
