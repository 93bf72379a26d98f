//! `/metrics` against the contract: `promtool check metrics` finds nothing,
//! every SPEC §5 metric is there, the gauges equal what the API answers for
//! the same scope, and a real Prometheus scraping the real binary stores the
//! same numbers.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use slastream::api::{self, AppState};
use slastream::engine::Engine;
use slastream::export::{ExportOptions, PipelineMetrics, LOOKBACKS};
use slastream::model::time::{Clock, ManualClock};

use crate::common::{
    call, free_port, golden_now, replay_into, root, shipped_config, wait_until, Killed, Prometheus,
};

/// The API prints numbers rounded to 14 significant digits; the exposition
/// prints them whole.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// `name{labels}` → value, labels sorted as exposed.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn labels(series: &str) -> BTreeMap<String, String> {
    let inner = series
        .split_once('{')
        .map(|x| x.1.trim_end_matches('}'))
        .unwrap_or_default();
    inner
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once("=\"")?;
            Some((k.to_string(), v.trim_end_matches('"').to_string()))
        })
        .collect()
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn metrics_pass_promtool_and_equal_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = shipped_config(dir.path());
    let engine = replay_into(&cfg, &root().join("config/sample-events.ndjson"));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(golden_now()));
    let opts = ExportOptions {
        pipeline: Some(Arc::new(PipelineMetrics::new())),
        ..ExportOptions::from_config(&cfg)
    };
    let app = api::router(AppState::with_state(
        Arc::new(RwLock::new(engine)),
        Arc::new(slastream::store::MemStore::default()),
        clock,
        String::new(),
        Arc::new(move |e: &Engine, now| slastream::export::render(e, now, &opts)),
    ));
    let (status, text) = call(
        &app,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, 200);
    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );

    let m = parse(&text);
    for name in [
        "slastream_slo_objective_ratio",
        "slastream_slo_attainment_ratio",
        "slastream_slo_error_budget_remaining_ratio",
        "slastream_slo_burn_rate",
        "slastream_slo_events_total",
        "slastream_ticket_sla_breaches_total",
        "slastream_tickets_open",
        "slastream_alerts_firing",
        "slastream_ingest_events_total",
        "slastream_ingest_watermark_timestamp_seconds",
        "slastream_processing_duration_seconds_bucket",
        "slastream_alert_deliveries_total",
    ] {
        assert!(
            m.keys()
                .any(|k| k == name || k.starts_with(&format!("{name}{{"))),
            "{name} missing from /metrics"
        );
    }
    // No customer label without export.per_customer.
    assert!(!text.contains("customer=\""));

    // Each (slo, segment, timezone) gauge equals the API's answer for the
    // same scope over the SLO's own window.
    let mut compared = 0;
    for (series, value) in &m {
        if !series.starts_with("slastream_slo_attainment_ratio{") {
            continue;
        }
        let l = labels(series);
        let uri = format!(
            "/api/v1/compliance?slo={}&segment={}&timezone={}",
            l["slo"], l["segment"], l["timezone"]
        );
        let (status, body) = call(&app, Request::get(&uri).body(Body::empty()).expect("req")).await;
        assert_eq!(status, 200, "{uri}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        if let Some(a) = json["attainment"].as_f64() {
            assert!(close(*value, a), "{series} = {value}, {uri} = {a}");
            let budget = series.replace("attainment_ratio", "error_budget_remaining_ratio");
            let b = json["budget_remaining"].as_f64().expect("budget");
            assert!(close(m[&budget], b), "{budget} = {}, API {b}", m[&budget]);
            compared += 1;
        }
        for (lookback, _) in LOOKBACKS {
            let burn = format!(
                "slastream_slo_burn_rate{{lookback=\"{lookback}\",segment=\"{}\",slo=\"{}\",timezone=\"{}\"}}",
                l["segment"], l["slo"], l["timezone"]
            );
            assert!(m.contains_key(&burn), "{burn} missing");
        }
    }
    assert!(compared >= 20, "only {compared} series compared");

    // The events counter of an SLO, over every group, holds all its events
    // (api-latency: no exclusion applies, which the API would remove and a
    // counter cannot).
    let counted: f64 = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with("slastream_slo_events_total{") && k.contains("slo=\"api-latency\"")
        })
        .map(|(_, v)| v)
        .sum();
    let uri =
        "/api/v1/compliance?slo=api-latency&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z";
    let (_, body) = call(&app, Request::get(uri).body(Body::empty()).expect("req")).await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(counted > 0.0);
    assert_eq!(Some(counted), json["total"].as_f64(), "{body}");
}

async fn get_json(url: &str) -> Option<serde_json::Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_numbers_the_api_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port();
    let _slastream = Killed(
        Command::new(env!("CARGO_BIN_EXE_slastream"))
            .args(["replay", "--then-serve", "--config"])
            .arg(root().join("config/slastream.toml"))
            .arg("--input")
            .arg(root().join("config/sample-events.ndjson"))
            .env("SLASTREAM__STATE__PATH", dir.path().join("state"))
            .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slastream"),
    );
    let api = format!("http://127.0.0.1:{http}");
    wait_until("slastream /readyz", Duration::from_secs(60), || async {
        reqwest::get(format!("{api}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    let prom = Prometheus::start(dir.path(), &format!("127.0.0.1:{http}"));
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&prom.config)
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let series = "slastream_slo_attainment_ratio{slo=\"api-availability\",segment=\"enterprise\",timezone=\"America/New_York\"}";
    wait_until(
        "Prometheus to scrape slastream",
        Duration::from_secs(60),
        || async { !prom.query(series).await.is_empty() },
    )
    .await;
    let v = prom.query(series).await;
    let scraped: f64 = v[0]["value"][1]
        .as_str()
        .expect("value")
        .parse()
        .expect("number");
    let answer = get_json(&format!(
        "{api}/api/v1/compliance?slo=api-availability&segment=enterprise&timezone=America/New_York"
    ))
    .await
    .expect("compliance");
    let a = answer["attainment"].as_f64().expect("attainment");
    assert!(close(scraped, a), "Prometheus {scraped}, API {a}");

    // Burn rate per lookback is stored for the same scope.
    let burn = prom
        .query("count(slastream_slo_burn_rate{slo=\"api-availability\",segment=\"enterprise\",timezone=\"America/New_York\"})")
        .await;
    assert_eq!(
        burn.first().and_then(|r| r["value"][1].as_str()),
        Some(LOOKBACKS.len().to_string().as_str())
    );
}

#[test]
fn generated_rules_pass_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["rules", "--config"])
        .arg(root().join("config/slastream.toml"))
        .output()
        .expect("slastream rules");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    // Four window pairs per SLO.
    assert_eq!(text.matches("alert: SLOErrorBudgetBurn").count(), 4 * 7);
    assert!(text.contains("14.4 * (1 - slastream_slo_objective_ratio"));
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, &text).expect("write");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
