//! The binary: exit statuses for configuration checks, and the demo.

use std::process::Command;

use crate::common::root;

#[test]
fn check_config_accepts_the_shipped_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["check-config", "--config"])
        .arg(root().join("config/slastream.toml"))
        .output()
        .expect("run slastream");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[ingest]
max_lateness = "soon"
colour = "blue"

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Mars/Base"

[[slos]]
name = "Bad Name"
indicator = "probe_availability"
objective = 1.5
window = "30d"
"#,
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run slastream");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "ingest.max_lateness",
        "ingest.colour",
        "customers[0].timezone",
        "slos[0].name",
        "slos[0].objective",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
}

/// `slastream demo`: ready within 30 s (history published to the embedded
/// broker and consumed), every shipped SLO answers, SIGINT exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn demo_is_ready_within_30s_and_answers_every_slo() {
    let port = crate::common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["demo", "--speed", "600", "--config"])
        .arg(root().join("config/slastream.toml"))
        .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run slastream demo");
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    loop {
        let ok = reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "demo not ready within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let cfg = crate::common::shipped_config(std::path::Path::new("unused"));
    for slo in &cfg.slos {
        let r = reqwest::get(format!("{base}/api/v1/compliance?slo={}", slo.name))
            .await
            .expect("compliance");
        assert_eq!(r.status(), 200, "{}", slo.name);
        let v: serde_json::Value = r.json().await.expect("json");
        assert!(v.get("attainment").is_some(), "{}: {v}", slo.name);
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("slastream_slo_burn_rate{"));
    assert!(metrics.contains("slastream_ingest_events_total{kind=\"probe\",result=\"accepted\"}"));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            stopped.elapsed() < std::time::Duration::from_secs(10),
            "demo did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
}
