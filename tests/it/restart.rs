//! Restarts: a replay split in two runs over one state directory, and a
//! replay killed with SIGKILL many times then re-run whole, both answer
//! exactly like a single pass.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn split_replay_equals_single_pass() {
    let base = tempfile::tempdir().expect("tempdir");
    let cfg_one = shipped_config(&base.path().join("one"));
    let cfg_two = shipped_config(&base.path().join("two"));
    let lines = sample_lines(&cfg_one, 0.05, 14, 11);
    assert!(
        lines.len() > 10_000,
        "a workload of some size: {}",
        lines.len()
    );
    let (first, second) = lines.split_at(lines.len() / 2);
    let all = base.path().join("all.ndjson");
    let a = base.path().join("a.ndjson");
    let b = base.path().join("b.ndjson");
    write_lines(&all, &lines);
    write_lines(&a, first);
    write_lines(&b, second);

    let single = replay_into(&cfg_one, &all);
    std::fs::create_dir_all(&cfg_two.state.path).expect("state dir");
    drop(replay_into(&cfg_two, &a));
    let split = replay_into(&cfg_two, &b);

    let want = answers(&app(single, golden_now(), ""), &cfg_one).await;
    let got = answers(&app(split, golden_now(), ""), &cfg_two).await;
    assert_eq!(want, got);
}

/// Starts `slastream replay` on `input` and SIGKILLs it `delay` after its
/// first progress line (or at exit, whichever is first). Returns whether it
/// was killed before finishing.
fn replay_and_kill(
    cfg_path: &std::path::Path,
    state: &std::path::Path,
    input: &std::path::Path,
    delay: Duration,
) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["replay", "--config"])
        .arg(cfg_path)
        .arg("--input")
        .arg(input)
        .env("SLASTREAM__STATE__PATH", state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn slastream");
    let stderr = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    // The first progress line says at least one batch is persisted.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.starts_with("replay: ") => break,
            Ok(_) => {}
        }
    }
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    killed
}

#[tokio::test]
async fn replay_killed_repeatedly_then_rerun_equals_single_pass() {
    let base = tempfile::tempdir().expect("tempdir");
    let cfg_path = root().join("config/slastream.toml");
    let cfg_ref = shipped_config(&base.path().join("ref"));
    let crash_state = base.path().join("crash");
    let lines = sample_lines(&cfg_ref, 0.5, 14, 23);
    let input = base.path().join("events.ndjson");
    write_lines(&input, &lines);

    let mut kills = 0;
    for i in 0..10u64 {
        // Spread the kills over the run: 0..900 ms after the first progress line.
        let delay = Duration::from_millis((i * 397) % 900);
        if replay_and_kill(&cfg_path, &crash_state, &input, delay) {
            kills += 1;
        }
    }
    assert!(
        kills >= 3,
        "the replay must actually be killed mid-way ({kills} kills)"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["replay", "--config"])
        .arg(&cfg_path)
        .arg("--input")
        .arg(&input)
        .env("SLASTREAM__STATE__PATH", &crash_state)
        .stderr(Stdio::null())
        .status()
        .expect("run slastream");
    assert!(status.success());

    let single = replay_into(&cfg_ref, &input);
    let cfg_crash = shipped_config(&crash_state);
    let crashed = restore(&cfg_crash);
    assert_eq!(crashed.watermark(), single.watermark());
    let want = answers(&app(single, golden_now(), ""), &cfg_ref).await;
    let got = answers(&app(crashed, golden_now(), ""), &cfg_crash).await;
    assert_eq!(want, got);
}
