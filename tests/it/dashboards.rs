//! The Grafana dashboards: the checked-in JSON is what `slastream::dashboards`
//! generates, it is valid dashboard JSON, and every query of every panel
//! returns series from a real Prometheus scraping `slastream demo`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, root, Killed, Prometheus};

#[test]
fn dashboards_are_generated_and_valid() {
    let dir = root().join("dashboards");
    for (name, dash) in slastream::dashboards::all() {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&dash).expect("json") + "\n";
        if std::env::var("UPDATE_DASHBOARDS").is_ok() {
            std::fs::write(&path, &text).expect("write dashboard");
        }
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard file"))
                .expect("valid JSON");
        assert_eq!(
            on_disk, dash,
            "{name} is stale: UPDATE_DASHBOARDS=1 cargo test dashboards"
        );
        assert!(
            dash["schemaVersion"].as_u64().is_some_and(|v| v >= 30),
            "{name}"
        );
        assert!(dash["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40));
        let vars: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for v in ["datasource", "slo", "segment", "timezone"] {
            assert!(vars.contains(&v), "{name} lacks variable {v}");
        }
        let panels = dash["panels"].as_array().expect("panels");
        let mut ids: Vec<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), panels.len(), "{name}: panel ids must be unique");
        for p in panels {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}");
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}");
                assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
    }
}

/// Every `expr` of every dashboard, variables set to "all".
fn expressions() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, dash) in slastream::dashboards::all() {
        for p in dash["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let expr = t["expr"]
                    .as_str()
                    .expect("expr")
                    .replace("$slo", ".*")
                    .replace("$segment", ".*")
                    .replace("$timezone", ".*")
                    .replace("$__rate_interval", "1m");
                out.push((
                    name.to_string(),
                    p["title"].as_str().unwrap_or_default().to_string(),
                    expr,
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_panel_query_returns_series_from_the_demo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port();
    let _demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_slastream"))
            .args(["demo", "--speed", "600", "--config"])
            .arg(root().join("config/slastream.toml"))
            .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slastream demo"),
    );
    let prom = Prometheus::start(dir.path(), &format!("127.0.0.1:{http}"));
    // Enough scrapes for rate() over a minute, and the consumer's first
    // statistics (lag, every 5 s).
    let start = Instant::now();
    loop {
        let samples = prom
            .query("count_over_time(slastream_ingest_watermark_timestamp_seconds[1m])")
            .await;
        let enough = samples
            .first()
            .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .is_some_and(|n| n >= 8.0);
        let lag = !prom
            .query("slastream_kafka_consumer_lag_messages")
            .await
            .is_empty();
        if enough && lag {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Prometheus never got the demo's series"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut empty = Vec::new();
    for (dash, panel, expr) in expressions() {
        if prom.query(&expr).await.is_empty() {
            empty.push(format!("{dash} / {panel}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without series:\n{}",
        empty.join("\n")
    );
}
