//! SLA change control (SPEC §2.3, §3 Definition versions, Time to
//! exhaustion): audit entries of definition changes through real restarts
//! of the binary, `check-config --state`, `/api/v1/slos?at=`, the report
//! before and after a change, and the exhaustion forecast on an injected
//! clock.

use std::path::Path;
use std::process::{Command, Output};

use slastream::config::{self, Config};
use slastream::engine::{Applied, Engine};
use slastream::model::event::decode;
use slastream::model::time::{format_rfc3339, Millis, DAY, HOUR, MINUTE};
use slastream::store::{state, RocksStore, Store};

use crate::common::*;

/// A first-response SLO; `terms` holds its objective and targets, `history`
/// its `[[slos.history]]` entries.
fn config_text(terms: &str, history: &str) -> String {
    format!(
        r#"
[ingest]
max_lateness = "400d"

[[customers]]
id = "globex"
segment = "standard"
timezone = "UTC"

[[slos]]
name = "first-response"
indicator = "ticket_response"
window = "month"
clock = "24x7"
{terms}
{history}

[[credits]]
slo = "first-response"
tiers = [ {{ below = 0.9, percent = 10 }} ]
"#
    )
}

const OLD: &str = "objective = 0.8\ntargets = { P1 = \"2h\" }";
const NEW: &str = "objective = 0.9\ntargets = { P1 = \"1h\" }";

fn history(until: &str) -> String {
    format!("[[slos.history]]\nuntil = \"{until}\"\n{OLD}\nchange = \"CR-1042: Q3 review\"\n")
}

fn run(args: &[&str], cfg: &Path, state_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("SLASTREAM__STATE__PATH", state_dir)
        .output()
        .expect("run slastream")
}

