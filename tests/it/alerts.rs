//! Alerting end to end with the real binary: a workload that burns
//! `api-availability` for one customer and leaves a P1 ticket unanswered for
//! days, replayed with `--alerts --then-serve`.
//! - A real Alertmanager receives `SLOErrorBudgetBurn` and `TicketSLABreached`
//!   with their labels; a run-time exclusion over the burn and the ticket
//!   makes both resolve there.
//! - A webhook that answers 500 at first loses nothing; duplicates carry the
//!   same fingerprint; after kill -9 and restart no episode fires twice.
//! - Three webhooks that never answer (or an alerts topic whose broker is
//!   down) delay neither a breach that comes due nor the resends that keep
//!   firing alerts alive in Alertmanager.
//! - Every link in every annotation answers 200 from the running process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use slastream::model::time::{
    floor_minute, format_rfc3339, parse_rfc3339, Clock, Millis, WallClock, DAY, HOUR, MINUTE,
};

use crate::common::{free_port, root, wait_until, Killed};

/// The last 70 minutes of acme's `api` probes all fail; ticket A-1 (P1) was
/// opened three days ago and never answered.
fn workload(path: &Path) -> i64 {
    let now = floor_minute(WallClock.now());
    let mut lines = Vec::new();
    let opened = now - 3 * DAY;
    lines.push(format!(
        r#"{{"event_id":"t-open","kind":"ticket","occurred_at":"{}","customer_id":"acme","ticket_id":"A-1","action":"opened","priority":"P1"}}"#,
        format_rfc3339(opened)
    ));
    for m in (1..=70).rev() {
        for k in 0..2 {
            lines.push(format!(
                r#"{{"event_id":"p-{m}-{k}","kind":"probe","occurred_at":"{}","customer_id":"acme","probe_id":"p1","service":"api","success":false,"latency_ms":900}}"#,
                format_rfc3339(now - m * MINUTE + k * 20_000)
            ));
        }
    }
    std::fs::write(path, lines.join("\n") + "\n").expect("write workload");
    now
}

fn start(dir: &Path, input: &Path, http: u16, env: &[(&str, String)]) -> Killed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slastream"));
    cmd.args(["replay", "--alerts", "--then-serve", "--config"])
        .arg(root().join("config/slastream.toml"))
        .arg("--input")
        .arg(input)
        .env("SLASTREAM__STATE__PATH", dir.join("state"))
        .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("SLASTREAM__HTTP__ADMIN_TOKEN", "t0ken")
        .env("SLASTREAM__ALERTING__KAFKA", "false")
        .env("SLASTREAM__ALERTING__RESEND_INTERVAL", "1m")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Killed(cmd.spawn().expect("slastream"))
}

