//! Big incidents stay cheap to read: the real binary replays one SEV1
//! incident naming 6,000 customers (open, never acknowledged: every ack
//! clock is running and breached) and one naming 10,000 (acknowledged an
//! hour late: 10,000 stopped breaches), then serves. `/metrics`,
//! `/api/v1/breaches` and the monthly report each answer in under a second,
//! with the right numbers.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slastream::model::time::{format_rfc3339, Clock, WallClock, HOUR, MINUTE};

use crate::common::{free_port, root, wait_until, Killed};

/// What every read must stay under on the test machine.
const READ_BUDGET: Duration = Duration::from_secs(1);

/// `n` distinct customer ids of `width` base-36 digits after `prefix`: short,
/// so 10,000 of them fit one event (64 KiB).
fn ids(prefix: &str, width: u32, n: u32) -> Vec<String> {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    assert!(n <= 36u32.pow(width));
    (0..n)
        .map(|i| {
            let mut s = prefix.to_string();
            for p in (0..width).rev() {
                s.push(DIGITS[(i / 36u32.pow(p) % 36) as usize] as char);
            }
            s
        })
        .collect()
}

fn incident(
    id: &str,
    at: i64,
    incident: &str,
    action: &str,
    customers: Option<&[String]>,
) -> String {
    let mut v = serde_json::json!({
        "event_id": id,
        "kind": "incident",
        "occurred_at": format_rfc3339(at),
        "incident_id": incident,
        "action": action,
        "severity": "SEV1",
    });
    if let Some(c) = customers {
        v["customer_ids"] = serde_json::json!(c);
    }
    let line = v.to_string();
    assert!(line.len() <= 64 * 1024, "{} bytes", line.len());
    line
}

/// `name{labels}` → value for the series of `name` whose labels include `want`.
fn series(text: &str, name: &str, want: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect()
}

/// GET `url`: the body and how long the whole answer took.
async fn timed(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let resp = reqwest::get(url).await.expect("request");
    assert_eq!(resp.status(), 200, "{url}");
    let body = resp.text().await.expect("body");
    (body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn big_incidents_answer_in_under_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = WallClock.now() / MINUTE * MINUTE;
    let a = ids("a", 3, 6_000);
    let b = ids("", 3, 10_000);
    let lines = [
        incident("a-open", now - HOUR, "INC-A", "opened", Some(&a)),
        incident("b-open", now - 2 * HOUR, "INC-B", "opened", Some(&b)),
        incident("b-ack", now - HOUR, "INC-B", "acknowledged", None),
    ];
    let input = dir.path().join("incidents.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write events");

    let http = free_port();
    let started = Instant::now();
    let _slastream = Killed(
        Command::new(env!("CARGO_BIN_EXE_slastream"))
            .args(["replay", "--then-serve", "--config"])
            .arg(root().join("config/slastream.toml"))
            .arg("--input")
            .arg(&input)
            .env("SLASTREAM__STATE__PATH", dir.path().join("state"))
            .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slastream"),
    );
    let api = format!("http://127.0.0.1:{http}");
    wait_until("slastream /readyz", Duration::from_secs(120), || async {
        reqwest::get(format!("{api}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let replayed = started.elapsed();

    let (metrics, metrics_took) = timed(&format!("{api}/metrics")).await;
    let (breaches, breaches_took) = timed(&format!("{api}/api/v1/breaches")).await;
    let month = format_rfc3339(now)[..7].to_string();
    let (report, report_took) = timed(&format!("{api}/api/v1/report?month={month}")).await;
    eprintln!(
        "16,000 incident customers: replay and restore {replayed:?}, /metrics {metrics_took:?}, \
         /api/v1/breaches {breaches_took:?}, /api/v1/report {report_took:?}"
    );

    // Incident customers are seen customers: segment unassigned, zone UTC.
    let group = [("segment", "unassigned"), ("timezone", "UTC")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        group.iter().chain(extra).copied().collect()
    };
    let open = |slo: &'static str, state: &'static str| {
        series(
            &metrics,
            "slastream_tickets_open",
            &with(&[("slo", slo), ("state", state)]),
        )
    };
    // INC-A: every ack clock is past its 15 minutes; every resolution
    // clock (4h) of both incidents is on track (1h and 2h elapsed).
    assert_eq!(open("incident-ack", "breached"), vec![6_000.0]);
    assert_eq!(open("incident-ack", "on_track"), vec![0.0]);
    assert_eq!(open("incident-resolution", "on_track"), vec![16_000.0]);
    assert_eq!(open("incident-resolution", "breached"), vec![0.0]);
    // Breaches: 6,000 running (INC-A) and 10,000 stopped (INC-B).
    assert_eq!(
        series(
            &metrics,
            "slastream_ticket_sla_breaches_total",
            &with(&[("slo", "incident-ack"), ("priority", "SEV1")]),
        ),
        vec![16_000.0]
    );
    // Counted outcomes: INC-B's stopped ack clocks only.
    assert_eq!(
        series(
            &metrics,
            "slastream_slo_events_total",
            &with(&[("slo", "incident-ack"), ("outcome", "bad")]),
        ),
        vec![10_000.0]
    );

    let json: serde_json::Value = serde_json::from_str(&breaches).expect("breaches json");
    let list = json["breaches"].as_array().expect("breaches");
    let mut by: BTreeMap<(&str, &str, bool), usize> = BTreeMap::new();
    for b in list {
        let key = (
            b["slo"].as_str().unwrap_or(""),
            b["id"].as_str().unwrap_or(""),
            b["stopped_at"].is_null(),
        );
        *by.entry(key).or_default() += 1;
    }
    assert_eq!(
        by,
        BTreeMap::from([
            (("incident-ack", "INC-A", true), 6_000),
            (("incident-ack", "INC-B", false), 10_000),
        ]),
        "breaches by (slo, incident, running)"
    );

    let json: serde_json::Value = serde_json::from_str(&report).expect("report json");
    let rows = json["rows"].as_array().expect("rows");
    let slos = 7;
    assert!(
        rows.len() >= 16_000 * slos && rows.len() % slos == 0,
        "{} rows",
        rows.len()
    );
    // Within the month of the events, an INC-A customer's ack clock is bad.
    if format_rfc3339(now - 2 * HOUR)[..7] == month {
        let row = rows
            .iter()
            .find(|r| r["customer"] == "a000" && r["slo"] == "incident-ack")
            .expect("row of a000");
        assert_eq!(row["bad"], 1, "{row}");
        let row = rows
            .iter()
            .find(|r| r["customer"] == "000" && r["slo"] == "incident-ack")
            .expect("row of 000");
        assert_eq!(row["bad"], 1, "{row}");
    }

    for (what, took) in [
        ("/metrics", metrics_took),
        ("/api/v1/breaches", breaches_took),
        ("/api/v1/report", report_took),
    ] {
        assert!(took < READ_BUDGET, "{what} took {took:?}");
    }
}