/// One start of the binary on the state: a replay of `input`.
fn start(dir: &Path, text: &str, input: &Path) -> String {
    let cfg = dir.join("slastream.toml");
    std::fs::write(&cfg, text).expect("write config");
    let state_dir = dir.join("state");
    let out = run(
        &["replay", "--input", &input.display().to_string()],
        &cfg,
        &state_dir,
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed:\n{log}");
    log
}

/// (slo, retroactive) of every `slo_definition` audit entry, oldest first.
fn entries(state_dir: &Path) -> Vec<(String, bool)> {
    let store = RocksStore::open_read_only(state_dir).expect("open state read-only");
    state::definition_audit(&store)
        .expect("audit entries")
        .into_iter()
        .map(|d| (d.slo, d.retroactive))
        .collect()
}

fn ticket_lines() -> Vec<String> {
    let t = |id: &str, action: &str, at: &str, p: &str| {
        format!(
            r#"{{"event_id":"{id}-{action}","kind":"ticket","occurred_at":"{at}","customer_id":"globex","ticket_id":"{id}","action":"{action}"{p}}}"#
        )
    };
    vec![
        t("a", "opened", "2026-10-05T10:00:00Z", r#","priority":"P1""#),
        t("a", "responded", "2026-10-05T11:30:00Z", ""),
    ]
}

#[test]
fn definition_changes_are_audited_through_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.ndjson");
    write_lines(&events, &ticket_lines());
    let empty = dir.path().join("empty.ndjson");
    std::fs::write(&empty, "").expect("write");
    let state_dir = dir.path().join("state");

    // First start: nothing to compare with.
    start(dir.path(), &config_text(OLD, ""), &events);
    assert_eq!(entries(&state_dir), []);
    // No change, no entry.
    start(dir.path(), &config_text(OLD, ""), &empty);
    assert_eq!(entries(&state_dir), []);

    // New terms from a future instant: the past keeps its terms.
    let future = config_text(NEW, &history("2100-01-01T00:00:00Z"));
    let cfg_path = dir.path().join("slastream.toml");
    std::fs::write(&cfg_path, &future).expect("write config");
    // check-config --state lists it and changes nothing.
    let before = RocksStore::open_read_only(&state_dir)
        .expect("open")
        .scan(b"")
        .expect("scan");
    let out = run(
        &["check-config", "--state", &state_dir.display().to_string()],
        &cfg_path,
        &state_dir,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 SLO definition change since it last ran")
            && text.contains(
                "SLO `first-response` changed (objective, targets, history): not retroactive"
            ),
        "{text}"
    );
    let after = RocksStore::open_read_only(&state_dir)
        .expect("open")
        .scan(b"")
        .expect("scan");
    assert_eq!(before, after, "check-config --state modified the state");

    let log = start(dir.path(), &future, &empty);
    assert!(log.contains("SLO `first-response` changed"), "{log}");
    assert_eq!(entries(&state_dir), [("first-response".to_string(), false)]);

    // The same change dated in the past: it re-judges processed tickets.
    start(
        dir.path(),
        &config_text(NEW, &history("2026-10-01T00:00:00Z")),
        &empty,
    );
    // An edit in place of the newest terms.
    let edited = config_text(
        "objective = 0.95\ntargets = { P1 = \"1h\" }",
        &history("2026-10-01T00:00:00Z"),
    );
    start(dir.path(), &edited, &empty);
    // And again unchanged.
    start(dir.path(), &edited, &empty);
    assert_eq!(
        entries(&state_dir),
        [
            ("first-response".to_string(), false),
            ("first-response".to_string(), true),
            ("first-response".to_string(), true),
        ]
    );
    let out = run(
        &["check-config", "--state", &state_dir.display().to_string()],
        &cfg_path_with(dir.path(), &edited),
        &state_dir,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unchanged since it last ran"), "{text}");
}

fn cfg_path_with(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("check.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

fn parsed(text: &str) -> Config {
    config::parse(text, &[], Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn feed(e: &mut Engine, lines: &[String], wall: Millis) {
    for l in lines {
        let ev = decode(l.as_bytes()).unwrap_or_else(|err| panic!("{l}: {err}"));
        assert_eq!(e.apply(&ev, wall), Applied::Accepted, "{l}");
    }
}

#[tokio::test]
async fn slos_at_an_instant_and_the_report_before_and_after_a_change() {
    let cfg = parsed(&config_text(NEW, &history("2026-11-15T00:00:00Z")));
    let mut e = Engine::new(&cfg);
    // October and December alike: one ticket answered in 90 minutes, good
    // under October's 2h target, bad under December's 1h.
    let t = |id: &str, action: &str, at: &str, p: &str| {
        format!(
            r#"{{"event_id":"{id}-{action}","kind":"ticket","occurred_at":"{at}","customer_id":"globex","ticket_id":"{id}","action":"{action}"{p}}}"#
        )
    };
    let mut lines = Vec::new();
    for m in ["10", "12"] {
        lines.push(t(
            m,
            "opened",
            &format!("2026-{m}-05T10:00:00Z"),
            r#","priority":"P1""#,
        ));
        lines.push(t(m, "responded", &format!("2026-{m}-05T11:30:00Z"), ""));
    }
    let now = t_("2027-01-10T00:00:00Z");
    feed(&mut e, &lines, now);
    let app = app(e, now, "");

    let (status, body) = get(&app, "/api/v1/slos?at=2026-10-20T00:00:00Z").await;
    assert_eq!(status, 200, "{body}");
    let slo = &body["slos"][0];
    assert_eq!(slo["objective"], 0.8);
    assert_eq!(slo["targets"]["P1"], "2h");
    assert_eq!(slo["in_force"]["until"], "2026-11-15T00:00:00Z");
    let hist = slo["history"].as_array().expect("history");
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0]["change"], "CR-1042: Q3 review");
    assert_eq!(hist[1]["from"], "2026-11-15T00:00:00Z");
    assert_eq!(hist[1]["until"], serde_json::Value::Null);
    // Without `at`: the version in force now.
    let (_, body) = get(&app, "/api/v1/slos").await;
    assert_eq!(body["slos"][0]["objective"], 0.9);
    assert_eq!(body["slos"][0]["targets"]["P1"], "1h");
    let (status, body) = get(&app, "/api/v1/slos?at=yesterday").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap_or("").contains("\"at\""),
        "{body}"
    );

    let row = |body: &serde_json::Value| body["rows"][0].clone();
    let (_, oct) = get(&app, "/api/v1/report?month=2026-10").await;
    let oct = row(&oct);
    assert_eq!(
        (oct["objective"].clone(), oct["status"].clone()),
        (0.8.into(), "met".into())
    );
    assert_eq!(oct["attainment"], 1);
    assert_eq!(oct["credit_percent"], 0);
    let (_, dec) = get(&app, "/api/v1/report?month=2026-12").await;
    let dec = row(&dec);
    assert_eq!(
        (dec["objective"].clone(), dec["status"].clone()),
        (0.9.into(), "breached".into())
    );
    assert_eq!(dec["attainment"], 0);
    assert_eq!(dec["credit_percent"], 10);
}

fn t_(s: &str) -> Millis {
    t(s)
}

/// A rolling probe SLO: 900 good probes ten days before `m`, then 100 in
/// minute `m`, 60 of them failed.
fn burning_engine(m: Millis) -> (Engine, Config) {
    let cfg = parsed(
        r#"
[ingest]
max_lateness = "30d"
[alerting]
forecast_horizon = "3d"
[[customers]]
id = "globex"
segment = "standard"
timezone = "UTC"
[[slos]]
name = "api"
indicator = "probe_availability"
objective = 0.9
window = "30d"
"#,
    );
    let mut e = Engine::new(&cfg);
    let p = |id: String, at: Millis, ok: bool| {
        format!(
            r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{}","customer_id":"globex","probe_id":"p","service":"api","success":{ok},"latency_ms":5}}"#,
            format_rfc3339(at)
        )
    };
    let mut lines: Vec<String> = (0..900)
        .map(|i| p(format!("g{i}"), m - 10 * DAY, true))
        .collect();
    lines.extend((0..100).map(|i| p(format!("b{i}"), m, i >= 60)));
    feed(&mut e, &lines, m + DAY);
    (e, cfg)
}

fn forecasts(e: &Engine, cfg: &Config, now: Millis) -> Vec<(String, String)> {
    slastream::alert::evaluate(e, now, &cfg.alerting, "http://127.0.0.1:9464")
        .into_values()
        .filter(|f| f.labels["alertname"] == "SLOBudgetExhaustionForecast")
        .map(|f| {
            (
                f.labels["severity"].clone(),
                f.annotations["forecast"].clone(),
            )
        })
        .collect()
}

fn exhaustion_metric(e: &Engine, now: Millis) -> Option<f64> {
    let text = slastream::export::render(e, now, &slastream::export::ExportOptions::default());
    text.lines()
        .find(|l| {
            l.starts_with("slastream_slo_budget_exhaustion_seconds{")
                && l.contains("slo=\"api\"")
                && l.contains("segment=\"standard\"")
                && l.contains("timezone=\"UTC\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn exhaustion_forecast_on_an_injected_clock() {
    let m = t("2026-11-20T12:00:00Z");
    let (e, cfg) = burning_engine(m);
    // Before the burst nothing burns: no metric, no alert.
    assert_eq!(exhaustion_metric(&e, m - MINUTE), None);
    assert!(forecasts(&e, &cfg, m - MINUTE).is_empty());
    // burn(6h) = (60/100)/0.1 = 6; 0.4 of the budget left; 0.4 * 30 d / 6 = 2 d.
    let now = m + HOUR;
    let secs = exhaustion_metric(&e, now).expect("metric present");
    assert!((secs - 2.0 * 86_400.0).abs() < 1e-6, "{secs}");
    assert_eq!(
        forecasts(&e, &cfg, now),
        [("ticket".to_string(), format_rfc3339(now + 2 * DAY))]
    );
    // The compliance answer carries the same number.
    let app = app(e, now, "");
    let (_, body) = get(&app, "/api/v1/compliance?slo=api&customer=globex").await;
    let v = body["exhaustion_seconds"]
        .as_f64()
        .expect("exhaustion_seconds");
    assert!((v - secs).abs() < 1e-6, "{body}");
    let (e, cfg) = burning_engine(m);
    // Still in the 6h lookback one minute before it leaves it, then resolved.
    assert_eq!(forecasts(&e, &cfg, m + 6 * HOUR - MINUTE).len(), 1);
    assert!(forecasts(&e, &cfg, m + 6 * HOUR).is_empty());
    assert_eq!(exhaustion_metric(&e, m + 6 * HOUR), None);
    // A horizon shorter than the forecast: no alert, the metric stays.
    let mut short = cfg.clone();
    short.alerting.forecast_horizon = DAY;
    assert!(forecasts(&e, &short, now).is_empty());
    assert!(exhaustion_metric(&e, now).is_some());
}