/// A real Alertmanager on loopback; it resolves a firing alert that is not
/// re-sent within `resolve_timeout`.
async fn alertmanager(dir: &Path, resolve_timeout: &str) -> (Killed, String) {
    let am_port = free_port();
    let am_cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "global:\n  resolve_timeout: {resolve_timeout}\nroute:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n"
        ),
    )
    .expect("write config");
    let check = Command::new("amtool")
        .args(["check-config"])
        .arg(&am_cfg)
        .output()
        .expect("amtool (scripts/test.sh installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let process = Killed(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager"),
    );
    let am = format!("http://127.0.0.1:{am_port}");
    wait_until("Alertmanager", Duration::from_secs(30), || async {
        reqwest::get(format!("{am}/-/ready"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    (process, am)
}

/// Every link in the annotations answers 200 from the running process.
async fn assert_links_answer<'a>(annotations: impl IntoIterator<Item = &'a serde_json::Value>) {
    let mut n = 0;
    for a in annotations {
        let obj = a.as_object().expect("annotations");
        for v in obj.values() {
            let Some(link) = v.as_str().filter(|v| v.starts_with("http://")) else {
                continue;
            };
            let r = reqwest::get(link).await.expect("the link answers");
            assert_eq!(r.status(), 200, "{link}: {:?}", r.text().await);
            n += 1;
        }
    }
    assert!(n > 0, "no link in any annotation");
}

async fn active_alerts(am: &str) -> Vec<serde_json::Value> {
    let Ok(r) = reqwest::get(format!(
        "{am}/api/v2/alerts?active=true&silenced=false&inhibited=false"
    ))
    .await
    else {
        return Vec::new();
    };
    r.json::<Vec<serde_json::Value>>().await.unwrap_or_default()
}

fn named<'a>(alerts: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_receives_burn_and_breach_alerts_then_their_resolution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_am, am) = alertmanager(dir.path(), "5m").await;

    let input = dir.path().join("events.ndjson");
    let now = workload(&input);
    let http = free_port();
    let _s = start(
        dir.path(),
        &input,
        http,
        &[(
            "SLASTREAM__ALERTING__ALERTMANAGER_URLS",
            format!("[\"{am}\"]"),
        )],
    );
    wait_until(
        "both alerts in Alertmanager",
        Duration::from_secs(60),
        || async {
            let a = active_alerts(&am).await;
            !named(&a, "SLOErrorBudgetBurn").is_empty()
                && !named(&a, "TicketSLABreached").is_empty()
        },
    )
    .await;
    let alerts = active_alerts(&am).await;
    let burn = named(&alerts, "SLOErrorBudgetBurn");
    let page = burn
        .iter()
        .find(|a| a["labels"]["long_window"] == "1h" && a["labels"]["slo"] == "api-availability")
        .expect("the 1h/5m page");
    assert_eq!(page["labels"]["short_window"], "5m");
    assert_eq!(page["labels"]["severity"], "page");
    assert_eq!(page["labels"]["segment"], "enterprise");
    assert_eq!(page["labels"]["timezone"], "Europe/Berlin");
    let breach = named(&alerts, "TicketSLABreached");
    let t = breach
        .iter()
        .find(|a| a["labels"]["slo"] == "first-response")
        .expect("first-response breach");
    for (k, v) in [
        ("ticket_id", "A-1"),
        ("priority", "P1"),
        ("severity", "page"),
        ("customer", "acme"),
        ("segment", "enterprise"),
        ("timezone", "Europe/Berlin"),
    ] {
        assert_eq!(t["labels"][k], v, "{k}");
    }
    assert!(t["annotations"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains("A-1")));
    assert_links_answer(alerts.iter().map(|a| &a["annotations"])).await;

    // An exclusion over the burn and the ticket's whole life: the burn is
    // gone, the ticket's clock never ran, both resolve.
    let body = serde_json::json!({
        "name": "incident review",
        "from": format_rfc3339(now - 4 * DAY),
        "to": format_rfc3339(now + 10 * MINUTE),
        "customers": ["acme"],
        "reason": "test",
        "author": "it",
    });
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/api/v1/exclusions"))
        .bearer_auth("t0ken")
        .json(&body)
        .send()
        .await
        .expect("exclusion");
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    wait_until(
        "both alerts resolved in Alertmanager",
        Duration::from_secs(60),
        || async {
            let a = active_alerts(&am).await;
            named(&a, "SLOErrorBudgetBurn").is_empty() && named(&a, "TicketSLABreached").is_empty()
        },
    )
    .await;
}

/// What the test webhook saw: every request, and whether it was accepted.
#[derive(Default)]
struct Hook {
    calls: Vec<(bool, serde_json::Value)>,
    refuse: usize,
}

async fn hook(State(h): State<Arc<Mutex<Hook>>>, Json(v): Json<serde_json::Value>) -> StatusCode {
    let mut h = h.lock().expect("lock");
    let ok = h.refuse == 0;
    h.refuse = h.refuse.saturating_sub(1);
    h.calls.push((ok, v));
    if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

fn accepted_firing(h: &Hook) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (ok, v) in &h.calls {
        if *ok && v["status"] == "firing" {
            *m.entry(v["fingerprint"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_failures_lose_nothing_and_a_restart_fires_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(Mutex::new(Hook {
        refuse: 3,
        ..Hook::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let input = dir.path().join("events.ndjson");
    workload(&input);
    let env = [("SLASTREAM__ALERTING__WEBHOOK_URLS", format!("[\"{url}\"]"))];
    let http = free_port();
    let s = start(dir.path(), &input, http, &env);
    wait_until(
        "every alert accepted by the webhook",
        Duration::from_secs(60),
        || {
            let state = state.clone();
            async move {
                let h = state.lock().expect("lock");
                let attempted: BTreeSet<String> = h
                    .calls
                    .iter()
                    .map(|(_, v)| v["fingerprint"].as_str().unwrap_or_default().to_string())
                    .collect();
                let accepted = accepted_firing(&h);
                h.refuse == 0
                    && !attempted.is_empty()
                    && attempted.iter().all(|fp| accepted.contains_key(fp))
                    && h.calls
                        .iter()
                        .any(|(ok, v)| *ok && v["labels"]["alertname"] == "TicketSLABreached")
                    && h.calls
                        .iter()
                        .any(|(ok, v)| *ok && v["labels"]["alertname"] == "SLOErrorBudgetBurn")
            }
        },
    )
    .await;
    {
        let h = state.lock().expect("lock");
        assert_eq!(h.calls.iter().filter(|(ok, _)| !ok).count(), 3);
        // One fingerprint, one set of labels, across retries.
        let mut labels_of: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for (_, v) in &h.calls {
            let fp = v["fingerprint"].as_str().expect("fingerprint").to_string();
            let prev = labels_of.entry(fp).or_insert_with(|| v["labels"].clone());
            assert_eq!(*prev, v["labels"]);
        }
        assert!(accepted_firing(&h).values().all(|n| *n == 1));
    }
    let annotations: Vec<serde_json::Value> = state
        .lock()
        .expect("lock")
        .calls
        .iter()
        .map(|(_, v)| v["annotations"].clone())
        .collect();
    assert_links_answer(&annotations).await;
    let before = accepted_firing(&state.lock().expect("lock"));

    // kill -9, restart on the same state: the episodes are the same, nothing
    // fires a second time.
    drop(s);
    let http = free_port();
    let _s = start(dir.path(), &input, http, &env);
    let ready = format!("http://127.0.0.1:{http}/readyz");
    wait_until(
        "the restarted process to be ready",
        Duration::from_secs(60),
        || async { reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) },
    )
    .await;
    // Two evaluation periods.
    tokio::time::sleep(slastream::alert::deliver::EVAL_EVERY * 2).await;
    let after = accepted_firing(&state.lock().expect("lock"));
    assert_eq!(after, before, "a restart fired an episode again");
}

/// A backlog of alerts for every target (twelve P1 tickets of `50%off`
/// breached days ago) and one P1 ticket of `a b/c` opened 59.5 minutes ago.
/// Both customers are unregistered: 24x7 calendar, P1 target 1 h, so the
/// second ticket breaches 30 s after now. Returns its breach instant.
fn due_workload(path: &Path) -> Millis {
    let now = WallClock.now();
    let opened = now - HOUR + 30_000;
    let mut lines = Vec::new();
    for i in 0..12 {
        lines.push(format!(
            r#"{{"event_id":"old-{i}","kind":"ticket","occurred_at":"{}","customer_id":"50%off","ticket_id":"old-{i}","action":"opened","priority":"P1"}}"#,
            format_rfc3339(floor_minute(now) - 3 * DAY)
        ));
    }
    lines.push(format!(
        r#"{{"event_id":"due","kind":"ticket","occurred_at":"{}","customer_id":"a b/c","ticket_id":"due 50%/x","action":"opened","priority":"P1"}}"#,
        format_rfc3339(opened)
    ));
    std::fs::write(path, lines.join("\n") + "\n").expect("write workload");
    opened + HOUR
}

/// One first-response breach in Alertmanager, by ticket.
fn breach<'a>(alerts: &'a [serde_json::Value], ticket: &str) -> Option<&'a serde_json::Value> {
    alerts.iter().find(|a| {
        a["labels"]["alertname"] == "TicketSLABreached"
            && a["labels"]["slo"] == "first-response"
            && a["labels"]["ticket_id"] == ticket
    })
}

/// Starts the binary with Alertmanager and `env`, then checks that the breach
/// that comes due reaches Alertmanager within 10 s of its instant, and that a
/// firing alert stays active there, re-sent every few seconds, although
/// Alertmanager forgets it after 12 s without news.
async fn a_due_breach_is_on_time_whatever_the_other_targets_do(env: &[(&str, String)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_am, am) = alertmanager(dir.path(), "12s").await;
    let input = dir.path().join("events.ndjson");
    let due = due_workload(&input);
    let http = free_port();
    let mut env = env.to_vec();
    env.push((
        "SLASTREAM__ALERTING__ALERTMANAGER_URLS",
        format!("[\"{am}\"]"),
    ));
    env.push(("SLASTREAM__ALERTING__RESEND_INTERVAL", "2s".to_string()));
    let _s = start(dir.path(), &input, http, &env);
    wait_until(
        "the backlog in Alertmanager",
        Duration::from_secs(20),
        || async { breach(&active_alerts(&am).await, "old-0").is_some() },
    )
    .await;
    let watched = Instant::now();
    let mut updates = BTreeSet::new();
    let mut arrived: Option<Millis> = None;
    let mut last = Vec::new();
    while arrived.is_none() || watched.elapsed() < Duration::from_secs(30) {
        assert!(
            WallClock.now() < due + 30_000,
            "the breach due at {} never reached Alertmanager",
            format_rfc3339(due)
        );
        let alerts = active_alerts(&am).await;
        let Some(old) = breach(&alerts, "old-0") else {
            panic!(
                "a firing alert was resolved by Alertmanager: not re-sent within its resolve_timeout ({:.1}s after the backlog arrived)",
                watched.elapsed().as_secs_f64()
            );
        };
        updates.insert(old["updatedAt"].as_str().unwrap_or_default().to_string());
        if arrived.is_none() && breach(&alerts, "due 50%/x").is_some() {
            arrived = Some(WallClock.now());
        }
        last = alerts;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let arrived = arrived.expect("arrived");
    let late = arrived - due;
    eprintln!(
        "breach due at {} reached Alertmanager {:.1}s after; firing alert re-sent {} times in {:.0}s",
        format_rfc3339(due),
        late as f64 / 1000.0,
        updates.len().saturating_sub(1),
        watched.elapsed().as_secs_f64()
    );
    assert!(late >= 0, "a breach before its instant ({late} ms)");
    assert!(
        late <= 10_000,
        "the breach reached Alertmanager {late} ms after its instant"
    );
    let starts = breach(&last, "due 50%/x").expect("due")["startsAt"]
        .as_str()
        .and_then(parse_rfc3339)
        .expect("startsAt");
    assert!(
        starts >= due,
        "the episode starts at the evaluation past the breach"
    );
    assert!(
        updates.len() >= 4,
        "a firing alert was re-sent {} times in 30 s",
        updates.len().saturating_sub(1)
    );
    assert_links_answer(last.iter().map(|a| &a["annotations"])).await;
}

/// A webhook that accepts TCP connections and never answers.
fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_webhooks_delay_neither_a_due_breach_nor_resends() {
    let hooks: Vec<String> = (0..3).map(|_| format!("\"{}\"", black_hole())).collect();
    a_due_breach_is_on_time_whatever_the_other_targets_do(&[(
        "SLASTREAM__ALERTING__WEBHOOK_URLS",
        format!("[{}]", hooks.join(", ")),
    )])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_alerts_topic_delays_neither_a_due_breach_nor_resends() {
    a_due_breach_is_on_time_whatever_the_other_targets_do(&[
        ("SLASTREAM__ALERTING__KAFKA", "true".to_string()),
        (
            "SLASTREAM__KAFKA__BROKERS",
            format!("127.0.0.1:{}", free_port()),
        ),
    ])
    .await;
}
