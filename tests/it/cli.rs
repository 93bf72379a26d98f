//! The binary's exit statuses for configuration checks.

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
