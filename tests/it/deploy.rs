//! The docker-compose stack's files: `docker-compose config` accepts the
//! compose file, `promtool` the Prometheus configuration (with the rules
//! `slastream rules` generates, kept up to date), `amtool` the Alertmanager
//! configuration.

use std::process::Command;

use crate::common::root;

fn ok(cmd: &mut Command) {
    let out = cmd.output().expect("tool (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_file_is_valid() {
    ok(Command::new("docker-compose").current_dir(root()).args([
        "-f",
        "docker-compose.yml",
        "config",
        "-q",
    ]));
}

#[test]
fn prometheus_and_alertmanager_configs_are_valid_and_rules_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["rules", "--config"])
        .arg(root().join("config/slastream.toml"))
        .output()
        .expect("slastream rules");
    let rules = root().join("deploy/rules.yml");
    if std::env::var("UPDATE_DASHBOARDS").is_ok() {
        std::fs::write(&rules, &out.stdout).expect("write rules");
    }
    assert_eq!(
        std::fs::read(&rules).expect("deploy/rules.yml"),
        out.stdout,
        "deploy/rules.yml is stale: slastream rules --config config/slastream.toml > deploy/rules.yml"
    );
    ok(Command::new("promtool")
        .args(["check", "config"])
        .arg(root().join("deploy/prometheus.yml")));
    ok(Command::new("amtool")
        .arg("check-config")
        .arg(root().join("deploy/alertmanager.yml")));
}
